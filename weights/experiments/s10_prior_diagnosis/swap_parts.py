"""Which part of a prior network's prediction costs authenticity: evaluate it with parts of its
front layer replaced by the prior's own (what an untrained prior network predicts).

    python weights/experiments/s10_prior_diagnosis/swap_parts.py 12 WEIGHTS.safetensors:as_is \
        WEIGHTS.safetensors:pixel_colour WEIGHTS.safetensors:person_opacity \
        WEIGHTS.safetensors:pixel_colour+person_opacity WEIGHTS.safetensors:no_back

Parts (joined with +): pixel_colour (front colours = the crop's pixels), person_opacity (front
opacity = the person mask clamped to [0.01, 0.99], as the untrained network has it), no_back (the
back layer hidden). Networks run without colour fitting. Prints one line per variant.
"""

import math
import sys

import torch

from volume_cli.evaluate.synthetic import evaluate_synthetic
from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
from volume_cli.predictors.prior_input import PRIOR_CHANNELS
from volume_cli.predictors.unet import PERSON_CLAMP, load_unet_predictor

HIDDEN = math.log(1e-6)


class Swapped:
    """A UNetPredictor whose front layer takes some parts from the prior."""

    def __init__(self, base, parts: set[str]) -> None:
        self.base, self.parts = base, parts

    def __getattr__(self, name):
        return getattr(self.base, name)

    def predict(self, batch):
        g = self.base.predict(batch)  # [B, 2 S S, ...]: front layer first
        b, n = g.opacity_logits.shape[0], g.opacity_logits.shape[1] // 2
        logits, sh = g.opacity_logits.clone(), g.sh.clone()
        if "person_opacity" in self.parts:
            person = self.base.prior_of(batch)[:, PRIOR_CHANNELS.index("person")].reshape(b, n)
            p = person.clamp(PERSON_CLAMP, 1 - PERSON_CLAMP)
            logits[:, :n] = torch.log(p) - torch.log1p(-p)
        if "no_back" in self.parts:
            logits[:, n:] = HIDDEN
        if "pixel_colour" in self.parts:
            sh[:, :n] = rgb_to_sh_dc(batch.images.permute(0, 2, 3, 1).reshape(b, n, 3).float())[:, :, None, :]
        return Gaussians(means=g.means, quats=g.quats, log_scales=g.log_scales, opacity_logits=logits, sh=sh)


def main() -> None:
    predictors = {}
    for arg in sys.argv[2:]:
        weights, parts = arg.rsplit(":", 1)
        base = load_unet_predictor(weights)
        base.colour_steps = 0
        predictors[f"{weights}:{parts}"] = Swapped(base, set(parts.split("+")) - {"as_is"})
    r = evaluate_synthetic(predictors, count=int(sys.argv[1]))
    for name, m in r["predictors"].items():
        print(name, r["evaluated"], "authenticity", round(m["authenticity_psnr"], 2),
              "realism", round(m["realism_psnr"], 2), "lpips", round(m["realism_lpips"], 4),
              "jitter", round(m["stability_ratio"], 2), flush=True)


if __name__ == "__main__":
    main()
