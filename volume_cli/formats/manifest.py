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

Reading validates every field's presence, type, choices and matrix shapes and raises ValueError
naming the field (``frames[3].time_s``); unknown keys are ignored.
"""

from __future__ import annotations

import functools
import json
import numbers
import os
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from volume_cli import __version__
from volume_cli.formats._dispatch import SplatFormat, detect_format, read_splats
from volume_cli.formats.atomic import atomic_write_json
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
        if Path(self.file).name != self.file or self.file in ("", ".", ".."):
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
class SequenceManifest:
    """``sequence.json`` without its ``format`` and ``version`` keys, which ``to_dict`` adds.

    Fields in schema order; see the module docstring. ``splat_format`` also accepts its string value.
    """

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
    frames: list[FrameRecord] = field(default_factory=list)
    missing: list[MissingRecord] = field(default_factory=list)

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

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> SequenceManifest:
        """Validate a parsed JSON object and build the manifest. Raises ValueError naming the field."""
        if not isinstance(data, dict):
            raise ValueError(f"a manifest must be a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT_NAME:
            raise ValueError(f"not a volume sequence manifest: format is {data.get('format')!r}, expected {FORMAT_NAME!r}")
        if "version" not in data:
            raise ValueError("missing field 'version'")
        if data["version"] != MANIFEST_VERSION:
            version = data["version"]
            raise ValueError(f"unsupported manifest version {version!r}; this volume reads version {MANIFEST_VERSION}")
        return _build(cls, data, "")

    @classmethod
    def from_json(cls, text: str, frame_heads: bool = True) -> SequenceManifest:
        """Parse and validate. ``frame_heads=False`` leaves each frame's fitted head out (None):
        it is most of a frame record's memory (~4 of ~5 kB, its expression weights), and what only
        reads the splats (render, info, view, flicker) never needs it; it is dropped while parsing,
        so a long clip's records are never all held with it."""
        hook = None if frame_heads else _without_frame_head
        try:
            data = json.loads(text, object_pairs_hook=hook)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON: {e}") from e
        return cls.from_dict(data)


def _without_frame_head(pairs: list[tuple[str, Any]]) -> dict:
    """json's object hook: a frame record (it has "file" and "time_s") without its "head"."""
    obj = dict(pairs)
    if "file" in obj and "time_s" in obj:
        obj.pop("head", None)
    return obj


def write_manifest(folder: str | os.PathLike, manifest: SequenceManifest) -> Path:
    """Write ``manifest`` to ``folder``/sequence.json atomically; return the path."""
    path = Path(folder) / MANIFEST_NAME
    atomic_write_json(path, manifest.to_dict())
    return path


def read_manifest(path: str | os.PathLike, frame_heads: bool = True) -> SequenceManifest:
    """Read and validate a sequence.json, given its path or its folder's (``frame_heads``: see
    ``SequenceManifest.from_json``). Errors name the file."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        return SequenceManifest.from_json(path.read_text(encoding="utf-8"), frame_heads=frame_heads)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


# -- loading a sequence ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceFrame:
    path: Path  # the splat file
    index: int  # source frame index (0 for a single file)
    time_s: float  # presentation time, seconds (0.0 for a single file)
    status: str  # "ok" or "held"


@dataclass(frozen=True)
class Sequence:
    """What ``load_sequence`` found: the frames in index order, and the manifest (None for a single
    splat file, which has no source information)."""

    root: Path  # the sequence folder, or the folder of the single file
    splat_format: SplatFormat
    frames: list[SequenceFrame]
    manifest: SequenceManifest | None

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
        manifest = read_manifest(root / MANIFEST_NAME, frame_heads=False)  # a reader of splats needs no fits
        frames = [
            SequenceFrame(path=root / r.file, index=r.index, time_s=r.time_s, status=r.status)
            for r in sorted(manifest.frames, key=lambda r: r.index)
        ]
        absent = [f.path.name for f in frames if not f.path.is_file()]
        if absent:
            raise ValueError(f"{root}: {len(absent)} frame files listed in {MANIFEST_NAME} are missing, e.g. {absent[:3]}")
        return Sequence(root=root, splat_format=manifest.splat_format, frames=frames, manifest=manifest)
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
