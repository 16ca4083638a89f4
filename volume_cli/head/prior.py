"""The fitted head seen by a crop camera: what the predictors take from the head model.

Per crop pixel: the z-depth of the fitted head (inf where the ray misses it), its normal, and the
depth of a hair shell over the skull (the scalp pushed out along its normals by HAIR_SHELL_M, so
hair seen beyond the skull's outline lies on a rounded surface, not a plane). Per head vertex: its
position in the crop camera frame, its normal, and whether the crop camera sees it; the vertices it
does not see carry the side of the head the input view cannot show.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from volume_cli import camera
from volume_cli.head.fit import HeadFit
from volume_cli.head.model import HeadModel

HAIR_SHELL_M = 0.015  # how far hair stands off the scalp, for an average hairstyle
# A vertex is seen when it lies within this distance (metres) behind the visible head surface at
# its pixel: the rasterised depth is exact at pixel centres, a vertex between them is not.
VISIBLE_TOLERANCE_M = 0.004


@dataclass
class HeadPrior:
    """The fitted head in one S x S crop camera (camera frame of the crop, metres).

    depth [S, S] float64 z of the head surface, +inf off it; normals [S, S, 3] unit, facing the
    camera (zero off the head; computed when first asked for: the geometric predictor does not
    need them); shell_depth [S, S] the hair shell's z, +inf off it; K [3, 3] the crop camera;
    vertices [V, 3] and vertex_normals [V, 3] (outward) the posed head (shell for scalp vertices:
    what is seen of the back of a head is its hair); skin_vertices [V, 3] the head itself;
    visible [V] bool, seen by the crop camera; fit: the frame's HeadFit.
    """

    depth: np.ndarray
    shell_depth: np.ndarray
    K: np.ndarray
    vertices: np.ndarray
    vertex_normals: np.ndarray
    skin_vertices: np.ndarray
    visible: np.ndarray
    fit: HeadFit

    @property
    def head_mask(self) -> np.ndarray:
        return np.isfinite(self.depth)

    @functools.cached_property
    def normals(self) -> np.ndarray:
        return depth_normals(self.depth, self.K)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [V, 3] (unit; the triangles' winding sets the side)."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    face = np.cross(b - a, c - a)
    out = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(out, triangles[:, i], face)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)


def _outward(vertices: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Flip all normals if most point towards the head's centroid (the winding is not ours to trust)."""
    outward = ((vertices - vertices.mean(0)) * normals).sum(1)
    return -normals if np.median(outward) < 0 else normals


def depth_normals(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Unit normals [S, S, 3] facing the camera, from a z-depth map (central differences of the
    back-projected surface); zero where the depth or a neighbour is not finite."""
    size = depth.shape[0]
    points = camera.image_rays(K, size, size) * np.where(np.isfinite(depth), depth, 0.0)[..., None]
    du = np.zeros_like(points)
    dv = np.zeros_like(points)
    du[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dv[1:-1] = points[2:] - points[:-2]
    n = np.cross(dv, du)  # image x right, y down: dv x du points towards the camera (-z)
    ok = np.isfinite(depth)
    ok[:, 1:-1] &= np.isfinite(depth[:, 2:]) & np.isfinite(depth[:, :-2])
    ok[1:-1] &= np.isfinite(depth[2:]) & np.isfinite(depth[:-2])
    ok[[0, -1]] = False
    ok[:, [0, -1]] = False
    n = n / np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-12)
    return np.where(ok[..., None], n, 0.0)


def head_prior(model: HeadModel, fit: HeadFit, K: np.ndarray, size: int, rasterize_depth) -> HeadPrior:
    """The head of ``fit`` (posed in the crop camera's frame) seen through K [3, 3] at S = ``size``.

    rasterize_depth: ``(pixels [V, 2], z [V], triangles [T, 3], size) -> [S, S]`` (the geometric
    predictor's compiled mesh rasteriser, or its NumPy reference)."""
    skin = fit.vertices(model)
    normals = _outward(skin, vertex_normals(skin, model.triangles))
    shell = skin + normals * (HAIR_SHELL_M * fit.scale * model.scalp)[:, None]
    depth = rasterize_depth(camera.project(K, skin), skin[:, 2], model.triangles, size)
    shell_depth = rasterize_depth(camera.project(K, shell), shell[:, 2], model.triangles, size)
    return HeadPrior(depth=depth, shell_depth=shell_depth, K=K,
                     vertices=shell, vertex_normals=normals, skin_vertices=skin, visible=seen_by_camera(skin, depth, K), fit=fit)


def seen_by_camera(points: np.ndarray, depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[N] bool: points [N, 3] (camera frame) no more than VISIBLE_TOLERANCE_M behind the surface
    ``depth`` [S, S] at their pixel, and inside the image."""
    size = depth.shape[0]
    px = np.floor(camera.project(K, points)).astype(np.int64)
    inside = (px >= 0).all(1) & (px < size).all(1)
    seen_depth = np.full(len(points), np.inf)
    seen_depth[inside] = depth[px[inside, 1], px[inside, 0]]
    return inside & (points[:, 2] <= seen_depth + VISIBLE_TOLERANCE_M)


def subdivided(prior: HeadPrior, edges: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The prior's vertices plus the midpoint of every edge [N, 2] (one loop of midpoint
    subdivision: four times the surface samples at half the spacing): points [V + N, 3], unit
    normals [V + N, 3] and seen [V + N] by the crop camera (intrinsics K)."""
    mid = 0.5 * (prior.vertices[edges[:, 0]] + prior.vertices[edges[:, 1]])
    n = prior.vertex_normals[edges[:, 0]] + prior.vertex_normals[edges[:, 1]]
    n /= np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)
    # Tested where the skin below them is, as the vertices are (the shell stands off the scalp).
    skin_mid = 0.5 * (prior.skin_vertices[edges[:, 0]] + prior.skin_vertices[edges[:, 1]])
    return (np.concatenate([prior.vertices, mid]), np.concatenate([prior.vertex_normals, n]),
            np.concatenate([prior.visible, seen_by_camera(skin_mid, prior.depth, K)]))
