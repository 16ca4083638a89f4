"""Splat files and sequence folders.

    write_splats(path, gaussians, fmt)   one set of Gaussians -> a file, atomically
    read_splats(path)                    a file in any SplatFormat -> Gaussians (format from content / suffix)
    load_sequence(path)                  a sequence folder, its sequence.json, or a single splat file

Formats (``SplatFormat``; details and round-trip losses in each module's docstring):
    ply             3DGS PLY (``ply.py``), lossless float32, any SH degree; the default
    splat           antimatter15 .splat (``splat.py``), 32 bytes a splat, SH degree 0
    ply-compressed  PlayCanvas / SuperSplat compressed PLY (``ply_compressed.py``), 16 bytes a splat
"""

from volume_cli.formats._dispatch import SplatFormat, detect_format, encode_splats, read_splats, write_splats
from volume_cli.formats.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, remove_stale_temp_files
from volume_cli.formats.manifest import (
    COORDINATES,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    FrameRecord,
    FrameTable,
    Intrinsics,
    ManifestHeader,
    MissingRecord,
    PredictorInfo,
    Sequence,
    SequenceFrame,
    SequenceFrames,
    SequenceListing,
    SequenceManifest,
    SourceInfo,
    ToolInfo,
    frame_file_name,
    frames_on_disk,
    load_sequence,
    read_listing,
    read_manifest,
    scan_manifest,
    write_manifest,
)

__all__ = [
    "encode_splats",
    "COORDINATES",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "FrameRecord",
    "FrameTable",
    "Intrinsics",
    "ManifestHeader",
    "MissingRecord",
    "PredictorInfo",
    "Sequence",
    "SequenceFrame",
    "SequenceFrames",
    "SequenceListing",
    "SequenceManifest",
    "SourceInfo",
    "SplatFormat",
    "ToolInfo",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "detect_format",
    "frame_file_name",
    "frames_on_disk",
    "load_sequence",
    "read_listing",
    "read_manifest",
    "read_splats",
    "remove_stale_temp_files",
    "scan_manifest",
    "write_manifest",
    "write_splats",
]
