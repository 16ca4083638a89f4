"""The face-mesh landmarks of a whole clip, kept on disk instead of in memory.

convert's first pass finds the face in every frame before the second pass crops any of them (the
smoothing is centred, and a clip with no face must fail before anything is written). Held in
memory as arrays, an hour-long call's landmarks are gigabytes; here each frame's [478, 3] goes to
an unlinked temporary file (float64 as MediaPipe's landmarks arrive, so the result is exactly what
keeping them in memory gave: 11.5 KB a frame, 1.2 GB of disk for an hour at 30 fps) beside the output, which the OS removes however the process ends, and is read back one frame at a time.

Smoothing over time (``smooth``) runs in chunks with the neighbours each chunk needs, so memory
stays flat in the clip's length too; it gives what ``face._centred_average`` gives on the whole
list, because it IS that function applied to each chunk and its margin.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from volume_cli.face import _centred_average

LANDMARKS = 478  # MediaPipe face mesh points (with the irises)
_CHUNK_FRAMES = 1024  # smoothing works on this many frames (plus its margin) at a time: ~12 MB


class LandmarkStore:
    """Append-only per-frame landmarks [478, 3] (pixels u, v and MediaPipe's relative z), slots in
    append order. ``directory``: where the temporary file goes (beside the output; it must exist).
    Reads and writes go through pread/pwrite, not a memory map, so the file's pages stay in the
    OS's cache and never count as this process's memory. Not thread-safe."""

    _FRAME_BYTES = LANDMARKS * 3 * 8

    def __init__(self, directory: Path) -> None:
        self._file = tempfile.TemporaryFile(dir=directory, prefix=".volume-landmarks-")
        self._fd = self._file.fileno()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, landmarks: np.ndarray) -> int:
        """Store one frame's landmarks [478, 3]; returns its slot."""
        if landmarks.shape != (LANDMARKS, 3):
            raise ValueError(f"landmarks must be [{LANDMARKS}, 3], got {list(landmarks.shape)}")
        self._write(self._count, np.asarray(landmarks, dtype=np.float64)[None])
        self._count += 1
        return self._count - 1

    def __getitem__(self, slot: int) -> np.ndarray:
        """Landmarks [478, 3] of ``slot``, float64 (a copy)."""
        if not 0 <= slot < self._count:
            raise IndexError(f"slot {slot} of {self._count}")
        return self._read(slot, slot + 1)[0].copy()

    def smooth(self, slots: list[int | None], sigma_frames: float, chunk_frames: int = _CHUNK_FRAMES) -> None:
        """Replace, in place, each frame's landmarks by their centred Gaussian average over time.
        ``slots``: the slot of each frame in time order (ascending), None where the frame has no
        face (it stays out and does not pull its neighbours), as ``face.smooth_landmarks`` does.
        ``chunk_frames`` (at least the smoothing radius) only bounds the memory used."""
        if sigma_frames <= 0 or self._count == 0:
            return
        radius = int(np.ceil(3 * sigma_frames))
        if chunk_frames < radius:  # the previous chunk must hold all the originals a window needs
            raise ValueError(f"chunk_frames must be at least the smoothing radius {radius}, got {chunk_frames}")
        carried: dict[int, np.ndarray] = {}  # originals of the last frames the previous chunk overwrote
        for start in range(0, len(slots), chunk_frames):
            stop = min(start + chunk_frames, len(slots))
            lo, hi = max(0, start - radius), min(len(slots), stop + radius)
            present = [s for s in slots[lo:hi] if s is not None]
            if not present:
                continue
            first = present[0]
            block = self._read(first, present[-1] + 1)  # the slots of a window are one run of the file
            window = [None if s is None else carried.get(s, block[s - first]) for s in slots[lo:hi]]
            carried = {s: block[s - first].copy() for s in slots[max(start, stop - radius):stop] if s is not None}
            smoothed = _centred_average(window, sigma_frames)
            mine = [(s, smoothed[k - lo]) for k, s in enumerate(slots[start:stop], start) if s is not None]
            if mine:
                self._write(mine[0][0], np.stack([lm for _, lm in mine]))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "LandmarkStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self, first: int, stop: int) -> np.ndarray:
        """Slots [first, stop) as [stop - first, 478, 3] float64 (read-only)."""
        data = os.pread(self._fd, (stop - first) * self._FRAME_BYTES, first * self._FRAME_BYTES)
        return np.frombuffer(data, dtype=np.float64).reshape(stop - first, LANDMARKS, 3)

    def _write(self, first: int, frames: np.ndarray) -> None:
        """frames [k, 478, 3] float64 into slots [first, first + k)."""
        data = np.ascontiguousarray(frames, dtype=np.float64).tobytes()
        written = os.pwrite(self._fd, data, first * self._FRAME_BYTES)
        if written != len(data):
            raise OSError(f"short write to the landmark file ({written} of {len(data)} bytes)")
