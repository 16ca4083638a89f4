"""geometric with its person segmentation (the splats' opacity) reshaped, scored by volume
evaluate's own protocol: today's soft confidence, a hard cut at 0.5, and a steeper ramp.
Usage: python person_opacity_eval.py [COUNT]"""
import json, sys

import numpy as np

from volume_cli.evaluate.synthetic import evaluate_synthetic
from volume_cli.predictors import PredictorName, load_predictor

count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
shapes = {
    "soft": None,  # today
    "hard_0.5": lambda c: (c >= 0.5).astype(c.dtype),
    "ramp_0.3_0.7": lambda c: np.clip((c - 0.3) / 0.4, 0.0, 1.0),
}
predictors = {}
for name, shape in shapes.items():
    p = load_predictor(PredictorName.geometric, "cpu")
    if shape is not None:
        segmentation = p.person_mask
        p.person_mask = lambda crop, segmentation=segmentation, shape=shape: shape(segmentation(crop))
    predictors[name] = p
res = evaluate_synthetic(predictors, count=count)
for n, m in res["predictors"].items():
    print(n, "crop / frame", round(m["authenticity_psnr"], 2), round(m["original_authenticity_psnr"], 2), "realism", round(m["realism_psnr"], 2),
          {y: round(v["psnr"], 2) for y, v in m["realism"].items()}, "lpips", round(m["realism_lpips"], 3), "jitter", round(m["stability_ratio"], 2))
json.dump(res["predictors"], open(f"person_opacity_eval_{count}.json", "w"), indent=1)
