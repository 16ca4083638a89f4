"""The whole-head prior (volume_cli.head): model file, fit, prior in a crop camera, texture, and
how the geometric predictor and convert use it.

The fit is checked against heads made by the model itself (known identity, expression and pose,
off-centre in the frame), so every number it must recover is known; the prior against the posed
mesh's own vertices; the hidden-side splats against the input view they must not change."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from volume_cli import camera
from volume_cli.face import NUM_LANDMARKS
from volume_cli.head import fit as fitmod
from volume_cli.head.fit import HeadFitter, rotation_from_vector, similarity
from volume_cli.head.model import HeadModelError, load_head_model
from volume_cli.head.prior import head_prior, seen_by_camera
from volume_cli.head.texture import ClipTexture, hidden_side_colours, spread_over_mesh
from volume_cli.predictors.geometric import mesh_depth_rasterizer

from realdata import REAL, SELFIE, needs_real

MODEL = load_head_model()
# A turned, tilted head to the right of and above the optical axis (off-centre: a transposed
# rotation or a sign slip in the projection moves its landmarks by centimetres).
POSE_R = rotation_from_vector(np.array([0.12, 0.45, -0.08]))
POSE_T = np.array([0.07, -0.04, 0.52])
SIZE = 128


def crop_K(size: int = SIZE) -> np.ndarray:
    return camera.image_intrinsics(size, size, focal_px=1.6 * size)


def landmarks_of(identity, expression, R=POSE_R, t=POSE_T, scale=1.0) -> np.ndarray:
    return scale * (MODEL.landmark_matrix() @ MODEL.vertices(identity, expression)) @ R.T + t


def rotation_error_deg(A: np.ndarray, B: np.ndarray) -> float:
    """The angle of the rotation A^T B, from both its cosine (trace) and its sine (the skew part):
    arccos alone loses half the digits near 0 (a 1e-16 rounding of the trace reads as 1e-6 deg)."""
    D = A.T @ B
    sine = np.linalg.norm([D[2, 1] - D[1, 2], D[0, 2] - D[2, 0], D[1, 0] - D[0, 1]]) / 2
    return float(np.degrees(np.arctan2(sine, (np.trace(D) - 1) / 2)))


def zeros():
    return np.zeros(len(MODEL.identity_basis)), np.zeros(len(MODEL.expression_names))


# -- the model file ---------------------------------------------------------------------------------


def test_landmark_bases_are_the_landmark_matrix_applied_to_the_model():
    """The fit's landmark-restricted model, gathered from each landmark's triangle corners, against
    the dense W @ basis product (the slow obvious reference), and at a random identity/expression."""
    W = MODEL.landmark_matrix()
    m0, A, B = MODEL.landmark_bases
    np.testing.assert_allclose(m0, W @ MODEL.mean, atol=1e-12)
    np.testing.assert_allclose(A, np.einsum("lv,kvc->klc", W, MODEL.identity_basis), atol=1e-12)
    np.testing.assert_allclose(B, np.einsum("lv,evc->elc", W, MODEL.expression_basis), atol=1e-12)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=len(A)), rng.uniform(size=len(B))
    np.testing.assert_allclose(m0 + np.tensordot(a, A, 1) + np.tensordot(b, B, 1), W @ MODEL.vertices(a, b), atol=1e-9)


def test_model_file_is_consistent():
    W = MODEL.landmark_matrix()
    assert W.shape == (NUM_LANDMARKS, MODEL.num_vertices)
    np.testing.assert_allclose(W.sum(1), 1.0, atol=1e-5)  # barycentric weights
    assert 150 < MODEL.landmark_reliable.sum() < NUM_LANDMARKS
    # the face contour slides over the skin as a head turns: MediaPipe's cheek points are not fitted to
    assert not MODEL.landmark_reliable[[234, 454]].any() and MODEL.landmark_reliable[1]  # nose tip is
    # The mirror map is (nearly) an involution and mirrors x.
    m = MODEL.mirror
    assert (m[m] == np.arange(len(m))).mean() > 0.95
    np.testing.assert_allclose(MODEL.mean[m, 0], -MODEL.mean[:, 0], atol=0.004)
    # Head frame: the face looks at -z, x to the person's left, y down: the nose tip is in front
    # of the head centre, the chin (152) below the forehead (10).
    lm = W @ MODEL.mean
    assert lm[1, 2] < -0.05 and lm[152, 1] > lm[10, 1] + 0.1


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(HeadModelError, match="python -m volume_cli.head.build"):
        load_head_model(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(HeadModelError, match="not a head model"):
        load_head_model(bad)


# -- the fit ----------------------------------------------------------------------------------------


def test_similarity_recovers_a_known_transform_and_never_reflects():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    s, R, t = similarity(src, 1.3 * src @ POSE_R.T + POSE_T)
    assert s == pytest.approx(1.3) and rotation_error_deg(R, POSE_R) < 1e-6
    np.testing.assert_allclose(t, POSE_T, atol=1e-9)
    _, R, _ = similarity(src, src * np.array([-1.0, 1, 1]))  # a mirror image: best rotation, det +1
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_rotation_from_vector_matches_opencv():
    w = np.array([0.3, -0.2, 0.9])
    np.testing.assert_allclose(rotation_from_vector(w), cv2.Rodrigues(w)[0], atol=1e-12)


def test_residual_jacobian_matches_finite_differences():
    rng = np.random.default_rng(2)
    P = rng.normal(0, 0.05, (6, 3)) + [0, 0, 0.5]
    X = P + rng.normal(0, 0.01, P.shape)
    _, J = HeadFitter._residual(X, P)
    eps = 1e-7
    for i in range(6):
        for c in range(3):
            Xp, Xm = X.copy(), X.copy()
            Xp[i, c] += eps
            Xm[i, c] -= eps
            numeric = (HeadFitter._residual(Xp, P)[0][i] - HeadFitter._residual(Xm, P)[0][i]) / (2 * eps)
            np.testing.assert_allclose(J[i, :, c], numeric, rtol=1e-5, atol=1e-3)


def test_fit_recovers_the_pose_of_an_off_centre_head():
    fitter = HeadFitter(MODEL)
    fit = fitter.fit_still(landmarks_of(*zeros()))
    assert fit.ok
    assert rotation_error_deg(fit.R, POSE_R) < 0.5
    np.testing.assert_allclose(fit.t, POSE_T, atol=0.002)
    assert fit.scale == pytest.approx(1.0, abs=0.01)
    # The posed vertices land where the true ones are (the whole head, not only the landmarks).
    true = MODEL.mean @ POSE_R.T + POSE_T
    assert np.linalg.norm(fit.vertices(MODEL) - true, axis=1).mean() < 0.002


def test_fit_recovers_an_open_jaw_and_keeps_face_units_in_range():
    identity, expression = zeros()
    jaw = MODEL.expression_names.index("jawOpen")
    expression[jaw] = 0.6
    fit = HeadFitter(MODEL).fit_still(landmarks_of(identity, expression))
    assert fit.expression[jaw] > 0.4
    assert fit.expression.min() >= 0.0 and fit.expression.max() <= 1.0


def test_clip_identity_is_shared_and_frames_start_the_same_wherever_the_last_one_ended():
    rng = np.random.default_rng(3)
    identity = rng.normal(0, 1, len(MODEL.identity_basis))
    _, expression = zeros()
    frames = [landmarks_of(identity, expression, rotation_from_vector(np.array([0.0, a, 0.0])) @ POSE_R) for a in (-0.3, 0.0, 0.3)]
    fitter = HeadFitter(MODEL)
    fitter.fit_identity(frames)
    W = MODEL.landmark_matrix()[MODEL.landmark_reliable]

    def image_error(coefficients):  # mean 2D distance of the refitted landmarks, normalised image units
        errors = []
        for P in frames:
            fitter.identity = coefficients
            X = W @ fitter.fit_frame(P, warm=False).vertices(MODEL)
            Q = P[MODEL.landmark_reliable]
            errors.append(np.linalg.norm(X[:, :2] / X[:, 2:] - Q[:, :2] / Q[:, 2:], axis=1).mean())
        return float(np.mean(errors))

    # The priors shrink the identity (landmarks say little about the skull), but the clip's
    # identity explains this person's landmarks clearly better than the average head does.
    fitted = fitter.identity.copy()
    assert image_error(fitted) < 0.75 * image_error(np.zeros_like(fitted))
    fitter.identity = fitted
    # Two fits of the same landmarks after different previous frames agree (bounded steps).
    a = fitter.fit_frame(frames[1], warm=False)
    fitter.fit_frame(frames[0])
    b = fitter.fit_frame(frames[1])
    assert np.abs(a.expression - b.expression).max() < 0.05


def test_landmarks_no_head_explains_are_refused():
    rng = np.random.default_rng(4)
    garbage = rng.normal(0, 0.05, (NUM_LANDMARKS, 3)) + [0, 0, 0.5]
    fit = HeadFitter(MODEL).fit_still(garbage)
    assert not fit.ok and ("mm from the fitted head" in fit.reason or "scaled" in fit.reason)
    record = fit.as_json(MODEL)
    assert record["ok"] is False and record["reason"] == fit.reason


# -- the prior in a crop camera ---------------------------------------------------------------------


def _prior():
    fit = HeadFitter(MODEL).fit_still(landmarks_of(*zeros(), R=np.eye(3), t=np.array([0.0, 0.0, 0.5])))
    return head_prior(MODEL, fit, crop_K(), SIZE, mesh_depth_rasterizer()), fit


def test_prior_depth_is_the_posed_head():
    prior, fit = _prior()
    skin = prior.skin_vertices
    nose = int(np.argmin(skin[:, 2]))  # the nearest vertex: on the nose, facing the camera
    u, v = camera.project(crop_K(), skin[nose])
    assert prior.depth[int(v), int(u)] == pytest.approx(skin[nose, 2], abs=0.003)
    assert prior.visible[nose]
    back = int(np.argmax(skin[:, 2]))  # the back of the skull
    assert not prior.visible[back]
    assert seen_by_camera(skin[[nose, back]], prior.depth, crop_K()).tolist() == [True, False]
    # The hair shell stands off the scalp and covers at least the head's outline.
    assert (np.isfinite(prior.shell_depth) >= prior.head_mask).all()
    # Normals of a face seen head-on point at the camera.
    assert prior.normals[int(v), int(u), 2] < -0.7


def test_spread_over_mesh_walks_along_edges():
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])  # a path 0-1-2-3-4
    colours = np.zeros((5, 3))
    colours[0], colours[4] = 1.0, 0.5
    known = np.array([True, False, False, False, True])
    out = spread_over_mesh(colours, known, edges)
    assert out[1, 0] == 1.0 and out[3, 0] == 0.5  # each takes its nearer end
    assert out[2, 0] == pytest.approx(0.75)  # equidistant: both


def test_hidden_side_colour_prefers_the_clip_then_the_mirror_then_the_nearest():
    prior, _ = _prior()
    V = MODEL.num_vertices
    seen = np.zeros((V, 3))
    weights = np.zeros(V)
    a = int(np.argmax(MODEL.mean[:, 0]))  # a vertex on one side; its mirror is on the other
    seen[MODEL.mirror[a]] = [0.9, 0.1, 0.1]
    weights[MODEL.mirror[a]] = 1.0
    out = hidden_side_colours(seen, weights, MODEL.mirror, MODEL.edges)
    np.testing.assert_allclose(out[a], [0.9, 0.1, 0.1])  # the mirror
    tex = ClipTexture(V)
    tex_colours = np.full((V, 3), 0.2)
    tex.add(tex_colours, np.ones(V))
    out = hidden_side_colours(seen, weights, MODEL.mirror, MODEL.edges, tex.colours())
    np.testing.assert_allclose(out[a], 0.2)  # the clip's own texture wins
    np.testing.assert_allclose(out[MODEL.mirror[a]], [0.9, 0.1, 0.1])  # what this frame sees stays


# -- the predictor and convert ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hopper_batch():
    from volume_cli.face import FaceFinder, head_state
    from volume_cli.framing import frame_crop
    from volume_cli.pipeline import crop_batch

    image = cv2.cvtColor(cv2.imread(str(REAL / "grace_hopper_512.jpg")), cv2.COLOR_BGR2RGB)
    Kimg = camera.image_intrinsics(image.shape[1], image.shape[0])
    with FaceFinder(video=False) as finder:
        face = finder.find(image)
    return crop_batch([frame_crop(image, Kimg, face, head_state(face, Kimg), 128)], "cpu")


@needs_real
def test_unseen_side_splats_exist_and_leave_the_input_view_alone(hopper_batch):
    from volume_cli.predictors.geometric import GeometricPredictor
    from volume_cli.render import render

    with GeometricPredictor() as predictor:
        batch = predictor.predict(hopper_batch)
    n = 2 * 128 * 128
    g = batch[0]
    pixels_only = batch.map(lambda t: t[:, :n])[0]
    assert int((g.opacities()[n:] > 0.5).sum()) > 500  # the back of the head, the far ear ...
    K = hopper_batch.K.numpy()
    eye = np.eye(4, dtype=np.float32)[None]
    difference = render(g.prune(), eye, K, 128, 128).rgb[0] - render(pixels_only.prune(), eye, K, 128, 128).rgb[0]
    assert float(difference.abs().max()) < 2.0 / 255  # invisible from the input camera
    # ... but there from the side: the camera swung 90 degrees about the head centre sees more head.
    from volume_cli.evaluate.synthetic import orbit_view

    centre = hopper_batch.head_center[0].double().numpy()
    side = orbit_view(camera.VirtualCamera(R=np.eye(3), K=K[0], size=128), centre, 90.0).astype(np.float32)[None]
    covered = [float((render(x.prune(), side, K, 128, 128).alpha[0] > 0.5).float().mean()) for x in (g, pixels_only)]
    assert covered[0] > covered[1] + 0.02


@needs_real
def test_convert_records_the_head_and_falls_back_where_the_fit_is_refused(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from volume_cli.cli import app

    args = ["--max-frames", "3", "--size", "64"]
    out = tmp_path / "ok"
    result = CliRunner().invoke(app, ["convert", str(SELFIE), "-o", str(out), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "sequence.json").read_text())
    assert len(manifest["head"]["identity"]) == len(MODEL.identity_basis)
    assert all(f["head"]["ok"] for f in manifest["frames"])
    assert manifest["frames"][0]["head"]["residual_mm"] < 4.0
    ok_splats = [f["num_splats"] for f in manifest["frames"]]

    # A head the fit cannot explain: every frame falls back to the ellipsoid, says so, and the
    # run still completes.
    monkeypatch.setattr(fitmod, "MAX_RESIDUAL_M", 0.0)
    out = tmp_path / "fallback"
    result = CliRunner().invoke(app, ["convert", str(SELFIE), "-o", str(out), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "sequence.json").read_text())
    assert manifest["complete"] and len(manifest["frames"]) == 3
    assert all(not f["head"]["ok"] and "mm from the fitted head" in f["head"]["reason"] for f in manifest["frames"])
    assert all(a > b for a, b in zip(ok_splats, [f["num_splats"] for f in manifest["frames"]]))  # no unseen side


@needs_real
def test_convert_without_the_head_model_file_is_a_one_line_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from volume_cli.cli import app
    from volume_cli.head import model as model_module

    monkeypatch.setattr(model_module, "DEFAULT_HEAD_MODEL", tmp_path / "gone.safetensors")
    result = CliRunner().invoke(app, ["convert", str(SELFIE), "-o", str(tmp_path / "out"), "--max-frames", "1"])
    assert result.exit_code == 1
    assert "no head model" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("chunk_rows", [4096, 7])  # 7: the 12 frames in two chunks, the margin carried over
def test_packed_clip_fits_smooth_as_the_reference_does(chunk_rows, monkeypatch):
    from volume_cli.head.fit import smooth_fits
    from volume_cli.head.track import PackedFits

    monkeypatch.setattr(PackedFits, "_CHUNK_ROWS", chunk_rows)
    rng = np.random.default_rng(5)
    fitter = HeadFitter(MODEL)
    identity, expression = zeros()
    fits = []
    for k in range(12):  # a head turning, with noise; frame 5 refused
        R = rotation_from_vector(np.array([0.0, 0.05 * k, 0.0]) + rng.normal(0, 0.01, 3)) @ POSE_R
        fits.append(fitter.fit_frame(landmarks_of(identity, expression, R=R)))
    fits[5] = dataclasses.replace(fits[5], ok=False, reason="test")
    packed = PackedFits(fitter.identity, len(MODEL.expression_names))
    packed._ok = packed._ok[:4]  # start small so the arrays grow while the fits go in
    packed._array, packed._residual = packed._array[:4], packed._residual[:4]
    for f in fits:
        packed.append(f)
    packed.smooth(2.0)
    for k, ref in enumerate(smooth_fits(fits, 2.0)):
        got = packed.fit(k)
        assert got.ok == ref.ok and got.reason == ref.reason
        np.testing.assert_allclose(got.R, ref.R, atol=1e-5)  # float32 storage
        np.testing.assert_allclose(got.t, ref.t, atol=1e-6)
        np.testing.assert_allclose(got.expression, ref.expression, atol=1e-5)
    assert rotation_error_deg(packed.fit(6).R, fits[6].R) > 0.01  # it did smooth
