import json, sys
import torch
from volume_cli.evaluate.synthetic import evaluate_synthetic
from volume_cli.predictors import PredictorName, load_predictor
import volume_cli.predictors.geometric as G
count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
preds = {}
for steps in (2, 1, 0):
    p = load_predictor(PredictorName.geometric, "cpu"); p.colour_steps = steps
    preds[f"steps{steps}"] = p
# steps 2 with the fitted colours clamped into [0, 1]
clamped = load_predictor(PredictorName.geometric, "cpu")
orig = clamped._refine_colours
def refine_clamped(*a, **k):
    f, b = orig(*a, **k)
    return f.clamp(0, 1), b.clamp(0, 1)
clamped._refine_colours = refine_clamped
preds["steps2_clamped"] = clamped
res = evaluate_synthetic(preds, count=count)
out = {}
for n, m in res["predictors"].items():
    out[n] = {k: (round(v, 3) if isinstance(v, float) else {y: round(r["psnr"], 2) for y, r in v.items()}) for k, v in m.items() if k in ("authenticity_psnr", "original_authenticity_psnr", "realism_psnr", "realism_lpips", "stability_ratio", "realism")}
    print(n, out[n])
json.dump(res["predictors"], open("colourfit_eval.json", "w"), indent=1)
