"""volume evaluate's synthetic harness on WB and WB with one layer's outputs put back to their start."""
import sys, json
sys.argv = ["x", "", "/tmp/s16/dbgout", ""]
exec(open("layer_probe.py").read().split("R = \"/work/shared")[0])
from volume_cli.evaluate.synthetic import evaluate_synthetic
w = Path("/tmp/s16/WBx/unet.safetensors")
preds = {"WB": load_predictor(PredictorName.unet, "cpu", w),
         "WB:back-at-start": variant(load_predictor(PredictorName.unet, "cpu", w), "back-at-start"),
         "WB:front-at-start": variant(load_predictor(PredictorName.unet, "cpu", w), "front-at-start")}
res = evaluate_synthetic(preds, count=16, size=256)
json.dump(res, open("/tmp/s16/variants16.json", "w"))
for n, p in res["predictors"].items():
    print(n, "syn", round(p['authenticity_psnr'],2), round(p['original_authenticity_psnr'],2), "realism", round(p['realism_psnr'],2), {k:round(v['psnr'],2) for k,v in p['realism'].items()}, "lpips", round(p['realism_lpips'],3), "jit", round(p['stability_ratio'],2))
