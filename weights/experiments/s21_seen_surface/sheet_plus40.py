"""Three held-out people at +40 deg: input truth, truth, geometric, the true-geometry warp, and
|error| x3 of the last two on the seen pixels (session 19's class: the crop camera's depth test,
so pixels outside the input frame count as seen here). Writes plus40_truth_geometric_warp.png."""
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from warp_oracle_probe import *  # the protocol's imports and helpers

geometric = load_predictor(PredictorName.geometric, "cpu")
yaws = syn.DEFAULT_YAWS
k = yaws.index(40.0) + 1
rows = []
for p in held_out_people(0, yaws, indices=(0, 3, 6)):
    fc, w2cs, gt_rgb, gt_alpha, gt_depth = p.fc, p.w2cs, p.gt_rgb, p.gt_alpha, p.gt_depth
    v = syn.predicted_views(geometric, fc, syn.jitter_partner(p.sample, fc), w2cs, gt_depth[0], gt_alpha[0])
    dk = gt_depth[k].astype(np.float64)
    seen = seen_by_input(dk, w2cs[k], w2cs[0], fc.cam.K, gt_depth[0].astype(np.float64))
    u, vv, _ = input_pixel_of(dk, w2cs[k], w2cs[0], fc.cam.K)
    warped = bilinear(gt_rgb[0].astype(np.float64), u, vv) * seen[..., None]
    pred = v.rgb[k].clamp(0, 1).numpy()
    err_g = np.abs(pred - gt_rgb[k]).mean(-1) * seen * 3
    err_w = np.abs(warped - gt_rgb[k]).mean(-1) * seen * 3
    grey = lambda e: np.repeat(np.clip(e, 0, 1)[..., None], 3, -1)
    rows.append(np.concatenate([gt_rgb[0], gt_rgb[k], pred, warped, grey(err_g), grey(err_w)], 1))
img = (np.concatenate(rows, 0) * 255).astype(np.uint8)
cv2.imwrite("plus40_truth_geometric_warp.png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
