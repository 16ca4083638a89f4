"""convert's first-pass table (volume_cli.tracked_frames): rows read back as they went in."""

import numpy as np
import pytest

from volume_cli.tracked_frames import TrackedFrames


def test_rows_read_back_as_appended_across_growth():
    rng = np.random.default_rng(0)
    frames = TrackedFrames(capacity=2)  # grows several times
    expected = []
    slot = 0
    for k in range(11):
        index = 3 * k + 1
        if k % 3 == 1:
            frames.append(index, index / 30, None, None)
            expected.append((index, None, None))
        else:
            box = rng.uniform(0, 600, 4)
            frames.append(index, index / 30, box, slot)
            expected.append((index, box, slot))
            slot += 1
    frames.set_head(4, np.array([0.1, -0.2, 0.6]))
    frames.set_held_from(1, 1)
    assert len(frames) == 11
    np.testing.assert_array_equal(frames.has_face, [b is not None for _, b, _ in expected])
    for row, (t, (index, box, want_slot)) in enumerate(zip(frames, expected)):
        assert (t.row, t.index, t.time_s, t.slot) == (row, index, index / 30, want_slot)
        assert (t.box is None) == (box is None) and (box is None or np.array_equal(t.box, box))
        assert frames.row_of(index) == row
    assert [t.slot for t in frames.with_face()] == list(range(slot))
    np.testing.assert_array_equal(frames[4].head.center, [0.1, -0.2, 0.6])
    assert frames[3].head is None
    assert frames[1].held_from == 1 and frames[0].held_from is None
    assert frames.row_of(2) is None and frames.row_of(10_000) is None and frames.row_of(-5) is None


def test_a_view_does_not_write_through():
    frames = TrackedFrames()
    frames.append(0, 0.0, np.array([1.0, 2.0, 3.0, 4.0]), 0)
    frames[0].box[:] = 0
    np.testing.assert_array_equal(frames[0].box, [1, 2, 3, 4])
    with pytest.raises(ValueError):
        frames.indices[0] = 5


def test_bad_rows_are_refused():
    frames = TrackedFrames()
    frames.append(5, 0.2, None, None)
    with pytest.raises(ValueError, match="ascend"):
        frames.append(5, 0.2, None, None)
    with pytest.raises(ValueError, match="neither"):
        frames.append(6, 0.2, np.zeros(4), None)
    with pytest.raises(IndexError):
        frames[1]
