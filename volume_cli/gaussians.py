"""The Gaussians container: raw (pre-activation) parameters, their activations, rigid transforms,
concatenation and pruning.

Raw parameters, as the 3DGS PLY stores them:
    means           [..., N, 3]     metres, in the frame the container says (camera frame, OpenCV axes)
    quats           [..., N, 4]     rotation quaternion, w first; normalised on activation
    log_scales      [..., N, 3]     natural log of the standard deviations, metres
    opacity_logits  [..., N]        logit of opacity in (0, 1)
    sh              [..., N, K, 3]  spherical-harmonic colour coefficients, K = (degree + 1) ** 2;
                                    sh[..., 0, :] is the DC term: rgb = 0.5 + SH_C0 * sh[..., 0, :]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi)); the 3DGS colour convention


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """Colour in [0, 1] [..., 3] -> SH DC coefficient [..., 3]."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Tensor) -> Tensor:
    """SH DC coefficient [..., 3] -> colour [..., 3] (not clamped)."""
    return 0.5 + SH_C0 * dc


def sums_finite(tensors) -> bool:
    """True when each tensor's sum is finite, which it is whenever all its values are: one cheap
    reduction per tensor instead of an elementwise test. False can also mean an overflow of finite
    values, so a caller that gets False counts the non-finite values elementwise before failing."""
    return all(bool(torch.isfinite(t.sum())) for t in tensors)


def quat_to_matrix(quats: Tensor) -> Tensor:
    """Unit or non-unit quaternions [..., 4] (w, x, y, z) -> rotation matrices [..., 3, 3]."""
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(R: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] (w, x, y, z), w >= 0.

    Picks, per matrix, the largest of the four candidate denominators for numerical stability.
    """
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate solutions, each well conditioned when its leading component is large.
    cand = torch.stack(
        [
            torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        dim=-2,
    )  # [..., 4, 4]
    lead = torch.stack(
        [1 + trace, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]],
        dim=-1,
    )
    best = lead.argmax(dim=-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_left_matrix(a: Tensor) -> Tensor:
    """The 4 x 4 matrix L [..., 4, 4] of left multiplication by quaternions a [..., 4] (w first):
    a * b = L @ b, so one rotation applied to many quaternions is one matrix product."""
    w, x, y, z = a.unbind(-1)
    return torch.stack([w, -x, -y, -z, x, w, -z, y, y, z, w, -x, z, -y, x, w], dim=-1).reshape(a.shape[:-1] + (4, 4))


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b of quaternions [..., 4] (w first): rotate by b, then by a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


@dataclass
class Gaussians:
    """A set (or a batch of sets) of 3D Gaussians in raw parameters. See the module docstring."""

    means: Tensor  # [..., N, 3]
    quats: Tensor  # [..., N, 4]
    log_scales: Tensor  # [..., N, 3]
    opacity_logits: Tensor  # [..., N]
    sh: Tensor  # [..., N, K, 3]

    def __post_init__(self) -> None:
        m = self.means
        if m.ndim < 2 or m.shape[-1] != 3:
            raise ValueError(f"means must be [..., N, 3], got {tuple(m.shape)}")
        lead = tuple(m.shape[:-1])
        expected = {
            "quats": lead + (4,),
            "log_scales": lead + (3,),
            "opacity_logits": lead,
        }
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"{name} must be {list(shape)} to match means, got {list(actual)}")
        sh = self.sh
        k = sh.shape[-2] if sh.ndim >= 2 else -1
        if tuple(sh.shape[:-2]) != lead or sh.shape[-1] != 3 or math.isqrt(k) ** 2 != k or k < 1:
            raise ValueError(f"sh must be {list(lead) + ['K', 3]} with K a square (1, 4, 9, 16), got {list(sh.shape)}")

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """N, the number of Gaussians per set."""
        return self.means.shape[-2]

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.sh.shape[-2]) - 1

    # -- activations -----------------------------------------------------------------------------
    def scales(self) -> Tensor:
        """Standard deviations in metres [..., N, 3]."""
        return self.log_scales.exp()

    def opacities(self) -> Tensor:
        """Opacity in (0, 1) [..., N]."""
        return torch.sigmoid(self.opacity_logits)

    def unit_quats(self) -> Tensor:
        """Normalised quaternions [..., N, 4], w first."""
        return self.quats / self.quats.norm(dim=-1, keepdim=True)

    def rgb(self) -> Tensor:
        """View-independent colour from the DC term, clamped at 0 as 3DGS renderers do [..., N, 3]."""
        return sh_dc_to_rgb(self.sh[..., 0, :]).clamp_min(0.0)

    def covariances(self) -> Tensor:
        """World-space covariance matrices R S S^T R^T [..., N, 3, 3]."""
        R = quat_to_matrix(self.quats)
        S = self.scales()
        return (R * S[..., None, :].square()) @ R.transpose(-1, -2)

    # -- structure -------------------------------------------------------------------------------
    def map(self, fn) -> "Gaussians":
        """Apply ``fn`` to every tensor (e.g. ``lambda t: t.to(device)``)."""
        return Gaussians(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str) -> "Gaussians":
        return self.map(lambda t: t.to(device))

    def select(self, index: Tensor) -> "Gaussians":
        """Keep Gaussians by boolean mask or index over N. Only for a single set ([N, ...])."""
        if self.means.ndim != 2:
            raise ValueError("select works on a single set; index the batch first")
        index = torch.as_tensor(index, device=self.means.device)
        if index.dtype == torch.bool:  # one nonzero for all five tensors, not one per tensor
            index = torch.nonzero(index).squeeze(1)
        return self.map(lambda t: t.index_select(0, index))

    def __getitem__(self, i: int) -> "Gaussians":
        """The i-th set of a batch."""
        if self.means.ndim < 3:
            raise IndexError("not a batch of sets")
        return self.map(lambda t: t[i])

    @staticmethod
    def concatenate(sets: list["Gaussians"]) -> "Gaussians":
        """Join sets along N. All must share the SH degree."""
        if not sets:
            raise ValueError("nothing to concatenate")
        return Gaussians(
            **{f.name: torch.cat([getattr(s, f.name) for s in sets], dim=sets[0].means.ndim - 2) for f in fields(Gaussians)}
        )

    def transform(self, R: Tensor, t: Tensor | None = None) -> "Gaussians":
        """Rigid transform x -> R x + t of every Gaussian. R [3, 3] or [..., 3, 3], t [3] or [..., 3].

        Means rotate and translate, orientations rotate; scales, opacity and colour are unchanged.
        Higher SH bands are view-dependent and are not rotated: only degree 0 is supported here.
        """
        if self.sh_degree > 0:
            raise NotImplementedError("rotating higher-order SH is not implemented")
        R = R.to(self.means)
        means = (self.means @ R.transpose(-1, -2)) if R.ndim == 2 else torch.einsum("...ij,...nj->...ni", R, self.means)
        if t is not None:
            means = means + t.to(self.means)[..., None, :]
        q_R = matrix_to_quat(R)
        if R.ndim == 2:  # one rotation for all: a 4 x 4 product (2 ms -> 0.2 ms for a frame's 66 000)
            quats = self.quats @ quat_left_matrix(q_R).T
        else:
            quats = quat_multiply(q_R[..., None, :].expand_as(self.quats), self.quats)
        return Gaussians(means=means, quats=quats, log_scales=self.log_scales, opacity_logits=self.opacity_logits, sh=self.sh)

    def finite_mask(self) -> Tensor:
        """True [..., N] where every raw parameter is finite."""
        ok = torch.isfinite(self.means).all(-1) & torch.isfinite(self.quats).all(-1)
        ok &= torch.isfinite(self.log_scales).all(-1) & torch.isfinite(self.opacity_logits)
        ok &= torch.isfinite(self.sh).flatten(-2).all(-1)
        return ok & (self.quats.norm(dim=-1) > 0)

    def prune(self, min_opacity: float = 1.0 / 255.0) -> "Gaussians":
        """Drop Gaussians that a renderer would never draw (opacity below ``min_opacity``; 3DGS
        renderers skip alpha < 1/255). Single set only. Non-finite parameters are an error, not
        something to drop silently."""
        # The elementwise mask only when the cheap test has a doubt.
        fields = (self.means, self.quats, self.log_scales, self.opacity_logits, self.sh)
        zero_quat = bool((self.quats.abs().amax(-1) == 0).any())
        bad = 0 if sums_finite(fields) and not zero_quat else int((~self.finite_mask()).sum())
        if bad:
            raise ValueError(f"{bad} Gaussians have non-finite parameters")
        return self.select(self.opacities() >= min_opacity)
