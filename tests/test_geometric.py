"""The geometric baseline predictor: its pieces against slow obvious references, and authenticity
on real photographs."""

import importlib.util
import time

import cv2
import numpy as np
import pytest
import torch

from volume_cli import camera
from volume_cli.gaussians import quat_to_matrix
from volume_cli.head.model import load_head_model
from volume_cli.predictors import geometric as geo
from volume_cli.predictors.base import GAUSSIANS_PER_PIXEL

from realdata import REAL, needs_real


def _ray_triangle_depth(origin_dir: np.ndarray, tri: np.ndarray) -> float:
    """z where the ray t * d (from the camera centre) meets triangle tri [3, 3], or inf.
    Moller-Trumbore, written out."""
    d = origin_dir
    e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
    h = np.cross(d, e2)
    det = e1 @ h
    if abs(det) < 1e-15:
        return np.inf
    s = -tri[0]
    u = (s @ h) / det
    q = np.cross(s, e1)
    v = (d @ q) / det
    t = (e2 @ q) / det
    if u < -1e-9 or v < -1e-9 or u + v > 1 + 1e-9 or t <= 0:
        return np.inf
    return t * d[2]


# The NumPy/torch references and their compiled twins (the ones the predictor runs): each is held to
# the same geometric truths, and the twins to each other. Without numba (the lent GPU machine)
# only the references are tested, and they are what the predictor runs there.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
DEPTH_RASTERIZERS = {"reference": geo.rasterize_depth}
SURFACE_ALIGNERS = {"reference": geo.surface_aligned}
if HAVE_NUMBA:
    from volume_cli.predictors import geometric_kernels

    DEPTH_RASTERIZERS["compiled"] = geometric_kernels.rasterize_depth
    SURFACE_ALIGNERS["compiled"] = geometric_kernels.surface_aligned


@pytest.mark.parametrize("impl", DEPTH_RASTERIZERS)
def test_rasterize_depth_matches_ray_triangle_intersection(impl):
    rng = np.random.default_rng(0)
    size = 24
    K = camera.intrinsics(30.0, 30.0, size / 2, size / 2)
    vertices = np.concatenate([rng.uniform(-0.35, 0.35, (9, 2)), rng.uniform(0.8, 1.4, (9, 1))], axis=1)
    vertices[:, :2] *= vertices[:, 2:]  # keep them in view
    triangles = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 4, 8]])
    fast = DEPTH_RASTERIZERS[impl](camera.project(K, vertices), vertices[:, 2], triangles, size)
    v, u = np.mgrid[0:size, 0:size] + 0.5
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    slow = np.full((size, size), np.inf)
    for j in range(size):
        for i in range(size):
            slow[j, i] = min(_ray_triangle_depth(rays[j, i], vertices[t]) for t in triangles)
    assert np.isfinite(slow).sum() > 50  # the scene covers a good part of the image
    # Pixels exactly on an edge may fall either way; everywhere else coverage and depth agree.
    both = np.isfinite(fast) & np.isfinite(slow)
    assert (np.isfinite(fast) != np.isfinite(slow)).sum() <= 2
    assert np.allclose(fast[both], slow[both], rtol=1e-9)


def test_ellipsoid_depth_sphere_and_rotated_surface():
    centre = np.array([0.0, 0.0, 1.0])
    rays = np.array([[0.0, 0.0, 1.0], [0.05, 0.0, 1.0], [0.5, 0.0, 1.0]])
    z = geo.ellipsoid_depth(rays, np.eye(3), centre, np.full(3, 0.1))
    assert z[0] == pytest.approx(0.9) and np.isinf(z[2])
    # A rotated ellipsoid: the hit point satisfies its equation and is the nearer root.
    axes = quat_to_matrix(torch.tensor([0.9, 0.2, -0.3, 0.1], dtype=torch.float64)).numpy().T
    radii = np.array([0.08, 0.12, 0.1])
    ray = np.array([0.03, -0.02, 1.0])
    depth = geo.ellipsoid_depth(ray[None], axes, centre, radii)[0]
    point = ray * depth / ray[2]
    local = axes @ (point - centre) / radii
    assert local @ local == pytest.approx(1.0)
    behind = ray * (depth + 0.01) / ray[2]
    inside = axes @ (behind - centre) / radii
    assert inside @ inside < 1.0  # just past the hit we are inside: it was the entry point


@pytest.mark.parametrize("impl", SURFACE_ALIGNERS)
def test_surface_aligned_equals_explicit_covariance(impl):
    rng = np.random.default_rng(1)
    size, focal, sigma = 12, 40.0, geo.PIXEL_SIGMA
    v, u = np.mgrid[0:size, 0:size] + 0.5
    z = 1.0 + 0.2 * np.sin(u / 3) + 0.1 * v / size + 0.02 * rng.normal(size=(size, size))
    points = np.stack([(u - size / 2) / focal * z, (v - size / 2) / focal * z, z], -1)
    quats, log_scales = SURFACE_ALIGNERS[impl](points, focal, sigma)
    R = quat_to_matrix(quats.double())
    cov = R @ torch.diag_embed(log_scales.double().exp() ** 2) @ R.transpose(-1, -2)
    # Reference: the covariance written out from the central-difference tangents.
    p = torch.from_numpy(points)
    pad = torch.nn.functional.pad(p.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")[0].permute(1, 2, 0)
    a = ((pad[1:-1, 2:] - pad[1:-1, :-2]) / 2).reshape(-1, 3)
    b = ((pad[2:, 1:-1] - pad[:-2, 1:-1]) / 2).reshape(-1, 3)
    n = torch.linalg.cross(a, b)
    n = n / n.norm(dim=-1, keepdim=True)
    thin = geo.THIN_FRACTION * p[..., 2].reshape(-1) / focal
    outer = lambda x, y: x[:, :, None] * y[:, None, :]  # noqa: E731
    reference = sigma**2 * (outer(a, a) + outer(b, b)) + thin[:, None, None] ** 2 * outer(n, n)
    # Budget: float32 storage of quats and log-scales, relative to the covariance's size.
    assert (cov - reference).abs().max() <= 1e-5 * reference.abs().max()


@pytest.mark.parametrize("impl", SURFACE_ALIGNERS)
def test_surface_aligned_projects_to_a_round_pixel_footprint_on_a_slanted_plane(impl):
    """Seen from the input camera, a disc on a plane tilted 60 degrees still covers sigma^2 I
    pixels^2 (the point of aligning it: the input view stays sharp and gap-free)."""
    size, focal, sigma = 16, 50.0, 0.5
    v, u = np.mgrid[0:size, 0:size] + 0.5
    rays = np.stack([(u - size / 2) / focal, (v - size / 2) / focal, np.ones_like(u)], -1)
    normal = np.array([np.sin(np.radians(60)), 0.0, -np.cos(np.radians(60))])
    z = (normal @ np.array([0, 0, 1.0])) / (rays @ normal)  # plane through (0, 0, 1)
    points = rays * z[..., None]
    quats, log_scales = SURFACE_ALIGNERS[impl](points, focal, sigma)
    R = quat_to_matrix(quats.double())
    cov = (R @ torch.diag_embed(log_scales.double().exp() ** 2) @ R.transpose(-1, -2)).numpy()
    j, i = 8, 8  # an interior pixel (central differences are exact on a plane away from the border)
    X = points[j, i]
    J = np.array([[focal / X[2], 0, -focal * X[0] / X[2] ** 2], [0, focal / X[2], -focal * X[1] / X[2] ** 2]])
    cov2d = J @ cov[j * size + i] @ J.T
    # Budget: 3 %, the first-order (Jacobian) projection across a pixel of a strongly tilted plane.
    assert np.allclose(cov2d, sigma**2 * np.eye(2), rtol=0.03, atol=0.03 * sigma**2)


def hopper_framed(size: int):
    """The real Grace Hopper photo framed as convert frames it, at crop side ``size``."""
    from volume_cli.face import FaceFinder, head_state
    from volume_cli.framing import frame_crop

    image = cv2.cvtColor(cv2.imread(str(REAL / "grace_hopper_512.jpg")), cv2.COLOR_BGR2RGB)
    K = camera.image_intrinsics(image.shape[1], image.shape[0])
    with FaceFinder(video=False) as finder:
        face = finder.find(image)
    return frame_crop(image, K, face, head_state(face, K), size)


@pytest.fixture(scope="module")
def hopper_crop():
    """The 256 px crop of the real Grace Hopper photo, its predictor depth map and rays."""
    fc = hopper_framed(256)
    rays = camera.image_rays(fc.cam.K, 256, 256)
    return fc, geo.proxy_depth(fc.landmarks, fc.cam.K, rays), rays


@needs_real
@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed: the predictor runs the references")
def test_compiled_twins_equal_the_references_on_a_real_face(hopper_crop):
    """On a real crop's depth map (mesh, feathered proxy, silhouettes, steep sides) the compiled
    steps give the references' numbers."""
    fc, depth, rays = hopper_crop
    K, landmarks = fc.cam.K, fc.landmarks
    args = (camera.project(K, landmarks), landmarks[:, 2], geo.face_mesh_triangles(), 256)
    ref, fast = geo.rasterize_depth(*args), geometric_kernels.rasterize_depth(*args)
    assert np.array_equal(np.isfinite(ref), np.isfinite(fast)) and np.isfinite(ref).sum() > 5000
    np.testing.assert_allclose(fast[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-12)
    points = rays * depth[..., None]
    q_ref, s_ref = geo.surface_aligned(points, K[0, 0], geo.PIXEL_SIGMA)
    q_fast, s_fast = geometric_kernels.surface_aligned(points, K[0, 0], geo.PIXEL_SIGMA)
    # float32 outputs of the same float64 arithmetic; numba's and torch's atan2/cos/sin may differ
    # in the last bit, which float32 rounding almost always absorbs.
    torch.testing.assert_close(q_fast, q_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(s_fast, s_ref, rtol=0, atol=1e-5)


def test_face_mesh_triangles_come_from_the_tesselation():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    tris = geo.face_mesh_triangles()
    edges = {frozenset(e) for e in FACEMESH_TESSELATION}
    assert len(tris) > 800 and tris.max() < 468
    assert all(frozenset((a, b)) in edges for t in tris for a, b in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])))


@pytest.fixture(scope="module")
def hopper_prediction():
    from volume_cli.pipeline import crop_batch

    fc = hopper_framed(64)
    with geo.GeometricPredictor(colour_steps=0) as predictor:
        return fc, predictor.predict(crop_batch([fc], "cpu"))


@needs_real
def test_prediction_layout_two_per_pixel_backing_behind(hopper_prediction):
    fc, g = hopper_prediction
    n = 64 * 64
    hidden = load_head_model().num_vertices + len(load_head_model().edges)  # then the unseen side's splats
    assert g.means.shape == (1, GAUSSIANS_PER_PIXEL * n + hidden, 3) and g.sh.shape == (1, 2 * n + hidden, 1, 3)
    front, back = g.means[0, :n], g.means[0, n : 2 * n]
    # Same pixel ray, backing farther along it by BACKING_BEHIND_M (in depth).
    assert torch.allclose(torch.linalg.cross(front, back).norm(dim=-1), torch.zeros(n), atol=1e-6)
    assert torch.allclose(back[:, 2] - front[:, 2], torch.full((n,), geo.BACKING_BEHIND_M), atol=1e-5)
    # Row-major pixel order: pixel (row 10, column 40) lies on its own ray through the crop.
    px = camera.project(fc.cam.K, front[10 * 64 + 40].double().numpy())
    assert np.allclose(px, [40.5, 10.5], atol=1e-4)


@needs_real
def test_background_is_removed_and_face_kept(hopper_prediction):
    _, g = hopper_prediction
    opacity = g[0].opacities()[: 64 * 64].reshape(64, 64)
    assert opacity[32, 32] > 0.9  # the face at the crop centre
    assert opacity[2, 2] < 1 / 255  # the flag / wall in the corner


@needs_real
@pytest.mark.parametrize("name", ["grace_hopper_512.jpg", "astronaut_512.png", "man_outdoors_572x562.jpg", "obama_626x1200.jpg"])
def test_input_view_rerender_reproduces_the_crop(name):
    """Authenticity: PSNR above 30 dB inside the head mask on real photographs (measured
    33.9 / 39.1 / 42.0 / 40.2 dB at S = 256 when this test was written)."""
    from volume_cli.evaluate.authenticity import measure_image

    image = cv2.cvtColor(cv2.imread(str(REAL / name)), cv2.COLOR_BGR2RGB)
    with geo.GeometricPredictor() as predictor:
        result = measure_image(image, predictor, size=256)
    assert result.mask_pixels > 5000
    assert result.psnr_db > 30.0, f"{name}: {result.psnr_db:.2f} dB"
    assert result.ssim > 0.95


def test_unseen_side_disc_rotations_turn_z_onto_the_normal():
    """The unseen side's discs are oriented by the shortest rotation taking +z (their thin axis)
    onto the surface normal; checked through the quaternion -> matrix convention everything else
    uses, including the normals +z and -z themselves."""
    from volume_cli.gaussians import quat_to_matrix
    from volume_cli.predictors.geometric import quats_turning_z_to

    rng = np.random.default_rng(4)
    normals = rng.normal(size=(200, 3))
    normals = np.concatenate([normals, [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1e-9, 0.0, -1.0]]])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    q = quats_turning_z_to(normals)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    R = quat_to_matrix(torch.from_numpy(q)).numpy()
    np.testing.assert_allclose(R[:, :, 2], normals, atol=1e-9)  # the third axis is the normal


def _hopper_clip_batch(frames: int, size: int):
    """The first ``frames`` frames of the bundled clip as convert hands them to the predictor:
    crops, and each frame's fitted head from one clip identity; and a fresh clip HeadTrack."""
    from pathlib import Path

    from volume_cli import pipeline
    from volume_cli.face import FaceFinder, head_state
    from volume_cli.framing import frame_crop
    from volume_cli.head.track import HeadTrack
    from volume_cli.video import open_source

    source = open_source(Path(__file__).parents[1] / "examples" / "hopper.mp4", max_frames=frames)
    K = pipeline.original_intrinsics(source, pipeline.ConvertSettings(size=size))
    images = [f.image for f in source]
    with FaceFinder(video=True) as finder:
        faces = [finder.find(im) for im in images]
    crops = [frame_crop(im, K, f, head_state(f, K), size) for im, f in zip(images, faces)]

    def batch_and_track():
        head = HeadTrack(load_head_model(), geo.mesh_depth_rasterizer(), clip=True)
        head.fit_identity([c.landmarks for c in crops])
        inputs = pipeline.crop_batch(crops, "cpu")
        inputs.head_priors = [head.prior_of(head.fitter.fit_frame(c.landmarks), c.cam.K, size)[0] for c in crops]
        inputs.head_texture = head.texture
        return inputs, head

    return batch_and_track


def test_frames_predicted_at_once_give_the_serial_result(monkeypatch):
    """The predictor works on two frames of a batch at once; the clip texture's step takes the
    frames' order, so splats (the unseen side's colours too) and the texture left for the next
    batch are exactly those of one frame after another."""
    batch_and_track = _hopper_clip_batch(5, 64)
    # The first frame to reach the texture is held back, so a thread that did not wait its turn
    # would use the texture out of order.
    seen_colours, calls = geo.seen_colours, []

    def slow_first(*args):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)
        return seen_colours(*args)

    monkeypatch.setattr(geo, "seen_colours", slow_first)
    results = {}
    for threads in (1, 2):
        monkeypatch.setattr(geo, "FRAME_THREADS", threads)
        calls.clear()
        inputs, head = batch_and_track()
        with geo.GeometricPredictor() as predictor, torch.inference_mode():
            results[threads] = predictor.predict(inputs), head.texture.colours()[0], head.texture.steady(np.zeros((1, 3)))
    (serial, tex_1, shown_1), (threaded, tex_2, shown_2) = results[1], results[2]
    n = 2 * 64 * 64
    assert (serial[0].opacities()[n:] > 0.01).sum() > 100  # the unseen side is there to be coloured
    for field in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(serial, field), getattr(threaded, field)), field
    assert np.array_equal(tex_1, tex_2) and np.array_equal(shown_1, shown_2)
