"""How well the head prior fits held-out synthetic people: ``python -m volume_cli.evaluate.head_fit``.

For each person (the evaluation's own seeds, ``sample_seed(EVAL_RUN_SEED, i)``), MediaPipe's mesh
on the rendered webcam frame and the crop are made exactly as ``volume convert`` makes them; the
head is fitted as to a still (its own identity). Printed, as means over the people:

* ``landmark_px``: 2D distance in crop pixels between the fitted head's landmark points and the
  TRUE head's (the same surface points on the person's own mesh), over the reliable landmarks;
  ``mediapipe_px`` the same for MediaPipe's own points (what the fit starts from);
* ``surface_mm``: mean distance between each vertex of the fitted head and the same vertex of the
  true head (same topology), after the least-squares scale about the camera centre (from one
  image a head's size and distance are known only up to a common scale); ``mean_head_mm`` the same
  for the average head placed by the same fit's pose (what the identity and expression add);
* ``still_ms`` / ``frame_ms``: a still's fit (identity included) and a clip frame's (warm).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from volume_cli import camera


def evaluate_head_fit(count: int, size: int = 256) -> dict:
    from volume_cli.face import FaceFinder, head_state
    from volume_cli.framing import frame_crop
    from volume_cli.head.build import head_mesh
    from volume_cli.head.fit import HeadFitter
    from volume_cli.head.model import load_head_model
    from volume_cli.synth.assets import load_bust
    from volume_cli.synth.sample import generate_sample, sample_seed
    from volume_cli.train.loop import EVAL_RUN_SEED

    model = load_head_model()
    used, _ = head_mesh(load_bust())
    W = model.landmark_matrix()[model.landmark_reliable]
    rows = {k: [] for k in ("landmark_px", "mediapipe_px", "surface_mm", "mean_head_mm", "still_ms", "frame_ms")}
    refused = skipped = 0
    with FaceFinder(video=False) as finder:
        for i in range(count):
            sample = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=size, views=1, temporal=False, return_scene=True)
            image, K_in = sample["input_image"], sample["input_K"]
            face = finder.find(image)
            if face is None:
                skipped += 1
                continue
            fc = frame_crop(image, K_in, face, head_state(face, K_in), size)
            fitter = HeadFitter(model)
            t0 = time.perf_counter()
            fit = fitter.fit_still(fc.landmarks)
            rows["still_ms"].append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            fitter.fit_frame(fc.landmarks)
            rows["frame_ms"].append(1000 * (time.perf_counter() - t0))
            if not fit.ok:
                refused += 1
                continue
            true = sample["scene"].body_world[used] @ fc.cam.R.T  # the person's head, crop frame
            true_px = camera.project(fc.cam.K, W @ true)
            fitted = fit.vertices(model)
            rows["landmark_px"].append(float(np.linalg.norm(camera.project(fc.cam.K, W @ fitted) - true_px, axis=1).mean()))
            seen = camera.project(fc.cam.K, fc.landmarks[model.landmark_reliable])
            rows["mediapipe_px"].append(float(np.linalg.norm(seen - true_px, axis=1).mean()))
            for key, X in (("surface_mm", fitted), ("mean_head_mm", fit.scale * model.mean @ fit.R.T + fit.t)):
                c = float((X * true).sum() / (X * X).sum())
                rows[key].append(1000 * float(np.linalg.norm(c * X - true, axis=1).mean()))
    out = {k: round(float(np.mean(v)), 2) if v else None for k, v in rows.items()}
    return {"people": count, "skipped_no_face": skipped, "refused": refused, "size": size, **out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m volume_cli.evaluate.head_fit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    print(json.dumps(evaluate_head_fit(args.count, args.size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
