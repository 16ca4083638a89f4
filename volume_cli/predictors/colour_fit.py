"""Input-view colour fitting: choose splat colours so that the render from the crop's own camera
reproduces the crop.

Splats overlap (every renderer dilates a footprint by 0.3 px^2, and predicted splats may be wider
than a pixel), so colours taken straight from the pixels re-render blurred. A render is linear in
the colours, so the Richardson iteration ``c <- c + (crop - render(c))`` on the pixel each splat
belongs to undoes most of that mixing in a few steps. Both predictors use it: the geometric one
for its front splats, the U-Net after its own learned colour correction.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from volume_cli.gaussians import Gaussians, rgb_to_sh_dc, sh_dc_to_rgb

# Colours may leave [0, 1] by this much: enough to undo the mixing, small enough that a splat seen
# without its neighbours (from the side, zoomed) still shows a sensible colour.
COLOUR_SLACK = 0.25


def fit_colours(g: Gaussians, fitted: Tensor, pixel: Tensor, target: Tensor, K: np.ndarray | Tensor, size: int,
                steps: int) -> Gaussians:
    """``g`` [N, ...] (one set, crop-camera frame) with the colours of the Gaussians ``fitted`` [M]
    (indices) refined over ``steps`` Richardson steps so that the render from the crop camera
    (identity pose, intrinsics K [3, 3], ``size`` square) matches ``target`` [size*size, 3] at
    ``pixel`` [M] (each fitted Gaussian's row-major pixel index). All of ``g`` is rendered, so
    what shows through or in front of the fitted splats is taken into account."""
    from volume_cli.render import fixed_geometry_renderer, resolve_backend

    if steps <= 0 or len(fitted) == 0:
        return g
    rgb = g.rgb()
    colour = sh_dc_to_rgb(g.sh[fitted, 0])
    # The geometry is the same for every step: on the compiled backend it is placed once.
    render_with = fixed_geometry_renderer(g, torch.eye(4)[None], torch.as_tensor(K, dtype=torch.float32)[None], size,
                                          size, backend=resolve_backend("auto", g.means.device))
    for _ in range(steps):
        rgb[fitted] = colour
        rendered = render_with(rgb).rgb[0].reshape(-1, 3)  # rendered as clamped at 0, as every renderer does
        colour = (colour + target[pixel] - rendered[pixel]).clamp(-COLOUR_SLACK, 1 + COLOUR_SLACK)
    sh = g.sh.clone()
    sh[fitted, 0] = rgb_to_sh_dc(colour)
    return Gaussians(means=g.means, quats=g.quats, log_scales=g.log_scales, opacity_logits=g.opacity_logits, sh=sh)
