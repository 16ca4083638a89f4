"""LPIPS (volume_cli.perceptual) against the stlpips-pytorch wheel's own implementation, plus the
properties a metric and a loss need: zero on identical images, monotone in noise, symmetric, masks,
gradients, and boundary checks.

The wheel's modules import torchvision, torchsummary and IPython at import time, none of which we
can install beside our torch. The shift-tolerant AlexNet path touches none of them when it runs
(torchvision's models are used only by the other variants, ``embed`` and ``summary`` only for
debugging), so in this file only those three are replaced by empty stub modules while the wheel is
imported, and the wheel's LPIPS then runs unchanged as the reference.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import math
import sys
import types

import pytest
import torch

from volume_cli import perceptual
from volume_cli.perceptual import LPIPS, MIN_SIZE, load_lpips

pytest.importorskip("stlpips_pytorch", reason="needs the stlpips-pytorch wheel (its weight file)")


@pytest.fixture(scope="module")
def reference():
    """The wheel's ST-LPIPS (alex, shift_tolerant, its default 3-tap blur), imported with stubs."""
    stubs = {
        "torchvision": types.ModuleType("torchvision"),
        "torchvision.models": types.ModuleType("torchvision.models"),
        "torchsummary": types.ModuleType("torchsummary"),
        "IPython": types.ModuleType("IPython"),
    }
    stubs["torchvision"].models = stubs["torchvision.models"]
    stubs["torchsummary"].summary = None
    stubs["IPython"].embed = None
    with pytest.MonkeyPatch.context() as mp:
        for name, module in stubs.items():
            mp.setitem(sys.modules, name, module)
        stlpips = importlib.import_module("stlpips_pytorch.stlpips")
        net = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False).eval()
    # the wheel's modules hold the stubs: let nothing else find them
    for name in [n for n in sys.modules if n.startswith("stlpips_pytorch.")]:
        del sys.modules[name]
    # it loads with strict=False: make sure every tensor in the file really landed in it
    file_state = torch.load(perceptual.weights_path(), map_location="cpu", weights_only=True)
    net_state = net.state_dict()
    for key, value in file_state.items():
        assert torch.equal(net_state[key], value), key
    net.requires_grad_(False)
    return net


@pytest.fixture(scope="module")
def reference64(reference):
    return copy.deepcopy(reference).double()


@pytest.fixture(scope="module")
def ours() -> LPIPS:
    return LPIPS()


@pytest.fixture(scope="module")
def ours64(ours) -> LPIPS:
    return copy.deepcopy(ours).double()


def _pairs(b: int, h: int, w: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Image pairs [b, 3, h, w] in [0, 1]: random, a smooth image and its noisy copy, the same shifted
    by one pixel, and a checkerboard against its blur."""
    g = torch.Generator().manual_seed(h * 1000 + w + b)
    ys = torch.linspace(0, 1, h)[:, None]
    xs = torch.linspace(0, 1, w)[None, :]
    phase = torch.rand(b, 3, 1, 1, generator=g) * 6
    smooth = 0.5 + 0.4 * torch.sin(7 * xs + 5 * ys + phase) * torch.cos(3 * ys - 4 * xs + phase)  # [b, 3, h, w]
    noisy = (smooth + 0.1 * torch.randn(smooth.shape, generator=g)).clamp(0, 1)
    shifted = torch.roll(smooth, 1, dims=-1)
    checker = ((torch.arange(h)[:, None] // 2 + torch.arange(w)[None, :] // 2) % 2).float().expand(b, 3, h, w)
    blurred = torch.nn.functional.avg_pool2d(checker, 5, stride=1, padding=2, count_include_pad=False)
    rand_a = torch.rand(b, 3, h, w, generator=g)
    rand_b = torch.rand(b, 3, h, w, generator=g)
    return [("random", rand_a, rand_b), ("noisy", smooth, noisy), ("shifted", smooth, shifted),
            ("checker", checker, blurred)]


# float32: ours runs both images in one batch, the wheel one at a time, so the convolutions may sum in
# another order; measured <= 7e-7 relative on these pairs, 1e-4 leaves room for other CPUs' kernels.
# float64: the same arithmetic, rounding only (measured <= 3e-15 relative); smaller images there,
# since float64 convolutions are slow on CPU.
@pytest.mark.parametrize("dtype, rtol, b, h, w", [
    (torch.float32, 1e-4, 2, 64, 64), (torch.float32, 1e-4, 1, 50, 70), (torch.float32, 1e-4, 1, MIN_SIZE, MIN_SIZE),
    (torch.float64, 1e-10, 2, 32, 32), (torch.float64, 1e-10, 1, 25, 38),
])
def test_agrees_with_the_wheels_implementation(request, dtype, rtol, b, h, w):
    suffix = "" if dtype == torch.float32 else "64"
    ref, net = request.getfixturevalue("reference" + suffix), request.getfixturevalue("ours" + suffix)
    for name, a, t in _pairs(b, h, w):
        a, t = a.to(dtype), t.to(dtype)
        expected = ref(a, t, normalize=True).flatten()  # normalize=True: their flag for [0, 1] input
        got = net(a, t)
        assert got.shape == (b,) and got.dtype == dtype
        assert (expected > 1e-3).all(), name  # a pair worth comparing
        torch.testing.assert_close(got, expected, rtol=rtol, atol=0, msg=lambda m, name=name: f"{name}: {m}")


def test_input_gradient_agrees_with_the_wheels(reference64, ours64):
    """Both are autograd; this pins that the loss's gradient is the published metric's gradient."""
    _, a, t = _pairs(1, 32, 28)[1]
    a, t = a.double(), t.double()
    grads = []
    for loss in (lambda x: reference64(x, t, normalize=True).sum(), lambda x: ours64(x, t).sum()):
        x = a.clone().requires_grad_(True)
        loss(x).backward()
        grads.append(x.grad)
    # float64 rounding only: measured 1e-17 absolute on gradients up to 7e-3
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-15)


def test_identical_images_give_zero_and_distance_is_symmetric(ours):
    _, a, t = _pairs(2, 64, 64)[1]
    assert torch.allclose(ours(a, a), torch.zeros(2), atol=1e-7)  # float32 rounding of a zero difference
    torch.testing.assert_close(ours(a, t), ours(t, a), rtol=1e-6, atol=0)  # the sum order of a batch


def test_distance_grows_with_noise(ours):
    _, smooth, _ = _pairs(1, 64, 64)[1]
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(smooth.shape, generator=g)
    d = [float(ours(smooth, (smooth + s * noise).clamp(0, 1))) for s in (0.02, 0.08, 0.25)]
    assert 0 < d[0] < d[1] < d[2], d


def test_mask_on_an_identical_region_gives_about_zero(ours):
    """32 x 160 images that differ only in columns 0..31; a mask on columns 128.. lies farther than
    a stage-5 feature sees (~50 pixels each way), so the masked distance is rounding only."""
    _, smooth, _ = _pairs(1, 32, 160)[1]
    other = smooth.clone()
    other[..., :32] = torch.rand(other[..., :32].shape, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 32, 160, dtype=torch.bool)
    mask[..., 128:] = True
    assert float(ours(smooth, other)) > 0.05
    assert float(ours(smooth, other, mask)) < 1e-6
    # a mask over the difference weighs it more than the whole image does
    near = torch.zeros_like(mask)
    near[..., :48] = True
    assert float(ours(smooth, other, near)) > float(ours(smooth, other))


def test_full_mask_and_float_mask_equal_no_mask(ours):
    _, a, t = _pairs(2, 32, 40)[1]
    full = torch.ones(2, 32, 40, dtype=torch.bool)
    torch.testing.assert_close(ours(a, t, full), ours(a, t), rtol=1e-6, atol=0)  # mean vs weighted sum
    half = torch.zeros(2, 32, 40, dtype=torch.bool)
    half[:, :, :20] = True
    torch.testing.assert_close(ours(a, t, half.float()), ours(a, t, half), rtol=0, atol=0)


def test_gradient_flows_to_the_image_and_not_to_the_weights(ours):
    _, a, t = _pairs(2, 32, 32)[1]
    x = a.clone().requires_grad_(True)
    ours(x, t).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in ours.parameters())


def test_load_lpips_is_shared_frozen_and_in_eval_mode():
    net = load_lpips()
    assert net is load_lpips("cpu") is load_lpips(torch.device("cpu"))
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_missing_wheel_says_what_to_install(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "stlpips_pytorch" else find_spec(name, *args))
    with pytest.raises(RuntimeError, match=r"pip install stlpips-pytorch==0\.0\.2"):
        perceptual.weights_path()


def test_smallest_size_works_and_one_less_is_refused(ours):
    a = torch.rand(1, 3, MIN_SIZE, MIN_SIZE + 5)
    assert math.isfinite(float(ours(a, a.flip(-1))))
    with pytest.raises(ValueError, match="at least"):
        ours(a[..., :-1, :], a[..., :-1, :])


@pytest.mark.parametrize("image, target, mask, match", [
    (torch.rand(3, 32, 32), torch.rand(3, 32, 32), None, "image: expected"),
    (torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32), None, "image: expected"),
    (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 31), None, "target: expected"),
    (torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32), None, "target: expected"),
    (torch.ones(1, 3, 32, 32, dtype=torch.uint8), torch.ones(1, 3, 32, 32, dtype=torch.uint8), None, "float"),
    (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.ones(32, 32, dtype=torch.bool), "mask: expected"),
    (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.ones(1, 32, 32, dtype=torch.int64), "mask: expected"),
    (torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.zeros(2, 32, 32).index_fill(0, torch.tensor([0]), 1.0),
     "1 of 2 masks cover no pixel"),
])
def test_bad_inputs_raise_value_error(ours, image, target, mask, match):
    with pytest.raises(ValueError, match=match):
        ours(image, target, mask)
