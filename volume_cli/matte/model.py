"""The person matte network: who is the person in a crop, at the crop's full resolution.

MediaPipe's selfie segmentation (trained on real people, run at 256 x 256) is soft and a few
pixels off at the outline, and every splat's opacity is taken from it: on held-out synthetic
people the truth's coverage in its place is worth more side-view PSNR than the true depth is
(session 21). This network corrects it: its output is a residual over MediaPipe's confidence in
logit space, so with zero weights it IS MediaPipe's mask, and what it learns is where that mask
is wrong, told by the crop and by what the head prior already knows (where the fitted head, its
hair shell and the face mesh are). Trained on synthetic people against their true coverage
(``matte.training``).

Input, per crop, float32 [B, INPUT_CHANNELS, S, S] (any S; trained at TRAINED_SIZE), channel order
INPUT_CHANNELS:
    r, g, b           the crop in [0, 1], centred to [-1, 1]
    person            MediaPipe's confidence (times the valid mask), in [0, 1]
    head, shell, mesh the head prior's masks (prior_input.PRIOR_CHANNELS), 0 or 1
    valid             1 inside the original frame
Output: the refined coverage [B, S, S] in [0, 1] (``MatteNet.forward`` gives its logits).

Network: the inputs area-averaged to S/2 and a stride-2 convolution to S/4, a three-level U-Net
there (S/4, S/8, S/16; two 3x3 convolutions a level, SiLU; no normalisation layers, whose
statistics over a training patch would differ from those over a whole crop), bilinear back to S and a
full-resolution head of two 3x3 convolutions that sees the input again (the outline is a
pixel-level decision, the context a coarse one); ~0.1 M parameters, ~0.2 G multiply-adds at
S = 256 (``flops_estimate``), most of them in the full-resolution head.

Weights ship as ``weights/matte.safetensors`` with its card ``weights/matte.json`` (data, steps,
machine, validation, the file's sha256); loading is offline and refuses a file whose sha256 is
not the card's.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

INPUT_CHANNELS = ("r", "g", "b", "person", "head", "shell", "mesh", "valid")
WIDTHS = (16, 32, 48)  # channels of the levels at S/4, S/8, S/16
HEAD_WIDTH = 8  # the full-resolution head's hidden channels
# MediaPipe's confidence is clamped into [CLAMP, 1 - CLAMP] before its logit, so the residual
# can still move a pixel MediaPipe is certain of (+-6.9 in logit space).
CLAMP = 1e-3
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "matte.safetensors"
CARD_FILE = WEIGHTS_DIR / "matte.json"
# The crop side the network is trained at (convert's default --size).
TRAINED_SIZE = 256


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.SiLU())


class MatteNet(nn.Module):
    """inputs [B, len(INPUT_CHANNELS), S, S] -> coverage logits [B, S, S]."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, head_width: int = HEAD_WIDTH) -> None:
        super().__init__()
        c = len(INPUT_CHANNELS)
        # Inputs area-averaged to S/2, then a stride-2 convolution to S/4, where the U-Net runs.
        self.stem = nn.Sequential(nn.Conv2d(c, widths[0], 3, stride=2, padding=1), nn.SiLU())
        self.down = nn.ModuleList([_block(widths[0], widths[0])] + [_block(widths[k - 1], widths[k]) for k in range(1, len(widths))])
        self.up = nn.ModuleList([_block(widths[k + 1] + widths[k], widths[k]) for k in range(len(widths) - 1)])
        self.head = nn.Sequential(
            nn.Conv2d(widths[0] + c, head_width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(head_width, 1, 3, padding=1),
        )
        # Zero residual at the start: the untrained network returns MediaPipe's mask.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, inputs: Tensor) -> Tensor:
        """Coverage logits [B, S, S]: MediaPipe's, corrected by :meth:`residual`."""
        return person_logits(inputs[:, INPUT_CHANNELS.index("person")]) + self.residual(inputs)

    def residual(self, inputs: Tensor) -> Tensor:
        """The correction [B, S, S] to MediaPipe's logits, gated by ``outline_gate``."""
        return outline_gate(inputs[:, INPUT_CHANNELS.index("person")]) * self.raw_residual(inputs)

    def raw_residual(self, inputs: Tensor) -> Tensor:
        """The network's correction [B, S, S] before the gate."""
        centred = torch.cat([inputs[:, :3] * 2.0 - 1.0, inputs[:, 3:]], 1)
        x = self.stem(F.avg_pool2d(centred, 2))
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for k in reversed(range(len(self.up))):
            x = F.interpolate(x, size=skips[k].shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[k](torch.cat([x, skips[k]], 1))
        x = F.interpolate(x, size=inputs.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([x, centred], 1))[:, 0]


def outline_gate(person: Tensor) -> Tensor:
    """4 p (1 - p) of MediaPipe's confidence p: 1 where it is unsure (0.5), ~0 where it is sure.
    Trained ungated on synthetic people, the matte also thinned real photos' high-contrast texture
    inside the head (a cap's badge, wrinkles: -8 dB authenticity on the Hopper photo), which it
    took for hair strands; gated, it corrects only MediaPipe's outline band."""
    return 4.0 * person * (1.0 - person)


def person_logits(person: Tensor) -> Tensor:
    """logit of MediaPipe's confidence, clamped into [CLAMP, 1 - CLAMP]."""
    return torch.logit(person.clamp(CLAMP, 1.0 - CLAMP))


def matte_inputs(crop: np.ndarray, person: np.ndarray, head: np.ndarray, shell: np.ndarray, mesh: np.ndarray,
                 valid: np.ndarray) -> Tensor:
    """[1, len(INPUT_CHANNELS), S, S] float32 from one crop [S, S, 3] uint8 and its [S, S] maps
    (person confidence in [0, 1]; head, shell, mesh, valid as booleans or 0/1)."""
    planes = [crop[..., k].astype(np.float32) / 255.0 for k in range(3)]
    planes += [np.asarray(m, np.float32) for m in (person, head, shell, mesh, valid)]
    return torch.from_numpy(np.stack(planes))[None]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_matte(path: Path = WEIGHTS_FILE, card_path: Path = CARD_FILE) -> MatteNet:
    """The shipped matte network in eval mode (offline; refuses weights whose sha256 is not the
    card's)."""
    from safetensors.torch import load_file

    card = json.loads(Path(card_path).read_text())
    digest = sha256_of(path)
    if digest != card["sha256"]:
        raise ValueError(f"{path}: sha256 {digest[:12]}... is not the model card's {card['sha256'][:12]}... ({card_path})")
    net = MatteNet(tuple(card["architecture"]["widths"]), int(card["architecture"]["head_width"]))
    net.load_state_dict(load_file(str(path)))
    return net.eval()


class PersonMatte:
    """The refined person coverage of a crop, for the predictors. Thread-safe for inference
    (torch modules in eval mode under no_grad hold no state)."""

    def __init__(self, net: MatteNet | None = None) -> None:
        self.net = net if net is not None else load_matte()

    @torch.no_grad()
    def coverage(self, crop: np.ndarray, person: np.ndarray, head: np.ndarray, shell: np.ndarray, mesh: np.ndarray,
                 valid: np.ndarray) -> np.ndarray:
        """[S, S] float64 in [0, 1] (0 outside the valid mask), arguments as :func:`matte_inputs`.
        The network was trained on S = TRAINED_SIZE crops, where a head spans a fixed number of
        pixels; at any other side it runs on the inputs resized to TRAINED_SIZE and its residual
        is resized back onto MediaPipe's own mask at S."""
        size = crop.shape[0]
        inputs = matte_inputs(crop, person, head, shell, mesh, valid)
        if size != TRAINED_SIZE:
            shrink = size > TRAINED_SIZE
            at_trained = F.interpolate(inputs, size=(TRAINED_SIZE, TRAINED_SIZE), mode="area" if shrink else "bilinear",
                                       align_corners=None if shrink else False)
            residual = F.interpolate(self.net.residual(at_trained)[:, None], size=(size, size),
                                     mode="bilinear" if shrink else "area", align_corners=False if shrink else None)[:, 0]
        else:
            residual = self.net.residual(inputs)
        logits = person_logits(inputs[:, INPUT_CHANNELS.index("person")]) + residual
        return torch.sigmoid(logits[0]).double().numpy() * np.asarray(valid, np.float64)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def flops_estimate(size: int = 256) -> float:
    """Multiply-adds of one forward at S = size (convolutions only), for the model card."""
    net = MatteNet()
    total = 0.0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += output.numel() * module.in_channels * math.prod(module.kernel_size) / module.groups

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net(torch.zeros(1, len(INPUT_CHANNELS), size, size))
    for h in handles:
        h.remove()
    return total
