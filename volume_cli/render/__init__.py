"""Rendering Gaussians: one entry point, :func:`render`, over three backends.

* ``numba``: the compiled CPU rasteriser (``rasterize_numba``), the CPU default; imported (and
  numba with it) only when a render runs on it.
* ``gsplat``: gsplat 1.5.3's CUDA rasteriser (``gsplat_backend``), imported only when chosen.
* ``torch``: the pure-torch rasteriser (``rasterize_torch``), any device: the slow reference the
  others are tested against, and the CPU fallback where numba cannot be imported.

All give the same images (gsplat's "classic" mode, eps2d 0.3, near plane 0.01 m) within float32
rounding. Colour is view-independent: the SH DC term (``Gaussians.rgb()``); higher SH bands are
not evaluated by either backend, so the two agree and the render matches what the PLY writer's
DC colour says.
"""

from __future__ import annotations

import enum
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
from volume_cli.render import gsplat_backend, rasterize_torch  # neither imports gsplat until called


class Backend(str, enum.Enum):
    """Which rasteriser renders: ``auto`` is gsplat when CUDA and gsplat are both available, else
    numba (else torch)."""

    AUTO = "auto"
    NUMBA = "numba"
    TORCH = "torch"
    GSPLAT = "gsplat"


@dataclass(frozen=True)
class RenderResult:
    rgb: Tensor  # [C, H, W, 3] in [0, 1] where the colours are, background blended in
    alpha: Tensor  # [C, H, W] accumulated opacity, 1 - final transmittance
    depth: Tensor  # [C, H, W] expected camera-frame z in metres, 0 where nothing was drawn


def resolve_backend(backend: Backend | str, device: torch.device | str | None = None) -> Backend:
    """``auto`` -> gsplat when CUDA is present, gsplat is installed (found, not imported) and
    ``device`` (where the caller wants the work done; None: anywhere) is not the CPU; else numba
    when it is installed, else torch. The others as given.

    Example: ``resolve_backend("auto", "cpu")`` is ``Backend.NUMBA`` on every machine with numba."""
    backend = Backend(backend)
    if backend is not Backend.AUTO:
        return backend
    on_cpu = device is not None and torch.device(device).type == "cpu"
    if not on_cpu and torch.cuda.is_available() and importlib.util.find_spec("gsplat") is not None:
        return Backend.GSPLAT
    return Backend.NUMBA if importlib.util.find_spec("numba") is not None else Backend.TORCH


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
    if backend is Backend.GSPLAT:
        rasterize = gsplat_backend.rasterize
        # gsplat runs on CUDA only: move there for the call and bring the result back.
        device = gaussians.means.device if gaussians.means.is_cuda else torch.device("cuda")
    elif backend is Backend.NUMBA:
        from volume_cli.render import rasterize_numba  # imports numba: only when rendering with it

        rasterize = rasterize_numba.rasterize
        device = torch.device("cpu")  # CPU only, likewise
    else:
        rasterize = rasterize_torch.rasterize
        device = gaussians.means.device
    g, viewmats, Ks, backgrounds = _inputs_on(device, gaussians, viewmats, Ks, background)
    rgb, alpha, depth = rasterize(
        g.means, g.quats, g.scales(), g.opacities(), g.rgb(), viewmats, Ks, width, height, backgrounds
    )
    home = gaussians.means.device
    return RenderResult(rgb=rgb.to(home), alpha=alpha.to(home), depth=depth.to(home))


def _inputs_on(device: torch.device | str, gaussians: Gaussians, viewmats, Ks, background):
    """render's arguments checked and moved to ``device`` in float32: (gaussians, viewmats
    [C, 4, 4], Ks [C, 3, 3], backgrounds [C, 3]); the rasteriser checks the rest."""
    if gaussians.means.ndim != 2:
        raise ValueError(f"gaussians must be a single set [N, ...], got means {list(gaussians.means.shape)}")
    if np.ndim(viewmats) != 3:
        raise ValueError(f"viewmats must be [C, 4, 4], got {list(np.shape(viewmats))}")
    if len(background) != 3:
        raise ValueError(f"background must be (r, g, b), got {background!r}")
    g = gaussians.map(lambda t: t.to(device=device, dtype=torch.float32))
    viewmats = torch.as_tensor(viewmats, dtype=torch.float32, device=device)
    Ks = torch.as_tensor(Ks, dtype=torch.float32, device=device)
    backgrounds = torch.tensor([background], dtype=torch.float32, device=device).expand(viewmats.shape[0], 3)
    return g, viewmats, Ks, backgrounds


def fixed_geometry_renderer(
    gaussians: Gaussians,
    viewmats: Tensor | np.ndarray,  # [C, 4, 4]
    Ks: Tensor | np.ndarray,  # [C, 3, 3]
    width: int,
    height: int,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    backend: Backend | str = Backend.AUTO,
) -> Callable[[Tensor], RenderResult]:
    """``render`` of one geometry under many colourings: returns ``f(rgb)`` with rgb [N, 3] the
    Gaussians' colours (clamped at 0 as ``Gaussians.rgb()`` is), giving what ``render`` would for
    the same Gaussians so coloured. On the numba backend the splats are projected and binned once,
    for every call (colour fitting renders one placement several times); on the others each call
    is a plain render.

    Example: ``f = fixed_geometry_renderer(g, views, Ks, 256, 256); f(rgb_a).rgb, f(rgb_b).rgb``."""
    backend = resolve_backend(backend)
    n = gaussians.count

    def check(rgb: Tensor) -> None:
        if list(rgb.shape) != [n, 3]:
            raise ValueError(f"rgb must be [{n}, 3], got {list(rgb.shape)}")

    if backend is not Backend.NUMBA:
        def plain(rgb: Tensor) -> RenderResult:
            check(rgb)
            coloured = Gaussians(means=gaussians.means, quats=gaussians.quats, log_scales=gaussians.log_scales,
                                 opacity_logits=gaussians.opacity_logits, sh=rgb_to_sh_dc(rgb)[:, None, :])
            return render(coloured, viewmats, Ks, width, height, background, backend)
        return plain

    from volume_cli.render import rasterize_numba
    from volume_cli.render.rasterize_torch import check_rasterize_inputs

    home = gaussians.means.device
    g, viewmats, Ks, backgrounds = _inputs_on("cpu", gaussians, viewmats, Ks, background)
    scales, opacities = g.scales(), g.opacities()
    check_rasterize_inputs(g.means, g.quats, scales, opacities, g.rgb(), viewmats, Ks, width, height, backgrounds)
    placement = rasterize_numba.place(g.means, g.quats, scales, opacities, viewmats, Ks, width, height)
    # Each colouring a weighted sum of terms found once, where they fit in memory (bit for bit a composite).
    linear = rasterize_numba.linear_composite(placement, backgrounds)

    def coloured(rgb: Tensor) -> RenderResult:
        check(rgb)
        rgb = rgb.to(device="cpu", dtype=torch.float32).clamp_min(0.0)
        out = linear(rgb) if linear is not None else rasterize_numba.composite(placement, rgb, backgrounds)
        return RenderResult(*(t.to(home) for t in out))

    return coloured


__all__ = ["Backend", "RenderResult", "fixed_geometry_renderer", "render", "resolve_backend"]
