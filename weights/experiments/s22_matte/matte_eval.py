"""geometric with MediaPipe's person mask against geometric with the learned matte (a run's
checkpoint, or the shipped weights), by `volume evaluate`'s own protocol; the truth's coverage as
the ceiling (oracle_matte_eval.py's), all in one run on the same people.
Usage: python matte_eval.py COUNT [CHECKPOINT ...]"""
import sys
from pathlib import Path

import torch

import oracle_matte_eval as oracle  # its patches give "true_alpha" the truth
from volume_cli.evaluate.synthetic import evaluate_synthetic
from volume_cli.matte.model import MatteNet, PersonMatte
from volume_cli.predictors.geometric import GeometricPredictor

count = int(sys.argv[1])
predictors = {"mediapipe": GeometricPredictor(matte=False)}
true = GeometricPredictor(matte=False)
true.person_mask = lambda crop: oracle.truth_by_crop[oracle.key(crop)]
predictors["true_alpha"] = true
for path in sys.argv[2:] or ["shipped"]:
    if path == "shipped":
        predictors["matte_shipped"] = GeometricPredictor(matte=True)
        continue
    net = MatteNet()
    net.load_state_dict(torch.load(path, weights_only=False)["model"])
    p = GeometricPredictor(matte=False)
    p.matte = PersonMatte(net.eval())
    predictors[f"matte_{Path(path).parent.name}"] = p
oracle.report(evaluate_synthetic(predictors, count=count), f"matte_eval_{count}.json")
