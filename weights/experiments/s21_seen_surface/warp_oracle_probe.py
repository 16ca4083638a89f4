"""The ceiling of any predictor that colours what the input camera saw with the input view's colours:
each novel view's SEEN true surface (as in seen_unseen_probe.py) coloured by warping the TRUE input
view through the TRUE geometry (bilinear), scored against the true novel view on the same pixels as
geometric's prediction. What the warp misses is view-dependent shading (speculars, Fresnel, rim sheen)
and resampling; what geometric misses beyond it is geometry and splat rendering.
Usage: python warp_oracle_probe.py [COUNT]"""
import json, sys
from pathlib import Path

import numpy as np
import torch

import volume_cli.evaluate.synthetic as syn
from volume_cli import camera
from volume_cli.face import FaceFinder
from volume_cli.framing import crop_of_still
from volume_cli.predictors import PredictorName, load_predictor
from volume_cli.synth.sample import generate_sample, sample_seed
from volume_cli.train.loop import EVAL_RUN_SEED
from volume_cli.train.losses import SOLID_ALPHA

SEEN_TOLERANCE_M = 0.01


def input_pixel_of(depth_k, w2c_k, w2c_0, K):
    s = depth_k.shape[-1]
    points = camera.image_rays(K, s, s) * depth_k[..., None]
    world = (points - w2c_k[:3, 3]) @ w2c_k[:3, :3]
    in0 = world @ w2c_0[:3, :3].T + w2c_0[:3, 3]
    z = in0[..., 2]
    uv = in0 @ K.T
    return uv[..., 0] / np.maximum(z, 1e-9), uv[..., 1] / np.maximum(z, 1e-9), z


def seen_by_input(depth_k, w2c_k, w2c_0, K, depth_0, valid_0=None):
    """[S, S] bool: view k's true surface points the input camera sees (depth test), and with
    valid_0 (the crop's pixels inside the input frame) only those it saw inside the frame."""
    s = depth_k.shape[-1]
    u, v, z = input_pixel_of(depth_k, w2c_k, w2c_0, K)
    iu, iv = np.floor(u).astype(int), np.floor(v).astype(int)
    inside = (z > 0) & (iu >= 0) & (iv >= 0) & (iu < s) & (iv < s)
    seen = np.zeros_like(inside)
    d0 = depth_0[np.clip(iv, 0, s - 1), np.clip(iu, 0, s - 1)]
    seen[inside] = (d0[inside] > 0) & (np.abs(d0[inside] - z[inside]) < SEEN_TOLERANCE_M)
    if valid_0 is not None:
        seen &= valid_0[np.clip(iv, 0, s - 1), np.clip(iu, 0, s - 1)]
    return seen & (depth_k > 0)


def bilinear(image, u, v):
    """image [S, S, 3] sampled at continuous pixel coords (u, v) (centres at +0.5)."""
    s = image.shape[0]
    x, y = np.clip(u - 0.5, 0, s - 1.001), np.clip(v - 0.5, 0, s - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    return ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x0 + 1]
            + (1 - fx) * fy * image[y0 + 1, x0] + fx * fy * image[y0 + 1, x0 + 1])



def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    geometric = load_predictor(PredictorName.geometric, "cpu")
    yaws = syn.DEFAULT_YAWS
    names = ("warp_true_geometry", "warp_true_geometry_nearest", "geometric", "warp_same_yaw0_check")
    classes = ("seen_in_frame", "seen_in_crop_outside_frame")
    acc = {c: {n: {f"{y:+.0f}": [0.0, 0] for y in yaws} for n in names} for c in classes}
    with FaceFinder(video=False) as finder:
        for i in range(count):
            sample = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=256, views=1, temporal=False, return_scene=True)
            size = sample["crop"].shape[0]
            fc = crop_of_still(sample["input_image"], sample["input_K"], finder, size)
            if fc is None:
                continue
            head = sample["head_center"]
            w2cs = [syn._w2c(fc.cam.R)] + [syn.orbit_view(fc.cam, head, y) for y in yaws]
            gt_rgb, gt_alpha, gt_depth = syn.ground_truth_views(sample, w2cs, fc.cam.K, size)
            fc2 = syn.jitter_partner(sample, fc)
            v = syn.predicted_views(geometric, fc, fc2, w2cs, gt_depth[0], gt_alpha[0])
            d0 = gt_depth[0].astype(np.float64)
            for k, yaw in enumerate(yaws, start=1):
                dk = gt_depth[k].astype(np.float64)
                gt_head = syn.head_region(torch.from_numpy(gt_alpha[k]), torch.from_numpy(gt_depth[k]), w2cs[k], fc.cam.K, head)
                union = (gt_head | syn.head_region(v.alpha[k], v.depth[k], w2cs[k], fc.cam.K, head)).numpy()
                seen = seen_by_input(dk, w2cs[k], w2cs[0], fc.cam.K, d0)
                in_frame = seen_by_input(dk, w2cs[k], w2cs[0], fc.cam.K, d0, fc.valid)
                base_m = union & (gt_alpha[k] > SOLID_ALPHA)
                u, vv, _ = input_pixel_of(dk, w2cs[k], w2cs[0], fc.cam.K)
                warped = bilinear(gt_rgb[0].astype(np.float64), u, vv)
                nearest = gt_rgb[0][np.clip(np.floor(vv).astype(int), 0, size - 1), np.clip(np.floor(u).astype(int), 0, size - 1)]
                for name, img in (("warp_true_geometry", warped), ("warp_true_geometry_nearest", nearest),
                                  ("geometric", v.rgb[k].clamp(0, 1).numpy())):
                    err = ((img - gt_rgb[k]) ** 2).mean(-1)
                    for c, m in (("seen_in_frame", base_m & in_frame), ("seen_in_crop_outside_frame", base_m & seen & ~in_frame)):
                        a = acc[c][name][f"{yaw:+.0f}"]; a[0] += float(err[m].sum()); a[1] += int(m.sum())
                # sanity: warping view 0 into itself must be near-lossless
                u0, v0, _ = input_pixel_of(d0, w2cs[0], w2cs[0], fc.cam.K)
                m0 = (gt_alpha[0] > SOLID_ALPHA) & (d0 > 0)
                err0 = ((bilinear(gt_rgb[0].astype(np.float64), u0, v0) - gt_rgb[0]) ** 2).mean(-1)
                a = acc["seen_in_frame"]["warp_same_yaw0_check"][f"{yaw:+.0f}"]; a[0] += float(err0[m0].sum()); a[1] += int(m0.sum())
            print(f"sample {i} done", file=sys.stderr, flush=True)
    out = {c: {n: {y: {"psnr": round(float(10 * np.log10(cnt / e)), 2) if e > 0 else None, "pixels": cnt} for y, (e, cnt) in per.items()}
                 for n, per in by.items()} for c, by in acc.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
