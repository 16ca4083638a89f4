"""Helpers shared by the splat file formats: the checks every writer makes, the SH column layout of
the 3DGS PLY, PLY bytes through plyfile, and the conversion between numpy arrays and ``Gaussians``."""

from __future__ import annotations

import io
import math
import os
import re
from typing import NamedTuple

import numpy as np
import torch
from plyfile import PlyData, PlyElement, PlyParseError

from volume_cli.gaussians import Gaussians, sums_finite

_F_REST = re.compile(r"f_rest_(\d+)")


class RawArrays(NamedTuple):
    """Raw parameters of one set as float32 numpy arrays, in the layout of ``Gaussians``."""

    means: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4] w first
    log_scales: np.ndarray  # [N, 3]
    opacity_logits: np.ndarray  # [N]
    sh: np.ndarray  # [N, K, 3]


def raw_arrays(gaussians: Gaussians) -> RawArrays:
    """Check that ``gaussians`` is one writable set and return its parameters as float32 arrays.

    Non-finite values (also those that overflow float32) and zero quaternions are an error that
    says how many splats are affected: a writer never drops or repairs splats silently.
    """
    if not isinstance(gaussians, Gaussians):
        raise ValueError(f"gaussians must be a Gaussians, got {type(gaussians).__name__}")
    if gaussians.means.ndim != 2:
        raise ValueError(f"gaussians must be a single set (means [N, 3]), got means of shape {list(gaussians.means.shape)}")
    arrays = RawArrays(
        *(
            t.detach().to("cpu", torch.float32).numpy()
            for t in (gaussians.means, gaussians.quats, gaussians.log_scales, gaussians.opacity_logits, gaussians.sh)
        )
    )
    # One reduction per array (a frame's elementwise test cost 6 ms); the count only on a doubt.
    if sums_finite(torch.from_numpy(a) for a in arrays) and bool(np.abs(arrays.quats).max(1, initial=0).all()):
        return arrays
    ok = np.isfinite(arrays.means).all(1) & np.isfinite(arrays.quats).all(1) & np.isfinite(arrays.log_scales).all(1)
    ok &= np.isfinite(arrays.opacity_logits) & np.isfinite(arrays.sh).all((1, 2))
    ok &= np.any(arrays.quats != 0, axis=1)
    bad = int((~ok).sum())
    if bad:
        raise ValueError(
            f"{bad} of {len(ok)} splats have non-finite parameters (NaN or inf in float32) or a zero quaternion; "
            "nothing was written"
        )
    return arrays


def sh_rest_columns(sh: np.ndarray) -> np.ndarray:
    """SH [N, K, 3] -> f_rest columns [N, 3 (K - 1)] in the 3DGS reference order: channel-major,
    i.e. f_rest_{c (K - 1) + k - 1} = sh[:, k, c] (all of red's coefficients, then green, then blue)."""
    n, k, _ = sh.shape
    return np.ascontiguousarray(sh[:, 1:, :].transpose(0, 2, 1)).reshape(n, 3 * (k - 1))


def sh_from_columns(dc: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Inverse of ``sh_rest_columns``: DC [N, 3] and f_rest [N, 3 (K - 1)] -> SH [N, K, 3]."""
    rest = rest.reshape(len(dc), 3, rest.shape[1] // 3).transpose(0, 2, 1)  # [N, K - 1, 3]
    return np.concatenate([dc[:, None, :], rest], axis=1)


def f_rest_names(names: list[str], where: str) -> list[str]:
    """The f_rest_* property names among ``names``, sorted by index. They must be f_rest_0 ...
    f_rest_{3 (K - 1) - 1} with K a square (SH degree 0 to 3 and beyond)."""
    indices = sorted(int(m.group(1)) for name in names if (m := _F_REST.fullmatch(name)))
    if indices != list(range(len(indices))):
        raise ValueError(f"{where}: f_rest properties must be numbered 0 ... M-1 without gaps, got indices {indices}")
    k = len(indices) // 3 + 1
    if len(indices) % 3 or math.isqrt(k) ** 2 != k:
        raise ValueError(f"{where}: {len(indices)} f_rest properties is not 3 (K - 1) for a square K (0, 9, 24, 45)")
    return [f"f_rest_{i}" for i in indices]


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # tanh form: no overflow warnings for large |x|


def to_gaussians(arrays: RawArrays) -> Gaussians:
    """float32 CPU ``Gaussians`` from numpy arrays (copied, so no file buffer stays referenced)."""
    return Gaussians(*(torch.from_numpy(np.array(a, dtype=np.float32)) for a in arrays))


def ply_element(name: str, properties: list[str], columns: np.ndarray, dtype: str) -> PlyElement:
    """A plyfile element of scalar properties of one numpy ``dtype`` (e.g. "<f4") from columns
    [count, len(properties)]."""
    # A C-contiguous [count, P] array viewed as count records of P fields of the same type.
    records = np.ascontiguousarray(columns, dtype=dtype).view(np.dtype([(p, dtype) for p in properties]))
    return PlyElement.describe(records.reshape(len(columns)), name)


def ply_bytes(elements: list[PlyElement]) -> bytes:
    """A binary little-endian PLY file holding ``elements``, in that order."""
    buffer = io.BytesIO()
    PlyData(elements, text=False, byte_order="<").write(buffer)
    return buffer.getvalue()


def parse_ply(path: str | os.PathLike) -> PlyData:
    """Read a PLY file with plyfile; a file that is not a PLY raises ValueError.

    From a path, not bytes: plyfile memory-maps a file's binary elements, while from a stream it
    reads them value by value (seconds for 100k splats).
    """
    try:
        return PlyData.read(os.fspath(path))
    except PlyParseError as e:
        raise ValueError(f"not a readable PLY file: {e}") from e
