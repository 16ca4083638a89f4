"""`volume render` orchestration: a splat sequence -> camera path -> rasterise -> encode.

The camera paths (render/paths.py) move around a FIXED target, the median head centre of the
sequence, so the person's real motion stays visible. Frame i is shown at its own time t_i from the
manifest (seconds since the first frame), so an orbit sweeps in step with the recording:
yaw(t) = DEG sin(2 pi t / period). A single splat file is rendered as a loop of ``frames`` copies
(one period by default; one frame for fixed ``--views``, which would repeat the same picture).
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from volume_cli import camera
from volume_cli.concurrency import prefetch
from volume_cli.formats.manifest import Sequence
from volume_cli.gaussians import Gaussians
from volume_cli.pipeline import Progress
from volume_cli.render import Backend, render, resolve_backend
from volume_cli.render.paths import orbit_viewmats, parallax_cameras, render_intrinsics, sweep
from volume_cli.video import InputError, open_source

# For a single splat file there is no manifest: the head centre is taken this far behind the
# median splat (the splats lie on the face's surface; the centre of the head is behind it).
_CENTRE_BEHIND_SURFACE_M = 0.08


class PathKind(str, enum.Enum):
    orbit = "orbit"
    parallax = "parallax"
    views = "views"


@dataclass(frozen=True)
class RenderSettings:
    path: PathKind = PathKind.orbit
    orbit_deg: float = 30.0
    parallax_m: float = 0.05
    views_deg: tuple[float, ...] = (-40.0, 0.0, 40.0)
    period_s: float = 4.0
    size: int = 512
    fps: float | None = None  # None: the sequence's own frame rate (30 for a single file)
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    side_by_side: bool = False
    loop_frames: int | None = None  # frames to render of a single file (None: one period)
    extent_m: float = camera.CROP_EXTENT_M * 1.2  # a little wider than the crop, for orbit margins


@dataclass
class RenderReport:
    frames: int
    width: int
    height: int
    fps: float
    seconds: float
    render_seconds: float


def parse_background(text: str) -> tuple[float, float, float]:
    """'black', 'white', 'gray', 'green', '#RRGGBB' or 'R,G,B' (0-255) -> rgb in [0, 1]."""
    names = {"black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "grey": (128, 128, 128), "green": (0, 177, 64)}
    t = text.strip().lower()
    if t in names:
        rgb = names[t]
    elif re.fullmatch(r"#[0-9a-f]{6}", t):
        rgb = tuple(int(t[i : i + 2], 16) for i in (1, 3, 5))
    elif re.fullmatch(r"\d{1,3},\d{1,3},\d{1,3}", t.replace(" ", "")):
        rgb = tuple(int(v) for v in t.replace(" ", "").split(","))
        if max(rgb) > 255:
            raise ValueError(f"background components must be 0-255, got {text!r}")
    else:
        raise ValueError(f"background must be a name (black, white, gray, green), #RRGGBB or R,G,B; got {text!r}")
    return tuple(c / 255.0 for c in rgb)


def target_centre(seq: Sequence) -> np.ndarray:
    """The point the cameras look at [3]: the median head centre of the sequence's frames."""
    if seq.manifest is not None and len(seq.manifest.frames):
        return np.median(seq.manifest.frames.head_center, axis=0)
    means = seq.read_frame(0).means.double().numpy()
    if len(means) == 0:
        raise ValueError(f"{seq.frames[0].path}: no splats to render")
    centre = np.median(means, axis=0)
    return centre + _CENTRE_BEHIND_SURFACE_M * centre / np.linalg.norm(centre)


def frame_times(seq: Sequence, settings: RenderSettings) -> tuple[list[int], np.ndarray, float]:
    """Which sequence frame to show at each output frame, at which time (s), and the output fps."""
    if seq.manifest is None:
        fps = settings.fps or 30.0
        # Fixed views of one file are one picture: a loop of identical frames only when asked for.
        one_period = 1 if settings.path is PathKind.views else max(1, round(settings.period_s * fps))
        count = settings.loop_frames or one_period
        return [0] * count, np.arange(count) / fps, fps
    times = np.array([f.time_s for f in seq.frames])
    times = times - times[0]
    if settings.fps:
        fps = settings.fps
    elif len(times) > 1:
        # The spacing of the converted frames (with --every 2 it is half the source rate).
        fps = 1.0 / float(np.median(np.diff(times)))
    else:
        fps = seq.fps or 30.0
    return list(range(len(seq.frames))), times, fps


def cameras_at(t: float, centre: np.ndarray, settings: RenderSettings) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera [C, 4, 4] and intrinsics [C, 3, 3] of the C panels at time ``t`` seconds."""
    K = render_intrinsics(settings.size, float(np.linalg.norm(centre)), settings.extent_m)
    phase = float(sweep([t], 1.0, settings.period_s)[0])
    if settings.path is PathKind.orbit:
        views = orbit_viewmats(centre, [settings.orbit_deg * phase])
    elif settings.path is PathKind.parallax:
        return parallax_cameras(centre, K, [settings.parallax_m * phase])
    else:
        views = orbit_viewmats(centre, list(settings.views_deg))
    return views, np.repeat(K[None], len(views), axis=0)


def _source_frames(seq: Sequence, indices: list[int]) -> Iterator[np.ndarray]:
    """The source images of the sequence frames (for --side-by-side), decoded in one pass."""
    m = seq.manifest
    if m is None:
        raise InputError("--side-by-side needs a sequence folder (a single splat file has no source)")
    src_path = Path(m.source.path)
    if not src_path.exists():
        raise InputError(f"--side-by-side needs the source {src_path}, which is not there any more")
    # Sequence frames are distinct source frames in increasing order: one decoding pass serves them.
    wanted = iter(seq.frames[i].index for i in indices)
    next_index = next(wanted, None)
    for frame in open_source(src_path):
        if frame.index == next_index:
            yield frame.image
            next_index = next(wanted, None)
            if next_index is None:
                return
    if next_index is not None:
        raise InputError(f"{src_path}: frame {next_index} of the sequence is not in the source any more")


def output_size(seq: Sequence, settings: RenderSettings) -> tuple[int, int]:
    """(width, height) of every output image: the panels side by side, the source panel first."""
    panels = len(settings.views_deg) if settings.path is PathKind.views else 1
    width = settings.size * panels
    if settings.side_by_side and seq.manifest is not None:
        w, h = seq.manifest.image_size
        width += _source_panel_width(w, h, settings.size)
    return width, settings.size


def _source_panel_width(w: int, h: int, height: int) -> int:
    return max(2, int(round(w * height / h / 2)) * 2)  # even, for yuv420p video


def _panel_from_source(image: np.ndarray, height: int) -> np.ndarray:
    """The source frame scaled to ``height`` with an even width."""
    h, w = image.shape[:2]
    width = _source_panel_width(w, h, height)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)


def render_sequence(seq: Sequence, writer, settings: RenderSettings, *, device: str, progress: Progress | None = None) -> RenderReport:
    """Render every output frame of ``seq`` into ``writer`` (VideoWriter or PngWriter, opened by
    the caller, who also closes or aborts it)."""
    progress = progress or Progress()
    started = time.perf_counter()
    indices, times, fps = frame_times(seq, settings)
    centre = target_centre(seq)
    backend = resolve_backend(Backend.AUTO, device)
    sources = _source_frames(seq, indices) if settings.side_by_side else None

    def frames() -> Iterator[tuple[int, float, Gaussians]]:
        cached: tuple[int, Gaussians] | None = None
        for i, t in zip(indices, times):
            if cached is None or cached[0] != i:
                cached = (i, seq.read_frame(i).to(device))
            yield i, float(t), cached[1]

    render_s = 0.0
    width = height = 0
    last: tuple[tuple, list[np.ndarray]] | None = None  # (frame and cameras, their panels)
    # Encoding runs on its own thread, overlapped with the next frame's render (which leaves part
    # of a core idle); at most two frames wait for it, so memory stays flat.
    encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
    writes: list[Future] = []
    progress.start("Rendering", len(indices))
    loaded = prefetch(frames(), depth=4)
    try:
        for i, t, gaussians in loaded:
            r0 = time.perf_counter()
            views, Ks = cameras_at(t, centre, settings)
            key = (i, views.tobytes(), Ks.tobytes())
            if last is None or last[0] != key:  # the same splats from the same cameras: the same picture
                result = render(gaussians, views, Ks, settings.size, settings.size, background=settings.background, backend=backend)
                last = (key, list((result.rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()))
            panels = list(last[1])
            render_s += time.perf_counter() - r0
            if sources is not None:
                panels.insert(0, _panel_from_source(next(sources), settings.size))
            image = np.concatenate(panels, axis=1)
            height, width = image.shape[:2]
            while len(writes) >= 2:
                writes.pop(0).result()  # an encoding error is raised here
            writes.append(encoder.submit(writer.write, image))
            progress.advance()
        for f in writes:
            f.result()
    finally:
        loaded.close()  # its producer stopped: no reads into a sequence the caller may close
        encoder.shutdown(wait=True)  # nothing may touch the writer once we return: the caller may abort it
        progress.stop()
    return RenderReport(frames=len(indices), width=width, height=height, fps=fps, seconds=time.perf_counter() - started, render_seconds=render_s)
