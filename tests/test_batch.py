"""Many clips in one convert (volume_cli/batch): folder names, @lists, --jobs, the summary and
exit codes. Each clip runs as its own `volume convert` process, so these run real conversions
(tiny: 2 frames at 64 px)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from volume_cli.batch.clips import BatchInputError, expand_sources, output_folders
from volume_cli.cli import app

from realdata import REAL, SELFIE, needs_real

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hopper.mp4"
NO_FACE = REAL / "no_face_960x540.mp4"
TINY = ["--max-frames", "2", "--size", "64"]


def test_list_files_skip_comments_and_resolve_relative_paths(tmp_path):
    (tmp_path / "lists").mkdir()
    listing = tmp_path / "lists" / "calls.txt"
    listing.write_text("# Monday\nmonday.mp4\n\n  /abs/tuesday.mov  \n")
    assert expand_sources(["first.mp4", f"@{listing}"]) == [Path("first.mp4"), tmp_path / "lists" / "monday.mp4", Path("/abs/tuesday.mov")]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(BatchInputError, match="empty"):
        expand_sources([f"@{tmp_path / 'empty.txt'}"])
    with pytest.raises(BatchInputError, match="cannot read"):
        expand_sources([f"@{tmp_path / 'missing.txt'}"])


def test_folders_are_named_after_the_clips_and_collisions_numbered(tmp_path):
    names = [p.name for p in output_folders([Path("a/talk.mp4"), Path("b/talk.mov"), Path("c/Talk.mp4"), Path("shots")], tmp_path)]
    assert names == ["talk", "talk-2", "Talk-3", "shots"]


def _convert(*args: str):
    return CliRunner().invoke(app, ["convert", *args], catch_exceptions=False)


@needs_real
def test_three_clips_one_without_a_face_two_folders_one_error_exit_1(tmp_path):
    result = _convert(str(SELFIE), str(NO_FACE), str(EXAMPLE), "-o", str(tmp_path / "out"), *TINY, "--jobs", "2", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    status = {Path(c["source"]).name: c["status"] for c in summary["clips"]}
    assert status == {SELFIE.name: "converted", NO_FACE.name: "failed", EXAMPLE.name: "converted"}
    assert (summary["converted"], summary["failed"], summary["complete"]) == (2, 1, False)
    error = next(c for c in summary["clips"] if c["status"] == "failed")
    assert "no face" in error["error"]
    assert not Path(error["output"]).exists()  # a clip without a face writes nothing
    for c in summary["clips"]:
        if c["status"] == "converted":
            manifest = json.loads((Path(c["output"]) / "sequence.json").read_text())
            assert manifest["complete"] and len(manifest["frames"]) == 2 == c["result"]["frames_written"]


@needs_real
def test_jobs_2_writes_the_same_folders_as_one_at_a_time(tmp_path):
    listing = tmp_path / "clips.txt"
    listing.write_text(f"{SELFIE}\n{EXAMPLE}\n")
    for jobs in ("1", "2"):
        assert _convert(f"@{listing}", "-o", str(tmp_path / jobs), *TINY, "--jobs", jobs, "-q").exit_code == 0
    for clip in ("selfie_640x360", "hopper"):
        one, two = tmp_path / "1" / clip, tmp_path / "2" / clip
        files = sorted(p.name for p in one.glob("frame_*"))
        assert files and files == sorted(p.name for p in two.glob("frame_*"))
        assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)


@needs_real
def test_looped_clip_for_the_memory_benchmark_plays_back_and_forth(tmp_path):
    from volume_cli.evaluate.memory import looped_clip
    from volume_cli.video import open_source

    out = looped_clip(SELFIE, 0.1, tmp_path / "loop.mp4")  # 6 s at 30 fps: 180 frames, past one 142-frame cycle
    frames = [f.image.astype(int) for f in open_source(out)]
    source = [f.image.astype(int) for f in open_source(SELFIE)]
    assert len(frames) == 180
    # frame 71 is the source's last; 72 steps back to its 70th, not a jump to its first
    assert abs(frames[72] - source[70]).mean() < abs(frames[72] - source[0]).mean()
