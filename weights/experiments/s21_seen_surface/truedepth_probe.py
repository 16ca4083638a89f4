"""Geometric given parts of the truth, all else as the predictor does it: the TRUE input-view depth
in place of its proxy depth (wherever the truth is solid; divided by the scale correction so it
sits at the predictor's own distance) and/or the truth's solid pixels in place of its person
segmentation, with its hidden side or colour fit switched off in two rows. Scored on the
seen-in-frame pixels of the novel views and, pooled, on the whole scored region.
Usage: python truedepth_probe.py [COUNT]"""
import json, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from warp_oracle_probe import *  # the protocol's imports and helpers
import volume_cli.predictors.geometric as G

# The truth handed to the next prediction (the first crop of a pair; its jitter partner keeps
# its own estimates): "depth" [S, S] (0: keep the proxy), "person" [S, S] confidence, or None.
given = {"depth": None, "person": None}


def take(key):
    value, given[key] = given[key], None
    return value


def proxy_with_truth(landmarks, K, rays, prior=None, proxy=G.proxy_depth):
    depth, truth = proxy(landmarks, K, rays, prior), take("depth")
    return depth if truth is None else np.where(truth > 0, truth, depth)


G.proxy_depth = proxy_with_truth  # geometric calls it by its module's name


def geometric(*, hidden_side=True, colour_steps=G.COLOUR_STEPS):
    p = load_predictor(PredictorName.geometric, "cpu")
    p.colour_steps = colour_steps
    if not hidden_side:
        p._hidden_slots = 0
    segmentation = p.person_mask

    def person_mask(crop):
        truth = take("person")
        return segmentation(crop) if truth is None else truth
    p.person_mask = person_mask
    return p


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    yaws = syn.DEFAULT_YAWS
    plain = geometric()
    variants = {  # name: (predictor, true depth, true person)
        "geometric_true_depth": (plain, True, False),
        "true_depth_no_hidden_side": (geometric(hidden_side=False), True, False),
        "true_depth_no_colour_fit": (geometric(colour_steps=0), True, False),
        "true_depth_true_person": (plain, True, True),
        "true_depth_true_person_no_colour_fit": (geometric(colour_steps=0), True, True),
        "true_person_own_depth": (plain, False, True),
    }
    names = ("geometric",) + tuple(variants)
    seen_acc, whole_acc = yaw_table(names, yaws), yaw_table(names, yaws)
    for p in held_out_people(count, yaws):
        fc, w2cs, gt_rgb, gt_alpha, gt_depth = p.fc, p.w2cs, p.gt_rgb, p.gt_alpha, p.gt_depth
        fc2 = syn.jitter_partner(p.sample, fc)
        solid = (gt_alpha[0] > 0.5) & (gt_depth[0] > 0)
        views = {"geometric": syn.predicted_views(plain, fc, fc2, w2cs, gt_depth[0], gt_alpha[0])}
        scale = views["geometric"].scale
        for name, (predictor, true_depth, true_person) in variants.items():
            given["depth"] = np.where(solid, gt_depth[0].astype(np.float64) / scale, 0.0) if true_depth else None
            given["person"] = solid.astype(np.float64) if true_person else None
            views[name] = syn.predicted_views(predictor, fc, fc2, w2cs, gt_depth[0], gt_alpha[0])
        d0 = gt_depth[0].astype(np.float64)
        for k, yaw in enumerate(yaws, start=1):
            in_frame = seen_by_input(gt_depth[k].astype(np.float64), w2cs[k], w2cs[0], fc.cam.K, d0, fc.valid)
            for name, v in views.items():
                union = scored_region(p, k, v.alpha[k], v.depth[k])
                err = ((v.rgb[k].clamp(0, 1).numpy() - gt_rgb[k]) ** 2).mean(-1)
                add_error(seen_acc[name][f"{yaw:+.0f}"], err, union & (gt_alpha[k] > SOLID_ALPHA) & in_frame)
                add_error(whole_acc[name][f"{yaw:+.0f}"], err, union)
    table = lambda acc: {n: {y: pooled_psnr(cell) for y, cell in per.items()} for n, per in acc.items()}
    print(json.dumps({"seen_in_frame": table(seen_acc), "whole_scored_region_pooled": table(whole_acc)}, indent=1))


if __name__ == "__main__":
    main()
