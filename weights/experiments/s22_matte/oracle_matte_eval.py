"""How much a better person matte is worth: geometric with its person confidence (the splats'
opacity) replaced by the TRUTH's coverage of the crop, scored by `volume evaluate`'s own protocol
(same people, crops, masks; the head mask the scores use stays the truth's, as always).
Variants: MediaPipe (today), the true alpha (soft, fractional at hair), the true alpha cut at 0.5.
Usage: python oracle_matte_eval.py [COUNT]"""
import hashlib
import json
import sys

import numpy as np

import volume_cli.evaluate.synthetic as synthetic
from volume_cli import camera
from volume_cli.evaluate.synthetic import evaluate_synthetic
from volume_cli.predictors.geometric import GeometricPredictor

truth_by_crop: dict[str, np.ndarray] = {}  # crop bytes' hash -> the truth's coverage in that crop [S, S]


def key(crop: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(crop).tobytes()).hexdigest()


current = {}
original_evaluate_sample, original_predicted_views = synthetic.evaluate_sample, synthetic.predicted_views


def evaluate_sample(sample, *args, **kwargs):
    current["sample"] = sample
    return original_evaluate_sample(sample, *args, **kwargs)


def predicted_views(predictor, fc, fc2, *args, **kwargs):
    sample = current["sample"]
    for f in (fc, fc2):
        truth_by_crop[key(f.crop)] = camera.warp_crop(sample["input_alpha"], sample["input_K"], f.cam).astype(np.float64) / 255.0
    return original_predicted_views(predictor, fc, fc2, *args, **kwargs)


synthetic.evaluate_sample, synthetic.predicted_views = evaluate_sample, predicted_views


def report(res: dict, path: str) -> None:
    """Print each predictor's line of `volume evaluate` means and write them to ``path``."""
    for n, m in res["predictors"].items():
        print(n, "crop / frame", round(m["authenticity_psnr"], 2), round(m["original_authenticity_psnr"], 2), "realism",
              round(m["realism_psnr"], 2), {y: round(v["psnr"], 2) for y, v in m["realism"].items()}, "lpips",
              round(m["realism_lpips"], 3), "jitter", round(m["stability_ratio"], 2), flush=True)
    json.dump(res["predictors"], open(path, "w"), indent=1)

if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    shapes = {
        "mediapipe": None,
        "true_alpha": lambda a: a,
        "true_alpha_cut_0.5": lambda a: (a > 0.5).astype(np.float64),
    }
    predictors = {}
    for name, shape in shapes.items():
        p = GeometricPredictor(matte=False)  # MediaPipe's mask, as before the matte
        if shape is not None:
            p.person_mask = lambda crop, shape=shape: shape(truth_by_crop[key(crop)])
        predictors[name] = p
    report(evaluate_synthetic(predictors, count=count), f"oracle_matte_eval_{count}.json")
