"""The antimatter15 ``.splat`` format (github.com/antimatter15/splat), 32 bytes a splat, no header:

    bytes  0-11   position x, y, z        3 x float32 little-endian, metres
    bytes 12-23   scale                   3 x float32, LINEAR standard deviations (exp of the log-scale)
    bytes 24-27   colour r, g, b, alpha   4 x uint8: round(255 * clamp(0.5 + 0.28209479 * f_dc, 0, 1)),
                                          round(255 * opacity)
    bytes 28-31   rotation w, x, y, z     4 x uint8: round(128 * q + 128) clipped to 0..255, q normalised

Splats are written in descending order of importance, volume times opacity
(exp(scale_0 + scale_1 + scale_2) * sigmoid(opacity)), as the format's own converter does: viewers
that stream the file draw the large, opaque splats first. ``splat_order`` gives that order.

The format is lossy. Decoding returns SH degree 0, and the round trip keeps:
    position        exactly (float32)
    log-scale       to float32 precision of exp/log (about 1e-6 relative)
    colour          rgb clamped to [0, 1], then within half a step: |d rgb| <= 0.5 / 255,
                    i.e. |d f_dc| <= 0.5 / 255 / 0.28209479 = 0.007
    opacity         |d opacity| <= 0.5 / 255 (alpha 0 and 255 decode to 0.5 / 255 and 1 - 0.5 / 255,
                    so that the logit is finite)
    rotation        each component of the unit quaternion within 0.5 / 128, or 1 / 128 above
                    127.5 / 128 (+1 encodes as 256 and clips to 255); decoded as stored, so only
                    nearly unit (Gaussians normalise on activation)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from volume_cli.formats._common import RawArrays, logit, raw_arrays, sigmoid, to_gaussians
from volume_cli.gaussians import SH_C0, Gaussians

BYTES_PER_SPLAT = 32
_RECORD = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))])
assert _RECORD.itemsize == BYTES_PER_SPLAT


def splat_order(gaussians: Gaussians) -> Tensor:
    """Indices [N] (int64) of one set in the order ``encode_splat`` writes it: descending
    exp(sum of log-scales) * opacity, ties kept in input order."""
    return torch.from_numpy(_importance_order(raw_arrays(gaussians)))


def _importance_order(a: RawArrays) -> np.ndarray:
    # log(volume * opacity) = sum(log-scales) + log(sigmoid(logit)); the log form cannot overflow.
    log_importance = a.log_scales.astype(np.float64).sum(1) - np.logaddexp(0.0, -a.opacity_logits.astype(np.float64))
    return np.argsort(-log_importance, kind="stable")


def encode_splat(gaussians: Gaussians) -> bytes:
    """One set of Gaussians (means [N, 3]) -> the bytes of a ``.splat`` file (N x 32 bytes), sorted
    by ``splat_order``. Higher SH bands are dropped (the format has none).

    Raises ValueError, saying how many splats, for non-finite parameters, zero quaternions or
    log-scales whose exp overflows float32.
    """
    a = raw_arrays(gaussians)
    order = _importance_order(a)
    scales = np.exp(a.log_scales[order].astype(np.float64)).astype(np.float32)
    overflow = int((~np.isfinite(scales).all(1)).sum())
    if overflow:
        raise ValueError(f"{overflow} splats have log-scales above float32's range (exp > 3.4e38); nothing was written")
    rgb = np.clip(0.5 + SH_C0 * a.sh[order, 0, :], 0.0, 1.0)  # [N, 3]
    alpha = sigmoid(a.opacity_logits[order])[:, None]  # [N, 1]
    quats = a.quats[order] / np.linalg.norm(a.quats[order], axis=1, keepdims=True)  # [N, 4] w first

    records = np.empty(len(order), _RECORD)
    records["position"] = a.means[order]
    records["scale"] = scales
    records["rgba"] = np.round(255.0 * np.concatenate([rgb, alpha], axis=1))
    records["rot"] = np.clip(np.round(128.0 * quats + 128.0), 0, 255)
    return records.tobytes()


def read_splat(path: str | os.PathLike) -> Gaussians:
    """A ``.splat`` file -> float32 CPU Gaussians [N, ...] with SH degree 0, in file order."""
    return decode_splat(Path(path).read_bytes())


def decode_splat(data: bytes) -> Gaussians:
    """The bytes of a ``.splat`` file -> float32 CPU Gaussians [N, ...] with SH degree 0, in file order."""
    if len(data) % BYTES_PER_SPLAT:
        raise ValueError(f".splat data must be a multiple of {BYTES_PER_SPLAT} bytes, got {len(data)}")
    records = np.frombuffer(data, _RECORD)
    # A scale that underflowed float32 (log-scale below -87) comes back as the smallest normal float.
    scales = np.maximum(records["scale"], np.finfo(np.float32).tiny)
    rgba = records["rgba"].astype(np.float32) / 255.0  # [N, 4]
    alpha = np.clip(rgba[:, 3], 0.5 / 255.0, 1.0 - 0.5 / 255.0)
    quats = (records["rot"].astype(np.float32) - 128.0) / 128.0  # [N, 4], near unit; not renormalised
    return to_gaussians(
        RawArrays(
            means=records["position"],
            quats=quats,
            log_scales=np.log(scales),
            opacity_logits=logit(alpha),
            sh=((rgba[:, :3] - 0.5) / SH_C0)[:, None, :],
        )
    )
