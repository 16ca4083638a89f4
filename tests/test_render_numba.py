"""The compiled CPU rasteriser's own guarantees (render/rasterize_numba.py): its projection and
the torch one give the same numbers and gradients, it is the CPU default, its kernels are cached
on disk, launches from several threads are safe, and its depth sort and tile lists equal plain
references. What it shares with every backend (the image formation, the conventions, edge cases,
gradients against the reference) is in test_render.py."""

import os
import subprocess
import sys

import pytest
import numpy as np
import torch

pytest.importorskip("numba")  # a dependency; missing only on the lent GPU machine

from volume_cli.render import Backend, render, resolve_backend  # noqa: E402
from volume_cli.render import rasterize_numba  # noqa: E402
from volume_cli.render.rasterize_torch import project_gaussians  # noqa: E402

from test_render import cameras, scene, splats  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_auto_backend_is_the_compiled_one_without_cuda_and_never_imports_gsplat():
    code = (
        "import sys, torch; from volume_cli.render import render, Backend; "
        "from volume_cli.render.bench import head_like_splats; "
        "from volume_cli.render.paths import render_intrinsics; "
        "r = render(head_like_splats(50), torch.eye(4)[None], render_intrinsics(8, 0.6)[None], 8, 8); "
        "assert 'gsplat' not in sys.modules, 'gsplat was imported'; "
        "assert 'volume_cli.render.rasterize_numba' in sys.modules, 'auto did not render with numba'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert Backend("auto") is Backend.AUTO


@pytest.mark.parametrize("num_cameras", [1, 4])
def test_compiled_projection_matches_torch_projection(num_cameras):
    """The compiled projection (no-gradient renders) and torch's (renders that need gradients)
    must give the same numbers, or a render would change when gradients are switched on."""
    means, quats, scales, opacities, _ = scene(400, seed=6)
    means[::7, 2] *= -1  # some behind the camera
    viewmats, Ks = cameras(num_cameras, 40, 30)
    ours = rasterize_numba.project_gaussians(means, quats, scales, opacities, viewmats, Ks, 40, 30)
    theirs = project_gaussians(means, quats, scales, opacities, viewmats, Ks, 40, 30)
    assert torch.equal(ours[3], theirs[3]), "radii (which splats are drawn, and their boxes) differ"
    drawn = theirs[3][..., 0] > 0
    assert 100 < drawn.sum() < drawn.numel()
    # float32: the compiled projection computes in float64 and rounds once.
    torch.testing.assert_close(ours[0][drawn], theirs[0][drawn], rtol=1e-6, atol=1e-4)  # pixels
    torch.testing.assert_close(ours[1][drawn], theirs[1][drawn], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ours[2], theirs[2], rtol=1e-6, atol=0)


@pytest.mark.parametrize("num_cameras", [1, 3])
def test_compiled_projection_gradients_match_torch_autograd(num_cameras):
    """The compiled projection's hand-written backward against torch's autograd of the torch
    projection, float64, with splats clamped at the view's edge and behind the camera among them."""
    means, quats, scales, opacities, _ = scene(200, seed=8, dtype=torch.float64)
    means[::5, 0] += 3.0  # far right of the view: the Jacobian's x/z clamp binds
    means[::11, 2] *= -1  # behind the camera: culled, no gradient
    means, quats, scales = (t.requires_grad_() for t in (means, quats, scales))
    viewmats, Ks = cameras(num_cameras, 30, 20, dtype=torch.float64)
    g = torch.Generator().manual_seed(9)
    weights = [torch.rand(num_cameras, 200, k, generator=g, dtype=torch.float64) for k in (2, 3, 1)]
    grads = []
    for projection in (rasterize_numba.project_gaussians, project_gaussians):
        means2d, conics, depths, radii = projection(means, quats, scales, opacities, viewmats, Ks, 30, 20)
        drawn = (radii[..., :1] > 0).to(torch.float64)  # what a render uses; the rest is unset
        loss = ((means2d * weights[0] + conics.mul(weights[1]).sum(-1, keepdim=True) + depths[..., None] * weights[2]) * drawn).sum()
        grads.append(torch.autograd.grad(loss, [means, quats, scales]))
    for ours, theirs in zip(*grads):
        assert theirs.abs().max() > 0
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)  # float64, same function


def test_compiled_projection_gradcheck():
    means, quats, scales, opacities, _ = scene(8, seed=12, dtype=torch.float64)
    viewmats, Ks = cameras(2, 16, 12, dtype=torch.float64)

    def fn(means, quats, scales):
        means2d, conics, depths, _ = rasterize_numba.project_gaussians(means, quats, scales, opacities, viewmats, Ks, 16, 12)
        return means2d, conics, depths

    inputs = tuple(t.requires_grad_() for t in (means, quats, scales))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_numba_render_is_the_same_with_and_without_gradients():
    g = splats(300, seed=4)
    viewmats, Ks = cameras(2, 40, 32)
    with torch.no_grad():
        plain = rasterize_numba.rasterize(g.means, g.quats, g.scales(), g.opacities(), g.rgb(), viewmats, Ks, 40, 32)
    means = g.means.clone().requires_grad_()
    tracked = rasterize_numba.rasterize(means, g.quats, g.scales(), g.opacities(), g.rgb(), viewmats, Ks, 40, 32)
    for a, b in zip(plain, tracked):
        # The two projections round differently in float32 (test above); no splat changes hands.
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-5)


def test_numba_backend_moves_cuda_inputs_and_rejects_them_below_render():
    g = splats(20)
    viewmats, Ks = cameras(1, 16, 16)
    if torch.cuda.is_available():  # render() brings them to the CPU and the result back
        r = render(g.to("cuda"), viewmats, Ks, 16, 16, backend="numba")
        assert r.rgb.is_cuda
    with pytest.raises(ValueError, match="CPU tensors"):
        rasterize_numba.rasterize(g.means.to("meta"), g.quats, g.scales(), g.opacities(), g.rgb(), viewmats, Ks, 16, 16)


def test_auto_backend_on_the_cpu_is_numba():
    assert resolve_backend("auto", "cpu") is Backend.NUMBA
    assert resolve_backend("torch", "cpu") is Backend.TORCH  # asked for by name: as given
    if not torch.cuda.is_available():
        assert resolve_backend("auto") is Backend.NUMBA


def test_compiled_kernels_are_cached_on_disk():
    """A second process loads the machine code the first one wrote instead of compiling again."""
    code = (
        "import torch; from volume_cli.render import rasterize_numba as rn; "
        "from volume_cli.render.bench import head_like_splats; "
        "from volume_cli.render.paths import render_intrinsics; "
        "g = head_like_splats(50); "
        "rn.rasterize(g.means, g.quats, g.scales(), g.opacities(), g.rgb(), torch.eye(4)[None], "
        "torch.tensor(render_intrinsics(8, 0.6), dtype=torch.float32)[None], 8, 8); "
        "print(len(rn._composite_tiles.stats.cache_hits), len(rn._composite_tiles.stats.cache_misses))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # compiles (or loads) once
    hits, misses = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert int(hits) >= 1 and int(misses) == 0


def test_renders_from_several_threads_share_numbas_pool_safely():
    """numba's fallback thread pool (workqueue, used where no OpenMP runtime is found) aborts the
    process on concurrent launches; the kernel lock serialises them. Four threads render at once."""
    code = (
        "import threading, torch; from volume_cli.render import rasterize_numba as rn; "
        "from volume_cli.render.bench import head_like_splats; "
        "from volume_cli.render.paths import render_intrinsics; "
        "g = head_like_splats(3000); K = torch.tensor(render_intrinsics(64, 0.6), dtype=torch.float32)[None]; "
        "work = lambda: [rn.rasterize(g.means, g.quats, g.scales(), g.opacities(), g.rgb(), torch.eye(4)[None], K, 64, 64) for _ in range(20)]; "
        "threads = [threading.Thread(target=work) for _ in range(4)]; [t.start() for t in threads]; [t.join() for t in threads]; "
        "import numba; print(numba.threading_layer())"
    )
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "workqueue"


def test_linear_composite_is_bit_for_bit_the_composite():
    """Colour fitting's fast path: terms found once, each colouring a weighted sum; on random
    scenes (up to ~30 terms a pixel), two cameras and a background, it must equal the composite
    exactly: colours, alphas and depths."""
    for g, size in ((splats(120, seed=4), 40), (splats(60, seed=5), 33)):
        viewmats, Ks = cameras(2, size, size - 6)
        placement = rasterize_numba.place(g.means, g.quats, g.scales(), g.opacities(), viewmats, Ks, size, size - 6)
        backgrounds = torch.tensor([[0.2, 0.3, 0.4], [1.0, 0.0, 0.5]])
        linear = rasterize_numba.linear_composite(placement, backgrounds)
        assert linear is not None, "the terms should fit"
        for seed in (1, 2):
            rgb = torch.rand(g.count, 3, generator=torch.Generator().manual_seed(seed))
            for got, want in zip(linear(rgb), rasterize_numba.composite(placement, rgb, backgrounds)):
                assert torch.equal(got, want)


def test_linear_composites_alive_together_keep_their_own_terms():
    """The term arrays are reused between calls: two colourings alive at once (two placements of
    the same shape) must not share them, and one collected gives its arrays to the next call."""
    viewmats, Ks = cameras(1, 36, 30)
    placements = [rasterize_numba.place(g.means, g.quats, g.scales(), g.opacities(), viewmats, Ks, 36, 30)
                  for g in (splats(80, seed=7), splats(90, seed=8))]
    first, second = (rasterize_numba.linear_composite(p) for p in placements)
    for linear, placement, g in zip((first, second), placements, (splats(80, seed=7), splats(90, seed=8))):
        rgb = torch.rand(g.count, 3, generator=torch.Generator().manual_seed(3))
        for got, want in zip(linear(rgb), rasterize_numba.composite(placement, rgb)):
            assert torch.equal(got, want)
    lent = first.__closure__  # the arrays the first colouring holds
    held = {id(cell.cell_contents) for cell in lent if isinstance(cell.cell_contents, np.ndarray)}
    del first, lent
    third = rasterize_numba.linear_composite(placements[1])
    again = {id(cell.cell_contents) for cell in third.__closure__ if isinstance(cell.cell_contents, np.ndarray)}
    assert held & again, "the collected colouring's arrays were not reused"
    rgb = torch.rand(90, 3, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(third(rgb), second(rgb)))


def test_linear_composite_declines_pixels_with_too_many_terms():
    """Many faint splats over one pixel: more terms than it stores, so it returns None, and the
    fixed-geometry renderer composites as usual (and still equals a plain render)."""
    from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
    from volume_cli.render import fixed_geometry_renderer

    n = rasterize_numba.TERMS_PER_PIXEL + 16
    g = Gaussians(means=torch.tensor([[0.0, 0.0, 1.0]]).repeat(n, 1) + torch.linspace(0, 0.01, n)[:, None] * torch.tensor([0.0, 0.0, 1.0]),
                  quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1), log_scales=torch.full((n, 3), -3.0),
                  opacity_logits=torch.full((n,), -3.0), sh=torch.zeros(n, 1, 3))
    viewmats, Ks = cameras(1, 16, 16)
    placement = rasterize_numba.place(g.means, g.quats, g.scales(), g.opacities(), viewmats, Ks, 16, 16)
    assert rasterize_numba.linear_composite(placement) is None
    f = fixed_geometry_renderer(g, viewmats, Ks, 16, 16, backend="numba")
    rgb = torch.rand(n, 3, generator=torch.Generator().manual_seed(0))
    want = render(Gaussians(means=g.means, quats=g.quats, log_scales=g.log_scales, opacity_logits=g.opacity_logits,
                            sh=rgb_to_sh_dc(rgb)[:, None, :]), viewmats, Ks, 16, 16, backend="numba")
    torch.testing.assert_close(f(rgb).rgb, want.rgb, rtol=0, atol=1e-6)


@pytest.mark.parametrize("count", [0, 1, 2, 300, 5000])
def test_front_to_back_order_is_the_stable_depth_sort(count):
    """The radix sort of depths must give numpy's stable argsort exactly: ties (repeated depths)
    in id order, depths over several powers of two so that every 8-bit pass runs, and a few
    visible ids out of many."""
    rng = np.random.default_rng(count)
    depths = np.exp(rng.uniform(np.log(0.01), np.log(80.0), 3 * count)).astype(np.float32)
    depths[::3] = depths[1::3][: len(depths[::3])]  # ties
    visible = np.flatnonzero(rng.random(3 * count) < 0.6)
    want = visible[np.argsort(depths[visible], kind="stable")]
    assert np.array_equal(rasterize_numba._front_to_back(depths, visible, near_plane=0.01), want)


def test_tile_lists_are_front_to_back_and_the_same_for_any_number_of_binning_runs():
    """Binning in parallel runs must give one result whatever the number of runs (1 to more runs
    than splats have tiles): each tile's list the splats touching it, in depth order, and each
    entry's geometry a copy of its splat's."""
    g = splats(400, seed=21)
    viewmats, Ks = cameras(2, 70, 45)
    means2d, conics, depths, radii = rasterize_numba.project_gaussians(
        g.means, g.quats, g.scales(), g.opacities(), viewmats, Ks, 70, 45, 0.01, 1e10, 0.3)
    flat = [t.reshape(len(viewmats) * g.count, -1).numpy() for t in (means2d, conics)]
    opacities = g.opacities().repeat(len(viewmats)).numpy()
    radii_np = radii.reshape(-1, 2).numpy()
    order = rasterize_numba._front_to_back(depths.reshape(-1).numpy(), np.flatnonzero(radii_np[:, 0] > 0), 0.01)
    tiles_x, tiles_y, tile = 5, 3, rasterize_numba.TILE
    results = [rasterize_numba._bin_tiles(*flat, opacities, radii_np, order, 2, tiles_x, tiles_y, tile, g.count, runs)
               for runs in (1, 2, 3, 7, 64)]
    for ids, starts, geometry in results[1:]:
        assert np.array_equal(ids, results[0][0]) and np.array_equal(starts, results[0][1])
        assert np.array_equal(geometry, results[0][2])
    ids, starts, geometry = results[0]
    rank = np.empty(len(viewmats) * g.count, np.int64)
    rank[order] = np.arange(len(order))
    for t in range(len(starts) - 1):
        members = ids[starts[t]:starts[t + 1]]
        assert np.all(np.diff(rank[members]) > 0), f"tile {t} is not front to back"
        cam, within = divmod(t, tiles_x * tiles_y)
        x0, y0 = (within % tiles_x) * tile, (within // tiles_x) * tile
        touching = [k for k in order if k // g.count == cam
                    and flat[0][k, 0] + radii_np[k, 0] > x0 and flat[0][k, 0] - radii_np[k, 0] < x0 + tile
                    and flat[0][k, 1] + radii_np[k, 1] > y0 and flat[0][k, 1] - radii_np[k, 1] < y0 + tile]
        assert sorted(members) == sorted(touching), f"tile {t} holds the wrong splats"
    assert len(ids) > 3 * len(order) // 2, "the scene should put splats on several tiles"
    assert np.array_equal(geometry[:, :2], flat[0][ids]) and np.array_equal(geometry[:, 2:5], flat[1][ids])
    assert np.array_equal(geometry[:, 5], opacities[ids])
