import math, time, numpy as np, numba, torch, sys
from volume_cli.render import rasterize_numba as rn
from volume_cli.render.rasterize_numba import _live_ranges, _live_rows, _live_columns, _mark_finished, ALPHA_MIN, ALPHA_MAX, T_MIN, _SPAN_MARGIN
from volume_cli.render.bench import head_like_splats, HEAD_DISTANCE_M
from volume_cli.render.paths import render_intrinsics

def make(mode):
    @numba.njit(fastmath=(mode=="fast"))
    def kern(means2d, conics, opacities, payload, ids, starts, tiles_x, tiles_y, tile, width, height, accum):
        tiles_per_camera = tiles_x * tiles_y
        channels = payload.shape[1]
        s = 0.0
        for t in range(starts.shape[0]-1):
            begin, end = starts[t], starts[t + 1]
            if begin == end: continue
            row0 = ((t % tiles_per_camera) // tiles_x) * tile
            col0 = (t % tiles_x) * tile
            rows, cols = min(tile, height - row0), min(tile, width - col0)
            T = np.ones(rows * cols)
            acc = np.zeros(rows * cols * channels)
            remaining = rows * cols
            live_lo, live_hi, live_rows = _live_ranges(rows, cols)
            for k in range(begin, end):
                g = ids[k]
                mx, my = means2d[g, 0], means2d[g, 1]
                a, b, c = conics[g, 0], conics[g, 1], conics[g, 2]
                opacity = opacities[g]
                reach = math.log(opacity / ALPHA_MIN) * (1.0 + _SPAN_MARGIN) + _SPAN_MARGIN
                first, stop, det = _live_rows(my, a, b, c, reach, row0, rows, live_rows)
                half_a, inv_a, two_a_reach = 0.5 * a, 1.0 / a, 2.0 * a * reach
                if mode == "entries": continue
                for py in range(first, stop):
                    dy = my - (py + 0.5)
                    bdy, cdy2 = b * dy, 0.5 * c * dy * dy
                    i = py - row0
                    x_first, x_stop = _live_columns(mx, bdy, inv_a, two_a_reach - det * dy * dy, col0, i, live_lo, live_hi)
                    if mode == "rows":
                        s += x_stop - x_first
                        continue
                    base = i * cols - col0
                    for px in range(x_first, x_stop):
                        q = base + px
                        T_q = T[q]
                        if T_q == 0.0: continue
                        dx = mx - (px + 0.5)
                        sigma = (half_a * dx + bdy) * dx + cdy2
                        if sigma < 0.0: continue
                        if mode == "noexp":
                            alpha = min(ALPHA_MAX, opacity * (1.0 - 0.1*sigma))
                        else:
                            alpha = min(ALPHA_MAX, opacity * math.exp(-sigma))
                        if alpha < ALPHA_MIN: continue
                        next_T = T_q * (1.0 - alpha)
                        if next_T <= T_MIN:
                            T[q] = 0.0
                            remaining -= 1
                            _mark_finished(T, live_lo, live_hi, live_rows, i, px - col0, cols)
                            continue
                        w = alpha * T_q
                        if mode != "noacc":
                            if mode == "acc4":
                                acc[q * 4 + 0] += w * payload[g, 0]
                                acc[q * 4 + 1] += w * payload[g, 1]
                                acc[q * 4 + 2] += w * payload[g, 2]
                                acc[q * 4 + 3] += w * payload[g, 3]
                            else:
                                for ch in range(channels):
                                    acc[q * channels + ch] += w * payload[g, ch]
                        T[q] = next_T
                if remaining == 0: break
            for i in range(rows):
                for j in range(cols):
                    q = i * cols + j
                    for ch in range(channels):
                        accum[0, row0 + i, col0 + j, ch] = acc[q * channels + ch]
        return s
    return kern

torch.set_grad_enabled(False)
g = head_like_splats(60000)
means, quats, scales, op = g.means, g.quats, g.log_scales.exp(), torch.sigmoid(g.opacity_logits)
size = int(sys.argv[1]) if len(sys.argv) > 1 else 512
K = torch.as_tensor(render_intrinsics(size, HEAD_DISTANCE_M), dtype=torch.float32)[None]
pl = rn.place(means, quats, scales, op, torch.eye(4)[None], K, size, size)
tx = -(-size // rn.TILE)
payload = np.ascontiguousarray(np.concatenate([np.random.rand(60000, 3), pl.depths.numpy().reshape(-1, 1)], 1).astype(np.float32))
args = (pl.means2d.numpy(), pl.conics.numpy(), pl.opacities.numpy(), payload, pl.ids, pl.starts, tx, tx, rn.TILE, size, size)
for mode in ["full", "fast", "acc4", "noacc", "noexp", "rows", "entries"]:
    k = make(mode)
    accum = np.zeros((1, size, size, 4), np.float32)
    k(*args, accum)
    best = 9
    for r in range(7):
        t0 = time.perf_counter(); k(*args, accum); best = min(best, time.perf_counter() - t0)
    print(f"{mode:8s} {best*1000:6.1f} ms (one thread)")
