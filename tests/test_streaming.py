"""`volume render`, `volume info` and the flicker command stream a sequence: however long it is,
only a few frames' splats are in memory at once (issue 12). Counted directly: every frame read
is tracked by a weak reference to its means tensor, and the most alive at one time is bounded."""

from __future__ import annotations

import json
import weakref

import pytest
from typer.testing import CliRunner

from volume_cli.cli import app
from volume_cli.evaluate import flicker
from volume_cli.formats import manifest as manifest_module

from test_eval_flicker import write_sequence

FRAMES = 40


@pytest.fixture
def long_sequence(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    write_sequence(folder, [(i, "ok", 0.2 + 0.01 * i) for i in range(FRAMES)])
    return folder


@pytest.fixture
def frames_alive(monkeypatch):
    """Wraps the sequence's frame reader: returns a dict whose "read" counts the frames read and
    "most" the most frames whose splats were alive at once."""
    alive: weakref.WeakSet = weakref.WeakSet()
    stats = {"read": 0, "most": 0}
    read = manifest_module.read_splats

    def counting(path):
        g = read(path)
        alive.add(g.means)  # the tensor itself: .to(device) on the same device returns it
        stats["read"] += 1
        stats["most"] = max(stats["most"], len(alive))
        return g

    monkeypatch.setattr(manifest_module, "read_splats", counting)
    return stats


def test_info_reads_one_frame_at_a_time(long_sequence, frames_alive):
    result = CliRunner().invoke(app, ["info", str(long_sequence), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == FRAMES
    assert frames_alive["read"] == FRAMES and frames_alive["most"] <= 2


def test_render_holds_a_bounded_window_of_frames(long_sequence, frames_alive, tmp_path):
    result = CliRunner().invoke(app, ["render", str(long_sequence), "--png", str(tmp_path / "png"), "--size", "32", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert len(list((tmp_path / "png").glob("*.png"))) == FRAMES
    # prefetch runs 4 frames ahead, plus the one being rendered and the reader's next: ~6 of 40
    assert frames_alive["read"] == FRAMES and frames_alive["most"] <= 8


def test_flicker_keeps_only_the_previous_frame(long_sequence, frames_alive, capsys):
    assert flicker.main([str(long_sequence), "--size", "32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == FRAMES - 1
    assert frames_alive["read"] == FRAMES and frames_alive["most"] <= 2
