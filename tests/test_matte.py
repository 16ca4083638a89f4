"""The learned person matte: a residual over MediaPipe's mask (so an untrained network IS that
mask), its weights' card check, its training loop, and its place in the geometric predictor."""

import json

import numpy as np
import pytest
import torch

from volume_cli.matte import model as matte_model
from volume_cli.matte.model import INPUT_CHANNELS, TRAINED_SIZE, MatteNet, PersonMatte, load_matte

from realdata import needs_real


def _maps(size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    crop = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    person = np.clip(1.2 - np.hypot(yy - size / 2, xx - size / 2) / (0.3 * size), 0, 1)
    head = person > 0.8
    shell = (person > 0.5) & ~head
    mesh = person > 0.9
    valid = np.ones((size, size), bool)
    valid[:, : size // 8] = False  # the crop ran off the frame on the left
    return crop, person * valid, head, shell, mesh, valid


@pytest.mark.parametrize("size", [TRAINED_SIZE, 64, 96, 40])
def test_untrained_matte_is_mediapipes_mask(size):
    """Zero residual at the start, at the trained side and at any other (resized) side: the
    coverage is MediaPipe's confidence (clamped as its logit is), 0 outside the frame. A network
    that read another channel as "person" would not return it."""
    crop, person, head, shell, mesh, valid = _maps(size)
    out = PersonMatte(MatteNet().eval()).coverage(crop, person, head, shell, mesh, valid)
    assert out.shape == (size, size) and out.dtype == np.float64
    expected = np.clip(person, matte_model.CLAMP, 1 - matte_model.CLAMP) * valid
    assert np.abs(out - expected).max() < 1e-5
    assert (out[~valid] == 0).all()


def test_residual_reaches_the_output_at_other_sizes():
    """A trained-looking residual (a constant bias, gated by MediaPipe's 4 p (1 - p)) moves the
    coverage by the same logit at the trained side and at a resized one: the resize path neither
    drops nor distorts it."""
    net = MatteNet().eval()
    with torch.no_grad():
        net.head[-1].bias.fill_(2.0)
    for size in (TRAINED_SIZE, 128, 320):
        crop, person, head, shell, mesh, valid = _maps(size)
        out = PersonMatte(net).coverage(crop, person, head, shell, mesh, valid)
        p = np.clip(person, matte_model.CLAMP, 1 - matte_model.CLAMP)
        gate = 4 * person * (1 - person)
        expected = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 2.0 * gate))) * valid
        # The zero-padded borders of the head's convolutions differ from 2 by a little; resized, the
        # gate is MediaPipe's mask resized to the trained side and the gated residual resized back.
        interior = np.zeros_like(valid)
        interior[4:-4, size // 8 + 4: -4] = True
        assert np.abs(out - expected)[interior].max() < (1e-4 if size == TRAINED_SIZE else 1e-2), size
        assert np.abs(out - np.clip(person, 1e-3, 1 - 1e-3) * valid)[interior].max() > 0.1  # it moved


def test_shipped_matte_loads_and_refuses_other_weights(tmp_path):
    net = load_matte()
    card = json.loads(matte_model.CARD_FILE.read_text())
    assert card["architecture"]["inputs"] == list(INPUT_CHANNELS)
    assert any(float(p.detach().abs().max()) > 0 for p in net.head[-1].parameters())  # trained: not the zero start
    tampered = tmp_path / "matte.safetensors"
    data = bytearray(matte_model.WEIGHTS_FILE.read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_matte(tampered)


def _toy_shards(folder, count=3, size=64):
    """Shards whose truth is MediaPipe's soft mask cut at 0.5 and shifted 4 px right: learnable
    from the inputs."""
    from volume_cli.predictors.prior_input import PRIOR_CHANNELS

    folder.mkdir()
    for k in range(count):
        crops, priors, valids, alphas = [], [], [], []
        for j in range(4):
            crop, person, head, shell, mesh, valid = _maps(size, seed=10 * k + j)
            valid[:] = True
            prior = np.zeros((len(PRIOR_CHANNELS), size, size), np.float16)
            for name, m in (("person", person), ("head", head), ("shell", shell), ("mesh", mesh)):
                prior[PRIOR_CHANNELS.index(name)] = m
            crops.append(crop)
            priors.append(prior)
            valids.append(valid)
            alphas.append((np.roll(person, 4, axis=1) > 0.5).astype(np.uint8) * 255)
        np.savez_compressed(folder / f"matte_{k:05d}.npz", crop=np.stack(crops), prior=np.stack(priors),
                            valid=np.stack(valids), alpha=np.stack(alphas), seed=np.arange(4))


def test_training_learns_a_shift_resumes_and_exports(tmp_path):
    from volume_cli.matte import training

    _toy_shards(tmp_path / "data")
    run = tmp_path / "run"
    args = ["--data", str(tmp_path / "data"), "-o", str(run), "--batch-size", "4", "--patch", "48", "--lr", "3e-3",
            "--val-shards", "1", "--warmup-steps", "10"]
    training.main(args + ["--steps", "60"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    first_val = training.validate(MatteNet(), training.load_shards([tmp_path / "data" / "matte_00002.npz"]))
    val = [row["validation"] for row in log if "validation" in row][-1]
    assert val["mae"] < 0.7 * first_val["mae"], (val, first_val)  # learned, on held-out crops
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 60
    with pytest.raises(SystemExit, match="--resume"):
        training.main(args + ["--steps", "60"])
    training.main(["-o", str(run), "--resume", "--steps", "70"])
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 70
    exported = training.export(run, tmp_path / "weights")
    net = load_matte(exported, tmp_path / "weights" / "matte.json")
    state = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_training_refuses_missing_data(tmp_path):
    from volume_cli.matte import training

    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no matte_"):
        training.main(["--data", str(tmp_path / "empty"), "-o", str(tmp_path / "run")])


@needs_real
def test_geometric_opacity_is_the_matte_coverage():
    """Asked for the matte, the geometric predictor's front opacities are the matte's coverage of its crop, given the
    same fitted head's masks, face mesh and valid mask it passes (an untrained matte: MediaPipe's
    mask, so with and without the matte agree; a biased one fades the outline's splats)."""
    from volume_cli.pipeline import crop_batch
    from volume_cli.predictors import geometric as geo

    from test_geometric import hopper_framed

    fc = hopper_framed(64)
    batch = crop_batch([fc], "cpu")
    n = 64 * 64
    with geo.GeometricPredictor(colour_steps=0, matte=False) as plain, geo.GeometricPredictor(colour_steps=0, matte=True) as matted:
        matted.matte = PersonMatte(MatteNet().eval())
        a = plain.predict(batch)[0].opacities()[:n]
        b = matted.predict(batch)[0].opacities()[:n]
        assert torch.allclose(a, b, atol=1e-4)
        with torch.no_grad():
            matted.matte.net.head[-1].bias.fill_(-3.0)
        c = matted.predict(batch)[0].opacities()[:n]
    # The residual is gated to MediaPipe's unsure band: there every splat fades, nowhere one grows.
    band = (a > 0.2) & (a < 0.8)
    assert band.sum() > 20 and bool((c[band] < a[band] - 0.05).all())
    assert bool((c <= a + 1e-6).all())
