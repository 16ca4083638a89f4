"""Where the novel-view error is: volume evaluate's synthetic protocol (same people, crops, scale
correction and head masks), each novel view's scored pixels split by whether the true surface seen
there was SEEN by the input camera (it projects into the input view within 1 cm of the true
input-view depth) or UNSEEN (disoccluded: the far cheek, behind the ear, under the jaw), with
each class's share of the squared error and its own PSNR. Usage: python seen_unseen_probe.py
WEIGHTS [COUNT] [--variants]

With --variants, two more rows: the same network without its hidden-side splats, and without its
back layer (the backing's opacity set to zero), to see what each costs or spoils from the side."""
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


def seen_by_input(depth_k, w2c_k, w2c_0, K, depth_0):
    """[S, S] bool: view k's true surface points that the input camera sees (depth test)."""
    s = depth_k.shape[-1]
    points = camera.image_rays(K, s, s) * depth_k[..., None]
    world = (points - w2c_k[:3, 3]) @ w2c_k[:3, :3]
    in0 = world @ w2c_0[:3, :3].T + w2c_0[:3, 3]
    z = in0[..., 2]
    uv = in0 @ K.T
    u, v = uv[..., 0] / np.maximum(z, 1e-9), uv[..., 1] / np.maximum(z, 1e-9)
    iu, iv = np.floor(u).astype(int), np.floor(v).astype(int)
    inside = (z > 0) & (iu >= 0) & (iv >= 0) & (iu < s) & (iv < s)
    seen = np.zeros_like(inside)
    d0 = depth_0[np.clip(iv, 0, s - 1), np.clip(iu, 0, s - 1)]
    seen[inside] = (d0[inside] > 0) & (np.abs(d0[inside] - z[inside]) < SEEN_TOLERANCE_M)
    return seen & (depth_k > 0)


weights = Path(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 16
predictors = {"geometric": load_predictor(PredictorName.geometric, "cpu"), "unet": load_predictor(PredictorName.unet, "cpu", weights)}
if "--variants" in sys.argv:
    from volume_cli.gaussians import Gaussians

    no_hidden = load_predictor(PredictorName.unet, "cpu", weights)
    no_hidden.hidden_side = False
    no_back = load_predictor(PredictorName.unet, "cpu", weights)
    original = no_back.model.gaussians_from

    def without_back_layer(raw, images, K, distance, prior):
        g = original(raw, images, K, distance, prior)  # [1, 2 S S, ...]: the back layer is the second half
        n = images.shape[-1] ** 2
        logits = g.opacity_logits.clone()
        logits[:, n:] = -30.0
        return Gaussians(means=g.means, quats=g.quats, log_scales=g.log_scales, opacity_logits=logits, sh=g.sh)

    no_back.model.gaussians_from = without_back_layer
    predictors |= {"unet_no_hidden_side": no_hidden, "unet_no_back_layer": no_back}
yaws = syn.DEFAULT_YAWS
acc = {n: {f"{y:+.0f}": {"seen": [0.0, 0], "unseen": [0.0, 0], "not_person": [0.0, 0]} for y in yaws} for n in predictors}
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
        fc2 = syn.jitter_partner(sample, fc)  # as volume evaluate pairs it: every prediction is the one it scores
        for name, predictor in predictors.items():
            v = syn.predicted_views(predictor, fc, fc2, w2cs, gt_depth[0], gt_alpha[0])
            for k, yaw in enumerate(yaws, start=1):
                gt_head = syn.head_region(torch.from_numpy(gt_alpha[k]), torch.from_numpy(gt_depth[k]), w2cs[k], fc.cam.K, head)
                union = (gt_head | syn.head_region(v.alpha[k], v.depth[k], w2cs[k], fc.cam.K, head)).numpy()
                err = ((v.rgb[k].clamp(0, 1).numpy() - gt_rgb[k]) ** 2).mean(-1)
                seen = seen_by_input(gt_depth[k].astype(np.float64), w2cs[k], w2cs[0], fc.cam.K, gt_depth[0].astype(np.float64))
                person = gt_alpha[k] > SOLID_ALPHA
                for cls, m in (("seen", union & person & seen), ("unseen", union & person & ~seen), ("not_person", union & ~person)):
                    a = acc[name][f"{yaw:+.0f}"][cls]
                    a[0] += float(err[m].sum()); a[1] += int(m.sum())
        print(f"sample {i} done", file=sys.stderr, flush=True)
out = {}
for name, per_yaw in acc.items():
    out[name] = {}
    for yaw, classes in per_yaw.items():
        total = sum(error for error, _ in classes.values())
        out[name][yaw] = {cls: {"pixels": n, "share_of_squared_error": round(e / total, 3),
                                "psnr": round(float(10 * np.log10(n / e)), 2) if e > 0 else None}
                          for cls, (e, n) in classes.items()}
print(json.dumps(out, indent=1))
