"""The slow, obvious rasteriser: every pixel against every Gaussian, one Gaussian at a time, front
to back, written as gsplat's per-pixel CUDA loop reads. Used only by the tests, to pin the fast
``rasterize_torch.rasterize`` (same signature, same outputs). Semantics: see that module's docstring.
"""

from __future__ import annotations

import torch
from torch import Tensor

from volume_cli.gaussians import quat_to_matrix
from volume_cli.render.rasterize_torch import ALPHA_MAX, ALPHA_MIN, FOV_SLACK, T_MIN, check_rasterize_inputs


def rasterize_reference(
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
    """Returns colors [C, H, W, D], alphas [C, H, W], expected depths [C, H, W]."""
    check_rasterize_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds)
    n, d = colors.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means.dtype) + 0.5, torch.arange(width, dtype=means.dtype) + 0.5, indexing="ij"
    )
    pixel = torch.stack([xs.flatten(), ys.flatten()], dim=-1).to(means.device)  # [H*W, 2]
    covariance = quat_to_matrix(quats) @ torch.diag_embed(scales.square()) @ quat_to_matrix(quats).transpose(1, 2)

    images, alphas, depth_images = [], [], []
    for cam in range(viewmats.shape[0]):
        R, t = viewmats[cam, :3, :3], viewmats[cam, :3, 3]
        fx, fy, cx, cy = Ks[cam, 0, 0], Ks[cam, 1, 1], Ks[cam, 0, 2], Ks[cam, 1, 2]
        mean_c = means @ R.T + t  # [N, 3]
        cov_c = R @ covariance @ R.T  # [N, 3, 3]

        render = torch.zeros(height * width, d, dtype=means.dtype, device=means.device)
        depth_sum = torch.zeros(height * width, dtype=means.dtype, device=means.device)
        T = torch.ones(height * width, dtype=means.dtype, device=means.device)
        done = torch.zeros(height * width, dtype=torch.bool, device=means.device)
        for g in torch.sort(mean_c[:, 2], stable=True).indices.tolist():
            x, y, z = mean_c[g]
            if not near_plane <= z <= far_plane or opacities[g] < ALPHA_MIN:
                continue
            # Pinhole Jacobian at the mean, its x/z and y/z clamped to the slightly widened view.
            tan_fovx, tan_fovy = width / (2 * fx), height / (2 * fy)
            u = torch.clamp(x / z, -cx / fx - FOV_SLACK * tan_fovx, (width - cx) / fx + FOV_SLACK * tan_fovx)
            v = torch.clamp(y / z, -cy / fy - FOV_SLACK * tan_fovy, (height - cy) / fy + FOV_SLACK * tan_fovy)
            zero = torch.zeros_like(z)
            J = torch.stack([torch.stack([fx / z, zero, -fx * u / z]), torch.stack([zero, fy / z, -fy * v / z])])
            cov2d = J @ cov_c[g] @ J.T + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
            if torch.linalg.det(cov2d) <= 0:
                continue
            conic = torch.linalg.inv(cov2d)
            mean2d = torch.stack([fx * x / z + cx, fy * y / z + cy])

            delta = mean2d - pixel  # [H*W, 2]
            sigma = 0.5 * torch.einsum("pi,ij,pj->p", delta, conic, delta)
            alpha = torch.clamp(opacities[g] * torch.exp(-sigma), max=ALPHA_MAX)
            skip = done | (sigma < 0) | (alpha < ALPHA_MIN)
            next_T = T * (1 - alpha)
            stop = ~skip & (next_T <= T_MIN)  # this pixel is finished; this Gaussian is left out
            done = done | stop
            use = ~skip & ~stop
            weight = torch.where(use, alpha * T, torch.zeros_like(alpha))
            render = render + weight[:, None] * colors[g]
            depth_sum = depth_sum + weight * z
            T = torch.where(use, next_T, T)

        if backgrounds is not None:
            render = render + T[:, None] * backgrounds[cam]
        images.append(render.reshape(height, width, d))
        alphas.append((1 - T).reshape(height, width))
        depth_images.append((depth_sum / (1 - T).clamp_min(1e-10)).reshape(height, width))
    return torch.stack(images), torch.stack(alphas), torch.stack(depth_images)
