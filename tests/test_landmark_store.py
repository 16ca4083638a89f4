"""convert's on-disk landmarks: round trip, and smoothing in chunks equal to smoothing the whole
list at once (face.smooth_landmarks, the obvious reference)."""

import numpy as np
import pytest

from volume_cli.face import FaceObservation, smooth_landmarks
from volume_cli.landmark_store import LandmarkStore


def random_landmarks(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 500, (478, 3))
    return [base + rng.normal(0, 2.0, (478, 3)) for _ in range(count)]


def test_round_trip(tmp_path):
    frames = random_landmarks(5)
    with LandmarkStore(tmp_path) as store:
        slots = [store.append(lm) for lm in frames]
        assert slots == list(range(5)) and len(store) == 5
        for lm, slot in zip(frames, slots):
            np.testing.assert_array_equal(store[slot], lm)  # float64 kept exactly
        with pytest.raises(IndexError):
            store[5]
        with pytest.raises(ValueError, match="478, 3"):
            store.append(np.zeros((468, 3)))
    assert list(tmp_path.iterdir()) == []  # the file is unlinked: nothing left beside the output


@pytest.mark.parametrize("chunk_frames", [3, 4, 7, 1024])  # 3: the smallest chunk for sigma 1 (radius 3)
def test_chunked_smoothing_equals_the_whole_list(tmp_path, chunk_frames):
    frames = random_landmarks(40, seed=1)
    present = [i % 9 not in (4, 5) and i != 0 for i in range(40)]  # gaps, one at the start
    with LandmarkStore(tmp_path) as store:
        slots = [store.append(lm) if p else None for lm, p in zip(frames, present)]
        stored = [None if s is None else store[s] for s in slots]
        store.smooth(slots, sigma_frames=1.0, chunk_frames=chunk_frames)
        faces = [None if lm is None else FaceObservation(box=np.zeros(4), landmarks=lm) for lm in stored]
        reference = smooth_landmarks(faces, sigma_frames=1.0)
        for slot, ref in zip(slots, reference):
            assert (slot is None) == (ref is None)
            if slot is not None:
                np.testing.assert_array_equal(store[slot], ref.landmarks)  # the reference's arithmetic exactly
        assert not np.allclose(store[slots[10]], stored[10])  # it did smooth
