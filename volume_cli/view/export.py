"""`volume view SEQUENCE --export DIR`: the viewer page and the frames as a static folder that any
web server serves (``python -m http.server -d DIR``), laid out as ``page.py`` describes.

Nothing is written outside DIR. Every file is written atomically and ``index.html`` last, so an
interrupted export has no page to open; running the export again into the same folder finishes it.
"""

from __future__ import annotations

import json
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from volume_cli import pipeline
from volume_cli.formats import Sequence, atomic_write_bytes, atomic_write_text
from volume_cli.formats.atomic import temp_path_for
from volume_cli.formats.spz import encode_spz
from volume_cli.view.page import STATIC_DIR, VIEW_JSON, frame_url, source_video, video_name, view_description

_ENCODERS = 2  # gzip and numpy release the GIL; more threads than cores only queue
_WINDOW = 8  # frames encoded ahead of the one being written (bounds the memory held)


class ExportFolderError(ValueError):
    pass


def export_view(
    sequence: Sequence,
    folder: Path,
    *,
    loop: bool = True,
    side_by_side: bool = False,
    progress: pipeline.Progress | None = None,
) -> dict:
    """Write the static viewer for ``sequence`` into ``folder`` (absent, empty, or an earlier export,
    which is replaced). Returns a summary: folder, frames, bytes of frames, whether the video is in
    it. Raises ExportFolderError for a folder holding anything else."""
    folder = Path(folder)
    _check_folder(folder)
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    progress = progress or pipeline.Progress()
    n = len(sequence.frames)
    counts: list[int] = []
    frame_bytes = 0
    progress.start("Exporting", n)
    try:
        with ThreadPoolExecutor(_ENCODERS, thread_name_prefix="spz") as pool:
            def encode(i: int) -> tuple[int, bytes]:
                gaussians = sequence.read_frame(i)
                return gaussians.count, encode_spz(gaussians)

            pending = deque(pool.submit(encode, i) for i in range(min(_WINDOW, n)))
            for i in range(n):
                count, data = pending.popleft().result()
                if i + _WINDOW < n:
                    pending.append(pool.submit(encode, i + _WINDOW))
                atomic_write_bytes(folder / frame_url(i), data)
                counts.append(count)
                frame_bytes += len(data)
                progress.advance()
    finally:
        progress.stop()
    for stale in (folder / "frames").glob("*.spz"):  # frames of an earlier, longer export
        if not stale.stem.isdigit() or int(stale.stem) >= n:
            stale.unlink()

    video = source_video(sequence) if side_by_side else None
    for stale in folder.glob("source.*"):  # an earlier export's video
        if video is None or stale.name != video_name(video):
            stale.unlink()
    if video is not None:
        _copy_atomic(video, folder / video_name(video))
    _copy_assets(folder)
    description = view_description(sequence, loop=loop, video=video, side_by_side=side_by_side, splat_counts=counts)
    atomic_write_text(folder / VIEW_JSON, json.dumps(description))
    atomic_write_bytes(folder / "index.html", (STATIC_DIR / "index.html").read_bytes())
    return {"folder": str(folder), "frames": n, "frame_bytes": frame_bytes, "video": video is not None}


def _check_folder(folder: Path) -> None:
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ExportFolderError(f"{folder} exists and is not a folder")
    entries = {p.name for p in folder.iterdir()}
    if not entries:
        return
    try:
        earlier = json.loads((folder / VIEW_JSON).read_text())
        if isinstance(earlier, dict) and "frames" in earlier and "version" in earlier:
            return
    except (OSError, ValueError):
        pass
    raise ExportFolderError(f"{folder} is not empty and holds no earlier export; choose an empty or new folder")


def _copy_assets(folder: Path) -> None:
    for file in sorted(STATIC_DIR.rglob("*")):
        rel = file.relative_to(STATIC_DIR)
        if file.is_file() and rel.name != "index.html":
            target = folder / "assets" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_atomic(file, target)


def _copy_atomic(source: Path, target: Path) -> None:
    tmp = temp_path_for(target)
    try:
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
