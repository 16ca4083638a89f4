import math

import pytest
import torch

from volume_cli.gaussians import (
    SH_C0,
    Gaussians,
    matrix_to_quat,
    quat_multiply,
    quat_to_matrix,
    rgb_to_sh_dc,
    sh_dc_to_rgb,
)


def make(n=10, batch=(), sh_degree=0, seed=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return Gaussians(
        means=torch.randn(*batch, n, 3, generator=g, dtype=torch.float64),
        quats=torch.randn(*batch, n, 4, generator=g, dtype=torch.float64),
        log_scales=torch.randn(*batch, n, 3, generator=g, dtype=torch.float64) - 4,
        opacity_logits=torch.randn(*batch, n, generator=g, dtype=torch.float64),
        sh=torch.randn(*batch, n, k, 3, generator=g, dtype=torch.float64),
    )


def random_rotation(seed=0) -> torch.Tensor:
    q = torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return quat_to_matrix(q)


def test_identity_quaternion_is_identity_matrix():
    assert torch.equal(quat_to_matrix(torch.tensor([1.0, 0.0, 0.0, 0.0])), torch.eye(3))


def test_quaternion_convention_w_first_rotates_about_z():
    half = math.radians(90) / 2
    R = quat_to_matrix(torch.tensor([math.cos(half), 0.0, 0.0, math.sin(half)], dtype=torch.float64))
    # +90 deg about z takes x to y.
    assert torch.allclose(R @ torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0.0, 1, 0], dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_matrix_quaternion_round_trip(seed):
    R = random_rotation(seed)
    assert torch.allclose(quat_to_matrix(matrix_to_quat(R)), R, atol=1e-12)


def test_matrix_to_quat_handles_half_turns():
    # 180-degree rotations have trace -1: the w-led formula alone divides by ~0 there.
    for axis in torch.eye(3, dtype=torch.float64):
        R = 2 * torch.outer(axis, axis) - torch.eye(3, dtype=torch.float64)
        assert torch.allclose(quat_to_matrix(matrix_to_quat(R)), R, atol=1e-12)


def test_quat_multiply_composes_rotations():
    a, b = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    assert torch.allclose(quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-12)


def test_sh_dc_colour_convention():
    assert SH_C0 == pytest.approx(0.28209479)
    rgb = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(sh_dc_to_rgb(rgb_to_sh_dc(rgb)), rgb)
    assert torch.allclose(rgb_to_sh_dc(torch.tensor([0.5])), torch.tensor([0.0]))


@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_transform_moves_covariances_like_points(batch):
    """Slow obvious reference: a rigid transform maps covariance S to R S R^T."""
    g = make(batch=batch)
    R, t = random_rotation(3), torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    moved = g.transform(R, t)
    assert torch.allclose(moved.means, g.means @ R.T + t, atol=1e-12)
    assert torch.allclose(moved.covariances(), R @ g.covariances() @ R.T, atol=1e-12)
    assert torch.equal(moved.opacity_logits, g.opacity_logits) and torch.equal(moved.sh, g.sh)


def test_shape_checks_name_the_argument():
    g = make()
    with pytest.raises(ValueError, match="quats must be"):
        Gaussians(means=g.means, quats=g.quats[:, :3], log_scales=g.log_scales, opacity_logits=g.opacity_logits, sh=g.sh)
    with pytest.raises(ValueError, match="sh must be"):
        Gaussians(means=g.means, quats=g.quats, log_scales=g.log_scales, opacity_logits=g.opacity_logits, sh=g.sh.repeat(1, 2, 1))


def test_prune_drops_invisible_and_refuses_non_finite():
    g = make(n=6)
    g.opacity_logits[:] = torch.tensor([5.0, -10.0, 0.0, -5.4, -5.6, 3.0], dtype=torch.float64)
    kept = g.prune()  # 1/255 -> logit -5.54
    assert kept.count == 4
    assert torch.equal(kept.means, g.means[[0, 2, 3, 5]])
    g.means[1, 0] = float("nan")
    g.log_scales[4, 2] = float("inf")
    with pytest.raises(ValueError, match="2 Gaussians have non-finite"):
        g.prune()


def test_concatenate_and_index():
    a, b = make(n=3, batch=(2,)), make(n=5, batch=(2,), seed=1)
    joined = Gaussians.concatenate([a, b])
    assert joined.count == 8 and joined.means.shape == (2, 8, 3)
    assert torch.equal(joined[1].means, torch.cat([a.means[1], b.means[1]]))
