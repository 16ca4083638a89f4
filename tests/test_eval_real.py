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
    assert 0 < result["predictors"]["geometric"]["authenticity_lpips"] < 0.3
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


def test_mask_in_original_matches_per_pixel_projection():
    """The crop's mask carried into the original frame: each frame pixel centre mapped by the
    crop homography (the slow way) lands in a True crop pixel exactly where the mask says so."""
    from volume_cli import camera
    from volume_cli.evaluate.authenticity import mask_in_original
    K = camera.image_intrinsics(97, 61)
    cam = camera.virtual_camera(np.array([0.05, -0.02, 0.5]), 32)  # the head off to the right, above
    rng = np.random.default_rng(3)
    crop_mask = rng.random((32, 32)) > 0.5
    got = mask_in_original(crop_mask, K, cam, 97, 61)
    v, u = np.mgrid[0:61, 0:97]
    centres = np.stack([u + 0.5, v + 0.5], -1).astype(np.float64)
    at = camera.apply_homography(camera.crop_homography(K, cam), centres)  # crop pixel coordinates
    ix, iy = np.floor(at[..., 0]).astype(int), np.floor(at[..., 1]).astype(int)
    inside = (ix >= 0) & (ix < 32) & (iy >= 0) & (iy < 32)
    want = np.zeros((61, 97), bool)
    want[inside] = crop_mask[iy[inside], ix[inside]]
    # Nearest-pixel rounding may differ on pixel centres that fall exactly on a crop pixel border.
    assert (got != want).mean() < 0.01 and got.sum() > 50


@needs_real
def test_original_frame_authenticity_with_the_face_near_the_edge():
    """A photo padded so the face sits near the frame's top-left corner: the original camera's
    render reproduces the frame there (so the splats went back with R^T, not R), and the mask
    covers the face's box in the frame, not the frame's centre."""
    from volume_cli import camera
    from volume_cli.evaluate.authenticity import crop_image, measure_crop
    from volume_cli.predictors.geometric import GeometricPredictor

    photo = cv2.cvtColor(cv2.imread(str(REAL / "grace_hopper_512.jpg")), cv2.COLOR_BGR2RGB)
    image = np.full((900, 1200, 3), 40, np.uint8)
    image[:512, :512] = photo  # the face ~250 px from the corner in a 1200 x 900 frame
    fc = crop_image(image, 128)
    K = camera.image_intrinsics(1200, 900)
    with GeometricPredictor(head=False) as predictor:
        result, _ = measure_crop(fc, predictor, original=(image, K))
    o = result.original
    assert o.render.shape == image.shape and o.mask.shape == image.shape[:2]
    ys, xs = np.nonzero(o.mask)
    assert xs.max() < 512 and ys.max() < 512 and o.mask_pixels > 5000  # the head, in the photo's corner
    # Measured 22.4 dB (the 128 px crop is coarser than the face in this frame: 31.2 dB in the
    # crop); with R in place of R^T in to_original_frame: 5.6 dB.
    assert o.psnr_db > 18, o.psnr_db
