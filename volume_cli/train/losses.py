"""Losses between renders of predicted splats and ground-truth views.

Per example (all views rendered with the differentiable rasteriser, composited on the example's
random background colour, the targets composited on the same colour):

* input view (view 0, the crop camera): 0.8 L1 + 0.2 (1 - SSIM) (the 3DGS mix) -- authenticity.
  Its target is the generator's clean render of the person, or (``input_target_crop`` = 1) the
  webcam crop itself wherever the person is: the crop carries sensor noise, blur and compression
  that the clean render does not (the two differ by ~28 dB on the person), and authenticity is
  scored against the crop, so a network trained toward the clean render is charged for looking
  cleaner than its input. Values between mix the two;
* novel views (1 .. V-1): the same, after the SCALE CORRECTION below -- realism;
* alpha: L1 between rendered and ground-truth coverage, every view;
* front alpha: L1 between each pixel's FRONT Gaussian's opacity and the ground-truth coverage of
  that pixel in the input view. The rendered coverage alone lets the network build a pixel from a
  half-transparent front splat over its neighbours and the back layer; at training resolution that
  looks the same, but the back layer's colours are not the pixel's, so the input view comes out
  blurred and colour fitting cannot repair it (a model trained without this term: front opacity
  ~0.75 on skin, 24 dB on Grace Hopper; forcing it opaque: 37 dB). Skin, hair and clothes are
  opaque: the pixel's own splat should say so, and the back layer carries only what lies behind;
* depth: L1 of the rendered expected depth where the ground truth is solid (alpha > 0.5), in units
  of DEPTH_UNIT_M. On the input view against ``distance_scale * depth``: the network was told a
  distance off by that factor, and the consistent answer is the true scene scaled by it about the
  camera centre (same crop, same input view). This term anchors the absolute scale. On novel
  views against the true depth after scale correction;
* stability: L1 between the novel-view renders (rgb and alpha) of the prediction and of its
  partner's (same moment, jittered crop, fresh noise; see data.py). The known motion between the
  two is zero, so any difference is instability. Zero for identical inputs;
* pair depth: L1 between the same two renders' expected depths where both are solid (alpha >
  0.5), in units of DEPTH_UNIT_M: the geometry's share of the instability, which the colour
  renders see only where the moving splats change colour (session 10: the trained prior
  network's jitter was its geometry, not its colours or opacities);
* head input view: L1 of the input view inside the head (ground truth solid, and the prior's
  fitted head or hair shell covers the pixel), which is where ``volume evaluate`` scores
  authenticity; logged whenever the example has the prior. The whole-crop term above is mostly
  background and silhouette: on training batches the trained networks scored a third of the
  untrained one's loss there while being worse on the head (session 11);
* upsampled input view: the input view rendered again at UPSAMPLED_FACTOR x the crop's side
  against its target enlarged bilinearly. A real photo shows the crop at 3-4 x in its own frame
  (a big face in a big photo); at the crop's own side a front splat covers its pixel centre
  whatever its shape, so a network can grow thin, elongated splats that leave a screen-door of
  gaps in the original frame (session 10: 31.0 dB in the crop, 19.2 in the frame on a
  1200 px photo). Rendered finer, the gaps are charged.

Novel views (and the partner's) may be rendered smaller than the crop (``novel_size``: intrinsics
scaled, targets area-averaged, depth sampled at the nearest pixel), which saves part of the
rasteriser's cost (most of a CPU step); the input view is always full size, since that is where
authenticity is learned.

* front slope (session 19): the front layer's depth slope between neighbouring pixels of the input
  view against the ground truth's (scaled by ``distance_scale``), both as depth change per pixel
  footprint (f dz / z: 1 is a surface at 45 degrees to the ray), mean over horizontal and vertical
  pairs that are solid in the truth, each pair's error clamped at FRONT_SLOPE_CLAMP so occlusion
  edges (ear over cheek, chin over neck) do not dominate. A front layer trained only through
  renders turned more of the far cheek past grazing than the truth is (session 17: 1.3-1.6x the
  folds of the untrained prior seen from +-40 degrees, the bands a user sees); the slope is what
  decides whether a row of splats folds over itself from a turned view.
* perceptual: LPIPS (volume_cli.perceptual: the shift-tolerant AlexNet whose weights ship in the
  stlpips wheel, offline) between every rendered view (input and novel, on the background) and its
  target, as VoluMe trains with a perceptual term beside L1 and SSIM; ``volume evaluate`` reports
  the same network's distance. Off unless weighted. Views smaller than its MIN_SIZE are enlarged
  (bilinear) for it.

Scale correction (VoluMe trains with it: from one image the head's size and distance are known
only up to a common scale, and its error should not be charged to the shape): the least-squares
factor s = sum w z_pred z_gt / sum w z_pred^2 between the predicted and true input-view depth maps
(w = ground-truth solid x predicted coverage, both detached) scales every Gaussian's mean and size
about the camera centre before the novel views are rendered. Scaling about the camera centre leaves
the input view unchanged, so s only moves what the novel views see. s is a stop-gradient constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from volume_cli.metrics import ssim_map
from volume_cli.gaussians import Gaussians
from volume_cli.render import render

SSIM_WEIGHT = 0.2  # (1 - 0.2) L1 + 0.2 (1 - SSIM), as 3DGS and Splatter Image train
DEPTH_UNIT_M = 0.05  # a depth error of 5 cm (a nose's length) costs as much as a wrong colour
SOLID_ALPHA = 0.5  # ground-truth pixels at least this covered have a meaningful depth
SCALE_LIMITS = (0.5, 2.0)  # scale corrections outside this range mean the prediction is lost: clamp
# A 256 px crop of a 1200 px portrait is shown ~3.7 x enlarged in its own frame; 4 x covers it.
UPSAMPLED_FACTOR = 4
# A front-slope error above this (about 72 degrees of surface tilt) is an occlusion edge, not a fold.
FRONT_SLOPE_CLAMP = 3.0


@dataclass(frozen=True)
class LossWeights:
    input_view: float = 1.0
    novel_views: float = 1.0
    alpha: float = 0.5
    depth: float = 0.1
    stability: float = 0.5  # 0 turns the stability loss (and its second forward pass) off
    front_alpha: float = 1.0  # 0: off (as the first CPU model, 3000 steps, trained)
    pair_depth: float = 0.0  # 0: off (every run before session 11)
    upsampled_input_view: float = 0.0  # 0: off (every run before session 11)
    head_input_view: float = 0.0  # 0: logged only (every run before session 12)
    perceptual: float = 0.0  # 0: off (every run before session 12)
    front_slope: float = 0.0  # 0: off (every run before session 19)
    # Not a weight: how far the input view's target moves from the clean render to the crop (0..1).
    input_target_crop: float = 0.0


def photometric(rendered: Tensor, target: Tensor) -> Tensor:
    """0.8 L1 + 0.2 (1 - SSIM), mean over views. rendered, target [C, H, W, 3]."""
    l1 = (rendered - target).abs().mean()
    ssim = torch.stack([ssim_map(r, t).mean() for r, t in zip(rendered, target)]).mean()
    return (1 - SSIM_WEIGHT) * l1 + SSIM_WEIGHT * (1 - ssim)


def scale_correction(pred_depth: Tensor, pred_alpha: Tensor, gt_depth: Tensor, gt_alpha: Tensor) -> Tensor:
    """Least-squares s (a 0-dim tensor, no gradient) with s * pred_depth ~ gt_depth over
    solid ground truth, weighted by predicted coverage. All [H, W]; 1 where nothing overlaps."""
    with torch.no_grad():
        w = ((gt_alpha > SOLID_ALPHA) & (gt_depth > 0)).float() * pred_alpha
        num, den = (w * pred_depth * gt_depth).sum(), (w * pred_depth.square()).sum()
        s = torch.where(den > 0, num / den.clamp_min(1e-12), torch.ones_like(den))
        return s.clamp(*SCALE_LIMITS)


def scaled_about_camera(g: Gaussians, s: Tensor) -> Gaussians:
    """Every mean and size multiplied by s about the camera centre (the origin of g's frame)."""
    return Gaussians(means=g.means * s, quats=g.quats, log_scales=g.log_scales + torch.log(s),
                     opacity_logits=g.opacity_logits, sh=g.sh)


def _composite(rgb_premultiplied: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """[C, 3, H, W] premultiplied + [C, H, W] alpha over background [3] -> [C, H, W, 3]."""
    return rgb_premultiplied.permute(0, 2, 3, 1) + (1 - alpha[..., None]) * background


def downsized_views(rgb: Tensor, alpha: Tensor, depth: Tensor, K: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Target views [C, 3, S, S] / [C, S, S] / [C, S, S] and intrinsics [C, 3, 3] at ``size`` x ``size``
    (S a multiple of it): colour and alpha area-averaged, depth from the pixel nearest each new pixel
    centre (an average would blend surface and background), K scaled (pixel centres at +0.5 scale
    exactly)."""
    s = rgb.shape[-1]
    if size == s:
        return rgb, alpha, depth, K
    if s % size:
        raise ValueError(f"novel views of {size} px need a crop size that is a multiple of it, got {s}")
    f = s // size
    rgb_small = torch.nn.functional.avg_pool2d(rgb, f)
    alpha_small = torch.nn.functional.avg_pool2d(alpha[:, None], f)[:, 0]
    depth_small = depth[:, f // 2::f, f // 2::f]
    K_small = K.clone()
    K_small[:, :2] = K[:, :2] / f
    return rgb_small, alpha_small, depth_small, K_small


def _depth_l1(pred: Tensor, target: Tensor, gt_alpha: Tensor) -> Tensor:
    solid = (gt_alpha > SOLID_ALPHA) & (target > 0)
    if not bool(solid.any()):
        return pred.sum() * 0.0
    return (pred - target).abs()[solid].mean() / DEPTH_UNIT_M


def example_losses(g: Gaussians, ex: dict[str, Tensor], pair: Gaussians | None, weights: LossWeights,
                   backend: str = "auto", novel_size: int | None = None) -> dict[str, Tensor]:
    """Loss terms for one example. g: its predicted set [N, ...] in the crop-camera frame; ex: the
    example (see data.py) without the batch dimension; pair: the partner's prediction in the
    partner's crop frame, or None; novel_size: side of the novel-view renders (default: the crop's).
    Returns the weighted ``total`` and each raw term."""
    size = ex["image"].shape[-1]
    bg = ex["background"]
    bg_tuple = tuple(float(c) for c in bg)
    views = ex["view_from_crop"]
    num_views = views.shape[0]
    small = novel_size or size
    novel_rgb, novel_alpha, novel_depth, novel_K = downsized_views(
        ex["target_rgb"][1:], ex["target_alpha"][1:], ex["target_depth"][1:], ex["target_K"][1:], small)

    first = render(g, views[:1], ex["target_K"][:1], size, size, background=bg_tuple, backend=backend)
    target = input_view_target(ex, weights.input_target_crop)
    terms = {
        "input_view": photometric(first.rgb, target),
        "alpha": (first.alpha - ex["target_alpha"][:1]).abs().mean(),
        "depth": _depth_l1(first.depth[0], ex["target_depth"][0] * ex["distance_scale"], ex["target_alpha"][0]),
    }
    s = scale_correction(first.depth[0], first.alpha[0], ex["target_depth"][0], ex["target_alpha"][0])
    if weights.front_alpha:
        terms["front_alpha"] = front_alpha_loss(g, ex["target_alpha"][0])
    if "prior" in ex:
        terms["head_input_view"] = head_input_view_loss(first.rgb[0], target[0], ex["target_alpha"][0], ex["prior"])
    if weights.front_slope:
        terms["front_slope"] = front_slope_loss(g, ex["target_K"][0], ex["target_depth"][0] * ex["distance_scale"],
                                                ex["target_alpha"][0])
    if weights.upsampled_input_view:
        terms["upsampled_input_view"] = upsampled_input_view_loss(g, views[:1], ex["target_K"][:1], target, bg_tuple, backend)
    terms["scale"] = s
    if num_views > 1:
        novel = render(scaled_about_camera(g, s), views[1:], novel_K, small, small, background=bg_tuple, backend=backend)
        novel_target = _composite(novel_rgb, novel_alpha, bg)
        terms["novel_views"] = photometric(novel.rgb, novel_target)
        alpha_novel = (novel.alpha - novel_alpha).abs().mean()
        terms["alpha"] = (terms["alpha"] + (num_views - 1) * alpha_novel) / num_views
        depth_novel = torch.stack([_depth_l1(d, t, a) for d, t, a in zip(novel.depth, novel_depth, novel_alpha)]).mean()
        terms["depth"] = (terms["depth"] + (num_views - 1) * depth_novel) / num_views
        if pair is not None:
            # The partner lives in its own crop frame; both frames share the camera centre, so the
            # same s scales both about the same point.
            other = render(scaled_about_camera(pair, s), ex["pair_view_from_crop"][1:], novel_K, small, small,
                           background=bg_tuple, backend=backend)
            terms["stability"] = stability_loss(novel.rgb, novel.alpha, other.rgb, other.alpha)
            if weights.pair_depth:
                terms["pair_depth"] = pair_depth_loss(novel.depth, novel.alpha, other.depth, other.alpha)
    if weights.perceptual:
        # mean over every view; the novel views may be smaller than the input view (novel_size)
        terms["perceptual"] = perceptual_loss(first.rgb, target)
        if num_views > 1:
            novel_lpips = perceptual_loss(novel.rgb, novel_target)
            terms["perceptual"] = (terms["perceptual"] + (num_views - 1) * novel_lpips) / num_views
    zero = first.rgb.sum() * 0.0
    total = zero
    for name in ("input_view", "novel_views", "alpha", "depth", "stability", "front_alpha", "pair_depth",
                 "upsampled_input_view", "head_input_view", "perceptual", "front_slope"):
        if name in terms:
            total = total + getattr(weights, name) * terms[name]
    terms["total"] = total
    return terms


def perceptual_loss(rendered: Tensor, target: Tensor) -> Tensor:
    """Mean LPIPS distance of views rendered [C, H, W, 3] against their targets [C, H, W, 3] (both
    in [0, 1] on the same background); differentiable with respect to ``rendered``."""
    from volume_cli.perceptual import MIN_SIZE, load_lpips

    a, b = rendered.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    if min(a.shape[-2:]) < MIN_SIZE:  # too small for the network's five stages
        factor = -(-MIN_SIZE // min(a.shape[-2:]))
        a = torch.nn.functional.interpolate(a, scale_factor=factor, mode="bilinear", align_corners=False)
        b = torch.nn.functional.interpolate(b, scale_factor=factor, mode="bilinear", align_corners=False)
    return load_lpips(rendered.device)(a.float(), b.float()).mean()


def input_view_target(ex: dict[str, Tensor], crop_fraction: float) -> Tensor:
    """[1, S, S, 3] what the input view is trained toward, on the example's background: the clean
    render of view 0 (premultiplied rgb over the background), moved by ``crop_fraction`` toward
    the crop wherever the person is (alpha * crop + (1 - alpha) * background)."""
    alpha = ex["target_alpha"][:1]
    clean = _composite(ex["target_rgb"][:1], alpha, ex["background"])
    if crop_fraction == 0.0:
        return clean
    on_crop = _composite(ex["image"][None] * alpha[:, None], alpha, ex["background"])  # crop [3, S, S]
    return clean + crop_fraction * (on_crop - clean)


def head_region(input_alpha: Tensor, prior: Tensor) -> Tensor:
    """[S, S] bool: the input view's solid pixels (ground-truth alpha > SOLID_ALPHA) that the prior's
    fitted head or hair shell covers (prior [PRIOR_CHANNEL_COUNT, S, S]): the head with its hair,
    as ``volume evaluate`` scores authenticity, without the shoulders and the background."""
    from volume_cli.predictors.prior_input import PRIOR_CHANNELS

    head = torch.maximum(prior[PRIOR_CHANNELS.index("head")], prior[PRIOR_CHANNELS.index("shell")]) > 0.5
    return head & (input_alpha > SOLID_ALPHA)


def head_input_view_loss(rendered: Tensor, target: Tensor, input_alpha: Tensor, prior: Tensor) -> Tensor:
    """Mean |rendered - target| over the :func:`head_region` (rendered, target [S, S, 3]); 0 (with a
    gradient path) where the region is empty."""
    region = head_region(input_alpha, prior)
    if not bool(region.any()):
        return rendered.sum() * 0.0
    return (rendered - target).abs()[region].mean()


def _front_layer_size(g: Gaussians, pixels: int, term: str) -> int:
    """``pixels``, after checking that g is two Gaussians per pixel (layer-major: the front layer
    first), which the terms that read the front layer need."""
    if g.count != 2 * pixels:
        raise ValueError(f"the {term} term needs two Gaussians per pixel ({2 * pixels}), got {g.count}")
    return pixels


def front_alpha_loss(g: Gaussians, input_alpha: Tensor) -> Tensor:
    """Mean |opacity of pixel k's front Gaussian - ground-truth alpha of pixel k|. g: [2 S S, ...]
    layer-major as the U-Net outputs it (the first S*S are the front layer, row-major);
    input_alpha: [S, S] the input view's coverage."""
    n = _front_layer_size(g, input_alpha.numel(), "front-alpha")
    front = torch.sigmoid(g.opacity_logits[:n])
    return (front - input_alpha.reshape(-1)).abs().mean()


def front_slope_loss(g: Gaussians, K: Tensor, true_depth: Tensor, true_alpha: Tensor) -> Tensor:
    """Mean over neighbouring pixel pairs (horizontal and vertical) solid in the truth of
    min(|slope_front - slope_true|, FRONT_SLOPE_CLAMP), a slope being f (z_b - z_a) / z_true_mean
    (depth change per pixel footprint). g: [2 S S, ...] layer-major (the first S*S, row-major, are
    the front layer, its z the camera-frame depth); K [3, 3] the crop camera; true_depth and
    true_alpha [S, S] the input view's truth (z-depth, coverage). 0 (with a gradient path) where no
    pair is solid."""
    s = true_alpha.shape[-1]
    n = _front_layer_size(g, s * s, "front-slope")
    front = g.means[:n, 2].reshape(s, s)
    solid = (true_alpha > SOLID_ALPHA) & (true_depth > 0)
    f = K[0, 0]
    errors = []
    for cut_a, cut_b in (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),    # x, x + 1
                         ((slice(0, -1), slice(None)), (slice(1, None), slice(None)))):   # y, y + 1
        both = solid[cut_a] & solid[cut_b]
        footprint = 0.5 * (true_depth[cut_a] + true_depth[cut_b])[both] / f
        predicted = (front[cut_b] - front[cut_a])[both] / footprint
        true = (true_depth[cut_b] - true_depth[cut_a])[both] / footprint
        errors.append((predicted - true).abs().clamp_max(FRONT_SLOPE_CLAMP))
    errors = torch.cat(errors)
    if errors.numel() == 0:
        return front.sum() * 0.0
    return errors.mean()


def stability_loss(rgb_a: Tensor, alpha_a: Tensor, rgb_b: Tensor, alpha_b: Tensor) -> Tensor:
    """Mean |a - b| of two renders of the same views: rgb [C, H, W, 3] and alpha [C, H, W]."""
    return (rgb_a - rgb_b).abs().mean() + (alpha_a - alpha_b).abs().mean()


def pair_depth_loss(depth_a: Tensor, alpha_a: Tensor, depth_b: Tensor, alpha_b: Tensor) -> Tensor:
    """Mean |a - b| / DEPTH_UNIT_M of two renders' expected depths [C, H, W] (alphas [C, H, W])
    where both are solid (alpha > SOLID_ALPHA); 0 (with a gradient path) where none is."""
    both = (alpha_a.detach() > SOLID_ALPHA) & (alpha_b.detach() > SOLID_ALPHA)
    if not bool(both.any()):
        return (depth_a.sum() + depth_b.sum()) * 0.0
    return (depth_a - depth_b).abs()[both].mean() / DEPTH_UNIT_M


def upsampled_input_view_loss(g: Gaussians, view: Tensor, K: Tensor, target: Tensor, background: tuple[float, ...],
                              backend: str = "auto") -> Tensor:
    """The input view rendered at UPSAMPLED_FACTOR x the crop's side S (view [1, 4, 4], K [1, 3, 3]
    at S) against ``target`` [1, S, S, 3] enlarged bilinearly: photometric() at F S x F S."""
    f = UPSAMPLED_FACTOR
    size = target.shape[1]
    K_fine = K.clone()
    K_fine[:, :2] = K[:, :2] * f  # pixel centres at +0.5 scale exactly
    fine = render(g, view, K_fine, f * size, f * size, background=background, backend=backend)
    enlarged = torch.nn.functional.interpolate(target.permute(0, 3, 1, 2), scale_factor=f, mode="bilinear",
                                               align_corners=False).permute(0, 2, 3, 1)
    return photometric(fine.rgb, enlarged)
