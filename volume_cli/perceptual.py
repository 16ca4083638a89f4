"""LPIPS (learned perceptual image patch similarity) between images, offline, as a metric or a loss.

The network is the shift-tolerant AlexNet variant of LPIPS (ST-LPIPS, Ghildyal & Liu, ECCV 2022),
with the weights the ``stlpips-pytorch==0.0.2`` wheel ships inside it
(``stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth``, BSD-2-Clause). Only that file is read:
the wheel's Python modules import torchvision, torchsummary and IPython at import time, and no
torchvision wheel loads beside our torch, so the network is rebuilt here and nothing of the package
is imported. Nothing is downloaded.

Convention: images are float RGB in [0, 1], channels first, ``[B, 3, H, W]`` (the layout a batch of
renders has after ``permute(0, 3, 1, 2)``). The network was trained on [-1, 1] images standardised
by LPIPS's "scaling layer" (shift [-0.030, -0.088, -0.188], scale [0.458, 0.448, 0.450]); on [0, 1]
images that is exactly ImageNet's ``(x - mean) / std``: a pixel of 0.485 red maps to 0 in the red
channel. Values outside [0, 1] are neither clamped nor rejected (a loss needs their gradient).

The distance: both images go through five conv stages; at each stage's output every pixel's feature
vector is scaled to unit length, the two images' unit features are subtracted and squared, a fixed
non-negative 1x1 linear head sums the channels into a distance map ``[B, 1, h, w]``, the map is
averaged over space (or over a mask), and the five averages are added. 0 for identical images.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WHEEL = "stlpips-pytorch==0.0.2"
WEIGHTS_IN_WHEEL = Path("weights", "vST0.0", "alex_shift_tolerant.pth")

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # = (LPIPS shift + 1) / 2, checked on load
IMAGENET_STD = (0.229, 0.224, 0.225)  # = LPIPS scale / 2, checked on load
UNIT_EPS = 1e-10  # added to a feature vector's length before dividing, as LPIPS does
BLUR_TAPS = (1.0, 2.0, 1.0)  # the shipped file's blur filter: binomial, 3 taps (outer product, / 16)
MIN_SIZE = 21  # smallest H or W whose third halving still has more than 2 pixels to reflect (tested)

# The five conv stages: (in channels, out channels, kernel, padding, whether the stage starts with a
# 3x3 stride-1 max pool and a blurred halving, the conv's key prefix in the wheel's file). Every
# conv has stride 1 and is followed by ReLU; stage 1 halves its conv output with a blur before its
# ReLU. Stage k's linear head is ``lin{k}.model.1.weight`` [1, C, 1, 1] in the file.
STAGES = (
    (3, 64, 11, 2, False, "net.slice1.0"),
    (64, 192, 5, 2, True, "net.slice2.5"),
    (192, 384, 3, 1, True, "net.slice3.9"),
    (384, 256, 3, 1, False, "net.slice4.11"),
    (256, 256, 3, 1, False, "net.slice5.13"),
)
# blur filters stored in the file, one per halving (checked against BLUR_TAPS on load)
BLUR_KEYS = ("net.slice1.1.filt", "net.slice2.4.filt", "net.slice3.8.filt")


def weights_path() -> Path:
    """The weight file inside the installed wheel, found without importing the package's modules.

    Raises RuntimeError (saying what to install) when the wheel or its file is missing."""
    spec = importlib.util.find_spec("stlpips_pytorch")  # a top-level name: nothing is imported
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"LPIPS weights not found: pip install {WHEEL} (its weight file is read, nothing imported)")
    path = Path(next(iter(spec.submodule_search_locations)), WEIGHTS_IN_WHEEL)
    if not path.is_file():
        raise RuntimeError(f"LPIPS weights not found at {path}: pip install --force-reinstall {WHEEL}")
    return path


def _blur_halve(x: Tensor, taps: Tensor) -> Tensor:
    """Low-pass then keep every second pixel: x [B, C, h, w] -> [B, C, floor((h+1)/2)+1, ...].

    taps [3, 3] sums to 1; the padding is 2 pixels of reflection on each side."""
    c = x.shape[1]
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), taps.expand(c, 1, 3, 3), stride=2, groups=c)


class LPIPS(nn.Module):
    """Shift-tolerant AlexNet LPIPS with the wheel's weights, frozen (no parameter needs grad);
    differentiable with respect to the images. ``load_lpips`` gives a shared one per device."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
        self.convs = nn.ModuleList(nn.Conv2d(ci, co, k, padding=p) for ci, co, k, p, _, _ in STAGES)
        self.heads = nn.ModuleList(nn.Conv2d(co, 1, 1, bias=False) for _, co, _, _, _, _ in STAGES)
        ours = {}
        for k, (*_, key) in enumerate(STAGES):
            ours[f"convs.{k}.weight"] = state[f"{key}.weight"]
            ours[f"convs.{k}.bias"] = state[f"{key}.bias"]
            ours[f"heads.{k}.weight"] = state[f"lin{k}.model.1.weight"]
        taps = torch.tensor(BLUR_TAPS)
        taps = taps[:, None] * taps[None, :]
        taps = taps / taps.sum()
        self.register_buffer("taps", taps, persistent=False)  # [3, 3]
        # the file's own float32 constants, [1, 3, 1, 1], applied to [-1, 1] images as LPIPS does,
        # so that results match the published metric to rounding (see the module docstring)
        self.register_buffer("shift", state["scaling_layer.shift"].clone(), persistent=False)
        self.register_buffer("scale", state["scaling_layer.scale"].clone(), persistent=False)
        # the file also stores what is fixed here: a different file must fail loudly, not score wrongly
        for key in BLUR_KEYS:
            assert torch.equal(state[key][:, 0], taps.expand_as(state[key][:, 0])), key
        assert torch.allclose(self.shift.flatten(), 2 * torch.tensor(IMAGENET_MEAN) - 1)
        assert torch.allclose(self.scale.flatten(), 2 * torch.tensor(IMAGENET_STD))
        self.load_state_dict(ours, strict=True)
        self.requires_grad_(False)
        self.eval()

    def features(self, x: Tensor) -> list[Tensor]:
        """The five stages' ReLU outputs [B, C_k, h_k, w_k] for standardised images x [B, 3, H, W]
        (``(2 image - 1 - shift) / scale``): C = 64, 192, 384, 256, 256; h ~ H/2, H/4, H/8, H/8, H/8
        (126, 63, 32, 32, 32 for H = 256)."""
        outs = []
        for k, (conv, (*_, pool_first, _)) in enumerate(zip(self.convs, STAGES)):
            if pool_first:
                x = _blur_halve(F.max_pool2d(x, 3, stride=1), self.taps)
            x = conv(x)
            if k == 0:
                x = _blur_halve(x, self.taps)
            x = F.relu(x)
            outs.append(x)
        return outs

    def forward(self, image: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """LPIPS distance per image pair, [B], >= 0, symmetric in image and target. 0 for identical
        images; for a smooth 64x64 image, about 0.01 against itself shifted by one pixel and 0.5 to
        0.65 against a copy with Gaussian noise of std 0.1 (two images of uniform noise: only 0.04).

        image, target: [B, 3, H, W] RGB in [0, 1] (computed in the module's dtype).
        mask: [B, H, W] bool or float weights in [0, 1], None = every pixel. Each stage's distance
        map is averaged with the mask area-averaged to that stage's resolution as weights, so a
        mask's weight counts in proportion to the area it covers. Features see beyond the mask (a
        stage-5 feature sees a window about 100 pixels wide), so differences within ~50 pixels
        outside it still count a little. Each image's mask must cover some pixel.
        """
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image: expected [B, 3, H, W], got {list(image.shape)}")
        if target.shape != image.shape:
            raise ValueError(f"target: expected {list(image.shape)} (image's shape), got {list(target.shape)}")
        if not (image.is_floating_point() and target.is_floating_point()):
            raise ValueError(f"image, target: expected float tensors in [0, 1], got {image.dtype}, {target.dtype}")
        b, _, h, w = image.shape
        if min(h, w) < MIN_SIZE:
            raise ValueError(f"image: H and W must be at least {MIN_SIZE}, got {h}x{w}")
        if mask is not None:
            if mask.shape != (b, h, w):
                raise ValueError(f"mask: expected [B, H, W] = {[b, h, w]}, got {list(mask.shape)}")
            if not (mask.dtype == torch.bool or mask.is_floating_point()):
                raise ValueError(f"mask: expected bool or float, got {mask.dtype}")
            empty = int((mask.flatten(1).sum(1) <= 0).sum())
            if empty:
                raise ValueError(f"mask: {empty} of {b} masks cover no pixel")
            mask = mask.to(self.scale.dtype)[:, None]  # [B, 1, H, W]
        x = torch.cat([image, target]).to(self.scale.dtype)  # one pass for both: [2B, 3, H, W]
        feats = self.features((2 * x - 1 - self.shift) / self.scale)
        total = image.new_zeros(b, dtype=self.scale.dtype)
        for f, head in zip(feats, self.heads):
            f = f / (f.square().sum(1, keepdim=True).sqrt() + UNIT_EPS)  # unit length per pixel
            fa, fb = f[:b], f[b:]
            d = head((fa - fb).square())  # [B, 1, h_k, w_k]
            if mask is None:
                total = total + d.mean((1, 2, 3))
            else:
                m = F.adaptive_avg_pool2d(mask, d.shape[-2:])  # area average: [B, 1, h_k, w_k]
                total = total + (d * m).sum((1, 2, 3)) / m.sum((1, 2, 3))
        return total


@functools.cache
def _shared(device: torch.device) -> LPIPS:
    return LPIPS().to(device)


def load_lpips(device: str | torch.device = "cpu") -> LPIPS:
    """The LPIPS network on ``device``, built once per device and shared: frozen, eval mode, float32.
    Do not move or cast the shared one; build ``LPIPS()`` for a copy of your own (e.g. ``.double()``).

    Raises RuntimeError saying ``pip install stlpips-pytorch==0.0.2`` when the wheel is missing."""
    return _shared(torch.device(device))
