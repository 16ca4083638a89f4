"""Geometric with the TRUE input-view depth in place of its proxy depth (and in two rows the truth's solid pixels in place of
its person segmentation) (wherever the truth has
a surface; divided by the scale correction so it sits at the predictor's own distance), all else
as the predictor does it: how much of the seen surface's loss from the side is depth."""
import json, sys
import numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from warp_oracle_probe import *  # the protocol's imports and the seen / warp helpers
import volume_cli.predictors.geometric as G

count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
geometric = load_predictor(PredictorName.geometric, "cpu")
original_proxy = G.proxy_depth
inject = {"depth": None}

def patched(landmarks, K, rays, prior=None):
    d = original_proxy(landmarks, K, rays, prior)
    if inject["depth"] is not None:
        t = inject["depth"]
        d = np.where(t > 0, t, d)
        inject["depth"] = None  # the first crop only; its jitter partner keeps its own
    return d

G.proxy_depth = patched
yaws = syn.DEFAULT_YAWS
no_hidden = load_predictor(PredictorName.geometric, "cpu"); no_hidden._hidden_slots = 0
no_fit = load_predictor(PredictorName.geometric, "cpu"); no_fit.colour_steps = 0
true_alpha = load_predictor(PredictorName.geometric, "cpu")
true_person_only = load_predictor(PredictorName.geometric, "cpu")
true_alpha_no_fit = load_predictor(PredictorName.geometric, "cpu"); true_alpha_no_fit.colour_steps = 0
inject_alpha = {"alpha": None}
for p in (true_alpha, true_alpha_no_fit, true_person_only):
    segmentation = p.person_mask

    def person_mask(crop, segmentation=segmentation):  # the truth's solid pixels as the person, first crop only
        a = inject_alpha["alpha"]
        inject_alpha["alpha"] = None
        return segmentation(crop) if a is None else a
    p.person_mask = person_mask
variants = {"geometric_true_depth": geometric, "true_depth_no_hidden_side": no_hidden, "true_depth_no_colour_fit": no_fit,
            "true_depth_true_person": true_alpha, "true_depth_true_person_no_colour_fit": true_alpha_no_fit,
            "true_person_own_depth": true_person_only}
names = ("geometric",) + tuple(variants)
acc = {n: {f"{y:+.0f}": [0.0, 0] for y in yaws} for n in names}
whole = {n: {f"{y:+.0f}": [0.0, 0] for y in yaws} for n in names}
with FaceFinder(video=False) as finder:
    for i in range(count):
        sample = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=256, views=1, temporal=False, return_scene=True)
        size = 256
        fc = crop_of_still(sample["input_image"], sample["input_K"], finder, size)
        if fc is None:
            continue
        head = sample["head_center"]
        w2cs = [syn._w2c(fc.cam.R)] + [syn.orbit_view(fc.cam, head, y) for y in yaws]
        gt_rgb, gt_alpha, gt_depth = syn.ground_truth_views(sample, w2cs, fc.cam.K, size)
        fc2 = syn.jitter_partner(sample, fc)
        v = syn.predicted_views(geometric, fc, fc2, w2cs, gt_depth[0], gt_alpha[0])
        views = {"geometric": v}
        for vname, pred in variants.items():
            inject["depth"] = None if vname == "true_person_own_depth" else np.where(
                (gt_alpha[0] > 0.5) & (gt_depth[0] > 0), gt_depth[0].astype(np.float64) / v.scale, 0.0)
            inject_alpha["alpha"] = np.where((gt_alpha[0] > 0.5) & (gt_depth[0] > 0), 1.0, 0.0) if "person" in vname else None
            views[vname] = syn.predicted_views(pred, fc, fc2, w2cs, gt_depth[0], gt_alpha[0])
        vt = views["geometric_true_depth"]
        d0 = gt_depth[0].astype(np.float64)
        for k, yaw in enumerate(yaws, start=1):
            dk = gt_depth[k].astype(np.float64)
            gt_head = syn.head_region(torch.from_numpy(gt_alpha[k]), torch.from_numpy(gt_depth[k]), w2cs[k], fc.cam.K, head)
            in_frame = seen_by_input(dk, w2cs[k], w2cs[0], fc.cam.K, d0, fc.valid)
            for name, vv in views.items():
                union = (gt_head | syn.head_region(vv.alpha[k], vv.depth[k], w2cs[k], fc.cam.K, head)).numpy()
                err = ((vv.rgb[k].clamp(0, 1).numpy() - gt_rgb[k]) ** 2).mean(-1)
                m = union & (gt_alpha[k] > SOLID_ALPHA) & in_frame
                a = acc[name][f"{yaw:+.0f}"]; a[0] += float(err[m].sum()); a[1] += int(m.sum())
                a = whole[name][f"{yaw:+.0f}"]; a[0] += float(err[union].sum()); a[1] += int(union.sum())
        print(f"sample {i} done scale {v.scale:.3f} {vt.scale:.3f}", file=sys.stderr, flush=True)
fmt = lambda A: {n: {y: round(float(10 * np.log10(c / e)), 2) for y, (e, c) in per.items()} for n, per in A.items()}
print(json.dumps({"seen_in_frame": fmt(acc), "whole_scored_region_pooled": fmt(whole)}, indent=1))
