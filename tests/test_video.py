"""volume_cli.video: decoding and encoding, on small clips made here with PyAV (no ffmpeg)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from volume_cli.video import Frame, InputError, PngWriter, VideoWriter, open_source

W, H = 64, 48  # fixture frame size in pixels
SQUARE = 8  # side of the moving white square, pixels
STEP = 3  # the square moves this many pixels right per frame, so its x position names the frame
REPO = Path(__file__).resolve().parents[1]
from realdata import SELFIE, needs_real


def _frame_image(i: int, width: int = W, height: int = H) -> np.ndarray:
    """[H, W, 3] uint8 RGB: dark grey, a white square at x = STEP * i (mod the width)."""
    image = np.full((height, width, 3), 40, np.uint8)
    x = STEP * i % (width - SQUARE)
    image[8 : 8 + SQUARE, x : x + SQUARE] = 255
    return image


def _square_x(image: np.ndarray) -> int:
    """Left edge of the bright square in a decoded frame."""
    # Row 12 crosses the square (rows 8-15); threshold half-way between grey 40 and white 255.
    columns = np.flatnonzero(image[12].mean(axis=1) > 150)
    return int(columns[0])


def _write_clip(path, n=16, fps=24, codec="libx264", pix_fmt="yuv420p", gop=None, rotation=None,
                pts_ms=None, images=None, options=None):
    """Encode n frames of _frame_image (or `images`) with PyAV. pts_ms gives variable timing
    (milliseconds); rotation sets the display matrix (counter-clockwise degrees)."""
    images = images if images is not None else [_frame_image(i) for i in range(n)]
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if gop:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def clip(tmp_path):
    return _write_clip(tmp_path / "clip.mp4")


# --- decoding: counts, timestamps, selection ---------------------------------------------------


def test_decodes_every_frame_with_pts_timestamps(clip):
    source = open_source(clip)
    assert (source.kind, source.width, source.height, source.fps) == ("video", W, H, 24.0)
    assert (source.frame_count, source.rotation_deg) == (16, 0)
    frames = list(source)
    assert [f.index for f in frames] == list(range(16))
    # mp4 stores pts in 1/12288 s ticks; 1e-6 s covers the float conversion only.
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(16) / 24, atol=1e-6)
    for f in frames:
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert f.image.flags.c_contiguous
        assert _square_x(f.image) == STEP * f.index
    assert source.warnings == []


def test_iterating_twice_gives_the_same_frames(clip):
    source = open_source(clip, every=5)
    assert [f.index for f in source] == [f.index for f in source] == [0, 5, 10, 15]


def test_variable_frame_rate_keeps_real_times(tmp_path):
    pts_ms = [0, 40, 60, 150, 200, 330, 340, 500]
    path = _write_clip(tmp_path / "vfr.mkv", n=len(pts_ms), pts_ms=pts_ms)
    frames = list(open_source(path))
    assert [f.index for f in frames] == list(range(len(pts_ms)))
    # Matroska stores milliseconds, so the times are exact.
    assert [f.time_s for f in frames] == [t / 1000 for t in pts_ms]
    assert [_square_x(f.image) for f in frames] == [STEP * i for i in range(len(pts_ms))]
    selected = open_source(path, start_s=0.06, end_s=0.34)
    assert [f.time_s for f in selected] == [0.06, 0.15, 0.2, 0.33]


@pytest.mark.parametrize(
    "selection, expected",
    [
        (dict(every=3), [0, 3, 6, 9, 12, 15]),
        (dict(max_frames=4), [0, 1, 2, 3]),
        # t = i / 24: [0.25, 0.5) holds frames 6..11.
        (dict(start_s=0.25, end_s=0.5), [6, 7, 8, 9, 10, 11]),
        (dict(start_s=0.25, end_s=0.5, every=2, max_frames=2), [6, 8]),
        (dict(start_s=0.5), [12, 13, 14, 15]),
        (dict(end_s=0.1), [0, 1, 2]),
    ],
)
def test_selection(clip, selection, expected):
    frames = list(open_source(clip, **selection))
    assert [f.index for f in frames] == expected
    assert [_square_x(f.image) for f in frames] == [STEP * i for i in expected]


class _CountingContainer:
    """Wraps a PyAV input container and counts the frames it decodes."""

    opened: list[_CountingContainer] = []

    def __init__(self, container):
        self._container = container
        self.decoded = 0
        _CountingContainer.opened.append(self)

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._container.__exit__(*exc)

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self.decoded += 1
            yield frame


@pytest.fixture
def count_decoded(monkeypatch):
    real_open = av.open
    _CountingContainer.opened = []
    monkeypatch.setattr(av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k)))
    return _CountingContainer.opened


def test_seeks_to_start_instead_of_decoding_from_zero(tmp_path, count_decoded):
    # 96 frames at 24 fps with a keyframe every 12: start_s = 3.0 is frame 72, itself a keyframe.
    images = [_frame_image(i, width=256) for i in range(96)]  # wide enough that x names the frame
    path = _write_clip(tmp_path / "long.mp4", gop=12, images=images)
    source = open_source(path, start_s=3.0, max_frames=2)
    frames = list(source)
    assert [f.index for f in frames] == [72, 73]
    assert frames[0].time_s == pytest.approx(3.0, abs=1e-6)
    assert [_square_x(f.image) for f in frames] == [STEP * 72, STEP * 73]
    # The pass decoded from the keyframe at 72, not the 72 frames before it (slack: threads).
    assert count_decoded[-1].decoded <= 12


def test_stops_decoding_once_the_selection_is_complete(tmp_path, count_decoded):
    path = _write_clip(tmp_path / "long.mp4", n=96)
    assert len(list(open_source(path, max_frames=3))) == 3
    assert count_decoded[-1].decoded <= 12
    assert len(list(open_source(path, end_s=0.2))) == 5
    assert count_decoded[-1].decoded <= 12


def test_empty_selection_is_an_input_error(clip):
    with pytest.raises(InputError, match=r"clip\.mp4: no frames between 5 s and the end"):
        list(open_source(clip, start_s=5.0))


@pytest.mark.parametrize(
    "selection",
    [dict(every=0), dict(max_frames=0), dict(start_s=-1.0), dict(start_s=2.0, end_s=1.0)],
)
def test_bad_selection_arguments(clip, selection):
    with pytest.raises(ValueError):
        open_source(clip, **selection)


# --- rotation metadata -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "display_rotation, rotation_deg, corner",
    [
        (0, 0, "top-left"),
        (90, 90, "bottom-left"),  # counter-clockwise quarter turn: the top edge becomes the left
        (-90, 270, "top-right"),  # a phone held upright: stored landscape, turned clockwise to show
        (180, 180, "bottom-right"),
    ],
)
def test_rotation_metadata_gives_upright_frames(tmp_path, display_rotation, rotation_deg, corner):
    image = np.full((H, W, 3), 40, np.uint8)
    image[:8, :8] = (255, 0, 0)  # red marker in the stored top-left corner
    path = _write_clip(tmp_path / "rot.mp4", rotation=display_rotation, images=[image] * 3)
    source = open_source(path)
    assert source.rotation_deg == rotation_deg
    frame = next(iter(source))
    assert frame.image.shape == (source.height, source.width, 3)
    assert (source.width, source.height) == ((H, W) if rotation_deg in (90, 270) else (W, H))
    h, w = frame.image.shape[:2]
    row, col = {"top-left": (2, 2), "top-right": (2, w - 3), "bottom-left": (h - 3, 2),
                "bottom-right": (h - 3, w - 3)}[corner]
    # yuv420p blurs the marker's edge, not its centre: 40 levels of slack.
    np.testing.assert_allclose(frame.image[row, col], (255, 0, 0), atol=40)
    assert frame.image.flags.c_contiguous


def test_rotation_off_a_right_angle_is_rounded_with_a_warning(tmp_path):
    path = _write_clip(tmp_path / "tilted.mp4", n=2, rotation=80)
    source = open_source(path)
    assert (source.rotation_deg, source.width, source.height) == (90, H, W)
    assert source.warnings == [f"{path}: display rotation 80 deg rounded to 90 deg"]


# --- pixel formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, codec, pix_fmt",
    [
        ("yuv420p.mp4", "libx264", "yuv420p"),
        ("yuvj420p.mp4", "libx264", "yuvj420p"),  # full-range JPEG levels, as phones write
        ("yuv420p10.mkv", "libx264", "yuv420p10le"),
        ("yuv444p.mkv", "libx264", "yuv444p"),
        ("rgb24.mov", "png", "rgb24"),
        ("rgba.mov", "png", "rgba"),
        ("gray.mkv", "ffv1", "gray"),
        ("yuva420p.mkv", "ffv1", "yuva420p"),
    ],
)
def test_any_pixel_format_comes_out_as_rgb24(tmp_path, name, codec, pix_fmt):
    image = np.zeros((H, W, 3), np.uint8)
    image[:, : W // 2] = (200, 60, 30)
    image[:, W // 2 :] = (20, 180, 90)
    path = _write_clip(tmp_path / name, codec=codec, pix_fmt=pix_fmt, images=[image] * 4)
    frames = list(open_source(path))
    assert len(frames) == 4
    out = frames[2].image
    assert out.shape == (H, W, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    if pix_fmt == "gray":
        expected = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None].repeat(3, axis=2)
    else:
        expected = image
    # Away from the colour edge (chroma subsampling): 8 levels covers rounding in two conversions.
    np.testing.assert_allclose(out[:, 4:24], expected[:, 4:24], atol=8)
    np.testing.assert_allclose(out[:, 40:60], expected[:, 40:60], atol=8)


# --- damaged and unusable inputs ---------------------------------------------------------------


def _noisy_images(n: int) -> list[np.ndarray]:
    """Frames with noise, so that each one takes real space in the file and a cut lands mid-clip."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 60, (n, H, W, 3))
    return [np.clip(_frame_image(i) + noise[i], 0, 255).astype(np.uint8) for i in range(n)]


def test_truncated_matroska_gives_the_frames_before_the_cut(tmp_path):
    path = _write_clip(tmp_path / "cut.mkv", images=_noisy_images(48))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = open_source(path)
    frames = list(source)
    assert 10 < len(frames) < 48
    assert [f.index for f in frames] == list(range(len(frames)))
    assert [_square_x(f.image) for f in frames[:10]] == [STEP * i for i in range(10)]
    # Matroska ends cleanly at the cut; only the header's duration shows that frames are missing.
    assert len(source.warnings) == 1 and "truncated" in source.warnings[0]


def test_truncated_mp4_reports_where_decoding_stopped(tmp_path):
    # faststart puts the index first, so the cut leaves it whole and only media data is missing.
    path = _write_clip(tmp_path / "cut.mp4", images=_noisy_images(48),
                       options={"movflags": "+faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = open_source(path)
    frames = list(source)
    assert 5 < len(frames) < 48
    assert [_square_x(f.image) for f in frames[:5]] == [STEP * i for i in range(5)]
    assert len(source.warnings) == 1
    assert source.warnings[0].startswith(f"{path}: decoding stopped at frame {len(frames)}: ")


def test_end_before_the_damage_reads_cleanly(tmp_path):
    path = _write_clip(tmp_path / "cut.mkv", images=_noisy_images(48))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = open_source(path, end_s=0.2)
    assert len(list(source)) == 5
    assert source.warnings == []


def test_video_with_no_decodable_frame(tmp_path):
    # Cut right after the start of the media data: the index promises 16 frames, none are there.
    path = _write_clip(tmp_path / "empty_media.mp4", options={"movflags": "+faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"mdat") + 64])
    with pytest.raises(InputError, match=r"empty_media\.mp4 has no decodable video frames"):
        open_source(path)


def test_video_stream_of_garbage_packets(tmp_path):
    path = tmp_path / "garbage.mkv"
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(8):
            packet = av.Packet(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, Fraction(1, 24)
            container.mux(packet)
    with pytest.raises(InputError, match="has no decodable video frames"):
        open_source(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "speech.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        silence = np.zeros((1, 800), np.int16)  # [channels, samples]
        frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(InputError, match=r"speech\.wav has no video stream"):
        open_source(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.mp4", b"not a video\n" * 20, r"notes\.mp4 is not a readable video or image \("),
        ("empty.mp4", b"", r"empty\.mp4 is empty \(0 bytes\)"),
        ("broken.png", b"not a png", r"broken\.png is not a readable image"),
    ],
)
def test_unusable_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_source(tmp_path / name)


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match=r"nope\.mp4 does not exist"):
        open_source(tmp_path / "nope.mp4")


def test_input_error_messages_are_one_line(tmp_path):
    (tmp_path / "notes.mp4").write_bytes(b"not a video\n" * 20)
    with pytest.raises(InputError) as info:
        open_source(tmp_path / "notes.mp4")
    assert "\n" not in str(info.value)


# --- stills and folders ------------------------------------------------------------------------


def _write_png(path: Path, rgb: tuple[int, int, int], width: int = W, height: int = H) -> None:
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = rgb
    cv2.imwrite(str(path), image[:, :, ::-1])


def test_single_image(tmp_path):
    _write_png(tmp_path / "face.png", (255, 0, 0))
    source = open_source(tmp_path / "face.png")
    assert (source.kind, source.width, source.height) == ("image", W, H)
    assert (source.fps, source.frame_count, source.rotation_deg) == (None, 1, 0)
    frames = list(source)
    assert [(f.index, f.time_s) for f in frames] == [(0, 0.0)]
    assert tuple(frames[0].image[0, 0]) == (255, 0, 0)  # RGB order, not OpenCV's BGR


def test_folder_is_sorted_naturally_and_ignores_other_files(tmp_path):
    for name, value in [("img10.png", 10), ("img2.png", 2), ("img1.png", 1), ("IMG3.jpg", 3)]:
        _write_png(tmp_path / name, (value, value, value))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._img1.png").write_bytes(b"macOS resource fork")
    (tmp_path / "sub").mkdir()
    source = open_source(tmp_path)
    assert (source.kind, source.frame_count) == ("images", 4)
    frames = list(source)
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 3, 10]
    assert [(f.index, f.time_s) for f in frames] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)]
    assert [int(f.image[0, 0, 0]) for f in open_source(tmp_path, every=2)] == [1, 3]


def test_gray_image_comes_out_as_rgb(tmp_path):
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((H, W), 77, np.uint8))
    image = next(iter(open_source(tmp_path / "gray.png"))).image
    assert image.shape == (H, W, 3) and (image == 77).all()


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="is a folder with no images"):
        open_source(tmp_path)


def test_folder_with_mixed_sizes(tmp_path):
    _write_png(tmp_path / "a1.png", (0, 0, 0))
    _write_png(tmp_path / "a2.png", (0, 0, 0), width=W + 2)
    with pytest.raises(InputError, match=r"a2\.png is 66x48 but the first image is 64x48"):
        list(open_source(tmp_path))


# --- encoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm"])
def test_video_writer_round_trip(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    images = [_frame_image(i) for i in range(10)]
    with VideoWriter(path, 24, W, H) as writer:
        for image in images:
            writer.write(image)
    assert writer.codec == ("libvpx-vp9" if suffix == ".webm" else "libx264")
    frames = list(open_source(path))
    assert len(frames) == 10
    assert all(f.image.shape == (H, W, 3) for f in frames)
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(10) / 24, atol=1e-3)
    for frame, image in zip(frames, images):
        # Lossy coding and yuv420p at sharp edges: a mean error of 4 levels is far below visible.
        assert np.abs(frame.image.astype(int) - image).mean() < 4
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_video_writer_falls_back_to_mpeg4(tmp_path, monkeypatch):
    monkeypatch.setattr(av, "codecs_available", av.codecs_available - {"libx264"})
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 30, W, H) as writer:
        for i in range(10):
            writer.write(_frame_image(i))
    assert writer.codec == "mpeg4"
    frames = list(open_source(path))
    assert len(frames) == 10
    assert np.abs(frames[5].image.astype(int) - _frame_image(5)).mean() < 4


def test_video_writer_abort_leaves_no_file(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="render failed"):
        with VideoWriter(path, 24, W, H) as writer:
            writer.write(_frame_image(0))
            raise RuntimeError("render failed")
    assert list(tmp_path.iterdir()) == []


def test_video_writer_abort_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous render")
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, 24, W, H) as writer:
            writer.write(_frame_image(0))
            raise KeyboardInterrupt
    assert path.read_bytes() == b"previous render"
    assert list(tmp_path.iterdir()) == [path]


def test_video_writer_with_no_frames_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames were written"):
        with VideoWriter(tmp_path / "out.mp4", 24, W, H):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(path="out.mp4", fps=24, width=63, height=48), "must be even"),
        (dict(path="out.mp4", fps=0, width=64, height=48), "fps must be positive"),
        (dict(path="out.avi", fps=24, width=64, height=48), r"must end in \.mp4"),
    ],
)
def test_video_writer_arguments(tmp_path, kwargs, message):
    kwargs["path"] = tmp_path / kwargs["path"]
    with pytest.raises(ValueError, match=message):
        VideoWriter(**kwargs)
    assert list(tmp_path.iterdir()) == []


def test_video_writer_checks_the_image(tmp_path):
    with VideoWriter(tmp_path / "out.mp4", 24, W, H) as writer:
        writer.write(_frame_image(0))
        with pytest.raises(ValueError, match=r"must be \[48, 64, 3\]"):
            writer.write(np.zeros((H, W + 2, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8 RGB"):
            writer.write(np.zeros((H, W, 3), np.float32))


def test_png_writer_round_trip(tmp_path):
    folder = tmp_path / "frames"
    images = [_frame_image(i) for i in range(3)]
    with PngWriter(folder) as writer:
        for image in images:
            writer.write(image)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    frames = list(open_source(folder))
    for frame, image in zip(frames, images, strict=True):
        np.testing.assert_array_equal(frame.image, image)  # PNG is lossless
    writer = PngWriter(tmp_path / "more")
    writer.write(images[0])
    with pytest.raises(ValueError, match=r"must be \[48, 64, 3\]"):
        writer.write(np.zeros((H + 2, W, 3), np.uint8))


# --- real media --------------------------------------------------------------------------------


@needs_real
def test_real_selfie_clip():
    source = open_source(SELFIE)
    assert (source.width, source.height, source.fps, source.rotation_deg) == (640, 360, 30.0, 0)
    frames = list(source)
    assert len(frames) == 72
    times = np.array([f.time_s for f in frames])
    assert times[0] == 0.0 and (np.diff(times) > 0).all()
    np.testing.assert_allclose(times, np.arange(72) / 30, atol=1e-3)
    assert isinstance(frames[0], Frame) and frames[0].image.shape == (360, 640, 3)
    assert source.warnings == []


def test_bundled_example_clip():
    source = open_source(REPO / "examples" / "hopper.mp4")
    assert (source.kind, source.fps, source.rotation_deg) == ("video", 24.0, 0)
    assert len(list(source)) == 48
    assert (REPO / "examples" / "hopper.mp4").stat().st_size < 400_000

