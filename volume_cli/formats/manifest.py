"""The ``sequence.json`` manifest of a sequence folder, and finding the frames of a sequence.

A sequence folder holds one splat file per converted frame, named by ``frame_file_name``
(``frame_000012.ply``: the source frame index, at least 6 digits, and the format's suffix), and
``sequence.json``, version 1 (field names are the JSON keys):

    format          "volume-sequence"
    version         1
    tool            {name, version} of the writer
    created         ISO 8601 time the conversion started
    source          {path, kind ("video" | "images" | "image"), fps (null for images),
                     frame_count (null if unknown), rotation_deg (applied from the video's metadata)}
    image_size      [W, H] of the source frames after rotation, pixels
    intrinsics      {K (3 x 3), focal_px, fov_deg (null when given as a focal length)}
    crop_size       S of the S x S virtual-camera crop fed to the predictor, pixels
    coordinates     the sentence ``COORDINATES``: every splat file is in that frame
    predictor       {name, weights_sha256 (null for weightless predictors)}
    splat_format    "ply" | "splat" | "ply-compressed"
    options         the convert options, free-form
    head            the clip's fitted head, or null (predictors without the head prior):
                    {model (the head model file), identity (its identity coefficients, null
                    for a folder of stills, where each image has its own)}
    complete        false while converting and after an interruption; true once every frame is done
    frames          one record per written file (``FrameRecord``)
    missing         one record per source frame without a face (``MissingRecord``)

The file is one JSON object that any JSON parser reads; our writer puts each record on a line of
its own (see "the file's layout" below), so that convert writes it and the readers of splats read
it a record at a time, whatever the clip's length. Reading validates every field's presence, type,
choices and matrix shapes and raises ValueError naming the field (``frames[3].time_s``); unknown
keys are ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
import os
import re
import types
import typing
from array import array
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from volume_cli import __version__
from volume_cli.formats._dispatch import SplatFormat, detect_format, read_splats
from volume_cli.formats.atomic import atomic_open
from volume_cli.gaussians import Gaussians

FORMAT_NAME = "volume-sequence"
MANIFEST_VERSION = 1
MANIFEST_NAME = "sequence.json"
COORDINATES = (
    "OpenCV camera frame of the original camera: x right, y down, z forward, metres; original camera at the origin"
)


def frame_file_name(index: int, fmt: SplatFormat | str) -> str:
    """File name of source frame ``index`` in a sequence folder: frame_file_name(12, "ply") ==
    "frame_000012.ply"; frame_file_name(12, "ply-compressed") == "frame_000012.compressed.ply"."""
    # Integral: numpy integers from a decoder are fine; bool is an int but never a frame index.
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or index < 0:
        raise ValueError(f"index must be an int >= 0, got {index!r}")
    return f"frame_{int(index):06d}{SplatFormat(fmt).suffix}"


def frames_on_disk(folder: str | os.PathLike, fmt: SplatFormat | str) -> dict[int, Path]:
    """The frame files of format ``fmt`` present in ``folder``, as {source frame index: path}, sorted
    by index. Temporary files of unfinished writes and other formats' files are not listed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder must be an existing directory, got {str(folder)!r}")
    pattern = re.compile(r"frame_(\d{6,})" + re.escape(SplatFormat(fmt).suffix))
    found = {}
    for entry in folder.iterdir():
        m = pattern.fullmatch(entry.name)
        # The file name must round-trip, so that "frame_0000012.ply" (7 digits) is not frame 12's file.
        if m and entry.is_file() and frame_file_name(int(m.group(1)), fmt) == entry.name:
            found[int(m.group(1))] = entry
    return dict(sorted(found.items()))


# -- the manifest -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class ToolInfo:
    name: str = "volume"
    version: str = __version__


@dataclass(kw_only=True)
class SourceInfo:
    path: str
    kind: str  # "video" | "images" | "image"
    fps: float | None  # frames per second of a video; None for images
    frame_count: int | None  # frames in the source, None if the container does not say
    rotation_deg: int  # display rotation applied to the decoded frames (0, 90, 180, 270)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice(self.kind, ("video", "images", "image"), "kind")


@dataclass(kw_only=True)
class Intrinsics:
    K: list[list[float]]  # [3, 3] pixels, of the original camera
    focal_px: float
    fov_deg: float | None  # the --fov the K came from; None when --focal gave it

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_shape(self.K, (3, 3), "K")


@dataclass(kw_only=True)
class PredictorInfo:
    name: str
    weights_sha256: str | None  # hex digest of the weights file; None for a predictor without weights

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(kw_only=True)
class FrameRecord:
    """One written frame. Geometry is in the original camera frame (``COORDINATES``)."""

    index: int  # source frame index
    file: str  # file name inside the sequence folder, frame_file_name(index, fmt)
    time_s: float  # presentation time in the source, seconds
    num_splats: int
    status: str  # "ok", or "held": no face was found and the previous frame's splats were repeated
    rotation: list[list[float]]  # [3, 3] R, original -> virtual camera (x_virtual = R x_original)
    virtual_K: list[list[float]]  # [3, 3] intrinsics of the virtual camera, crop pixels
    face_box: list[float] | None  # [x0, y0, x1, y1] pixels in the original image; None when held
    head_center: list[float]  # [3] metres
    distance_m: float  # head distance from the camera, metres
    # The frame's fitted head (predictors with the head prior), in the VIRTUAL camera's frame:
    # {ok, reason (when not ok: the frame fell back to the ellipsoid), residual_mm, scale,
    # rotation [3, 3] and translation_m [3] (virtual = scale * rotation @ head + translation),
    # expression {ARKit face unit: weight, for weights above 0.01}}; None otherwise.
    head: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice(self.status, ("ok", "held"), "status")
        # A bare name: what Path(file).name gives back unchanged, checked without a Path, which
        # interns its parts (sys.intern): a long clip's names would stay in memory after reading.
        if self.file in ("", ".", "..") or os.sep in self.file or (os.altsep and os.altsep in self.file):
            raise ValueError(f"file must be a bare file name inside the sequence folder, got {self.file!r}")
        _check_shape(self.rotation, (3, 3), "rotation")
        _check_shape(self.virtual_K, (3, 3), "virtual_K")
        if self.face_box is not None:
            _check_shape(self.face_box, (4,), "face_box")
        _check_shape(self.head_center, (3,), "head_center")


@dataclass(kw_only=True)
class MissingRecord:
    """A source frame without a written file of its own."""

    index: int  # source frame index
    time_s: float
    action: str  # "skipped" (no file) or "held" (the previous splats were written again)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice(self.action, ("skipped", "held"), "action")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(kw_only=True)
class ManifestHeader:
    """``sequence.json`` without ``format`` and ``version`` (which ``to_dict`` adds) and without its
    per-frame lists: the fields before ``frames``, in schema order (see the module docstring).
    ``splat_format`` also accepts its string value."""

    tool: ToolInfo = field(default_factory=ToolInfo)
    created: str = field(default_factory=_now)
    source: SourceInfo
    image_size: list[int]  # [W, H] after rotation
    intrinsics: Intrinsics
    crop_size: int
    coordinates: str = COORDINATES
    predictor: PredictorInfo
    splat_format: SplatFormat
    options: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable values only
    head: dict[str, Any] | None = None  # the clip's fitted head (see the module docstring)
    complete: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.splat_format, str):
            _check_choice(self.splat_format, [f.value for f in SplatFormat], "splat_format")
            self.splat_format = SplatFormat(self.splat_format)
        _check_fields(self)
        _check_shape(self.image_size, (2,), "image_size")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in schema order."""
        body = asdict(self)
        body["splat_format"] = self.splat_format.value
        return {"format": FORMAT_NAME, "version": MANIFEST_VERSION, **body}

    def header(self) -> ManifestHeader:
        """The header fields alone, as a plain ManifestHeader (to compare a SequenceManifest's
        with a SequenceListing's)."""
        return ManifestHeader(**{f.name: getattr(self, f.name) for f in fields(ManifestHeader)})

    @classmethod
    def from_dict(cls, data: Any):
        """Validate a parsed JSON object and build the manifest. Raises ValueError naming the field."""
        _check_format(data)
        return _build(cls, data, "")


@dataclass(kw_only=True)
class SequenceManifest(ManifestHeader):
    """The whole ``sequence.json``: the header and every record. Readers of splats take the lean
    ``SequenceListing`` instead (``load_sequence``), which a long clip's file is read into a line
    at a time."""

    frames: list[FrameRecord] = field(default_factory=list)
    missing: list[MissingRecord] = field(default_factory=list)

    def to_json(self) -> str:
        """The file's text as ``write_manifest`` writes it (one record a line: see ``manifest_chunks``)."""
        return b"".join(manifest_chunks(self.header().to_dict(), map(record_line, self.frames),
                                        map(record_line, self.missing))).decode("utf-8")

    @classmethod
    def from_json(cls, text: str, frame_heads: bool = True) -> SequenceManifest:
        """Parse and validate. ``frame_heads=False`` leaves each frame's fitted head out (None):
        it is most of a frame record's memory (~4 of ~5 kB, its expression weights)."""
        hook = None if frame_heads else _without_frame_head
        try:
            data = json.loads(text, object_pairs_hook=hook)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON: {e}") from e
        return cls.from_dict(data)


def _check_format(data: Any) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"a manifest must be a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT_NAME:
        raise ValueError(f"not a volume sequence manifest: format is {data.get('format')!r}, expected {FORMAT_NAME!r}")
    if "version" not in data:
        raise ValueError("missing field 'version'")
    if data["version"] != MANIFEST_VERSION:
        version = data["version"]
        raise ValueError(f"unsupported manifest version {version!r}; this volume reads version {MANIFEST_VERSION}")


def _without_frame_head(pairs: list[tuple[str, Any]]) -> dict:
    """json's object hook: a frame record (it has "file" and "time_s") without its "head"."""
    obj = dict(pairs)
    if "file" in obj and "time_s" in obj:
        obj.pop("head", None)
    return obj


# -- the file's layout: one record a line --------------------------------------------------------
#
# sequence.json is one JSON object, and any JSON parser reads it. Our writer lays it out so that
# it can also be written and read a record at a time (a 16-minute clip has 28 800 frame records):
# the header keys as json.dumps(indent=2) writes them, then each record on a line of its own:
#
#     {
#       "format": "volume-sequence",
#       ...
#       "complete": false,
#       "frames": [
#         {"index": 0, "file": "frame_000000.ply", "time_s": 0.0, ...},
#         {"index": 1, "file": "frame_000001.ply", "time_s": 0.0333, ...}
#       ],
#       "missing": [
#         {"index": 2, "time_s": 0.0667, "action": "skipped"}
#       ]
#     }
#
# The readers take that layout a line at a time and any other (an older volume's indent=2, a file
# edited by hand) by parsing the whole file; both give the same result.

_FRAMES_OPEN = b'  "frames": ['
_MISSING_OPEN = b'"missing": ['


def record_line(record: FrameRecord | MissingRecord) -> bytes:
    """A record as one line of sequence.json (UTF-8, keys in schema order, no newline)."""
    return json.dumps(asdict(record), ensure_ascii=False).encode("utf-8")


def frame_line(record: dict[str, Any]) -> bytes:
    """A frame record given as a dict (convert's), validated (ValueError naming the field) and
    written as ``record_line`` does."""
    return record_line(_build(FrameRecord, record, f"frames[{record.get('index')}]"))


def missing_line(record: dict[str, Any]) -> bytes:
    """A missing-frame record given as a dict, validated, as one line (see ``frame_line``)."""
    return record_line(_build(MissingRecord, record, f"missing[{record.get('index')}]"))


def manifest_chunks(header: dict[str, Any], frames: typing.Iterable[bytes],
                    missing: typing.Iterable[bytes]) -> typing.Iterator[bytes]:
    """The text of sequence.json in pieces: ``header`` (``ManifestHeader.to_dict()``: every key
    before "frames"), then the records' lines (``record_line``), one a line."""
    text = json.dumps(header, indent=2, ensure_ascii=False).encode("utf-8")
    yield text[:-2] + b",\n" + _FRAMES_OPEN  # text ends "\n}"
    for name, lines in ((b"frames", frames), (b"missing", missing)):
        if name == b"missing":
            yield b"\n  ],\n  " + _MISSING_OPEN
        separator = b"\n    "
        for line in lines:
            yield separator + line
            separator = b",\n    "
    yield b"\n  ]\n}\n"


def write_manifest_lines(folder: str | os.PathLike, header: dict[str, Any], frames: typing.Iterable[bytes],
                         missing: typing.Iterable[bytes]) -> Path:
    """Write ``folder``/sequence.json atomically, streaming it from ``manifest_chunks``; the
    records are never all in memory at once. Returns the path."""
    path = Path(folder) / MANIFEST_NAME
    with atomic_open(path) as f:
        for chunk in manifest_chunks(header, frames, missing):
            f.write(chunk)
    return path


def write_manifest(folder: str | os.PathLike, manifest: SequenceManifest) -> Path:
    """Write ``manifest`` to ``folder``/sequence.json atomically; return the path."""
    return write_manifest_lines(folder, manifest.header().to_dict(), map(record_line, manifest.frames),
                                map(record_line, manifest.missing))


class _NotOneRecordALine(Exception):
    """The file departs from the one-record-a-line layout: it is read whole instead."""


def _loads(text: bytes) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _NotOneRecordALine from e


def _events_by_line(f: typing.BinaryIO) -> typing.Iterator[tuple[str, Any]]:
    """("header", dict), then ("frames", dict) and ("missing", dict) in file order, read from our
    writer's layout a line at a time. Raises _NotOneRecordALine wherever the file departs from it
    (the layout's checks make it valid JSON exactly when each piece parses)."""
    header = []
    for line in f:
        if line.rstrip(b"\r\n") == _FRAMES_OPEN:
            break
        header.append(line)
    else:
        raise _NotOneRecordALine
    text = b"".join(header).rstrip()
    if not text.endswith(b","):
        raise _NotOneRecordALine
    data = _loads(text[:-1] + b"}")
    if not isinstance(data, dict) or "frames" in data or "missing" in data:
        raise _NotOneRecordALine
    yield "header", data
    section, comma = "frames", None  # comma: whether the previous record's line ended with one
    for line in f:
        s = line.strip()
        if section in ("frames", "missing") and s.startswith(b"{"):
            if comma is False:
                raise _NotOneRecordALine
            comma = s.endswith(b",")
            yield section, _loads(s[:-1] if comma else s)
        elif section in ("frames", "missing") and s in (b"],", b"]") and not comma:
            if (section == "frames") != (s == b"],"):
                raise _NotOneRecordALine
            section, comma = ("before missing" if section == "frames" else "end"), None
        elif section == "before missing" and s == _MISSING_OPEN:
            section = "missing"
        elif section == "end" and s == b"}":
            section = "after"
        elif not (section == "after" and s == b""):
            raise _NotOneRecordALine
    if section != "after":
        raise _NotOneRecordALine


def _events_of_whole(f: typing.BinaryIO, frame_heads: bool) -> typing.Iterator[tuple[str, Any]]:
    """The same events from the file parsed whole (any layout). Raises ValueError."""
    f.seek(0)
    try:
        data = json.load(f, object_pairs_hook=None if frame_heads else _without_frame_head)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"not valid JSON: {e}") from e
    _check_format(data)
    yield "header", {k: v for k, v in data.items() if k not in ("frames", "missing")}
    for name in ("frames", "missing"):
        if name not in data:
            raise ValueError(f"missing field '{name}'")
        if not isinstance(data[name], list):
            raise ValueError(f"{name} must be a list, got {data[name]!r:.80}")
        for record in data[name]:
            yield name, record


class ManifestSink(typing.Protocol):
    """What ``scan_manifest`` hands the validated parts of a sequence.json to, in file order."""

    def start(self) -> None:
        """Called before the first part, and again (forget what came) if the file turns out not to be
        in the one-record-a-line layout after some records: it is then read again, whole."""

    def header(self, header: ManifestHeader) -> None: ...

    def frame(self, i: int, record: FrameRecord) -> None: ...

    def missing(self, i: int, record: MissingRecord) -> None: ...


def scan_manifest(path: str | os.PathLike, sink: ManifestSink, frame_heads: bool = True) -> None:
    """Read and validate a sequence.json (given its path or its folder's) a record at a time into
    ``sink``. Our one-record-a-line layout is read a line at a time, so memory does not grow with
    the number of frames; any other layout is parsed whole (``json.load``), with the same result.
    ``frame_heads=False`` leaves each frame's fitted head out (None): most of a record's memory,
    and what only reads the splats never needs it. Raises ValueError naming the file and the field
    (``sequence.json: frames[3].time_s must be a number``)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        with open(path, "rb") as f:
            try:
                _feed(sink, _events_by_line(f), frame_heads)
            except _NotOneRecordALine:
                _feed(sink, _events_of_whole(f, frame_heads), frame_heads)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def _feed(sink: ManifestSink, events: typing.Iterator[tuple[str, Any]], frame_heads: bool) -> None:
    sink.start()
    counts = {"frames": 0, "missing": 0}
    for kind, data in events:
        if kind == "header":
            sink.header(ManifestHeader.from_dict(data))
            continue
        i = counts[kind]
        counts[kind] += 1
        if kind == "frames":
            if not frame_heads and isinstance(data, dict):
                data.pop("head", None)
            sink.frame(i, _build(FrameRecord, data, f"frames[{i}]"))
        else:
            sink.missing(i, _build(MissingRecord, data, f"missing[{i}]"))


class _WholeManifest:
    """A sink that keeps everything: ``read_manifest``."""

    def start(self) -> None:
        self.head, self.frames, self.missed = None, [], []

    def header(self, header: ManifestHeader) -> None:
        self.head = header

    def frame(self, i: int, record: FrameRecord) -> None:
        self.frames.append(record)

    def missing(self, i: int, record: MissingRecord) -> None:
        self.missed.append(record)


def read_manifest(path: str | os.PathLike, frame_heads: bool = True) -> SequenceManifest:
    """Read and validate a whole sequence.json, given its path or its folder's (``frame_heads``:
    see ``scan_manifest``). Errors name the file. Holds every record: what reads a long clip's
    file should take ``read_listing`` or ``scan_manifest``."""
    sink = _WholeManifest()
    scan_manifest(path, sink, frame_heads=frame_heads)
    return SequenceManifest(**{f.name: getattr(sink.head, f.name) for f in fields(ManifestHeader)},
                            frames=sink.frames, missing=sink.missed)


# -- what readers of splats keep: a listing --------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FrameTable:
    """Per frame of a sequence.json, what readers of splats use, as arrays in the file's order
    (F frames; ``load_sequence`` orders them by source index). ~70 bytes a frame."""

    index: np.ndarray  # [F] int64, source frame index
    time_s: np.ndarray  # [F] float64, presentation time, seconds
    held: np.ndarray  # [F] bool: status "held" (else "ok")
    num_splats: np.ndarray  # [F] int64
    head_center: np.ndarray  # [F, 3] float64, metres, original camera frame
    splat_format: SplatFormat
    # File names that are not frame_file_name(index, splat_format), by position (hand-made folders);
    # the others are not stored.
    other_files: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)

    def file(self, i: int) -> str:
        """The file name of the i-th frame."""
        return self.other_files.get(i) or frame_file_name(int(self.index[i]), self.splat_format)

    def status(self, i: int) -> str:
        return "held" if self.held[i] else "ok"

    def sorted(self) -> FrameTable:
        """The same frames in source-index order."""
        if np.all(self.index[1:] >= self.index[:-1]):
            return self
        order = np.argsort(self.index, kind="stable")
        where = {int(old): new for new, old in enumerate(order)}
        return FrameTable(index=self.index[order], time_s=self.time_s[order], held=self.held[order],
                          num_splats=self.num_splats[order], head_center=self.head_center[order],
                          splat_format=self.splat_format,
                          other_files={where[i]: name for i, name in self.other_files.items()})


@dataclass(frozen=True, eq=False)
class MissingTable:
    """The ``missing`` records as arrays (M of them), in the file's order."""

    index: np.ndarray  # [M] int64, source frame index
    time_s: np.ndarray  # [M] float64, seconds
    held: np.ndarray  # [M] bool: action "held" (else "skipped")

    def __len__(self) -> int:
        return len(self.index)


@dataclass(kw_only=True, eq=False)
class SequenceListing(ManifestHeader):
    """What readers of splats (render, info, view, flicker) keep of a sequence.json: the header
    and, per frame, a few numbers in arrays (``FrameTable``) instead of the records: a 16-minute
    clip's 28 800 frames take ~2 MB where their records took ~58 MB without the fitted heads."""

    frames: FrameTable
    missing: MissingTable

    # Arrays have no single truth value: two listings are equal when they are the same object
    # (compare ``header()``s and the tables' arrays instead).
    __eq__ = object.__eq__
    __hash__ = object.__hash__


class _Listing:
    """A sink that keeps a ``SequenceListing``'s columns (typed arrays: 8 bytes a number)."""

    def start(self) -> None:
        self.head = None
        self.index, self.time_s, self.held = array("q"), array("d"), array("b")
        self.num_splats, self.centre, self.other = array("q"), array("d"), {}
        self.m_index, self.m_time_s, self.m_held = array("q"), array("d"), array("b")

    def header(self, header: ManifestHeader) -> None:
        self.head = header

    def frame(self, i: int, r: FrameRecord) -> None:
        self.index.append(r.index)
        self.time_s.append(r.time_s)
        self.held.append(r.status == "held")
        self.num_splats.append(r.num_splats)
        self.centre.extend(r.head_center)
        if r.file != frame_file_name(r.index, self.head.splat_format):
            self.other[i] = r.file

    def missing(self, i: int, r: MissingRecord) -> None:
        self.m_index.append(r.index)
        self.m_time_s.append(r.time_s)
        self.m_held.append(r.action == "held")

    def listing(self) -> SequenceListing:
        def column(values: array, dtype) -> np.ndarray:
            return np.frombuffer(values, dtype=values.typecode).astype(dtype) if len(values) else np.zeros(0, dtype)

        frames = FrameTable(index=column(self.index, np.int64), time_s=column(self.time_s, np.float64),
                            held=column(self.held, bool), num_splats=column(self.num_splats, np.int64),
                            head_center=column(self.centre, np.float64).reshape(-1, 3),
                            splat_format=self.head.splat_format, other_files=self.other)
        missing = MissingTable(index=column(self.m_index, np.int64), time_s=column(self.m_time_s, np.float64),
                               held=column(self.m_held, bool))
        return SequenceListing(**{f.name: getattr(self.head, f.name) for f in fields(ManifestHeader)},
                               frames=frames, missing=missing)


def read_listing(path: str | os.PathLike) -> SequenceListing:
    """Read and validate a sequence.json (its path or its folder's) into a ``SequenceListing``:
    every record is checked as ``read_manifest`` checks it, then only its few numbers are kept.
    Memory does not grow with the frames beyond those (~70 bytes a frame)."""
    sink = _Listing()
    scan_manifest(path, sink, frame_heads=False)
    return sink.listing()


# -- loading a sequence ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceFrame:
    path: Path  # the splat file
    index: int  # source frame index (0 for a single file)
    time_s: float  # presentation time, seconds (0.0 for a single file)
    status: str  # "ok" or "held"


class SequenceFrames(typing.Sequence[SequenceFrame]):
    """A folder's frames in source-index order, each made when asked for from its ``FrameTable``
    row (a Path a frame would be ~0.5 kB with its cached parts: 14 MB for a 16-minute clip)."""

    def __init__(self, root: Path, table: FrameTable) -> None:
        self.root, self.table = root, table

    def __len__(self) -> int:
        return len(self.table)

    @typing.overload
    def __getitem__(self, i: int) -> SequenceFrame: ...

    @typing.overload
    def __getitem__(self, i: slice) -> list[SequenceFrame]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} of a sequence of {len(self)}")
        i = i % len(self)
        t = self.table
        return SequenceFrame(path=self.root / t.file(i), index=int(t.index[i]), time_s=float(t.time_s[i]), status=t.status(i))

    def __repr__(self) -> str:
        return f"SequenceFrames({self.root!s}, {len(self)} frames)"


@dataclass(frozen=True)
class Sequence:
    """What ``load_sequence`` found: the frames in index order, and the listing of its sequence.json
    (None for a single splat file, which has no source information); ``manifest.frames`` holds the
    frames' numbers (head centres, splat counts) in the same order as ``frames``."""

    root: Path  # the sequence folder, or the folder of the single file
    splat_format: SplatFormat
    frames: typing.Sequence[SequenceFrame]
    manifest: SequenceListing | None

    @property
    def fps(self) -> float | None:
        """The source's frame rate, None for images or a single file."""
        return self.manifest.source.fps if self.manifest is not None else None

    def read_frame(self, i: int) -> Gaussians:
        """The Gaussians of the i-th frame (position in ``frames``, not the source index)."""
        return read_splats(self.frames[i].path)


def load_sequence(path: str | os.PathLike) -> Sequence:
    """Open what ``render`` and ``info`` are given: a sequence folder, its sequence.json, or a single
    splat file (a one-frame sequence). Raises ValueError if a frame file the manifest lists is absent."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"path does not exist: {path}")
    if path.is_dir() or path.name == MANIFEST_NAME:
        root = path if path.is_dir() else path.parent
        if not (root / MANIFEST_NAME).is_file():
            raise ValueError(f"{root}: no {MANIFEST_NAME} in this folder; not a sequence folder")
        listing = read_listing(root / MANIFEST_NAME)
        table = listing.frames.sorted()
        listing = dataclasses.replace(listing, frames=table)
        absent = [name for name in map(table.file, range(len(table))) if not os.path.isfile(os.path.join(root, name))]
        if absent:
            raise ValueError(f"{root}: {len(absent)} frame files listed in {MANIFEST_NAME} are missing, e.g. {absent[:3]}")
        return Sequence(root=root, splat_format=listing.splat_format, frames=SequenceFrames(root, table), manifest=listing)
    frame = SequenceFrame(path=path, index=0, time_s=0.0, status="ok")
    return Sequence(root=path.parent, splat_format=detect_format(path), frames=[frame], manifest=None)


# -- validation ---------------------------------------------------------------------------------------


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a manifest dataclass. Resolving them is slow (most of reading a
    16-minute clip's sequence.json, one record a frame, when done per record), so once a class."""
    return typing.get_type_hints(cls)


def _check_fields(obj: Any) -> None:
    """Check every field of a manifest dataclass against its annotation."""
    hints = _type_hints(type(obj))
    for f in fields(obj):
        _check_type(getattr(obj, f.name), hints[f.name], f.name)


def _check_type(value: Any, hint: Any, where: str) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # only "X | None" occurs
        if value is None:
            return
        (hint,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list, got {value!r:.80}")
        for i, item in enumerate(value):
            _check_type(item, args[0], f"{where}[{i}]")
        return
    if origin is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)  # JSON writes 30.0 as 30 too
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:  # str, bool, a nested record, SplatFormat
        ok = isinstance(value, hint)
    if not ok:
        raise ValueError(f"{where} must be {_type_name(hint)}, got {value!r:.80}")


def _type_name(hint: Any) -> str:
    names = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
    if typing.get_origin(hint) is dict:
        return "an object"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _check_choice(value: Any, choices: typing.Sequence[str], where: str) -> None:
    if value not in choices:
        raise ValueError(f"{where} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def _check_shape(value: list, shape: tuple[int, ...], where: str) -> None:
    """A nested list of the given shape (its element types are checked by ``_check_type``)."""
    ok = len(value) == shape[0] and (len(shape) == 1 or all(isinstance(row, list) and len(row) == shape[1] for row in value))
    if not ok:
        wanted = f"a list of {shape[0]} values" if len(shape) == 1 else f"a {shape[0]} x {shape[1]} list"
        raise ValueError(f"{where} must be {wanted}, got {value!r:.120}")


def _build(cls: type, data: Any, where: str) -> Any:
    """A manifest dataclass from parsed JSON, recursing into nested records; every field is
    required but the optional ones (default None: ``head``, which older files and predictors
    without the head prior do not write)."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object, got {data!r:.80}")
    hints = _type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is None:
                continue
            raise ValueError(f"missing field '{prefix}{f.name}'")
        value, hint = data[f.name], hints[f.name]
        if is_dataclass(hint):
            value = _build(hint, value, prefix + f.name)
        elif typing.get_origin(hint) is list and is_dataclass(typing.get_args(hint)[0]):
            if not isinstance(value, list):
                raise ValueError(f"{prefix}{f.name} must be a list, got {value!r:.80}")
            value = [_build(typing.get_args(hint)[0], item, f"{prefix}{f.name}[{i}]") for i, item in enumerate(value)]
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ValueError(f"{prefix}{e}") from e
