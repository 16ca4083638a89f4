"""The ceiling of any predictor that colours what the input camera saw with the input view's colours:
each novel view's SEEN true surface (as in seen_unseen_probe.py) coloured by warping the TRUE input
view through the TRUE geometry (bilinear), scored against the true novel view on the same pixels as
geometric's prediction. What the warp misses is view-dependent shading (speculars, Fresnel, rim sheen)
and resampling; what geometric misses beyond it is geometry and splat rendering.
Usage: python warp_oracle_probe.py [COUNT]"""
import json, sys
from pathlib import Path
from typing import NamedTuple

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


class Person(NamedTuple):
    """One of volume evaluate's held-out people: its sample, framed crop, cameras (world-to-camera
    [4, 4]: the crop camera, then the orbit views) and the truth seen from them ([V, S, S, ...])."""
    index: int
    sample: dict
    fc: object
    w2cs: list
    gt_rgb: np.ndarray
    gt_alpha: np.ndarray
    gt_depth: np.ndarray

    @property
    def head(self):
        return self.sample["head_center"]


def held_out_people(count, yaws=syn.DEFAULT_YAWS, indices=None):
    """volume evaluate's synthetic protocol (its seeds, crops and orbit views), person by person;
    people without a face are skipped. ``indices`` picks some of them instead of the first count."""
    with FaceFinder(video=False) as finder:
        for i in range(count) if indices is None else indices:
            sample = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=256, views=1, temporal=False, return_scene=True)
            size = sample["crop"].shape[0]
            fc = crop_of_still(sample["input_image"], sample["input_K"], finder, size)
            if fc is None:
                continue
            w2cs = [syn._w2c(fc.cam.R)] + [syn.orbit_view(fc.cam, sample["head_center"], y) for y in yaws]
            yield Person(i, sample, fc, w2cs, *syn.ground_truth_views(sample, w2cs, fc.cam.K, size))
            print(f"sample {i} done", file=sys.stderr, flush=True)


def scored_region(person, k, alpha, depth):
    """[S, S] bool: where view k is scored, the union of the true and the rendered head regions."""
    fc, w2c = person.fc, person.w2cs[k]
    true_head = syn.head_region(torch.from_numpy(person.gt_alpha[k]), torch.from_numpy(person.gt_depth[k]), w2c, fc.cam.K, person.head)
    return (true_head | syn.head_region(alpha, depth, w2c, fc.cam.K, person.head)).numpy()


def yaw_table(names, yaws):
    """Pooled squared error and pixel count per name and yaw: {name: {"+40": [error, pixels]}}."""
    return {n: {f"{y:+.0f}": [0.0, 0] for y in yaws} for n in names}


def add_error(cell, err, mask):
    cell[0] += float(err[mask].sum())
    cell[1] += int(mask.sum())


def pooled_psnr(cell):
    error, pixels = cell
    return round(float(10 * np.log10(pixels / error)), 2) if error > 0 else None



def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    geometric = load_predictor(PredictorName.geometric, "cpu")
    yaws = syn.DEFAULT_YAWS
    names = ("warp_true_geometry", "warp_true_geometry_nearest", "geometric", "warp_same_yaw0_check")
    classes = ("seen_in_frame", "seen_in_crop_outside_frame")
    acc = {c: yaw_table(names, yaws) for c in classes}
    for p in held_out_people(count, yaws):
        fc, w2cs, gt_rgb, gt_alpha, gt_depth = p.fc, p.w2cs, p.gt_rgb, p.gt_alpha, p.gt_depth
        size = fc.cam.size
        v = syn.predicted_views(geometric, fc, syn.jitter_partner(p.sample, fc), w2cs, gt_depth[0], gt_alpha[0])
        d0 = gt_depth[0].astype(np.float64)
        for k, yaw in enumerate(yaws, start=1):
            dk = gt_depth[k].astype(np.float64)
            seen = seen_by_input(dk, w2cs[k], w2cs[0], fc.cam.K, d0)
            in_frame = seen_by_input(dk, w2cs[k], w2cs[0], fc.cam.K, d0, fc.valid)
            base_m = scored_region(p, k, v.alpha[k], v.depth[k]) & (gt_alpha[k] > SOLID_ALPHA)
            u, vv, _ = input_pixel_of(dk, w2cs[k], w2cs[0], fc.cam.K)
            warped = bilinear(gt_rgb[0].astype(np.float64), u, vv)
            nearest = gt_rgb[0][np.clip(np.floor(vv).astype(int), 0, size - 1), np.clip(np.floor(u).astype(int), 0, size - 1)]
            for name, img in (("warp_true_geometry", warped), ("warp_true_geometry_nearest", nearest),
                              ("geometric", v.rgb[k].clamp(0, 1).numpy())):
                err = ((img - gt_rgb[k]) ** 2).mean(-1)
                for c, m in (("seen_in_frame", base_m & in_frame), ("seen_in_crop_outside_frame", base_m & seen & ~in_frame)):
                    add_error(acc[c][name][f"{yaw:+.0f}"], err, m)
            # sanity: warping view 0 into itself must be near-lossless
            u0, v0, _ = input_pixel_of(d0, w2cs[0], w2cs[0], fc.cam.K)
            m0 = (gt_alpha[0] > SOLID_ALPHA) & (d0 > 0)
            err0 = ((bilinear(gt_rgb[0].astype(np.float64), u0, v0) - gt_rgb[0]) ** 2).mean(-1)
            add_error(acc["seen_in_frame"]["warp_same_yaw0_check"][f"{yaw:+.0f}"], err0, m0)
    out = {c: {n: {y: {"psnr": pooled_psnr(cell), "pixels": cell[1]} for y, cell in per.items()} for n, per in by.items()}
           for c, by in acc.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
