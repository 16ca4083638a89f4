"""Compiled CPU rasteriser: the same image formation as ``rasterize_torch`` (read its docstring for
the semantics), compiled by numba and spread over every core, forward and backward.

Three kernels in a row, each with its own ``torch.autograd.Function`` where gradients flow:

* Projection (``_project`` / ``_project_backward`` in ``_Project``): EWA projection, culling and box
  extents per (camera, Gaussian), the arithmetic of ``rasterize_torch.project_gaussians``; the
  backward carries the gradients of the 2D means, conics and depths to means, quaternions and
  scales. (Cameras that need gradients, which nothing here asks for, go through torch's
  projection instead.)
* Binning (``_bin_tiles``): which Gaussians touch which 16 x 16 tile, front to back, each entry
  of a tile's list with a copy of its splat's 2D geometry (read in order while compositing).
* Compositing (``_composite_tiles`` / ``_composite_backward`` in ``_Composite``): the cost. Per
  tile, splats are taken front to back, each over only the pixels of each row where its alpha can
  reach 1/255 (the roots of a quadratic), and a pixel stops at T = 1e-4. The backward visits the
  pixels again with the forward's arithmetic, so it makes the very same skip and stop decisions,
  and returns the gradients with respect to the 2D means, conics, opacities and payload (colours
  and camera-frame depth).

Both backwards are race-free and independent of the thread count: projection gradients are one
task per Gaussian (its cameras summed inside), compositing gradients one row per (tile, Gaussian)
entry of the tile lists, owned by the one task that composites that tile and summed per Gaussian
afterwards.

numba compiles on the first call after install and caches the machine code on disk (``cache=True``:
the ``__pycache__`` folder beside this file, or numba's user cache when that is read-only); later
processes load it in well under a second. This module imports numba, so ``render`` imports it only
when this backend is chosen: commands that do not render never load it.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import Tensor

from volume_cli.concurrency import COMPILED_KERNEL_LOCK
from volume_cli.render import rasterize_torch
from volume_cli.render.rasterize_torch import ALPHA_MAX, ALPHA_MIN, EXTENT_SIGMAS, FOV_SLACK, T_MIN, check_rasterize_inputs

# Tile side in pixels: a speed knob only, it never changes a pixel. 16 measured fastest on the
# bench head at 256 and 512 px (fewer list entries than 8, little waste at the silhouette).
TILE = 16



@numba.njit(cache=True, inline="always")
def _quat_rotation(quats, i, rot):  # pragma: no cover - compiled
    """rot [3, 3] of the unit quaternion of quats[i] (w, x, y, z, any norm); returns the unit
    quaternion's components and the norm."""
    qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
    norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    qw, qx, qy, qz = qw / norm, qx / norm, qy / norm, qz / norm
    rot[0, 0], rot[0, 1], rot[0, 2] = 1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy)
    rot[1, 0], rot[1, 1], rot[1, 2] = 2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx)
    rot[2, 0], rot[2, 1], rot[2, 2] = 2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)
    return qw, qx, qy, qz, norm


@numba.njit(parallel=True, cache=True, nogil=True)
def _project(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d,
             means2d, conics, depths, radii):  # pragma: no cover - compiled
    """``rasterize_torch.project_gaussians`` fused into one pass per (camera, Gaussian), for
    renders that need no gradient; writes means2d [C, N, 2], conics [C, N, 3], depths [C, N] and
    radii [C, N, 2] (0 where culled). The tests hold the two to the same numbers."""
    num_cameras, n = viewmats.shape[0], means.shape[0]
    for flat in numba.prange(num_cameras * n):
        cam, i = flat // n, flat % n
        V, K = viewmats[cam], Ks[cam]
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        mean_c = np.empty(3)
        for r in range(3):
            mean_c[r] = V[r, 0] * means[i, 0] + V[r, 1] * means[i, 1] + V[r, 2] * means[i, 2] + V[r, 3]
        x, y, z = mean_c[0], mean_c[1], mean_c[2]
        depths[cam, i] = z
        radii[cam, i, 0] = radii[cam, i, 1] = 0
        if not (near_plane <= z <= far_plane) or opacities[i] < ALPHA_MIN:
            continue
        # Rotation of the unit quaternion, its columns scaled: Sigma = M M^T with M = rot * scales.
        rot = np.empty((3, 3))
        _quat_rotation(quats, i, rot)
        slack_x, slack_y = FOV_SLACK * 0.5 * width / fx, FOV_SLACK * 0.5 * height / fy
        tx = z * min(max(x / z, -cx / fx - slack_x), (width - cx) / fx + slack_x)
        ty = z * min(max(y / z, -cy / fy - slack_y), (height - cy) / fy + slack_y)
        cov_xx = cov_yy = eps2d
        cov_xy = 0.0
        for col in range(3):  # column col of J V_R M, M = rot * scales
            rm0 = (V[0, 0] * rot[0, col] + V[0, 1] * rot[1, col] + V[0, 2] * rot[2, col]) * scales[i, col]
            rm1 = (V[1, 0] * rot[0, col] + V[1, 1] * rot[1, col] + V[1, 2] * rot[2, col]) * scales[i, col]
            rm2 = (V[2, 0] * rot[0, col] + V[2, 1] * rot[1, col] + V[2, 2] * rot[2, col]) * scales[i, col]
            jx = fx / z * rm0 - fx * tx / (z * z) * rm2
            jy = fy / z * rm1 - fy * ty / (z * z) * rm2
            cov_xx += jx * jx
            cov_yy += jy * jy
            cov_xy += jx * jy
        det = cov_xx * cov_yy - cov_xy * cov_xy
        mx, my = fx * x / z + cx, fy * y / z + cy
        means2d[cam, i, 0], means2d[cam, i, 1] = mx, my
        if det <= 0.0:
            continue
        conics[cam, i, 0], conics[cam, i, 1], conics[cam, i, 2] = cov_yy / det, -cov_xy / det, cov_xx / det
        k = min(math.sqrt(2.0 * max(math.log(opacities[i] / ALPHA_MIN), 0.0)), EXTENT_SIGMAS)
        rx, ry = math.ceil(k * math.sqrt(cov_xx)), math.ceil(k * math.sqrt(cov_yy))
        if (rx > 0 or ry > 0) and mx + rx > 0 and mx - rx < width and my + ry > 0 and my - ry < height:
            radii[cam, i, 0], radii[cam, i, 1] = rx, ry


@numba.njit(parallel=True, cache=True, nogil=True)
def _project_backward(means, quats, scales, viewmats, Ks, width, height, eps2d, radii, grad_means2d, grad_conics,
                      grad_depths, grad_means, grad_quats, grad_scales):  # pragma: no cover - compiled
    """Gradients of ``_project``'s means2d, conics and depths with respect to means [N, 3], quats
    [N, 4] and scales [N, 3] (grad_* zeros on entry), the forward recomputed per Gaussian. One
    Gaussian per task, its cameras summed inside it, so no two tasks write the same row. Culled
    Gaussians (radius 0) were not drawn and get nothing, as through torch's projection."""
    num_cameras, n = viewmats.shape[0], means.shape[0]
    for i in numba.prange(n):
        rot = np.empty((3, 3))
        qw, qx, qy, qz, norm = _quat_rotation(quats, i, rot)
        g_rot = np.zeros((3, 3))
        RM = np.empty((3, 3))
        g_RM = np.empty((3, 3))
        jx, jy = np.empty(3), np.empty(3)
        for cam in range(num_cameras):
            if radii[cam, i, 0] == 0:
                continue
            V, K = viewmats[cam], Ks[cam]
            fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
            x = V[0, 0] * means[i, 0] + V[0, 1] * means[i, 1] + V[0, 2] * means[i, 2] + V[0, 3]
            y = V[1, 0] * means[i, 0] + V[1, 1] * means[i, 1] + V[1, 2] * means[i, 2] + V[1, 3]
            z = V[2, 0] * means[i, 0] + V[2, 1] * means[i, 1] + V[2, 2] * means[i, 2] + V[2, 3]
            slack_x, slack_y = FOV_SLACK * 0.5 * width / fx, FOV_SLACK * 0.5 * height / fy
            lim_x0, lim_x1 = -cx / fx - slack_x, (width - cx) / fx + slack_x
            lim_y0, lim_y1 = -cy / fy - slack_y, (height - cy) / fy + slack_y
            clamped_x, clamped_y = not (lim_x0 <= x / z <= lim_x1), not (lim_y0 <= y / z <= lim_y1)
            tx = z * min(max(x / z, lim_x0), lim_x1)
            ty = z * min(max(y / z, lim_y0), lim_y1)
            for r in range(3):
                for col in range(3):
                    RM[r, col] = (V[r, 0] * rot[0, col] + V[r, 1] * rot[1, col] + V[r, 2] * rot[2, col]) * scales[i, col]
            for col in range(3):
                jx[col] = fx / z * RM[0, col] - fx * tx / (z * z) * RM[2, col]
                jy[col] = fy / z * RM[1, col] - fy * ty / (z * z) * RM[2, col]
            A = jx[0] * jx[0] + jx[1] * jx[1] + jx[2] * jx[2] + eps2d
            B = jx[0] * jy[0] + jx[1] * jy[1] + jx[2] * jy[2]
            Cc = jy[0] * jy[0] + jy[1] * jy[1] + jy[2] * jy[2] + eps2d
            det = A * Cc - B * B
            # conic = (Cc, -B, A) / det
            g0, g1, g2 = grad_conics[cam, i, 0], grad_conics[cam, i, 1], grad_conics[cam, i, 2]
            d2 = det * det
            g_A = g0 * (-Cc * Cc / d2) + g1 * (B * Cc / d2) + g2 * (1.0 / det - A * Cc / d2)
            g_C = g0 * (1.0 / det - Cc * A / d2) + g1 * (B * A / d2) + g2 * (-A * A / d2)
            g_B = g0 * (2.0 * B * Cc / d2) + g1 * (-1.0 / det - 2.0 * B * B / d2) + g2 * (2.0 * A * B / d2)
            g_x = grad_means2d[cam, i, 0] * fx / z
            g_y = grad_means2d[cam, i, 1] * fy / z
            g_z = grad_depths[cam, i] - grad_means2d[cam, i, 0] * fx * x / (z * z) - grad_means2d[cam, i, 1] * fy * y / (z * z)
            g_tx = g_ty = 0.0
            for col in range(3):
                g_jx = 2.0 * g_A * jx[col] + g_B * jy[col]
                g_jy = 2.0 * g_C * jy[col] + g_B * jx[col]
                g_RM[0, col] = fx / z * g_jx
                g_RM[1, col] = fy / z * g_jy
                g_RM[2, col] = -fx * tx / (z * z) * g_jx - fy * ty / (z * z) * g_jy
                g_z += g_jx * (-fx / (z * z) * RM[0, col] + 2.0 * fx * tx / (z * z * z) * RM[2, col])
                g_z += g_jy * (-fy / (z * z) * RM[1, col] + 2.0 * fy * ty / (z * z * z) * RM[2, col])
                g_tx += g_jx * (-fx / (z * z) * RM[2, col])
                g_ty += g_jy * (-fy / (z * z) * RM[2, col])
            # tx = x where the clamp does not bind, else z times the bound (tx / z)
            if clamped_x:
                g_z += g_tx * tx / z
            else:
                g_x += g_tx
            if clamped_y:
                g_z += g_ty * ty / z
            else:
                g_y += g_ty
            for k in range(3):  # mean_c = R m + t
                grad_means[i, k] += V[0, k] * g_x + V[1, k] * g_y + V[2, k] * g_z
            for col in range(3):  # RM = R rot diag(s)
                g_m0 = V[0, 0] * g_RM[0, col] + V[1, 0] * g_RM[1, col] + V[2, 0] * g_RM[2, col]
                g_m1 = V[0, 1] * g_RM[0, col] + V[1, 1] * g_RM[1, col] + V[2, 1] * g_RM[2, col]
                g_m2 = V[0, 2] * g_RM[0, col] + V[1, 2] * g_RM[1, col] + V[2, 2] * g_RM[2, col]
                grad_scales[i, col] += g_m0 * rot[0, col] + g_m1 * rot[1, col] + g_m2 * rot[2, col]
                g_rot[0, col] += g_m0 * scales[i, col]
                g_rot[1, col] += g_m1 * scales[i, col]
                g_rot[2, col] += g_m2 * scales[i, col]
        # rot of the unit quaternion (w, x, y, z), then through q / |q|
        g = g_rot
        g_w = 2 * (-qz * g[0, 1] + qy * g[0, 2] + qz * g[1, 0] - qx * g[1, 2] - qy * g[2, 0] + qx * g[2, 1])
        g_qx = 2 * (qy * g[0, 1] + qz * g[0, 2] + qy * g[1, 0] - 2 * qx * g[1, 1] - qw * g[1, 2] + qz * g[2, 0]
                    + qw * g[2, 1] - 2 * qx * g[2, 2])
        g_qy = 2 * (-2 * qy * g[0, 0] + qx * g[0, 1] + qw * g[0, 2] + qx * g[1, 0] + qz * g[1, 2] - qw * g[2, 0]
                    + qz * g[2, 1] - 2 * qy * g[2, 2])
        g_qz = 2 * (-2 * qz * g[0, 0] - qw * g[0, 1] + qx * g[0, 2] + qw * g[1, 0] - 2 * qz * g[1, 1] + qy * g[1, 2]
                    + qx * g[2, 0] + qy * g[2, 1])
        along = qw * g_w + qx * g_qx + qy * g_qy + qz * g_qz
        grad_quats[i, 0] = (g_w - qw * along) / norm
        grad_quats[i, 1] = (g_qx - qx * along) / norm
        grad_quats[i, 2] = (g_qy - qy * along) / norm
        grad_quats[i, 3] = (g_qz - qz * along) / norm


# Each splat visits only the pixels of its tile where sigma <= ln(255 opacity) can hold (alpha >=
# 1/255), row by row: a row's span is where a quadratic in x is below that bound. The bound is
# widened by this relative margin, far more than the float64 rounding of the span and the
# falloff's 4e-13 error, so the per-pixel tests inside decide everything and no pixel differs
# from visiting every pixel of the tile.
_SPAN_MARGIN = 1e-6

# A tile-list entry carries a copy of its splat's 2D geometry, so that compositing reads its list
# forwards through one array instead of gathering from three (a cache miss each: the splats are
# megabytes, taken in depth order): mx, my, conic a, b, c, opacity, reach (the sigma where alpha
# falls to 1/255, widened by _SPAN_MARGIN), and one slot of padding to 32 bytes in float32.
# Measured on the bench head: composite 16 -> 13 ms at 256 px and 34 -> 29 ms at 512, for ~4 ms
# more binning (the copies are scattered writes).
GEOMETRY_FIELDS = 8


@numba.njit(cache=True, inline="always")
def _reach(opacity):  # pragma: no cover - compiled
    """The sigma up to which opacity * exp(-sigma) >= ALPHA_MIN, widened by _SPAN_MARGIN."""
    return math.log(opacity / ALPHA_MIN) * (1.0 + _SPAN_MARGIN) + _SPAN_MARGIN


@numba.njit(parallel=True, cache=True, nogil=True)
def _bin_tiles(means2d, conics, opacities, radii, order, num_cameras, tiles_x, tiles_y, tile, n, chunks):  # pragma: no cover - compiled
    """Tile lists. means2d [C*N, 2], conics [C*N, 3], opacities [C*N], radii [C*N, 2] (int), order
    [V]: the visible flat ids sorted by depth (ties by id). Returns the flat ids [M] grouped by
    tile, front to back within each, the tiles' starts in them [C * tiles_y * tiles_x + 1] and
    each entry's geometry [M, GEOMETRY_FIELDS] (means2d's dtype).

    ``order`` is cut into ``chunks`` consecutive runs binned in parallel: each run counts its
    entries per tile, and a tile's list holds run 0's entries, then run 1's, ..., so it is front to
    back whatever the number of runs, and the result does not depend on it."""
    tiles = num_cameras * tiles_x * tiles_y
    tiles_per_camera = tiles_x * tiles_y
    visible = order.shape[0]
    counts = np.zeros((chunks, tiles), np.int64)
    boxes = np.empty((visible, 4), np.int64)
    for run in numba.prange(chunks):
        for k in range(run * visible // chunks, (run + 1) * visible // chunks):
            g = order[k]
            mx, my = means2d[g, 0], means2d[g, 1]
            rx, ry = radii[g, 0], radii[g, 1]
            x0 = min(max(math.floor((mx - rx) / tile), 0), tiles_x)
            x1 = min(max(math.ceil((mx + rx) / tile), 0), tiles_x)
            y0 = min(max(math.floor((my - ry) / tile), 0), tiles_y)
            y1 = min(max(math.ceil((my + ry) / tile), 0), tiles_y)
            boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = x0, x1, y0, y1
            base = (g // n) * tiles_per_camera
            for ty in range(y0, y1):
                for tx in range(x0, x1):
                    counts[run, base + ty * tiles_x + tx] += 1
    starts = np.empty(tiles + 1, np.int64)
    fill = np.empty((chunks, tiles), np.int64)  # where each run writes its next entry of each tile
    total = 0
    for t in range(tiles):
        starts[t] = total
        for run in range(chunks):
            fill[run, t] = total
            total += counts[run, t]
    starts[tiles] = total
    ids = np.empty(total, np.int64)
    geometry = np.empty((total, GEOMETRY_FIELDS), means2d.dtype)
    for run in numba.prange(chunks):
        for k in range(run * visible // chunks, (run + 1) * visible // chunks):  # in depth order
            g = order[k]
            mx, my, a, b, c = means2d[g, 0], means2d[g, 1], conics[g, 0], conics[g, 1], conics[g, 2]
            opacity = opacities[g]
            reach = _reach(opacity)
            base = (g // n) * tiles_per_camera
            for ty in range(boxes[k, 2], boxes[k, 3]):
                for tx in range(boxes[k, 0], boxes[k, 1]):
                    t = base + ty * tiles_x + tx
                    e = fill[run, t]
                    ids[e] = g
                    geometry[e, 0], geometry[e, 1], geometry[e, 2], geometry[e, 3] = mx, my, a, b
                    geometry[e, 4], geometry[e, 5], geometry[e, 6], geometry[e, 7] = c, opacity, reach, 0.0
                    fill[run, t] = e + 1
    return ids, starts, geometry


@numba.njit(cache=True, inline="always")
def _rows_and_span(my, a, b, c, reach, row0, rows):  # pragma: no cover - compiled
    """(first row, end row, det) of the tile rows a splat can reach: sigma <= reach needs
    |dy| <= sqrt(2 reach a / det) with det = ac - b^2 of the conic (a, b, c)."""
    det = a * c - b * b
    if det <= 0.0 or reach <= 0.0:
        return 0, 0, det
    dy_max = math.sqrt(2.0 * reach * a / det)
    first = max(row0, math.ceil(my - dy_max - 0.5))
    stop = min(row0 + rows, math.floor(my + dy_max - 0.5) + 1)
    return first, stop, det


@numba.njit(cache=True, inline="always")
def _column_span(mx, bdy, inv_a, disc, col0, cols):  # pragma: no cover - compiled
    """Columns [first, stop) of the tile where sigma <= reach can hold on a row: with dx = mx - x,
    0.5 a dx^2 + bdy dx + 0.5 c dy^2 <= reach is a quadratic in dx whose discriminant (over 4,
    times 2) is ``disc`` = 2 a reach - det dy^2, so dx lies in (-bdy +- sqrt(disc)) / a."""
    if disc < 0.0:
        return 0, 0
    root = math.sqrt(disc)
    x_low = mx - (root - bdy) * inv_a
    x_high = mx + (root + bdy) * inv_a
    return max(col0, math.ceil(x_low - 0.5)), min(col0 + cols, math.floor(x_high - 0.5) + 1)


# Behind the opaque front layer most (pixel, splat) visits land on pixels already finished. Each
# tile keeps, per row, the columns [live_lo, live_hi) between its first and last unfinished pixel,
# and the rows [live_rows[0], live_rows[1]) that still have one; splats visit only those. A
# finished pixel inside a row's range is still visited (and skipped by its T of 0), so nothing a
# pixel sees changes: this only removes visits that did nothing.
@numba.njit(cache=True, inline="always")
def _live_ranges(rows, cols):  # pragma: no cover - compiled
    live_lo = np.zeros(rows, np.int64)
    live_hi = np.full(rows, cols, np.int64)
    live_rows = np.array([0, rows], np.int64)
    return live_lo, live_hi, live_rows


@numba.njit(cache=True, inline="always")
def _live_rows(my, a, b, c, reach, row0, rows, live_rows):  # pragma: no cover - compiled
    """``_rows_and_span`` narrowed to the tile's rows that still have an unfinished pixel."""
    first, stop, det = _rows_and_span(my, a, b, c, reach, row0, rows)
    return max(first, row0 + live_rows[0]), min(stop, row0 + live_rows[1]), det


@numba.njit(cache=True, inline="always")
def _live_columns(mx, bdy, inv_a, disc, col0, i, live_lo, live_hi):  # pragma: no cover - compiled
    """``_column_span`` of tile row i narrowed to its unfinished pixels' columns (none: empty)."""
    if live_lo[i] == live_hi[i]:
        return 0, 0
    return _column_span(mx, bdy, inv_a, disc, col0 + live_lo[i], live_hi[i] - live_lo[i])


@numba.njit(cache=True, inline="always")
def _narrow_row(T, live_lo, live_hi, live_rows, i, cols):  # pragma: no cover - compiled
    """Pixels of tile row i finished (T set to 0): shrink its row's and the tile's ranges."""
    lo, hi = live_lo[i], live_hi[i]
    while lo < hi and T[i * cols + lo] == 0.0:
        lo += 1
    while hi > lo and T[i * cols + hi - 1] == 0.0:
        hi -= 1
    live_lo[i], live_hi[i] = lo, hi
    if lo == hi:
        while live_rows[0] < live_rows[1] and live_lo[live_rows[0]] == live_hi[live_rows[0]]:
            live_rows[0] += 1
        while live_rows[1] > live_rows[0] and live_lo[live_rows[1] - 1] == live_hi[live_rows[1] - 1]:
            live_rows[1] -= 1


# The Gaussian falloff exp(-sigma) as plain arithmetic, so that a splat's row of pixels compiles
# to vector instructions (numba has no vector exp without Intel's SVML): exp(-sigma / 16) by its
# Taylor series to degree 11, squared four times; within ~1e-13 (relative) of exp for the sigmas
# that are drawn (0 to ln(255) at opacities up to 1: alpha below 1/255 is skipped), so float64
# renders and gradients still match the reference's to 1e-9. Sigmas above 40 are clamped (exp(-40)
# ~ 4e-18: skipped too). The forward and backward kernels both use it, so they decide alike.
_FALLOFF_SIGMA_MAX = 40.0
_FALLOFF_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(12))


@numba.njit(cache=True, inline="always")
def _falloff(sigma):  # pragma: no cover - compiled
    x = -min(sigma, _FALLOFF_SIGMA_MAX) * 0.0625
    c = _FALLOFF_TAYLOR
    p = c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * (c[4] + x * (c[5] + x * (c[6] + x * (c[7] + x * (
        c[8] + x * (c[9] + x * (c[10] + x * c[11]))))))))))
    p = p * p
    p = p * p
    p = p * p
    return p * p


# prange hands each thread one contiguous run of iterations; in tile (or row) order one thread got
# the forehead and hair, the other the face and neck, where most splats are. Taking the tiles in
# the order u -> u * _SPREAD_STRIDE mod n gives every run tiles from all over the image.
_SPREAD_STRIDE = 7919  # a prime: a permutation for every n it does not divide


@numba.njit(cache=True, inline="always")
def _spread(u, n):  # pragma: no cover - compiled
    u, n = np.int64(u), np.int64(n)  # prange's index may be unsigned, and uint64 * int64 is a float
    if n % _SPREAD_STRIDE == 0:
        return u
    return (u * _SPREAD_STRIDE) % n


@numba.njit(parallel=True, cache=True, nogil=True)
def _composite_tiles(geometry, payload, ids, starts, tiles_x, tiles_y, tile, width, height,
                     accum, transmittance, splat, weight, count):  # pragma: no cover - compiled
    """The forward composite, in one of two modes. transmittance [C, H, W] (ones on entry) gets
    the final T. ids, starts and geometry: ``_bin_tiles``' tile lists; payload [C*N, D'] by flat
    id. One tile per task; within it the splats are taken front to back, each over the pixels it
    can reach, so every pixel sees its splats in depth order. Tile-local T is set to 0 when a pixel
    finishes (its final T kept aside), which is also the test for "finished": a live pixel's T
    never falls below T_MIN.

    * Compositing (splat of zero capacity, e.g. [1, 1, 1, 0]): accum [C, H, W, D'] (zeros on entry)
      gets sum(alpha T payload).
    * Recording the terms of those sums without a payload (payload and accum of zero channels,
      splat [C, H, W, P] of capacity P > 0): for every pixel, in the order they would be added, the
      flat splat id and its weight alpha T (weight [C, H, W, P], float64 as the sums accumulate);
      count [C, H, W] (zeros on entry) the terms (when above P only the first P are stored, and the
      caller must not use them). sum(weight * payload[splat]) is then the composite, term by term
      in the same order.
    One loop for both, so the two can never disagree about which terms there are."""
    tiles_per_camera = tiles_x * tiles_y
    channels = payload.shape[1]
    capacity = splat.shape[3]
    record = capacity > 0
    num_tiles = starts.shape[0] - 1
    for u in numba.prange(num_tiles):
        t = _spread(u, num_tiles)
        begin, end = starts[t], starts[t + 1]
        if begin == end:
            continue
        cam = t // tiles_per_camera
        row0 = ((t % tiles_per_camera) // tiles_x) * tile
        col0 = (t % tiles_x) * tile
        rows, cols = min(tile, height - row0), min(tile, width - col0)
        pixels = rows * cols
        T = np.ones(pixels)  # pixel (y, x) of the image at (y - row0) * cols + x - col0
        final_T = np.ones(pixels)  # a finished pixel's T (its T above is then 0)
        acc = np.zeros(channels * pixels)  # channel-major: a row's pixels of one channel are adjacent
        row_weight = np.zeros(tile)  # the splat's alpha T on the row's span, 0 where it adds nothing
        remaining = pixels
        live_lo, live_hi, live_rows = _live_ranges(rows, cols)
        for k in range(begin, end):
            g = ids[k]
            mx, my, a, b, c = geometry[k, 0], geometry[k, 1], geometry[k, 2], geometry[k, 3], geometry[k, 4]
            opacity, reach = geometry[k, 5], geometry[k, 6]
            first, stop, det = _live_rows(my, a, b, c, reach, row0, rows, live_rows)
            half_a, inv_a, two_a_reach = 0.5 * a, 1.0 / a, 2.0 * a * reach
            for py in range(first, stop):
                dy = my - (py + 0.5)
                bdy, cdy2 = b * dy, 0.5 * c * dy * dy
                i = py - row0
                x_first, x_stop = _live_columns(mx, bdy, inv_a, two_a_reach - det * dy * dy, col0, i, live_lo, live_hi)
                if x_first >= x_stop:
                    continue
                base = i * cols - col0
                finished = 0
                # Branch-free over the span with unsigned indices (no negative-index wrap), so it
                # vectorises: a finished pixel (T 0), a sigma below 0 or an alpha below 1/255 adds
                # nothing; a splat that would bring T to T_MIN or below is left out and the pixel
                # is done, keeping the T before it.
                for px in range(x_first, x_stop):
                    q = numba.uint64(base + px)
                    T_q = T[q]
                    dx = mx - (px + 0.5)
                    sigma = (half_a * dx + bdy) * dx + cdy2
                    alpha = min(ALPHA_MAX, opacity * _falloff(sigma))
                    drawn = (T_q != 0.0) & (sigma >= 0.0) & (alpha >= ALPHA_MIN)
                    next_T = T_q * (1.0 - alpha)
                    finishes = drawn & (next_T <= T_MIN)
                    adds = drawn & (next_T > T_MIN)
                    row_weight[numba.uint64(px - x_first)] = alpha * T_q if adds else 0.0
                    final_T[q] = T_q if finishes else final_T[q]
                    T[q] = 0.0 if finishes else (next_T if adds else T_q)
                    finished += finishes
                span = numba.uint64(x_stop - x_first)
                if record:  # a term is a weight above 0 (alpha >= 1/255 and T > T_MIN)
                    for j in range(span):
                        if row_weight[j] > 0.0:
                            px = x_first + j
                            n_terms = count[cam, py, px]
                            if n_terms < capacity:
                                splat[cam, py, px, n_terms] = g
                                weight[cam, py, px, n_terms] = row_weight[j]
                            count[cam, py, px] = n_terms + 1
                for ch in range(channels):
                    value = payload[g, ch]
                    offset = numba.uint64(ch * pixels + base + x_first)
                    for j in range(span):
                        acc[offset + j] += row_weight[j] * value
                if finished:
                    remaining -= finished
                    _narrow_row(T, live_lo, live_hi, live_rows, i, cols)
            if remaining == 0:
                break
        for i in range(rows):
            for j in range(cols):
                q = i * cols + j
                transmittance[cam, row0 + i, col0 + j] = T[q] if T[q] != 0.0 else final_T[q]
                for ch in range(channels):
                    accum[cam, row0 + i, col0 + j, ch] = acc[ch * pixels + q]


# The arrays a mode of ``_composite_tiles`` does not use (zero-sized: nothing is allocated).
_NO_TERMS = (np.zeros((1, 1, 1, 0), np.int32), np.zeros((1, 1, 1, 0), np.float64), np.zeros((1, 1, 1), np.int32))


@numba.njit(parallel=True, cache=True, nogil=True)
def _weighted_sums(splat, weight, count, payload, accum):  # pragma: no cover - compiled
    """accum [C, H, W, D] (zeros on entry) = sum over a pixel's terms of weight * payload[splat]
    (payload [C*N, D]), each pixel's terms in their stored order, in float64 like the forward."""
    num_cameras, height, width = count.shape
    channels = payload.shape[1]
    for u in numba.prange(num_cameras * height):
        row = _spread(u, num_cameras * height)
        cam, y = row // height, row % height
        for x in range(width):
            for ch in range(channels):
                total = 0.0
                for k in range(count[cam, y, x]):
                    total += weight[cam, y, x, k] * payload[splat[cam, y, x, k], ch]
                accum[cam, y, x, ch] = total


@numba.njit(parallel=True, cache=True, nogil=True)
def _composite_backward(geometry, payload, ids, starts, tiles_x, tiles_y, tile, width, height,
                        accum, transmittance, grad_accum, grad_transmittance,
                        entry_means2d, entry_conics, entry_opacities, entry_payload):  # pragma: no cover - compiled
    """Gradients per tile-list entry (geometry and ids as ``_composite_tiles``; entry_* [M, ...],
    zeros on entry), visiting pixels with the
    forward's arithmetic, so every skip and stop falls the same way. For pixel colour
    A = sum_i w_i p_i with w_i = alpha_i T_i and final transmittance T_f: dA/dp_i = w_i;
    dA/dalpha_i = T_i p_i - (sum_{j>i} w_j p_j) / (1 - alpha_i); dT_f/dalpha_i = -T_f / (1 - alpha_i).
    The sum over later splats is A minus the running sum."""
    tiles_per_camera = tiles_x * tiles_y
    channels = payload.shape[1]
    num_tiles = starts.shape[0] - 1
    for u in numba.prange(num_tiles):
        t = _spread(u, num_tiles)
        begin, end = starts[t], starts[t + 1]
        if begin == end:
            continue
        cam = t // tiles_per_camera
        row0 = ((t % tiles_per_camera) // tiles_x) * tile
        col0 = (t % tiles_x) * tile
        rows, cols = min(tile, height - row0), min(tile, width - col0)
        T = np.ones(rows * cols)  # 0 once finished, as in the forward
        prefix = np.zeros(rows * cols * channels)
        remaining = rows * cols
        live_lo, live_hi, live_rows = _live_ranges(rows, cols)
        for k in range(begin, end):
            g = ids[k]
            mx, my, a, b, c = geometry[k, 0], geometry[k, 1], geometry[k, 2], geometry[k, 3], geometry[k, 4]
            opacity, reach = geometry[k, 5], geometry[k, 6]
            first, stop, det = _live_rows(my, a, b, c, reach, row0, rows, live_rows)
            half_a, inv_a, two_a_reach = 0.5 * a, 1.0 / a, 2.0 * a * reach
            g_mx = g_my = g_a = g_b = g_c = g_opacity = 0.0
            for py in range(first, stop):
                dy = my - (py + 0.5)
                bdy, cdy2 = b * dy, 0.5 * c * dy * dy
                i = py - row0
                x_first, x_stop = _live_columns(mx, bdy, inv_a, two_a_reach - det * dy * dy, col0, i, live_lo, live_hi)
                base = i * cols - col0
                finished = 0
                for px in range(x_first, x_stop):
                    q = base + px
                    T_q = T[q]
                    if T_q == 0.0:
                        continue
                    dx = mx - (px + 0.5)
                    sigma = (half_a * dx + bdy) * dx + cdy2
                    if sigma < 0.0:
                        continue
                    falloff = _falloff(sigma)
                    raw = opacity * falloff
                    alpha = min(ALPHA_MAX, raw)
                    if alpha < ALPHA_MIN:
                        continue
                    next_T = T_q * (1.0 - alpha)
                    if next_T <= T_MIN:
                        T[q] = 0.0
                        finished += 1
                        continue
                    w = alpha * T_q
                    own = 0.0  # grad . p_i
                    later = 0.0  # grad . sum_{j>i} w_j p_j
                    for ch in range(channels):
                        g_ch = grad_accum[cam, py, px, ch]
                        entry_payload[k, ch] += w * g_ch
                        prefix[q * channels + ch] += w * payload[g, ch]
                        own += g_ch * payload[g, ch]
                        later += g_ch * (accum[cam, py, px, ch] - prefix[q * channels + ch])
                    if raw <= ALPHA_MAX:  # the 0.999 cap passes no gradient where it binds
                        g_alpha = T_q * own - (later + grad_transmittance[cam, py, px] * transmittance[cam, py, px]) / (1.0 - alpha)
                        g_sigma = -g_alpha * alpha
                        g_opacity += g_alpha * falloff
                        g_mx += g_sigma * (a * dx + b * dy)
                        g_my += g_sigma * (b * dx + c * dy)
                        g_a += g_sigma * 0.5 * dx * dx
                        g_b += g_sigma * dx * dy
                        g_c += g_sigma * 0.5 * dy * dy
                    T[q] = next_T
                if finished:
                    remaining -= finished
                    _narrow_row(T, live_lo, live_hi, live_rows, i, cols)
            entry_means2d[k, 0], entry_means2d[k, 1] = g_mx, g_my
            entry_conics[k, 0], entry_conics[k, 1], entry_conics[k, 2] = g_a, g_b, g_c
            entry_opacities[k] = g_opacity
            if remaining == 0:
                break


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _Composite(torch.autograd.Function):
    """(means2d [C*N, 2], conics [C*N, 3], opacities [C*N], payload [C*N, D']) -> (accum
    [C, H, W, D'], transmittance [C, H, W]); the tile lists (``_bin_tiles``' ids, starts and
    geometry) and the image layout ride along."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, payload, tiles, layout):
        ids, starts, geometry = tiles  # geometry: means2d, conics and opacities per entry
        num_cameras, tiles_x, tiles_y, width, height = layout
        accum = np.zeros((num_cameras, height, width, payload.shape[1]), dtype=_numpy(payload).dtype)
        transmittance = np.ones((num_cameras, height, width), dtype=accum.dtype)
        with COMPILED_KERNEL_LOCK:
            _composite_tiles(geometry, _numpy(payload), ids, starts, tiles_x, tiles_y, TILE, width, height, accum,
                             transmittance, *_NO_TERMS)
        accum_t, transmittance_t = torch.from_numpy(accum), torch.from_numpy(transmittance)
        ctx.save_for_backward(means2d, conics, opacities, payload, accum_t, transmittance_t)
        ctx.tiles = tiles
        ctx.layout = layout
        return accum_t, transmittance_t

    @staticmethod
    def backward(ctx, grad_accum, grad_transmittance):
        means2d, conics, opacities, payload, accum, transmittance = ctx.saved_tensors
        ids, starts, geometry = ctx.tiles
        num_cameras, tiles_x, tiles_y, width, height = ctx.layout
        dtype = _numpy(payload).dtype
        m = ids.shape[0]
        entries = [np.zeros((m, 2), dtype), np.zeros((m, 3), dtype), np.zeros(m, dtype), np.zeros((m, payload.shape[1]), dtype)]
        grad_accum = torch.zeros_like(accum) if grad_accum is None else grad_accum
        grad_transmittance = torch.zeros_like(transmittance) if grad_transmittance is None else grad_transmittance
        with COMPILED_KERNEL_LOCK:
            _composite_backward(geometry, _numpy(payload), ids, starts, tiles_x, tiles_y, TILE, width, height,
                                _numpy(accum), _numpy(transmittance), _numpy(grad_accum.to(accum.dtype)),
                                _numpy(grad_transmittance.to(accum.dtype)), *entries)
        owner = torch.from_numpy(ids)
        grads = []
        for like, entry in zip((means2d, conics, opacities, payload), entries):
            grads.append(torch.zeros_like(like).index_add_(0, owner, torch.from_numpy(entry)))
        return (*grads, None, None)


class _Project(torch.autograd.Function):
    """(means [N, 3], quats [N, 4], scales [N, 3]) -> (means2d [C, N, 2], conics [C, N, 3], depths
    [C, N], radii [C, N, 2]) through the compiled projection, with its compiled backward; the
    opacities and cameras ride along without gradients (opacities only choose the box, as in torch's
    projection)."""

    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, settings):
        width, height, near_plane, far_plane, eps2d = settings
        num_cameras, n = viewmats.shape[0], means.shape[0]
        dtype = _numpy(means).dtype
        means2d = np.zeros((num_cameras, n, 2), dtype)
        conics = np.zeros((num_cameras, n, 3), dtype)
        depths = np.zeros((num_cameras, n), dtype)
        radii = np.zeros((num_cameras, n, 2), np.int64)
        arrays = [_numpy(t) for t in (means, quats, scales, opacities, viewmats, Ks)]
        with COMPILED_KERNEL_LOCK:
            _project(*arrays, width, height, near_plane, far_plane, eps2d, means2d, conics, depths, radii)
        radii_t = torch.from_numpy(radii)
        ctx.save_for_backward(means, quats, scales, viewmats, Ks, radii_t)
        ctx.settings = settings
        ctx.mark_non_differentiable(radii_t)
        return torch.from_numpy(means2d), torch.from_numpy(conics), torch.from_numpy(depths), radii_t

    @staticmethod
    def backward(ctx, grad_means2d, grad_conics, grad_depths, _grad_radii):
        means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
        width, height, _, _, eps2d = ctx.settings
        grads = [torch.zeros_like(t) for t in (means, quats, scales)]
        upstream = [torch.zeros(radii.shape[:2] + (k,), dtype=means.dtype) if g is None else g
                    for g, k in ((grad_means2d, 2), (grad_conics, 3))]
        grad_depths = torch.zeros(radii.shape[:2], dtype=means.dtype) if grad_depths is None else grad_depths
        arrays = [_numpy(t) for t in (means, quats, scales, viewmats, Ks)]
        with COMPILED_KERNEL_LOCK:
            _project_backward(*arrays, width, height, eps2d, _numpy(radii), *(_numpy(g) for g in upstream),
                              _numpy(grad_depths), *(_numpy(g) for g in grads))
        return (*grads, None, None, None, None)


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``rasterize_torch.project_gaussians`` compiled, differentiable with respect to means,
    quats and scales: means2d [C, N, 2], conics [C, N, 3], depths [C, N], radii [C, N, 2] (int64,
    0 where culled); culled Gaussians' conics are left 0 and their means2d may be unset. Cameras
    that need gradients are torch's projection's job (``place`` hands them over)."""
    return _Project.apply(means, quats, scales, opacities.detach(), viewmats.detach(), Ks.detach(),
                          (width, height, near_plane, far_plane, eps2d))


@numba.njit(cache=True, nogil=True)
def _radix_sort(keys, values):  # pragma: no cover - compiled
    """values [V] reordered by keys [V] (uint32), stably: a least-significant-digit radix sort,
    four passes of 8 bits, each pass skipped where every key has the same digit (the high bits of
    depths within one head's few decimetres). Overwrites neither input."""
    n = keys.shape[0]
    histograms = np.zeros((4, 256), np.int64)
    for i in range(n):
        for d in range(4):
            histograms[d, (keys[i] >> (8 * d)) & 255] += 1
    keys, values = keys.copy(), values.copy()
    spare_keys, spare_values = np.empty_like(keys), np.empty_like(values)
    offsets = np.empty(256, np.int64)
    for d in range(4):
        if histograms[d].max() == n:
            continue
        total = 0
        for bucket in range(256):
            offsets[bucket] = total
            total += histograms[d, bucket]
        for i in range(n):
            bucket = (keys[i] >> (8 * d)) & 255
            spare_keys[offsets[bucket]], spare_values[offsets[bucket]] = keys[i], values[i]
            offsets[bucket] += 1
        keys, spare_keys = spare_keys, keys
        values, spare_values = spare_values, values
    return values


def _front_to_back(depths: np.ndarray, visible: np.ndarray, near_plane: float) -> np.ndarray:
    """The visible flat ids [V] (ascending) sorted by depth, ties in id order as gsplat's stable
    radix sort leaves them. Positive float32 depths sort as their bit patterns, which a stable
    radix sort orders ~4x faster than numpy's sort; other depths take the stable argsort."""
    if depths.dtype == np.float32 and near_plane > 0:
        return _radix_sort(depths[visible].view(np.uint32), visible)
    return visible[np.argsort(depths[visible], kind="stable")]


@dataclass(frozen=True)
class Placement:
    """Everything a render needs that does not depend on the colours: the projected splats (flat
    over cameras) and the tile lists. Rendering one placement with several colourings (colour
    fitting) pays for projection and binning once."""

    means2d: Tensor  # [C*N, 2] pixels
    conics: Tensor  # [C*N, 3]
    opacities: Tensor  # [C*N]
    depths: Tensor  # [C, N] camera-frame z, metres
    ids: np.ndarray  # [M] flat ids, grouped by tile, front to back
    starts: np.ndarray  # [C * tiles_y * tiles_x + 1]
    geometry: np.ndarray  # [M, GEOMETRY_FIELDS] each entry's splat: means2d, conic, opacity, reach
    layout: tuple[int, int, int, int, int]  # cameras, tiles_x, tiles_y, width, height


def place(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> Placement:
    """Project and bin (arguments as ``rasterize``'s, checked by the caller)."""
    num_cameras, n = viewmats.shape[0], means.shape[0]
    # The compiled projection has gradients for the splats; one for the cameras (nothing here
    # asks for it) is left to torch's projection.
    project = project_gaussians
    if torch.is_grad_enabled() and (viewmats.requires_grad or Ks.requires_grad):
        project = rasterize_torch.project_gaussians
    means2d, conics, depths, radii = project(
        means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d
    )
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    radii_np = _numpy(radii.reshape(-1, 2))
    order = _front_to_back(_numpy(depths).reshape(-1), np.flatnonzero(radii_np[:, 0] > 0), near_plane)
    means2d, conics, opacities = means2d.reshape(-1, 2), conics.reshape(-1, 3), opacities.repeat(num_cameras)
    runs = max(1, min(numba.get_num_threads(), len(order) // 1024))  # one binned run per thread, none tiny
    with COMPILED_KERNEL_LOCK:
        ids, starts, geometry = _bin_tiles(_numpy(means2d), _numpy(conics),
                                           _numpy(opacities).astype(_numpy(means2d).dtype, copy=False), radii_np, order,
                                           num_cameras, tiles_x, tiles_y, TILE, n, runs)
    return Placement(means2d, conics, opacities, depths, ids, starts, geometry,
                     (num_cameras, tiles_x, tiles_y, width, height))


def composite(
    placement: Placement,
    colors: Tensor,  # [N, D]
    backgrounds: Tensor | None = None,  # [C, D]
) -> tuple[Tensor, Tensor, Tensor]:
    """Colours [C, H, W, D], alphas [C, H, W] and expected depths [C, H, W] of a placement
    coloured with ``colors`` (differentiable)."""
    depths = placement.depths
    num_cameras, n = depths.shape
    d = colors.shape[1]
    payload = torch.cat([colors.expand(num_cameras, n, d), depths[..., None]], dim=-1)  # [C, N, D + 1]
    accum, transmittance = _Composite.apply(placement.means2d, placement.conics, placement.opacities,
                                            payload.reshape(-1, d + 1), (placement.ids, placement.starts, placement.geometry),
                                            placement.layout)
    render = accum[..., :d]
    if backgrounds is not None:
        render = render + transmittance[..., None] * backgrounds[:, None, None, :]
    alphas = 1.0 - transmittance
    return render, alphas, accum[..., d] / alphas.clamp_min(1e-10)


# Terms stored per pixel by ``linear_composite``; a placement needing more composites as usual.
# A predicted head's colour fit (front and backing splats at 256 px) needs up to ~40.
TERMS_PER_PIXEL = 64
# ... and at most this many bytes for the stored terms (12 a term), else it composites as usual.
MAX_TERM_BYTES = 96 << 20


class _TermBuffers:
    """The per-pixel term arrays of ``linear_composite``, kept for the next call of the same shape.
    They are ~50 MB at 256 px, and fresh ones cost a page fault per 4 kB on first write (measured
    ~12 ms of a 30 ms recording pass); a head's colour fit records one placement per frame. A set
    is lent to one ``colour`` function and comes back when that function is collected, so two
    live fits never share one. Up to KEPT sets wait (the geometric predictor fits two frames at
    once); a set of another shape is dropped."""

    KEPT = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[tuple[np.ndarray, np.ndarray]] = []

    def take(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            self._free = [b for b in self._free if b[0].shape == shape]
            if self._free:
                return self._free.pop()
        return np.empty(shape, np.int32), np.empty(shape, np.float64)  # only written entries are read

    def give_back_when_collected(self, owner: object, buffers: tuple[np.ndarray, np.ndarray]) -> None:
        weakref.finalize(owner, self.give_back, buffers)

    def give_back(self, buffers: tuple[np.ndarray, np.ndarray]) -> None:
        with self._lock:
            self._free = [buffers, *self._free][: self.KEPT]


_TERM_BUFFERS = _TermBuffers()


def linear_composite(placement: Placement, backgrounds: Tensor | None = None):
    """``composite`` of one placement as a linear map of the colours, for rendering it many times
    (colour fitting): the per-pixel terms are found once (one pass like a composite), after which
    each colouring is a weighted sum, ~10x cheaper than a composite, and bit for bit the same
    result (same terms, same order, float64 sums). Returns ``f(colors [N, D]) -> (colours
    [C, H, W, D], alphas [C, H, W], depths [C, H, W])``, not differentiable; None when a pixel has
    more than TERMS_PER_PIXEL terms or the terms would exceed MAX_TERM_BYTES (composite then)."""
    num_cameras, tiles_x, tiles_y, width, height = placement.layout
    if num_cameras * height * width * TERMS_PER_PIXEL * 12 > MAX_TERM_BYTES:
        return None
    splat, weight = _TERM_BUFFERS.take((num_cameras, height, width, TERMS_PER_PIXEL))
    count = np.zeros((num_cameras, height, width), np.int32)
    transmittance = np.ones((num_cameras, height, width), np.float64)
    with COMPILED_KERNEL_LOCK:
        no_payload = np.zeros((1, 0), placement.geometry.dtype)
        _composite_tiles(placement.geometry, no_payload, placement.ids, placement.starts, tiles_x, tiles_y, TILE, width, height,
                         np.zeros((num_cameras, height, width, 0), transmittance.dtype), transmittance, splat, weight, count)
    if count.max(initial=0) > TERMS_PER_PIXEL:
        _TERM_BUFFERS.give_back((splat, weight))
        return None
    dtype = _numpy(placement.means2d).dtype
    n = placement.depths.shape[1]
    transmittance_t = torch.from_numpy(transmittance.astype(dtype))  # rounded first, as composite's is
    alphas = 1.0 - transmittance_t
    flat_depths = np.ascontiguousarray(_numpy(placement.depths).reshape(-1, 1).astype(dtype))
    depth_sum = np.zeros((num_cameras, height, width, 1))
    with COMPILED_KERNEL_LOCK:
        _weighted_sums(splat, weight, count, flat_depths, depth_sum)
    depths = torch.from_numpy(depth_sum[..., 0].astype(dtype)) / alphas.clamp_min(1e-10)

    def colour(colors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        payload = np.ascontiguousarray(_numpy(colors.to(placement.means2d.dtype)).reshape(1, n, -1)
                                       .repeat(num_cameras, 0).reshape(num_cameras * n, -1))
        accum = np.zeros((num_cameras, height, width, payload.shape[1]))
        with COMPILED_KERNEL_LOCK:
            _weighted_sums(splat, weight, count, payload, accum)
        render = torch.from_numpy(accum.astype(payload.dtype))
        if backgrounds is not None:
            render = render + transmittance_t[..., None] * backgrounds[:, None, None, :]
        return render, alphas, depths

    _TERM_BUFFERS.give_back_when_collected(colour, (splat, weight))
    return colour


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
    """Render N Gaussians into C cameras on the CPU; arguments and results exactly as
    ``rasterize_torch.rasterize`` (colors [C, H, W, D], alphas [C, H, W], expected depths
    [C, H, W]). float32 and float64 inputs are both compiled for; differentiable with respect to
    means, quats, scales, opacities and colors."""
    if means.device.type != "cpu":
        raise ValueError(f"the numba backend renders CPU tensors, got means on {means.device}")
    check_rasterize_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds)
    placement = place(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d)
    return composite(placement, colors, backgrounds)


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel for float32, the dtype renders and
    training use: a tiny render without and with gradients. ``make install`` runs it, so the first
    real render does not wait for the compiler."""
    g = torch.Generator().manual_seed(0)
    means = torch.randn(20, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 1.0])
    quats, scales = torch.randn(20, 4, generator=g), torch.full((20, 3), 0.02)
    opacities, colors = torch.full((20,), 0.5), torch.rand(20, 3, generator=g)
    K = torch.tensor([[[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]])
    with torch.no_grad():
        rasterize(means, quats, scales, opacities, colors, torch.eye(4)[None], K, 16, 16)
    means.requires_grad_()
    rgb, alpha, depth = rasterize(means, quats, scales, opacities, colors, torch.eye(4)[None], K, 16, 16)
    (rgb.sum() + alpha.sum() + depth.sum()).backward()
    with torch.no_grad():
        placement = place(means.detach(), quats, scales, opacities, torch.eye(4)[None], K, 16, 16)
        linear_composite(placement)(colors)


if __name__ == "__main__":  # python -m volume_cli.render.rasterize_numba: compile and cache now
    warm_up()
