"""Where the trained front depth folds: share of solid person pixels whose front splat, seen from
yaw +-40 deg (rotation about the head centre), lands left of its left neighbour's (a fold: rows of
splats that cross over), for W0 / WL / WLF on real inputs."""
import sys, math
from pathlib import Path
import numpy as np, torch
from volume_cli.evaluate.authenticity import crop_image
from volume_cli.evaluate.real import real_frames
from volume_cli.predictors import load_predictor, PredictorName
from volume_cli.face import FaceFinder
from volume_cli.pipeline import crop_batch
preds = {"geometric": load_predictor(PredictorName.geometric, "cpu")}
for w in sys.argv[1].split(","):
    preds[Path(w).parent.name] = load_predictor(PredictorName.unet, "cpu", Path(w))
R = "/work/shared/data/real/"
inputs = [(l, im) for p in ["man_outdoors_572x562.jpg", "obama_626x1200.jpg"] for l, im in real_frames(Path(R + p), 1)]
inputs += real_frames(Path(R + "selfie_640x360.mp4"), 1)
s = 256
with FaceFinder(video=False) as finder:
    for label, image in inputs:
        fc = crop_image(image, s, finder=finder)
        for name, p in preds.items():
            batch = crop_batch([fc], "cpu")
            with torch.inference_mode():
                g = p.predict(batch)[0]
            m = g.means[: s * s].double().numpy()
            solid = (torch.sigmoid(g.opacity_logits[: s * s]).numpy() > 0.9).reshape(s, s)
            c = batch.head_center[0].double().numpy()
            out = []
            for yaw in (-40, 40):
                a = math.radians(yaw)
                Ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
                q = (m - c) @ Ry.T + c
                u = (q[:, 0] / q[:, 2]).reshape(s, s)
                left_ok = solid[:, 1:] & solid[:, :-1]
                fold = (u[:, 1:] < u[:, :-1]) & left_ok
                out.append(fold.sum() / max(left_ok.sum(), 1))
            print(f"{label:26s} {name:10s} folded neighbours at -40 {100*out[0]:5.2f} %  +40 {100*out[1]:5.2f} %", flush=True)
