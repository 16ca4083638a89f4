"""Niantic's ``.spz`` (github.com/nianticlabs/spz, format version 3): what `volume view` streams to
the browser, about 13 bytes a splat after gzip against 62 for our PLY.

A gzip stream of a 16-byte little-endian header (magic 0x5053474e "NGSP", version 3, number of
splats, SH degree, fractional bits, flags, reserved 0), then one block per attribute, each covering
every splat in turn:

    positions   3 x 24-bit two's-complement fixed point, ``FRACTIONAL_BITS`` after the point
                (1/4096 m = 0.24 mm steps, range +-2048 m)
    alphas      uint8 round(255 * opacity)
    colours     3 x uint8 round(255 * (0.5 + 0.15 * f_dc)) (the format's scale 0.15, so the byte
                covers f_dc in +-3.3, rgb 0.5 +- 0.94)
    scales      3 x uint8 round(16 * (log-scale + 10)) (log-scale -10 .. 5.9)
    rotations   the unit quaternion (x, y, z, w order) as its "smallest three": a uint32 whose top
                2 bits name the largest component, then per other component, in order, 10 bits:
                a sign bit and a 9-bit magnitude of |q_i| / sqrt(1/2) (the largest component is
                made positive; it is recovered as sqrt(1 - the others squared))
    (SH degree 0 only: higher bands are dropped, as the viewer needs only the colour.)

Coordinates are written as they are (the format's converter calls this "unspecified"): our
files are in OpenCV's camera frame and the viewer page turns them upright itself.

The format is lossy; ``decode_spz`` (for tests and checks) returns SH degree 0 and keeps position
within half a step (0.12 mm), opacity within 0.5/255, f_dc within 0.5/255/0.15 = 0.013, log-scale
within 1/32 after clipping to its range, and each quaternion component within about 1.4e-3.
"""

from __future__ import annotations

import gzip
import struct

import numpy as np
import torch

from volume_cli.formats._common import logit, raw_arrays
from volume_cli.gaussians import Gaussians

MAGIC = 0x5053474E
VERSION = 3
FRACTIONAL_BITS = 12
COLOUR_SCALE = 0.15
_HEADER = struct.Struct("<IIIBBBB")
_SQRT_HALF = float(np.sqrt(0.5))
_MAG_MAX = 511  # 9 bits of magnitude per stored quaternion component


def encode_spz(gaussians: Gaussians, compresslevel: int = 6) -> bytes:
    """One set of Gaussians (means [N, 3]) -> the bytes of a ``.spz`` file (version 3, SH degree 0).
    Raises ValueError, saying how many splats, for non-finite parameters or zero quaternions, and
    for positions beyond the fixed-point range."""
    a = raw_arrays(gaussians)
    n = len(a.means)
    fixed = np.round(a.means.astype(np.float64) * (1 << FRACTIONAL_BITS))
    out_of_range = int((np.abs(fixed) >= (1 << 23)).any(1).sum())
    if out_of_range:
        raise ValueError(f"{out_of_range} of {n} splats lie beyond +-{(1 << 23) >> FRACTIONAL_BITS} m, which .spz cannot store")
    positions = (fixed.astype(np.int64) & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(n, 3, 4)[:, :, :3]
    opacity = 1.0 / (1.0 + np.exp(-a.opacity_logits.astype(np.float64)))
    alphas = _to_byte(255.0 * opacity)
    colours = _to_byte(255.0 * (0.5 + COLOUR_SCALE * a.sh[:, 0, :].astype(np.float64)))
    scales = _to_byte(16.0 * (a.log_scales.astype(np.float64) + 10.0))
    rotations = _smallest_three(a.quats.astype(np.float64)).astype("<u4").view(np.uint8).reshape(n, 4)
    header = _HEADER.pack(MAGIC, VERSION, n, 0, FRACTIONAL_BITS, 0, 0)
    body = b"".join(np.ascontiguousarray(x).tobytes() for x in (positions, alphas, colours, scales, rotations))
    # mtime=0: the same splats give the same bytes (exports compare and cache by content).
    return gzip.compress(header + body, compresslevel=compresslevel, mtime=0)


def decode_spz(data: bytes) -> Gaussians:
    """The bytes of a version 2 or 3 ``.spz`` file -> float32 Gaussians (SH degree 0; higher bands
    in the file are skipped). Raises ValueError for anything else or a truncated file."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise ValueError(f"not a gzip stream: {e}") from e
    if len(raw) < _HEADER.size:
        raise ValueError("truncated .spz header")
    magic, version, n, sh_degree, frac_bits, _flags, _ = _HEADER.unpack_from(raw)
    if magic != MAGIC or version not in (2, 3):
        raise ValueError(f"not a version 2 or 3 .spz file (magic {magic:#x}, version {version})")
    rot_bytes = 4 if version == 3 else 3
    sizes = [9 * n, n, 3 * n, 3 * n, rot_bytes * n]
    if len(raw) < _HEADER.size + sum(sizes):
        raise ValueError(f".spz file is truncated: {len(raw)} bytes for {n} splats")
    blocks, at = [], _HEADER.size
    for size in sizes:
        blocks.append(np.frombuffer(raw, np.uint8, size, at))
        at += size
    pos_b, alpha_b, colour_b, scale_b, rot_b = blocks
    pos = pos_b.reshape(n, 3, 3).astype(np.int32)
    fixed = pos[..., 0] | (pos[..., 1] << 8) | (pos[..., 2] << 16)
    fixed = np.where(fixed >= (1 << 23), fixed - (1 << 24), fixed)
    means = fixed.astype(np.float64) / (1 << frac_bits)
    opacity = np.clip(alpha_b.astype(np.float64) / 255.0, 0.5 / 255.0, 1.0 - 0.5 / 255.0)
    dc = (colour_b.reshape(n, 3).astype(np.float64) / 255.0 - 0.5) / COLOUR_SCALE
    log_scales = scale_b.reshape(n, 3).astype(np.float64) / 16.0 - 10.0
    if version == 3:
        xyzw = _from_smallest_three(rot_b.reshape(n, 4).copy().view("<u4")[:, 0])
    else:
        xyz = rot_b.reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        xyzw = np.concatenate([xyz, np.sqrt(np.clip(1.0 - (xyz**2).sum(1, keepdims=True), 0.0, None))], 1)
    quats = xyzw[:, [3, 0, 1, 2]]
    as_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # noqa: E731
    return Gaussians(
        means=as_tensor(means),
        quats=as_tensor(quats),
        log_scales=as_tensor(log_scales),
        opacity_logits=as_tensor(logit(opacity)),
        sh=as_tensor(dc[:, None, :]),
    )


def _to_byte(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _smallest_three(quats_wxyz: np.ndarray) -> np.ndarray:
    """Quaternions [N, 4] (w first, any norm) -> uint32 [N] smallest-three codes (see the module)."""
    q = quats_wxyz[:, [1, 2, 3, 0]]  # the format's x, y, z, w order
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    largest = np.argmax(np.abs(q), axis=1)
    # q and -q are the same rotation: make the dropped (largest) component positive.
    q = q * np.where(q[np.arange(len(q)), largest] < 0, -1.0, 1.0)[:, None]
    code = largest.astype(np.uint64)
    for i in range(4):
        keep = largest != i
        mag = np.round(np.abs(q[:, i]) / _SQRT_HALF * _MAG_MAX).clip(0, _MAG_MAX).astype(np.uint64)
        field = ((q[:, i] < 0).astype(np.uint64) << np.uint64(9)) | mag
        code = np.where(keep, (code << np.uint64(10)) | field, code)
    return code.astype(np.uint32)


def _from_smallest_three(code: np.ndarray) -> np.ndarray:
    """uint32 [N] smallest-three codes -> unit quaternions [N, 4] in x, y, z, w order."""
    code = code.astype(np.int64)
    largest = code >> 30
    q = np.zeros((len(code), 4))
    rest = code.copy()
    for i in (3, 2, 1, 0):  # the last component written is in the lowest bits
        skip = largest == i
        mag = (rest & _MAG_MAX).astype(np.float64) / _MAG_MAX * _SQRT_HALF
        value = np.where((rest >> 9) & 1, -mag, mag)
        q[:, i] = np.where(skip, 0.0, value)
        rest = np.where(skip, rest, rest >> 10)
    q[np.arange(len(q)), largest] = np.sqrt(np.clip(1.0 - (q**2).sum(1), 0.0, None))
    return q
