"""The head prior as a learned predictor's input (predictors.prior_input) and convert's view of the
training samples (train.priors): the channels follow the fitted head, stay out of what the frame
does not show, mirror and scale with the examples, and their sidecars resume."""

from __future__ import annotations

import functools

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
    from volume_cli.face import FaceFinder, head_state
    from volume_cli.framing import frame_crop

    with FaceFinder(video=False) as finder:
        face = finder.find(image)
    assert face is not None
    return frame_crop(image, K_in, face, head_state(face, K_in), size)


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
    ex = examples.example(0)
    assert ex["prior"].shape == (PRIOR_CHANNEL_COUNT, 64, 64) and torch.isfinite(ex["prior"]).all()
    plain = ShardExamples([data], run_seed=1, size=64, views=2)
    assert "prior" not in plain.example(0)
    # Convert's framing is not the generator's (MediaPipe's pose and distance are estimates).
    assert not np.array_equal(stored["crop_K"], plain.samples[0]["crop_K"])
    half = ShardExamples([data], run_seed=1, size=32, views=2, priors=True)
    assert half.example(0)["prior"].shape == (PRIOR_CHANNEL_COUNT, 32, 32)
