"""How much a perfect front-depth SHAPE would give: volume evaluate's synthetic protocol with a
third predictor, stabpd whose front layer is put at the true depth's shape (the truth plus the
prediction's mean offset over the solid pixels, so the head stays where convert's framing put it)
wherever the input view's truth is solid, each backing splat moved with its front splat. Only the
input crop's prediction is changed (not the jittered partner's), so that predictor's jitter means
nothing. Usage: python front_oracle_probe.py WEIGHTS [COUNT]"""
import json, sys
from pathlib import Path

import numpy as np
import torch

import volume_cli.evaluate.synthetic as syn
from volume_cli.gaussians import Gaussians
from volume_cli.predictors import PredictorName, load_predictor

truth = {}
_ground_truth_views = syn.ground_truth_views


def stashing_ground_truth(sample, w2cs, K, size):
    rgb, alpha, depth = _ground_truth_views(sample, w2cs, K, size)
    truth.update(depth=torch.from_numpy(depth[0]).float(), alpha=torch.from_numpy(alpha[0]).float(), fresh=True)
    return rgb, alpha, depth


syn.ground_truth_views = stashing_ground_truth

weights = Path(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else 16
plain = load_predictor(PredictorName.unet, "cpu", weights)
oracle = load_predictor(PredictorName.unet, "cpu", weights)
model = oracle.model
original = model.gaussians_from


def with_true_front(raw, images, K, distance, prior):
    g = original(raw, images, K, distance, prior)  # [1, 2 S S, ...]
    if not truth.get("fresh"):
        return g
    truth["fresh"] = False
    s = images.shape[-1]
    n = s * s
    z = g.means[0, :n, 2]
    z_true, solid = truth["depth"].reshape(-1), (truth["alpha"].reshape(-1) > 0.5) & (truth["depth"].reshape(-1) > 0)
    offset = (z - z_true)[solid].mean()
    z_new = torch.where(solid, z_true + offset, z)
    factor = z_new / z
    means, log_scales = g.means.clone(), g.log_scales.clone()
    means[0, :n] *= factor[:, None]
    log_scales[0, :n] += torch.log(factor)[:, None]  # sized at their own depth, as the network's are
    z_back = g.means[0, n:, 2]
    back_factor = (z_back + z_new - z) / z_back  # the backing follows its front splat
    means[0, n:] *= back_factor[:, None]
    log_scales[0, n:] += torch.log(back_factor)[:, None]
    return Gaussians(means=means, quats=g.quats, log_scales=log_scales, opacity_logits=g.opacity_logits, sh=g.sh)


model.gaussians_from = with_true_front
predictors = {"geometric": load_predictor(PredictorName.geometric, "cpu"), "unet": plain, "unet_true_front_shape": oracle}
result = syn.evaluate_synthetic(predictors, count=count)
result.pop("samples")
print(json.dumps(result, indent=1))
