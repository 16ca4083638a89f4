"""How far the crop the predictors see (the input frame with the synthetic camera's effects,
resampled by the crop homography) is from the clean truth rendered in the crop camera, on the
input view's solid pixels inside the frame: the part of a novel view's error no predictor that
keeps the input colours can remove. Usage: python crop_vs_truth.py [COUNT]"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from warp_oracle_probe import *  # the protocol's imports

count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
e, n = 0.0, 0
per = []
for p in held_out_people(count, yaws=()):
    m = (p.gt_alpha[0] > SOLID_ALPHA) & (p.gt_depth[0] > 0) & p.fc.valid
    err = ((p.fc.crop.astype(np.float64) / 255.0 - p.gt_rgb[0]) ** 2).mean(-1)[m]
    e += err.sum(); n += m.sum(); per.append(10 * np.log10(1 / err.mean()))
print(f"crop against the clean truth, pooled {10 * np.log10(n / e):.2f} dB, per person mean {np.mean(per):.2f} (min {np.min(per):.2f}, max {np.max(per):.2f}), {len(per)} people")
