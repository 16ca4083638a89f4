import math, numpy as np, numba, torch, sys
from volume_cli.render import rasterize_numba as rn
from volume_cli.render.rasterize_numba import _live_ranges, _live_rows, _live_columns, _mark_finished, ALPHA_MIN, ALPHA_MAX, T_MIN, _SPAN_MARGIN
from volume_cli.render.bench import head_like_splats, HEAD_DISTANCE_M
from volume_cli.render.paths import render_intrinsics

@numba.njit
def counts(means2d, conics, opacities, ids, starts, tiles_x, tiles_y, tile, width, height):
    c = np.zeros(8, np.int64)  # entries_used, rows, visits, finished, sigma<0, faint, contributions, entries_total
    c[7] = ids.shape[0]
    tiles_per_camera = tiles_x * tiles_y
    for t in range(starts.shape[0]-1):
        begin, end = starts[t], starts[t + 1]
        if begin == end: continue
        row0 = ((t % tiles_per_camera) // tiles_x) * tile
        col0 = (t % tiles_x) * tile
        rows, cols = min(tile, height - row0), min(tile, width - col0)
        T = np.ones(rows * cols)
        remaining = rows * cols
        live_lo, live_hi, live_rows = _live_ranges(rows, cols)
        for k in range(begin, end):
            c[0] += 1
            g = ids[k]
            mx, my = means2d[g, 0], means2d[g, 1]
            a, b, cc = conics[g, 0], conics[g, 1], conics[g, 2]
            opacity = opacities[g]
            reach = math.log(opacity / ALPHA_MIN) * (1.0 + _SPAN_MARGIN) + _SPAN_MARGIN
            first, stop, det = _live_rows(my, a, b, cc, reach, row0, rows, live_rows)
            half_a, inv_a, two_a_reach = 0.5 * a, 1.0 / a, 2.0 * a * reach
            for py in range(first, stop):
                c[1] += 1
                dy = my - (py + 0.5)
                bdy, cdy2 = b * dy, 0.5 * cc * dy * dy
                i = py - row0
                x_first, x_stop = _live_columns(mx, bdy, inv_a, two_a_reach - det * dy * dy, col0, i, live_lo, live_hi)
                base = i * cols - col0
                for px in range(x_first, x_stop):
                    c[2] += 1
                    q = base + px
                    T_q = T[q]
                    if T_q == 0.0:
                        c[3] += 1; continue
                    dx = mx - (px + 0.5)
                    sigma = (half_a * dx + bdy) * dx + cdy2
                    if sigma < 0.0:
                        c[4] += 1; continue
                    alpha = min(ALPHA_MAX, opacity * math.exp(-sigma))
                    if alpha < ALPHA_MIN:
                        c[5] += 1; continue
                    next_T = T_q * (1.0 - alpha)
                    if next_T <= T_MIN:
                        T[q] = 0.0
                        remaining -= 1
                        _mark_finished(T, live_lo, live_hi, live_rows, i, px - col0, cols)
                        continue
                    c[6] += 1
                    T[q] = next_T
            if remaining == 0:
                break
    return c

torch.set_grad_enabled(False)
g = head_like_splats(60000)
means, quats, scales, op = g.means, g.quats, g.log_scales.exp(), torch.sigmoid(g.opacity_logits)
for size in (256, 512):
    K = torch.as_tensor(render_intrinsics(size, HEAD_DISTANCE_M), dtype=torch.float32)[None]
    pl = rn.place(means, quats, scales, op, torch.eye(4)[None], K, size, size)
    tx = -(-size // rn.TILE)
    c = counts(pl.means2d.numpy(), pl.conics.numpy(), pl.opacities.numpy(), pl.ids, pl.starts, tx, tx, rn.TILE, size, size)
    print(size, dict(zip("entries_used rows visits finished sigma_neg faint contrib entries_total".split(), c.tolist())))
