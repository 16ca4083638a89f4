"""Rendering Gaussians: one entry point, :func:`render`, over two backends.

* ``torch``: the pure-torch rasteriser (``rasterize_torch``), any device, used on CPUs and in tests.
* ``gsplat``: gsplat 1.5.3's CUDA rasteriser (``gsplat_backend``), imported only when chosen.

Both give the same images (gsplat's "classic" mode, eps2d 0.3, near plane 0.01 m) within float32
rounding. Colour is view-independent: the SH DC term (``Gaussians.rgb()``); higher SH bands are
not evaluated by either backend, so the two agree and the render matches what the PLY writer's
DC colour says.
"""

from __future__ import annotations

import enum
import importlib.util
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from volume_cli.gaussians import Gaussians
from volume_cli.render import gsplat_backend, rasterize_torch  # neither imports gsplat until called


class Backend(str, enum.Enum):
    """Which rasteriser renders: ``auto`` is gsplat when CUDA and gsplat are both available,
    else torch."""

    AUTO = "auto"
    TORCH = "torch"
    GSPLAT = "gsplat"


@dataclass(frozen=True)
class RenderResult:
    rgb: Tensor  # [C, H, W, 3] in [0, 1] where the colours are, background blended in
    alpha: Tensor  # [C, H, W] accumulated opacity, 1 - final transmittance
    depth: Tensor  # [C, H, W] expected camera-frame z in metres, 0 where nothing was drawn


def resolve_backend(backend: Backend | str) -> Backend:
    """``auto`` -> gsplat when CUDA is present and gsplat is installed (found, not imported), else
    torch; the others as given."""
    backend = Backend(backend)
    if backend is Backend.AUTO:
        usable = torch.cuda.is_available() and importlib.util.find_spec("gsplat") is not None
        return Backend.GSPLAT if usable else Backend.TORCH
    return backend


def render(
    gaussians: Gaussians,
    viewmats: Tensor | np.ndarray,  # [C, 4, 4]
    Ks: Tensor | np.ndarray,  # [C, 3, 3]
    width: int,
    height: int,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    backend: Backend | str = Backend.AUTO,
) -> RenderResult:
    """Render one Gaussian set ([N, ...], any frame) into C cameras.

    viewmats: world-to-camera, OpenCV axes (x right, y down, z forward), metres, e.g. from
    ``render.paths``. Ks: intrinsics, pixel centres at +0.5. background: rgb in [0, 1].
    Results are on the Gaussians' device, in float32.

    Example: ``render(g, np.eye(4)[None], K[None], 256, 256).rgb[0]`` is the view from the
    original camera.
    """
    backend = resolve_backend(backend)
    if gaussians.means.ndim != 2:
        raise ValueError(f"gaussians must be a single set [N, ...], got means {list(gaussians.means.shape)}")
    if np.ndim(viewmats) != 3:
        raise ValueError(f"viewmats must be [C, 4, 4], got {list(np.shape(viewmats))}")
    if len(background) != 3:
        raise ValueError(f"background must be (r, g, b), got {background!r}")
    if backend is Backend.GSPLAT:
        rasterize = gsplat_backend.rasterize
        # gsplat runs on CUDA only: move there for the call and bring the result back.
        device = gaussians.means.device if gaussians.means.is_cuda else torch.device("cuda")
    else:
        rasterize = rasterize_torch.rasterize
        device = gaussians.means.device
    g = gaussians.map(lambda t: t.to(device=device, dtype=torch.float32))
    viewmats = torch.as_tensor(viewmats, dtype=torch.float32, device=device)
    Ks = torch.as_tensor(Ks, dtype=torch.float32, device=device)
    backgrounds = torch.tensor([background], dtype=torch.float32, device=device).expand(viewmats.shape[0], 3)
    rgb, alpha, depth = rasterize(
        g.means, g.quats, g.scales(), g.opacities(), g.rgb(), viewmats, Ks, width, height, backgrounds
    )
    home = gaussians.means.device
    return RenderResult(rgb=rgb.to(home), alpha=alpha.to(home), depth=depth.to(home))


__all__ = ["Backend", "RenderResult", "render", "resolve_backend"]
