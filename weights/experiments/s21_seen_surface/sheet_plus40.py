"""Three held-out people at +40 deg: input truth, truth, geometric, the true-geometry warp, and |error| x3 of the last two on the seen-in-frame pixels."""
import sys
import numpy as np, cv2
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from warp_oracle_probe import *  # the protocol's imports and the seen / warp helpers
geometric = load_predictor(PredictorName.geometric, "cpu")
rows = []
with FaceFinder(video=False) as finder:
    for i in (0, 3, 6):
        sample = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=256, views=1, temporal=False, return_scene=True)
        size = 256
        fc = crop_of_still(sample["input_image"], sample["input_K"], finder, size)
        if fc is None: continue
        head = sample["head_center"]
        yaws = syn.DEFAULT_YAWS
        w2cs = [syn._w2c(fc.cam.R)] + [syn.orbit_view(fc.cam, head, y) for y in yaws]
        gt_rgb, gt_alpha, gt_depth = syn.ground_truth_views(sample, w2cs, fc.cam.K, size)
        v = syn.predicted_views(geometric, fc, syn.jitter_partner(sample, fc), w2cs, gt_depth[0], gt_alpha[0])
        k = yaws.index(40.0) + 1 if 40.0 in yaws else len(yaws)
        dk = gt_depth[k].astype(np.float64)
        seen = seen_by_input(dk, w2cs[k], w2cs[0], fc.cam.K, gt_depth[0].astype(np.float64))
        u, vv, _ = input_pixel_of(dk, w2cs[k], w2cs[0], fc.cam.K)
        warped = bilinear(gt_rgb[0].astype(np.float64), u, vv) * seen[..., None]
        pred = v.rgb[k].clamp(0, 1).numpy()
        err_g = np.abs(pred - gt_rgb[k]).mean(-1) * seen * 3
        err_w = np.abs(warped - gt_rgb[k]).mean(-1) * seen * 3
        tiles = [gt_rgb[0], gt_rgb[k], pred, warped, np.repeat(np.clip(err_g, 0, 1)[..., None], 3, -1), np.repeat(np.clip(err_w, 0, 1)[..., None], 3, -1)]
        rows.append(np.concatenate(tiles, 1))
        print(i, "yaw", yaws[k - 1])
img = (np.concatenate(rows, 0) * 255).astype(np.uint8)
cv2.imwrite("plus40_truth_geometric_warp.png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
