"""Colour for the side of the head a frame does not see.

A convert sees the whole clip: ``ClipTexture`` accumulates a colour per head vertex from every
frame so far, each frame weighted by how squarely it saw the vertex (cos^2 of the angle between
the vertex normal and the ray), as the personal-prior fusion of "Coherent 3D Portrait Video
Reconstruction" (CVPR 2025) fuses views into a reference. ``hidden_side_colours`` then colours the
vertices a frame does not see from, in order: that texture, the mirrored vertex when this frame
sees it (the head model is left-right symmetric), and the nearest vertex that has a colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from volume_cli import camera
from volume_cli.head.prior import HeadPrior

# A vertex seen this obliquely or worse (cos of the angle to the ray) gives no colour: at grazing
# angles its pixel holds the silhouette's background or the neighbouring surface.
MIN_COSINE = 0.35
MIN_TEXTURE_WEIGHT = 0.5  # summed cos^2 weight before the clip texture is trusted for a vertex
# Colours are taken only this far (crop pixels at S = 256) inside the person's outline, where the
# person's confidence is at least SOLID_PERSON: outline pixels mix in the background (a white
# wall behind dark hair coloured the whole back of a real head grey).
INSET_PX = 3.0
SOLID_PERSON = 0.9


def sample_colours(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Bilinear colours [N, 3] of ``image`` [S, S, 3] float at pixel coordinates [N, 2] (centres at +0.5)."""
    s = image.shape[0]
    x = np.clip(pixels[:, 0] - 0.5, 0, s - 1.001)
    y = np.clip(pixels[:, 1] - 0.5, 0, s - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    return ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x0 + 1]
            + (1 - fx) * fy * image[y0 + 1, x0] + fx * fy * image[y0 + 1, x0 + 1])


def seen_colours(prior: HeadPrior, image: np.ndarray, K: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What this frame shows of each vertex: colours [V, 3] and weights [V] (cos^2, 0 = unseen).
    image [S, S, 3] float in [0, 1]; person [S, S] the person mask (hair that is really background
    in this frame must not colour the head)."""
    pixels = camera.project(K, prior.vertices)
    ray = prior.vertices / np.linalg.norm(prior.vertices, axis=1, keepdims=True)
    cos = -(ray * prior.vertex_normals).sum(1)
    s = image.shape[0]
    px = np.clip(np.floor(pixels).astype(np.int64), 0, s - 1)
    solid = (person >= SOLID_PERSON).astype(np.uint8)
    inside = cv2.distanceTransform(solid, cv2.DIST_L2, 3) > INSET_PX * s / 256.0
    on_person = inside[px[:, 1], px[:, 0]]
    weight = np.where(prior.visible & on_person & (cos > MIN_COSINE), cos**2, 0.0)
    return sample_colours(image, pixels), weight


# The unseen side's colours change from frame to frame as the seen side moves (what the mirror or
# the nearest seen vertex shows); a clip keeps an exponential average with this weight for the new
# frame, so the back of a head does not flicker (about 0.1 s at 30 fps to follow a change).
HIDDEN_COLOUR_UPDATE = 0.25


class ClipTexture:
    """Per-vertex colour accumulated over a clip's frames, and the unseen side's colours as shown."""

    def __init__(self, num_vertices: int) -> None:
        self._sum = np.zeros((num_vertices, 3))
        self._weight = np.zeros(num_vertices)
        self._shown: np.ndarray | None = None

    def steady(self, colours: np.ndarray) -> np.ndarray:
        """This frame's unseen-side colours [N, 3] blended into the ones shown last frame."""
        if self._shown is None or self._shown.shape != colours.shape:
            self._shown = colours.copy()
        else:
            self._shown += HIDDEN_COLOUR_UPDATE * (colours - self._shown)
        return self._shown.copy()

    def add(self, colours: np.ndarray, weights: np.ndarray) -> None:
        self._sum += colours * weights[:, None]
        self._weight += weights

    def colours(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean colour [V, 3], trusted [V] bool)."""
        trusted = self._weight >= MIN_TEXTURE_WEIGHT
        return self._sum / np.maximum(self._weight, 1e-12)[:, None], trusted


def spread_over_mesh(colours: np.ndarray, known: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Colours [V, 3] where every vertex not ``known`` [V] takes the colour of the nearest known
    ones along the mesh (ring by ring over ``edges`` [N, 2]: the average of its known neighbours),
    so a colour never jumps through the head to the other side. Vertices no known vertex reaches
    keep their colour."""
    out = colours.copy()
    known = known.copy()
    a = np.concatenate([edges[:, 0], edges[:, 1]])
    b = np.concatenate([edges[:, 1], edges[:, 0]])
    while not known.all():
        step = known[a] & ~known[b]  # edges from a known vertex into an unknown one
        if not step.any():
            break
        count = np.bincount(b[step], minlength=len(out))
        reached = count > 0
        for c in range(3):
            out[reached, c] = np.bincount(b[step], out[a[step], c], len(out))[reached] / count[reached]
        known |= reached
    return out


def hidden_side_colours(colours: np.ndarray, weights: np.ndarray, mirror: np.ndarray,
                        edges: np.ndarray, texture: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Colour [V, 3] for every vertex (only the unseen ones matter): the clip texture where it is
    trusted, else the mirrored vertex's colour in this frame, else the nearest coloured vertex
    over the mesh. colours/weights: ``seen_colours`` of this frame; mirror [V]; edges [N, 2];
    texture: ``ClipTexture.colours()``."""
    out = colours.copy()
    have = weights > 0
    from_mirror = ~have & have[mirror]
    out[from_mirror] = colours[mirror[from_mirror]]
    have = have | from_mirror
    if texture is not None:
        tex, trusted = texture
        use = ~(weights > 0) & trusted
        out[use] = tex[use]
        have |= use
    return spread_over_mesh(out, have, edges)
