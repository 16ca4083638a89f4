"""The learned predictor: a lightweight U-Net from the crop (and its camera) to two Gaussians per
pixel, as in VoluMe (ICCV 2025) on top of Splatter Image (CVPR 2024).

Input, per crop, 7 channels (17 with the prior) at S x S (S divisible by 16):
    rgb * 2 - 1      3   the crop, centred
    ray              3   unit direction of the pixel's ray in the virtual-camera frame (pixel
                         centres at +0.5): tells the network the field of view, hence the distance
    valid            1   1 inside the original frame, 0 where the crop ran off it (black there)
    prior           10   only for a network built with ``prior=True`` (its card says which
                         channels): ``prior_input.PRIOR_CHANNELS``, the head prior of the crop.
                         Such a network's front depth is a residual over the prior's proxy
                         surface and its front opacity a residual over the person mask, both
                         taken at the crop's FULL resolution, so a network run on a coarser grid
                         (``network_at_size``) still starts from a sharp silhouette and surface

Network: five resolution levels (S, S/2, ..., S/16), two 3x3 convolutions per level (GroupNorm,
SiLU), average-pool down, bilinear up, skip connections by concatenation, no self-attention; a
1x1 convolution gives every head of :data:`HEADS` at full resolution.

Geometry is predicted in head-relative metric units and placed at the crop's head distance
``d = CropBatch.head_center[:, 2]`` (VoluMe's distance-adaptive scaling): the network says how far
in front of or behind the head centre a pixel's surface lies, and how large a splat is in crop
pixels at the head's distance (``d / fx`` metres, which the pipeline's framing keeps at
``CROP_EXTENT_M / S``). The same weights therefore work near and far.

Output: :class:`~volume_cli.gaussians.Gaussians` [B, 2 * S * S, ...] in the virtual-camera frame,
layer-major (all first-layer Gaussians in row-major pixel order, then the second layer). The first
layer's colour is the input pixel plus a learned correction ("direct colour sampling"), which
makes the input view right from the first step; the second layer carries what lies behind or
shows through the first (hair, the far side of glasses, the gaps a turned head opens).

Weights ship as ``weights/unet.safetensors`` with a model card ``weights/unet.json`` (architecture,
training config, data seed, steps, device, validation metrics, the file's sha256). Loading is
offline and refuses a file whose sha256 differs from the card's (or the caller's).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
from volume_cli.predictors.base import GAUSSIANS_PER_PIXEL, CropBatch
from volume_cli.predictors.prior_input import PRIOR_CHANNEL_COUNT, PRIOR_CHANNELS, PRIOR_DEPTH_SCALE_M

IN_CHANNELS = 7  # rgb, ray direction, valid (see the module docstring)
LEVELS = 5  # resolutions S, S/2, S/4, S/8, S/16
DEFAULT_WIDTHS = (32, 48, 96, 128, 192)  # channels per level; ~2.0 M parameters
GROUPS = 8  # GroupNorm groups (batch-size independent: batch 1 at inference behaves as in training)
# Head 1x1 convolution weights start this small, so the initial output is the table's biases
# (plus a little) while every weight still receives a gradient from the first step.
HEAD_INIT_STD = 1e-3

# --- ranges of the activations (used by HEADS and :func:`to_gaussians`) -------------------------
# z = d + DEPTH_SPAN_M * tanh(raw): the surface within 0.4 m of the head centre, far enough for the
# tip of the nose (~0.1 m in front), the back of the hair (~0.12 m behind) and the shoulders.
DEPTH_SPAN_M = 0.4
# A free 3D offset of at most 2 cm per axis (~13 crop pixels at S = 256): lets a splat leave its
# ray at silhouettes and for thin structures (strands, glasses frames).
OFFSET_MAX_M = 0.02
# Standard deviations in crop pixels at the head's distance, in [SCALE_MIN_PX, SCALE_MAX_PX]: a
# bounded sigmoid, so a single bad output can never make a splat that covers the whole image.
SCALE_MIN_PX = 0.02
SCALE_MAX_PX = 16.0
# A network built with ``front_min_scale_px`` floors every axis of its front splats there (in crop
# pixels at the head's distance). The input view renders each front splat at its own pixel centre,
# where a thin splat covers its pixel as well as a round one and blurs its neighbours less, so
# training grows thin splats; seen anywhere else (the original frame, another resolution) they
# leave a screen-door of gaps (session 11). No axis below ~0.5 px means no projection thinner
# than that from any camera. The untrained front layer is 0.5 px: a floor up to that leaves it be.
# First-layer colour = pixel + FRONT_COLOUR_SPAN * tanh(raw): a correction like the geometric
# predictor's Richardson steps (which move colours by up to 0.25), with room to spare.
FRONT_COLOUR_SPAN = 0.5
# Second-layer colour = pixel + BACK_COLOUR_SPAN * tanh(raw): starts from the pixel (what lies
# behind is often alike: hair behind hair, skin behind skin) but may become any colour in [0, 1].
BACK_COLOUR_SPAN = 1.0
# A network built with ``backing_start`` (with the prior) starts as the geometric predictor's two
# layers (predictors/geometric.py PIXEL_SIGMA, BACKING_SIGMA, BACKING_BEHIND_M; a test keeps them
# equal): front splats of 0.35 px, and the back layer a backing on each front splat's ray 8 mm
# behind it, 0.7 px at its own depth and as opaque as the front, both layers' colours fitted to the
# crop. Session 13: the default start (front 0.5 px, a 5 %-opaque 1 px back layer) left the
# untrained network 5 dB below the geometric predictor on real photos after colour fitting; this
# start is level with it.
BACKING_START_FRONT_PX = 0.35
BACKING_START_BACK_PX = 0.7
BACKING_START_BEHIND_M = 0.008
# Such a predictor drops splats less opaque than this, as the geometric predictor (MIN_PERSON) drops
# the pixels where the person mask is below it: the mask's floor (PERSON_CLAMP) in both layers
# otherwise leaves a faint card of the room behind the head, visible from the side.
BACKING_START_MIN_OPACITY = 0.1


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _scale_bias(px: float) -> float:
    """Pre-activation value giving a standard deviation of ``px`` crop pixels."""
    return _logit((px - SCALE_MIN_PX) / (SCALE_MAX_PX - SCALE_MIN_PX))


@dataclass(frozen=True)
class Head:
    """One output head: ``channels`` of the final 1x1 convolution for Gaussian ``layer`` (0 =
    front, 1 = behind), the initial bias of each channel in pre-activation space, and the name of
    the activation :func:`to_gaussians` applies."""

    name: str
    layer: int
    channels: int
    bias: tuple[float, ...]
    activation: str


# THE table: every channel the network outputs, what it becomes, and where it starts.
HEADS: tuple[Head, ...] = (
    # depth: z = d + 0.4 tanh(raw) metres along the pixel's ray (z-depth). Front layer starts 8 cm in
    # front of the head centre (the face surface: the eyes are ~8 cm in front of it,
    # face.HEAD_CENTER_BEHIND_EYES_M); the back layer 3 cm behind that.
    Head("depth", 0, 1, (math.atanh(-0.08 / DEPTH_SPAN_M),), "tanh_depth"),
    Head("depth", 1, 1, (math.atanh(-0.05 / DEPTH_SPAN_M),), "tanh_depth"),
    # offset: 0.02 tanh(raw) metres per axis, starting on the ray. The BACK layer only: each front
    # Gaussian stays on its own pixel's ray, so from the input camera it covers its pixel whatever
    # depth the network gives it and the input view is reproduced by construction (authenticity).
    # A free front offset let splats drift off their pixels and blur the input view (measured on a
    # CPU-trained model: 2-3 dB of input-view PSNR lost to it); the back layer, which carries what
    # lies behind, keeps the freedom to leave its ray at silhouettes and thin structures.
    Head("offset", 1, 3, (0.0, 0.0, 0.0), "tanh_offset"),
    # opacity: sigmoid, stored as the logit itself. Front starts at 0.5 (undecided between person and
    # background, where the sigmoid is steepest); back at logit(0.05), nearly hidden, so the input
    # view is first learned through the front layer's direct colours.
    Head("opacity", 0, 1, (_logit(0.5),), "sigmoid"),
    Head("opacity", 1, 1, (_logit(0.05),), "sigmoid"),
    # scale: per-axis standard deviation = (d / fx) * (0.02 + 15.98 sigmoid(raw)), in crop pixels at
    # the head's distance. Front starts at 0.5 px (covers its own pixel, overlaps neighbours a little
    # so gradients reach them); back at 1.0 px (wider, fills gaps seen from the side).
    Head("scale", 0, 3, (_scale_bias(0.5),) * 3, "sigmoid_scale"),
    Head("scale", 1, 3, (_scale_bias(1.0),) * 3, "sigmoid_scale"),
    # rotation: quaternion (w, x, y, z), normalised on use; starts at the identity (and, with equal
    # scales, the initial splats are round anyway).
    Head("rotation", 0, 4, (1.0, 0.0, 0.0, 0.0), "normalise"),
    Head("rotation", 1, 4, (1.0, 0.0, 0.0, 0.0), "normalise"),
    # colour: rgb = input pixel + span * tanh(raw) (direct colour sampling), starting at the pixel;
    # span 0.5 for the front layer, 1.0 for the back layer (see the constants above).
    Head("colour", 0, 3, (0.0, 0.0, 0.0), "pixel_plus_tanh"),
    Head("colour", 1, 3, (0.0, 0.0, 0.0), "pixel_plus_tanh"),
)
OUT_CHANNELS = sum(h.channels for h in HEADS)
assert {h.layer for h in HEADS} == set(range(GAUSSIANS_PER_PIXEL))
# Heads every layer has (the offset is the back layer's alone; see above).
LAYER_HEADS = ("depth", "opacity", "scale", "rotation", "colour")
BACK_HEADS = tuple(h.name for h in HEADS if h.layer == 1)


def _head_slices() -> dict[tuple[str, int], slice]:
    out, start = {}, 0
    for h in HEADS:
        out[(h.name, h.layer)] = slice(start, start + h.channels)
        start += h.channels
    return out


HEAD_SLICES = _head_slices()
_HEAD_BIAS = {(h.name, h.layer): h.bias[0] for h in HEADS}


def locked_heads(raw: Tensor, front_learned: tuple[str, ...], back_learned: tuple[str, ...] = BACK_HEADS) -> Tensor:
    """raw [B, OUT_CHANNELS, S, S] with every head NOT learned (front heads not in
    ``front_learned``, back heads not in ``back_learned``) set to its whole initial bias, so that
    :func:`to_gaussians` gives those quantities exactly as an untrained network (with the prior:
    the prior's) and no gradient reaches them.

    Front: authenticity lives mostly in the front layer's opacity, shape and colour; a network
    trained at 64 px learned per-grid-pixel versions of them that fail once resized to the crop and
    seen in the original frame (session 11). Its depth moves each front splat only along its
    pixel's ray, which the input camera sees only through the order in which neighbours overlap
    (see weights/experiments/s12_front_locked).
    Back: trained freely from the backing start, the back layer drifted 28 mm behind the front
    (start: 8 mm) and showed through the front's gaps as a screen-door in the original frame,
    2.8 dB below the prior on real photos; held at its start it was level (session 16,
    weights/experiments/s16_probes)."""
    locked = [h for h in HEADS if h.name not in (front_learned if h.layer == 0 else back_learned)]
    if not locked:
        return raw
    raw = raw.clone()
    for h in locked:
        bias = torch.tensor(h.bias, dtype=raw.dtype, device=raw.device)
        raw[:, HEAD_SLICES[(h.name, h.layer)]] = bias[None, :, None, None].expand(raw.shape[0], -1, *raw.shape[2:])
    return raw


def coarse_front_depth(raw: Tensor, cells: int) -> Tensor:
    """raw [B, OUT_CHANNELS, S, S] with the front depth channel averaged over a ``cells`` x
    ``cells`` grid and interpolated back (bilinear), whatever S: a residual over the prior's surface
    that can bend it (a jaw, an ear, the hair's depth) but not ripple it pixel by pixel. (Session
    12 tried it against the stripes trained networks show across real cheeks from the side: they
    stayed, so they are not the depth; the per-pixel residual changed by < 1 mm row to row.)
    S must be a multiple of ``cells``."""
    s = raw.shape[-1]
    if s % cells:
        raise ValueError(f"a front depth on {cells} x {cells} cells needs a crop side that is a multiple of it, got {s}")
    sl = HEAD_SLICES[("depth", 0)]
    smooth = F.interpolate(F.avg_pool2d(raw[:, sl].float(), s // cells), size=(s, s), mode="bilinear", align_corners=False)
    raw = raw.clone()
    raw[:, sl] = smooth.to(raw.dtype)
    return raw


# With the prior, the front opacity starts at the person mask clamped to this margin (a logit of
# +-4.6): confident, yet within reach of a few steps of training where the mask is wrong.
PERSON_CLAMP = 0.01


def person_band(person: Tensor) -> Tensor:
    """4 p (1 - p) of the clamped person mask p: 1 where the segmentation is undecided (p = 0.5),
    0.04 where it is sure (p = 0.01 or 0.99). A network built with ``opacity_band`` multiplies its
    front-opacity residual by it, so that it decides the opacity where the mask is unsure (hair,
    the silhouette) and leaves the mask's answer on skin and background: trained without it, the
    network's own opacity there cost 3 dB of authenticity against the plain mask
    (weights/experiments/s10_prior_diagnosis)."""
    return 4.0 * person * (1.0 - person)


# --- the network ---------------------------------------------------------------------------------

def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by GroupNorm and SiLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(GROUPS, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(GROUPS, c_out), nn.SiLU(),
    )


# --- the full-resolution refinement -----------------------------------------------------------
# The U-Net runs at the side it was trained at (64 px on a CPU) and its outputs are resized to the
# crop, so the front layer's opacity and colour corrections can change only every 4 crop pixels at
# S = 256: edges and detail, where the input view lives, are blurred. A light head at the crop's
# own resolution, fed by the crop, corrects those raw channels there.
REFINE_WIDTH = 16
REFINED_HEADS = (("opacity", 0), ("colour", 0))


class FullResolutionRefiner(nn.Module):
    """Three convolutions (3x3, 3x3, 1x1; REFINE_WIDTH channels, SiLU) at the crop's resolution:
    from the crop [B, 3, S, S], the resized raw outputs of REFINED_HEADS and (with the prior) the
    person mask, a correction added to those raw channels. Its last layer starts as small as the
    U-Net's head, so an untrained refiner changes (almost) nothing."""

    def __init__(self, prior: bool) -> None:
        super().__init__()
        self.channels = [c for key in REFINED_HEADS for c in range(HEAD_SLICES[key].start, HEAD_SLICES[key].stop)]
        self.prior = bool(prior)
        c_in = 3 + len(self.channels) + (1 if prior else 0)
        self.net = nn.Sequential(nn.Conv2d(c_in, REFINE_WIDTH, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(REFINE_WIDTH, REFINE_WIDTH, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(REFINE_WIDTH, len(self.channels), 1))
        nn.init.normal_(self.net[-1].weight, std=HEAD_INIT_STD)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, raw: Tensor, images: Tensor, prior: Tensor | None) -> Tensor:
        """raw [B, OUT_CHANNELS, S, S] at the crop's side, images [B, 3, S, S] in [0, 1], prior
        [B, PRIOR_CHANNEL_COUNT, S, S] (for a refiner with the prior) -> raw, refined channels corrected."""
        parts = [images.to(raw.dtype) * 2 - 1, raw[:, self.channels]]
        if self.prior:
            parts.append(prior[:, PRIOR_CHANNELS.index("person")][:, None].to(raw.dtype))
        correction = torch.zeros_like(raw)
        correction[:, self.channels] = self.net(torch.cat(parts, dim=1))
        return raw + correction


class UNet(nn.Module):
    """Five-level U-Net: [B, in_channels, S, S] -> raw head outputs [B, OUT_CHANNELS, S, S]
    (in_channels: IN_CHANNELS, plus PRIOR_CHANNEL_COUNT with ``prior``).

    widths: channels at each of the five levels (each divisible by GROUPS). The outputs are
    pre-activation; :func:`to_gaussians` activates them by :data:`HEADS`.
    """

    def __init__(self, widths: tuple[int, ...] = DEFAULT_WIDTHS, prior: bool = False, opacity_band: bool = False,
                 refine: bool = False, front_min_scale_px: float = 0.0, front_learned: tuple[str, ...] = LAYER_HEADS,
                 back_learned: tuple[str, ...] = BACK_HEADS, front_depth_cells: int = 0, front_size_at_own_depth: bool = False,
                 front_depth_shape_only: bool = False, backing_start: bool = False) -> None:
        """prior: also take the head prior's channels (and predict the front layer over it);
        opacity_band (with prior): the front-opacity residual is scaled by :func:`person_band`;
        refine: a :class:`FullResolutionRefiner` corrects the front opacity and colour at the
        crop's side (:func:`network_at_size` applies it); front_min_scale_px: every axis of
        a front splat at least this many crop pixels (0: SCALE_MIN_PX, as before); front_learned:
        the front heads the network predicts (the others keep their initial values: :func:`locked_heads`);
        back_learned: the same for the back layer (empty: the whole back layer held at its start);
        front_depth_cells: the front depth residual on that many cells a side (:func:`coarse_front_depth`;
        0: per pixel); front_size_at_own_depth: front splat sizes in crop pixels at the splat's own
        depth (:func:`to_gaussians`); front_depth_shape_only (with prior): the front depth residual's
        mean over the person removed (:func:`to_gaussians`); backing_start (with prior): the
        geometric predictor's layers as the start (:data:`BACKING_START_FRONT_PX`)."""
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != LEVELS or any(w % GROUPS for w in widths):
            raise ValueError(f"widths must be {LEVELS} channel counts divisible by {GROUPS}, got {widths}")
        if opacity_band and not prior:
            raise ValueError("opacity_band scales the residual over the person mask: it needs prior=True")
        self.widths = widths
        self.prior = bool(prior)
        self.opacity_band = bool(opacity_band)
        if not 0.0 <= front_min_scale_px < SCALE_MAX_PX:
            raise ValueError(f"front_min_scale_px must be in [0, {SCALE_MAX_PX}), got {front_min_scale_px}")
        self.front_min_scale_px = float(front_min_scale_px)
        for name, learned, heads, layer in (("front_learned", front_learned, LAYER_HEADS, "front"),
                                            ("back_learned", back_learned, BACK_HEADS, "back")):
            unknown = set(learned) - set(heads)
            if unknown:
                raise ValueError(f"{name} names heads {sorted(unknown)}; the {layer} layer's are {list(heads)}")
        self.front_learned = tuple(h for h in LAYER_HEADS if h in front_learned)  # canonical order
        self.back_learned = tuple(h for h in BACK_HEADS if h in back_learned)
        # Every crop the U-Net takes is a multiple of 16 a side: a divisor of 16 fits all of them.
        if front_depth_cells < 0 or (front_depth_cells and 2 ** (LEVELS - 1) % front_depth_cells):
            raise ValueError(f"front_depth_cells must be 0 (per pixel) or divide {2 ** (LEVELS - 1)}, got {front_depth_cells}")
        self.front_depth_cells = int(front_depth_cells)
        self.front_size_at_own_depth = bool(front_size_at_own_depth)
        if front_depth_shape_only and not prior:
            raise ValueError("front_depth_shape_only removes the residual's mean over the prior's person mask: it needs prior=True")
        self.front_depth_shape_only = bool(front_depth_shape_only)
        if backing_start and not prior:
            raise ValueError("backing_start puts the back layer behind the prior's surface: it needs prior=True")
        self.backing_start = bool(backing_start)
        self.in_channels = IN_CHANNELS + (PRIOR_CHANNEL_COUNT if prior else 0)
        self.down = nn.ModuleList([_block(c_in, c_out) for c_in, c_out in zip((self.in_channels,) + widths[:-1], widths)])
        self.up = nn.ModuleList([_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(LEVELS - 1))])
        self.head = nn.Conv2d(widths[0], OUT_CHANNELS, 1)
        nn.init.normal_(self.head.weight, std=HEAD_INIT_STD)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([b for h in HEADS for b in h.bias]))
        self.refiner = FullResolutionRefiner(self.prior) if refine else None

    def gaussians_from(self, raw: Tensor, images: Tensor, K: Tensor, distance: Tensor, prior: Tensor | None) -> Gaussians:
        """:func:`to_gaussians` of this network's raw outputs, with the activation settings it was
        built with (the front heads it learns, the opacity band, the front splats' floor), so that no
        caller passes them by hand."""
        raw = locked_heads(raw, self.front_learned, self.back_learned)
        if self.front_depth_cells:
            raw = coarse_front_depth(raw, self.front_depth_cells)
        return to_gaussians(raw, images, K, distance, prior, self.opacity_band, self.front_min_scale_px,
                            self.front_size_at_own_depth, self.front_depth_shape_only, self.backing_start)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.avg_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottom level feeds the decoder directly
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def pixel_rays(K: Tensor, size: int) -> Tensor:
    """Rays through the pixel centres (+0.5) of an S x S crop with intrinsics K [B, 3, 3], as
    [B, S, S, 3] with z = 1 (so that ``ray * z`` is the point at z-depth z)."""
    centres = torch.arange(size, device=K.device, dtype=K.dtype) + 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    x = (u[None] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
    y = (v[None] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def network_input(images: Tensor, valid: Tensor, K: Tensor, prior: Tensor | None = None) -> Tensor:
    """[B, IN_CHANNELS (+ PRIOR_CHANNEL_COUNT), S, S] from images [B, 3, S, S] in [0, 1], valid
    [B, S, S], K [B, 3, 3] and, for a network with the prior, its channels [B, PRIOR_CHANNEL_COUNT, S, S]."""
    rays = pixel_rays(K.float(), images.shape[-1])
    unit = rays / rays.norm(dim=-1, keepdim=True)
    parts = [images * 2 - 1, unit.permute(0, 3, 1, 2).to(images), valid[:, None].to(images)]
    if prior is not None:
        parts.append(prior.to(images))
    return torch.cat(parts, dim=1)


def run_network(model: "UNet", images: Tensor, valid: Tensor, K: Tensor, prior: Tensor | None) -> Tensor:
    """Raw outputs of ``model`` for a batch; ``prior`` (its channels) is required by a network with
    the prior and ignored by one without."""
    if model.prior and prior is None:
        raise ValueError("this network takes the head prior: pass its channels (prior_input.batch_prior_channels)")
    return model(network_input(images, valid, K, prior if model.prior else None))


def to_gaussians(raw: Tensor, images: Tensor, K: Tensor, distance: Tensor, prior: Tensor | None = None,
                 opacity_band: bool = False, front_min_scale_px: float = 0.0, front_size_at_own_depth: bool = False,
                 front_depth_shape_only: bool = False, backing_start: bool = False) -> Gaussians:
    """Activate raw head outputs [B, OUT_CHANNELS, S, S] into Gaussians [B, 2 S S, ...] in the
    virtual-camera frame (see :data:`HEADS` for each activation).

    images: [B, 3, S, S] the crops in [0, 1] (for direct colour sampling); K: [B, 3, 3];
    distance: [B] head distance in metres (z of the head centre on the optical axis); prior: the
    crop's prior channels [B, PRIOR_CHANNEL_COUNT, S, S] for a network with the prior: its front
    layer is then a residual over them (the initial biases give exactly the proxy surface and the
    person mask); opacity_band: the front-opacity residual scaled by :func:`person_band`;
    front_min_scale_px: the front splats' axes floored there (crop pixels); front_size_at_own_depth:
    a front splat's size is in crop pixels at its own depth rather than at the head's distance, so
    that from the input camera it covers the same pixels whatever depth it is given;
    front_depth_shape_only (with the prior): the front depth residual has its mean over the person
    (weighted by the person mask) removed, so the network reshapes the prior's surface but leaves
    the head where convert's framing put it; backing_start (with the prior): the front splats start
    at BACKING_START_FRONT_PX (their scale head's output times 0.35 / 0.5), and the back layer is a
    residual over a backing of the front one: its depth over the front splat's own z-depth plus
    BACKING_START_BEHIND_M, its opacity over the person mask (banded like the front's
    with ``opacity_band``), its size BACKING_START_BACK_PX at its own depth.
    """
    if backing_start and prior is None:
        raise ValueError("backing_start needs the prior's channels")
    b, _, s, _ = raw.shape
    raw = raw.float()
    rays = pixel_rays(K.float(), s).reshape(b, s * s, 3)
    pixel_m = (distance.float() / K[:, 0, 0].float())[:, None, None]  # metres per crop pixel at the head
    pixels = images.float().permute(0, 2, 3, 1).reshape(b, s * s, 3)

    def get(name: str, layer: int) -> Tensor:  # [B, S*S, C]
        return raw[:, HEAD_SLICES[(name, layer)]].permute(0, 2, 3, 1).reshape(b, s * s, -1)

    spans = (FRONT_COLOUR_SPAN, BACK_COLOUR_SPAN)
    base_depth = base_logit = person_logit = band = None
    if prior is not None:
        def channel(name: str) -> Tensor:  # [B, S*S, 1]
            return prior[:, PRIOR_CHANNELS.index(name)].float().reshape(b, s * s, 1)

        # Residuals measured from the heads' initial values, so an untrained network gives the prior.
        base_depth = PRIOR_DEPTH_SCALE_M * channel("proxy_depth") - DEPTH_SPAN_M * math.tanh(_HEAD_BIAS[("depth", 0)])
        person = channel("person").clamp(PERSON_CLAMP, 1.0 - PERSON_CLAMP)
        person_logit = torch.log(person) - torch.log1p(-person)
        base_logit = person_logit - _HEAD_BIAS[("opacity", 0)]
        if opacity_band:
            band = person_band(person)
    # A head's change from its initial value (zero for an untrained network), and its depth's in metres.
    def change_of(name: str, layer: int) -> Tensor:
        return get(name, layer) - _HEAD_BIAS[(name, layer)]

    def depth_change_m(layer: int) -> Tensor:
        return DEPTH_SPAN_M * (torch.tanh(get("depth", layer)) - math.tanh(_HEAD_BIAS[("depth", layer)]))

    layers = []
    front_z = None
    for layer in range(GAUSSIANS_PER_PIXEL):
        if layer == 1 and backing_start:
            # On the front splat's ray, BACKING_START_BEHIND_M farther in z (as the geometric predictor's backing).
            z = front_z + BACKING_START_BEHIND_M + depth_change_m(1)
        else:
            z = distance.float()[:, None, None] + DEPTH_SPAN_M * torch.tanh(get("depth", layer))
        if layer == 0 and base_depth is not None:
            z = z + base_depth
            if front_depth_shape_only:
                # Trained freely, the residual moved whole faces 6-8 cm along the rays (session
                # 12), a shift the scale-corrected novel views forgive; only its shape is kept.
                residual = depth_change_m(0)
                weight = channel("person")
                mean = (weight * residual).sum(dim=1, keepdim=True) / weight.sum(dim=1, keepdim=True).clamp_min(1e-6)
                z = z - mean
        if layer == 0:
            front_z = z
        means = rays * z
        if ("offset", layer) in HEAD_SLICES:
            means = means + OFFSET_MAX_M * torch.tanh(get("offset", layer))
        scale_px = SCALE_MIN_PX + (SCALE_MAX_PX - SCALE_MIN_PX) * torch.sigmoid(get("scale", layer))
        if backing_start:  # the heads' initial 0.5 / 1.0 px become the geometric 0.35 / 0.7 px
            scale_px = scale_px * ((BACKING_START_FRONT_PX / 0.5) if layer == 0 else (BACKING_START_BACK_PX / 1.0))
        if layer == 0 and front_min_scale_px > 0:
            scale_px = scale_px.clamp_min(front_min_scale_px)
        rgb = pixels + spans[layer] * torch.tanh(get("colour", layer))
        opacity = get("opacity", layer)
        if layer == 0 and base_logit is not None:
            if band is not None:  # the residual, measured from the head's initial value, scaled
                opacity = _HEAD_BIAS[("opacity", 0)] + band * (opacity - _HEAD_BIAS[("opacity", 0)])
            opacity = opacity + base_logit
        if layer == 1 and backing_start:  # as opaque as the person is, like the front layer
            change = change_of("opacity", 1)
            opacity = person_logit + (change if band is None else band * change)
        # metres per crop pixel where the splat is: at the head's distance, or (front layer, when
        # asked) at its own depth, which a trained network otherwise uses to shrink or grow its
        # front splats in the input view (session 12: moved ~6 cm along their rays on average)
        own_depth = (layer == 0 and front_size_at_own_depth) or (layer == 1 and backing_start)
        metres_per_px = z / K[:, 0, 0].float()[:, None, None] if own_depth else pixel_m
        layers.append(dict(
            means=means,
            quats=get("rotation", layer),  # the container normalises on activation
            log_scales=torch.log(scale_px * metres_per_px),
            opacity_logits=opacity[..., 0],
            sh=rgb_to_sh_dc(rgb)[:, :, None, :],
        ))
    return Gaussians(**{k: torch.cat([layer[k] for layer in layers], dim=1) for k in layers[0]})


def predict_gaussians(model: UNet, images: Tensor, valid: Tensor, K: Tensor, distance: Tensor,
                      prior: Tensor | None = None) -> Gaussians:
    """The differentiable forward pass used in training and inference: crops [B, 3, S, S] in
    [0, 1], valid [B, S, S], K [B, 3, 3], head distance [B] metres (and, for a network with the
    prior, its channels [B, PRIOR_CHANNEL_COUNT, S, S]) -> Gaussians [B, 2 S S, ...]."""
    prior = prior if model.prior else None
    raw = network_at_size(model, images, valid, K, images.shape[-1], prior)
    return model.gaussians_from(raw, images, K, distance, prior)


# --- the Predictor --------------------------------------------------------------------------------

class UNetPredictor:
    """:class:`~volume_cli.predictors.base.Predictor` around a :class:`UNet`. Runs on the model's
    device (batch moved there); returns Gaussians on that device."""

    name = "unet"

    def __init__(self, model: UNet, weights_sha256: str | None = None, amp: bool = False,
                 network_size: int | None = None, colour_steps: int = 0, hidden_side: bool = False) -> None:
        self.model = model.eval()
        self.weights_sha256 = weights_sha256
        self.amp = amp  # bf16 autocast for the network (CUDA); activations stay float32
        # The crop side the network was trained at (None: run it at whatever size comes). See
        # :func:`network_at_size`.
        self.network_size = network_size
        # Input-view colour fitting steps after the network (colour_fit.py); 0: the network's colours.
        self.colour_steps = colour_steps
        # With the prior: also the geometric predictor's splats on the side of the fitted head the
        # crop camera does not see (hidden from it, coloured from the clip, the mirror, the nearest
        # seen skin or hair). The network's back layer, trained on one view, does not cover it.
        if hidden_side and not model.prior:
            raise ValueError("the unseen side's splats lie on the fitted head: the network must take the prior")
        self.hidden_side = bool(hidden_side)
        # A network with the prior is given the clip's head fit by convert and evaluate, as the
        # geometric predictor is (they fit the head for predictors that say ``use_head``).
        self.use_head = model.prior
        self._segmenter = None
        self._hidden_slots = 0
        if self.hidden_side:
            from volume_cli.head.model import load_head_model
            from volume_cli.predictors.geometric import hidden_side_slots

            self._hidden_slots = hidden_side_slots(load_head_model())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def prior_inputs(self, batch: CropBatch) -> tuple[Tensor, list, list] | None:
        """The prior channels [B, PRIOR_CHANNEL_COUNT, S, S] of ``batch``, computed as training
        computed them, with each crop's HeadPrior and person mask [S, S] (None for a network
        without the prior)."""
        if not self.model.prior:
            return None
        from volume_cli.predictors.prior_input import batch_prior_inputs
        from volume_cli.segmentation import PersonSegmenter

        if self._segmenter is None:
            self._segmenter = PersonSegmenter()
        return batch_prior_inputs(batch, self._segmenter)

    def prior_of(self, batch: CropBatch) -> Tensor | None:
        """The prior channels of :meth:`prior_inputs` alone."""
        inputs = self.prior_inputs(batch)
        return None if inputs is None else inputs[0]

    def predict(self, batch: CropBatch) -> Gaussians:
        s = batch.size
        if s % 2 ** (LEVELS - 1):
            raise ValueError(f"the U-Net needs a crop size divisible by {2 ** (LEVELS - 1)}, got {s}")
        dev = self.device
        images, valid, K = batch.images.to(dev).float(), batch.valid.to(dev), batch.K.to(dev).float()
        distance = batch.head_center[:, 2].to(dev).float()
        inputs = self.prior_inputs(batch)
        prior = None if inputs is None else inputs[0].to(dev)
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.amp and dev.type == "cuda"):
            raw = network_at_size(self.model, images, valid, K, self.network_size or s, prior)
        with torch.inference_mode():
            g = self.model.gaussians_from(raw, images, K, distance, prior)
            if self.model.backing_start:
                faint = torch.sigmoid(g.opacity_logits) < BACKING_START_MIN_OPACITY
                g = Gaussians(means=g.means, quats=g.quats, log_scales=g.log_scales, sh=g.sh,
                              opacity_logits=g.opacity_logits.masked_fill(faint, math.log(1e-6)))  # pruned on writing
            if self.colour_steps:
                g = self._fit_colours(g, images, valid, K)
            if self.hidden_side:
                g = self._with_hidden_side(g, batch, inputs[1], inputs[2])
            return g

    def _with_hidden_side(self, g: Gaussians, batch: CropBatch, priors: list, persons: list) -> Gaussians:
        """``g`` [B, 2 S S, ...] with the geometric predictor's unseen-side splats of each crop's
        fitted head appended ([B, 2 S S + slots, ...]; unused slots fully transparent)."""
        from volume_cli.predictors.geometric import hidden_side_splats

        s = batch.size
        sets = []
        for i in range(len(batch)):
            front_z = g.means[i, : s * s, 2].reshape(s, s).double().cpu().numpy()
            image = batch.images[i].permute(1, 2, 0).cpu().numpy()
            hidden = hidden_side_splats(priors[i], front_z, image, batch.K[i].double().cpu().numpy(), persons[i],
                                        batch.head_texture, self._hidden_slots)
            sets.append({k: torch.cat([getattr(g, k)[i], hidden[k].to(g.means.device)]) for k in hidden})
        return Gaussians(**{k: torch.stack([one[k] for one in sets]) for k in sets[0]})

    def _fit_colours(self, g: Gaussians, images: Tensor, valid: Tensor, K: Tensor) -> Gaussians:
        """Each crop's first-layer colours (and, for a network that started as a backing, the
        back layer's too, as the geometric predictor fits its front and backing splats together)
        fitted so that its input-view render matches the crop (inside the frame), everything else
        as predicted."""
        from volume_cli.predictors.colour_fit import fit_colours

        b, _, s, _ = images.shape
        out = []
        for i in range(b):
            pixels = torch.nonzero(valid[i].reshape(-1)).squeeze(1)  # layer l: Gaussian l*S*S + k <-> pixel k
            fitted, of_pixel = pixels, pixels
            if self.model.backing_start:
                fitted, of_pixel = torch.cat([pixels, pixels + s * s]), pixels.repeat(2)
            target = images[i].permute(1, 2, 0).reshape(-1, 3).float()
            one = Gaussians(means=g.means[i], quats=g.quats[i], log_scales=g.log_scales[i],
                            opacity_logits=g.opacity_logits[i], sh=g.sh[i])
            out.append(fit_colours(one.to("cpu"), fitted.cpu(), of_pixel.cpu(), target.cpu(), K[i].cpu(), s, self.colour_steps))
        return Gaussians(**{k: torch.stack([getattr(o, k) for o in out]).to(g.means.device)
                            for k in ("means", "quats", "log_scales", "opacity_logits", "sh")})


def network_at_size(model: UNet, images: Tensor, valid: Tensor, K: Tensor, size: int, prior: Tensor | None = None) -> Tensor:
    """Raw head outputs [B, OUT_CHANNELS, S, S] for crops [B, 3, S, S] (valid [B, S, S], K [B, 3, 3])
    from the network run at ``size`` x ``size``: the crop (and the prior's channels [B, C, S, S],
    for a network that takes them) is area-averaged to that size (K scaled with it; pixel centres
    at +0.5 scale exactly), and the outputs are resized bilinearly back to S.

    A network sees the head at the scale it was trained at, while every crop pixel still gets its two
    Gaussians with its own colour (direct colour sampling uses the full-size crop in
    :func:`to_gaussians`). Splat sizes are predicted in grid pixels, so they shrink with the finer
    grid and coverage stays as trained. A network with a refiner then corrects its front opacity
    and colour at S (:class:`FullResolutionRefiner`)."""
    s = images.shape[-1]
    if size == s:
        raw = run_network(model, images, valid, K, prior)
        return raw if model.refiner is None else model.refiner(raw, images, prior)
    if size % 2 ** (LEVELS - 1):
        raise ValueError(f"the U-Net needs a size divisible by {2 ** (LEVELS - 1)}, got {size}")
    r = size / s

    def resized(x: Tensor) -> Tensor:
        return F.interpolate(x, size=(size, size), mode="area") if size < s else \
            F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    small = resized(images)
    small_valid = F.interpolate(valid[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0] > 0.5
    K_small = K.clone()
    K_small[:, :2] = K[:, :2] * r
    # The prior's channels are features here (area-averaged like the crop); the full-size ones
    # are the bases of the front layer in to_gaussians.
    small_prior = None if prior is None else resized(prior.float())
    raw = F.interpolate(run_network(model, small, small_valid, K_small, small_prior).float(), size=(s, s), mode="bilinear",
                        align_corners=False)
    return raw if model.refiner is None else model.refiner(raw, images, prior)


# --- weights: safetensors + model card, sha256-checked ---------------------------------------------

WEIGHTS_FORMAT = "volume-unet"
WEIGHTS_FORMAT_VERSION = 1
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "unet.safetensors"


class WeightsError(ValueError):
    """Missing, unreadable or tampered weights."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights: Path) -> Path:
    """The model card beside a weights file: ``unet.safetensors`` -> ``unet.json``."""
    return Path(weights).with_suffix(".json")


def architecture(model: UNet) -> dict:
    """What a card records to rebuild the network (and what it outputs)."""
    return {
        "name": "unet", "widths": list(model.widths), "in_channels": model.in_channels, "levels": LEVELS,
        "prior": list(PRIOR_CHANNELS) if model.prior else None,
        "opacity_band": model.opacity_band,
        "refine": model.refiner is not None,
        "front_min_scale_px": model.front_min_scale_px,
        "front_learned": list(model.front_learned),
        "back_learned": list(model.back_learned),
        "front_depth_cells": model.front_depth_cells,
        "front_size_at_own_depth": model.front_size_at_own_depth,
        "front_depth_shape_only": model.front_depth_shape_only,
        "backing_start": model.backing_start,
        "gaussians_per_pixel": GAUSSIANS_PER_PIXEL, "out_channels": OUT_CHANNELS,
        "heads": [{"name": h.name, "layer": h.layer, "channels": h.channels, "bias": list(h.bias), "activation": h.activation} for h in HEADS],
        "ranges": {"depth_span_m": DEPTH_SPAN_M, "offset_max_m": OFFSET_MAX_M, "scale_px": [SCALE_MIN_PX, SCALE_MAX_PX],
                   "colour_span": [FRONT_COLOUR_SPAN, BACK_COLOUR_SPAN]},
    }


def save_weights(model: UNet, path: Path, card: dict) -> dict:
    """Write ``path`` (safetensors, float32) and its model card (``card`` plus architecture, format
    and the file's sha256), each atomically. Returns the card written."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": WEIGHTS_FORMAT})
    tmp.chmod(0o644)  # a shippable file, readable by all like the rest of the repo
    tmp.replace(path)
    full = {"format": WEIGHTS_FORMAT, "format_version": WEIGHTS_FORMAT_VERSION, **card,
            "architecture": architecture(model), "parameters": sum(v.numel() for v in state.values()),
            "file": path.name, "sha256": sha256_file(path)}
    cpath = card_path(path)
    tmp_card = cpath.with_name(cpath.name + ".tmp")
    tmp_card.write_text(json.dumps(full, indent=2) + "\n")
    tmp_card.replace(cpath)
    return full


def load_weights(path: Path = DEFAULT_WEIGHTS, expected_sha256: str | None = None, device: str = "cpu") -> tuple[UNet, dict]:
    """Rebuild the U-Net from ``path`` and its card, offline. The file's sha256 must equal the card's
    and, when given, ``expected_sha256``; anything else raises :class:`WeightsError`."""
    from safetensors.torch import load_file

    path = Path(path)
    cpath = card_path(path)
    if not path.is_file():
        raise WeightsError(f"no U-Net weights at {path} (train them with `volume train`; see weights/README.md)")
    if not cpath.is_file():
        raise WeightsError(f"no model card {cpath} beside {path}")
    card = json.loads(cpath.read_text())
    if card.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{cpath} is not a {WEIGHTS_FORMAT} model card")
    actual = sha256_file(path)
    for source, wanted in (("the model card", card.get("sha256")), ("the caller", expected_sha256)):
        if wanted is not None and wanted != actual:
            raise WeightsError(f"sha256 of {path} is {actual}, but {source} expects {wanted}: refusing to load")
    if card.get("sha256") is None:
        raise WeightsError(f"{cpath} records no sha256")
    prior = card["architecture"].get("prior")  # cards from before the prior have none
    if prior is not None and list(prior) != list(PRIOR_CHANNELS):
        raise WeightsError(f"{cpath} was trained on prior channels {prior}; this version makes {list(PRIOR_CHANNELS)}")
    model = UNet(widths=tuple(card["architecture"]["widths"]), prior=prior is not None,
                 opacity_band=bool(card["architecture"].get("opacity_band", False)),  # older cards: without
                 refine=bool(card["architecture"].get("refine", False)),
                 front_min_scale_px=float(card["architecture"].get("front_min_scale_px", 0.0)),
                 front_learned=tuple(card["architecture"].get("front_learned", LAYER_HEADS)),
                 back_learned=tuple(card["architecture"].get("back_learned", BACK_HEADS)),  # before session 17: all
                 front_depth_cells=int(card["architecture"].get("front_depth_cells", 0)),
                 front_size_at_own_depth=bool(card["architecture"].get("front_size_at_own_depth", False)),
                 front_depth_shape_only=bool(card["architecture"].get("front_depth_shape_only", False)),
                 backing_start=bool(card["architecture"].get("backing_start", False)))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.to(device), card


def load_unet_predictor(path: Path = DEFAULT_WEIGHTS, device: str = "cpu", expected_sha256: str | None = None) -> UNetPredictor:
    """The predictor for ``volume convert --predictor unet``: weights from ``path``, checked."""
    model, card = load_weights(path, expected_sha256, device)
    inference = card.get("inference") or {}
    # The side the network ran at in training (older cards: the crop side it trained at).
    trained = inference.get("network_size") or (card.get("config") or {}).get("size")
    steps = int(inference.get("colour_steps", 0))
    return UNetPredictor(model, weights_sha256=card["sha256"], amp=device.startswith("cuda"), network_size=trained,
                         colour_steps=steps, hidden_side=bool(inference.get("hidden_side", False)))
