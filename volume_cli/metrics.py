"""Image metrics on float images in [0, 1], restricted to a mask."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(image: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB. image, target [H, W, 3]; mask [H, W] bool (None = all)."""
    err = (image.clamp(0, 1) - target).square().mean(-1)
    mse = float(err[mask].mean() if mask is not None else err.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim_map(image: Tensor, target: Tensor, window_sigma: float = 1.5) -> Tensor:
    """Per-pixel structural similarity [H, W] (mean over channels), Gaussian window of
    ``window_sigma`` pixels (11 taps at 1.5, as in Wang et al. 2004), zero padding at the border."""
    x = image.clamp(0, 1).permute(2, 0, 1)[None]  # [1, 3, H, W]
    y = target.permute(2, 0, 1)[None]
    radius = int(math.ceil(3 * window_sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    g = torch.exp(-0.5 * (taps / window_sigma) ** 2)
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, -1, -1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, padding=radius, groups=3)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2  # the usual constants for a dynamic range of 1
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s[0].mean(0)


def ssim(image: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """Mean SSIM over the mask (None = all pixels). image, target [H, W, 3]."""
    s = ssim_map(image, target)
    return float(s[mask].mean() if mask is not None else s.mean())
