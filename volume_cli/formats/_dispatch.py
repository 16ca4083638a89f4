"""The splat file formats by name, and reading / writing a file in any of them."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from volume_cli.formats.atomic import atomic_write_bytes
from volume_cli.formats.ply import encode_ply, read_ply
from volume_cli.formats.ply_compressed import encode_compressed_ply, read_compressed_ply
from volume_cli.formats.splat import encode_splat, read_splat
from volume_cli.gaussians import Gaussians

_HEADER_BYTES = 65536  # a PLY header is a few hundred bytes; this bounds the search for end_header


class SplatFormat(str, Enum):
    """A splat file format; the value is the name used on the command line and in sequence.json."""

    ply = "ply"  # 3DGS PLY, lossless (float32)
    splat = "splat"  # antimatter15 .splat, 32 bytes a splat, SH degree 0
    ply_compressed = "ply-compressed"  # PlayCanvas / SuperSplat compressed PLY, 16 bytes a splat

    @property
    def suffix(self) -> str:
        """File name suffix: ".ply", ".splat" or ".compressed.ply"."""
        return {"ply": ".ply", "splat": ".splat", "ply-compressed": ".compressed.ply"}[self.value]


_CODECS = {  # format -> (encode Gaussians to bytes, read a file into Gaussians)
    SplatFormat.ply: (encode_ply, read_ply),
    SplatFormat.splat: (encode_splat, read_splat),
    SplatFormat.ply_compressed: (encode_compressed_ply, read_compressed_ply),
}


def write_splats(path: str | os.PathLike, gaussians: Gaussians, fmt: SplatFormat | str) -> None:
    """Write one set of Gaussians (means [N, 3]) to ``path`` in ``fmt``, atomically (a reader never
    sees a partial file). The suffix of ``path`` is not checked; readers go by content first.

    Raises ValueError for an unknown format, a batch of sets, or non-finite parameters (saying how
    many splats); nothing is written then.
    """
    atomic_write_bytes(path, encode_splats(gaussians, fmt))


def encode_splats(gaussians: Gaussians, fmt: SplatFormat | str) -> bytes:
    """The bytes ``write_splats`` would write (to write the same splats under several names)."""
    encode, _ = _CODECS[SplatFormat(fmt)]
    return encode(gaussians)


def detect_format(path: str | os.PathLike) -> SplatFormat:
    """The format of the splat file at ``path``: a PLY by its content (compressed if it has a ``chunk``
    element), a ``.splat`` by its suffix (the format has no header). Raises ValueError otherwise."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_HEADER_BYTES)
    try:
        return _detect(head, path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def read_splats(path: str | os.PathLike) -> Gaussians:
    """Read a splat file in any ``SplatFormat`` (see ``detect_format``) -> float32 CPU Gaussians
    [N, ...]. Errors are ValueErrors that name the file."""
    _, read = _CODECS[detect_format(path)]
    try:
        return read(path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def _detect(head: bytes, path: Path) -> SplatFormat:
    if head.startswith(b"ply"):
        header = head.split(b"end_header", 1)[0]
        has_chunk = any(line.split()[:2] == [b"element", b"chunk"] for line in header.splitlines())
        return SplatFormat.ply_compressed if has_chunk else SplatFormat.ply
    if path.suffix.lower() == ".splat":
        return SplatFormat.splat
    raise ValueError("not a splat file (neither a PLY nor named .splat)")
