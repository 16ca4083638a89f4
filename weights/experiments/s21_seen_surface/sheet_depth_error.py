"""Three held-out people's input view: truth, true depth, geometric's rendered depth (scale-
corrected) and its error (red: too far, blue: too near or not drawn, 10 cm full scale), with a
few counts printed. Writes input_view_depth_error.png."""
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from warp_oracle_probe import *  # the protocol's imports and helpers


def signed(e):  # red: predicted too far, blue: too near, 10 cm full scale
    e = np.clip(e / 0.10, -1, 1)
    return np.stack([np.clip(e, 0, 1), np.zeros_like(e), np.clip(-e, 0, 1)], -1)


geometric = load_predictor(PredictorName.geometric, "cpu")
rows = []
for p in held_out_people(0, yaws=(40.0,), indices=(0, 3, 6)):
    fc, gt_rgb, gt_alpha, gt_depth = p.fc, p.gt_rgb, p.gt_alpha, p.gt_depth
    v = syn.predicted_views(geometric, fc, syn.jitter_partner(p.sample, fc), p.w2cs, gt_depth[0], gt_alpha[0])
    pd, td, pa = v.depth[0].numpy() * v.scale, gt_depth[0], v.alpha[0].numpy()
    m = (gt_alpha[0] > 0.5) & (td > 0)
    err = np.where(m, pd - td, 0)
    print(p.index, "scale", v.scale, "median |err| cm", np.median(np.abs(err[m])) * 100, "p90", np.percentile(np.abs(err[m]), 90) * 100,
          "head dist", np.linalg.norm(p.head), "true depth range", td[m].min(), td[m].max(), "pred", pd[m].min(), pd[m].max())
    print(p.index, "gt-solid pixels", m.sum(), "pred alpha<0.5 there", ((pa < 0.5) & m).sum(),
          "pred alpha>0.5 & depth<0.3", ((pa > 0.5) & m & (pd < 0.3)).sum())
    person = geometric.person_mask(fc.crop)
    print(p.index, "person<0.1 on gt-solid", ((person < 0.1) & m).sum(), "valid false on gt-solid", (~fc.valid & m).sum())
    lo, hi = td[m].min(), td[m].max()
    norm = lambda d: np.repeat(np.clip((d - lo) / (hi - lo + 1e-9), 0, 1)[..., None], 3, -1) * m[..., None]
    rows.append(np.concatenate([gt_rgb[0], norm(td), norm(pd), signed(err)], 1))
img = (np.concatenate(rows, 0) * 255).astype(np.uint8)
cv2.imwrite("input_view_depth_error.png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
