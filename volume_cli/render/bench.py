"""Render timing on a head-like splat set, for ``volume bench`` (not a test)."""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch

from volume_cli.camera import CROP_EXTENT_M
from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
from volume_cli.render import Backend, render, resolve_backend
from volume_cli.render.paths import render_intrinsics

HEAD_DISTANCE_M = 0.6  # a laptop webcam's typical distance to the face
HEAD_SEMI_AXES_M = (0.08, 0.115, 0.10)  # half width, height, depth of a head


def head_like_splats(count: int = 100_000, crop_size: int = 256, seed: int = 0) -> Gaussians:
    """``count`` splats on an ellipsoidal head shell at ``HEAD_DISTANCE_M`` on the optical axis
    (100k: about what a 256 crop's two-per-pixel prediction keeps after pruning), each about a
    crop pixel wide (the crop spans CROP_EXTENT_M at the head's distance), mostly opaque, in two
    layers a centimetre apart (a surface and the splat behind it); 80 % face the camera."""
    g = torch.Generator().manual_seed(seed)
    # Points on the front of the shell (the part the crop sees), then the back of the head.
    direction = torch.randn(count, 3, generator=g)
    direction[:, 2] = -direction[:, 2].abs() * torch.where(torch.rand(count, generator=g) < 0.8, 1.0, -1.0)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    depth_layer = torch.where(torch.rand(count, generator=g) < 0.5, 0.0, 0.01)
    semi = torch.tensor(HEAD_SEMI_AXES_M)
    means = direction * (semi - depth_layer[:, None]) + torch.tensor([0.0, 0.0, HEAD_DISTANCE_M])
    pixel_m = CROP_EXTENT_M / crop_size
    log_scales = math.log(pixel_m) + 0.3 * torch.randn(count, 3, generator=g)
    rgb = torch.tensor([0.8, 0.6, 0.5]) + 0.1 * torch.randn(count, 3, generator=g)
    return Gaussians(
        means=means,
        quats=torch.randn(count, 4, generator=g),
        log_scales=log_scales,
        opacity_logits=2.0 + torch.randn(count, generator=g),  # opacity around 0.88
        sh=rgb_to_sh_dc(rgb)[:, None, :],
    )


def bench_render(
    sizes: tuple[int, ...] = (256, 512), count: int = 100_000, repeats: int = 3, backend: Backend | str = Backend.AUTO
) -> dict[int, float]:
    """Median milliseconds per frame (of ``repeats`` after a warm-up) for each output size, the
    head framed as in the crop. Prints one line per size to stderr and returns {size: ms}."""
    backend = resolve_backend(backend)
    gaussians = head_like_splats(count)
    if backend is Backend.GSPLAT:
        gaussians = gaussians.to(torch.device("cuda"))  # time the rendering, not the transfers
    on_cuda = gaussians.means.is_cuda
    results = {}
    for size in sizes:
        K = torch.as_tensor(render_intrinsics(size, HEAD_DISTANCE_M), dtype=torch.float32)[None]
        viewmats = torch.eye(4)[None]
        times = []
        for _ in range(repeats + 1):  # the first run warms up (allocations, kernel compilation)
            if on_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.no_grad():
                render(gaussians, viewmats, K, size, size, backend=backend)
            if on_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        results[size] = 1000.0 * float(np.median(times[1:]))
        print(f"render {size}x{size}, {count} splats, {backend.value}: {results[size]:.1f} ms/frame", file=sys.stderr)
    return results
