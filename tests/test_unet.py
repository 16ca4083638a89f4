"""The U-Net predictor: the Predictor contract (shapes, layer-major layout, frame), the head table's
initial values, gradients to every head, and sha256-checked weight loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from volume_cli import camera
from volume_cli.gaussians import sh_dc_to_rgb
from volume_cli.predictors.base import GAUSSIANS_PER_PIXEL, CropBatch
from volume_cli.predictors import unet as U

S = 32
DISTANCE = 0.6


def _batch(b: int = 2, size: int = S, seed: int = 0) -> CropBatch:
    g = torch.Generator().manual_seed(seed)
    f = size * DISTANCE / camera.CROP_EXTENT_M  # the pipeline's framing: extent 0.4 m at the head
    K = torch.from_numpy(camera.intrinsics(f, f, size / 2, size / 2)).float().expand(b, 3, 3).clone()
    return CropBatch(
        images=torch.rand(b, 3, size, size, generator=g),
        valid=torch.ones(b, size, size, dtype=torch.bool),
        K=K,
        head_center=torch.tensor([[0.0, 0.0, DISTANCE]] * b),
        landmarks=torch.zeros(b, 478, 3),
    )


def _exact_bias_model() -> U.UNet:
    """A model whose head weights are zero: its output is exactly the table's biases."""
    torch.manual_seed(0)
    model = U.UNet()
    with torch.no_grad():
        model.head.weight.zero_()
    return model


def test_head_table_is_consistent():
    names = [(h.name, h.layer) for h in U.HEADS]
    assert len(names) == len(set(names)), "each (head, layer) appears once"
    assert all(len(h.bias) == h.channels for h in U.HEADS)
    assert U.OUT_CHANNELS == sum(h.channels for h in U.HEADS) == 2 * 12 + 3
    for layer in range(GAUSSIANS_PER_PIXEL):
        assert {h.name for h in U.HEADS if h.layer == layer} == set(U.LAYER_HEADS) | ({"offset"} if layer == 1 else set())


def test_front_gaussians_stay_on_their_pixel_rays():
    """Whatever the network outputs, each first-layer Gaussian projects onto its own pixel centre
    (the input view is reproduced by construction); the back layer may leave its ray."""
    torch.manual_seed(5)
    model = U.UNet()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)
        model.head.bias.normal_(0, 1.0)
    batch = _batch(1)
    g = U.UNetPredictor(model).predict(batch)
    pix = camera.project(batch.K[0].double().numpy(), g.means[0].double().numpy())
    v, u = np.mgrid[0:S, 0:S] + 0.5
    expected = np.stack([u.ravel(), v.ravel()], -1)
    np.testing.assert_allclose(pix[: S * S], expected, atol=1e-3)
    assert np.abs(pix[S * S:] - expected).max() > 0.5


@pytest.mark.parametrize("b", [1, 3])
def test_predict_shapes_and_layer_major_layout(b):
    """[B, 2 S S] Gaussians; index k < S*S is pixel (k % S, k // S) of the first layer, S*S + k the
    same pixel's second Gaussian: with zero head weights each mean projects onto its pixel centre."""
    batch = _batch(b)
    g = U.UNetPredictor(_exact_bias_model()).predict(batch)
    n = GAUSSIANS_PER_PIXEL * S * S
    assert g.means.shape == (b, n, 3) and g.quats.shape == (b, n, 4) and g.log_scales.shape == (b, n, 3)
    assert g.opacity_logits.shape == (b, n) and g.sh.shape == (b, n, 1, 3)
    assert bool(g.finite_mask().all())
    K = batch.K[0].double().numpy()
    pix = camera.project(K, g.means[0].double().numpy())  # [2 S S, 2]
    v, u = np.mgrid[0:S, 0:S] + 0.5
    expected = np.stack([u.ravel(), v.ravel()], -1)
    np.testing.assert_allclose(pix[: S * S], expected, atol=1e-3)  # float32 means: ~1e-5 px
    np.testing.assert_allclose(pix[S * S:], expected, atol=1e-3)
    # direct colour sampling: the first layer's colour is its pixel's colour
    rgb = sh_dc_to_rgb(g.sh[:, : S * S, 0])
    torch.testing.assert_close(rgb, batch.images.permute(0, 2, 3, 1).reshape(b, S * S, 3), atol=1e-5, rtol=0)


def test_initial_values_are_the_documented_ones():
    """Zero head weights: exactly the table's values. The default init (std 1e-3 head weights, raw
    outputs within ~ +-0.015) stays within a budget of them: 3 % relative, 1 cm in depth."""
    batch = _batch(2)
    pixel_m = DISTANCE / float(batch.K[0, 0, 0])
    for model, tol, depth_tol in ((_exact_bias_model(), 1e-4, 1e-5), (U.UNet(), 0.03, 0.01)):
        g = U.UNetPredictor(model).predict(batch)
        front, back = slice(0, S * S), slice(S * S, 2 * S * S)
        z = g.means[..., 2]
        # depth: 8 cm and 5 cm in front of the head centre (the offset starts at 0)
        assert torch.allclose(z[:, front], torch.full_like(z[:, front], DISTANCE - 0.08), atol=depth_tol)
        assert torch.allclose(z[:, back], torch.full_like(z[:, back], DISTANCE - 0.05), atol=depth_tol)
        op = g.opacities()
        assert torch.allclose(op[:, front], torch.full_like(op[:, front], 0.5), atol=tol)
        assert torch.allclose(op[:, back], torch.full_like(op[:, back], 0.05), atol=tol)
        sc = g.scales() / pixel_m  # in crop pixels at the head
        assert torch.allclose(sc[:, front], torch.full_like(sc[:, front], 0.5), rtol=tol)
        assert torch.allclose(sc[:, back], torch.full_like(sc[:, back], 1.0), rtol=tol)
        q = g.unit_quats()
        assert torch.allclose(q[..., 0], torch.ones_like(q[..., 0]), atol=tol)
        rgb = sh_dc_to_rgb(g.sh[..., 0, :])
        pixels = batch.images.permute(0, 2, 3, 1).reshape(2, S * S, 3)
        assert torch.allclose(rgb[:, front], pixels, atol=tol) and torch.allclose(rgb[:, back], pixels, atol=tol)


def test_distance_adaptive_scaling():
    """The same crop framed at twice the distance (twice the focal, so the head covers the same
    pixels): the geometry is the same metric head, moved to the new distance. Depth offsets from the
    head centre and splat sizes in metres stay put (exactly for the table's biases; for a random
    network up to what the changed ray input moves its outputs)."""
    near = _batch(1)
    K_far = near.K.clone()
    K_far[:, 0, 0] *= 2
    K_far[:, 1, 1] *= 2
    far = CropBatch(images=near.images, valid=near.valid, K=K_far, head_center=near.head_center * 2, landmarks=near.landmarks)
    for model, depth_tol, log_tol in ((_exact_bias_model(), 1e-6, 1e-5), (U.UNet(), 2e-3, 0.01)):
        gn, gf = U.UNetPredictor(model).predict(near), U.UNetPredictor(model).predict(far)
        offset_near = gn.means[..., 2] - DISTANCE
        offset_far = gf.means[..., 2] - 2 * DISTANCE
        assert torch.allclose(offset_far, offset_near, atol=depth_tol)
        assert torch.allclose(gf.log_scales, gn.log_scales, atol=log_tol)


def test_gradients_reach_every_head_and_parameter():
    from volume_cli.render import render

    torch.manual_seed(1)
    model = U.UNet()
    batch = _batch(1)
    g = U.predict_gaussians(model, batch.images, batch.valid, batch.K, batch.head_center[:, 2])[0]
    turn = np.eye(4, dtype=np.float32)
    c, s = math.cos(0.3), math.sin(0.3)
    turn[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    turn[:3, 3] = turn[:3, :3] @ [0, 0, -DISTANCE] + [0, 0, DISTANCE]  # orbit about the head centre
    views = np.stack([np.eye(4, dtype=np.float32), turn])
    out = render(g, views, batch.K.expand(2, 3, 3).numpy(), S, S, background=(0.3, 0.3, 0.3), backend="torch")
    target = torch.rand(2, S, S, 3, generator=torch.Generator().manual_seed(2))
    loss = (out.rgb - target).abs().mean() + out.alpha.mean() + out.depth.mean()
    loss.backward()
    for p_name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), p_name
    grad_rows = model.head.weight.grad.reshape(U.OUT_CHANNELS, -1).norm(dim=1)
    for h in U.HEADS:
        assert float(grad_rows[U.HEAD_SLICES[(h.name, h.layer)]].max()) > 0, f"no gradient to {h.name}[{h.layer}]"


def test_predict_rejects_a_size_the_unet_cannot_take():
    with pytest.raises(ValueError, match="divisible by 16"):
        U.UNetPredictor(U.UNet()).predict(_batch(1, size=40))


def test_weights_round_trip_and_sha256_check(tmp_path):
    pytest.importorskip("safetensors")
    torch.manual_seed(3)
    model = U.UNet((16, 16, 32, 32, 64))
    path = tmp_path / "unet.safetensors"
    card = U.save_weights(model, path, {"steps": 0, "note": "test"})
    assert card["sha256"] == U.sha256_file(path) and card["architecture"]["widths"] == [16, 16, 32, 32, 64]
    predictor = U.load_unet_predictor(path)
    assert predictor.weights_sha256 == card["sha256"]
    batch = _batch(1)
    torch.testing.assert_close(predictor.predict(batch).means, U.UNetPredictor(model).predict(batch).means)
    # the caller's expected hash must match too
    with pytest.raises(U.WeightsError, match="caller expects"):
        U.load_weights(path, expected_sha256="0" * 64)
    # a card that records another hash
    cpath = U.card_path(path)
    bad = dict(card, sha256="f" * 64)
    cpath.write_text(json.dumps(bad))
    with pytest.raises(U.WeightsError, match="model card expects"):
        U.load_weights(path)
    # a file changed after the card was written
    cpath.write_text(json.dumps(card))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(U.WeightsError, match="refusing to load"):
        U.load_weights(path)
    with pytest.raises(U.WeightsError, match="no U-Net weights"):
        U.load_weights(tmp_path / "missing.safetensors")


def test_shipped_weights_are_a_trained_model():
    """weights/unet.safetensors loads (hash-checked), its card says how it was trained, and on a
    real photo it has learned what an untrained network has not: the person's front splats are
    opaque and the background's nearly transparent (MediaPipe's segmentation as the reference),
    and the input view is reproduced (the numbers measured for the README, less a margin)."""
    from realdata import REAL

    folder = U.DEFAULT_WEIGHTS.parent
    assert (folder / "README.md").is_file()
    predictor = U.load_unet_predictor()
    card = json.loads(U.card_path(U.DEFAULT_WEIGHTS).read_text())
    total_steps = card["steps"] + ((card.get("started_from") or {}).get("steps") or 0)  # fine-tuned: its parent's too
    assert total_steps >= 1000 and card["validation"]["novel_psnr"] > 15 and card["data"]["shards"]
    assert predictor.network_size == card["config"]["size"] and predictor.colour_steps == card["inference"]["colour_steps"]
    photo = REAL / "man_outdoors_572x562.jpg"
    if not photo.is_file():
        pytest.skip(f"real test media not found at {REAL}")
    import cv2

    from volume_cli.evaluate.authenticity import crop_image, measure_crop
    from volume_cli.pipeline import crop_batch
    from volume_cli.predictors.geometric import GeometricPredictor

    fc = crop_image(cv2.imread(str(photo))[..., ::-1].copy(), 128)
    with GeometricPredictor(colour_steps=0) as geometric:
        segmentation = geometric.person_mask(fc.crop)
    person, background = segmentation > 0.5, segmentation < 0.05
    assert person.sum() > 2000 and background.sum() > 2000
    for model, trained in ((predictor.model, True), (U.UNet(), False)):
        g = U.UNetPredictor(model, network_size=predictor.network_size).predict(crop_batch([fc], "cpu"))[0]
        front = torch.sigmoid(g.opacity_logits[: 128 * 128]).reshape(128, 128).numpy()
        if trained:  # measured 0.96 and 0.09 (0.65 and 0.02 before the front-alpha term)
            assert front[person].mean() > 0.9 and front[background].mean() < 0.15
        else:
            assert abs(front[person].mean() - front[background].mean()) < 0.05
    assert measure_crop(fc, predictor)[0].psnr_db > 38  # measured 43.4 dB (geometric, S = 256: 42.0)


def test_network_at_its_trained_size_still_gives_every_crop_pixel_two_gaussians():
    """A network trained at S/2 runs at S/2 and its outputs are resized to S: [B, 2 S S] Gaussians,
    the first layer coloured by its own full-size pixel; with constant outputs (zero head weights)
    the set is identical to running the network at S."""
    batch = _batch(2)
    model = _exact_bias_model()
    native = U.UNetPredictor(model).predict(batch)
    half = U.UNetPredictor(model, network_size=S // 2).predict(batch)
    assert half.means.shape == native.means.shape == (2, 2 * S * S, 3)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        torch.testing.assert_close(getattr(half, name), getattr(native, name), atol=1e-5, rtol=1e-5)
    # With real weights the outputs differ, but stay finite and keep the direct colour sampling.
    torch.manual_seed(1)
    model = U.UNet()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.05)
    g = U.UNetPredictor(model, network_size=S // 2).predict(batch)
    assert bool(g.finite_mask().all())
    with pytest.raises(ValueError, match="divisible by 16"):
        U.UNetPredictor(model, network_size=24).predict(batch)


def test_loaded_predictor_runs_at_the_size_in_its_card(tmp_path):
    path = tmp_path / "unet.safetensors"
    U.save_weights(U.UNet((16, 16, 32, 32, 64)), path, {"config": {"size": 64}, "steps": 0, "inference": {"colour_steps": 2}})
    loaded = U.load_unet_predictor(path)
    assert loaded.network_size == 64 and loaded.colour_steps == 2


def test_colour_fitting_changes_only_front_colours_inside_the_frame():
    batch = _batch(1)
    batch.valid[0, :, : S // 2] = False  # the left half ran off the frame
    model = _exact_bias_model()
    plain = U.UNetPredictor(model).predict(batch)
    fitted = U.UNetPredictor(model, colour_steps=1).predict(batch)
    for name in ("means", "quats", "log_scales", "opacity_logits"):
        torch.testing.assert_close(getattr(fitted, name), getattr(plain, name))
    changed = (fitted.sh - plain.sh).abs().flatten(-2).amax(-1)[0]  # [2 S S]
    front = changed[: S * S].reshape(S, S)
    assert bool((changed[S * S:] == 0).all()) and bool((front[:, : S // 2] == 0).all()) and bool((front[:, S // 2:] > 0).any())


def test_network_benchmark_counts_flops_that_grow_with_the_pixels():
    from volume_cli.evaluate.bench import bench_network

    model = U.UNet((8, 8, 16, 16, 32))
    small = bench_network(model, 32, device="cpu", batches=(1, 2), repeats=1)
    big = bench_network(model, 64, device="cpu", batches=(1,), repeats=1)
    assert small["parameters"] == sum(p.numel() for p in model.parameters())
    assert 3.9 < big["gflop_per_frame"] / small["gflop_per_frame"] < 4.1
    assert set(small["frames_per_second"]) == {"batch 1", "batch 2"} and min(small["frames_per_second"].values()) > 0


def _step_energy(raw: torch.Tensor, channels) -> float:
    """Mean |difference| between horizontally adjacent pixels of raw outputs [B, C, S, S]."""
    x = raw[:, channels]
    return float((x[..., 1:] - x[..., :-1]).abs().mean())


def test_refiner_corrects_front_opacity_and_colour_at_the_crops_own_side(tmp_path):
    """The U-Net at S/2 resized to S can change its outputs only smoothly between its own pixels; the
    refiner, fed by the full-size crop, changes the front opacity and colour pixel by pixel and
    nothing else. Untrained it changes (almost) nothing; its card says it is there."""
    pytest.importorskip("safetensors")
    batch = _batch(1)
    torch.manual_seed(0)
    plain = U.UNet((16, 16, 32, 32, 64))
    refined = U.UNet((16, 16, 32, 32, 64), refine=True)
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("refiner.") for k in missing)
    args = (batch.images, batch.valid, batch.K, S // 2)
    refined_channels = refined.refiner.channels
    others = [c for c in range(U.OUT_CHANNELS) if c not in refined_channels]
    assert len(refined_channels) == 4  # front opacity (1) and colour (3)
    with torch.no_grad():
        a, b = U.network_at_size(plain, *args), U.network_at_size(refined, *args)
        torch.testing.assert_close(b[:, others], a[:, others], atol=0, rtol=0)
        torch.testing.assert_close(b[:, refined_channels], a[:, refined_channels], atol=1e-2, rtol=0)
        refined.refiner.net[-1].weight.normal_(0.0, 0.5)  # a refiner that has learned something
        c = U.network_at_size(refined, *args)
    torch.testing.assert_close(c[:, others], a[:, others], atol=0, rtol=0)
    assert _step_energy(c, refined_channels) > 3 * _step_energy(a, refined_channels)
    # it trains: every refiner parameter gets a gradient through the Gaussians
    g = U.to_gaussians(U.network_at_size(refined, *args), batch.images, batch.K, batch.head_center[:, 2])
    (g.opacity_logits.sigmoid().mean() + g.sh.mean()).backward()
    for name, p in refined.refiner.named_parameters():
        assert p.grad is not None and float(p.grad.abs().max()) > 0, name
    # the card records it, and a card without the key (older weights) loads without a refiner
    path = tmp_path / "unet.safetensors"
    card = U.save_weights(refined, path, {"steps": 0})
    assert card["architecture"]["refine"] is True
    with torch.no_grad():
        torch.testing.assert_close(U.network_at_size(U.load_weights(path)[0], *args), c)
    U.save_weights(plain, path, {"steps": 0})
    card = json.loads(U.card_path(path).read_text())
    del card["architecture"]["refine"]
    U.card_path(path).write_text(json.dumps(card))
    assert U.load_weights(path)[0].refiner is None


def test_front_min_scale_floors_every_axis_of_the_front_splats_only(tmp_path):
    """Thin front splats leave gaps wherever the input view is not sampled at their own pixel
    centres; a network built with a floor never makes one thinner, and its back layer is free."""
    pytest.importorskip("safetensors")
    batch = _batch(1)
    torch.manual_seed(0)
    free = U.UNet((16, 16, 32, 32, 64))
    floored = U.UNet((16, 16, 32, 32, 64), front_min_scale_px=0.5)
    floored.load_state_dict(free.state_dict())
    n = S * S
    pixel_m = DISTANCE / float(batch.K[0, 0, 0])

    def axes_px(model: U.UNet) -> torch.Tensor:  # [2 S S, 3] standard deviations in crop pixels
        with torch.no_grad():
            return U.UNetPredictor(model).predict(batch).log_scales[0].exp() / pixel_m

    # untrained, the front layer is 0.5 px (its noise around it floored), the back layer the same
    torch.testing.assert_close(axes_px(floored), axes_px(free), atol=1e-2, rtol=0)
    for model in (free, floored):  # a network that has learned to make thin splats
        with torch.no_grad():
            model.head.bias[U.HEAD_SLICES[("scale", 0)]] = U._scale_bias(0.1)
            model.head.bias[U.HEAD_SLICES[("scale", 1)]] = U._scale_bias(0.1)
    thin, kept = axes_px(free), axes_px(floored)
    assert float(thin[:n].max()) < 0.15 and float(kept[:n].min()) == pytest.approx(0.5, rel=1e-5)
    torch.testing.assert_close(kept[n:], thin[n:])  # the back layer is not floored
    path = tmp_path / "unet.safetensors"
    assert U.save_weights(floored, path, {"steps": 0})["architecture"]["front_min_scale_px"] == 0.5
    assert U.load_weights(path)[0].front_min_scale_px == 0.5
    card = json.loads(U.card_path(path).read_text())
    del card["architecture"]["front_min_scale_px"]
    U.card_path(path).write_text(json.dumps(card))
    assert U.load_weights(path)[0].front_min_scale_px == 0.0  # older cards: no floor
    with pytest.raises(ValueError, match="front_min_scale_px"):
        U.UNet(front_min_scale_px=-1.0)
