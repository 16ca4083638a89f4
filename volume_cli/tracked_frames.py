"""What convert's first pass keeps of every frame, as columns: ~80 bytes a frame.

Pass 1 finds the face in every selected frame before pass 2 crops any (the smoothing is centred,
and a clip with no face must fail before anything is written), so what it keeps per frame is held
for the whole clip. As one Python object a frame (ints, a float, two small arrays, a dataclass)
that was ~0.6 kB a frame: 17 MB for a 16-minute clip, most of convert's growth with a clip's length
(issue 12). Here they are rows of a few NumPy columns that grow by doubling; ``frames[row]`` makes
the familiar per-frame view (``TrackedFrame``) on demand, so code reads one frame at a time.
The landmarks themselves are on disk (``landmark_store``); a row holds only their slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from volume_cli.face import FaceObservation, HeadState
from volume_cli.landmark_store import LandmarkStore

_NONE = -1  # slot / held_from of a frame that has none


@dataclass(frozen=True)
class TrackedFrame:
    """One row of ``TrackedFrames``, made when read (changing it changes nothing)."""

    row: int
    index: int  # the source frame index
    time_s: float
    box: np.ndarray | None  # the face box [4] (pixels), None: no face in this frame
    slot: int | None  # the frame's landmarks in the store (and its row of a clip's head fits), None: no face
    head: HeadState | None  # the smoothed head centre, None: no face
    held_from: int | None  # for a held frame: the source index whose splats it repeats

    def face(self, store: LandmarkStore) -> FaceObservation:
        return FaceObservation(box=self.box, landmarks=store[self.slot])


class TrackedFrames:
    """Rows in source order (frame indices ascending). ``append`` adds a frame as pass 1 finds it;
    ``set_head`` and ``set_held_from`` fill in what the whole clip decides afterwards."""

    def __init__(self, capacity: int = 1024) -> None:
        self._count = 0
        self._index = np.zeros(capacity, np.int64)
        self._time_s = np.zeros(capacity, np.float64)
        self._box = np.zeros((capacity, 4), np.float64)  # float64: sequence.json's face_box exactly as found
        self._slot = np.full(capacity, _NONE, np.int64)
        self._center = np.zeros((capacity, 3), np.float64)
        self._has_head = np.zeros(capacity, bool)
        self._held_from = np.full(capacity, _NONE, np.int64)

    def __len__(self) -> int:
        return self._count

    def append(self, index: int, time_s: float, box: np.ndarray | None, slot: int | None) -> None:
        """A frame's index, time, face box [4] and landmark slot (both None: no face)."""
        if (box is None) != (slot is None):
            raise ValueError("a frame has both a face box and a landmark slot, or neither")
        if self._count and index <= self._index[self._count - 1]:
            raise ValueError(f"frame {index} after frame {self._index[self._count - 1]}: indices must ascend")
        if self._count == len(self._index):
            self._grow()
        k = self._count
        self._index[k], self._time_s[k] = index, time_s
        if box is not None:
            self._box[k], self._slot[k] = box, slot
        self._count += 1

    def __getitem__(self, row: int) -> TrackedFrame:
        if not 0 <= row < self._count:
            raise IndexError(f"row {row} of {self._count}")
        face = self._slot[row] != _NONE
        return TrackedFrame(
            row=row, index=int(self._index[row]), time_s=float(self._time_s[row]),
            box=self._box[row].copy() if face else None, slot=int(self._slot[row]) if face else None,
            head=HeadState(center=self._center[row].copy()) if self._has_head[row] else None,
            held_from=int(self._held_from[row]) if self._held_from[row] != _NONE else None,
        )

    def __iter__(self) -> Iterator[TrackedFrame]:
        return (self[k] for k in range(self._count))

    def with_face(self) -> Iterator[TrackedFrame]:
        """The frames with a face, in order (their slots are 0, 1, 2, ... as the store filled)."""
        return (self[int(k)] for k in np.flatnonzero(self.has_face))

    @property
    def has_face(self) -> np.ndarray:
        """[F] bool: which rows have a face (a new array)."""
        return self._slot[:self._count] != _NONE

    @property
    def indices(self) -> np.ndarray:
        """[F] the source frame indices, a read-only view."""
        view = self._index[:self._count]
        view.flags.writeable = False
        return view

    def row_of(self, index: int) -> int | None:
        """The row of source frame ``index``, None if it is not one of the rows."""
        k = int(np.searchsorted(self._index[:self._count], index))
        return k if k < self._count and self._index[k] == index else None

    def set_head(self, row: int, center: np.ndarray) -> None:
        self._center[row], self._has_head[row] = center, True

    def set_held_from(self, row: int, index: int) -> None:
        self._held_from[row] = index

    def _grow(self) -> None:
        for name in ("_index", "_time_s", "_box", "_slot", "_center", "_has_head", "_held_from"):
            old = getattr(self, name)
            fill = _NONE if name in ("_slot", "_held_from") else 0
            new = np.full((2 * len(old), *old.shape[1:]), fill, old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)
