"""Three held-out people's input view: truth, true depth, geometric's rendered depth (scale-corrected), and its error (red: too far, blue: too near or not drawn, 10 cm full scale)."""
import sys
import numpy as np, cv2, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from warp_oracle_probe import *  # the protocol's imports and the seen / warp helpers
geometric = load_predictor(PredictorName.geometric, "cpu")
rows = []
with FaceFinder(video=False) as finder:
    for i in (0, 3, 6):
        sample = generate_sample(sample_seed(EVAL_RUN_SEED, i), size=256, views=1, temporal=False, return_scene=True)
        size = 256
        fc = crop_of_still(sample["input_image"], sample["input_K"], finder, size)
        head = sample["head_center"]
        w2cs = [syn._w2c(fc.cam.R)]
        gt_rgb, gt_alpha, gt_depth = syn.ground_truth_views(sample, w2cs, fc.cam.K, size)
        v = syn.predicted_views(geometric, fc, syn.jitter_partner(sample, fc), w2cs + [syn.orbit_view(fc.cam, head, 40.0)], gt_depth[0], gt_alpha[0])
        pd = v.depth[0].numpy() * v.scale
        td = gt_depth[0]
        m = (gt_alpha[0] > 0.5) & (td > 0)
        err = np.where(m, pd - td, 0)
        print(i, "scale", v.scale, "median |err| cm", np.median(np.abs(err[m])) * 100, "p90", np.percentile(np.abs(err[m]), 90) * 100,
              "head dist", np.linalg.norm(head), "true depth range", td[m].min(), td[m].max(), "pred", pd[m].min(), pd[m].max())
        def col(e):  # red = predicted too far, blue = too near, 10 cm full scale
            e = np.clip(e / 0.10, -1, 1)
            return np.stack([np.clip(e, 0, 1), np.zeros_like(e), np.clip(-e, 0, 1)], -1)
        lo, hi = td[m].min(), td[m].max()
        norm = lambda d: np.repeat(np.clip((d - lo) / (hi - lo + 1e-9), 0, 1)[..., None], 3, -1) * m[..., None]
        pa = v.alpha[0].numpy()
        print(i, "gt-solid pixels", m.sum(), "pred alpha<0.5 there", ((pa < 0.5) & m).sum(), "pred alpha>0.5 & depth<0.3", ((pa > 0.5) & m & (pd < 0.3)).sum())
        person = geometric.person_mask(fc.crop)
        print(i, "person<0.1 on gt-solid", ((person < 0.1) & m).sum(), "valid false on gt-solid", (~fc.valid & m).sum())
        rows.append(np.concatenate([gt_rgb[0], norm(td), norm(pd), col(err)], 1))
img = (np.concatenate(rows, 0) * 255).astype(np.uint8)
cv2.imwrite("input_view_depth_error.png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
