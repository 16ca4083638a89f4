"""Predictors by name. See base.py for the interface."""

from __future__ import annotations

import enum

from volume_cli.predictors.base import GAUSSIANS_PER_PIXEL, CropBatch, Predictor


class PredictorName(str, enum.Enum):
    geometric = "geometric"
    geometric_ellipsoid = "geometric-ellipsoid"
    unet = "unet"


def load_predictor(name: PredictorName, device: str, weights=None) -> Predictor:
    """Build the named predictor for ``device`` ("cpu" or "cuda"). Nothing is downloaded; the
    U-Net reads ``weights`` (default weights/unet.safetensors) and raises
    predictors.unet.WeightsError when they are missing or fail their hash check."""
    if name in (PredictorName.geometric, PredictorName.geometric_ellipsoid):
        from volume_cli.predictors.geometric import GeometricPredictor

        # NumPy + MediaPipe: CPU whatever the device
        return GeometricPredictor(head=name is PredictorName.geometric)
    if name is PredictorName.unet:
        from volume_cli.predictors.unet import DEFAULT_WEIGHTS, load_unet_predictor

        return load_unet_predictor(weights or DEFAULT_WEIGHTS, device=device)  # hash-checked
    raise ValueError(f"unknown predictor {name!r}")


__all__ = ["GAUSSIANS_PER_PIXEL", "CropBatch", "Predictor", "PredictorName", "load_predictor"]
