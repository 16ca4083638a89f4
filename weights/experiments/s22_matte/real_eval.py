"""The real photos and the selfie clip's frames: geometric with MediaPipe's mask against geometric
with the shipped matte, authenticity in the crop and the original frame, and a contact sheet
(crop, input view, yaw -40 / -20 / +20 / +40) with the two predictors' rows one above the other.
Usage: python real_eval.py (writes real_eval.json and real_sheet.jpg here)"""
import json
from pathlib import Path

import cv2

from volume_cli.evaluate.real import evaluate_real
from volume_cli.predictors.geometric import GeometricPredictor

REAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "real"
paths = [REAL / n for n in ("grace_hopper_512.jpg", "astronaut_512.png", "man_outdoors_572x562.jpg", "obama_626x1200.jpg",
                            "selfie_640x360.mp4")]
predictors = {"mediapipe": GeometricPredictor(), "matte": GeometricPredictor(matte=True)}
result, sheet = evaluate_real(paths, predictors, frames_per_video=2, yaws=(-40.0, -20.0, 20.0, 40.0), sheet_height=192)
for name, m in result["predictors"].items():
    print(name, {k: round(v, 2) for k, v in m.items()})
for row in result["rows"]:
    print(row["input"], {p: (round(v["psnr"], 2), round(v["original_psnr"], 2)) for p, v in row["predictors"].items()})
json.dump(result, open("real_eval.json", "w"), indent=1)
cv2.imwrite("real_sheet.jpg", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
