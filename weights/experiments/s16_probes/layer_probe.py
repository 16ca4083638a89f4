"""Issue 10 probe: where a trained prior network loses the ORIGINAL frame. For each real input and
predictor: crop / original-frame PSNR, the front layer's depth roughness (|z - blur(z)| on the
solid person), the share of solid person pixels whose front splat lies behind a neighbour's
backing (z_i > z_j + 8 mm for an 8-neighbour j), and the original-frame error maps side by side.

Each network can also be run changed at inference, before colour fitting (``variant``):
front-smoothed (the front depth blurred, sigma 2 px, the backing moved with it),
backing-behind-neighbours (every backing behind the farthest front of its 3 x 3 neighbours + 8 mm),
back-at-start / front-at-start (that layer's heads put back to their initial biases).

    python layer_probe.py W1/unet.safetensors[,W2/...] OUT_DIR [variant,variant,...]
"""
import sys, math
from pathlib import Path
import numpy as np, torch, cv2
from volume_cli import camera
from volume_cli.evaluate.authenticity import crop_image, measure_crop
from volume_cli.evaluate.real import real_frames
from volume_cli.predictors import load_predictor, PredictorName
from volume_cli.face import FaceFinder
from volume_cli.pipeline import crop_batch

weights = [w for w in sys.argv[1].split(",") if w]
out_dir = Path(sys.argv[2]); out_dir.mkdir(exist_ok=True)
preds = {"geometric": load_predictor(PredictorName.geometric, "cpu")}
import torch.nn.functional as F
from volume_cli.gaussians import Gaussians


def along_rays(means, z_new):
    """means [B, S*S, 3] moved along their rays from the camera centre to z-depth z_new [B, S*S]."""
    return means * (z_new / means[..., 2])[..., None]


def variant(pred, kind):
    """Post-process the network's Gaussians before colour fitting (counterfactual probes)."""
    model = pred.model
    original = model.gaussians_from

    def patched(raw, images, K, distance, prior):
        if kind == "front-at-start":  # every front head at its initial bias, as --front-learns locks them
            from volume_cli.predictors.unet import locked_front
            return original(locked_front(raw, ()), images, K, distance, prior)
        if kind == "back-at-start":  # the same for the back layer's heads, each with its whole bias
            from volume_cli.predictors.unet import HEAD_SLICES, HEADS
            raw = raw.clone()
            for h in HEADS:
                if h.layer == 1:
                    bias = torch.tensor(h.bias, dtype=raw.dtype, device=raw.device)
                    raw[:, HEAD_SLICES[(h.name, 1)]] = bias[None, :, None, None]
            return original(raw, images, K, distance, prior)
        g = original(raw, images, K, distance, prior)
        b, s = images.shape[0], images.shape[-1]
        n = s * s
        means = g.means.clone()
        zf = means[:, :n, 2].reshape(b, 1, s, s)
        if kind == "front-smoothed":
            # the front depth's trained residual blurred (sigma 2 px), backing kept 8 mm behind it
            k = torch.exp(-0.5 * (torch.arange(-6, 7.0) / 2.0) ** 2); k = k / k.sum()
            pad = F.pad(zf, (6, 6, 6, 6), mode="replicate")
            sm = F.conv2d(F.conv2d(pad, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
            shift = sm.reshape(b, n) - zf.reshape(b, n)
            means[:, :n] = along_rays(means[:, :n], sm.reshape(b, n))
            means[:, n:] = along_rays(means[:, n:], means[:, n:, 2] + shift)
        elif kind == "backing-behind-neighbours":
            # every backing behind the farthest front splat of its 3x3 neighbourhood, by 8 mm
            far = F.max_pool2d(zf, 3, 1, 1).reshape(b, n)
            means[:, n:] = along_rays(means[:, n:], torch.maximum(means[:, n:, 2], far + 0.008))
        return Gaussians(means=means, quats=g.quats, log_scales=g.log_scales, opacity_logits=g.opacity_logits, sh=g.sh)

    model.gaussians_from = patched
    return pred


for w in weights:
    preds[Path(w).parent.name] = load_predictor(PredictorName.unet, "cpu", Path(w))
    for kind in sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[3] else []:
        preds[Path(w).parent.name + ":" + kind] = variant(load_predictor(PredictorName.unet, "cpu", Path(w)), kind)
R = "/work/shared/data/real/"
inputs = [(l, im) for p in ["grace_hopper_512.jpg", "astronaut_512.png", "man_outdoors_572x562.jpg", "obama_626x1200.jpg"] for l, im in real_frames(Path(R + p), 1)]
inputs += real_frames(Path(R + "selfie_640x360.mp4"), 2)
with FaceFinder(video=False) as finder:
    for label, image in inputs:
        fc = crop_image(image, 256, finder=finder)
        K_in = camera.image_intrinsics(image.shape[1], image.shape[0])
        tiles = []
        for name, p in preds.items():
            res, splats = measure_crop(fc, p, (image, K_in))
            with torch.inference_mode():
                g = p.predict(crop_batch([fc], "cpu"))[0]
            s = 256
            z = g.means[: s * s, 2].reshape(s, s).double().numpy()
            op = torch.sigmoid(g.opacity_logits[: s * s]).reshape(s, s).numpy()
            solid = (op > 0.9) & res.mask
            rough = np.abs(z - cv2.GaussianBlur(z, (0, 0), 2.0))[solid]
            behind = np.zeros_like(solid)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy or dx:
                        zn = np.roll(np.roll(z, dy, 0), dx, 1)
                        on = np.roll(np.roll(op, dy, 0), dx, 1) > 0.5
                        behind |= (z > zn + 0.008) & on
            o = res.original
            err = np.abs(o.render.astype(np.float32) - image.astype(np.float32)).mean(-1) * o.mask
            tiles.append(np.clip(err * 4, 0, 255).astype(np.uint8))
            print(f"{label:28s} {name:36s} crop {res.psnr_db:6.2f} frame {o.psnr_db:6.2f}  rough p50 {1000*np.median(rough):5.2f} p90 {1000*np.percentile(rough, 90):5.2f} mm  behind-neighbour-backing {behind[solid].mean():.3f}", flush=True)
        cv2.imwrite(str(out_dir / f"{label.replace('/', '_').replace('#', '_')}.png"), np.concatenate(tiles, 1))
