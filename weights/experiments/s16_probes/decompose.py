"""Session 16 probe (issue 14): where the novel-view error lives. For `volume evaluate`'s held-out
people (same crops, scale alignment and head region as volume_cli/evaluate/synthetic.py), each
yaw's squared error over the scored region is split by where the truth's surface point lies for
the INPUT camera: outside the input frame but inside the crop, outside the crop, inside the frame
but hidden (more than 1 cm behind the input view's surface there), seen; and the render's own head
pixels where the truth has none. Writes one strip per person (truth; then per predictor: the crop
and its novel views over their error, red = truth only, blue = render only).

    python decompose.py COUNT geometric[,geometric-ellipsoid] OUT_DIR
"""
import sys, json, math
import numpy as np, torch, cv2
from volume_cli import camera
from volume_cli.evaluate import synthetic as S
from volume_cli.face import FaceFinder
from volume_cli.synth.sample import generate_sample, sample_seed
from volume_cli.train.loop import EVAL_RUN_SEED
from volume_cli.predictors import load_predictor, PredictorName
from volume_cli.framing import crop_of_still
from volume_cli.pipeline import crop_batch
from volume_cli.train.losses import scale_correction, scaled_about_camera

count = int(sys.argv[1]); names = sys.argv[2].split(","); out_dir = sys.argv[3]
preds = {n: load_predictor(PredictorName(n), "cpu") for n in names}
yaws = (-40.0, -20.0, 20.0, 40.0)
acc = {n: {y: np.zeros(6) for y in yaws} for n in names}  # sse missing, spurious, both; pixels
psn = {n: {y: [] for y in yaws} for n in names}
with FaceFinder(video=False) as finder:
    for i in range(count):
        sample = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=256, views=1, temporal=False, return_scene=True)
        fc = crop_of_still(sample["input_image"], sample["input_K"], finder, 256)
        if fc is None: continue
        head = sample["head_center"]
        w2cs = [S._w2c(fc.cam.R)] + [S.orbit_view(fc.cam, head, y) for y in yaws]
        gt_rgb, gt_a, gt_d = S.ground_truth_views(sample, w2cs, fc.cam.K, 256)
        strips = []
        for n, p in preds.items():
            b = crop_batch([fc], "cpu"); b2 = crop_batch([fc], "cpu")
            if getattr(p, "use_head", False): S._as_clip(b, b2, fc, fc)
            g = p.predict(b)[0]
            views = np.stack([w @ np.linalg.inv(S._w2c(fc.cam.R)) for w in w2cs])
            first = S._render(g, views[:1], fc.cam.K, 256, "auto")
            s = scale_correction(first.depth[0].float(), first.alpha[0].float(), torch.from_numpy(gt_d[0]), torch.from_numpy(gt_a[0]))
            r = S._render(scaled_about_camera(g, s), views[1:], fc.cam.K, 256, "auto")
            row = [np.concatenate([fc.crop / 255.0, first.rgb[0].clamp(0,1).numpy()], 0)]
            for k, y in enumerate(yaws):
                gt_head = (torch.from_numpy(gt_a[k+1]) > .5) & S.near_head(torch.from_numpy(gt_d[k+1]), w2cs[k+1], fc.cam.K, head)
                ph = (r.alpha[k] > .5) & S.near_head(r.depth[k].float(), w2cs[k+1], fc.cam.K, head)
                err = (r.rgb[k].clamp(0,1) - torch.from_numpy(gt_rgb[k+1])).square().mean(-1)
                u = gt_head | ph
                # where each truth pixel's surface point lies for the input camera
                pts = camera.image_rays(fc.cam.K, 256, 256) * gt_d[k+1][..., None]
                w2c = w2cs[k+1]; world = (pts - w2c[:3, 3]) @ w2c[:3, :3]
                c0 = world @ w2cs[0][:3, :3].T + w2cs[0][:3, 3]
                uv = c0[..., :2] / np.maximum(c0[..., 2:], 1e-6) * fc.cam.K[0, 0] + fc.cam.K[:2, 2]
                ui, vi = np.floor(uv[..., 0]).astype(int), np.floor(uv[..., 1]).astype(int)
                inside = (ui >= 0) & (ui < 256) & (vi >= 0) & (vi < 256) & (gt_d[k+1] > 0)
                uic, vic = ui.clip(0, 255), vi.clip(0, 255)
                incrop = inside.copy()
                inside &= fc.valid[vic, uic]
                vis = inside & (np.abs(gt_d[0][vic, uic] - c0[..., 2]) < 0.01)
                hid = inside & ~vis
                out = ~inside
                gh = gt_head.numpy(); e = err.numpy(); phn = ph.numpy()
                acc[n][y] += [float(e[gh & out & incrop].sum()), float(e[gh & out & ~incrop].sum()), float(e[gh & hid].sum()), float(e[gh & vis].sum()), float(e[phn & ~gh].sum()), float(u.sum())]
                psn[n][y].append(10 * math.log10(1 / float(err[u].mean())))
                e = err.sqrt().numpy()[..., None].repeat(3, -1) * 2
                e[..., 0] += 0.5 * (gt_head & ~ph).numpy(); e[..., 2] += 0.5 * (ph & ~gt_head).numpy()
                row.append(np.concatenate([r.rgb[k].clamp(0,1).numpy(), np.clip(e, 0, 1)], 0))
            strips.append(np.concatenate(row, 1))
        gts = np.concatenate([np.concatenate([gt_rgb[k], np.zeros_like(gt_rgb[k])], 0) for k in range(5)], 1)
        cv2.imwrite(f"{out_dir}/s{i:02d}.jpg", (np.concatenate([gts] + strips, 0)[..., ::-1] * 255).astype(np.uint8))
for n in names:
    for y in yaws:
        a = acc[n][y]; tot = a[:5].sum()
        print(n, f"{y:+.0f}", f"psnr {np.mean(psn[n][y]):.2f}", f"outside-frame-in-crop {a[0]/tot:.2f} outside-crop {a[1]/tot:.2f} hidden {a[2]/tot:.2f} visible {a[3]/tot:.2f} pred-only {a[4]/tot:.2f}", f"mse {tot/a[5]:.4f}")
