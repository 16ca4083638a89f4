"""Evaluation on held-out synthetic people: authenticity, realism and stability, for any predictor.

Samples are ``generate_sample(sample_seed(EVAL_RUN_SEED, i))`` for i < count: people no training
run sees (training refuses that run seed; sample seeds are hashes of (run seed, index)). Every
predictor gets the SAME crops, cut as ``volume convert`` cuts them: MediaPipe's face mesh on the
rendered webcam frame, ``face.head_state`` and ``framing.frame_crop`` (which also gives the metric
landmarks the geometric predictor needs). Samples where MediaPipe finds no face are skipped and
counted.

* Authenticity: the splats rendered from the crop camera against the input crop itself (noise,
  JPEG and all), PSNR/SSIM inside the head mask = ground-truth alpha > 0.5 (and inside the frame);
  and ``original_authenticity_*``: rendered by the original webcam camera at the frame's own size
  against the frame, inside that mask carried into the frame and the frame's own alpha > 0.5.
  ``authenticity_lpips`` (and each view's ``lpips`` under realism): LPIPS (volume_cli.perceptual,
  shift-tolerant AlexNet, lower is better) inside the same masks as the PSNR.
* Realism: renders from cameras orbiting the TRUE head centre by ``yaws`` degrees (positive: the
  camera moves to the image's right) at the crop camera's distance and intrinsics, against the
  ground-truth renders of the same scene (premultiplied, over black), PSNR/SSIM inside the HEAD
  REGION: pixels whose ground-truth or rendered surface (alpha > 0.5) lies within HEAD_RADIUS_M of
  the true head centre (a missing ear and a spurious blob both count; the shoulders do not).
  As in training (train/losses.py), the prediction is first scaled about the camera centre by the
  least-squares factor between its input-view depth and the true one: from one image the head's
  size and distance are known only up to a common scale (a person's eye spacing is not the
  assumed 63 mm), which moves the whole head in a novel view. That error is reported on its own as
  ``scale_error`` = mean |ln s| (0.05: 5 % too near or too far).
* Stability: a same-moment jitter pair (the crop camera re-aimed by a small rotation at the same
  distance, fresh sensor noise; see train/data.py), both predictions rendered from the same orbit
  views: ``stability_mad`` is their mean absolute difference (rgb in [0, 1], inside the union of
  both renders' head regions), ``input_mad`` that of the two input crops after mapping the second into the
  first's frame (inside the head mask), and ``stability_ratio`` = stability_mad / input_mad (the
  DESIGN's "temporal difference of novel-view renders compared with that of the input": below 1,
  the splats flicker less than the input does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from volume_cli import camera
from volume_cli.gaussians import Gaussians
from volume_cli.evaluate.authenticity import mask_in_original, masked_lpips, score_in_original
from volume_cli.metrics import psnr, ssim
from volume_cli.predictors.base import Predictor
from volume_cli.train.losses import scale_correction, scaled_about_camera

DEFAULT_YAWS = (-40.0, -20.0, 20.0, 40.0)
SOLID_ALPHA = 0.5
# The head region of a novel view: surface points within this distance of the true head centre
# (the skull's half-length is ~0.1 m; 0.15 m keeps hair, ears and the top of the neck and leaves
# out the shoulders, which a head predictor is not asked to get right).
HEAD_RADIUS_M = 0.15


def orbit_view(cam: camera.VirtualCamera, head_center: np.ndarray, yaw_deg: float) -> np.ndarray:
    """World-to-camera [4, 4] of the crop camera swung by ``yaw_deg`` about the axis through
    ``head_center`` [3] (world = input camera frame) parallel to the crop camera's y (down) axis;
    positive yaw moves the camera to the image's right. yaw 0 gives the crop camera itself."""
    axis = cam.R.T @ np.array([0.0, 1.0, 0.0])
    rot, _ = cv2.Rodrigues(axis * math.radians(-yaw_deg))
    centre = head_center + rot @ (-head_center)
    R = cam.R @ rot.T
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ centre
    return T


def _w2c(R: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    return T


def _lighting(meta: dict):
    from volume_cli.synth.renderer import Lighting

    light = meta["lighting"]
    return Lighting(directions=np.array(light["directions"]), colors=np.array(light["colors"]),
                    sky=np.array(light["sky"]), ground=np.array(light["ground"]))


def ground_truth_views(sample: dict, w2cs: list[np.ndarray], K: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Premultiplied rgb [C, S, S, 3] float32 in [0, 1], alpha [C, S, S] and depth [C, S, S]
    (camera z, metres, 0 = background) of the sample's scene (``generate_sample(...,
    return_scene=True)``) from each world-to-camera with intrinsics K."""
    from volume_cli.synth.sample import default_renderer

    meta, scene = sample["meta"], sample["scene"]
    renderer = default_renderer()
    lighting = _lighting(meta)
    rgb, alpha, depth = [], [], []
    for w2c in w2cs:
        res = renderer.render(scene.meshes, K, w2c, size, size, lighting,
                              skin_noise=meta["look"]["skin_noise"], cloth_scale=meta["look"]["cloth_scale"])
        rgb.append(np.clip(res.rgb, 0, 1))
        alpha.append(res.alpha)
        depth.append(res.depth)
    return np.stack(rgb).astype(np.float32), np.stack(alpha).astype(np.float32), np.stack(depth).astype(np.float32)


def near_head(depth: torch.Tensor, w2c: np.ndarray, K: np.ndarray, head_center: np.ndarray) -> torch.Tensor:
    """[S, S] bool: pixels whose surface (z-depth [S, S] in the camera w2c [4, 4], K) lies within
    HEAD_RADIUS_M of ``head_center`` [3] (world)."""
    size = depth.shape[-1]
    points = camera.image_rays(K, size, size) * depth.double().numpy()[..., None]  # camera frame
    world = (points - w2c[:3, 3]) @ w2c[:3, :3]  # R^T (x - t)
    near = np.linalg.norm(world - head_center, axis=-1) < HEAD_RADIUS_M
    return torch.from_numpy(near & (depth.numpy() > 0))


def head_region(alpha: torch.Tensor, depth: torch.Tensor, w2c: np.ndarray, K: np.ndarray, head_center: np.ndarray) -> torch.Tensor:
    """[S, S] bool: a view's solid pixels (alpha [S, S] > SOLID_ALPHA) whose surface (z-depth [S, S])
    lies near the head (:func:`near_head`): where realism is scored, for the truth or a render."""
    return (alpha > SOLID_ALPHA) & near_head(depth, w2c, K, head_center)


def _render(g, viewmats: np.ndarray, K: np.ndarray, size: int, backend: str):
    from volume_cli.render import render

    return render(g, viewmats.astype(np.float32), np.repeat(K[None], len(viewmats), 0).astype(np.float32), size, size, backend=backend)


def _pair_batch(fc, image: np.ndarray, K_in: np.ndarray, rng: np.random.Generator):
    """The jittered partner of a framed crop, as a FramedCrop (same moment, turned camera, noise)."""
    from volume_cli.framing import FramedCrop
    from volume_cli.train.data import PAIR_NOISE_STD, jittered_camera, valid_mask

    cam2 = jittered_camera(fc.cam, rng)
    crop2 = camera.warp_crop(image, K_in, cam2).astype(np.float32) / 255.0
    crop2 = np.clip(crop2 + rng.normal(0.0, PAIR_NOISE_STD, crop2.shape), 0, 1)
    crop2 = (crop2 * 255.0 + 0.5).astype(np.uint8)
    landmarks2 = fc.landmarks @ (cam2.R @ fc.cam.R.T).T  # the same face, seen from the turned camera
    return FramedCrop(cam=cam2, crop=crop2, valid=valid_mask(image.shape[:2], K_in, cam2),
                      landmarks=landmarks2, head_center=fc.head_center)


def jitter_partner(sample: dict, fc):
    """The sample's same-moment jitter partner of its framed crop ``fc`` (:func:`_pair_batch`), drawn
    from the sample's seed, so every caller scores the same pair."""
    return _pair_batch(fc, sample["input_image"], sample["input_K"], np.random.default_rng([0xE7A1, int(sample["seed"])]))


def _into_first_frame(crop2: np.ndarray, cam1: camera.VirtualCamera, cam2: camera.VirtualCamera) -> np.ndarray:
    """crop2 [S, S, 3] resampled into cam1's image (pure rotation about the shared centre)."""
    H = cam1.K @ cam1.R @ cam2.R.T @ np.linalg.inv(cam2.K)  # crop2 pixel -> crop1 pixel
    return cv2.warpPerspective(crop2, camera.homography_for_opencv(H), (cam1.size, cam1.size), flags=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class PredictedViews:
    """One predictor on a sample's crop and its jitter partner, rendered as ``volume evaluate``
    scores them (float32, CPU)."""

    gaussians: Gaussians  # the crop's prediction [N, ...], crop-camera frame, before scale correction
    rgb: torch.Tensor  # [1 + V, S, S, 3] the input view, then the V orbit views after scale correction
    alpha: torch.Tensor  # [1 + V, S, S]
    depth: torch.Tensor  # [1 + V, S, S]
    pair_rgb: torch.Tensor  # [V, S, S, 3] the partner's prediction from the same orbit views
    pair_alpha: torch.Tensor  # [V, S, S]
    pair_depth: torch.Tensor  # [V, S, S]
    scale: float  # the least-squares scale correction (see the module docstring)
    seconds: float  # the crop's prediction alone


def predicted_views(predictor: Predictor, fc, fc2, w2cs: list[np.ndarray], true_depth: np.ndarray, true_alpha: np.ndarray,
                    backend: str = "auto") -> PredictedViews:
    """Predict the framed crop ``fc`` and its partner ``fc2`` (a head-prior predictor gets them as two
    frames of a clip) and render both from ``w2cs`` (world-to-camera [4, 4]: the crop camera, then
    the orbit views), the scale correction fitted on the input view's truth (true_depth, true_alpha
    [S, S])."""
    from volume_cli.pipeline import crop_batch

    size = fc.cam.size
    t0 = time.perf_counter()
    batch1, batch2 = crop_batch([fc], "cpu"), crop_batch([fc2], "cpu")
    if getattr(predictor, "use_head", False):
        _as_clip(batch1, batch2, fc, fc2)
    g1 = predictor.predict(batch1)[0]
    seconds = time.perf_counter() - t0
    g2 = predictor.predict(batch2)[0]
    views1 = np.stack([w @ np.linalg.inv(_w2c(fc.cam.R)) for w in w2cs])
    views2 = np.stack([w @ np.linalg.inv(_w2c(fc2.cam.R)) for w in w2cs[1:]])
    first = _render(g1, views1[:1], fc.cam.K, size, backend)
    scale = scale_correction(first.depth[0].float().cpu(), first.alpha[0].float().cpu(),
                             torch.from_numpy(true_depth), torch.from_numpy(true_alpha))
    # Both crop frames share the camera centre: the same s scales both predictions about it.
    r1 = _render(scaled_about_camera(g1.to("cpu"), scale), views1[1:], fc.cam.K, size, backend)
    r2 = _render(scaled_about_camera(g2.to("cpu"), scale), views2, fc.cam.K, size, backend)
    return PredictedViews(
        gaussians=g1,
        rgb=torch.cat([first.rgb.float().cpu(), r1.rgb.float().cpu()]),
        alpha=torch.cat([first.alpha.float().cpu(), r1.alpha.float().cpu()]),
        depth=torch.cat([first.depth.float().cpu(), r1.depth.float().cpu()]),
        pair_rgb=r2.rgb.float().cpu(), pair_alpha=r2.alpha.float().cpu(), pair_depth=r2.depth.float().cpu(),
        scale=float(scale), seconds=seconds,
    )


def evaluate_sample(sample: dict, predictors: dict[str, Predictor], finder, *, yaws=DEFAULT_YAWS,
                    backend: str = "auto") -> dict | None:
    """Metrics of every predictor on one sample (``return_scene=True``), or None without a face."""
    from volume_cli.framing import crop_of_still

    size = sample["crop"].shape[0]
    image, K_in = sample["input_image"], sample["input_K"]
    fc = crop_of_still(image, K_in, finder, size)
    if fc is None:
        return None
    fc2 = jitter_partner(sample, fc)
    head = sample["head_center"]
    w2cs = [_w2c(fc.cam.R)] + [orbit_view(fc.cam, head, y) for y in yaws]
    gt_rgb, gt_alpha, gt_depth = ground_truth_views(sample, w2cs, fc.cam.K, size)
    gt_rgb_t, gt_alpha_t = torch.from_numpy(gt_rgb), torch.from_numpy(gt_alpha)
    gt_head = [head_region(gt_alpha_t[k], torch.from_numpy(gt_depth[k]), w2cs[k], fc.cam.K, head) for k in range(len(w2cs))]
    crop_t = torch.from_numpy(fc.crop).float() / 255.0
    head_mask = (gt_alpha_t[0] > SOLID_ALPHA) & torch.from_numpy(fc.valid)
    original_mask = mask_in_original(head_mask.numpy(), K_in, fc.cam, image.shape[1], image.shape[0]) & (
        sample["input_alpha"] > SOLID_ALPHA * 255)
    second = torch.from_numpy(_into_first_frame(fc2.crop, fc.cam, fc2.cam)).float() / 255.0
    # Crop-1 pixels whose crop-2 source lies inside crop 2 and inside the input frame.
    second_valid = _into_first_frame(fc2.valid.astype(np.uint8) * 255, fc.cam, fc2.cam) > 250
    input_mask = head_mask & torch.from_numpy(second_valid)
    input_mad = float((crop_t - second).abs().mean(-1)[input_mask].mean()) if bool(input_mask.any()) else math.nan

    out = {"seed": int(sample["seed"]), "mask_pixels": int(head_mask.sum()), "input_mad": input_mad, "predictors": {}}
    for name, predictor in predictors.items():
        v = predicted_views(predictor, fc, fc2, w2cs, gt_depth[0], gt_alpha[0], backend)
        rgb1, a1, depth1, rgb2, a2, depth2 = v.rgb, v.alpha, v.depth, v.pair_rgb, v.pair_alpha, v.pair_depth
        in_original = score_in_original(v.gaussians, fc.cam, image, K_in, original_mask, backend)
        # Each novel view's predicted head region, and the union with the true one that it is scored in.
        pred_head1 = [None] + [head_region(a1[k], depth1[k], w2cs[k], fc.cam.K, head) for k in range(1, len(w2cs))]
        unions = [head_mask] + [gt_head[k] | pred_head1[k] for k in range(1, len(w2cs))]
        # LPIPS of the input view against the crop and of each novel view against the truth, one batch.
        lpips = masked_lpips(rgb1, torch.cat([crop_t[None], gt_rgb_t[1:]]), torch.stack(unions))
        row = {
            "authenticity_lpips": lpips[0],
            "authenticity_psnr": psnr(rgb1[0], crop_t, head_mask),
            "authenticity_ssim": ssim(rgb1[0], crop_t, head_mask),
            "original_authenticity_psnr": in_original.psnr_db,
            "original_authenticity_ssim": in_original.ssim,
            "seconds_per_frame": v.seconds,
            "scale": v.scale,
            "realism": {},
        }
        mads = []
        for k, yaw in enumerate(yaws, start=1):
            pred_head2 = head_region(a2[k - 1], depth2[k - 1], w2cs[k], fc.cam.K, head)
            union = unions[k]
            row["realism"][f"{yaw:+.0f}"] = {"psnr": psnr(rgb1[k], gt_rgb_t[k], union), "ssim": ssim(rgb1[k], gt_rgb_t[k], union),
                                             "lpips": lpips[k]}
            both = pred_head1[k] | pred_head2
            if bool(both.any()):
                mads.append(float((rgb1[k].clamp(0, 1) - rgb2[k - 1].clamp(0, 1)).abs().mean(-1)[both].mean()))
        row["stability_mad"] = float(np.mean(mads)) if mads else math.nan
        row["stability_ratio"] = row["stability_mad"] / input_mad if input_mad > 0 else math.nan
        out["predictors"][name] = row
    return out


def _as_clip(batch1, batch2, fc, fc2) -> None:
    """Give a head-prior predictor the pair as convert gives it two frames of a clip: one identity
    for both, the second frame warm-started from the first, one head texture."""
    from volume_cli.head.model import load_head_model
    from volume_cli.head.track import HeadTrack
    from volume_cli.predictors.geometric import mesh_depth_rasterizer

    head = HeadTrack(load_head_model(), mesh_depth_rasterizer(), clip=True)
    head.fit_identity([fc.landmarks, fc2.landmarks])
    for batch, f in ((batch1, fc), (batch2, fc2)):
        batch.head_priors = [head.prior(f.landmarks, f.cam.K, f.cam.size)[0]]
        batch.head_texture = head.texture


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarise(rows: list[dict], names: list[str], yaws) -> dict:
    """Means over evaluated samples, per predictor."""
    out = {}
    for name in names:
        per = [r["predictors"][name] for r in rows]
        realism = {f"{y:+.0f}": {m: _mean([p["realism"][f"{y:+.0f}"][m] for p in per]) for m in ("psnr", "ssim", "lpips")} for y in yaws}
        out[name] = {
            "authenticity_psnr": _mean([p["authenticity_psnr"] for p in per]),
            "authenticity_ssim": _mean([p["authenticity_ssim"] for p in per]),
            "original_authenticity_psnr": _mean([p["original_authenticity_psnr"] for p in per]),
            "original_authenticity_ssim": _mean([p["original_authenticity_ssim"] for p in per]),
            "realism": realism,
            "realism_psnr": _mean([v["psnr"] for v in realism.values()]),
            "realism_ssim": _mean([v["ssim"] for v in realism.values()]),
            "realism_lpips": _mean([v["lpips"] for v in realism.values()]),
            "authenticity_lpips": _mean([p["authenticity_lpips"] for p in per]),
            "stability_mad": _mean([p["stability_mad"] for p in per]),
            "stability_ratio": _mean([p["stability_ratio"] for p in per]),
            "seconds_per_frame": _mean([p["seconds_per_frame"] for p in per]),
            "scale_error": _mean([abs(math.log(p["scale"])) for p in per]),
        }
    return out


def evaluate_synthetic(predictors: dict[str, Predictor], *, count: int = 20, size: int = 256, run_seed: int | None = None,
                       yaws=DEFAULT_YAWS, backend: str = "auto", progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate ``predictors`` (name -> Predictor) on ``count`` held-out synthetic samples.
    Returns {"predictors": {name: means}, "samples": [per-sample rows], "evaluated", "no_face", ...}."""
    from volume_cli.face import FaceFinder
    from volume_cli.synth.sample import generate_sample, sample_seed
    from volume_cli.train.loop import EVAL_RUN_SEED

    run_seed = EVAL_RUN_SEED if run_seed is None else run_seed
    rows, no_face = [], []
    with FaceFinder(video=False) as finder:
        for i in range(count):
            seed = sample_seed(run_seed, i)
            sample = generate_sample(seed, size=size, views=1, temporal=False, return_scene=True)
            row = evaluate_sample(sample, predictors, finder, yaws=yaws, backend=backend)
            if row is None:
                no_face.append(seed)
            else:
                rows.append(row)
            if progress:
                progress(i + 1)
    names = list(predictors)
    return {
        "run_seed": run_seed, "size": size, "yaws": list(yaws), "requested": count, "evaluated": len(rows),
        "no_face": len(no_face), "no_face_seeds": no_face,
        "predictors": summarise(rows, names, yaws) if rows else {n: None for n in names},
        "input_mad": _mean([r["input_mad"] for r in rows]),
        "samples": rows,
    }
