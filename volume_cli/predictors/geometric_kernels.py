"""Compiled (numba) twins of the geometric predictor's per-pixel steps, which set the pace of a
CPU convert once rendering is compiled too: as tensor code each is dozens of passes over the
crop's 65 536 pixels; here each is one. ``geometric.surface_aligned`` and
``geometric.rasterize_depth`` are the slow, obvious references they are tested against.

numba compiles on first use and caches the machine code on disk (``cache=True``), as the
rasteriser does (render/rasterize_numba.py); this module is imported only when a geometric
prediction runs.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from volume_cli.concurrency import COMPILED_KERNEL_LOCK
# The reference's constants (one definition each); geometric.py imports this module lazily.
from volume_cli.predictors.geometric import MAX_STRETCH, THIN_FRACTION


@numba.njit(cache=True, inline="always")
def _capped(v, limit):  # pragma: no cover - compiled
    """v [3] shortened to at most ``limit`` (in place); the reference's ``capped``."""
    length = max(math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]), 1e-12)
    f = min(length, limit) / length
    v[0] *= f
    v[1] *= f
    v[2] *= f


@numba.njit(cache=True, inline="always")
def _unit(v):  # pragma: no cover - compiled
    length = max(math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]), 1e-12)
    v[0] /= length
    v[1] /= length
    v[2] /= length


@numba.njit(cache=True, inline="always")
def _cross(a, b, out):  # pragma: no cover - compiled
    out[0] = a[1] * b[2] - a[2] * b[1]
    out[1] = a[2] * b[0] - a[0] * b[2]
    out[2] = a[0] * b[1] - a[1] * b[0]


@numba.njit(cache=True, inline="always")
def _matrix_to_quat(m, q):  # pragma: no cover - compiled
    """``gaussians.matrix_to_quat`` for one matrix m [3, 3] into q [4]: the best conditioned of
    the four candidates (the first on ties, as torch's argmax), unit, w >= 0."""
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    leads = (1 + trace, 1 + m[0, 0] - m[1, 1] - m[2, 2], 1 - m[0, 0] + m[1, 1] - m[2, 2], 1 - m[0, 0] - m[1, 1] + m[2, 2])
    best = 0
    for k in range(1, 4):
        if leads[k] > leads[best]:
            best = k
    if best == 0:
        q[0], q[1], q[2], q[3] = 1 + trace, m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]
    elif best == 1:
        q[0], q[1], q[2], q[3] = m[2, 1] - m[1, 2], leads[1], m[0, 1] + m[1, 0], m[0, 2] + m[2, 0]
    elif best == 2:
        q[0], q[1], q[2], q[3] = m[0, 2] - m[2, 0], m[0, 1] + m[1, 0], leads[2], m[1, 2] + m[2, 1]
    else:
        q[0], q[1], q[2], q[3] = m[1, 0] - m[0, 1], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1], leads[3]
    norm = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    sign = -1.0 if q[0] < 0 else 1.0
    for k in range(4):
        q[k] = sign * q[k] / norm


@numba.njit(parallel=True, cache=True, nogil=True)
def _surface_aligned(points, focal, sigma_px, max_stretch, thin_fraction, quats, log_scales):  # pragma: no cover
    """Per pixel of points [S, S, 3]: quats [S*S, 4] and log_scales [S*S, 3] (float32), the
    reference's arithmetic step for step in float64."""
    size = points.shape[0]
    for row in numba.prange(size):
        a, b = np.empty(3), np.empty(3)
        normal, e1, e2 = np.empty(3), np.empty(3), np.empty(3)
        R, q = np.empty((3, 3)), np.empty(4)
        up, down = max(row - 1, 0), min(row + 1, size - 1)
        for col in range(size):
            left, right = max(col - 1, 0), min(col + 1, size - 1)
            for k in range(3):  # central differences, the edge pixel repeated (replicate padding)
                a[k] = (points[row, right, k] - points[row, left, k]) / 2
                b[k] = (points[down, col, k] - points[up, col, k]) / 2
            pixel = points[row, col, 2] / focal
            _capped(a, max_stretch * pixel)
            _capped(b, max_stretch * pixel)
            _cross(a, b, normal)
            _unit(normal)
            e1[:] = a
            _unit(e1)
            _cross(normal, e1, e2)
            a1 = a[0] * e1[0] + a[1] * e1[1] + a[2] * e1[2]
            b1 = b[0] * e1[0] + b[1] * e1[1] + b[2] * e1[2]
            b2 = b[0] * e2[0] + b[1] * e2[1] + b[2] * e2[2]
            p_, q_, r_ = a1 * a1 + b1 * b1, b2 * b2, b1 * b2
            theta = 0.5 * math.atan2(2 * r_, p_ - q_)
            mean, half_gap = (p_ + q_) / 2, math.sqrt(((p_ - q_) / 2) ** 2 + r_ * r_)
            major, minor = mean + half_gap, max(mean - half_gap, 0.0)
            c, s = math.cos(theta), math.sin(theta)
            for k in range(3):
                R[k, 0] = c * e1[k] + s * e2[k]
                R[k, 1] = -s * e1[k] + c * e2[k]
                R[k, 2] = normal[k]
            _matrix_to_quat(R, q)
            i = row * size + col
            for k in range(4):
                quats[i, k] = q[k]
            log_scales[i, 0] = 0.5 * math.log(max(sigma_px * sigma_px * major, 1e-20))
            log_scales[i, 1] = 0.5 * math.log(max(sigma_px * sigma_px * minor, 1e-20))
            log_scales[i, 2] = math.log(thin_fraction * pixel)


def surface_aligned(points: np.ndarray, focal: float, sigma_px: float) -> tuple[Tensor, Tensor]:
    """``geometric.surface_aligned`` compiled: points [S, S, 3] (metres, float64) -> quats
    [S*S, 4] (w first) and log-scales [S*S, 3], float32."""
    n = points.shape[0] * points.shape[1]
    quats = np.empty((n, 4), np.float32)
    log_scales = np.empty((n, 3), np.float32)
    with COMPILED_KERNEL_LOCK:
        _surface_aligned(np.ascontiguousarray(points, dtype=np.float64), float(focal), float(sigma_px),
                         MAX_STRETCH, THIN_FRACTION, quats, log_scales)
    return torch.from_numpy(quats), torch.from_numpy(log_scales)


@numba.njit(cache=True, nogil=True)
def _rasterize_depth(pixels, inv_depth, triangles, size, best):  # pragma: no cover - compiled
    """Max inverse depth per pixel into best [size * size] (0 = nothing), triangle by triangle
    over its bounding box; the reference's barycentric test and tolerance. Serial: a face mesh is
    ~850 small triangles, well under a millisecond."""
    for t in range(triangles.shape[0]):
        i0, i1, i2 = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        ax, ay = pixels[i0, 0], pixels[i0, 1]
        bx, by = pixels[i1, 0], pixels[i1, 1]
        cx, cy = pixels[i2, 0], pixels[i2, 1]
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) <= 1e-9:
            continue
        x0 = max(math.floor(min(ax, bx, cx) - 0.5), 0)
        x1 = min(math.ceil(max(ax, bx, cx) - 0.5), size - 1)
        y0 = max(math.floor(min(ay, by, cy) - 0.5), 0)
        y1 = min(math.ceil(max(ay, by, cy) - 0.5), size - 1)
        for py in range(y0, y1 + 1):
            y = py + 0.5
            for px in range(x0, x1 + 1):
                x = px + 0.5
                wb = ((x - ax) * (cy - ay) - (y - ay) * (cx - ax)) / area
                wc = ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) / area
                wa = 1.0 - wb - wc
                if wa >= -1e-9 and wb >= -1e-9 and wc >= -1e-9:
                    value = wa * inv_depth[i0] + wb * inv_depth[i1] + wc * inv_depth[i2]
                    if value > best[py * size + px]:
                        best[py * size + px] = value


def rasterize_depth(pixels: np.ndarray, depth: np.ndarray, triangles: np.ndarray, size: int) -> np.ndarray:
    """``geometric.rasterize_depth`` compiled: pixels [V, 2], depth [V] (> 0), triangles [T, 3]
    -> nearest z-depth [size, size] float64, +inf where no triangle covers the pixel."""
    best = np.zeros(size * size)
    _rasterize_depth(np.ascontiguousarray(pixels, dtype=np.float64), 1.0 / np.asarray(depth, dtype=np.float64),
                     np.ascontiguousarray(triangles, dtype=np.int64), size, best)
    with np.errstate(divide="ignore"):
        return np.where(best > 0, 1.0 / best, np.inf).reshape(size, size)


def warm_up() -> None:
    """Compile (or load from the disk cache) both kernels on a tiny input; ``make install`` runs it."""
    v, u = np.mgrid[0:8, 0:8] + 0.5
    points = np.stack([(u - 4) / 10, (v - 4) / 10, np.ones_like(u)], -1)
    surface_aligned(points, 10.0, 0.35)
    pixels = np.array([[1.0, 1.0], [6.0, 1.0], [1.0, 6.0]])
    rasterize_depth(pixels, np.ones(3), np.array([[0, 1, 2]]), 8)


if __name__ == "__main__":  # python -m volume_cli.predictors.geometric_kernels: compile and cache now
    warm_up()
