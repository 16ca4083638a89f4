"""volume evaluate's synthetic harness (16 held-out people) on one network as exported and with
layer_probe.py's inference variants. Run from this folder (it takes ``variant`` from
layer_probe.py):

    W=WB/unet.safetensors KINDS=back-at-start,front-at-start OUT=result.json python eval_variants.py
"""
import sys, json
import os
W = os.environ.get("W", "/tmp/s16/WBx/unet.safetensors")
sys.argv = ["x", "", "/tmp/s16/dbgout", ""]
exec(open("layer_probe.py").read().split("R = \"/work/shared")[0])
from volume_cli.evaluate.synthetic import evaluate_synthetic
w = Path(W)
kinds = os.environ.get("KINDS", "back-at-start,front-at-start").split(",")
preds = {"net": load_predictor(PredictorName.unet, "cpu", w)}
preds.update({f"net:{k}": variant(load_predictor(PredictorName.unet, "cpu", w), k) for k in kinds if k})
res = evaluate_synthetic(preds, count=16, size=256)
res.pop("samples", None); json.dump(res, open(os.environ.get("OUT", "/tmp/s16/variants16.json"), "w"), indent=1)
for n, p in res["predictors"].items():
    print(n, "syn", round(p['authenticity_psnr'],2), round(p['original_authenticity_psnr'],2), "realism", round(p['realism_psnr'],2), {k:round(v['psnr'],2) for k,v in p['realism'].items()}, "lpips", round(p['realism_lpips'],3), "jit", round(p['stability_ratio'],2))
