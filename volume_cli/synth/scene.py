"""A posed, dressed person as renderer meshes in the WORLD frame (= the input camera's OpenCV frame).

``world = M @ (rest - head_center_rest) + t_head`` with ``M = R_head @ FLIP`` (see
:mod:`volume_cli.synth.human` for the frames). Per-vertex colours, materials and the procedural
texture coordinates (the rest positions) are set here; lights and cameras are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from volume_cli.synth import hair as hairlib
from volume_cli.synth.appearance import Look
from volume_cli.synth.assets import BustAssets
from volume_cli.synth.human import FLIP, Identity, Regions, eyeballs, head_center_rest, shaped_vertices
from volume_cli.synth.renderer import (
    KIND_CLOTH, KIND_EYE, KIND_HAIR, KIND_LENS, KIND_PLAIN, KIND_SKIN, DrawMesh, Lighting, Renderer,
    pack_vertices, vertex_normals,
)

MAX_GAZE_DEG = 25.0  # eyes turn at most this far from straight ahead
TEETH_SRGB_LINEAR = np.array([0.70, 0.66, 0.55])
TONGUE_LINEAR = np.array([0.45, 0.12, 0.12])
MOUTH_INSIDE_LINEAR = np.array([0.12, 0.02, 0.02])
LASH_OPACITY = (0.6, 0.12)  # upper, lower


def _smooth_noise(rng: np.random.Generator, points: np.ndarray, wavelength: float, waves: int = 6) -> np.ndarray:
    """Smooth noise [N] in about [-1, 1] over points [N, 3] (metres): a sum of random plane waves
    of about ``wavelength`` (cheap, and the same on every frame of a person for the same rng)."""
    k = rng.normal(size=(waves, 3))
    k *= (2 * np.pi / wavelength) * rng.uniform(0.7, 1.4, (waves, 1)) / np.linalg.norm(k, axis=1, keepdims=True)
    phase = rng.uniform(0, 2 * np.pi, waves)
    return np.sin(points @ k.T + phase).sum(1) / np.sqrt(waves / 2)


@dataclass
class Scene:
    meshes: list[DrawMesh]
    body_world: np.ndarray  # [V, 3] all bust vertices (incl. eyes, teeth), world frame
    body_triangles: np.ndarray  # [T, 3] the skin surface (the "body" part)
    landmarks: dict[str, np.ndarray]  # name -> [3] world
    face_points: np.ndarray  # [F, 3] world, what a face detector boxes
    head_center: np.ndarray  # [3] world
    eye_centers: np.ndarray  # [2, 3] world (left, right)


@lru_cache(maxsize=1)
def _sphere(lat: int = 16, lon: int = 24) -> tuple[np.ndarray, np.ndarray]:
    th = np.linspace(0, np.pi, lat + 1)
    ph = np.linspace(0, 2 * np.pi, lon, endpoint=False)
    t, p = np.meshgrid(th, ph, indexing="ij")
    pts = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1).reshape(-1, 3)
    i = np.arange(lat)[:, None]
    j = np.arange(lon)[None, :]
    a, b = i * lon + j, i * lon + (j + 1) % lon
    c, d = (i + 1) * lon + (j + 1) % lon, (i + 1) * lon + j
    tris = np.stack([a, b, c, a, c, d], axis=-1).reshape(-1, 3).astype(np.int32)
    return pts, tris


@lru_cache(maxsize=1)
def _ao_cached(key: int) -> np.ndarray:
    from volume_cli.synth.assets import load_bust

    return _ambient_occlusion(load_bust())


def ambient_occlusion(assets: BustAssets) -> np.ndarray:
    """Per-vertex ambient occlusion [V] in [0, 1] of the neutral bust, from depth maps rendered in
    32 directions (cosine-weighted visibility). Computed once per process (about a second)."""
    return _ao_cached(id(assets))


def _ambient_occlusion(assets: BustAssets) -> np.ndarray:
    from volume_cli.camera import intrinsics, look_at_rotation

    rest = assets.rest
    tris = np.concatenate(list(assets.parts.values()))
    nrm = vertex_normals(rest, assets.parts["body"])
    center = 0.5 * (rest.min(0) + rest.max(0))
    renderer = Renderer()
    mesh = DrawMesh(pack_vertices(rest, nrm, np.ones((len(rest), 3)), kind=KIND_PLAIN), tris)
    none = Lighting(np.zeros((0, 3)), np.zeros((0, 3)))
    size, dist = 192, 4.0
    K = intrinsics(size * dist / 0.62, size * dist / 0.62, size / 2, size / 2)
    gold = np.pi * (3 - np.sqrt(5))
    n_dirs = 32
    vis = np.zeros(len(rest))
    wsum = np.zeros(len(rest))
    for k in range(n_dirs):
        y = 1 - 2 * (k + 0.5) / n_dirs
        r = np.sqrt(1 - y * y)
        d = np.array([np.cos(gold * k) * r, y, np.sin(gold * k) * r])  # towards the camera
        cam = center + dist * d
        try:
            R = look_at_rotation(center - cam)
        except ValueError:
            continue
        w2c = np.eye(4)
        w2c[:3, :3] = R
        w2c[:3, 3] = -R @ cam
        depth = renderer.render([mesh], K, w2c, size, size, none, near=1.0, far=8.0).depth
        pc = rest @ R.T + w2c[:3, 3]
        uv = pc[:, :2] / pc[:, 2:3] * K[0, 0] + size / 2
        col = np.clip(uv[:, 0].astype(int), 0, size - 1)
        row = np.clip(uv[:, 1].astype(int), 0, size - 1)
        dm = depth[row, col]
        seen = (dm > 0) & (pc[:, 2] <= dm + 0.004)
        cosw = np.clip(nrm @ d, 0, None)
        vis += seen * cosw
        wsum += cosw
    ao = np.where(wsum > 0, vis / np.maximum(wsum, 1e-9), 1.0)
    return np.clip(ao, 0, 1) ** 0.7


def _gaze_basis(g: np.ndarray) -> np.ndarray:
    x = np.cross([0.0, 1.0, 0.0], g)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(g, x), g])  # rows: x, y, z(gaze) in the rest frame


def _limit_gaze(d: np.ndarray) -> np.ndarray:
    d = d / np.linalg.norm(d)
    fwd = np.array([0.0, 0.0, 1.0])
    ang = np.arccos(np.clip(d @ fwd, -1, 1))
    lim = np.deg2rad(MAX_GAZE_DEG)
    if ang <= lim:
        return d
    axis = d - fwd * (d @ fwd)
    axis /= max(np.linalg.norm(axis), 1e-9)
    return fwd * np.cos(lim) + axis * np.sin(lim)


def build_scene(
    assets: BustAssets,
    regs: Regions,
    identity: Identity,
    look: Look,
    expression: dict[str, float],
    R_head: np.ndarray,
    t_head: np.ndarray,
    gaze_target: np.ndarray,
    hair_seed: int,
) -> Scene:
    """The person's meshes in the world frame.

    R_head [3, 3], t_head [3]: head frame -> world (input camera); gaze_target [3]: world point the
    eyes look at (clamped to 25 deg); hair_seed: the hairstyle's random seed (same seed, same hair)."""
    v = shaped_vertices(assets, identity, expression)
    c = head_center_rest(assets, v)
    M = R_head @ FLIP

    def to_world(p: np.ndarray) -> np.ndarray:
        return (p - c) @ M.T + t_head

    w = regs.weights
    rng = np.random.default_rng(hair_seed)
    body = assets.parts["body"]
    nrm = vertex_normals(v, body)
    ao = ambient_occlusion(assets)
    skin = np.asarray(look.skin)
    hair_col = np.asarray(look.hair_color)
    col = np.tile(skin, (len(v), 1))
    redness = 0.5 * look.redness
    col *= 1 + (look.blush + redness) * w["blush"][:, None] * np.array([0.25, -0.12, -0.1])
    red = (0.5 + redness) * w["nose"] + 0.4 * w["ears"]
    col *= 1 + red[:, None] * np.array([0.18, -0.06, -0.06])
    # under the eyes: thinner, darker, slightly violet skin
    col *= 1 - np.clip(look.under_eye * 1.6 * w["socket"], 0, 0.6)[:, None] * np.array([0.5, 0.6, 0.45])
    col = col * (1 - w["lips"][:, None]) + np.asarray(look.lips) * w["lips"][:, None]
    speckle = rng.random(len(v))
    # facial hair: the shader draws the hairs (stubble density in uv.y); the skin under it is shaded
    facial = np.clip(look.beard * w["beard"] + look.moustache * w["moustache"], 0, 1) * (0.75 + 0.25 * speckle)
    col *= 1 - 0.3 * facial[:, None]
    brow = np.clip(look.brows * w["brows"] * (0.7 + 0.3 * speckle), 0, 1)
    brow_col = hair_col * 0.6 if look.grey < 0.6 else hair_col * 0.8
    col = col * (1 - brow[:, None]) + brow_col * brow[:, None]
    sc = np.zeros(len(v))
    stubble = facial
    lift = np.zeros(len(v))
    scalp = w["scalp"]
    if look.hair_style != "bald":
        # an irregular hairline: the scalp weight shifted by smooth noise over the rest positions
        # (only where the weight is between 0 and 1, so no holes open inside the hair)
        edge = (w["scalp"] > 0) & (w["scalp"] < 0.999)
        scalp = np.where(edge, np.clip(w["scalp"] + 0.5 * _smooth_noise(rng, assets.rest, 0.025), 0, 1), w["scalp"])
        if look.hair_style == "buzz":
            # cropped hair: dense stubble on the skin (drawn by the shader), and a few mm of volume
            sc = scalp * (0.85 + 0.15 * speckle)
            col *= 1 - 0.35 * sc[:, None]
            stubble = np.maximum(stubble, sc)
            lift = sc * look.hair_length
        else:
            # the scalp under hair shows as dark hair (roots in the hair's own shadow), not as skin, so
            # partings and gaps between cards never show bare white or grey skin
            cover = {"short": 0.97, "medium": 1.0, "long": 1.0}[look.hair_style]
            sc = scalp * cover * (0.9 + 0.1 * speckle)
            col = col * (1 - sc[:, None]) + hair_col * 0.5 * sc[:, None]
    col = col * (1 - w["mouth_inside"][:, None]) + MOUTH_INSIDE_LINEAR * w["mouth_inside"][:, None]
    cloth = w["cloth"] > 0.5
    col[cloth] = look.cloth
    kind = np.where(cloth, KIND_CLOTH, KIND_SKIN).astype(np.float32)
    spec = np.where(cloth, 0.02, (0.07 + 0.25 * w["lips"] + 0.08 * w["tzone"]) * (1 - 0.85 * sc))
    pos = v + nrm * (cloth * 0.004 + lift)[:, None]  # clothes sit a little off the skin, cropped hair too
    uv = np.stack([look.freckles * w["freckles"], np.where(cloth, 0.0, stubble)], axis=1)

    verts = pack_vertices(to_world(pos), nrm @ M.T, col, uv=uv, aux=assets.rest, specular=spec, shininess=18.0, ao=ao)
    verts[:, 15] = kind
    meshes = [DrawMesh(verts, body)]

    # teeth, tongue: same vertex array, their own colours
    for part, albedo, sp in (("teeth_upper", TEETH_SRGB_LINEAR, 0.3), ("teeth_lower", TEETH_SRGB_LINEAR, 0.3),
                             ("tongue", TONGUE_LINEAR, 0.2)):
        tris = assets.parts[part]
        idx = np.unique(tris)
        pn = vertex_normals(v, tris)
        remap = np.zeros(len(v), np.int32)
        remap[idx] = np.arange(len(idx))
        pv = pack_vertices(to_world(v[idx]), pn[idx] @ M.T, np.tile(albedo, (len(idx), 1)), aux=assets.rest[idx],
                           specular=sp, shininess=30.0, ao=ao[idx])
        meshes.append(DrawMesh(pv, remap[tris]))
    # lashes: the helper meshes are solid ribbons; drawn see-through (upper lashes dark and dense,
    # lower ones faint) they read as lashes instead of a painted dark rim around the eye
    lash_col = hair_col * 0.25 + 0.004
    for part, opacity in (("lashes_upper", LASH_OPACITY[0]), ("lashes_lower", LASH_OPACITY[1])):
        tris = assets.parts[part]
        idx = np.unique(tris)
        remap = np.zeros(len(v), np.int32)
        remap[idx] = np.arange(len(idx))
        rgba = np.concatenate([np.tile(lash_col, (len(idx), 1)), np.full((len(idx), 1), opacity)], axis=1)
        pv = pack_vertices(to_world(v[idx]), vertex_normals(v, tris)[idx] @ M.T, rgba, kind=KIND_PLAIN)
        meshes.append(DrawMesh(pv, remap[tris], transparent=True))

    # eyes: spheres with iris and pupil, turned towards the gaze target
    sph, sph_t = _sphere()
    # pupil angular radius 0.15-0.23 rad, fixed per person (a function of the look, no new draw)
    pupil_uv = np.tile([0.15 + 0.08 * ((look.skin_noise * 7919.0) % 1.0), 0.0], (len(sph), 1))
    eyes = eyeballs(assets, v)
    target_rest = (np.asarray(gaze_target) - t_head) @ M + c
    for eye in eyes:
        g = _limit_gaze(target_rest - eye.center)
        B = _gaze_basis(g)
        p = eye.center + sph * eye.radius * 0.97
        # the lids shade the eyeball: the upper part under the upper lid most, the corners a little
        eye_ao = 0.95 - 0.5 * np.clip((sph[:, 1] + 0.05) / 0.5, 0, 1) - 0.2 * np.clip((np.abs(sph[:, 0]) - 0.5) / 0.4, 0, 1)
        pv = pack_vertices(to_world(p), sph @ M.T, np.tile(look.iris, (len(p), 1)), aux=sph @ B.T, uv=pupil_uv,
                           kind=KIND_EYE, specular=0.6, shininess=180.0, ao=eye_ao)
        meshes.append(DrawMesh(pv, sph_t))

    # hair cards
    if look.hair_cards > 0 and look.hair_length > 0.01:
        gravity = FLIP @ R_head.T @ np.array([0.0, 1.0, 0.0])
        hp, hn, htan, huv, hseed, hshade, hdensity, ht = hairlib.hair_cards(
            rng, v, body, scalp, c, gravity, length=look.hair_length, curl=look.hair_curl, count=look.hair_cards
        )
        # material.w carries the card seed for hair (see renderer's vertex layout)
        hrgba = np.concatenate([hair_col[None] * hshade[:, None], hdensity[:, None]], axis=1)
        hv = pack_vertices(to_world(hp), hn @ M.T, hrgba, uv=huv,
                           aux=htan @ M.T, kind=KIND_HAIR, specular=0.15, shininess=40.0, ao=hseed)
        meshes.append(DrawMesh(hv, ht, transparent=True))

    lm = regs.landmarks
    landmarks = {name: to_world(v[i]) for name, i in lm.items()}
    landmarks["eye_l"] = to_world(eyes[0].center)
    landmarks["eye_r"] = to_world(eyes[1].center)

    if look.glasses is not None:
        g = look.glasses
        geo = hairlib.glasses_geometry(g, eyes[0].center, eyes[1].center, eyes[0].radius, v[lm["ear_l"]], v[lm["ear_r"]])
        fp, fn, ft = geo["frame"]
        metal = g["metal"]
        meshes.append(DrawMesh(pack_vertices(to_world(fp), fn @ M.T, np.tile(g["color"], (len(fp), 1)),
                                             kind=KIND_CLOTH, specular=0.8 if metal else 0.3,
                                             shininess=80.0 if metal else 40.0, aux=np.zeros((len(fp), 3))), ft))
        lp, ln, lt = geo["lens"]
        lens_col = np.concatenate([np.tile(np.asarray(g["lens_tint"]) * 0.5, (len(lp), 1)),
                                   np.full((len(lp), 1), g["lens_alpha"])], axis=1)
        meshes.append(DrawMesh(pack_vertices(to_world(lp), ln @ M.T, lens_col, kind=KIND_LENS, specular=1.0,
                                             shininess=120.0), lt, transparent=True))

    return Scene(
        meshes=meshes,
        body_world=to_world(v),
        body_triangles=body,
        landmarks=landmarks,
        face_points=to_world(v[regs.face_vertices]),
        head_center=np.asarray(t_head, dtype=np.float64),
        eye_centers=np.stack([landmarks["eye_l"], landmarks["eye_r"]]),
    )
