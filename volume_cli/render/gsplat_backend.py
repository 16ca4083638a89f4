"""gsplat 1.5.3 behind the same signature as ``rasterize_torch.rasterize``. CUDA tensors only.

gsplat is imported on the first call, so CPU machines never need it. Its first call compiles the
CUDA kernels (minutes, needs nvcc) unless a compiled build is cached.
"""

from __future__ import annotations

from torch import Tensor

from volume_cli.render.rasterize_torch import check_rasterize_inputs


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    backgrounds: Tensor | None = None,  # [C, D]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns colors [C, H, W, D], alphas [C, H, W], expected depths [C, H, W]; see
    ``rasterize_torch.rasterize`` for the arguments."""
    check_rasterize_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds)
    if not means.is_cuda:
        raise ValueError(f"the gsplat backend needs CUDA tensors, got means on {means.device}")
    import gsplat

    render, alphas, _ = gsplat.rasterization(
        means,
        quats,  # w first, normalised inside gsplat
        scales,
        opacities,
        colors,  # post-activation: sh_degree=None
        viewmats,
        Ks,
        width,
        height,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        sh_degree=None,
        backgrounds=backgrounds,  # gsplat appends a 0 background for the depth channel
        render_mode="RGB+ED",  # the last channel: sum(w z) / max(alpha, 1e-10)
        rasterize_mode="classic",
    )
    return render[..., :-1], alphas[..., 0], render[..., -1]
