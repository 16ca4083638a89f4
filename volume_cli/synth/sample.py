"""One synthetic training sample, deterministic from its seed.

A sample is a dict of numpy arrays plus ``meta`` (JSON-able). World frame = the input camera's OpenCV
frame (x right, y down, z forward, metres); every ``*_w2c`` is a [4, 4] world-to-camera matrix; every
K is [3, 3] with pixel centres at +0.5 (see :mod:`volume_cli.camera`). S = ``size``, V = views,
Hf x Wf = the input frame (about 2.5 S wide, 4:3 or 16:9).

==================  =====================  ==========================================================
key                 shape, dtype           meaning
==================  =====================  ==========================================================
input_image         [Hf, Wf, 3] uint8      the webcam frame (background, noise, JPEG), sRGB
input_alpha         [Hf, Wf] uint8         coverage of the person (255 = opaque)
input_K             [3, 3] float64         input intrinsics; its world_to_camera is the identity
face_box            [4] float64            ground-truth face box (x0, y0, x1, y1), input pixels
crop                [S, S, 3] uint8        ``warp_crop(input_image, input_K, crop camera)``; the crop
                                           camera is aimed from the ground-truth box, or, with
                                           ``crop_source="mediapipe"``, by ``volume convert``'s own
                                           ``frame_crop`` from MediaPipe on the frame (falling back to
                                           the box where it finds nothing): meta["crop_source"]
                                           (and meta["next_crop_source"]) says which was used
crop_alpha          [S, S] uint8           the same crop of input_alpha
crop_K              [3, 3] float64         the crop (virtual) camera's intrinsics
crop_R              [3, 3] float64         input -> crop rotation (crop_w2c = [[crop_R, 0], [0, 1]])
head_center         [3] float64            head centre (inside the skull), world
head_rotation       [3, 3] float64         head frame -> world rotation
head_distance       [] float64             |head_center|, metres
landmarks           [L, 3] float64         named points (meta["landmark_names"]), world
target_rgb          [V, S, S, 3] uint8     views PREMULTIPLIED by alpha (over black): composite on
                                           any background as rgb + (1 - alpha) * bg
target_alpha        [V, S, S] uint8        coverage, 4x multisampled (fractional at hair and edges)
target_depth        [V, S, S] float32      camera z at pixel centres, metres; 0 = background
target_K            [V, 3, 3] float64      view intrinsics
target_w2c          [V, 4, 4] float64      view extrinsics; view 0 IS the crop camera
next_*              as above               the temporal partner, a moment later: next_input_image,
                                           next_input_alpha, next_face_box, next_crop, next_crop_alpha,
                                           next_crop_K, next_crop_R, next_head_center,
                                           next_head_rotation, next_landmarks
face_landmarks      [478, 3] float64       only with ``return_scene`` and ``crop_source="mediapipe"``
                                           where a face was found: MediaPipe's (u, v, z) on
                                           input_image (face.py's units)
==================  =====================  ==========================================================
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from volume_cli.camera import warp_crop
from volume_cli.face import head_state
from volume_cli.framing import frame_crop
from volume_cli.synth import cameras
from volume_cli.synth.appearance import degrade_webcam, lighting_to_json, sample_background, sample_lighting, sample_look
from volume_cli.synth.assets import load_bust
from volume_cli.synth.human import next_expression, regions, sample_expression, sample_identity
from volume_cli.synth.renderer import Renderer
from volume_cli.synth.scene import build_scene

FORMAT_VERSION = 2  # 2: eye-corner landmarks, meta["crop_source"]
CROP_SOURCES = ("truth", "mediapipe")
SALT = 0x5E1F  # keeps sample seeds apart from other users of the same integers
# Streams of randomness, one per aspect, so that changing one aspect's draws leaves the others alone.
STREAMS = ("identity", "look", "expression", "lighting", "camera", "background", "hair", "degrade", "temporal", "views", "gaze")
TEMPORAL_ROTATION_DEG = 1.5  # head motion between the two frames (std per axis)
TEMPORAL_SHIFT_M = 0.004
DETECTOR_JITTER = 0.02  # fraction of the box size (std) on the temporal partner's crop


@lru_cache(maxsize=1)
def _renderer() -> Renderer:
    return Renderer()


@lru_cache(maxsize=1)
def _face_finder():
    from volume_cli.face import FaceFinder

    return FaceFinder(video=False)


def default_renderer() -> Renderer:
    """The process's renderer (created on first use; EGL contexts do not survive fork)."""
    return _renderer()


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence([SALT, int(seed)]).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def _person(rng: dict, assets, look_overrides: dict | None):
    identity = sample_identity(rng["identity"], assets)
    look = sample_look(rng["look"], identity)
    if look_overrides:
        look = dataclasses.replace(look, **look_overrides)
    return identity, look, sample_expression(rng["expression"])


def draw_person(seed: int, look_overrides: dict | None = None):
    """(Identity, Look, expression) of sample ``seed`` without rendering: the same draws
    :func:`generate_sample` makes (cheap; for checking the variety of a seed range)."""
    return _person(_streams(seed), load_bust(), look_overrides)


def sample_seed(run_seed: int, index: int) -> int:
    """Seed of the ``index``-th sample of a run (``volume synth --seed run_seed``): a hash, so runs
    with nearby seeds share no samples. Any sample can be re-rendered with ``generate_sample(seed)``."""
    return int(np.random.SeedSequence([int(run_seed), int(index)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _composite(rng, res, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = res.rgb + (1.0 - res.alpha[..., None]) * background
    return degrade_webcam(rng, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)), (res.alpha * 255 + 0.5).astype(np.uint8)


def generate_sample(
    seed: int,
    *,
    size: int = 256,
    views: int = 4,
    temporal: bool = True,
    look_overrides: dict | None = None,
    crop_source: str = "truth",
    renderer: Renderer | None = None,
    return_scene: bool = False,
) -> dict:
    """Render the sample for ``seed`` (see the module docstring for the keys).

    size: crop and target view side S in pixels; views: number of target views V >= 1 (view 0 is the
    crop camera); look_overrides: fields of :class:`~volume_cli.synth.appearance.Look` to force
    (e.g. ``{"hair_style": "bald", "hair_cards": 0, "glasses": None}``); crop_source: "truth" aims
    the crop camera from the ground-truth face box, "mediapipe" as ``volume convert`` does (the
    MediaPipe face mesh on the rendered frame, ``face.head_state`` and ``framing.frame_crop``), with
    the box as the fallback where MediaPipe finds no face; return_scene: also return
    the :class:`~volume_cli.synth.scene.Scene` under ``"scene"`` (for tests and debugging).
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if views < 1:
        raise ValueError(f"views must be at least 1, got {views}")
    if crop_source not in CROP_SOURCES:
        raise ValueError(f"crop_source must be one of {CROP_SOURCES}, got {crop_source!r}")
    renderer = renderer or default_renderer()
    assets = load_bust()
    regs = regions(assets)
    rng = _streams(seed)

    identity, look, expression = _person(rng, assets, look_overrides)
    lighting = sample_lighting(rng["lighting"], np.asarray(look.skin))
    K_in, width, height, fov = cameras.sample_input_camera(rng["camera"], size)
    R_head, t_head, pose = cameras.sample_head_pose(rng["camera"], K_in, width, height)
    hair_seed = int(rng["hair"].integers(0, 2**31))
    g = rng["gaze"]
    gaze = np.array([g.normal(0, 0.03), g.normal(0, 0.03), 0.0]) if g.random() < 0.6 else np.array(
        [g.normal(0, 0.25), g.normal(0.05, 0.15), g.uniform(-0.1, 0.1)])
    background = sample_background(rng["background"], width, height)
    # the person's material uniforms, the same in every view
    shading = {"skin_noise": look.skin_noise, "cloth_scale": look.cloth_scale,
               "skin_detail": (look.moles, look.shine_variation), "hair_color": tuple(np.asarray(look.hair_color) * 0.6)}

    def frame(R_h, t_h, expr, box_jitter: float):
        scene = build_scene(assets, regs, identity, look, expr, R_h, t_h, gaze, hair_seed)
        res = renderer.render(scene.meshes, K_in, np.eye(4), width, height, lighting, **shading)
        image, alpha = _composite(rng["degrade"], res, background)
        box = cameras.face_box(K_in, scene.face_points)
        cam = face = None
        if crop_source == "mediapipe":
            finder = _face_finder()
            finder._previous_box = None  # unrelated stills: no tracking between samples
            face = finder.find(image)
            if face is not None:
                framed = frame_crop(image, K_in, face, head_state(face, K_in), size)
                cam, crop, source = framed.cam, framed.crop, "mediapipe"
        if cam is None:
            distance = float(np.linalg.norm(t_h))
            if box_jitter > 0:
                box_used, scale = cameras.jitter_box(rng["temporal"], box, box_jitter)
                distance /= scale
            else:
                box_used = box
            cam, _ = cameras.crop_from_box(K_in, box_used, distance, size)
            crop, source = warp_crop(image, K_in, cam), "truth"
        crop_alpha = warp_crop(alpha, K_in, cam)
        return scene, image, alpha, box, cam, crop, crop_alpha, source, face

    scene, image, alpha, box, cam, crop, crop_alpha, source, face = frame(R_head, t_head, expression, 0.0)

    Ks = [cam.K]
    w2c0 = np.eye(4)
    w2c0[:3, :3] = cam.R
    w2cs = [w2c0]
    if views > 1:
        k, w, view_info = cameras.orbit_views(rng["views"], scene.head_center, views - 1, size)
        Ks += k
        w2cs += w
    else:
        view_info = []
    rgb, alphas, depths = [], [], []
    for K, w2c in zip(Ks, w2cs):
        res = renderer.render(scene.meshes, K, w2c, size, size, lighting, **shading)
        rgb.append((np.clip(res.rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
        alphas.append((res.alpha * 255 + 0.5).astype(np.uint8))
        depths.append(res.depth)

    names = sorted(scene.landmarks)
    out = {
        "seed": np.int64(seed),
        "input_image": image, "input_alpha": alpha, "input_K": K_in, "face_box": box,
        "crop": crop, "crop_alpha": crop_alpha, "crop_K": cam.K, "crop_R": cam.R,
        "head_center": scene.head_center, "head_rotation": R_head, "head_distance": np.float64(np.linalg.norm(scene.head_center)),
        "landmarks": np.stack([scene.landmarks[n] for n in names]),
        "target_rgb": np.stack(rgb), "target_alpha": np.stack(alphas), "target_depth": np.stack(depths).astype(np.float32),
        "target_K": np.stack(Ks), "target_w2c": np.stack(w2cs),
    }
    meta = {
        "format_version": FORMAT_VERSION, "seed": int(seed), "size": size, "views": views,
        "frame": {"width": width, "height": height, "fov_deg": fov},
        "head_pose": pose, "target_views": [{"yaw": 0.0, "pitch": 0.0, "crop_camera": True}] + view_info,
        "identity": identity.to_json(), "look": look.to_json(), "expression": expression,
        "lighting": lighting_to_json(lighting), "gaze_target": gaze.tolist(), "landmark_names": names,
        "crop_source": source,
    }
    if temporal:
        t = rng["temporal"]
        dR = cameras.rotation_ypr(*t.normal(0, TEMPORAL_ROTATION_DEG, 3))
        R2, t2 = R_head @ dR, t_head + t.normal(0, TEMPORAL_SHIFT_M, 3)
        expr2 = next_expression(t, expression)
        scene2, image2, alpha2, box2, cam2, crop2, crop_alpha2, source2, _ = frame(R2, t2, expr2, DETECTOR_JITTER)
        out.update({
            "next_input_image": image2, "next_input_alpha": alpha2, "next_face_box": box2,
            "next_crop": crop2, "next_crop_alpha": crop_alpha2, "next_crop_K": cam2.K, "next_crop_R": cam2.R,
            "next_head_center": scene2.head_center, "next_head_rotation": R2,
            "next_landmarks": np.stack([scene2.landmarks[n] for n in names]),
        })
        meta["next_expression"] = expr2
        meta["next_crop_source"] = source2
    out["meta"] = meta
    if return_scene:
        out["scene"] = scene
        if face is not None:
            out["face_landmarks"] = face.landmarks
    return out


def composite(rgb_premultiplied: np.ndarray, alpha: np.ndarray, background) -> np.ndarray:
    """uint8 premultiplied views [..., H, W, 3] and alpha [..., H, W] over a background colour or
    image -> uint8 [..., H, W, 3]."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = rgb_premultiplied.astype(np.float32) + (1 - a) * np.asarray(background, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
