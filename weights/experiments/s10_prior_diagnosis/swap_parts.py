"""Which part of a prior network's prediction costs authenticity: evaluate it with parts of its
front layer replaced by the prior's own (what an untrained prior network predicts).

    python weights/experiments/s10_prior_diagnosis/swap_parts.py 12 WEIGHTS.safetensors:as_is \
        WEIGHTS.safetensors:pixel_colour WEIGHTS.safetensors:person_opacity \
        WEIGHTS.safetensors:pixel_colour+person_opacity WEIGHTS.safetensors:no_back
    python weights/experiments/s10_prior_diagnosis/swap_parts.py 2 WEIGHTS.safetensors:round_size \
        --real photo.jpg clip.mp4          # the number is then frames per video

Parts (joined with +): pixel_colour (front colours = the crop's pixels), person_opacity (front
opacity = the person mask clamped to [0.01, 0.99], as the untrained network has it), round_size
(front splats round, 0.5 crop pixels at the head distance, as untrained), no_back (the back layer
hidden). Networks run without colour fitting. Prints one line per variant. With --real FILE ...
after the variants: authenticity on real inputs (crop and original frame) instead.
"""

import sys

from pathlib import Path

import torch

from volume_cli.evaluate.real import evaluate_real
from volume_cli.evaluate.synthetic import evaluate_synthetic
from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
from volume_cli.predictors.geometric import UNUSED_OPACITY_LOGIT
from volume_cli.predictors.prior_input import PRIOR_CHANNELS
from volume_cli.predictors.unet import PERSON_CLAMP, load_unet_predictor


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
            logits[:, n:] = UNUSED_OPACITY_LOGIT
        quats, log_scales = g.quats.clone(), g.log_scales.clone()
        if "round_size" in self.parts:
            pixel_m = batch.head_center[:, 2].float() / batch.K[:, 0, 0].float()  # [B]
            log_scales[:, :n] = torch.log(0.5 * pixel_m)[:, None, None]
            quats[:, :n] = torch.tensor([1.0, 0.0, 0.0, 0.0])
        if "pixel_colour" in self.parts:
            sh[:, :n] = rgb_to_sh_dc(batch.images.permute(0, 2, 3, 1).reshape(b, n, 3).float())[:, :, None, :]
        return Gaussians(means=g.means, quats=quats, log_scales=log_scales, opacity_logits=logits, sh=sh)


def main() -> None:
    args, real = sys.argv[2:], []
    if "--real" in args:
        args, real = args[: args.index("--real")], [Path(a) for a in args[args.index("--real") + 1:]]
    predictors = {}
    for arg in args:
        weights, parts = arg.rsplit(":", 1)
        base = load_unet_predictor(weights)
        base.colour_steps = 0
        predictors[f"{weights}:{parts}"] = Swapped(base, set(parts.split("+")) - {"as_is"})
    if real:
        r, _ = evaluate_real(real, predictors, frames_per_video=int(sys.argv[1]), sheet_height=None)
        for name, m in r["predictors"].items():
            print(name, "crop", round(m["authenticity_psnr"], 2), "original frame", round(m["original_authenticity_psnr"], 2), flush=True)
        return
    r = evaluate_synthetic(predictors, count=int(sys.argv[1]))
    for name, m in r["predictors"].items():
        print(name, r["evaluated"], "authenticity", round(m["authenticity_psnr"], 2),
              "realism", round(m["realism_psnr"], 2), "lpips", round(m["realism_lpips"], 4),
              "jitter", round(m["stability_ratio"], 2), flush=True)


if __name__ == "__main__":
    main()
