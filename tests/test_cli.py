"""The `volume` command line end to end (convert, info, render) on real media, and its failure cases.

Every case checks what a user or a script sees: the exit code (0 ok, 1 "Error: ..." on one stderr
line, 2 usage error, 130 interrupted), the one JSON object of --json, and the files left on disk:
sequence.json lists exactly the frame files present, and no temporary file is left behind.

Inputs are built here from the real media in /work/shared/data/real (PROVENANCE.md), a few frames
each, and converted with --size 64 (the smallest crop) to keep the whole file fast on a CPU.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from plyfile import PlyData
from typer.testing import CliRunner

from volume_cli.cli import app
from volume_cli.formats import manifest as manifest_module
from volume_cli.formats import read_listing, read_manifest
from volume_cli.pipeline import JOURNAL_NAME

from realdata import REAL, SELFIE, needs_real

NO_FACE = REAL / "no_face_960x540.mp4"
HOPPER = REAL / "grace_hopper_512.jpg"  # face about 45 % of the width
MAN = REAL / "man_outdoors_572x562.jpg"
VOLUME = Path(sys.executable).with_name("volume")  # the installed console script, for subprocess runs

pytestmark = needs_real

FAST = ["--size", "64"]  # smallest crop: 2 x 64 x 64 splats before pruning
TEMP_FILE = re.compile(r"\..+\.tmp-\d+")  # formats/atomic.py's temporary names
PLY_HEAD = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
PLY_TAIL = ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]

runner = CliRunner()


# --- helpers -------------------------------------------------------------------------------------


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def parse_json(stdout: str) -> dict:
    """--json output: exactly one JSON object on one line, nothing else."""
    lines = stdout.splitlines()
    assert len(lines) == 1, f"expected one line on stdout, got {stdout!r}"
    result = json.loads(lines[0])
    assert isinstance(result, dict)
    return result


def run_json(*args) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return parse_json(result.stdout)


def assert_error(result, code: int = 1, match: str = "") -> str:
    """An expected failure: the exit code, nothing on stdout, one stderr line "Error: ..."."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


def consistent_manifest(folder: Path) -> dict:
    """sequence.json of ``folder``, after checking it lists exactly the frame files on disk, one
    record a line, and that no temporary file or records journal is left."""
    text = (folder / "sequence.json").read_text()
    manifest = json.loads(text)
    on_disk = sorted(p.name for p in folder.iterdir() if p.name.startswith("frame_"))
    assert sorted(f["file"] for f in manifest["frames"]) == on_disk
    assert [p.name for p in folder.iterdir() if TEMP_FILE.fullmatch(p.name)] == []
    assert not (folder / JOURNAL_NAME).exists()
    assert sum(line.startswith('    {"index": ') for line in text.splitlines()) == len(manifest["frames"]) + len(manifest["missing"])
    return manifest


def read_frames(path: Path, n: int | None = None) -> list[np.ndarray]:
    """[H, W, 3] uint8 RGB frames of a video (the first n)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    return frames


def write_clip(path: Path, images: list[np.ndarray], fps: int = 30, rotation: float | None = None, options=None) -> Path:
    """H.264 clip of ``images`` with PyAV; ``rotation`` sets the display matrix (counter-clockwise
    degrees), as a phone held upright records it."""
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def decodable_frames(path: Path) -> int:
    """Frames of a damaged video that decode before the first bad packet, counting those the
    decoder still holds for reordering: the slow, obvious reference for what convert keeps."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):  # the last, empty packet flushes the decoder
                count += len(packet.decode())
        except av.FFmpegError:
            count += len(stream.codec_context.decode(None))
    return count


def write_image(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return path


def read_image(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def box_centre_x(box: list[float]) -> float:
    return (box[0] + box[2]) / 2


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Small inputs built once from the real media."""
    d = tmp_path_factory.mktemp("media")
    selfie = read_frames(SELFIE, 16)  # 640x360
    black = np.zeros_like(selfie[0])
    hopper, man = read_image(HOPPER), read_image(MAN)

    m = {}
    # Face lost mid-video: frames 3 and 4 are black.
    m["lost"] = write_clip(d / "lost.mp4", selfie[:3] + [black, black] + selfie[3:5])
    # A phone held upright: landscape pixels plus a 90 degree display rotation.
    m["portrait"] = write_clip(d / "portrait.mp4", selfie[:2], rotation=90)
    # Matroska writes its duration in the header, so a file cut in half still says how long it was;
    # at 5 fps the lost half (1.6 s) is well over what video.py lets pass without a warning.
    write_clip(d / "full.mkv", selfie, fps=5)
    # faststart puts an mp4's index first: cut in half, the index is whole and the media data not.
    write_clip(d / "full.mp4", selfie, fps=5, options={"movflags": "+faststart"})
    for suffix in ("mkv", "mp4"):
        data = (d / f"full.{suffix}").read_bytes()
        m[f"truncated.{suffix}"] = d / f"truncated.{suffix}"
        m[f"truncated.{suffix}"].write_bytes(data[: len(data) // 2])
    # Stills and folders of stills.
    m["face_png"] = write_image(d / "face.png", selfie[0])
    m["no_face_png"] = write_image(d / "no_face.png", read_frames(NO_FACE, 1)[0])
    (d / "frames").mkdir()
    for i in range(2):
        write_image(d / "frames" / f"img{i}.png", selfie[i])
    m["frames"] = d / "frames"
    (d / "mixed").mkdir()
    shutil.copy(HOPPER, d / "mixed" / "a.jpg")
    shutil.copy(MAN, d / "mixed" / "b.jpg")  # another size
    m["mixed"] = d / "mixed"
    # Two people: the larger face on the left (two_left) or on the right (two_right).
    for name, (big, small, big_left) in {"two_left": (hopper, man, True), "two_right": (man, hopper, False)}.items():
        canvas = np.full((360, 640, 3), 128, np.uint8)
        big_img, small_img = cv2.resize(big, (320, 320)), cv2.resize(small, (180, 180))
        bx, sx = (10, 420) if big_left else (310, 30)
        canvas[20:340, bx : bx + 320] = big_img
        canvas[90:270, sx : sx + 180] = small_img
        m[name] = write_image(d / f"{name}.png", canvas)
    # A face near the top right corner of a wide frame: the virtual camera turns ~30 degrees to
    # look at it, so a rotation taken the wrong way round puts the splats far from the face.
    corner = np.full((720, 1280, 3), 90, np.uint8)
    corner[10:330, 950:1270] = cv2.resize(hopper, (320, 320), interpolation=cv2.INTER_AREA)
    m["corner"] = write_image(d / "corner.png", corner)
    # No face in the first two frames: --on-missing hold repeats the first frame found.
    m["late"] = write_clip(d / "late.mp4", [black, black] + selfie[:3])
    # Huge frame: 3840x2160, the photo upscaled to full height.
    huge = np.full((2160, 3840, 3), 100, np.uint8)
    huge[:, 840:3000] = cv2.resize(hopper, (2160, 2160), interpolation=cv2.INTER_CUBIC)
    m["huge"] = write_image(d / "huge.png", huge)
    # Tiny face: the photo shrunk to 48 px (face about 22 px wide) in a 1920x1080 frame.
    tiny = np.full((1080, 1920, 3), 120, np.uint8)
    tiny[500:548, 900:948] = cv2.resize(hopper, (48, 48), interpolation=cv2.INTER_AREA)
    m["tiny"] = write_image(d / "tiny.png", tiny)
    # Bad inputs.
    (d / "notes.mp4").write_text("not a video\n" * 20)
    (d / "notes.jpg").write_text("not an image\n" * 20)
    (d / "empty.mp4").write_bytes(b"")
    (d / "no_images").mkdir()
    (d / "no_images" / "readme.txt").write_text("no images here\n")
    for suffix in ("mkv", "mp4"):
        with av.open(str(d / f"zero.{suffix}"), "w") as container:  # a stream, no frames
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            container.start_encoding()
    # An .mp4 keeps its index (moov) at the end: the first half alone is not readable.
    (d / "cut.mp4").write_bytes(SELFIE.read_bytes()[: SELFIE.stat().st_size // 2])
    return m


@pytest.fixture(scope="module")
def selfie_seq(tmp_path_factory) -> tuple[Path, dict]:
    """The selfie clip's first 4 frames converted once, shared by the convert, info and render tests."""
    out = tmp_path_factory.mktemp("selfie") / "splats"
    result = invoke("convert", SELFIE, "-o", out, "--max-frames", 4, *FAST, "--json")
    assert result.exit_code == 0, result.stderr
    return out, parse_json(result.stdout)


# --- a short real clip, end to end ----------------------------------------------------------------


def test_convert_real_clip(selfie_seq):
    out, result = selfie_seq
    assert result["output"] == str(out)
    assert (result["frames_written"], result["frames_held"], result["frames_missing"], result["frames_resumed"]) == (4, 0, 0, 0)
    manifest = consistent_manifest(out)
    assert [f["file"] for f in manifest["frames"]] == [f"frame_{i:06d}.ply" for i in range(4)]
    assert manifest["complete"] is True
    assert (manifest["image_size"], manifest["source"]["kind"], manifest["source"]["fps"]) == ([640, 360], "video", 30.0)
    assert manifest["source"]["path"] == str(SELFIE.resolve())
    np.testing.assert_allclose([f["time_s"] for f in manifest["frames"]], np.arange(4) / 30, atol=1e-6)
    for f in manifest["frames"]:
        assert f["status"] == "ok" and f["num_splats"] > 0
        x0, y0, x1, y1 = f["face_box"]
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360
    # The default format is the 3DGS PLY viewers read: binary little-endian float32, in this order.
    ply = PlyData.read(str(out / "frame_000000.ply"))
    assert ply.text is False and ply.byte_order == "<"
    vertex = ply["vertex"]
    names = [p.name for p in vertex.properties]
    assert names[:9] == PLY_HEAD and names[-8:] == PLY_TAIL
    assert all(n.startswith("f_rest_") for n in names[9:-8])
    assert {vertex.data.dtype[n].str for n in names} == {"<f4"}
    assert vertex.count == manifest["frames"][0]["num_splats"]


def test_info(selfie_seq):
    out, _ = selfie_seq
    info = run_json("info", out)
    assert (info["frames"], info["held"], info["missing"], info["complete"]) == (4, 0, 0, True)
    assert (info["splat_format"], info["fps"], info["image_size"], info["predictor"]) == ("ply", 30.0, [640, 360], "geometric")
    assert info["splats_per_frame"]["min"] > 0
    lo, hi = np.array(info["bounding_box_m"]["min"]), np.array(info["bounding_box_m"]["max"])
    assert lo[2] > 0.2 and (hi - lo).max() < 1.0  # a head in front of the camera, under a metre across
    text = invoke("info", out)
    assert text.exit_code == 0 and "frames        4" in text.stdout and text.stderr == ""


def test_render_video(selfie_seq, tmp_path):
    out, _ = selfie_seq
    video = tmp_path / "orbit.mp4"
    result = run_json("render", out, "-o", video, "--orbit", 40, "--size", 32)
    assert (result["frames"], result["width"], result["height"], result["fps"]) == (4, 32, 32, 30.0)
    frames = read_frames(video)
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    assert frames[0].max() > 50  # the head is in view, not an empty black frame
    assert [p.name for p in tmp_path.iterdir()] == ["orbit.mp4"]  # no temporary file left
    # An existing output is kept unless --overwrite.
    assert_error(invoke("render", out, "-o", video, "--size", 32), match="--overwrite")


def test_render_png_views_grid(selfie_seq, tmp_path):
    out, _ = selfie_seq
    pngs = tmp_path / "pngs"
    result = run_json("render", out, "--png", pngs, "--views=-30,0,30", "--size", 32)
    assert (result["frames"], result["width"], result["height"]) == (4, 96, 32)  # three panels
    assert sorted(p.name for p in pngs.iterdir()) == [f"frame_{i:06d}.png" for i in range(4)]
    assert read_image(pngs / "frame_000000.png").shape == (32, 96, 3)


def test_render_side_by_side(selfie_seq, tmp_path):
    out, _ = selfie_seq
    video = tmp_path / "sbs.mp4"
    result = run_json("render", out, "-o", video, "--side-by-side", "--size", 32)
    # The 640x360 source scaled to 32 px high is 56 px wide (even), then the 32 px render.
    assert (result["width"], result["height"]) == (56 + 32, 32)
    frames = read_frames(video)
    assert len(frames) == 4 and frames[0].shape == (32, 88, 3)


def test_render_single_ply_fixed_views_is_one_picture(selfie_seq, tmp_path, monkeypatch):
    """Fixed views of one file see the same picture every frame: one frame unless --frames asks
    for a loop, and a loop renders it once."""
    out, _ = selfie_seq
    one = out / "frame_000000.ply"
    result = run_json("render", one, "--png", tmp_path / "a", "--views=-40,0,40", "--size", 32)
    assert (result["frames"], result["width"]) == (1, 96)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["frame_000000.png"]

    from volume_cli import playback

    calls = []
    real_render = playback.render
    monkeypatch.setattr(playback, "render", lambda *a, **k: calls.append(1) or real_render(*a, **k))
    result = run_json("render", one, "--png", tmp_path / "b", "--views=-40,0,40", "--size", 32, "--frames", 3)
    assert result["frames"] == 3 and len(calls) == 1
    pictures = [read_image(tmp_path / "b" / f"frame_{i:06d}.png") for i in range(3)]
    assert all(np.array_equal(p, pictures[0]) for p in pictures)
    assert np.array_equal(pictures[0], read_image(tmp_path / "a" / "frame_000000.png"))


def test_render_single_ply(selfie_seq, tmp_path):
    out, _ = selfie_seq
    video = tmp_path / "one.mp4"
    result = run_json("render", out / "frame_000000.ply", "-o", video, "--frames", 2, "--size", 32, "--fps", 10)
    assert (result["frames"], result["width"], result["fps"]) == (2, 32, 10.0)
    assert len(read_frames(video)) == 2
    info = run_json("info", out / "frame_000000.ply")
    assert (info["frames"], info["complete"], info["fps"], info["splat_format"]) == (1, True, None, "ply")


@pytest.mark.parametrize(
    "args, match",
    [
        (["--size", 33], "even"),
        (["--png", "pngs"], "exactly one"),
        (["--orbit", 10, "--parallax", 3], "one camera path"),
        (["--views", "a,b"], "--views"),
        (["--background", "pink"], "background"),
    ],
)
def test_render_usage_errors(selfie_seq, tmp_path, args, match):
    out, _ = selfie_seq
    result = invoke("render", out, "-o", tmp_path / "x.mp4", *args)
    assert result.exit_code == 2 and match in result.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_render_bad_targets(selfie_seq, tmp_path):
    out, _ = selfie_seq
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dir.mp4").mkdir()
    assert_error(invoke("render", tmp_path / "nothing", "-o", tmp_path / "a.mp4"), match="does not exist")
    assert_error(invoke("render", tmp_path, "-o", tmp_path / "a.mp4"), match="no sequence.json")
    assert_error(invoke("render", out, "-o", tmp_path / "no" / "a.mp4", "--size", 32), match="not an existing folder")
    assert_error(invoke("render", out, "-o", tmp_path / "dir.mp4", "--size", 32), match="is a folder")
    assert_error(invoke("render", out, "-o", tmp_path / "a.avi", "--size", 32), match=r"\.mp4")
    assert_error(invoke("render", out, "--png", tmp_path / "file.txt", "--size", 32), match="not a folder")
    # --side-by-side needs the source video; one that has moved fails before a video is kept.
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    manifest = json.loads((moved / "sequence.json").read_text())
    manifest["source"]["path"] = str(tmp_path / "gone.mp4")
    (moved / "sequence.json").write_text(json.dumps(manifest))
    assert_error(invoke("render", moved, "-o", tmp_path / "b.mp4", "--side-by-side", "--size", 32), match="not there any more")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.mp4", "file.txt", "moved"]


def test_info_on_a_damaged_sequence(selfie_seq, tmp_path):
    out, _ = selfie_seq
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    (damaged / "frame_000002.ply").unlink()
    assert_error(invoke("info", damaged), match="missing")
    shutil.copy(out / "frame_000002.ply", damaged)
    (damaged / "frame_000001.ply").write_bytes((out / "frame_000001.ply").read_bytes()[:5000])
    assert_error(invoke("info", damaged), match="frame_000001.ply")
    assert_error(invoke("render", damaged, "-o", tmp_path / "x.mp4", "--size", 32), match="frame_000001.ply")
    assert not (tmp_path / "x.mp4").exists()  # a render that fails part-way leaves no video
    (damaged / "sequence.json").write_text("garbage")
    assert_error(invoke("info", damaged), match="not valid JSON")
    # One record's line cut short (a disk that filled up, a bad edit): one line naming the file.
    text = (out / "sequence.json").read_text()
    line = next(x for x in text.splitlines() if x.startswith('    {"index": 2,'))
    (damaged / "sequence.json").write_text(text.replace(line, line[:60]))
    for command in (["info", damaged], ["render", damaged, "-o", tmp_path / "x.mp4", "--size", 32]):
        assert_error(invoke(*command), match=r"damaged/sequence\.json: not valid JSON")


def test_the_line_reader_and_the_whole_file_reader_agree_on_a_converted_sequence(selfie_seq, tmp_path, monkeypatch):
    """sequence.json as convert wrote it is read a line at a time; the same JSON laid out otherwise
    (indent=2, as an older volume wrote it) is read whole; both give the same listing and info."""
    out, _ = selfie_seq
    reformatted = tmp_path / "reformatted"
    shutil.copytree(out, reformatted)
    (reformatted / "sequence.json").write_text(json.dumps(json.loads((out / "sequence.json").read_text()), indent=2))
    whole = []
    events_of_whole = manifest_module._events_of_whole
    monkeypatch.setattr(manifest_module, "_events_of_whole", lambda *a: whole.append(1) or events_of_whole(*a))
    lines, parsed = read_listing(out), read_listing(reformatted)
    assert whole == [1]  # the reformatted one only
    assert lines.header() == parsed.header() and lines.complete is True
    for name in ("index", "time_s", "held", "num_splats", "head_center"):
        np.testing.assert_array_equal(getattr(lines.frames, name), getattr(parsed.frames, name))
    assert read_manifest(out) == read_manifest(reformatted)
    assert read_manifest(out).frames[0].head_center == lines.frames.head_center[0].tolist()
    assert run_json("info", out) | {"path": ""} == run_json("info", reformatted) | {"path": ""}


# --- bad input: one line, exit 1, nothing written --------------------------------------------------


@pytest.mark.parametrize(
    "name, match",
    [
        ("missing.mp4", "does not exist"),
        ("notes.mp4", "not a readable video"),
        ("notes.jpg", "not a readable image"),
        ("empty.mp4", r"empty \(0 bytes\)"),
        ("zero.mkv", "ends before its first video frame"),
        ("zero.mp4", "no video stream"),  # the mp4 muxer drops a track without samples
        ("cut.mp4", "not a readable video"),  # the index (moov) is in the missing half
        ("no_images", "folder with no images"),
        ("mixed", "one size"),
    ],
)
def test_convert_bad_input(media, tmp_path, name, match):
    source = media["face_png"].parent / name
    result = invoke("convert", source, "-o", tmp_path / "out", *FAST)
    assert_error(result, match=match)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, warning",
    [
        # Matroska ends cleanly at the cut: the header's duration shows frames are missing.
        ("truncated.mkv", r"frames end at .* it may be truncated"),
        # The mp4 index lists frames whose data is gone: the decoder stops on the first.
        ("truncated.mp4", r"decoding stopped at frame \d+: "),
    ],
)
def test_convert_truncated_video_keeps_the_decodable_frames(media, tmp_path, name, warning):
    out = tmp_path / "out"
    result = invoke("convert", media[name], "-o", out, *FAST)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Wrote ")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and re.match(rf"Warning: {re.escape(str(media[name]))}: {warning}", lines[0]), result.stderr
    manifest = consistent_manifest(out)
    assert manifest["complete"]
    assert len(manifest["frames"]) == decodable_frames(media[name]) > 1
    assert len(manifest["frames"]) < 16
    # --quiet: the result line only, no warning.
    quiet = invoke("convert", media[name], "-o", out, *FAST, "--overwrite", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout.startswith("Wrote ")


def test_convert_no_face_anywhere(media, tmp_path):
    out = tmp_path / "out"
    assert_error(invoke("convert", NO_FACE, "-o", out, "--max-frames", 6, *FAST), match="no face found in any of its 6 frames")
    assert_error(invoke("convert", media["no_face_png"], "-o", out, *FAST), match="no face found")
    assert not out.exists()


def test_convert_tiny_face_is_a_clean_no_face_error(media, tmp_path):
    # Documented limit: a face about 1 % of the frame width (22 px in 1920) is not found.
    assert_error(invoke("convert", media["tiny"], "-o", tmp_path / "out", *FAST), match="no face found")
    assert not (tmp_path / "out").exists()


def test_convert_huge_frame(media, tmp_path):
    result = run_json("convert", media["huge"], "-o", tmp_path / "out", *FAST)
    assert result["frames_written"] == 1
    manifest = consistent_manifest(tmp_path / "out")
    assert manifest["image_size"] == [3840, 2160] and manifest["source"]["kind"] == "image"
    x0, y0, x1, y1 = manifest["frames"][0]["face_box"]
    assert 840 < x0 < x1 < 3000 and x1 - x0 > 500


# --- face lost mid-video: --on-missing ------------------------------------------------------------


def test_on_missing_skip(media, tmp_path):
    out = tmp_path / "out"
    result = run_json("convert", media["lost"], "-o", out, *FAST, "--on-missing", "skip")
    assert (result["frames_written"], result["frames_held"], result["frames_missing"]) == (5, 0, 2)
    manifest = consistent_manifest(out)
    assert [f["index"] for f in manifest["frames"]] == [0, 1, 2, 5, 6]
    assert [(m["index"], m["action"]) for m in manifest["missing"]] == [(3, "skipped"), (4, "skipped")]
    info = run_json("info", out)
    assert (info["frames"], info["missing_frames"]) == (5, [3, 4])


def test_on_missing_hold(media, tmp_path):
    out = tmp_path / "out"
    result = run_json("convert", media["lost"], "-o", out, *FAST, "--on-missing", "hold")
    assert (result["frames_written"], result["frames_held"], result["frames_missing"]) == (5, 2, 0)
    manifest = consistent_manifest(out)
    frames = {f["index"]: f for f in manifest["frames"]}
    assert sorted(frames) == list(range(7))
    assert [i for i, f in frames.items() if f["status"] == "held"] == [3, 4]
    assert frames[3]["face_box"] is None and frames[2]["face_box"] is not None
    assert [(m["index"], m["action"]) for m in manifest["missing"]] == [(3, "held"), (4, "held")]
    # A held frame repeats the last frame with a face, byte for byte, at its own time.
    held_from = (out / "frame_000002.ply").read_bytes()
    assert (out / "frame_000003.ply").read_bytes() == held_from == (out / "frame_000004.ply").read_bytes()
    assert frames[3]["time_s"] > frames[2]["time_s"]


def test_on_missing_hold_when_the_first_frames_have_no_face(media, tmp_path):
    out = tmp_path / "out"
    result = run_json("convert", media["late"], "-o", out, *FAST, "--on-missing", "hold")
    assert (result["frames_written"], result["frames_held"], result["frames_missing"]) == (3, 2, 0)
    frames = {f["index"]: f for f in consistent_manifest(out)["frames"]}
    assert sorted(frames) == list(range(5))
    assert [i for i, f in frames.items() if f["status"] == "held"] == [0, 1]
    # "The first found at the start": frames 0 and 1 repeat frame 2, the first with a face.
    first_found = (out / "frame_000002.ply").read_bytes()
    assert (out / "frame_000000.ply").read_bytes() == first_found == (out / "frame_000001.ply").read_bytes()
    assert (out / "frame_000003.ply").read_bytes() != first_found
    assert frames[0]["time_s"] < frames[1]["time_s"] < frames[2]["time_s"]


def test_off_centre_face_splats_land_on_the_face_in_the_original_camera(media, tmp_path):
    """Splats are written in the ORIGINAL camera's frame: projected with its intrinsics, the
    person's opaque splats sit on the face the detector found, even far from the image centre."""
    out = tmp_path / "out"
    run_json("convert", media["corner"], "-o", out, *FAST)
    manifest = consistent_manifest(out)
    K = np.array(manifest["intrinsics"]["K"])
    x0, y0, x1, y1 = manifest["frames"][0]["face_box"]
    assert x0 > 900 and y1 < 360  # the face really is in the corner
    ply = PlyData.read(str(out / "frame_000000.ply"))["vertex"]
    means = np.stack([ply["x"], ply["y"], ply["z"]], axis=1)
    opaque = means[1 / (1 + np.exp(-ply["opacity"])) > 0.5]
    assert len(opaque) > 500 and (opaque[:, 2] > 0.2).all()  # in front of the camera
    pixels = (K @ (opaque / opaque[:, 2:]).T).T[:, :2]
    cx, cy = np.median(pixels, axis=0)
    assert x0 < cx < x1 and y0 < cy < y1, f"median splat at ({cx:.0f}, {cy:.0f}), face box {x0:.0f}-{x1:.0f} x {y0:.0f}-{y1:.0f}"
    inside = (pixels[:, 0] > x0) & (pixels[:, 0] < x1) & (pixels[:, 1] > y0) & (pixels[:, 1] < y1)
    assert inside.mean() > 0.25  # 0.39 measured: the head crop also holds hair, neck and shoulders


def test_convert_into_new_nested_folders_leaves_nothing_beside_them(media, tmp_path):
    """Pass 1 keeps the landmarks in a temporary file beside the output (its nearest existing
    parent folder); the file is unlinked from the start, so nothing is left there."""
    out = tmp_path / "a" / "b" / "out"
    result = run_json("convert", media["lost"], "-o", out, *FAST)
    assert result["frames_written"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"] and sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]
    assert {p.name for p in out.iterdir()} == {"sequence.json"} | {f"frame_{i:06d}.ply" for i in (0, 1, 2, 5, 6)}


def test_on_missing_fail(media, tmp_path):
    out = tmp_path / "out"
    assert_error(invoke("convert", media["lost"], "-o", out, *FAST, "--on-missing", "fail"), match=r"no face in frame 3 .*--on-missing")
    assert not out.exists()


# --- several people, portrait video, formats, image inputs, selection ------------------------------


@pytest.mark.parametrize("name, big_side", [("two_left", "left"), ("two_right", "right")])
def test_several_people_the_largest_face_is_chosen(media, tmp_path, name, big_side):
    run_json("convert", media[name], "-o", tmp_path / "out", *FAST)
    (frame,) = consistent_manifest(tmp_path / "out")["frames"]
    box = frame["face_box"]
    # The large face is 320 px wide, the small one 180: the box must be the large one's.
    assert (box_centre_x(box) < 320) == (big_side == "left")
    assert box[2] - box[0] > 100


def test_portrait_phone_video(media, tmp_path):
    result = run_json("convert", media["portrait"], "-o", tmp_path / "out", *FAST)
    assert result["frames_written"] == 2
    manifest = consistent_manifest(tmp_path / "out")
    assert manifest["image_size"] == [360, 640]  # upright: portrait
    assert manifest["source"]["rotation_deg"] == 90
    for f in manifest["frames"]:
        x0, y0, x1, y1 = f["face_box"]
        assert 0 <= x0 < x1 <= 360 and 0 <= y0 < y1 <= 640  # found in the upright image


@pytest.mark.parametrize("fmt, suffix", [("splat", ".splat"), ("ply-compressed", ".compressed.ply")])
def test_convert_formats(media, tmp_path, fmt, suffix):
    out = tmp_path / "out"
    run_json("convert", media["face_png"], "-o", out, *FAST, "--format", fmt)
    manifest = consistent_manifest(out)
    assert manifest["splat_format"] == fmt
    assert [f["file"] for f in manifest["frames"]] == [f"frame_000000{suffix}"]
    info = run_json("info", out)
    assert info["splat_format"] == fmt and info["splats_per_frame"]["min"] > 0


def test_convert_folder_of_images(media, tmp_path):
    run_json("convert", media["frames"], "-o", tmp_path / "out", *FAST)
    manifest = consistent_manifest(tmp_path / "out")
    assert manifest["source"]["kind"] == "images" and manifest["source"]["fps"] is None
    assert [(f["index"], f["time_s"]) for f in manifest["frames"]] == [(0, 0.0), (1, 1.0)]


def test_convert_selection(tmp_path):
    # 30 fps: frames 3, 4, 5 lie in [0.1 s, 0.2 s); every second one of them is 3 and 5.
    run_json("convert", SELFIE, "-o", tmp_path / "out", *FAST, "--start", 0.1, "--end", 0.2, "--every", 2)
    assert [f["index"] for f in consistent_manifest(tmp_path / "out")["frames"]] == [3, 5]
    assert_error(invoke("convert", SELFIE, "-o", tmp_path / "late", "--start", 10), match="no frames between 10 s")
    assert not (tmp_path / "late").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "obj"],
        ["--start", 2, "--end", 1],
        ["--every", 0],
        ["--size", 16],
        ["--on-missing", "ignore"],
        ["--overwrite", "--resume"],
        ["--weights", Path(__file__)],  # weights for the geometric predictor
    ],
)
def test_convert_usage_errors(media, tmp_path, args):
    result = invoke("convert", media["face_png"], "-o", tmp_path / "out", *args)
    assert result.exit_code == 2 and "Error" in result.stderr and result.stdout == ""
    assert not (tmp_path / "out").exists()


# --- the output folder ------------------------------------------------------------------------------


def test_existing_output_folder(selfie_seq, media, tmp_path):
    out, _ = selfie_seq
    before = (out / "sequence.json").read_bytes()
    assert_error(invoke("convert", media["face_png"], "-o", out, *FAST), match="--overwrite.*--resume")
    assert (out / "sequence.json").read_bytes() == before
    assert_error(invoke("convert", media["face_png"], "-o", media["face_png"] / "sub", *FAST), match="not a folder")
    assert_error(invoke("convert", media["face_png"], "-o", media["face_png"], *FAST), match="not a folder")

    # --overwrite replaces what convert wrote and keeps the user's other files ...
    folder = tmp_path / "splats"
    shutil.copytree(out, folder)
    (folder / "notes.txt").write_text("mine")
    # ... but only once the new input is known to be good: a failed run leaves the old sequence.
    assert_error(invoke("convert", media["no_face_png"], "-o", folder, *FAST, "--overwrite"), match="no face")
    assert len(consistent_manifest(folder)["frames"]) == 4
    result = run_json("convert", media["face_png"], "-o", folder, *FAST, "--overwrite")
    assert result["frames_written"] == 1
    manifest = consistent_manifest(folder)
    assert manifest["source"]["kind"] == "image" and len(manifest["frames"]) == 1
    assert (folder / "notes.txt").read_text() == "mine"
    # --resume of a different input is refused, and so is the same input with other options.
    assert_error(invoke("convert", media["frames"], "-o", folder, *FAST, "--resume"), match="different source")
    before = (folder / "sequence.json").read_bytes()
    for other in (["--size", "96"], [*FAST, "--every", "2"], [*FAST, "--format", "splat"]):
        assert_error(invoke("convert", media["face_png"], "-o", folder, *other, "--resume"), match="different options")
    assert (folder / "sequence.json").read_bytes() == before


# --- Ctrl-C (and SIGTERM), then --resume -----------------------------------------------------------

INTERRUPTED_FRAMES = 12


def interrupt_convert(out: Path, sig: int, *extra: str, after_frames: int = 1) -> tuple[list[str], int, str, str]:
    """Run convert as a real process, send ``sig`` once ``after_frames`` frame files exist; return
    the command and the exit code, stdout and stderr."""
    cmd = [str(VOLUME), "convert", str(SELFIE), "-o", str(out), *FAST, "--max-frames", str(INTERRUPTED_FRAMES), "--batch-size", "1", *extra]
    # A shell that starts a job in the background without job control makes it ignore SIGINT, and a
    # Python started that way honours it (no KeyboardInterrupt): give the child the default
    # disposition so the test does not depend on how the suite was launched.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("frame_*.ply"))) < after_frames:
            assert proc.poll() is None, f"convert ended before writing a frame: {proc.communicate()}"
            assert time.monotonic() < deadline, "no frame written in 120 s"
            time.sleep(0.01)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return cmd, proc.returncode, stdout, stderr


def assert_interrupted_cleanly(out: Path, code: int, stdout: str, stderr: str, as_json: bool = False) -> dict:
    assert code == 130, stderr
    if as_json:  # one object on stdout, counting what the manifest lists
        result = parse_json(stdout)
        manifest = consistent_manifest(out)
        assert (result["complete"], result["interrupted"]) == (False, True) and "--resume" in result["resume"]
        assert result["frames_written"] == len(manifest["frames"]) and result["frames_held"] == 0
    else:
        assert stdout == ""
    assert stderr.splitlines()[-1].startswith("Error: interrupted;") and "--resume" in stderr, stderr
    manifest = consistent_manifest(out)
    assert manifest["complete"] is False
    assert 1 <= len(manifest["frames"]) < INTERRUPTED_FRAMES
    return manifest


needs_script = pytest.mark.skipif(not VOLUME.exists(), reason="the volume console script is not installed")


@needs_script
def test_ctrl_c_then_resume(tmp_path):
    out = tmp_path / "out"
    cmd, code, stdout, stderr = interrupt_convert(out, signal.SIGINT)
    done = len(assert_interrupted_cleanly(out, code, stdout, stderr)["frames"])
    info = run_json("info", out)
    assert (info["complete"], info["frames"]) == (False, done)
    first = (out / "frame_000000.ply").read_bytes()

    resumed = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    result = parse_json(resumed.stdout)  # native libraries print nothing on stdout either
    assert (result["frames_resumed"], result["frames_written"]) == (done, INTERRUPTED_FRAMES - done)
    manifest = consistent_manifest(out)
    assert manifest["complete"] is True
    assert [f["index"] for f in manifest["frames"]] == list(range(INTERRUPTED_FRAMES))
    assert (out / "frame_000000.ply").read_bytes() == first  # finished frames are not redone


@needs_script
def test_a_killed_convert_resumes_from_its_records_journal(tmp_path):
    """SIGKILL (the OOM killer, a dead cluster worker): no last rewrite of sequence.json, which
    lists only the frames of its last periodic one; the journal beside it has every finished
    frame's record, so --resume redoes none of them and the folder ends listing exactly its files."""
    out = tmp_path / "out"
    cmd, code, _, stderr = interrupt_convert(out, signal.SIGKILL, after_frames=4)
    assert code == -signal.SIGKILL, stderr
    journal = [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines()]
    listed = json.loads((out / "sequence.json").read_text())["frames"]
    assert len(listed) <= len(journal) >= 3 and listed == journal[: len(listed)]
    assert all((out / r["file"]).is_file() for r in journal)
    (out / journal[1]["file"]).unlink()  # a frame file lost since: its record no longer counts
    journal.pop(1)
    kept = {r["file"]: (out / r["file"]).stat().st_ino for r in journal}
    resumed = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    result = parse_json(resumed.stdout)
    assert (result["frames_resumed"], result["frames_written"]) == (len(journal), INTERRUPTED_FRAMES - len(journal))
    manifest = consistent_manifest(out)
    assert manifest["complete"] is True and [f["index"] for f in manifest["frames"]] == list(range(INTERRUPTED_FRAMES))
    assert {name: (out / name).stat().st_ino for name in kept} == kept  # not written again
    assert [f for f in manifest["frames"] if f["file"] in kept] == journal


@needs_script
def test_sigterm_stops_like_ctrl_c_and_json_still_prints_its_object(tmp_path):
    # kill, timeout(1) and cancelled CI jobs send SIGTERM; the folder must be as consistent, and a
    # script reading --json still gets one object that says the run is incomplete.
    _, code, stdout, stderr = interrupt_convert(tmp_path / "out", signal.SIGTERM, "--json")
    assert_interrupted_cleanly(tmp_path / "out", code, stdout, stderr, as_json=True)


def test_convert_with_unet_weights_of_ones_own(media, tmp_path):
    """--predictor unet --weights FILE: the file is hash-checked and recorded in sequence.json; a
    tampered file is refused before anything is written. (Untrained weights: this tests the
    plumbing, not a model.)"""
    from volume_cli.predictors import unet

    weights = tmp_path / "mine" / "unet.safetensors"
    card = unet.save_weights(unet.UNet((16, 16, 32, 32, 64)), weights, {"config": {"size": 64}, "steps": 0})
    out = tmp_path / "out"
    result = invoke("convert", media["face_png"], "-o", out, *FAST, "--predictor", "unet", "--weights", weights, "--json")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((out / "sequence.json").read_text())
    assert manifest["predictor"] == {"name": "unet", "weights_sha256": card["sha256"]}
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert_error(invoke("convert", media["face_png"], "-o", tmp_path / "bad", *FAST, "--predictor", "unet", "--weights", weights),
                 match="refusing to load")
    assert not (tmp_path / "bad").exists()
