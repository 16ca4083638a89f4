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
with FaceFinder(video=False) as finder:
    for i in range(count):
        sample = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=256, views=1, temporal=False, return_scene=True)
        fc = crop_of_still(sample["input_image"], sample["input_K"], finder, 256)
        if fc is None:
            continue
        gt_rgb, gt_alpha, gt_depth = syn.ground_truth_views(sample, [syn._w2c(fc.cam.R)], fc.cam.K, 256)
        m = (gt_alpha[0] > SOLID_ALPHA) & (gt_depth[0] > 0) & fc.valid
        err = ((fc.crop.astype(np.float64) / 255.0 - gt_rgb[0]) ** 2).mean(-1)[m]
        e += err.sum(); n += m.sum(); per.append(10 * np.log10(1 / err.mean()))
print(f"crop against the clean truth, pooled {10 * np.log10(n / e):.2f} dB, per person mean {np.mean(per):.2f} (min {np.min(per):.2f}, max {np.max(per):.2f}), {len(per)} people")
