"""`volume bench`: frames per second of each convert stage and end to end, and render times.

Each stage is timed on its own over the same frames (so the numbers add up to what one frame
costs), then the real pipeline runs end to end with its overlap (decoding and writing on threads).
Numbers are printed, never asserted: speed is measured here, not in tests.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from volume_cli import pipeline
from volume_cli.face import FaceFinder, head_state
from volume_cli.formats import SplatFormat, encode_splats
from volume_cli.framing import frame_crop
from volume_cli.predictors import Predictor
from volume_cli.render import Backend, render, resolve_backend
from volume_cli.render.paths import orbit_viewmats, render_intrinsics
from volume_cli.video import open_source


def machine_description(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if device == "cuda":
        text += f", {torch.cuda.get_device_name()}"
    return text


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else float("inf")


def bench_convert(source_path: Path, predictor: Predictor, *, frames: int, device: str, size: int = 256) -> dict:
    """Per-stage and end-to-end frames/s on the first ``frames`` frames of ``source_path``."""
    settings = pipeline.ConvertSettings(size=size, max_frames=frames)
    source = open_source(source_path, max_frames=frames)
    K = pipeline.original_intrinsics(source, settings)

    t0 = time.perf_counter()
    images = [f.image for f in source]
    decode_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    with FaceFinder(video=source.kind == "video") as finder:
        faces = [finder.find(im) for im in images]
    detect_s = time.perf_counter() - t0
    found = [(im, f) for im, f in zip(images, faces) if f is not None]
    if not found:
        raise ValueError(f"{source_path}: no face in the first {frames} frames")

    t0 = time.perf_counter()
    crops = [frame_crop(im, K, f, head_state(f, K), size) for im, f in found]
    crop_s = time.perf_counter() - t0

    # The whole head, as convert fits it: one identity for the clip, then each frame's pose,
    # expression and prior in its crop camera (timed per frame, identity apart).
    head = priors = None
    fit_ms = prior_ms = identity_ms = None
    if getattr(predictor, "use_head", False):
        from volume_cli.head.model import load_head_model
        from volume_cli.head.track import HeadTrack
        from volume_cli.predictors.geometric import mesh_depth_rasterizer

        head = HeadTrack(load_head_model(), mesh_depth_rasterizer(), clip=source.kind == "video")
        t0 = time.perf_counter()
        if head.clip:
            head.fit_identity([fc.landmarks for fc in crops])
        identity_ms = 1000 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        fits = [head.fitter.fit_frame(fc.landmarks) if head.clip else head.fitter.fit_still(fc.landmarks) for fc in crops]
        fit_ms = 1000 * (time.perf_counter() - t0) / len(crops)
        t0 = time.perf_counter()
        priors = [head.prior_of(fit, fc.cam.K, size)[0] for fit, fc in zip(fits, crops)]
        prior_ms = 1000 * (time.perf_counter() - t0) / len(crops)

    t0 = time.perf_counter()
    sets = []
    with torch.inference_mode():
        for i in range(0, len(crops), 8):
            batch = crops[i : i + 8]
            inputs = pipeline.crop_batch(batch, device)
            if head is not None:
                inputs.head_priors, inputs.head_texture = priors[i : i + 8], head.texture
            predicted = predictor.predict(inputs).to("cpu")
            sets += [pipeline.to_original_frame(predicted[j].prune(), fc.cam.R) for j, fc in enumerate(batch)]
    if device == "cuda":
        torch.cuda.synchronize()
    predict_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    sizes = [len(encode_splats(g, SplatFormat.ply)) for g in sets]
    encode_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = pipeline.convert(open_source(source_path, max_frames=frames), Path(tmp) / "seq", predictor, settings, device=device)
        e2e_s = time.perf_counter() - t0

    n = len(found)
    return {
        "frames": len(images),
        "frames_with_face": n,
        "splats_per_frame": int(np.mean([g.count for g in sets])),
        "ply_mb_per_frame": round(float(np.mean(sizes)) / 1e6, 2),
        "stages_fps": {
            "decode": _rate(len(images), decode_s),
            "face_mesh": _rate(len(images), detect_s),
            "crop": _rate(n, crop_s),
            "predict": _rate(n, predict_s),
            "encode_ply": _rate(n, encode_s),
        },
        "end_to_end_fps": _rate(report.frames_written, e2e_s),
        **({"head_ms": {"identity_per_clip": round(identity_ms, 1), "fit_per_frame": round(fit_ms, 2),
                        "prior_per_frame": round(prior_ms, 2)}} if head is not None else {}),
        "_splats": sets[0],
        "_head": head_state(found[0][1], K).center,
    }


def bench_render(splats, head_center: np.ndarray, *, device: str, sizes=(256, 512), repeats: int = 5) -> dict:
    """Milliseconds per rendered frame of real splats from a 30-degree orbit view, for every
    backend this machine runs (the compiled CPU one and the pure-torch reference side by side, in
    the same run; gsplat too on CUDA), and the compiled one's speed-up over pure torch. Each figure
    is the best of ``repeats`` after a warm-up: on a shared machine the best run is the one least
    disturbed, and both backends are measured alike."""
    backends = [Backend.NUMBA, Backend.TORCH]
    if device == "cuda" and resolve_backend(Backend.AUTO) is Backend.GSPLAT:
        backends.append(Backend.GSPLAT)
    out = {}
    for backend in backends:
        g = splats.to("cuda" if backend is Backend.GSPLAT else "cpu")  # time the rendering, not transfers
        for size in sizes:
            K = render_intrinsics(size, float(np.linalg.norm(head_center)), 0.48)
            view = orbit_viewmats(head_center, [30.0])
            with torch.no_grad():
                render(g, view, K[None], size, size, backend=backend)  # warm-up (and gsplat's first-use build)
                times = []
                for _ in range(repeats):
                    if g.means.is_cuda:
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    render(g, view, K[None], size, size, backend=backend)
                    if g.means.is_cuda:
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
            out[f"{backend.value}_{size}px_ms"] = round(1000 * min(times), 1)
    for size in sizes:
        out[f"numba_speedup_{size}px"] = round(out[f"torch_{size}px_ms"] / out[f"numba_{size}px_ms"], 1)
    return out


def bench_train_step(*, sizes=(64, 128), backends=(Backend.NUMBA, Backend.TORCH), batch_size: int = 4, views: int = 4,
                     repeats: int = 3) -> dict:
    """Seconds per training step (``volume train``'s: batch 4, the input view and 3 novel views,
    the stability pair, forward, losses, backward, Adam) for each rasteriser, on real training
    examples from the synthetic generator, the network starting from the shipped weights (so
    its splats are as opaque as a trained model's). Best of ``repeats`` after a warm-up step.
    Needs ``volume synth``'s EGL; returns {"skipped": reason} without it."""
    from volume_cli.predictors.unet import DEFAULT_WEIGHTS, load_weights
    from volume_cli.synth.assets import SynthAssetsError, data_root
    from volume_cli.synth.renderer import egl_status
    from volume_cli.train.data import collate, render_example
    from volume_cli.train.loop import TrainConfig, build, train_step

    ok, reason = egl_status()
    if not ok:
        return {"skipped": f"needs volume synth's offscreen EGL: {reason}"}
    try:
        data_root()
    except SynthAssetsError as exc:
        return {"skipped": f"needs volume synth's MakeHuman data: {exc}"}

    out = {}
    for size in sizes:
        batch = collate([render_example(1, i, size=size, views=views) for i in range(batch_size)])
        for backend in backends:
            config = TrainConfig(size=size, views=views, batch_size=batch_size, render_backend=backend.value)
            model, optimizer = build(config, "cpu")
            if DEFAULT_WEIGHTS.exists():
                model.load_state_dict(load_weights(DEFAULT_WEIGHTS)[0].state_dict())
            times = []
            for step in range(repeats + 1):
                t0 = time.perf_counter()
                train_step(model, optimizer, batch, config, step)
                times.append(time.perf_counter() - t0)
            out[f"{backend.value}_{size}px_s"] = round(min(times[1:]), 2)
        if Backend.NUMBA in backends and Backend.TORCH in backends:
            out[f"numba_speedup_{size}px"] = round(out[f"torch_{size}px_s"] / out[f"numba_{size}px_s"], 1)
    return out


def bench_network(model: torch.nn.Module, size: int, *, device: str, batches=(1, 8), repeats: int = 3) -> dict:
    """The U-Net alone at ``size`` x ``size``: parameters, GFLOP a frame (torch's FLOP counter, a
    multiply-add counted as 2) and frames/s at each batch size (best of ``repeats``, after a
    warm-up call)."""
    from torch.utils.flop_counter import FlopCounterMode

    from volume_cli.predictors.unet import IN_CHANNELS

    model = model.eval()
    x1 = torch.zeros(1, IN_CHANNELS, size, size, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x1)
    out = {"size": size, "parameters": sum(p.numel() for p in model.parameters()),
           "gflop_per_frame": float(f"{counter.get_total_flops() / 1e9:.4g}"), "frames_per_second": {}}
    for b in batches:
        x = torch.rand(b, IN_CHANNELS, size, size, device=device)
        with torch.inference_mode():
            model(x)  # warm-up (cuDNN autotuning, allocator)
            best = float("inf")
            for _ in range(repeats):
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(x)
                if device == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
        out["frames_per_second"][f"batch {b}"] = _rate(b, best)
    return out
