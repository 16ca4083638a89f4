"""Input-view depth residual after the scale correction: face (inside the landmarks' hull) and the rest of the head."""
import sys, numpy as np, torch, cv2
from volume_cli.evaluate import synthetic as ev
from volume_cli.face import FaceFinder
from volume_cli.synth.sample import generate_sample, sample_seed
from volume_cli.train.loop import EVAL_RUN_SEED
from volume_cli.framing import crop_of_still
from volume_cli.pipeline import crop_batch
from volume_cli.predictors import load_predictor, PredictorName
from volume_cli.train.losses import scale_correction, scaled_about_camera
count = int(sys.argv[1]); pred = load_predictor(PredictorName("geometric"), "cpu"); size = 256
with FaceFinder(video=False) as finder:
    for i in range(count):
        s = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=size, views=1, temporal=False, return_scene=True)
        fc = crop_of_still(s["input_image"], s["input_K"], finder, size)
        if fc is None: continue
        w2cs = [ev._w2c(fc.cam.R)]
        gt_rgb, gt_alpha, gt_depth = ev.ground_truth_views(s, w2cs, fc.cam.K, size)
        b1 = crop_batch([fc], "cpu")
        fc2 = ev._pair_batch(fc, s["input_image"], s["input_K"], np.random.default_rng(0))
        ev._as_clip(b1, crop_batch([fc2], "cpu"), fc, fc2)
        g = pred.predict(b1)[0]
        first = ev._render(g, np.eye(4)[None], fc.cam.K, size, "auto")
        sc = float(scale_correction(first.depth[0].float(), first.alpha[0].float(), torch.from_numpy(gt_depth[0]), torch.from_numpy(gt_alpha[0])))
        pd = first.depth[0].numpy() * sc; gd = gt_depth[0]
        uv = fc.landmarks @ fc.cam.K.T; uv = uv[:, :2] / uv[:, 2:]
        hull = np.zeros((size, size), np.uint8); cv2.fillConvexPoly(hull, cv2.convexHull(uv.astype(np.int32)), 1)
        solid = (first.alpha[0].numpy() > 0.5) & (gt_alpha[0] > 0.5)
        head = ev.near_head(torch.from_numpy(gd), w2cs[0], fc.cam.K, s["head_center"]).numpy()
        face = solid & (hull > 0); rest = solid & (hull == 0) & head
        # head centre depth along the camera axis vs the landmarks' mean: is the face placed right relative to the head?
        print(f"seed {i}: scale {sc:.3f} face median {np.median((pd-gd)[face])*100:+.2f} cm  rest-of-head {np.median((pd-gd)[rest])*100:+.2f} cm  "
              f"|res| face {np.median(np.abs(pd-gd)[face])*100:.2f} rest {np.median(np.abs(pd-gd)[rest])*100:.2f}", flush=True)
