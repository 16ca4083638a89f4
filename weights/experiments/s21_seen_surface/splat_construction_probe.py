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
    acc = yaw_table(variants, yaws)
    for p in held_out_people(count, yaws):
        fc, w2cs, gt_rgb, gt_alpha, gt_depth = p.fc, p.w2cs, p.gt_rgb, p.gt_alpha, p.gt_depth
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
            r = syn._render(g, views, fc.cam.K, fc.cam.size, "auto")
            for k, yaw in enumerate(yaws, start=1):
                seen = seen_by_input(gt_depth[k].astype(np.float64), w2cs[k], w2cs[0], fc.cam.K, d0, fc.valid)
                m = scored_region(p, k, r.alpha[k - 1], r.depth[k - 1]) & (gt_alpha[k] > SOLID_ALPHA) & seen
                err = ((r.rgb[k - 1].clamp(0, 1).numpy() - gt_rgb[k]) ** 2).mean(-1)
                add_error(acc[name][f"{yaw:+.0f}"], err, m)
    print(json.dumps({n: {y: pooled_psnr(cell) for y, cell in per.items()} for n, per in acc.items()}, indent=1))

if __name__ == "__main__":
    main()
