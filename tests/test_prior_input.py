"""The head prior as a learned predictor's input (predictors.prior_input) and convert's view of the
training samples (train.priors): the channels follow the fitted head, stay out of what the frame
does not show, mirror and scale with the examples, and their sidecars resume."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

from volume_cli.predictors.prior_input import PRIOR_CHANNEL_COUNT, PRIOR_CHANNELS, PRIOR_DEPTH_SCALE_M, prior_channels

from synthdeps import needs_synth

CH = {name: k for k, name in enumerate(PRIOR_CHANNELS)}


@functools.lru_cache(maxsize=None)
def _sample(seed: int, size: int = 64):
    from volume_cli.synth.sample import generate_sample

    return generate_sample(seed, size=size, views=3, temporal=False)


def _framed(image, K_in, size):
    from volume_cli.face import FaceFinder
    from volume_cli.framing import crop_of_still

    with FaceFinder(video=False) as finder:
        fc = crop_of_still(image, K_in, finder, size)
    assert fc is not None
    return fc


def test_a_refused_fit_leaves_only_the_mesh_and_the_person():
    size = 8
    mesh = np.full((size, size), np.inf)
    mesh[2:5, 3:6] = 0.55
    person = np.linspace(0, 1, size * size).reshape(size, size)
    proxy = np.full((size, size), 0.62)
    out = prior_channels(None, proxy, mesh, person, distance=0.6)
    assert out.shape == (PRIOR_CHANNEL_COUNT, size, size) and out.dtype == np.float32
    for name in ("head_depth", "normal_x", "normal_y", "normal_z", "head", "shell"):
        assert not out[CH[name]].any(), name
    np.testing.assert_allclose(out[CH["person"]], person, atol=1e-7)
    np.testing.assert_allclose(out[CH["proxy_depth"]], (0.62 - 0.6) / PRIOR_DEPTH_SCALE_M, atol=1e-6)
    assert out[CH["mesh"]].sum() == 9
    np.testing.assert_allclose(out[CH["mesh_depth"]][2:5, 3:6], (0.55 - 0.6) / PRIOR_DEPTH_SCALE_M, atol=1e-6)
    assert not out[CH["mesh_depth"]][np.isinf(mesh)].any()


@needs_synth
def test_prior_channels_follow_the_fitted_head_and_stay_inside_the_frame():
    """A synthetic webcam frame cut so that the head sits at its left edge (an off-centre face,
    part of the crop outside the frame): the channels are the still fit's head, relative to the
    distance, and the person channel is 0 where the crop sees no frame."""
    from volume_cli.head.model import load_head_model
    from volume_cli.head.track import HeadTrack
    from volume_cli.pipeline import crop_batch
    from volume_cli.predictors.geometric import mesh_depth_rasterizer, proxy_depth
    from volume_cli.predictors.prior_input import batch_prior_channels
    from volume_cli.segmentation import PersonSegmenter
    from volume_cli import camera

    sample = _sample(2, size=128)
    image, K_in = sample["input_image"], sample["input_K"].copy()
    u = camera.project(K_in, sample["head_center"][None])[0, 0]
    left = int(u - 0.12 * image.shape[1])  # the head centre ends up ~12 % of the width from the edge
    image = np.ascontiguousarray(image[:, left:])
    K_in[0, 2] -= left
    fc = _framed(image, K_in, 128)
    assert not fc.valid.all() and fc.valid.mean() > 0.5
    batch = crop_batch([fc], "cpu")
    with PersonSegmenter() as segmenter:
        out = batch_prior_channels(batch, segmenter)[0].numpy()
    assert out.shape == (PRIOR_CHANNEL_COUNT, 128, 128)
    prior = HeadTrack(load_head_model(), mesh_depth_rasterizer(), clip=False).prior(fc.landmarks, fc.cam.K, 128)[0]
    assert prior is not None
    d = float(np.linalg.norm(fc.head_center))
    head = prior.head_mask
    np.testing.assert_array_equal(out[CH["head"]] > 0, head)
    np.testing.assert_allclose(out[CH["head_depth"]][head] * PRIOR_DEPTH_SCALE_M + d, prior.depth[head], atol=2e-6)
    proxy = proxy_depth(fc.landmarks, fc.cam.K, camera.image_rays(fc.cam.K, 128, 128), prior)
    np.testing.assert_allclose(out[CH["proxy_depth"]] * PRIOR_DEPTH_SCALE_M + d, proxy, atol=2e-6)
    assert np.isfinite(out).all()
    normals = out[[CH["normal_x"], CH["normal_y"], CH["normal_z"]]]
    inner = head & (np.abs(normals).sum(0) > 0)
    assert inner.mean() > 0.1
    np.testing.assert_allclose(np.linalg.norm(normals[:, inner], axis=0), 1.0, atol=1e-3)
    assert (normals[2][inner] < 0).mean() > 0.99  # facing the camera (-z)
    assert not (out[CH["shell"]] * out[CH["head"]]).any()
    assert not out[CH["person"]][~fc.valid].any()
    assert out[CH["person"]][head & fc.valid].mean() > 0.8
    # The face mesh lies on the fitted head: its landmarks project onto the head channel.
    px = np.floor(camera.project(fc.cam.K, fc.landmarks)).astype(int)
    inside = (px >= 0).all(1) & (px < 128).all(1)
    assert out[CH["head"]][px[inside, 1], px[inside, 0]].mean() > 0.95


@needs_synth
def test_examples_mirror_and_scale_the_prior():
    from volume_cli.train.data import example_rng, make_example, mirror_example

    sample = dict(_sample(3))
    rng = np.random.default_rng(0)
    prior = rng.normal(size=(PRIOR_CHANNEL_COUNT, 64, 64)).astype(np.float16)
    sample["prior"] = prior
    ex = make_example(sample, example_rng(1, 2), distance_noise=0.05, pair=False)
    scale = float(ex["distance_scale"])
    assert scale != 1.0
    want = prior.astype(np.float32)
    want[[CH["proxy_depth"], CH["head_depth"], CH["mesh_depth"]]] *= scale
    np.testing.assert_allclose(ex["prior"].numpy(), want, rtol=1e-6)
    mirrored = mirror_example(ex)["prior"].numpy()
    np.testing.assert_array_equal(mirrored[CH["normal_x"]], -want[CH["normal_x"]][:, ::-1])
    for name in ("head_depth", "normal_y", "normal_z", "head", "person", "mesh"):
        np.testing.assert_array_equal(mirrored[CH[name]], want[CH[name]][:, ::-1])


@needs_synth
def test_prior_sidecars_resume_and_feed_training_with_converts_crops(tmp_path):
    from volume_cli.synth.writer import write_dataset
    from volume_cli.train.data import ShardExamples
    from volume_cli.train.priors import read_prior_sidecar, write_prior_sidecars

    data = tmp_path / "data"
    write_dataset(data, count=3, run_seed=4, size=64, views=3, shard_size=2, temporal=False)
    with pytest.raises(ValueError, match="volume_cli.train.priors"):
        ShardExamples([data], run_seed=1, size=64, views=2, priors=True)
    first = write_prior_sidecars(data)
    assert first["shards_done"] == 2 and first["samples"] == 3 and first["no_face"] == 0
    sidecars = sorted(data.glob("prior_*.npz"))
    assert [p.name for p in sidecars] == ["prior_000000.npz", "prior_000001.npz"]
    stamps = [p.stat().st_mtime_ns for p in sidecars]
    sidecars[1].unlink()  # as if interrupted before the second shard
    again = write_prior_sidecars(data)
    assert again["shards_skipped"] == 1 and again["shards_done"] == 1 and again["samples"] == 1
    assert sidecars[0].stat().st_mtime_ns == stamps[0]

    views = read_prior_sidecar(sidecars[0])
    examples = ShardExamples([data], run_seed=1, size=64, views=2, priors=True)
    assert len(examples) == 3 and examples.no_face == 0
    stored = examples.samples[0]
    np.testing.assert_array_equal(stored["crop"], views[0]["crop"])
    np.testing.assert_array_equal(stored["crop_K"], views[0]["crop_K"])
    # View 0, which the losses compare with the input pixel for pixel, is convert's camera.
    np.testing.assert_array_equal(stored["target_K"][0], stored["crop_K"])
    np.testing.assert_allclose(stored["target_w2c"][0][:3, :3], stored["crop_R"])
    ex = examples.example(0)
    assert ex["prior"].shape == (PRIOR_CHANNEL_COUNT, 64, 64) and torch.isfinite(ex["prior"]).all()
    plain = ShardExamples([data], run_seed=1, size=64, views=2)
    assert "prior" not in plain.example(0)
    # Convert's framing is not the generator's (MediaPipe's pose and distance are estimates).
    assert not np.array_equal(stored["crop_K"], plain.samples[0]["crop_K"])
    half = ShardExamples([data], run_seed=1, size=32, views=2, priors=True)
    assert half.example(0)["prior"].shape == (PRIOR_CHANNEL_COUNT, 32, 32)


# -- the U-Net that takes the prior ----------------------------------------------------------------

def _prior_model(widths=(16, 16, 32, 32, 32)):
    from volume_cli.predictors import unet as U

    torch.manual_seed(0)
    model = U.UNet(widths, prior=True)
    with torch.no_grad():
        model.head.weight.zero_()  # the output is exactly the table's biases
    return model


def _random_prior(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    prior = torch.rand(b, PRIOR_CHANNEL_COUNT, size, size, generator=g)
    prior[:, CH["proxy_depth"]] = (prior[:, CH["proxy_depth"]] - 0.5) * 2  # +-0.1 m about the head distance
    return prior


def _one_crop(size: int, d: float = 0.6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K [1, 3, 3] of the pipeline's framing at head distance d, a random crop [1, 3, S, S] and a
    random prior [1, PRIOR_CHANNEL_COUNT, S, S]."""
    f = size * d / 0.4
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])[None]
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    return K, images, _random_prior(1, size)


def _card_records_and_needs_the_prior(tmp_path, option: str) -> None:
    """A prior network built with ``option`` records it in its card and is rebuilt with it; without
    the prior it is refused."""
    from volume_cli.predictors import unet as U

    model = U.UNet((16, 16, 32, 32, 32), prior=True, **{option: True})
    path = tmp_path / "unet.safetensors"
    assert U.save_weights(model, path, {"config": {"size": 64}, "steps": 0})["architecture"][option] is True
    assert getattr(U.load_weights(path)[0], option)
    with pytest.raises(ValueError, match="prior"):
        U.UNet((16, 16, 32, 32, 32), **{option: True})


def _card_records_learned_heads(tmp_path, model, attribute: str, learned: tuple[str, ...], old_default: tuple[str, ...]) -> None:
    """``model`` (built with ``attribute`` = ``learned``) records the list in its card and is
    rebuilt with it; a card from before the attribute rebuilds with ``old_default``."""
    from volume_cli.predictors import unet as U

    path = tmp_path / "unet.safetensors"
    assert U.save_weights(model, path, {"config": {"size": 32}, "steps": 0})["architecture"][attribute] == list(learned)
    assert getattr(U.load_unet_predictor(path).model, attribute) == learned
    old = json.loads(U.card_path(path).read_text())
    del old["architecture"][attribute]
    U.card_path(path).write_text(json.dumps(old))
    assert getattr(U.load_weights(path)[0], attribute) == old_default


def _untrained_raw(size: int) -> torch.Tensor:
    """[1, OUT_CHANNELS, S, S]: what an untrained network outputs (the table's biases)."""
    from volume_cli.predictors import unet as U

    return torch.tensor([b for h in U.HEADS for b in h.bias])[None, :, None, None].expand(1, -1, size, size).clone()


@pytest.mark.parametrize("network_size", [64, 32])
def test_an_untrained_prior_network_starts_at_the_proxy_surface_and_the_person_mask(network_size):
    """Zero head weights give the table's biases; with the prior those mean: front depth = the
    proxy surface and front opacity = the person mask, at the crop's full resolution even when the
    network runs on a coarser grid. The back layer is as without the prior."""
    from volume_cli.predictors import unet as U

    size, d = 64, 0.6
    model = _prior_model()
    f = size * d / 0.4
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]]).expand(2, 3, 3).clone()
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    valid = torch.ones(2, size, size, dtype=torch.bool)
    prior = _random_prior(2, size)
    distance = torch.full((2,), d)
    with torch.no_grad():
        raw = U.network_at_size(model, images, valid, K, network_size, prior)
        g = U.to_gaussians(raw, images, K, distance, prior)
        plain = U.to_gaussians(raw, images, K, distance)
    n = size * size
    z_front = g.means[:, :n, 2].reshape(2, size, size)
    want_z = d + PRIOR_DEPTH_SCALE_M * prior[:, CH["proxy_depth"]]
    torch.testing.assert_close(z_front, want_z, atol=1e-5, rtol=0)
    opacity = torch.sigmoid(g.opacity_logits[:, :n]).reshape(2, size, size)
    want_opacity = prior[:, CH["person"]].clamp(U.PERSON_CLAMP, 1 - U.PERSON_CLAMP)
    torch.testing.assert_close(opacity, want_opacity, atol=1e-5, rtol=0)
    for key in ("means", "opacity_logits", "log_scales", "sh"):
        torch.testing.assert_close(getattr(g, key)[:, n:], getattr(plain, key)[:, n:])
    with pytest.raises(ValueError, match="head prior"):
        U.network_at_size(model, images, valid, K, network_size)


def test_prior_weights_round_trip_and_predict_a_crop_batch(tmp_path):
    """The card records the prior's channels, loading rebuilds a network that takes them, and the
    predictor computes them from a CropBatch (a still's head fit when convert gave none)."""
    from volume_cli.predictors import unet as U

    path = tmp_path / "unet.safetensors"
    card = U.save_weights(_prior_model(), path, {"config": {"size": 64}, "steps": 0})
    assert card["architecture"]["prior"] == list(PRIOR_CHANNELS)
    assert card["architecture"]["in_channels"] == U.IN_CHANNELS + PRIOR_CHANNEL_COUNT
    predictor = U.load_unet_predictor(path)
    assert predictor.model.prior and predictor.use_head
    plain = tmp_path / "plain.safetensors"
    U.save_weights(U.UNet((16, 16, 32, 32, 32)), plain, {"config": {"size": 64}, "steps": 0})
    assert not U.load_unet_predictor(plain).use_head


def test_the_opacity_band_leaves_the_person_mask_where_it_is_sure(tmp_path):
    """With ``opacity_band`` the front-opacity residual counts in full where the person mask is
    undecided (0.5) and by 4 p (1 - p) elsewhere (0.04 at the clamp): an untrained network is
    still exactly the mask, a trained one moves the mask's sure pixels 25 times less. The card
    records it; cards from before it load without it; without the prior it is refused."""
    from volume_cli.predictors import unet as U

    size, d = 16, 0.6
    K, images, prior = _one_crop(size, d)
    person = torch.full((size, size), 0.5)
    person[:, : size // 2] = 0.999  # beyond the clamp: 0.99
    prior[0, CH["person"]] = person
    raw = _untrained_raw(size)
    push = 2.0  # the network's residual on every pixel's front opacity logit
    raw[:, U.HEAD_SLICES[("opacity", 0)]] += push
    n = size * size
    clamped = person.clamp(U.PERSON_CLAMP, 1 - U.PERSON_CLAMP)
    mask_logit = torch.log(clamped) - torch.log1p(-clamped)
    free = U.to_gaussians(raw, images, K, torch.tensor([d]), prior).opacity_logits[0, :n].reshape(size, size)
    banded = U.to_gaussians(raw, images, K, torch.tensor([d]), prior, opacity_band=True).opacity_logits[0, :n].reshape(size, size)
    torch.testing.assert_close(free, mask_logit + push)
    torch.testing.assert_close(banded, mask_logit + push * 4 * clamped * (1 - clamped))
    assert float(banded[0, -1] - mask_logit[0, -1]) == pytest.approx(push, abs=1e-5)  # undecided: in full
    assert float(banded[0, 0] - mask_logit[0, 0]) == pytest.approx(0.0396 * push, abs=1e-4)  # sure: 4 %

    torch.manual_seed(0)
    model = U.UNet((16, 16, 32, 32, 32), prior=True, opacity_band=True)
    with torch.no_grad():
        model.head.weight.zero_()  # untrained: exactly the mask, band or not
    valid = torch.ones(1, size, size, dtype=torch.bool)
    g = U.predict_gaussians(model, images, valid, K, torch.tensor([d]), prior)
    torch.testing.assert_close(torch.sigmoid(g.opacity_logits[0, :n]).reshape(size, size), clamped, atol=1e-5, rtol=0)
    path = tmp_path / "unet.safetensors"
    card = U.save_weights(model, path, {"config": {"size": size}, "steps": 0})
    assert card["architecture"]["opacity_band"] is True and U.load_unet_predictor(path).model.opacity_band
    old = json.loads(U.card_path(path).read_text())
    del old["architecture"]["opacity_band"]
    U.card_path(path).write_text(json.dumps(old))
    assert not U.load_weights(path)[0].opacity_band
    with pytest.raises(ValueError, match="prior"):
        U.UNet((16, 16, 32, 32, 32), opacity_band=True)


def test_front_learned_keeps_the_prior_front_layer_where_the_network_is_not_asked(tmp_path):
    """A network built to learn only its front depth gives, whatever its weights, the front
    opacity of the person mask, 0.5 px round splats and the pixel's own colour (what an untrained
    prior network gives), while its front depth and its whole back layer are its own. No gradient
    reaches a locked head. The card records the learned heads; older cards learned all."""
    from volume_cli.gaussians import sh_dc_to_rgb
    from volume_cli.predictors import unet as U

    size, d = 32, 0.6
    K, images, prior = _one_crop(size, d)
    valid = torch.ones(1, size, size, dtype=torch.bool)
    distance = torch.tensor([d])
    torch.manual_seed(0)
    free = U.UNet((16, 16, 32, 32, 32), prior=True)
    depth_only = U.UNet((16, 16, 32, 32, 32), prior=True, front_learned=("depth",))
    depth_only.load_state_dict(free.state_dict())
    with torch.no_grad():  # weights that have learned something on every head
        for model in (free, depth_only):
            model.head.weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(2))
    n = size * size
    untrained = _prior_model((16, 16, 32, 32, 32))
    with torch.no_grad():
        start = U.predict_gaussians(untrained, images, valid, K, distance, prior)
        g_free = U.predict_gaussians(free, images, valid, K, distance, prior)
    g = U.predict_gaussians(depth_only, images, valid, K, distance, prior)
    for key in ("opacity_logits", "log_scales", "quats"):  # locked: exactly the prior's, not the free net's
        torch.testing.assert_close(getattr(g, key)[:, :n], getattr(start, key)[:, :n], atol=1e-6, rtol=0)
        assert not torch.allclose(getattr(g_free, key)[:, :n], getattr(start, key)[:, :n], atol=1e-3)
    torch.testing.assert_close(sh_dc_to_rgb(g.sh[:, :n, 0]), images[0].permute(1, 2, 0).reshape(1, n, 3), atol=1e-5, rtol=0)
    for key in ("means", "opacity_logits", "log_scales", "sh"):  # learned: as the free network's
        torch.testing.assert_close(getattr(g, key)[:, n:], getattr(g_free, key)[:, n:])
    torch.testing.assert_close(g.means[:, :n], g_free.means[:, :n])
    assert not torch.allclose(g.means[:, :n], start.means[:, :n], atol=1e-4)
    (g.opacity_logits[:, :n].sum() + g.sh[:, :n].sum() + g.log_scales[:, :n].sum()).backward()
    weight_grad = depth_only.head.weight.grad[:, :, 0, 0]
    for name in ("opacity", "scale", "rotation", "colour"):
        assert float(weight_grad[U.HEAD_SLICES[(name, 0)]].abs().max()) == 0.0, name
    _card_records_learned_heads(tmp_path, depth_only, "front_learned", ("depth",), U.LAYER_HEADS)
    with pytest.raises(ValueError, match="front_learned"):
        U.UNet((16, 16, 32, 32, 32), front_learned=("depth", "offset"))


def test_back_learned_none_holds_the_backing_start_whatever_the_weights(tmp_path):
    """A backing-start network built to learn no back head gives, whatever its weights, the back
    layer of an untrained one (the backing 8 mm behind each front splat, its size, orientation,
    opacity and colour; the quaternion's whole (1, 0, 0, 0), not one channel), while its front
    layer is the free network's, and the backing follows the learned front depth. No gradient
    reaches a held head; a partial list holds only the heads it leaves out. The card records the
    list; older cards learned every back head."""
    from volume_cli.predictors import unet as U

    size, d = 32, 0.6
    K, images, prior = _one_crop(size, d)
    prior[:, CH["person"]] = 0.9
    valid = torch.ones(1, size, size, dtype=torch.bool)
    distance = torch.tensor([d])
    options = dict(prior=True, front_size_at_own_depth=True, backing_start=True)
    torch.manual_seed(0)
    free = U.UNet((16, 16, 32, 32, 32), **options)
    held = U.UNet((16, 16, 32, 32, 32), back_learned=(), **options)
    offset_only = U.UNet((16, 16, 32, 32, 32), back_learned=("offset",), **options)
    untrained = U.UNet((16, 16, 32, 32, 32), **options)
    with torch.no_grad():
        free.head.weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(2))
        untrained.head.weight.zero_()
    held.load_state_dict(free.state_dict())
    offset_only.load_state_dict(free.state_dict())
    n = size * size
    with torch.no_grad():
        start = U.predict_gaussians(untrained, images, valid, K, distance, prior)
        g_free = U.predict_gaussians(free, images, valid, K, distance, prior)
        g_offset = U.predict_gaussians(offset_only, images, valid, K, distance, prior)
    g = U.predict_gaussians(held, images, valid, K, distance, prior)
    for key in ("means", "quats", "log_scales", "opacity_logits", "sh"):  # the front: the free network's
        torch.testing.assert_close(getattr(g, key)[:, :n], getattr(g_free, key)[:, :n])

    def back(x, key):  # the back layer's; sizes in crop pixels (a backing is sized at its own depth)
        return x.log_scales[:, n:] - torch.log(x.means[:, n:, 2:]) if key == "log_scales" else getattr(x, key)[:, n:]

    for key in ("quats", "log_scales", "opacity_logits", "sh"):  # the back: the start's, not the free net's
        torch.testing.assert_close(back(g, key), back(start, key), atol=1e-5, rtol=0)
        assert not torch.allclose(back(g_free, key), back(start, key), atol=1e-3), key
    # The held backing sits 8 mm behind the front splat the network moved, on the same ray.
    torch.testing.assert_close(g.means[0, n:, 2], g.means[0, :n, 2] + U.BACKING_START_BEHIND_M, atol=1e-6, rtol=0)
    torch.testing.assert_close(g.means[0, n:, :2] / g.means[0, n:, 2:], g.means[0, :n, :2] / g.means[0, :n, 2:], atol=1e-6, rtol=0)
    assert not torch.allclose(g_free.means[0, n:], g.means[0, n:], atol=1e-4)
    # Only the offset learned: the backing leaves its ray, its shape stays the start's.
    assert not torch.allclose(g_offset.means[0, n:, :2] / g_offset.means[0, n:, 2:], g.means[0, n:, :2] / g.means[0, n:, 2:], atol=1e-4)
    for key in ("quats", "opacity_logits", "sh"):
        torch.testing.assert_close(back(g_offset, key), back(start, key), atol=1e-6, rtol=0)
    (g.means[:, n:].sum() + g.opacity_logits[:, n:].sum() + g.sh[:, n:].sum() + g.log_scales[:, n:].sum()
     + g.quats[:, n:].sum()).backward()
    weight_grad = held.head.weight.grad[:, :, 0, 0]
    for name in U.BACK_HEADS:
        assert float(weight_grad[U.HEAD_SLICES[(name, 1)]].abs().max()) == 0.0, name
    assert float(weight_grad[U.HEAD_SLICES[("depth", 0)]].abs().max()) > 0.0  # the backing follows the front
    _card_records_learned_heads(tmp_path, held, "back_learned", (), U.BACK_HEADS)
    with pytest.raises(ValueError, match="back_learned"):
        U.UNet((16, 16, 32, 32, 32), back_learned=("depth", "refine"))


def test_front_depth_cells_bend_the_prior_surface_without_rippling_it(tmp_path):
    """With ``front_depth_cells`` the front depth residual is an average over that grid, smoothly
    interpolated: a residual that alternates row by row (the ribbing seen on real faces) averages
    away, a smooth one passes nearly unchanged, and an untrained network is still exactly the
    prior's surface, at any crop side that is a multiple of 16. The card records the cell count."""
    from volume_cli.predictors import unet as U

    torch.manual_seed(0)
    model = U.UNet((16, 16, 32, 32, 32), prior=True, front_learned=("depth",), front_depth_cells=8)
    sl = U.HEAD_SLICES[("depth", 0)]
    for size in (32, 64):
        raw = _untrained_raw(size)
        untouched = U.coarse_front_depth(raw, 8)
        torch.testing.assert_close(untouched, raw)  # constant in: the same out
        rows = torch.arange(size, dtype=torch.float32)
        ribbed = raw.clone()
        ribbed[:, sl] += 0.5 * torch.where(rows % 2 == 0, 1.0, -1.0)[:, None]  # alternate rows
        assert float((U.coarse_front_depth(ribbed, 8) - raw)[:, sl].abs().max()) < 1e-6
        smooth = raw.clone()
        smooth[:, sl] += 0.3 * torch.sin(rows / size * math.pi)[:, None]  # one bend across the crop
        kept = U.coarse_front_depth(smooth, 8)
        error = (kept - smooth)[:, sl].abs()
        assert float(error.mean()) < 0.01 and float(error.max()) < 0.08  # the most in the border's half cell
        others = [c for c in range(U.OUT_CHANNELS) if not sl.start <= c < sl.stop]
        torch.testing.assert_close(kept[:, others], smooth[:, others], atol=0, rtol=0)
    path = tmp_path / "unet.safetensors"
    assert U.save_weights(model, path, {"config": {"size": 64}, "steps": 0})["architecture"]["front_depth_cells"] == 8
    assert U.load_weights(path)[0].front_depth_cells == 8
    for cells in (-1, 12):
        with pytest.raises(ValueError, match="front_depth_cells"):
            U.UNet((16, 16, 32, 32, 32), prior=True, front_depth_cells=cells)


def test_front_size_at_own_depth_keeps_each_front_splats_footprint_in_the_input_view(tmp_path):
    """With ``front_size_at_own_depth`` a front splat's size is its crop pixels at its own depth:
    moved along its ray, it projects to the same size in the input camera (size / z constant), as
    the slow reference (project the splat's 1-sigma edge point through K) confirms; without it a
    splat pushed away shrinks there. The back layer is as before. The card records it."""
    from volume_cli.predictors import unet as U

    size, d = 16, 0.6
    K, images, prior = _one_crop(size, d)
    raw = _untrained_raw(size)
    pushed = raw.clone()
    pushed[:, U.HEAD_SLICES[("depth", 0)]] += torch.linspace(-0.5, 0.5, size)[None, None, :, None]  # rows moved apart
    n = size * size

    def footprint_px(g):  # [n]: the 1-sigma x extent of each front splat, projected through K
        centre = g.means[0, :n]
        edge = centre + torch.stack([g.log_scales[0, :n, 0].exp(), torch.zeros(n), torch.zeros(n)], -1)
        u = lambda p: K[0, 0, 0] * p[:, 0] / p[:, 2] + K[0, 0, 2]
        return u(edge) - u(centre)

    for own, moves in ((True, False), (False, True)):
        before = U.to_gaussians(raw, images, K, torch.tensor([d]), prior, front_size_at_own_depth=own)
        after = U.to_gaussians(pushed, images, K, torch.tensor([d]), prior, front_size_at_own_depth=own)
        assert float((after.means[0, :n, 2] - before.means[0, :n, 2]).abs().max()) > 0.05
        change = (footprint_px(after) / footprint_px(before) - 1).abs().max()
        assert (float(change) > 0.05) == moves, (own, float(change))
        torch.testing.assert_close(after.log_scales[0, n:], before.log_scales[0, n:])
    plain = U.to_gaussians(raw, images, K, torch.tensor([d]), prior)
    assert float(footprint_px(plain).mean()) == pytest.approx(0.5, rel=0.25)  # 0.5 crop px near the head distance
    torch.manual_seed(0)
    model = U.UNet((16, 16, 32, 32, 32), prior=True, front_size_at_own_depth=True)
    path = tmp_path / "unet.safetensors"
    assert U.save_weights(model, path, {"config": {"size": 64}, "steps": 0})["architecture"]["front_size_at_own_depth"] is True
    assert U.load_weights(path)[0].front_size_at_own_depth


def test_front_depth_shape_only_keeps_the_face_where_the_prior_put_it(tmp_path):
    """With ``front_depth_shape_only`` the front depth residual loses its mean over the person
    (weighted by the mask): a residual that moves the whole face along the rays changes nothing,
    one that bends it keeps its shape less its mean; the back layer is untouched. Needs the prior;
    the card records it."""
    from volume_cli.predictors import unet as U

    size, d = 16, 0.6
    K, images, prior = _one_crop(size, d)
    raw = _untrained_raw(size)
    sl, n = U.HEAD_SLICES[("depth", 0)], size * size
    args = (images, K, torch.tensor([d]), prior)
    start = U.to_gaussians(raw, *args, front_depth_shape_only=True).means[0, :n, 2]
    torch.testing.assert_close(start, U.to_gaussians(raw, *args).means[0, :n, 2])  # untrained: the prior
    shifted = raw.clone()
    shifted[:, sl] += 0.3  # the whole face ~5 cm further
    assert float((U.to_gaussians(shifted, *args).means[0, :n, 2] - start).min()) > 0.04
    torch.testing.assert_close(U.to_gaussians(shifted, *args, front_depth_shape_only=True).means[0, :n, 2], start,
                               atol=2e-3, rtol=0)  # tanh is not linear: a constant raw shift is nearly one in metres
    bent = raw.clone()
    bent[:, sl] += 0.3 * torch.linspace(-1, 1, size)[None, None, :, None]
    free = U.to_gaussians(bent, *args).means[0, :n, 2] - start
    kept = U.to_gaussians(bent, *args, front_depth_shape_only=True).means[0, :n, 2] - start
    person = prior[0, CH["person"]].reshape(n)
    assert float((person * kept).sum() / person.sum()) == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(kept - kept.mean(), free - free.mean(), atol=1e-3, rtol=0)
    torch.testing.assert_close(U.to_gaussians(bent, *args, front_depth_shape_only=True).means[0, n:],
                               U.to_gaussians(bent, *args).means[0, n:])
    _card_records_and_needs_the_prior(tmp_path, "front_depth_shape_only")


@needs_synth
def test_a_prior_network_predicts_a_real_framed_crop_from_its_prior(tmp_path):
    from volume_cli.pipeline import crop_batch
    from volume_cli.predictors import unet as U

    sample = _sample(3)
    fc = _framed(sample["input_image"], sample["input_K"], 64)
    U.save_weights(_prior_model(), tmp_path / "unet.safetensors", {"config": {"size": 64}, "steps": 0})
    predictor = U.load_unet_predictor(tmp_path / "unet.safetensors")
    batch = crop_batch([fc], "cpu")
    g = predictor.predict(batch)
    prior = predictor.prior_of(batch)
    predictor.close()
    n = 64 * 64
    d = float(np.linalg.norm(fc.head_center))
    z = g.means[0, :n, 2].reshape(64, 64)
    torch.testing.assert_close(z, d + PRIOR_DEPTH_SCALE_M * prior[0, CH["proxy_depth"]], atol=1e-5, rtol=0)


def test_the_partners_prior_turns_with_its_camera():
    from volume_cli import camera
    from volume_cli.train.data import prior_seen_by

    size = 64
    K = camera.intrinsics(100.0, 100.0, 32.0, 32.0)
    prior = np.zeros((PRIOR_CHANNEL_COUNT, size, size), np.float32)
    prior[CH["head"], 20:30, 40:50] = 1.0
    prior[CH["normal_z"], 20:30, 40:50] = -1.0
    same = prior_seen_by(prior, K, np.eye(3), np.eye(3))
    np.testing.assert_allclose(same, prior, atol=1e-6)
    turn = np.radians(2.0)  # the partner turns 2 degrees about y (to its right)
    R = np.array([[np.cos(turn), 0, np.sin(turn)], [0, 1, 0], [-np.sin(turn), 0, np.cos(turn)]])
    moved = prior_seen_by(prior, K, np.eye(3), R)
    # The patch's centre, a direction in the first camera, seen by the second.
    direction = np.linalg.inv(K) @ np.array([45.0, 25.0, 1.0])
    u, v = camera.project(K, (R @ direction)[None])[0]
    ys, xs = np.nonzero(moved[CH["head"]] > 0.5)
    assert abs(xs.mean() + 0.5 - u) < 0.6 and abs(ys.mean() + 0.5 - v) < 0.6
    n = moved[[CH["normal_x"], CH["normal_y"], CH["normal_z"]], ys[0], xs[0]]
    np.testing.assert_allclose(n, R @ np.array([0.0, 0.0, -1.0]), atol=1e-5)


@needs_synth
def test_volume_train_with_the_prior_exports_a_network_that_takes_it(tmp_path):
    from typer.testing import CliRunner

    from volume_cli.cli import app
    from volume_cli.predictors import unet as U
    from volume_cli.synth.writer import write_dataset
    from volume_cli.train.priors import write_prior_sidecars

    data = tmp_path / "data"
    write_dataset(data, count=2, run_seed=5, size=64, views=3, shard_size=2, temporal=False)
    runner = CliRunner()
    base = ["train", "--size", "64", "--views", "2", "--batch-size", "2", "--steps", "2", "--val-every", "2",
            "--val-count", "1", "--widths", "16,16,32,32,32", "--prior", "-q"]
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "nodata")])
    assert result.exit_code == 1 and "--data" in result.output
    no_prior = [a for a in base if a != "--prior"] + ["--opacity-band"]
    result = runner.invoke(app, [*no_prior, "-o", str(tmp_path / "band")])
    assert result.exit_code == 1 and "needs --prior" in result.output
    result = runner.invoke(app, [*[a for a in base if a != "--prior"], "--backing-start", "-o", str(tmp_path / "backing")])
    assert result.exit_code == 1 and "needs --prior" in result.output
    result = runner.invoke(app, [*base, "--data", str(data), "-o", str(tmp_path / "nosidecar")])
    assert result.exit_code == 1 and "volume_cli.train.priors" in result.output
    write_prior_sidecars(data)
    result = runner.invoke(app, [*base, "--data", str(data), "-o", str(tmp_path / "run"), "--export", str(tmp_path / "w"),
                                 "--backing-start", "--export-colour-steps", "2"])
    assert result.exit_code == 0, result.output
    model, card = U.load_weights(tmp_path / "w" / "unet.safetensors")
    assert model.prior and card["config"]["prior"] is True and card["validation"]["count"] == 1
    assert model.backing_start and card["config"]["backing_start"] is True
    assert U.load_unet_predictor(tmp_path / "w" / "unet.safetensors").colour_steps == 2
    # The ablation: the same (convert's) crops, no prior channels.
    ablation = [a for a in base if a != "--prior"] + ["--convert-framing", "--data", str(data)]
    result = runner.invoke(app, [*ablation, "-o", str(tmp_path / "ablation"), "--export", str(tmp_path / "w2")])
    assert result.exit_code == 0, result.output
    model, card = U.load_weights(tmp_path / "w2" / "unet.safetensors")
    assert not model.prior and card["config"]["convert_framing"] is True and card["architecture"]["prior"] is None
    assert not model.backing_start and card["inference"]["colour_steps"] == 0


def test_the_input_view_target_is_resampled_into_converts_camera():
    """View 0's target moved into a camera with the same centre, turned 3 degrees and zoomed 10 %
    (what convert's framing does to the generator's): a pixel's depth names the same 3D point that
    the old view saw there, and the same camera changes nothing."""
    from volume_cli import camera
    from volume_cli.train.priors import input_view_in

    size = 48
    K_old = camera.intrinsics(60.0, 60.0, 24.0, 24.0)
    v, u = np.mgrid[0:size, 0:size] + 0.5
    plane = 0.6 + 0.002 * (u - 24.0)  # a surface tilted across the view, metres

    def plane_at(pixels):
        return 0.6 + 0.002 * (pixels[:, 0] - 24.0)

    alpha = ((u - 24) ** 2 + (v - 24) ** 2 < 18 ** 2).astype(np.uint8) * 255
    rgb = (alpha[..., None] // 255 * np.array([200, 100, 50])).astype(np.uint8)
    sample = {"crop": np.zeros((size, size, 3), np.uint8), "target_rgb": rgb[None], "target_alpha": alpha[None],
              "target_depth": np.where(alpha > 0, plane, 0.0)[None].astype(np.float32), "target_K": K_old[None],
              "target_w2c": np.eye(4)[None]}
    same = input_view_in(sample, K_old, np.eye(3))
    np.testing.assert_array_equal(same["rgb"], rgb)
    np.testing.assert_array_equal(same["alpha"], alpha)
    np.testing.assert_allclose(same["depth"], sample["target_depth"][0], atol=1e-6)

    turn = np.radians(3.0)
    R = np.array([[np.cos(turn), 0, np.sin(turn)], [0, 1, 0], [-np.sin(turn), 0, np.cos(turn)]])
    K = camera.intrinsics(66.0, 66.0, 24.0, 24.0)
    moved = input_view_in(sample, K, R)
    assert np.allclose(moved["w2c"][:3, :3], R) and np.allclose(moved["K"], K)
    inner = (moved["alpha"] == 255) & (moved["depth"] > 0)
    assert inner.sum() > 500
    ys, xs = np.nonzero(inner)
    pixels = np.stack([xs + 0.5, ys + 0.5], axis=1)
    points_new = camera.unproject(K, pixels, moved["depth"][ys, xs])
    points_old = points_new @ R  # R_old R^T with R_old = I: new camera -> old camera
    seen_at = camera.project(K_old, points_old)
    # Nearest sampling of a surface whose depth changes 2 mm a pixel: within ~1 mm.
    np.testing.assert_allclose(points_old[:, 2], plane_at(seen_at), atol=1.2e-3)
    # The colour is carried with the point: the disc's pixels stay the disc's colour.
    np.testing.assert_array_equal(moved["rgb"][inner], np.broadcast_to([200, 100, 50], (inner.sum(), 3)))


def test_backing_start_begins_as_the_geometric_predictors_front_and_backing_layers(tmp_path):
    """With ``backing_start`` an untrained prior network's front splats are BACKING_START_FRONT_PX
    crop pixels at their own depth and its back layer is a backing: on each front splat's ray
    BACKING_START_BEHIND_M farther in z, BACKING_START_BACK_PX at its own depth, as opaque as the
    front (the person mask); the constants are the geometric predictor's. A trained back depth
    follows the front one; the card records the start; it needs the prior."""
    from volume_cli.predictors import geometric as geo
    from volume_cli.predictors import unet as U

    assert (U.BACKING_START_FRONT_PX, U.BACKING_START_BACK_PX, U.BACKING_START_BEHIND_M) == (
        geo.PIXEL_SIGMA, geo.BACKING_SIGMA, geo.BACKING_BEHIND_M)
    size, d = 16, 0.6
    K, images, prior = _one_crop(size, d)
    raw = _untrained_raw(size)
    n = size * size
    args = (images, K, torch.tensor([d]), prior)
    g = U.to_gaussians(raw, *args, front_size_at_own_depth=True, backing_start=True)
    front, back = g.means[0, :n], g.means[0, n:]
    torch.testing.assert_close(front, U.to_gaussians(raw, *args, front_size_at_own_depth=True).means[0, :n])  # the prior's surface
    torch.testing.assert_close(back[:, 2], front[:, 2] + U.BACKING_START_BEHIND_M, atol=1e-6, rtol=0)
    torch.testing.assert_close(back[:, :2] / back[:, 2:], front[:, :2] / front[:, 2:], atol=1e-6, rtol=0)  # the same ray
    px = g.log_scales[0].exp() * K[0, 0, 0] / g.means[0, :, 2:]  # [2 S S, 3] crop pixels at each splat's depth
    torch.testing.assert_close(px[:n], torch.full((n, 3), U.BACKING_START_FRONT_PX), atol=1e-4, rtol=0)
    torch.testing.assert_close(px[n:], torch.full((n, 3), U.BACKING_START_BACK_PX), atol=1e-4, rtol=0)
    torch.testing.assert_close(g.opacity_logits[0, n:], g.opacity_logits[0, :n])
    deeper = raw.clone()
    deeper[:, U.HEAD_SLICES[("depth", 0)]] += 0.2 * torch.linspace(-1, 1, size)[None, None, :, None]
    bent = U.to_gaussians(deeper, *args, front_size_at_own_depth=True, backing_start=True).means[0]
    torch.testing.assert_close(bent[n:, 2], bent[:n, 2] + U.BACKING_START_BEHIND_M, atol=1e-6, rtol=0)
    _card_records_and_needs_the_prior(tmp_path, "backing_start")


def test_a_backing_start_predictor_fits_both_layers_colours_inside_the_frame():
    """The predictor of a backing-start network drops splats fainter than the geometric
    predictor's person threshold, fits the front and the back layer's colours (as the geometric
    predictor fits front and backing), only where the crop is inside the frame, and its
    input-view render gets closer to the crop; geometry is untouched."""
    from volume_cli.metrics import psnr
    from volume_cli.predictors import unet as U
    from volume_cli.predictors.base import CropBatch
    from volume_cli.render import render

    size, d = 32, 0.6
    K, images, prior = _one_crop(size, d)
    prior[:, CH["person"]] = 0.999  # all person: every splat is opaque
    prior[:, CH["proxy_depth"]] = torch.linspace(-0.3, 0.3, size)[None, None, :]  # a smooth surface
    prior[:, CH["person"], : size // 4] = 0.05  # the room above the head: dropped, not a faint card
    valid = torch.ones(1, size, size, dtype=torch.bool)
    valid[0, :, : size // 2] = False
    torch.manual_seed(0)
    model = U.UNet((16, 16, 32, 32, 32), prior=True, front_size_at_own_depth=True, backing_start=True)
    with torch.no_grad():
        model.head.weight.zero_()

    class Fixed(U.UNetPredictor):
        def prior_inputs(self, batch):
            return prior, [None], [prior[0, CH["person"]].numpy()]

    batch = CropBatch(images=images, valid=valid, K=K, landmarks=torch.zeros(1, 478, 3),
                      head_center=torch.tensor([[0.0, 0.0, d]]))
    plain = Fixed(model).predict(batch)
    fitted = Fixed(model, colour_steps=2).predict(batch)
    for name in ("means", "quats", "log_scales", "opacity_logits"):
        torch.testing.assert_close(getattr(fitted, name), getattr(plain, name))
    n = size * size
    changed = (fitted.sh - plain.sh).abs().flatten(-2).amax(-1)[0].reshape(2, size, size)
    assert bool((changed[:, :, : size // 2] == 0).all())
    assert bool((changed[0, :, size // 2:] > 0).any()) and bool((changed[1, :, size // 2:] > 0).any())
    opacity = torch.sigmoid(plain.opacity_logits[0]).reshape(2, size, size)
    assert bool((opacity[:, : size // 4] < 1.0 / 255).all()) and bool((opacity[:, size // 4:] > 0.9).all())
    target = images[0].permute(1, 2, 0)
    inside = valid[0].clone()
    inside[: size // 4 + 2] = False
    inside[:, size // 2: size // 2 + 2] = False  # the frame's edge mixes in the unfitted half
    scores = [psnr(render(g[0], torch.eye(4)[None], K, size, size).rgb[0], target, inside) for g in (plain, fitted)]
    assert scores[1] > scores[0] + 1.0, scores


@needs_synth
def test_a_prior_predictor_with_the_hidden_side_adds_splats_the_input_camera_does_not_see(tmp_path):
    """``inference.hidden_side`` in the card: the predictor appends the geometric predictor's
    unseen-side splats of the fitted head after the network's two layers (the same slots on every
    crop); some are used on a fitted synthetic head, and none changes the input view."""
    from volume_cli.pipeline import crop_batch
    from volume_cli.predictors import unet as U
    from volume_cli.render import render

    sample = _sample(3)
    fc = _framed(sample["input_image"], sample["input_K"], 64)
    U.save_weights(_prior_model(), tmp_path / "unet.safetensors",
                   {"config": {"size": 64}, "steps": 0, "inference": {"hidden_side": True}})
    with_side = U.load_unet_predictor(tmp_path / "unet.safetensors")
    assert with_side.hidden_side
    batch = crop_batch([fc], "cpu")
    g = with_side.predict(batch)
    plain = U.UNetPredictor(with_side.model, network_size=with_side.network_size).predict(crop_batch([fc], "cpu"))
    with_side.close()
    n = 2 * 64 * 64
    assert g.means.shape[1] == n + with_side._hidden_slots
    for name in ("means", "opacity_logits", "sh"):
        torch.testing.assert_close(getattr(g, name)[:, :n], getattr(plain, name))
    used = torch.sigmoid(g.opacity_logits[0, n:]) > 0.5
    assert int(used.sum()) > 100
    K = batch.K
    a, b = (render(x[0], torch.eye(4)[None], K, 64, 64) for x in (g, plain))
    diff = (a.rgb - b.rgb).abs()  # behind the opaque front, but the person mask's soft edge shows a few
    assert float(diff.mean()) < 1e-3 and float((diff > 0.02).float().mean()) < 0.005, (float(diff.mean()), float(diff.max()))
    with pytest.raises(ValueError, match="prior"):
        U.UNetPredictor(U.UNet((16, 16, 32, 32, 32)), hidden_side=True)
