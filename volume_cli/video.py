"""Read frames from a video, a still image or a folder of images; write frames to a video or PNGs.

Conventions (stated once, used everywhere):

* An image is ``[H, W, 3] uint8 RGB``, C-contiguous, upright: rotation metadata (a phone held
  upright records landscape pixels plus a display matrix) is already applied, so a portrait clip
  stored as 1920x1080 with ``rotation_deg == 270`` comes out as 1080x1920 frames.
* ``Frame.time_s`` is the presentation time in seconds, ``pts * time_base``, measured from the start
  of the video stream, so the first frame is at 0.0 and variable-frame-rate clips keep their real
  timing. Stills have no clock: image ``i`` of a folder gets ``time_s = i`` (one step per image).
* ``Frame.index`` counts every decoded frame of the source from 0, whatever the selection keeps.

Decoding is lazy, one frame in memory at a time. Expected failures (a missing file, a text file
named ``.mp4``, a clip with no decodable frame) raise :class:`InputError` with a one-line message;
trouble met part-way through a clip (a truncated download) ends the clip there and is reported in
``FrameSource.warnings``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc

from volume_cli.formats.atomic import atomic_write_bytes, temp_path_for

# Suffixes read as stills with OpenCV (which also applies EXIF orientation); anything else is tried
# as a video.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".jp2",
     ".ppm", ".pgm", ".pbm", ".pnm"}
)
# Below this start time decoding from zero costs at most a few dozen frames, and it keeps exact
# frame indices on variable-frame-rate clips; above it, seek to the keyframe before start_s.
_SEEK_MIN_S = 1.0
# A clip that ends this much earlier than its header says is reported as probably truncated. Loose,
# because a container's duration may include an audio track that runs on past the last frame.
_SHORTFALL_WARN_S = 0.5

# Output suffix -> (muxer, (encoder, options) to try in order).
# crf 18 is visually lossless for x264; VP9 needs b:v 0 for constant-quality mode.
_X264 = ("libx264", {"crf": "18", "preset": "medium"})
# mpeg4 has no crf: holding the quantiser to 1-3 gives about x264 crf 18 quality.
_MPEG4 = ("mpeg4", {"qmin": "1", "qmax": "3"})
_VP9 = ("libvpx-vp9", {"crf": "30", "b": "0"})
_VIDEO_OUTPUTS = {
    ".mp4": ("mp4", (_X264, _MPEG4)),
    ".mov": ("mov", (_X264, _MPEG4)),
    ".mkv": ("matroska", (_X264, _MPEG4)),
    ".webm": ("webm", (_VP9,)),
}


class InputError(Exception):
    """An input the user gave cannot be used. The message is one line that names the file and says
    what is wrong; the CLI prints it as ``Error: <message>`` and exits with status 1."""


# eq=False: comparing frames would compare image arrays elementwise, which has no truth value.
@dataclass(frozen=True, eq=False)
class Frame:
    index: int  # 0-based position among all decoded frames of the source
    time_s: float  # presentation time in seconds from the stream start (stills: the index)
    image: np.ndarray  # [H, W, 3] uint8 RGB, upright, C-contiguous


class FrameSource:
    """The frames of one source, filtered by :func:`open_source`'s selection. Iterate it for
    :class:`Frame` objects; each pass decodes lazily from the start of the selection again.

    Metadata describes the whole source, not the selection: ``kind`` ("video", "image" or
    "images"), ``path``, ``width`` and ``height`` in pixels after rotation, ``fps`` (average rate;
    None for stills), ``frame_count`` (from the header or duration x fps, an estimate; None when
    unknown), ``duration_s`` (None when unknown or for stills) and ``rotation_deg`` (0, 90, 180 or
    270: the counter-clockwise turn applied to stored pixels to make them upright).
    ``warnings`` collects one-line problems met while decoding (e.g. where a truncated file ended).
    """

    def __init__(
        self,
        *,
        kind: str,
        path: Path,
        width: int,
        height: int,
        fps: float | None,
        frame_count: int | None,
        duration_s: float | None,
        rotation_deg: int,
        start_s: float | None,
        end_s: float | None,
        every: int,
        max_frames: int | None,
    ):
        self.kind = kind
        self.path = path
        self.width = width
        self.height = height
        self.fps = fps
        self.frame_count = frame_count
        self.duration_s = duration_s
        self.rotation_deg = rotation_deg
        self.start_s = start_s
        self.end_s = end_s
        self.every = every
        self.max_frames = max_frames
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return (
            f"FrameSource(kind={self.kind!r}, path={str(self.path)!r}, "
            f"size={self.width}x{self.height}, fps={self.fps}, frame_count={self.frame_count})"
        )

    def __iter__(self) -> Iterator[Frame]:
        in_range = 0  # frames with start_s <= time_s < end_s seen so far
        kept = 0
        # closing(): stopping early (end_s, max_frames, a consumer's break) closes the container.
        with contextlib.closing(self._candidates()) as candidates:
            for index, time_s, payload in candidates:
                if self.start_s is not None and time_s < self.start_s:
                    continue
                if self.end_s is not None and time_s >= self.end_s:
                    break
                in_range += 1
                if (in_range - 1) % self.every:
                    continue
                # Converted only when kept: with every=5, four frames in five skip the conversion.
                yield Frame(index, time_s, self._to_rgb(payload))
                kept += 1
                if kept == self.max_frames:
                    break
        if kept == 0 and (self.start_s is not None or self.end_s is not None):
            raise InputError(
                f"{self.path}: no frames between {self.start_s or 0.0:g} s and "
                f"{'the end' if self.end_s is None else f'{self.end_s:g} s'}"
                + (f" (it lasts {self.duration_s:.2f} s)" if self.duration_s else "")
            )

    def _warn(self, message: str) -> None:
        # Iterating twice must not report the same problem twice.
        if message not in self.warnings:
            self.warnings.append(message)

    def _candidates(self) -> Iterator[tuple[int, float, object]]:
        """(index, time_s, payload) for every frame from near start_s on, in presentation order."""
        raise NotImplementedError

    def _to_rgb(self, payload: object) -> np.ndarray:
        """[H, W, 3] uint8 RGB upright image of one payload from ``_candidates``."""
        raise NotImplementedError


class _VideoSource(FrameSource):
    def __init__(self, *, stream_index: int, origin_pts: int, time_base: Fraction, **kwargs):
        super().__init__(**kwargs)
        self._stream_index = stream_index
        self._origin_pts = origin_pts  # pts of the stream start, in time_base units
        self._time_base = time_base  # seconds per pts unit

    def _candidates(self) -> Iterator[tuple[int, float, object]]:
        if self.start_s is not None and self.start_s >= _SEEK_MIN_S:
            frames = self._decode(seek_s=self.start_s)
            first = next(frames, None)
            # Some containers (raw streams, damaged indexes) seek past the target: decode from zero.
            half_frame_s = 0.5 / self.fps if self.fps else 0.0
            if first is not None and first[1] <= self.start_s + half_frame_s:
                yield first
                yield from frames
                return
            frames.close()
        yield from self._decode(seek_s=None)

    def _decode(self, seek_s: float | None) -> Iterator[tuple[int, float, av.VideoFrame]]:
        with av.open(str(self.path)) as container:
            stream = container.streams[self._stream_index]
            # Threading stays at PyAV's default (slice threads): frame threads swallow decoder
            # errors, so a damaged file would end early without a warning.
            if seek_s is not None:
                # Keyframe at or before the target; the caller drops frames before start_s.
                container.seek(
                    self._origin_pts + int(seek_s / self._time_base), stream=stream, backward=True
                )
            index = None
            time_s = 0.0
            try:
                for frame in _decoded(container, stream):
                    if frame.pts is not None:
                        time_s = float((frame.pts - self._origin_pts) * self._time_base)
                    elif index is not None:
                        time_s += 1.0 / (self.fps or 1.0)
                    if index is None:
                        # After a seek the count from zero is unknown: estimate it from the time
                        # (exact for constant frame rate).
                        index = round(time_s * self.fps) if seek_s is not None and self.fps else 0
                    else:
                        index += 1
                    yield index, time_s, frame
            except av.FFmpegError as err:
                next_index = 0 if index is None else index + 1
                self._warn(f"{self.path}: decoding stopped at frame {next_index}: {_describe(err)}")
                return
        # Reached the end of the file without an error: does it end where the header says?
        if index is not None and self.duration_s is not None and self.fps:
            end_s = time_s + 1.0 / self.fps
            if self.duration_s - end_s > _SHORTFALL_WARN_S:
                self._warn(
                    f"{self.path}: frames end at {end_s:.2f} s but the file says it lasts "
                    f"{self.duration_s:.2f} s; it may be truncated"
                )

    def _to_rgb(self, payload: object) -> np.ndarray:
        assert isinstance(payload, av.VideoFrame)
        # rgb24 conversion handles every pixel format (yuvj, 10-bit, gray, alpha ...) using the
        # frame's own colour-space and range tags.
        image = payload.to_ndarray(format="rgb24")
        return np.ascontiguousarray(np.rot90(image, self.rotation_deg // 90))


class _ImageSource(FrameSource):
    def __init__(self, *, files: list[Path], **kwargs):
        super().__init__(**kwargs)
        self._files = files

    def _candidates(self) -> Iterator[tuple[int, float, object]]:
        for index, file in enumerate(self._files):
            yield index, float(index), file

    def _to_rgb(self, payload: object) -> np.ndarray:
        assert isinstance(payload, Path)
        image = _read_image(payload)
        if image.shape[:2] != (self.height, self.width):
            raise InputError(
                f"{payload} is {image.shape[1]}x{image.shape[0]} but the first image is "
                f"{self.width}x{self.height}; all images of a sequence must have one size"
            )
        return image


def open_source(
    path: str | os.PathLike,
    start_s: float | None = None,
    end_s: float | None = None,
    every: int = 1,
    max_frames: int | None = None,
) -> FrameSource:
    """Open a video file, a still image or a folder of images as a :class:`FrameSource`.

    Selection: frames with ``start_s <= time_s < end_s``, of those every ``every``-th (the first,
    the every+1-th, ...), at most ``max_frames``. Decoding stops as soon as the selection is
    complete and seeks to the keyframe before ``start_s`` rather than decoding from zero.
    A folder holds images sorted naturally by name ("img2" before "img10"); other files and hidden
    files are ignored.

    Example: ``for frame in open_source("talk.mp4", start_s=2.0, max_frames=10): ...``

    Raises InputError for sources that cannot be used, ValueError for bad selection arguments.
    """
    path = Path(path)
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if start_s is not None and start_s < 0:
        raise ValueError(f"start_s must be non-negative, got {start_s}")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ValueError(f"end_s must be after start_s, got start_s={start_s}, end_s={end_s}")
    selection = dict(start_s=start_s, end_s=end_s, every=every, max_frames=max_frames)

    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir()
             # Hidden files include macOS "._img1.jpg" resource forks, which are not images.
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise InputError(f"{path} is a folder with no images ({suffixes})")
        return _open_images("images", path, files, selection)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _open_images("image", path, [path], selection)
    return _open_video(path, selection)


def _open_images(kind: str, path: Path, files: list[Path], selection: dict) -> FrameSource:
    height, width = _read_image(files[0]).shape[:2]
    return _ImageSource(
        files=files, kind=kind, path=path, width=width, height=height, fps=None,
        frame_count=len(files), duration_s=None, rotation_deg=0, **selection,
    )


def _open_video(path: Path, selection: dict) -> FrameSource:
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except av.error.EOFError:
        # A container header with nothing after it: a zero-frame recording, or a file cut short.
        raise InputError(f"{path} ends before its first video frame (no frames, or cut short)") from None
    except av.FFmpegError as err:
        raise InputError(f"{path} is not a readable video or image ({_describe(err)})") from None
    with container:
        # Cover art in audio files is a one-picture "video" stream: skip it.
        cover_art = av.stream.Disposition.attached_pic
        streams = [s for s in container.streams.video if not s.disposition & cover_art]
        if not streams:
            raise InputError(f"{path} has no video stream")
        stream = streams[0]
        # The first frame gives the true size and the display matrix (rotation side data).
        first, error = None, None
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as err:
            error = err
        if first is None:
            reason = f" ({_describe(error)})" if error else ""
            raise InputError(f"{path} has no decodable video frames{reason}")

        time_base = stream.time_base or Fraction(1, 1)
        if stream.start_time is not None:
            origin_pts = stream.start_time
        else:
            origin_pts = first.pts or 0
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        if stream.duration:
            duration_s = float(stream.duration * time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base  # container duration is in microseconds
        else:
            duration_s = None
        if stream.frames > 0:
            frame_count = stream.frames
        elif duration_s and fps:
            frame_count = round(duration_s * fps)
        else:
            frame_count = None
        raw_rotation = first.rotation  # counter-clockwise degrees in [-180, 180]
        rotation_deg = round(raw_rotation / 90) % 4 * 90
        width, height = first.width, first.height
        stream_index = stream.index  # read while open: a closed container's streams are freed

    if rotation_deg in (90, 270):
        width, height = height, width
    source = _VideoSource(
        stream_index=stream_index, origin_pts=origin_pts, time_base=time_base,
        kind="video", path=path, width=width, height=height, fps=fps, frame_count=frame_count,
        duration_s=duration_s, rotation_deg=rotation_deg, **selection,
    )
    if abs(raw_rotation - round(raw_rotation / 90) * 90) > 1:
        source._warn(f"{path}: display rotation {raw_rotation} deg rounded to {rotation_deg} deg")
    return source


def _decoded(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
    """``container.decode(stream)``, except that after a decoding error (a file cut short) the
    frames the decoder still holds come first: they are complete, only held back for reordering
    (B-frames). Then the error is raised."""
    try:
        yield from container.decode(stream)
    except av.FFmpegError:
        with contextlib.suppress(av.FFmpegError):
            yield from stream.codec_context.decode(None)
        raise


def _read_image(path: Path) -> np.ndarray:
    # IMREAD_COLOR: gray, palette, alpha and 16-bit images all come back as 8-bit BGR, EXIF-rotated.
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path} is not a readable image")
    return np.ascontiguousarray(image[:, :, ::-1])


def _natural_key(name: str) -> list:
    """Sort key with digit runs compared as numbers: "img2" < "img10"."""
    # re.split with a group alternates text and digits, so element types line up between names.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def _describe(err: BaseException) -> str:
    """One line from an FFmpeg error: its message plus FFmpeg's own last log line, if any."""
    message = getattr(err, "strerror", None) or str(err)
    log = getattr(err, "log", None)
    if log and log[2].strip():
        message += f": {log[2].strip()}"
    return message.splitlines()[0] if message else type(err).__name__


def _check_image(image: np.ndarray, width: int | None, height: int | None) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3] uint8 RGB, got {image.dtype} {image.shape}")
    if width is not None and image.shape[:2] != (height, width):
        raise ValueError(f"image must be [{height}, {width}, 3], got {list(image.shape)}")


class VideoWriter:
    """Encode RGB frames to a video file, written atomically.

    Frames go to a hidden temporary file beside ``path`` (``.orbit.mp4.tmp-<pid>``) that ``close()``
    renames to ``path``; if the ``with`` block raises, or on ``abort()``, the temporary file is
    deleted and ``path`` is left as it was. ``.mp4``, ``.mov`` and ``.mkv`` get H.264 (libx264,
    yuv420p, crf 18; mpeg4 where this PyAV build lacks libx264), ``.webm`` VP9. yuv420p halves the
    chroma resolution, so ``width`` and ``height`` must be even.

    Example: ``with VideoWriter("orbit.mp4", 30, 640, 480) as out: out.write(image)``
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, width: int, height: int):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _VIDEO_OUTPUTS:
            suffixes = ", ".join(_VIDEO_OUTPUTS)
            raise ValueError(f"video output must end in {suffixes}, got {str(self.path)!r}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise ValueError(
                f"width and height must be even and positive for yuv420p, got {width}x{height}"
            )
        container_format, candidates = _VIDEO_OUTPUTS[suffix]
        self.codec, options = _pick_codec(candidates)
        self.width = width
        self.height = height
        self.frames_written = 0
        # 30000/1001 (NTSC 29.97) survives as an exact rate; plain floats become n/1 or n/100.
        rate = Fraction(fps).limit_denominator(1001)
        self._frame_time_base = 1 / rate  # frame i has pts i
        self._tmp = temp_path_for(self.path)
        # A temporary name has no video suffix, so the muxer is named explicitly.
        self._container = av.open(str(self._tmp), "w", format=container_format)
        try:
            self._stream = self._container.add_stream(self.codec, rate=rate, options=options)
            self._stream.width = width
            self._stream.height = height
            self._stream.pix_fmt = "yuv420p"
            # Tag BT.709 limited range, what write() converts to, so players show the right colours.
            codec_context = self._stream.codec_context
            codec_context.colorspace = 1  # AVCOL_SPC_BT709 (PyAV has no enum for the matrix tag)
            codec_context.color_range = ColorRange.MPEG
            codec_context.color_primaries = ColorPrimaries.BT709
            codec_context.color_trc = ColorTrc.BT709
        except BaseException:
            self.abort()
            raise

    def write(self, image: np.ndarray) -> None:
        """Append one frame: image [H, W, 3] uint8 RGB with H, W = height, width."""
        _check_image(image, self.width, self.height)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        frame.pts = self.frames_written
        frame.time_base = self._frame_time_base
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file to ``path``."""
        if self._container is None:
            return
        try:
            if self.frames_written == 0:
                raise ValueError(f"no frames were written to {self.path}")
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Discard everything written; ``path`` is left as it was."""
        if self._container is not None:
            with contextlib.suppress(Exception):  # the file is deleted below, whatever its state
                self._container.close()
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _pick_codec(candidates: tuple[tuple[str, dict], ...]) -> tuple[str, dict]:
    for name, options in candidates:
        if name in av.codecs_available:
            return name, dict(options)
    raise RuntimeError(f"this PyAV build has none of the encoders {[c for c, _ in candidates]}")


class PngWriter:
    """Write RGB frames as ``folder/frame_000000.png``, ``frame_000001.png`` ... each atomically.

    Same interface as :class:`VideoWriter`. The folder is created if needed. On ``abort()`` (or an
    exception in the ``with`` block) the frames already written stay: each is complete on its own.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder)
        self.path.mkdir(parents=True, exist_ok=True)
        self.frames_written = 0
        self._size: tuple[int, int] | None = None  # (height, width) of the first frame

    def write(self, image: np.ndarray) -> None:
        """Write the next frame: image [H, W, 3] uint8 RGB, the same size as the first."""
        _check_image(image, *(self._size[::-1] if self._size else (None, None)))
        self._size = image.shape[:2]
        ok, png = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
        assert ok, "PNG encoding of a uint8 image cannot fail"
        atomic_write_bytes(self.path / f"frame_{self.frames_written:06d}.png", png.tobytes())
        self.frames_written += 1

    def close(self) -> None:
        """Nothing to flush: every frame is complete once write() returns."""

    def abort(self) -> None:
        """Stop writing; frames already written stay."""

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
