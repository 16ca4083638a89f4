import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from volume_cli.camera import intrinsics, project
from volume_cli.gaussians import Gaussians, quat_to_matrix, rgb_to_sh_dc
from volume_cli.render import RenderResult, render
from volume_cli.render.bench import bench_render, head_like_splats
from volume_cli.render.rasterize_torch import project_gaussians, rasterize
from volume_cli.render.reference import rasterize_reference

# The CPU backends: each is held to the slow reference, and every convention test runs on each.
# numba is a dependency, but the lent GPU machine runs these tests without it (its carry has no
# room for llvmlite): there the compiled backend's cases drop out (test_render_numba.py skips).
FAST = {"torch": rasterize}
if importlib.util.find_spec("numba") is not None:
    from volume_cli.render import rasterize_numba

    FAST["numba"] = rasterize_numba.rasterize
RASTERIZERS = [*FAST.values(), rasterize_reference]
RASTERIZER_IDS = [*FAST, "reference"]
# f = 32 px; (0, 0, z) projects to (16.5, 16.5), the centre of pixel (column 16, row 16).
CENTRE_K = torch.tensor(intrinsics(32.0, 32.0, 16.5, 16.5), dtype=torch.float32)[None]


def scene(n: int, seed: int, dtype=torch.float32):
    """n random splats around (0, 0, 1) m: from far under a pixel to wider than a tile (log-uniform
    scales, 2 mm to 15 cm), opacities across (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([0.15, 0.15, 0.1], dtype=dtype)
    means[:, 2] += 1.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.exp(torch.empty(n, 3, dtype=dtype).uniform_(math.log(0.002), math.log(0.15), generator=g))
    opacities = torch.rand(n, generator=g, dtype=dtype)
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, quats, scales, opacities, colors


def cameras(num: int, width: int, height: int, dtype=torch.float32):
    """num cameras: the identity, then shifted and turned ones with an off-centre principal point."""
    Ks, views = [], []
    for i in range(num):
        K = intrinsics(1.2 * width, 1.2 * width, width / 2 + 2 * i, height / 2 - i)
        V = np.eye(4)
        c, s = math.cos(0.2 * i), math.sin(0.2 * i)
        V[:3, :3] = [[c, 0, -s], [0, 1, 0], [s, 0, c]]
        V[0, 3] = 0.05 * i
        Ks.append(K)
        views.append(V)
    return torch.tensor(np.stack(views), dtype=dtype), torch.tensor(np.stack(Ks), dtype=dtype)


def one_gaussian(mean, scale, opacity, color=(1.0, 1.0, 1.0), dtype=torch.float32):
    """Single isotropic splat as rasteriser inputs."""
    return (
        torch.tensor([mean], dtype=dtype),
        torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype),
        torch.full((1, 3), scale, dtype=dtype),
        torch.tensor([opacity], dtype=dtype),
        torch.tensor([color], dtype=dtype),
    )


# -- the fast rasteriser against the obvious one --------------------------------------------------


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("n", [1, 12, 60, 500])
@pytest.mark.parametrize("num_cameras", [1, 3])
@pytest.mark.parametrize("size", [(32, 32), (37, 21), (17, 40)])  # odd sizes: no multiple of any tile
def test_fast_rasterizer_matches_reference(backend, n, num_cameras, size):
    width, height = size
    viewmats, Ks = cameras(num_cameras, width, height)
    backgrounds = torch.rand(num_cameras, 3, generator=torch.Generator().manual_seed(n))
    inputs = (*scene(n, seed=n + num_cameras), viewmats, Ks, width, height, backgrounds)
    rgb, alpha, depth = FAST[backend](*inputs)
    rgb_ref, alpha_ref, depth_ref = rasterize_reference(*inputs)
    assert rgb.shape == (num_cameras, height, width, 3) and alpha.shape == depth.shape == (num_cameras, height, width)
    assert alpha_ref.any()  # the scene is really in view
    # float32 budget: the torch path expands sigma as a quadratic in tile-local pixel coordinates,
    # the numba path computes in float64 and rounds once; both multiply transmittance in another
    # order than the reference. Measured differences are about 2e-6.
    torch.testing.assert_close(rgb, rgb_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(alpha, alpha_ref, rtol=0, atol=1e-5)
    # Expected depth divides by alpha, which magnifies the same rounding where alpha is small.
    seen = alpha_ref > 1e-2
    torch.testing.assert_close(depth[seen], depth_ref[seen], rtol=0, atol=1e-4)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("size", [(32, 32), (37, 21)])
def test_fast_rasterizer_matches_reference_where_most_pixels_finish(backend, size):
    """Near-opaque layers, as behind a predicted face: most pixels reach the T = 1e-4 stop part
    way down their tile's list, and the splats after it must still reach the pixels left open
    beside the finished ones (the compiled path stops visiting finished rows and row ends)."""
    width, height = size
    viewmats, Ks = cameras(2, width, height)
    means, quats, scales, opacities, colors = scene(500, seed=21)
    opacities = 0.9 + 0.1 * opacities  # 1.0 is capped at 0.999: two layers finish a pixel
    inputs = (means, quats, scales, opacities, colors, viewmats, Ks, width, height)
    rgb, alpha, depth = FAST[backend](*inputs)
    rgb_ref, alpha_ref, depth_ref = rasterize_reference(*inputs)
    covered = alpha_ref > 0.998  # under two or more near-opaque splats: finished
    assert 0.3 < covered.float().mean() < 0.95, covered.float().mean()  # both kinds of pixel
    torch.testing.assert_close(rgb, rgb_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(alpha, alpha_ref, rtol=0, atol=1e-5)
    seen = alpha_ref > 1e-2
    torch.testing.assert_close(depth[seen], depth_ref[seen], rtol=0, atol=1e-4)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("n, size, opaque", [(30, (24, 20), False), (200, (33, 19), False), (200, (33, 19), True)])
def test_fast_rasterizer_gradients_match_reference(backend, n, size, opaque):
    width, height = size
    means, quats, scales, opacities, colors = scene(n, seed=1, dtype=torch.float64)
    if opaque:  # most pixels finish part way down their lists, as in the test above
        opacities = 0.9 + 0.1 * opacities
    # One wide opaque splat on the axis: at the pixels around its centre opacity * exp(-sigma) passes
    # 0.999, the cap binds and passes no gradient.
    means[0], scales[0], opacities[0] = torch.tensor([0.0, 0.0, 1.0]), torch.full((3,), 1.0), 1.0
    means, quats, scales, opacities, colors = (t.requires_grad_() for t in (means, quats, scales, opacities, colors))
    viewmats, Ks = cameras(2, width, height, dtype=torch.float64)
    backgrounds = torch.rand(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    weights = torch.rand(2, height, width, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (FAST[backend], rasterize_reference):
        rgb, alpha, depth = fn(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds)
        loss = (rgb * weights).sum() + alpha.sum() + (depth * alpha).sum()
        grads.append(torch.autograd.grad(loss, [means, quats, scales, opacities, colors]))
    for fast, ref in zip(*grads):
        assert ref.abs().max() > 0
        # float64: both are the same function; only the order of the arithmetic differs.
        torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", FAST)
def test_fast_rasterizer_gradcheck(backend):
    means, quats, scales, opacities, colors = scene(6, seed=3, dtype=torch.float64)
    viewmats, Ks = cameras(1, 12, 10, dtype=torch.float64)

    def fn(means, quats, scales, opacities, colors):
        rgb, alpha, depth = FAST[backend](means, quats, scales, opacities, colors, viewmats, Ks, 12, 10)
        return rgb, alpha, depth * alpha

    # float64 central differences; which splats a pixel uses does not change within eps.
    inputs = tuple(t.requires_grad_() for t in (means, quats, scales, opacities, colors))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


# -- conventions, on a single known Gaussian -------------------------------------------------------


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
def test_single_gaussian_peaks_where_camera_projects(fn):
    width = height = 32
    K = intrinsics(30.0, 30.0, 16.0, 16.0)
    mean = np.array([0.083, -0.041, 1.0])  # projects to (18.49, 14.77): between pixel centres
    inputs = one_gaussian(mean.tolist(), scale=0.05, opacity=0.5)
    _, alpha, _ = fn(*inputs, torch.eye(4)[None], torch.tensor(K, dtype=torch.float32)[None], width, height)
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    a = alpha[0].double()
    centroid = np.array([(a * xs).sum() / a.sum(), (a * ys).sum() / a.sum()])
    # The footprint is symmetric about the projected mean; sampling it at pixel centres biases its
    # centroid by far less than 0.02 px for a standard deviation of 1.6 px.
    np.testing.assert_allclose(centroid, project(K, mean), atol=0.02)


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
def test_footprint_is_projected_sigma_dilated_by_eps2d(fn):
    """On the optical axis the Jacobian is diag(f / z): the 2D variance is (f s / z)^2 + 0.3."""
    f, z, s, opacity = 20.0, 2.0, 0.1, 0.7
    K = intrinsics(f, f, 16.0, 16.0)
    inputs = one_gaussian([0.0, 0.0, z], scale=s, opacity=opacity)
    _, alpha, depth = fn(*inputs, torch.eye(4)[None], torch.tensor(K, dtype=torch.float32)[None], 32, 32)
    variance = (f * s / z) ** 2 + 0.3
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    expected = opacity * torch.exp(-((xs - 16) ** 2 + (ys - 16) ** 2) / (2 * variance))
    expected = torch.where(expected < 1 / 255, 0.0, expected)  # alphas under 1/255 are skipped
    torch.testing.assert_close(alpha[0], expected, rtol=0, atol=1e-6)  # float32 exp
    torch.testing.assert_close(depth[0][expected > 0], torch.full_like(depth[0][expected > 0], z))


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
def test_positive_y_lands_below_the_centre(fn):
    inputs = one_gaussian([0.0, 0.2, 1.0], scale=0.02, opacity=0.9)
    _, alpha, _ = fn(*inputs, torch.eye(4)[None], CENTRE_K, 32, 32)
    row, col = divmod(int(alpha[0].argmax()), 32)
    assert (row, col) == (22, 16)  # y = 0.2 m at 1 m with f = 32 px: 6.4 px below the centre, 16.5


# -- compositing rules -------------------------------------------------------------------------------


def stack(opacities, colors, depths):
    """Co-axial splats at the given depths, each projecting to the centre of pixel (16, 16)."""
    n = len(opacities)
    means = torch.tensor([[0.0, 0.0, d] for d in depths])
    return (
        means,
        torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n),
        torch.full((n, 3), 0.01),
        torch.tensor(opacities),
        torch.tensor(colors),
    )


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
def test_opaque_front_splat_hides_the_back_one(fn):
    # Listed back first: the order in memory must not matter, only depth.
    inputs = stack([1.0, 1.0], [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [2.0, 1.0])
    rgb, alpha, depth = fn(*inputs, torch.eye(4)[None], CENTRE_K, 32, 32)
    # alpha is capped at 0.999, so the front splat lets 0.1 % through: T after it is 0.001, and
    # the back splat would bring T to 1e-6 <= 1e-4, so the pixel stops before it.
    torch.testing.assert_close(rgb[0, 16, 16], torch.tensor([0.999, 0.0, 0.0]))
    torch.testing.assert_close(alpha[0, 16, 16], torch.tensor(0.999))
    torch.testing.assert_close(depth[0, 16, 16], torch.tensor(1.0))


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
def test_background_shows_where_nothing_is(fn):
    inputs = one_gaussian([0.0, 0.0, 1.0], scale=0.01, opacity=0.9)
    background = torch.tensor([[0.2, 0.4, 0.6]])
    rgb, alpha, depth = fn(*inputs, torch.eye(4)[None], CENTRE_K, 32, 32, background)
    assert torch.equal(rgb[0, 0, 0], background[0]) and alpha[0, 0, 0] == 0 and depth[0, 0, 0] == 0
    # Partly covered pixels blend: colour = sum(w c) + T background.
    t = 1 - alpha[0, 16, 16]
    torch.testing.assert_close(rgb[0, 16, 16], alpha[0, 16, 16] * torch.ones(3) + t * background[0])


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
def test_nothing_to_draw_gives_the_background(fn):
    empty = (torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3))
    rgb, alpha, _ = fn(*empty, torch.eye(4)[None], CENTRE_K, 20, 12, torch.tensor([[0.1, 0.2, 0.3]]))
    assert torch.equal(rgb, torch.tensor([0.1, 0.2, 0.3]).expand(1, 12, 20, 3)) and not alpha.any()


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
def test_alpha_below_one_255th_is_skipped(fn):
    faint = stack([0.99 / 255], [[1.0, 1.0, 1.0]], [1.0])
    rgb, alpha, _ = fn(*faint, torch.eye(4)[None], CENTRE_K, 32, 32)
    assert not alpha.any() and not rgb.any()
    just_visible = stack([1.01 / 255], [[1.0, 1.0, 1.0]], [1.0])
    _, alpha, _ = fn(*just_visible, torch.eye(4)[None], CENTRE_K, 32, 32)
    assert alpha[0, 16, 16] == pytest.approx(1.01 / 255, rel=1e-5) and alpha.count_nonzero() == 1


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
@pytest.mark.parametrize("num_faint", [1, 60])  # 60: past the fast path's first round of splats
def test_transmittance_stop_leaves_out_the_splat_that_crosses_1e_4(fn, num_faint):
    # alpha 0.95 each: T = 0.05, 0.0025, 1.25e-4, then 6.25e-6 <= 1e-4: the 4th is left out and the
    # pixel is finished, so the faint ones behind (each of which alone would keep T above 1e-4)
    # are left out too.
    colors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] + [[1.0, 1.0, 1.0]] * (1 + num_faint)
    depths = [1.0 + 0.1 * i for i in range(4 + num_faint)]
    inputs = stack([0.95] * 4 + [0.05] * num_faint, colors, depths)
    rgb, alpha, depth = fn(*inputs, torch.eye(4)[None], CENTRE_K, 32, 32)
    w = torch.tensor([0.95, 0.95 * 0.05, 0.95 * 0.05**2])
    torch.testing.assert_close(rgb[0, 16, 16], w)
    torch.testing.assert_close(alpha[0, 16, 16], w.sum())
    torch.testing.assert_close(depth[0, 16, 16], (w * torch.tensor([1.0, 1.1, 1.2])).sum() / w.sum())


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
@pytest.mark.parametrize("z", [0.005, -1.0])
def test_splats_before_the_near_plane_are_culled(fn, z):
    inputs = one_gaussian([0.0, 0.0, z], scale=0.001, opacity=1.0)
    _, alpha, _ = fn(*inputs, torch.eye(4)[None], CENTRE_K, 32, 32)
    assert not alpha.any()


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
@pytest.mark.parametrize(
    "name, index, bad",
    [("quats", 1, torch.zeros(3, 3)), ("colors", 4, torch.zeros(2, 3)), ("opacities", 3, torch.zeros(3, 1))],
)
def test_shape_errors_name_the_argument(fn, name, index, bad):
    inputs = list(scene(3, seed=0))
    inputs[index] = bad
    with pytest.raises(ValueError, match=name):
        fn(*inputs, torch.eye(4)[None], CENTRE_K, 32, 32)


def test_projection_matches_gsplats_own_torch_reference():
    """gsplat ships a pure-torch projection (``_torch_impl``) that runs without CUDA: where it is
    installed, pin means2d, conics and depths to it. (Its radii omit the opacity-aware extent.)"""
    torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means, quats, scales, opacities, _ = scene(300, seed=5)
    viewmats, Ks = cameras(2, 40, 30)
    R = quat_to_matrix(quats)
    covars = R @ torch.diag_embed(scales.square()) @ R.transpose(1, 2)
    _, means2d_g, depths_g, conics_g, _ = torch_impl._fully_fused_projection(means, covars, viewmats, Ks, 40, 30)
    means2d, conics, depths, radii = project_gaussians(means, quats, scales, opacities, viewmats, Ks, 40, 30)
    drawn = radii[..., 0] > 0
    assert drawn.sum() > 100
    # float32: covariance built as (J R M)(J R M)^T here, as J (R Sigma R^T) J^T there.
    torch.testing.assert_close(means2d[drawn], means2d_g[drawn], rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(conics[drawn], conics_g[drawn], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(depths[drawn], depths_g[drawn], rtol=1e-6, atol=0)


# -- the entry point -------------------------------------------------------------------------------------


def splats(n=40, seed=0) -> Gaussians:
    means, quats, scales, opacities, colors = scene(n, seed)
    return Gaussians(
        means=means,
        quats=quats,
        log_scales=scales.log(),
        opacity_logits=torch.logit(opacities.clamp(1e-4, 1 - 1e-4)),
        sh=rgb_to_sh_dc(colors)[:, None, :],
    )


@pytest.mark.parametrize("backend", FAST)
def test_render_uses_activated_parameters_and_numpy_cameras(backend):
    g = splats()
    viewmats, Ks = cameras(2, 32, 32)
    result = render(g, viewmats.numpy().astype(np.float64), Ks.numpy(), 32, 32, background=(0, 0, 1), backend=backend)
    assert isinstance(result, RenderResult)
    assert result.rgb.shape == (2, 32, 32, 3) and result.alpha.shape == result.depth.shape == (2, 32, 32)
    expected = FAST[backend](
        g.means, g.quats, g.scales(), g.opacities(), g.rgb(), viewmats, Ks, 32, 32, torch.tensor([[0.0, 0, 1]] * 2)
    )
    for got, want in zip((result.rgb, result.alpha, result.depth), expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("backend", FAST)
def test_fixed_geometry_renderer_is_render_with_other_colours(backend):
    from volume_cli.render import fixed_geometry_renderer

    g = splats(200, seed=3)
    viewmats, Ks = cameras(2, 30, 24)
    f = fixed_geometry_renderer(g, viewmats, Ks, 30, 24, background=(0.2, 0.3, 0.4), backend=backend)
    for seed in (1, 2):  # the same placement, two colourings
        rgb = torch.rand(200, 3, generator=torch.Generator().manual_seed(seed)) * 1.4 - 0.2  # some below 0
        recoloured = Gaussians(means=g.means, quats=g.quats, log_scales=g.log_scales, opacity_logits=g.opacity_logits,
                               sh=rgb_to_sh_dc(rgb)[:, None, :])
        want = render(recoloured, viewmats, Ks, 30, 24, background=(0.2, 0.3, 0.4), backend=backend)
        got = f(rgb)
        for a, b in zip((got.rgb, got.alpha, got.depth), (want.rgb, want.alpha, want.depth)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # the same kernels; SH round trip
    with pytest.raises(ValueError, match="rgb must be"):
        f(torch.zeros(199, 3))


def test_render_rejects_a_batch_of_sets_and_bad_cameras():
    g = splats()
    with pytest.raises(ValueError, match="gaussians"):
        render(g.map(lambda t: t[None]), torch.eye(4)[None], CENTRE_K, 32, 32)
    with pytest.raises(ValueError, match="viewmats"):
        render(g, torch.eye(4), CENTRE_K, 32, 32)
    with pytest.raises(ValueError, match="Ks"):
        render(g, torch.eye(4)[None].repeat(2, 1, 1), CENTRE_K, 32, 32)
    with pytest.raises(ValueError, match="background"):
        render(g, torch.eye(4)[None], CENTRE_K, 32, 32, background=(1, 1))


def test_bench_runs():
    result = bench_render(sizes=(32,), count=300, repeats=1)
    assert set(result) == {32} and result[32] > 0


# -- gsplat (CUDA only; the CPU suite skips these) ----------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat needs CUDA")
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("size", [(256, 256), (200, 120)])
def test_gsplat_matches_the_cpu_rasterizers(backend, size):
    pytest.importorskip("gsplat")
    from volume_cli.render.gsplat_backend import rasterize as rasterize_gsplat
    from volume_cli.render.paths import orbit_viewmats, render_intrinsics

    width, height = size
    g = head_like_splats(4000, seed=1).to("cuda")
    # Two views: straight on, and 40 deg round with an off-centre principal point.
    viewmats = torch.tensor(orbit_viewmats([0.0, 0.0, 0.6], [0.0, 40.0]), dtype=torch.float32, device="cuda")
    f = render_intrinsics(width, 0.6)[0, 0]
    K = intrinsics(f, f, width / 2, height / 2 + 7)
    Ks = torch.tensor(np.stack([K, K]), dtype=torch.float32, device="cuda")
    inputs = (g.means, g.quats, g.scales(), g.opacities(), g.rgb(), viewmats, Ks, width, height)
    backgrounds = torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], device="cuda")
    if backend == "numba":  # CPU only: render copies, compare on the GPU
        on_cpu = [t.cpu() if isinstance(t, torch.Tensor) else t for t in (*inputs, backgrounds)]
        ours = [t.to("cuda") for t in FAST[backend](*on_cpu)]
    else:  # the torch rasteriser runs on CUDA tensors as well
        ours = FAST[backend](*inputs, backgrounds)
    theirs = rasterize_gsplat(*inputs, backgrounds)
    assert theirs[1].mean() > 0.1  # the head is in view
    for name, a, b in zip(("rgb", "alpha"), ours, theirs):
        diff = (a - b).abs()
        # Float32 rounding differs (gsplat uses fast-math exp, another summation order): a splat
        # whose alpha sits at 1/255 or a pixel whose T sits at 1e-4 can fall the other way, which
        # moves a pixel by at most about 1/255. A wrong convention (half-pixel shift, missing
        # eps2d, other sort order) moves many pixels by 0.05 or more.
        assert diff.max() < 5e-3, f"{name}: max |diff| {diff.max():.2e}"
        assert diff.mean() < 1e-4, f"{name}: mean |diff| {diff.mean():.2e}"
    seen = theirs[1] > 0.5
    torch.testing.assert_close(ours[2][seen], theirs[2][seen], rtol=0, atol=1e-3)  # metres


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat needs CUDA")
def test_auto_backend_renders_with_gsplat_on_cuda():
    pytest.importorskip("gsplat")
    g = splats(200)
    viewmats, Ks = cameras(1, 64, 48)
    auto = render(g, viewmats, Ks, 64, 48, backend="auto")
    cpu = render(g, viewmats, Ks, 64, 48, backend="torch")
    assert auto.rgb.device == g.means.device  # brought back to the Gaussians' device
    assert (auto.rgb - cpu.rgb).abs().max() < 5e-3  # as in test_gsplat_matches_the_cpu_rasterizers


@pytest.mark.parametrize("x_over_z, clamped", [(2.0, 22 / 20 + 0.24), (-2.0, -(10 / 20 + 0.24))])
def test_jacobian_clamps_x_over_z_to_the_widened_view(x_over_z, clamped):
    """gsplat evaluates the Jacobian at x/z clamped to [-cx/fx - 0.3 tan_fovx, (W - cx)/fx + 0.3
    tan_fovx] with tan_fovx = W / (2 fx); here W = 32, fx = 20, cx = 10, so tan_fovx = 0.8."""
    s, opacity = 0.5, 0.9
    means, quats, scales, opacities, _ = one_gaussian([x_over_z, 0.0, 1.0], scale=s, opacity=opacity)
    K = torch.tensor(intrinsics(20.0, 20.0, 10.0, 16.0), dtype=torch.float32)[None]
    means2d, conics, depths, radii = project_gaussians(means, quats, scales, opacities, torch.eye(4)[None], K, 32, 32)
    cov_xx = s**2 * (20.0**2 + (20.0 * clamped) ** 2) + 0.3  # J's x row is (f/z, 0, -f tx/z^2)
    cov_yy = s**2 * 20.0**2 + 0.3
    torch.testing.assert_close(conics[0, 0], torch.tensor([1 / cov_xx, 0.0, 1 / cov_yy]))
    torch.testing.assert_close(means2d[0, 0], torch.tensor([20.0 * x_over_z + 10.0, 16.0]))  # the mean is not clamped
    k = math.sqrt(2 * math.log(255 * opacity))  # opacity-aware extent, below the 3.33 cap
    assert radii[0, 0].tolist() == [math.ceil(k * math.sqrt(cov_xx)), math.ceil(k * math.sqrt(cov_yy))]
    assert depths[0, 0] == 1.0


# -- edge cases, each CPU backend against the reference ----------------------------------------------


def edge_scene(case: str):
    """Rasteriser inputs for awkward scenes, all in front of a 24 x 18 camera at the origin."""
    means, quats, scales, opacities, colors = scene(40, seed=11)
    if case == "all_behind":  # every splat behind the camera: nothing drawn
        means = means * torch.tensor([1.0, 1.0, -1.0])
    elif case == "straddling_near_plane":  # wide splats whose centres sit just past 1 cm
        means = means * torch.tensor([0.02, 0.02, 0.0]) + torch.tensor([0.0, 0.0, 0.011])
        means[::2, 2] = 0.009  # half of them just before it: culled by their centre
        scales = torch.full_like(scales, 0.02)
    elif case == "covers_the_image":  # one splat close and wide enough to cover every pixel
        means, scales = torch.tensor([[0.01, -0.02, 0.5]]), torch.tensor([[0.4, 0.3, 0.2]])
        quats, opacities, colors = quats[:1], torch.tensor([0.8]), colors[:1]
    elif case == "far_outside_the_view":  # off to the side at 10x the field of view
        means = means + torch.tensor([10.0, 0.0, 0.0])
    return means, quats, scales, opacities, colors


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("case", ["all_behind", "straddling_near_plane", "covers_the_image", "far_outside_the_view"])
def test_edge_cases_match_reference(backend, case):
    viewmats, Ks = cameras(2, 24, 18)
    background = torch.tensor([[0.3, 0.5, 0.7]] * 2)
    inputs = (*edge_scene(case), viewmats, Ks, 24, 18, background)
    got, want = FAST[backend](*inputs), rasterize_reference(*inputs)
    for a, b in zip(got[:2], want[:2]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # as in test_fast_rasterizer_matches_reference
    drawn = want[1] > 0
    if case in ("all_behind", "far_outside_the_view"):
        assert not drawn.any()
    elif case == "covers_the_image":
        assert drawn[0].all()  # the first camera looks straight at it
    else:
        assert drawn.any()


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
@pytest.mark.parametrize("field, index", [("means", 0), ("scales", 2), ("opacities", 3), ("colors", 4)])
def test_non_finite_inputs_are_an_error_that_counts_them(fn, field, index):
    inputs = list(scene(10, seed=2))
    bad = inputs[index].clone()
    bad[3] = float("nan")
    bad[7] = float("inf")
    inputs[index] = bad
    with pytest.raises(ValueError, match="2 of 10 Gaussians have non-finite"):
        fn(*inputs, torch.eye(4)[None], CENTRE_K, 32, 32)


@pytest.mark.parametrize("fn", RASTERIZERS, ids=RASTERIZER_IDS)
def test_non_finite_camera_is_an_error(fn):
    viewmats = torch.eye(4)[None].clone()
    viewmats[0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="viewmats has 1 non-finite"):
        fn(*scene(5, seed=0), viewmats, CENTRE_K, 32, 32)


def test_commands_that_do_not_render_never_import_numba():
    code = "import sys, volume_cli.cli, volume_cli.render; assert 'numba' not in sys.modules, 'numba was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


