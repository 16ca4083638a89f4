"""Input-view colour fitting (predictors/colour_fit.py) on a known splat grid."""

from __future__ import annotations

import numpy as np
import torch

from volume_cli.gaussians import Gaussians, rgb_to_sh_dc, sh_dc_to_rgb
from volume_cli.predictors.colour_fit import fit_colours
from volume_cli.render import render

S = 24


def _grid(colours: torch.Tensor, sigma_px: float) -> tuple[Gaussians, np.ndarray]:
    """One round splat on every pixel's ray at 0.5 m, sigma_px wide: overlapping footprints."""
    K = np.array([[30.0, 0, S / 2], [0, 30.0, S / 2], [0, 0, 1]])
    v, u = np.mgrid[0:S, 0:S] + 0.5
    rays = np.stack([(u - S / 2) / 30.0, (v - S / 2) / 30.0, np.ones_like(u)], -1).reshape(-1, 3)
    n = S * S
    g = Gaussians(means=torch.from_numpy(rays * 0.5).float(), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                  log_scales=torch.full((n, 3), float(np.log(sigma_px * 0.5 / 30.0))),
                  opacity_logits=torch.full((n,), 4.0), sh=rgb_to_sh_dc(colours)[:, None, :])
    return g, K


def _render(g, K):
    return render(g, np.eye(4)[None], K[None], S, S, backend="torch").rgb[0].reshape(-1, 3)


def test_fitting_undoes_the_blur_of_overlapping_splats_and_leaves_the_rest():
    torch.manual_seed(0)
    # An image-like target: smooth shading plus fine texture, inside [0.1, 0.9].
    v, u = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    smooth = torch.stack([torch.sin(u / 3), torch.cos(v / 4), torch.sin((u + v) / 5)], -1).reshape(-1, 3)
    target = (0.5 + 0.25 * smooth + 0.15 * (torch.rand(S * S, 3) - 0.5)).clamp(0, 1)
    g, K = _grid(target.clone(), sigma_px=0.35)  # the geometric predictor's front splats
    before = (_render(g, K) - target).abs().mean()
    fitted_idx = torch.arange(S * S // 2)  # the top half only
    out = fit_colours(g, fitted_idx, fitted_idx, target, K, S, steps=3)
    after = (_render(out, K) - target)[: S * S // 2].abs().mean()
    assert after < 0.5 * before, (float(before), float(after))
    torch.testing.assert_close(out.sh[S * S // 2:], g.sh[S * S // 2:])  # the others untouched
    colours = sh_dc_to_rgb(out.sh[:, 0])
    assert colours.min() >= -0.25 - 1e-6 and colours.max() <= 1.25 + 1e-6
    assert fit_colours(g, fitted_idx, fitted_idx, target, K, S, steps=0) is g
