"""``volume evaluate --real``: authenticity on real footage and a contact sheet of novel views."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from realdata import REAL, SELFIE, needs_real


@pytest.fixture(scope="module")
def app():
    import typer

    from volume_cli.evaluate.cli_command import evaluate

    a = typer.Typer()
    a.command()(evaluate)
    return a


@needs_real
def test_real_photo_video_and_no_face(app, tmp_path):
    """One photo, two frames of the selfie clip and a clip with no face: authenticity for the two
    faces, the faceless clip listed, and a sheet of one row per input with a face (6 tiles each)."""
    sheet = tmp_path / "sheet.png"
    out = CliRunner().invoke(app, ["--predictor", "geometric", "--real", str(REAL / "grace_hopper_512.jpg"),
                                   "--real", str(SELFIE), "--real", str(REAL / "no_face_960x540.mp4"),
                                   "--frames", "2", "--size", "128", "--sheet", str(sheet), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["inputs"] == 5 and result["evaluated"] == 3
    assert [r["input"] for r in result["rows"]] == ["grace_hopper_512.jpg", "selfie_640x360.mp4#0", "selfie_640x360.mp4#71"]
    assert len(result["no_face"]) == 2 and all(n.startswith("no_face") for n in result["no_face"])
    assert result["predictors"]["geometric"]["authenticity_psnr"] > 28
    image = cv2.imread(str(sheet))
    assert image.shape[0] == 3 * 160 and image.shape[1] == 6 * 160
    # The novel views differ from the input view (the camera really moved) but show the head.
    tiles = image[:160].reshape(160, 6, 160, 3).transpose(1, 0, 2, 3).astype(float)
    assert np.abs(tiles[1] - tiles[2]).mean() > 5 and (np.abs(tiles[2] - 115).sum(-1) > 30).mean() > 0.2


def test_sheet_needs_real_and_a_png(app, tmp_path):
    out = CliRunner().invoke(app, ["--sheet", str(tmp_path / "a.png")])
    assert out.exit_code == 1 and "--sheet needs --real" in out.stderr
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((64, 64, 3), np.uint8))
    out = CliRunner().invoke(app, ["--real", str(photo), "--sheet", str(tmp_path / "a.jpg")])
    assert out.exit_code == 1 and ".png" in out.stderr
