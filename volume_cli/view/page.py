"""What the viewer page reads: ``view.json`` (the time line, the camera, the orbit centre) and each
frame as ``.spz`` bytes, made from a loaded ``Sequence``. The server and the static export both
lay them out the same way, so the page has one code path:

    index.html              the page (static/index.html)
    assets/...              its script, style and the vendored renderer (static/)
    view.json               ``view_description``
    frames/NNNNNN.spz       ``frame_url``; frame NNNNNN is the sequence's NNNNNN-th file, not the source index
    source<ext>             the source video, when the page shows it beside the splats
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from volume_cli.formats import Sequence
from volume_cli.formats.spz import encode_spz
from volume_cli.gaussians import Gaussians

STATIC_DIR = Path(__file__).resolve().parent / "static"
VIEW_JSON = "view.json"
VIEW_VERSION = 1
BACKGROUND = "#202124"  # the page's background (viewer.css) behind the splats


def frame_url(i: int) -> str:
    return f"frames/{i:06d}.spz"


def source_video(sequence: Sequence) -> Path | None:
    """The readable source video of a sequence, or None (images, a single splat file, a moved file)."""
    manifest = sequence.manifest
    if manifest is None or manifest.source.kind != "video":
        return None
    path = Path(manifest.source.path)
    if not path.is_absolute():
        path = sequence.root / path
    try:
        with open(path, "rb"):
            return path
    except OSError:
        return None


def video_name(video: Path) -> str:
    return "source" + (video.suffix.lower() or ".mp4")


def view_description(
    sequence: Sequence,
    *,
    loop: bool,
    video: Path | None,
    side_by_side: bool,
    splat_counts: list[int] | None = None,
) -> dict:
    """``view.json``: frames (time, url, splat count) in time order, where the time line ends, the
    input camera (image size, intrinsics), the orbit centre (OpenCV frame, metres), playback
    options. ``splat_counts`` (one per frame) when the manifest does not give them."""
    manifest = sequence.manifest
    single = sequence.read_frame(0) if manifest is None else None  # a lone splat file says nothing else
    if single is not None and splat_counts is None:
        splat_counts = [single.count]
    frames = []
    for i, frame in enumerate(sequence.frames):
        # The listing's rows are in the order of sequence.frames.
        count = splat_counts[i] if splat_counts is not None else manifest.frames.num_splats[i]
        frames.append({"t": frame.time_s, "url": frame_url(i), "splats": int(count)})
    frames.sort(key=lambda f: f["t"])
    times = [f["t"] for f in frames]
    if manifest is not None and manifest.source.fps:
        step = 1.0 / manifest.source.fps
    else:
        step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    if manifest is not None:
        W, H = manifest.image_size
        K = manifest.intrinsics.K
        centres = manifest.frames.head_center
        target = np.median(centres, axis=0).tolist() if len(centres) else [0.0, 0.0, 0.5]
        title = Path(manifest.source.path).name
    else:
        W = H = 512
        K = None
        target = orbit_centre(single)
        title = sequence.frames[0].path.name
    return {
        "version": VIEW_VERSION,
        "title": title,
        "frames": frames,
        "end_s": times[-1] + step,
        "image_size": [int(W), int(H)],
        "intrinsics": _intrinsics(K, W, H),
        "target": target,
        "loop": bool(loop),
        "video": video_name(video) if video is not None else None,
        "side_by_side": bool(side_by_side and video is not None),
        "background": BACKGROUND,
    }


def _intrinsics(K, W: int, H: int) -> dict:
    if K is None:  # a single splat file: a 50-degree camera
        f = 0.5 * H / np.tan(np.radians(25.0))
        return {"fx": f, "fy": f, "cx": W / 2, "cy": H / 2}
    return {"fx": K[0][0], "fy": K[1][1], "cx": K[0][2], "cy": K[1][2]}


def orbit_centre(gaussians: Gaussians) -> list[float]:
    """For a splat file without a manifest: the median of its opaque splats' centres."""
    means = gaussians.means.numpy()
    opaque = gaussians.opacities().numpy() > 0.5
    return np.median(means[opaque] if opaque.any() else means, axis=0).tolist()


class FrameCache:
    """``.spz`` bytes of a sequence's frames for the server: encoded on request or ahead of it on
    worker threads (gzip and numpy release the GIL), the most recently used kept within a byte
    budget so a long sequence is never held whole."""

    def __init__(self, sequence: Sequence, *, budget_bytes: int = 512 << 20, workers: int = 2):
        self.sequence = sequence
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._done: OrderedDict[int, bytes] = OrderedDict()
        self._pending: dict[int, Future] = {}
        self._bytes = 0
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spz")

    def get(self, i: int) -> bytes:
        """Frame i's bytes (blocks while it is encoded). Raises IndexError, or the ValueError of a
        frame file that cannot be read."""
        if not 0 <= i < len(self.sequence.frames):
            raise IndexError(i)
        with self._lock:
            if i in self._done:
                self._done.move_to_end(i)
                return self._done[i]
            future = self._pending.get(i) or self._submit(i)
        return future.result()

    def prefetch(self, first: int, count: int) -> None:
        """Start encoding frames first .. first + count - 1 (wrapping) that are not cached yet."""
        n = len(self.sequence.frames)
        with self._lock:
            for k in range(min(count, n)):
                i = (first + k) % n
                if i not in self._done and i not in self._pending:
                    self._submit(i)

    def warm(self) -> None:
        """Encode frames from the first on, one at a time on a background thread, until half the
        budget is used: by the time a browser opens the page, the start of the sequence (all of a
        short one) is ready. Requests do not queue behind it (they use the pool)."""
        threading.Thread(target=self._warm, name="spz-warm", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _warm(self) -> None:
        for i in range(len(self.sequence.frames)):
            with self._lock:
                if self._closed or self._bytes > self.budget_bytes // 2:
                    return
                if i in self._done or i in self._pending:
                    continue
                future: Future = Future()
                self._pending[i] = future
            try:
                future.set_result(self._encode(i))
            except Exception as e:  # noqa: BLE001 (handed to whoever asks for the frame)
                future.set_exception(e)

    def _submit(self, i: int) -> Future:  # with the lock held
        future = self._pool.submit(self._encode, i)
        self._pending[i] = future
        return future

    def _encode(self, i: int) -> bytes:
        try:
            data = encode_spz(self.sequence.read_frame(i), compresslevel=1)
        except Exception:
            with self._lock:
                self._pending.pop(i, None)
            raise
        with self._lock:
            self._pending.pop(i, None)
            self._done[i] = data
            self._bytes += len(data)
            while self._bytes > self.budget_bytes and len(self._done) > 1:
                _, old = self._done.popitem(last=False)
                self._bytes -= len(old)
        return data
