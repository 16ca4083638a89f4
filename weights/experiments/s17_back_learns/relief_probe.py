"""Issue 10 probe: does a trained network flatten the face? For each real input and predictor,
the front layer's depth relief on the solid head (splat opacity > 0.9 inside the authenticity
head mask): the 5th-95th percentile range of z, and the inner face's range (the middle third of
the crop's columns and rows: nose tip against cheeks), in mm. A flattened face shows as a
smaller range than `geometric`'s; a face turned toward or away from the camera as a plane fitted
to the solid head (z = a x + b y + c, x and y in crop sides) tilted unlike `geometric`'s.

    python relief_probe.py W1/unet.safetensors[,W2/...]
"""
import sys
from pathlib import Path
import numpy as np, torch
from volume_cli.evaluate.authenticity import crop_image
from volume_cli.evaluate.real import real_frames
from volume_cli.predictors import load_predictor, PredictorName
from volume_cli.face import FaceFinder
from volume_cli.pipeline import crop_batch

preds = {"geometric": load_predictor(PredictorName.geometric, "cpu")}
for w in [w for w in sys.argv[1].split(",") if w]:
    preds[Path(w).parent.name] = load_predictor(PredictorName.unet, "cpu", Path(w))
R = "/work/shared/data/real/"
inputs = [(l, im) for p in ["grace_hopper_512.jpg", "astronaut_512.png", "man_outdoors_572x562.jpg", "obama_626x1200.jpg"] for l, im in real_frames(Path(R + p), 1)]
inputs += real_frames(Path(R + "selfie_640x360.mp4"), 2)
s = 256
inner = np.zeros((s, s), bool)
inner[s // 3: 2 * s // 3, s // 3: 2 * s // 3] = True
table = {name: [] for name in preds}
with FaceFinder(video=False) as finder:
    for label, image in inputs:
        fc = crop_image(image, s, finder=finder)
        for name, p in preds.items():
            with torch.inference_mode():
                g = p.predict(crop_batch([fc], "cpu"))[0]
            z = g.means[: s * s, 2].reshape(s, s).double().numpy() * 1000
            solid = torch.sigmoid(g.opacity_logits[: s * s]).reshape(s, s).numpy() > 0.9
            whole = np.percentile(z[solid], 95) - np.percentile(z[solid], 5)
            face = np.percentile(z[solid & inner], 95) - np.percentile(z[solid & inner], 5)
            # the head's tilt: a plane z = a x + b y + c fitted to the solid head (x, y in crop sides)
            ys, xs = np.nonzero(solid)
            A = np.stack([xs / s, ys / s, np.ones_like(xs, dtype=float)], 1)
            (a, b, _), *_ = np.linalg.lstsq(A, z[solid], rcond=None)
            table[name].append((whole, face, a, b))
            print(f"{label:28s} {name:12s} relief {whole:6.1f} mm  inner face {face:5.1f} mm  tilt x {a:6.1f} y {b:6.1f} mm/crop", flush=True)
for name, rows in table.items():
    a = np.array(rows)
    print(f"mean {name:12s} relief {a[:, 0].mean():6.1f} mm  inner face {a[:, 1].mean():5.1f} mm  |tilt x| {np.abs(a[:, 2]).mean():5.1f} |tilt y| {np.abs(a[:, 3]).mean():5.1f} mm/crop")
