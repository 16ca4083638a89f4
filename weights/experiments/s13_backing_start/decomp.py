"""Where the geometric predictor's novel-view error lies: missing head (truth solid, render not),
excess (render solid, truth not), and overlap; per yaw, on held-out synthetic people."""
import sys, json, numpy as np, torch
from volume_cli.evaluate import synthetic as ev
from volume_cli.face import FaceFinder
from volume_cli.synth.sample import generate_sample, sample_seed
from volume_cli.train.loop import EVAL_RUN_SEED
from volume_cli.framing import crop_of_still
from volume_cli.pipeline import crop_batch
from volume_cli.predictors import load_predictor, PredictorName
from volume_cli.train.losses import scale_correction, scaled_about_camera

count = int(sys.argv[1]); name = sys.argv[2] if len(sys.argv) > 2 else "geometric"
pred = load_predictor(PredictorName(name), "cpu")
size = 256; yaws = ev.DEFAULT_YAWS
tiles = []
acc = {y: {"miss": 0.0, "excess": 0.0, "both": 0.0, "n": 0, "miss_px": 0, "excess_px": 0, "both_px": 0} for y in yaws}
with FaceFinder(video=False) as finder:
    for i in range(count):
        s = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=size, views=1, temporal=False, return_scene=True)
        fc = crop_of_still(s["input_image"], s["input_K"], finder, size)
        if fc is None: continue
        head = s["head_center"]
        w2cs = [ev._w2c(fc.cam.R)] + [ev.orbit_view(fc.cam, head, y) for y in yaws]
        gt_rgb, gt_alpha, gt_depth = ev.ground_truth_views(s, w2cs, fc.cam.K, size)
        b1 = crop_batch([fc], "cpu")
        if getattr(pred, "use_head", False):
            fc2 = ev._pair_batch(fc, s["input_image"], s["input_K"], np.random.default_rng(0))
            ev._as_clip(b1, crop_batch([fc2], "cpu"), fc, fc2)
        g = pred.predict(b1)[0]
        views = np.stack([w @ np.linalg.inv(ev._w2c(fc.cam.R)) for w in w2cs])
        first = ev._render(g, views[:1], fc.cam.K, size, "auto")
        sc = scale_correction(first.depth[0].float(), first.alpha[0].float(), torch.from_numpy(gt_depth[0]), torch.from_numpy(gt_alpha[0]))
        r = ev._render(scaled_about_camera(g, sc), views[1:], fc.cam.K, size, "auto")
        for k, y in enumerate(yaws, start=1):
            ga = torch.from_numpy(gt_alpha[k]) > 0.5; pa = r.alpha[k-1] > 0.5
            gh = ga & ev.near_head(torch.from_numpy(gt_depth[k]), w2cs[k], fc.cam.K, head)
            ph = pa & ev.near_head(r.depth[k-1].float(), w2cs[k], fc.cam.K, head)
            u = gh | ph
            err = ((r.rgb[k-1].clamp(0,1) - torch.from_numpy(gt_rgb[k]))**2).mean(-1)
            a = acc[y]; n = int(u.sum())
            for key, m in (("miss", u & ~pa), ("excess", u & ~ga), ("both", u & pa & ga)):
                a[key] += float(err[m].sum()) / n; a[key + "_px"] += int(m.sum()) / n
            a["n"] += 1
            if abs(y) == 40 and len(tiles) < 16:
                gt = gt_rgb[k]; rr = r.rgb[k-1].clamp(0,1).numpy()
                ov = gt.copy(); ov[(u & ~pa).numpy()] = [1, 0, 0]; ov[(u & ~ga).numpy()] = [0, 0, 1]
                tiles.append(np.concatenate([gt, rr, ov], 1))
for y, a in acc.items():
    n = a["n"]; tot = (a["miss"] + a["excess"] + a["both"]) / n
    print(f"yaw {y:+.0f}: n={n} mse={tot:.5f} ({-10*np.log10(tot):.2f} dB if pooled)",
          " ".join(f"{k}: {a[k]/n/tot*100:.0f}% of mse, {a[k+'_px']/n*100:.0f}% of px" for k in ("miss", "excess", "both")))

import cv2
rows = [np.concatenate(tiles[i:i+2], 1) for i in range(0, len(tiles) - 1, 2)]
cv2.imwrite(f"/tmp/s13/decomp_{name}.png", (np.concatenate(rows, 0)[..., ::-1] * 255).astype(np.uint8))
