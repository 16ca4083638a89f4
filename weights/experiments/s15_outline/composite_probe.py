"""Session 15's probe of the compiled composite (issue 11): a one-thread copy of
``rasterize_numba._composite_tiles``'s compositing loop, built in several modes, on ``volume bench``'s
head-like splats (60 000). Mode "count" counts the loop's work (entries, row spans, pixel visits,
their outcomes); the others time it with a part taken out (best of 7). A copy, not a call, because
the counters and the cuts have to sit inside the loop; the mode is a compile-time constant, so a
mode's unused branches are compiled out.

    python composite_probe.py [SIZE]   (default 512)
"""
import math, sys, time

import numba
import numpy as np
import torch

from volume_cli.render import rasterize_numba as rn
from volume_cli.render.bench import HEAD_DISTANCE_M, head_like_splats
from volume_cli.render.paths import render_intrinsics
from volume_cli.render.rasterize_numba import (ALPHA_MAX, ALPHA_MIN, T_MIN, _SPAN_MARGIN, _live_columns, _live_ranges,
                                               _live_rows, _mark_finished)

COUNTS = ("entries_used", "rows", "visits", "finished", "sigma_neg", "faint", "contributions")
TIMED = ["full", "fast", "acc4", "noacc", "noexp", "rows", "entries"]


def make(mode):
    counting = mode == "count"  # a constant to numba: the counters are compiled out of the timed modes

    @numba.njit(fastmath=(mode == "fast"))
    def kern(means2d, conics, opacities, payload, ids, starts, tiles_x, tiles_y, tile, width, height, accum):
        tiles_per_camera = tiles_x * tiles_y
        channels = payload.shape[1]
        c = np.zeros(len(COUNTS), np.int64)
        s = 0.0
        for t in range(starts.shape[0] - 1):
            begin, end = starts[t], starts[t + 1]
            if begin == end:
                continue
            row0 = ((t % tiles_per_camera) // tiles_x) * tile
            col0 = (t % tiles_x) * tile
            rows, cols = min(tile, height - row0), min(tile, width - col0)
            T = np.ones(rows * cols)
            acc = np.zeros(rows * cols * channels)
            remaining = rows * cols
            live_lo, live_hi, live_rows = _live_ranges(rows, cols)
            for k in range(begin, end):
                if counting:
                    c[0] += 1
                g = ids[k]
                mx, my = means2d[g, 0], means2d[g, 1]
                a, b, cc = conics[g, 0], conics[g, 1], conics[g, 2]
                opacity = opacities[g]
                reach = math.log(opacity / ALPHA_MIN) * (1.0 + _SPAN_MARGIN) + _SPAN_MARGIN
                first, stop, det = _live_rows(my, a, b, cc, reach, row0, rows, live_rows)
                half_a, inv_a, two_a_reach = 0.5 * a, 1.0 / a, 2.0 * a * reach
                if mode == "entries":
                    continue
                for py in range(first, stop):
                    if counting:
                        c[1] += 1
                    dy = my - (py + 0.5)
                    bdy, cdy2 = b * dy, 0.5 * cc * dy * dy
                    i = py - row0
                    x_first, x_stop = _live_columns(mx, bdy, inv_a, two_a_reach - det * dy * dy, col0, i, live_lo, live_hi)
                    if mode == "rows":
                        s += x_stop - x_first
                        continue
                    base = i * cols - col0
                    for px in range(x_first, x_stop):
                        if counting:
                            c[2] += 1
                        q = base + px
                        T_q = T[q]
                        if T_q == 0.0:
                            if counting:
                                c[3] += 1
                            continue
                        dx = mx - (px + 0.5)
                        sigma = (half_a * dx + bdy) * dx + cdy2
                        if sigma < 0.0:
                            if counting:
                                c[4] += 1
                            continue
                        if mode == "noexp":  # NB: changes when pixels finish, so not a fair split
                            alpha = min(ALPHA_MAX, opacity * (1.0 - 0.1 * sigma))
                        else:
                            alpha = min(ALPHA_MAX, opacity * math.exp(-sigma))
                        if alpha < ALPHA_MIN:
                            if counting:
                                c[5] += 1
                            continue
                        next_T = T_q * (1.0 - alpha)
                        if next_T <= T_MIN:
                            T[q] = 0.0
                            remaining -= 1
                            _mark_finished(T, live_lo, live_hi, live_rows, i, px - col0, cols)
                            continue
                        if counting:
                            c[6] += 1
                        w = alpha * T_q
                        if mode == "acc4":  # the four channels written out
                            acc[q * 4 + 0] += w * payload[g, 0]
                            acc[q * 4 + 1] += w * payload[g, 1]
                            acc[q * 4 + 2] += w * payload[g, 2]
                            acc[q * 4 + 3] += w * payload[g, 3]
                        elif mode != "noacc" and mode != "count":
                            for ch in range(channels):
                                acc[q * channels + ch] += w * payload[g, ch]
                        T[q] = next_T
                if remaining == 0:
                    break
            for i in range(rows):
                for j in range(cols):
                    for ch in range(channels):
                        accum[0, row0 + i, col0 + j, ch] = acc[(i * cols + j) * channels + ch]
        return c, s
    return kern


def main(size: int) -> None:
    torch.set_grad_enabled(False)
    g = head_like_splats(60000)
    K = torch.as_tensor(render_intrinsics(size, HEAD_DISTANCE_M), dtype=torch.float32)[None]
    pl = rn.place(g.means, g.quats, g.log_scales.exp(), torch.sigmoid(g.opacity_logits), torch.eye(4)[None], K, size, size)
    tiles = -(-size // rn.TILE)
    payload = np.ascontiguousarray(np.concatenate([np.random.rand(60000, 3), pl.depths.numpy().reshape(-1, 1)], 1).astype(np.float32))
    args = (pl.means2d.numpy(), pl.conics.numpy(), pl.opacities.numpy(), payload, pl.ids, pl.starts, tiles, tiles, rn.TILE, size, size)
    accum = np.zeros((1, size, size, 4), np.float32)
    counts = make("count")(*args, accum)[0]
    print(size, "px, tile entries", len(pl.ids), dict(zip(COUNTS, counts.tolist())))
    for mode in TIMED:
        kern = make(mode)
        kern(*args, accum)  # compile
        best = math.inf
        for _ in range(7):
            t0 = time.perf_counter()
            kern(*args, accum)
            best = min(best, time.perf_counter() - t0)
        print(f"{mode:8s} {best * 1000:6.1f} ms (one thread)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 512)
