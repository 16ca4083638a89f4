"""Why the untrained prior network with colour fitting stays below geometric on real photos: variants."""
import sys, math, torch, numpy as np
from pathlib import Path
from volume_cli.predictors.unet import load_unet_predictor
from volume_cli.predictors.geometric import GeometricPredictor, PIXEL_SIGMA
from volume_cli.predictors.colour_fit import fit_colours
from volume_cli.gaussians import Gaussians
from volume_cli.evaluate.real import evaluate_real

R = Path("/work/shared/data/real")
net = load_unet_predictor(Path("/tmp/s13/untrainedW_c0/unet.safetensors"))

class Variant:
    use_head = True
    def __init__(self, name, no_back=False, sigma=None, steps=2, backing=None):
        self.name, self.no_back, self.sigma, self.steps, self.backing = name, no_back, sigma, steps, backing
        self.weights_sha256 = None
    def close(self): pass
    def predict(self, batch):
        g = net.predict(batch)
        s = batch.size; n = s * s
        out = []
        for i in range(len(batch)):
            one = Gaussians(means=g.means[i].clone(), quats=g.quats[i].clone(), log_scales=g.log_scales[i].clone(),
                            opacity_logits=g.opacity_logits[i].clone(), sh=g.sh[i].clone())
            fx = float(batch.K[i, 0, 0]); z = one.means[:n, 2]
            px = one.log_scales[:n].exp() * fx / z[:, None]
            if i == 0 and not hasattr(Variant, "printed"):
                Variant.printed = True
                op = torch.sigmoid(one.opacity_logits)
                pb = one.log_scales[n:].exp() * fx / one.means[n:, 2:3]
                print("front px sigma median", px.median(0).values.tolist(), "back px", pb.median(0).values.tolist(),
                      "front op median", float(op[:n].median()), "back op median", float(op[n:].median()), flush=True)
            if self.no_back:
                one.opacity_logits[n:] = -14.0
            if self.sigma is not None:
                one.log_scales[:n] = torch.log(self.sigma * z[:, None] / fx).expand(-1, 3)
            pixels = torch.nonzero(batch.valid[i].reshape(-1)).squeeze(1)
            target = batch.images[i].permute(1, 2, 0).reshape(-1, 3).float()
            fitted, pix = pixels, pixels
            if self.backing is not None:
                ray = one.means[:n] / one.means[:n, 2:3]
                zb = z + 0.008 / ray.norm(dim=1) * 1.0
                zb = z + 0.008 / (1.0 / ray.norm(dim=1))  # 8 mm along the ray: dz = 8 mm * ray_z (unit ray)
                zb = z + 0.008 * (1.0 / ray.norm(dim=1))
                one.means[n:] = ray * zb[:, None]
                one.log_scales[n:] = torch.log(self.backing * zb[:, None] / fx).expand(-1, 3)
                one.opacity_logits[n:] = one.opacity_logits[:n]
                one.quats[n:] = one.quats[:n]
                one.sh[n:] = one.sh[:n]
                fitted, pix = torch.cat([pixels, pixels + n]), pixels.repeat(2)
            out.append(fit_colours(one, fitted, pix, target, batch.K[i], s, self.steps))
        return Gaussians(**{k: torch.stack([getattr(o, k) for o in out]) for k in ("means", "quats", "log_scales", "opacity_logits", "sh")})

net.use_head = True
preds = {"geometric": GeometricPredictor(), "net_c2": Variant("net_c2"), "s035_backing07": Variant("b", sigma=0.35, backing=0.7),
         "s05_backing07": Variant("b2", backing=0.7), "s035_backing10": Variant("b3", sigma=0.35, backing=1.0)}
d = evaluate_real([R / "grace_hopper_512.jpg", R / "astronaut_512.png", R / "selfie_640x360.mp4"], preds, size=256, frames_per_video=1, sheet_height=None)[0]
for r in d["rows"]:
    print(r["input"], {k: (round(m["psnr"], 1), round(m["original_psnr"], 1)) for k, m in r["predictors"].items()})
print({k: (round(m["authenticity_psnr"], 2), round(m["original_authenticity_psnr"], 2)) for k, m in d["predictors"].items()})
