"""The 2-4 dB that geometric's seen surface loses with the depth right, split: splats made
directly from the TRUE input-view depth (one surface-aligned disc a crop pixel, as geometric
shapes them), no prediction at all, in variants, scored on the seen-in-frame pixels of the novel
views as warp_oracle_probe.py scores them. Usage: python splat_construction_probe.py [COUNT]"""
import json, math, sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from warp_oracle_probe import *  # the protocol's imports and the seen / warp helpers
from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
from volume_cli.predictors import geometric as G
from volume_cli.predictors.geometric_kernels import surface_aligned


def splats(points, quats, log_scales, keep, colours):
    n = keep.size
    logit = math.log(0.99 / 0.01)
    return dict(means=torch.from_numpy(points.reshape(n, 3)).float(), quats=quats, log_scales=log_scales,
                opacity_logits=torch.where(torch.from_numpy(keep.reshape(n)), logit, -30.0).float(),
                sh=rgb_to_sh_dc(torch.from_numpy(colours.reshape(n, 3)).float())[:, None, :])


def construct(depth, K, keep, colours, sigma_px=G.PIXEL_SIGMA, backing=False):
    s = depth.shape[0]
    rays = camera.image_rays(K, s, s)
    d = np.where(depth > 0, depth, 1.0)
    points = rays * d[..., None]
    quats, log_scales = surface_aligned(points, K[0, 0], sigma_px)
    layers = [splats(points, quats, log_scales, keep, colours)]
    if backing:  # as geometric makes it: pushed back along the rays, widened, scaled with depth
        back_z = d + G.BACKING_BEHIND_M / rays[..., 2]
        grow = torch.from_numpy(np.log(back_z / d).reshape(-1, 1)).float()
        widen = torch.tensor([math.log(G.BACKING_SIGMA / sigma_px)] * 2 + [0.0])
        layers.append(splats(rays * back_z[..., None], quats.clone(), log_scales + widen + grow, keep, colours))
    return Gaussians(**{k: torch.cat([l[k] for l in layers]) for k in layers[0]})


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    yaws = syn.DEFAULT_YAWS
    variants = ("front_opaque_crop_colours", "front_opaque_true_colours", "front_and_backing_crop_colours",
                "front_sigma_0.5_crop_colours", "front_sigma_0.7_crop_colours")
    acc = {n: {f"{y:+.0f}": [0.0, 0] for y in yaws} for n in variants}
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
            d0 = gt_depth[0].astype(np.float64)
            keep = (gt_alpha[0] > 0.5) & (d0 > 0) & fc.valid
            crop = fc.crop.astype(np.float64) / 255.0
            views = np.stack([w @ np.linalg.inv(syn._w2c(fc.cam.R)) for w in w2cs[1:]])
            made = {
                "front_opaque_crop_colours": construct(d0, fc.cam.K, keep, crop),
                "front_opaque_true_colours": construct(d0, fc.cam.K, keep, gt_rgb[0].astype(np.float64)),
                "front_and_backing_crop_colours": construct(d0, fc.cam.K, keep, crop, backing=True),
                "front_sigma_0.5_crop_colours": construct(d0, fc.cam.K, keep, crop, sigma_px=0.5),
                "front_sigma_0.7_crop_colours": construct(d0, fc.cam.K, keep, crop, sigma_px=0.7),
            }
            for name, g in made.items():
                r = syn._render(g, views, fc.cam.K, size, "auto")
                for k, yaw in enumerate(yaws, start=1):
                    dk = gt_depth[k].astype(np.float64)
                    gt_head = syn.head_region(torch.from_numpy(gt_alpha[k]), torch.from_numpy(gt_depth[k]), w2cs[k], fc.cam.K, head)
                    union = (gt_head | syn.head_region(r.alpha[k - 1], r.depth[k - 1], w2cs[k], fc.cam.K, head)).numpy()
                    m = union & (gt_alpha[k] > SOLID_ALPHA) & seen_by_input(dk, w2cs[k], w2cs[0], fc.cam.K, d0, fc.valid)
                    err = ((r.rgb[k - 1].clamp(0, 1).numpy() - gt_rgb[k]) ** 2).mean(-1)
                    a = acc[name][f"{yaw:+.0f}"]; a[0] += float(err[m].sum()); a[1] += int(m.sum())
            print(f"sample {i} done", file=sys.stderr, flush=True)
    print(json.dumps({n: {y: round(float(10 * np.log10(c / e)), 2) for y, (e, c) in per.items()} for n, per in acc.items()}, indent=1))


if __name__ == "__main__":
    main()
