"""`volume convert` orchestration: track the face over the whole clip, then crop, predict and write.

Two passes over the source:
  1. decode + face mesh for every selected frame, so the head track can be smoothed with a centred
     window and a clip with no face fails before anything is written; the landmarks wait in an
     unlinked temporary file beside the output (landmark_store.py), so memory does not grow with
     the clip's length (a few numbers a frame stay in memory);
  2. decode again + homography crop -> predictor (batched) -> prune -> original camera frame ->
     write. Decoding (with the crop and the head prior) runs ahead on a thread, and pruning,
     moving and encoding each set happen on the writer's, so the predictor sets the pace.

Output folder invariants: splat files appear only complete (temporary name, then rename);
sequence.json is rewritten atomically every second (less often once a rewrite takes more than a
tenth of that: long clips) and at the end, always listing only frames whose files are complete,
with ``complete: false`` until the run finishes. A run stopped by Ctrl-C leaves a consistent
folder that ``--resume`` finishes. The frames' records wait in a journal file in the folder
(``_Folder``), not in memory, and sequence.json is streamed from it (one record a line), so
memory does not grow with the clip's length; a killed run's journal tells ``--resume`` the frames
finished after the last rewrite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from volume_cli import __version__, camera
from volume_cli.face import FaceFinder, head_state, smooth_track
from volume_cli.formats import (
    COORDINATES,
    MANIFEST_NAME,
    FrameRecord,
    ManifestHeader,
    MissingRecord,
    SplatFormat,
    encode_splats,
    frame_file_name,
    frames_on_disk,
    scan_manifest,
)
from volume_cli.formats.atomic import atomic_write_bytes, remove_stale_temp_files, temp_path_for
from volume_cli.formats.manifest import frame_line, missing_line, record_line, write_manifest_lines
from volume_cli.concurrency import prefetch
from volume_cli.framing import FramedCrop, frame_crop
from volume_cli.landmark_store import LandmarkStore
from volume_cli.tracked_frames import TrackedFrame, TrackedFrames
from volume_cli.predictors import CropBatch, Predictor
from volume_cli.video import FrameSource, InputError

_MANIFEST_EVERY_S = 1.0
# Rewriting sequence.json costs ~0.45 ms a frame listed (13 s with a 16-minute clip's 28 800), so
# once that passes a tenth of a second, it is rewritten less often: at most a tenth of the run goes
# to it (rewritten every second, convert's second pass grew with the square of the clip's length:
# 2 000 frames took 93 s of flushing where 1 000 took 13 s).
_MANIFEST_COST_SHARE = 0.1


class OnMissing(str, enum.Enum):
    """What to do with a frame in which the person's face is not found."""

    skip = "skip"  # write nothing for it; listed under "missing"
    hold = "hold"  # repeat the nearest earlier frame's splats (the first found, at the start)
    fail = "fail"  # stop with an error before writing anything


@dataclass(frozen=True)
class ConvertSettings:
    """Everything that decides the output; --resume refuses a run whose settings differ."""

    fov_deg: float | None = None
    focal_px: float | None = None
    size: int = 256
    start_s: float | None = None
    end_s: float | None = None
    every: int = 1
    max_frames: int | None = None
    splat_format: SplatFormat = SplatFormat.ply
    on_missing: OnMissing = OnMissing.skip
    predictor: str = "geometric"
    smoothing_frames: float = 2.0  # head track (crop aim and distance), sigma in frames
    landmark_smoothing_frames: float = 1.0  # face-mesh landmarks of a video, sigma in frames
    head_smoothing_frames: float = 2.0  # the fitted head's pose and expression, sigma in frames

    def as_json(self) -> dict:
        d = asdict(self)
        d["splat_format"] = self.splat_format.value
        d["on_missing"] = self.on_missing.value
        return d


class Progress:
    """Progress reporting hooks; the default reports nothing. The CLI passes a rich-backed one."""

    def start(self, description: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def stop(self) -> None: ...


@dataclass
class ConvertReport:
    output: Path
    frames_written: int
    frames_held: int
    frames_missing: int
    frames_resumed: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _head_track(predictor: Predictor, tracked: TrackedFrames, store: LandmarkStore, K: np.ndarray, video: bool,
                settings: ConvertSettings):
    """(The clip's whole head (volume_cli.head) for a predictor that uses it, else None; for a
    video, the smoothed fits in the original camera's frame, packed (head.track.PackedFits: a
    frame's row there is its landmark slot), else None). A video's identity is
    fitted to frames spread over it, then every frame's pose and expression in order, smoothed
    over time like the track; a folder of stills fits each image alone, in pass 2."""
    if not getattr(predictor, "use_head", False):
        return None, None
    from volume_cli.face import landmarks_to_camera
    from volume_cli.head.fit import identity_frames
    from volume_cli.head.model import load_head_model
    from volume_cli.head.track import HeadTrack
    from volume_cli.predictors.geometric import mesh_depth_rasterizer

    head = HeadTrack(load_head_model(), mesh_depth_rasterizer(), clip=video)
    if not video:
        return head, None
    found = np.flatnonzero(tracked.has_face)  # the rows with a face; row found[k] has slot k

    def metric(t: TrackedFrame) -> np.ndarray:  # [478, 3], read from disk
        return landmarks_to_camera(t.face(store), K, t.head)

    # Only the frames the identity is fitted to are read for it (fit_identity would pick the same).
    head.fit_identity([metric(tracked[int(found[i])]) for i in identity_frames(len(found))])
    # One frame's landmarks at a time (memory stays flat in the clip's length); a fit is ~60 numbers.
    fits = head.fit_frames((metric(t) for t in tracked.with_face()), settings.head_smoothing_frames)
    return head, fits


def original_intrinsics(source: FrameSource, settings: ConvertSettings) -> np.ndarray:
    return camera.image_intrinsics(source.width, source.height, fov_deg=settings.fov_deg, focal_px=settings.focal_px)


def track(source: FrameSource, K: np.ndarray, settings: ConvertSettings, progress: Progress,
          store: LandmarkStore) -> TrackedFrames:
    """Pass 1: the chosen face in every selected frame (its landmarks into ``store``, smoothed
    there), the smoothed head track, held frames."""
    tracked = TrackedFrames()
    progress.start("Finding faces", _expected_frames(source, settings))
    with FaceFinder(video=source.kind == "video") as finder, contextlib.closing(prefetch(source)) as frames:
        for frame in frames:
            face = finder.find(frame.image)
            slot = None if face is None else store.append(face.landmarks)
            tracked.append(frame.index, frame.time_s, None if face is None else face.box, slot)
            progress.advance()
    progress.stop()
    if not len(tracked):
        raise InputError(f"{source.path}: no frames to convert")
    has_face = tracked.has_face
    if not has_face.any():
        raise InputError(f"{source.path}: no face found in any of its {len(tracked)} frames")
    if settings.on_missing is OnMissing.fail and not has_face.all():
        first = tracked[int(np.argmin(has_face))]
        raise InputError(
            f"{source.path}: no face in frame {first.index} (t={first.time_s:.2f} s); "
            "use --on-missing skip or hold to convert the other frames"
        )
    if source.kind == "video":  # stills in a folder are unrelated frames: nothing to smooth across
        store.smooth([t.slot for t in tracked], settings.landmark_smoothing_frames)
    centers = [head_state(t.face(store), K).center if t.slot is not None else None for t in tracked]
    for row, c in enumerate(smooth_track(centers, settings.smoothing_frames)):
        if c is not None:
            tracked.set_head(row, c)
    if settings.on_missing is OnMissing.hold:
        indices = tracked.indices
        last = int(indices[np.argmax(has_face)])  # leading frames without a face repeat the first one found
        for row, face in enumerate(has_face):
            if face:
                last = int(indices[row])
            else:
                tracked.set_held_from(row, last)
    return tracked


def _expected_frames(source: FrameSource, settings: ConvertSettings) -> int | None:
    if source.frame_count is None:
        return None
    n = source.frame_count
    if source.fps and (settings.start_s or settings.end_s):
        end = n if settings.end_s is None else min(n, int(np.ceil(settings.end_s * source.fps)))
        n = max(0, end - int(np.ceil((settings.start_s or 0.0) * source.fps)))
    n = -(-n // settings.every)
    return n if settings.max_frames is None else min(n, settings.max_frames)


def to_original_frame(gaussians_virtual, R: np.ndarray):
    """Gaussians from a virtual-camera frame back to the ORIGINAL camera frame: x_o = R^T x_v."""
    return gaussians_virtual.transform(torch.from_numpy(R.T.copy()))


JOURNAL_NAME = ".sequence.frames.jsonl"


class _JournalLines:
    """Where each record's line is in a journal: its source index, byte offset and length, as
    compact arrays (20 bytes a line); ``append`` writes a line to the end of the journal."""

    def __init__(self) -> None:
        self.index, self.offset, self.length = array("q"), array("q"), array("i")
        self.size = 0  # bytes in the journal

    def __len__(self) -> int:
        return len(self.index)

    def append(self, journal, index: int, line: bytes) -> None:
        journal.write(line + b"\n")
        self.index.append(index)
        self.offset.append(self.size)
        self.length.append(len(line))
        self.size += len(line) + 1


class _Folder:
    """The output folder and its manifest, kept consistent with the files on disk.

    Each finished frame's record goes, as the one line sequence.json will hold it, to the end of a
    journal beside it (``JOURNAL_NAME``, hidden); memory keeps only where each line is (20 bytes a
    frame), and sequence.json is rewritten by streaming the lines back in index order. The
    journal outlives a run that is killed (not even its last rewrite of sequence.json then lists
    every finished frame), and ``--resume`` reads both; it is removed once sequence.json lists
    everything it holds, at the end of a run, finished or interrupted."""

    def __init__(self, path: Path, header: dict, missing: Iterable[dict]) -> None:
        self.path = path
        self.header = ManifestHeader.from_dict(dict(header, complete=False))  # checked once
        self._missing = [missing_line(m) for m in missing]  # ~60 bytes a frame without a face
        self._lock = threading.Lock()
        self._lines = _JournalLines()
        self._journal = None
        self._flushed_all = False  # whether sequence.json lists every journal line
        self._last_flush = 0.0
        self._flush_seconds = 0.0  # how long the last rewrite took
        self.completed = False

    def open(self, previous: bool) -> set[int]:
        """Start the journal: with ``previous`` (--resume), with the records of the frames whose
        files are on disk, from the folder's sequence.json and the journal a killed run left;
        returns their source indices."""
        journal = self.path / JOURNAL_NAME
        fresh = temp_path_for(journal)
        sink = _Recovered(self.path)
        try:
            with open(fresh, "wb") as f:
                sink.journal = f
                if previous:
                    scan_manifest(self.path / MANIFEST_NAME, sink)
                    sink.more(journal)
            os.replace(fresh, journal)
        except BaseException:
            fresh.unlink(missing_ok=True)
            raise
        self._journal = open(journal, "a+b")  # appended to, and read back by flush()
        self._lines = sink.lines
        return sink.seen

    def add(self, record: dict) -> None:
        line = frame_line(record)
        with self._lock:
            self._lines.append(self._journal, record["index"], line)
            self._journal.flush()  # in the file before the lock goes: flush() reads it back
            self._flushed_all = False

    def flush(self, complete: bool = False, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < max(_MANIFEST_EVERY_S, self._flush_seconds / _MANIFEST_COST_SHARE):
            return
        with self._lock:
            index, offset, length = (np.array(a, dtype=a.typecode)
                                     for a in (self._lines.index, self._lines.offset, self._lines.length))
        order = np.argsort(index, kind="stable")
        if len(order):  # one record an index: the latest
            order = order[np.append(index[order][1:] != index[order][:-1], True)]
        fd = self._journal.fileno()
        lines = (os.pread(fd, int(length[k]), int(offset[k])) for k in order)
        header = dataclasses.replace(self.header, complete=complete)
        write_manifest_lines(self.path, header.to_dict(), lines, self._missing)
        self._flushed_all = len(self._lines) == len(index)  # (an add() since may not be listed)
        self._last_flush = now
        self._flush_seconds = time.monotonic() - now
        self.completed = complete

    def close(self) -> None:
        """At the end of a run: the journal goes once sequence.json lists every line of it (kept
        for --resume if the last rewrite failed)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
            if self._flushed_all:
                (self.path / JOURNAL_NAME).unlink(missing_ok=True)


class _Recovered:
    """--resume: the records of a previous run whose files are on disk, copied to a new journal
    (``journal``, set by the caller) with where each line is."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.journal = None
        self.start()

    def start(self) -> None:  # (again if the manifest is then read whole: forget what came)
        if self.journal is not None:
            self.journal.seek(0)
            self.journal.truncate()
        self.seen: set[int] = set()
        self.lines = _JournalLines()

    def header(self, header: ManifestHeader) -> None:
        pass

    def frame(self, i: int, record: FrameRecord) -> None:
        if record.index not in self.seen and (self.folder / record.file).is_file():
            self.lines.append(self.journal, record.index, record_line(record))
            self.seen.add(record.index)

    def missing(self, i: int, record: MissingRecord) -> None:
        pass

    def more(self, journal: Path) -> None:
        """The records of a killed run's journal (past its last rewrite of sequence.json). A line
        it was killed while appending, or one that does not validate, is left out: its frame is
        converted again."""
        if not journal.is_file():
            return
        for _, line in _journal_lines(journal):
            try:
                record = FrameRecord(**json.loads(line))
            except (ValueError, TypeError):
                continue
            self.frame(-1, record)


def _journal_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its newline) of each complete line of a journal."""
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                yield offset, line[:-1]
            offset += len(line)


class _HeaderOnly:
    """A manifest sink that keeps the header alone."""

    def start(self) -> None:
        self.found = None

    def header(self, header: ManifestHeader) -> None:
        self.found = header

    def frame(self, i: int, record: FrameRecord) -> None:
        pass

    def missing(self, i: int, record: MissingRecord) -> None:
        pass


def prepare_output(out: Path, *, overwrite: bool, resume: bool) -> dict | None:
    """Check the output folder before any work. Returns the existing manifest's header (as a JSON
    dict, without the records) when resuming. Nothing is deleted here: ``clear_output`` runs once the source has been tracked, so
    an --overwrite run that fails early (no face, bad input) leaves the old sequence as it was."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if not out.exists():
        ancestor = next(p for p in out.absolute().parents if p.exists())
        if not ancestor.is_dir():
            raise InputError(f"cannot create {out}: {ancestor} is not a folder")
    existing = [p for p in out.iterdir()] if out.exists() else []
    manifest_path = out / MANIFEST_NAME
    if resume:
        if not manifest_path.exists():
            if existing:
                raise InputError(f"{out} has no {MANIFEST_NAME} to resume from")
            return None
        try:
            sink = _HeaderOnly()
            scan_manifest(manifest_path, sink, frame_heads=False)  # every record is checked all the same
            return sink.found.to_dict()
        except ValueError as e:
            raise InputError(f"cannot resume: {e}") from e
    if existing and not overwrite:
        raise InputError(f"{out} is not empty; use --overwrite to replace its splats or --resume to finish an interrupted run")
    return None


def clear_output(out: Path) -> None:
    """--overwrite: remove what convert writes (splat files of every format, sequence.json,
    temporary files); anything else the user keeps in the folder stays."""
    if not out.is_dir():
        return
    for fmt in SplatFormat:
        for p in frames_on_disk(out, fmt).values():
            p.unlink()
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    (out / JOURNAL_NAME).unlink(missing_ok=True)
    remove_stale_temp_files(out)


def convert(
    source: FrameSource,
    out: Path,
    predictor: Predictor,
    settings: ConvertSettings,
    *,
    device: str = "cpu",
    batch_size: int = 8,
    overwrite: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
    on_frame: Callable[[dict], None] | None = None,
) -> ConvertReport:
    """Convert ``source`` into a splat sequence folder ``out``. See the module docstring."""
    progress = progress or Progress()
    started = time.perf_counter()
    previous = prepare_output(out, overwrite=overwrite, resume=resume)
    K = original_intrinsics(source, settings)
    header = _header(source, K, predictor, settings)
    if previous is not None:
        _check_resumable(previous, header, out)

    # The clip's landmarks wait on disk between the passes, so memory does not grow with its length.
    with LandmarkStore(_scratch_dir(out)) as store:
        t0 = time.perf_counter()
        tracked = track(source, K, settings, progress, store)
        head, head_fits = _head_track(predictor, tracked, store, K, source.kind == "video", settings)
        if head is not None:
            header["head"] = head.header()
        stage = {"track": time.perf_counter() - t0}

        # Frames without a face, as sequence.json lists them (made one at a time: the folder keeps
        # each as its ~60-byte line).
        missing = (
            {"index": t.index, "time_s": t.time_s, "action": "held" if t.held_from is not None else "skipped"}
            for t in tracked if t.slot is None
        )
        skipped = int((~tracked.has_face).sum()) if settings.on_missing is not OnMissing.hold else 0
        if overwrite:
            clear_output(out)
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out)
        folder = _Folder(out, header, missing)
        done_indices = folder.open(previous is not None)  # the frames a previous run finished
        folder.flush()

        # Held frames are written right after the frame they repeat.
        holders: dict[int, list[TrackedFrame]] = {}
        for t in tracked:
            if t.held_from is not None and t.index not in done_indices:
                holders.setdefault(t.held_from, []).append(t)
        # [F] the rows pass 2 predicts: a face, and a frame not written yet or one that others repeat
        todo = tracked.has_face & np.array([int(i) not in done_indices or int(i) in holders for i in tracked.indices], bool)

        counts = {"written": 0, "held": 0}
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write")
        pending: list[Future] = []
        timers = {"decode+crop": 0.0, "predict": 0.0, "write": 0.0}
        progress.start("Converting", int(todo.sum()) + sum(len(v) for v in holders.values()))

        def write(t: TrackedFrame, fc: FramedCrop, head_record: dict | None, predicted) -> None:
            w0 = time.perf_counter()
            gaussians = to_original_frame(predicted.prune(), fc.cam.R)  # prune first: half the splats to move
            data = encode_splats(gaussians, settings.splat_format)
            records = []
            if t.index not in done_indices:
                records.append(_frame_record(t, fc, gaussians.count, settings, "ok", head=head_record))
            records += [_frame_record(h, fc, gaussians.count, settings, "held", face_box=None, head=head_record) for h in holders.get(t.index, [])]
            for r in records:
                atomic_write_bytes(out / r["file"], data)
                folder.add(r)
                counts["written" if r["status"] == "ok" else "held"] += 1
                progress.advance()
                if on_frame:
                    on_frame(r)
            folder.flush(force=False)
            timers["write"] += time.perf_counter() - w0

        def crops() -> Iterator[tuple[TrackedFrame, FramedCrop, object, dict | None]]:
            for frame in source:
                row = tracked.row_of(frame.index)
                if row is None or not todo[row]:
                    continue
                t = tracked[row]
                fc = frame_crop(frame.image, K, t.face(store), t.head, settings.size)
                if head is None:
                    prior, record = None, None
                elif head_fits is not None:  # a video: its smoothed fit, turned into the crop's frame
                    prior, record = head.prior_of(head_fits.fit(t.slot).in_frame(fc.cam.R), fc.cam.K, settings.size)
                else:
                    prior, record = head.prior(fc.landmarks, fc.cam.K, settings.size)
                yield t, fc, prior, record

        frames = prefetch(crops())
        try:
            batch: list[tuple[TrackedFrame, FramedCrop, object, dict | None]] = []
            c0 = time.perf_counter()
            for item in frames:
                batch.append(item)
                if len(batch) == batch_size:
                    timers["decode+crop"] += time.perf_counter() - c0
                    _wait_for_writes(pending, keep=batch_size)
                    pending += _predict_and_submit(batch, predictor, device, writer, write, timers, head)
                    batch = []
                    c0 = time.perf_counter()
                _raise_failed(pending)
            if batch:
                timers["decode+crop"] += time.perf_counter() - c0
                pending += _predict_and_submit(batch, predictor, device, writer, write, timers, head)
            writer.shutdown(wait=True)
            _raise_failed(pending)
            folder.flush(complete=True)
        finally:
            # Whatever stopped us (Ctrl-C, an error), stop the producer, finish the writes in flight
            # and leave a manifest that lists exactly the complete files.
            frames.close()
            writer.shutdown(wait=True, cancel_futures=True)
            progress.stop()
            try:
                if not folder.completed:
                    folder.flush(complete=False)
            finally:
                folder.close()

        stage.update(timers)
        return ConvertReport(
            output=out, frames_written=counts["written"], frames_held=counts["held"],
            frames_missing=skipped, frames_resumed=len(done_indices),
            seconds=time.perf_counter() - started, stage_seconds=stage, warnings=list(source.warnings),
        )


def _scratch_dir(out: Path) -> Path:
    """Where pass 1's temporary file goes: beside the output (the output folder itself may not
    exist yet, and nothing may be written into it before the first pass has found a face)."""
    for folder in Path(out).absolute().parents:
        if folder.is_dir():
            return folder
    return Path(tempfile.gettempdir())


def _wait_for_writes(pending: list[Future], keep: int) -> None:
    """Block until at most ``keep`` writes are queued: each holds a frame's splats, and once
    prediction outruns writing an unbounded queue would hold the whole clip in memory. One
    batch in flight is enough to keep the writer busy while the next batch is predicted."""
    while len(pending) > keep:
        pending[0].exception()  # waits for the oldest
        _raise_failed(pending)  # raises its error, or drops the finished ones


def _raise_failed(pending: list[Future]) -> None:
    for f in pending:
        if f.done() and f.exception() is not None:
            raise f.exception()
    pending[:] = [f for f in pending if not f.done()]


def _predict_and_submit(batch, predictor: Predictor, device: str, writer: ThreadPoolExecutor, write, timers,
                        head) -> list[Future]:
    p0 = time.perf_counter()
    inputs = crop_batch([fc for _, fc, _, _ in batch], device)
    if head is not None:
        inputs.head_priors = [prior for _, _, prior, _ in batch]
        inputs.head_texture = head.texture
    with torch.inference_mode():
        predicted = predictor.predict(inputs).to("cpu")
    # The writer prunes, moves each set to the original camera and encodes it, beside the next batch's prediction.
    futures = [writer.submit(write, t, fc, head_record, predicted[i]) for i, (t, fc, _, head_record) in enumerate(batch)]
    timers["predict"] += time.perf_counter() - p0
    return futures


def crop_batch(crops: list[FramedCrop], device: str) -> CropBatch:
    def stacked(arrays) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).to(device)

    return CropBatch(
        images=stacked([fc.crop for fc in crops]).permute(0, 3, 1, 2).float().div(255.0),
        valid=stacked([fc.valid for fc in crops]),
        K=stacked([fc.cam.K for fc in crops]).float(),
        # The virtual camera looks straight at the head centre: it lies on the optical axis.
        head_center=torch.tensor([[0.0, 0.0, float(np.linalg.norm(fc.head_center))] for fc in crops], device=device),
        landmarks=stacked([fc.landmarks for fc in crops]).float(),
    )


def _frame_record(t: TrackedFrame, fc: FramedCrop, num_splats: int, settings: ConvertSettings, status: str, face_box="own",
                  head: dict | None = None) -> dict:
    box = t.box.tolist() if face_box == "own" and t.box is not None else None
    return {
        "index": t.index,
        "file": frame_file_name(t.index, settings.splat_format),
        "time_s": t.time_s,
        "num_splats": int(num_splats),
        "status": status,
        "rotation": fc.cam.R.tolist(),
        "virtual_K": fc.cam.K.tolist(),
        "face_box": box,
        "head_center": fc.head_center.tolist(),
        "distance_m": float(np.linalg.norm(fc.head_center)),
        **({"head": head} if head is not None else {}),
    }


def _header(source: FrameSource, K: np.ndarray, predictor: Predictor, settings: ConvertSettings) -> dict:
    return {
        "format": "volume-sequence",
        "version": 1,
        "tool": {"name": "volume", "version": __version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": {
            "path": str(Path(source.path).resolve()),
            "kind": source.kind,
            "fps": source.fps,
            "frame_count": source.frame_count,
            "rotation_deg": source.rotation_deg,
        },
        "image_size": [source.width, source.height],
        "intrinsics": {"K": K.tolist(), "focal_px": float(K[0, 0]), "fov_deg": None if settings.focal_px else (settings.fov_deg or camera.DEFAULT_FOV_DEG)},
        "crop_size": settings.size,
        "coordinates": COORDINATES,
        "predictor": {"name": predictor.name, "weights_sha256": predictor.weights_sha256},
        "splat_format": settings.splat_format.value,
        "options": settings.as_json(),
    }


def _check_resumable(previous: dict, header: dict, out: Path) -> None:
    mismatched = [
        key for key, a, b in [
            ("source", previous["source"]["path"], header["source"]["path"]),
            ("options", previous.get("options"), header["options"]),
            ("predictor", previous["predictor"], header["predictor"]),
            ("image size", previous["image_size"], header["image_size"]),
        ] if a != b
    ]
    if mismatched:
        raise InputError(
            f"{out} holds a run with different {', '.join(mismatched)}; "
            "resume with the same input and options, or use --overwrite"
        )
