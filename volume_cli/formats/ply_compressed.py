"""The PlayCanvas / SuperSplat compressed PLY (``.compressed.ply``): 16 bytes a splat plus 72 bytes
per chunk of 256 splats, read by SuperSplat, the PlayCanvas engine and the mkkellogg viewer.

Binary little-endian, elements in this order:

    chunk   ceil(N / 256) records of 18 float32 (``CHUNK_PROPERTIES``), bounds of chunk i's splats
            (splats 256 i ... 256 i + 255): min_x min_y min_z max_x max_y max_z (metres),
            min_scale_x/y/z max_scale_x/y/z (log-scales), min_r/g/b max_r/g/b (rgb = 0.5 + 0.28209479 * f_dc).
            Older files have only the first 12; their colour is stored in [0, 1] directly.
    vertex  N records of 4 uint32 (``VERTEX_PROPERTIES``):
            packed_position  x, y, z normalised to the chunk's bounds: x in bits 31-21 (11 bits),
                             y in bits 20-11 (10 bits), z in bits 10-0 (11 bits); value = round(t (2^b - 1))
            packed_rotation  "smallest three": bits 31-30 the index (0 = w, 1 = x, 2 = y, 3 = z) of the
                             unit quaternion's largest |component|, made positive by flipping the sign
                             of q; bits 29-20, 19-10, 9-0 the other three in index order, each mapped from
                             [-1/sqrt 2, 1/sqrt 2] to [0, 1]
            packed_scale     log-scales normalised to the chunk's bounds, 11-10-11 bits as the position
            packed_color     bits 31-24 r, 23-16 g, 15-8 b normalised to the chunk's colour bounds,
                             bits 7-0 the opacity itself (sigmoid of the logit), 8 bits each
    sh      (only for SH degree >= 1) N records of uint8 f_rest_0 ... f_rest_{3 (K - 1) - 1}, the
            3DGS PLY's channel-major order, each round((f_rest + 4) 255 / 8) clipped to 0..255: the
            PlayCanvas engine decodes v 8 / 255 - 4 (SuperSplat's own writer truncates (f_rest / 8 + 0.5) 256;
            rounding to the decoder's grid halves the error)

Log-scales are clamped to [-20, 20] first, as SuperSplat does (exp(-20) m is 2 nm, exp(20) m is
astronomical). Splats are by default written in Morton (Z-order) order of their positions, as
SuperSplat does, so each chunk is spatially compact and its bounds, hence the quantisation steps,
small; ``morton_order`` gives the order.

The format is lossy. With range = a chunk's max - min of a quantity, decoding keeps:
    position        |d x|, |d z| <= 0.5 range / 2047, |d y| <= 0.5 range / 1023
    log-scale       (after the clamp) the same steps as the position
    colour          |d rgb| <= 0.5 range / 255, not clamped to [0, 1]
    opacity         |d opacity| <= 0.5 / 255 (0 and 255 decode to 0.5 / 255 and 1 - 0.5 / 255, so
                    that the logit is finite)
    rotation        the three smaller components within 0.5 sqrt(2) / 1023 = 7e-4; the largest is
                    recomputed from the unit norm
    f_rest          clamped to [-4, 4], then within 4 / 255
plus the float32 rounding of the stored bounds.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor

from volume_cli.formats._common import (
    RawArrays,
    f_rest_names,
    logit,
    parse_ply,
    ply_bytes,
    ply_element,
    raw_arrays,
    sh_from_columns,
    sh_rest_columns,
    sigmoid,
    to_gaussians,
)
from volume_cli.gaussians import SH_C0, Gaussians

CHUNK_SIZE = 256
CHUNK_PROPERTIES = [
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
    "min_r", "min_g", "min_b", "max_r", "max_g", "max_b",
]  # fmt: skip
VERTEX_PROPERTIES = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
_LOG_SCALE_LIMIT = 20.0
_SH_LIMIT = 4.0  # f_rest is stored in [-4, 4]
# For each index of the largest component, the indices of the other three, in order.
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
_BITS_111011 = (11, 10, 11)


def morton_order(means: Tensor) -> Tensor:
    """Indices [N] (int64) sorting positions ``means`` [N, 3] along a Z-order curve: each axis is
    quantised to 10 bits over the bounding box and the bits are interleaved (x lowest). Ties keep
    input order."""
    if means.ndim != 2 or means.shape[-1] != 3:
        raise ValueError(f"means must be [N, 3], got {list(means.shape)}")
    return torch.from_numpy(_morton_order(means.detach().to("cpu", torch.float64).numpy()))


def _morton_order(means: np.ndarray) -> np.ndarray:
    if len(means) == 0:
        return np.zeros(0, np.int64)
    lo, hi = means.min(0), means.max(0)
    extent = np.where(hi > lo, hi - lo, 1.0)
    cells = np.clip(np.floor((means - lo) / extent * 1024.0), 0, 1023).astype(np.uint64)  # [N, 3]
    code = np.zeros(len(means), np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def encode_compressed_ply(gaussians: Gaussians, *, morton: bool = True) -> bytes:
    """One set of Gaussians (means [N, 3]) -> the bytes of a compressed PLY, splats in ``morton_order``
    (or in input order with ``morton=False``). See the module docstring for the layout and losses.

    Raises ValueError, saying how many splats, if any parameter is non-finite or a quaternion is zero.
    """
    a = raw_arrays(gaussians)
    n = len(a.means)
    order = _morton_order(a.means.astype(np.float64)) if morton else np.arange(n)
    means = a.means[order].astype(np.float64)  # [N, 3]
    log_scales = np.clip(a.log_scales[order].astype(np.float64), -_LOG_SCALE_LIMIT, _LOG_SCALE_LIMIT)  # [N, 3]
    rgb = 0.5 + SH_C0 * a.sh[order, 0, :].astype(np.float64)  # [N, 3]
    opacity = sigmoid(a.opacity_logits[order].astype(np.float64))  # [N]

    bounds = [_chunk_bounds(v) for v in (means, log_scales, rgb)]  # (min [C, 3], max [C, 3]) each
    chunk_columns = np.concatenate([b for pair in bounds for b in pair], axis=1)  # [C, 18]
    (p_lo, p_hi), (s_lo, s_hi), (c_lo, c_hi) = bounds
    colour = _unorm_in_chunk(rgb, c_lo, c_hi)  # [N, 3]
    vertex_columns = np.stack(
        [
            _pack(_unorm_in_chunk(means, p_lo, p_hi), _BITS_111011),
            _pack_rotation(a.quats[order].astype(np.float64)),
            _pack(_unorm_in_chunk(log_scales, s_lo, s_hi), _BITS_111011),
            _pack(np.concatenate([colour, opacity[:, None]], axis=1), (8, 8, 8, 8)),
        ],
        axis=1,
    )  # [N, 4]

    elements = [
        ply_element("chunk", CHUNK_PROPERTIES, chunk_columns, "<f4"),
        ply_element("vertex", VERTEX_PROPERTIES, vertex_columns, "<u4"),
    ]
    if gaussians.sh_degree > 0:
        rest = sh_rest_columns(a.sh[order]).astype(np.float64)  # [N, 3 (K - 1)]
        quantised = np.clip(np.round((rest + _SH_LIMIT) * (255.0 / (2 * _SH_LIMIT))), 0, 255)
        names = [f"f_rest_{i}" for i in range(rest.shape[1])]
        elements.append(ply_element("sh", names, quantised, "u1"))
    return ply_bytes(elements)


def read_compressed_ply(path: str | os.PathLike) -> Gaussians:
    """A compressed PLY file -> float32 CPU Gaussians [N, ...], in file order."""
    ply = parse_ply(path)
    for name in ("chunk", "vertex"):
        if name not in ply:
            raise ValueError(f"not a compressed PLY: no '{name}' element (elements: {[e.name for e in ply.elements]})")
    chunk, vertex = ply["chunk"], ply["vertex"]
    chunk_names = [p.name for p in chunk.properties]
    has_colour_bounds = "min_r" in chunk_names
    required = CHUNK_PROPERTIES if has_colour_bounds else CHUNK_PROPERTIES[:12]
    missing = [name for name in required if name not in chunk_names]
    missing += [name for name in VERTEX_PROPERTIES if name not in [p.name for p in vertex.properties]]
    if missing:
        raise ValueError(f"compressed PLY lacks the properties {', '.join(missing)}")
    n = vertex.count
    if chunk.count != math.ceil(n / CHUNK_SIZE):
        raise ValueError(f"compressed PLY has {chunk.count} chunks for {n} splats; expected ceil({n} / {CHUNK_SIZE})")

    chunk_of = np.arange(n) // CHUNK_SIZE

    def per_splat(names: list[str]) -> np.ndarray:  # chunk columns [N, len(names)], float64
        return np.stack([np.asarray(chunk[c], dtype=np.float64) for c in names], axis=1)[chunk_of]

    def lerp(prefix_lo: str, prefix_hi: str, axes: str, t: np.ndarray) -> np.ndarray:
        lo = per_splat([f"{prefix_lo}{a}" for a in axes])
        hi = per_splat([f"{prefix_hi}{a}" for a in axes])
        return lo * (1.0 - t) + hi * t  # exact at both ends

    packed = {name: np.asarray(vertex[name]).astype(np.uint32) for name in VERTEX_PROPERTIES}
    means = lerp("min_", "max_", "xyz", _unpack(packed["packed_position"], _BITS_111011))
    log_scales = lerp("min_scale_", "max_scale_", "xyz", _unpack(packed["packed_scale"], _BITS_111011))
    rgba = _unpack(packed["packed_color"], (8, 8, 8, 8))  # [N, 4]
    rgb = lerp("min_", "max_", "rgb", rgba[:, :3]) if has_colour_bounds else rgba[:, :3]
    opacity = np.clip(rgba[:, 3], 0.5 / 255.0, 1.0 - 0.5 / 255.0)

    n_rest = 0
    if "sh" in ply:
        sh_element = ply["sh"]
        rest_names = f_rest_names([p.name for p in sh_element.properties], "compressed PLY sh")
        if sh_element.count != n:
            raise ValueError(f"compressed PLY has {sh_element.count} sh records for {n} splats")
        n_rest = len(rest_names)
    rest = np.empty((n, n_rest), np.float64)
    for j in range(n_rest):
        rest[:, j] = np.asarray(ply["sh"][f"f_rest_{j}"], dtype=np.float64) * (2 * _SH_LIMIT / 255.0) - _SH_LIMIT

    return to_gaussians(
        RawArrays(
            means=means,
            quats=_unpack_rotation(packed["packed_rotation"]),
            log_scales=log_scales,
            opacity_logits=logit(opacity),
            sh=sh_from_columns((rgb - 0.5) / SH_C0, rest),
        )
    )


def _chunk_bounds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk min and max [C, D] of ``values`` [N, D], rounded to float32 as they are stored."""
    if len(values) == 0:
        empty = np.zeros((0, values.shape[1]))
        return empty, empty
    starts = np.arange(0, len(values), CHUNK_SIZE)
    lo = np.minimum.reduceat(values, starts, axis=0).astype(np.float32).astype(np.float64)
    hi = np.maximum.reduceat(values, starts, axis=0).astype(np.float32).astype(np.float64)
    return lo, hi


def _unorm_in_chunk(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``values`` [N, D] mapped to [0, 1] within their chunk's bounds [C, D]; 0 where a chunk is flat."""
    chunk_of = np.arange(len(values)) // CHUNK_SIZE
    lo, span = lo[chunk_of], (hi - lo)[chunk_of]
    return np.where(span > 0, (values - lo) / np.where(span > 0, span, 1.0), 0.0)


def _pack(t: np.ndarray, bits: tuple[int, ...]) -> np.ndarray:
    """Values in [0, 1] [N, len(bits)] -> uint32 [N], the first field in the highest bits."""
    out = np.zeros(len(t), np.uint32)
    for j, b in enumerate(bits):
        top = (1 << b) - 1
        out = (out << np.uint32(b)) | np.clip(np.floor(t[:, j] * top + 0.5), 0, top).astype(np.uint32)
    return out


def _unpack(packed: np.ndarray, bits: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``_pack``: uint32 [N] -> values in [0, 1] [N, len(bits)], float64."""
    out = np.empty((len(packed), len(bits)))
    shift = sum(bits)
    for j, b in enumerate(bits):
        shift -= b
        top = (1 << b) - 1
        out[:, j] = ((packed >> np.uint32(shift)) & np.uint32(top)) / top
    return out


def _pack_rotation(quats: np.ndarray) -> np.ndarray:
    """Quaternions [N, 4] (w first, any non-zero norm) -> "smallest three" uint32 [N]."""
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    largest = np.abs(q).argmax(1)  # [N]
    rows = np.arange(len(q))
    q = q * np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]  # q and -q are the same rotation
    others = q[rows[:, None], _OTHERS[largest]]  # [N, 3], each in [-1/sqrt 2, 1/sqrt 2]
    return (largest.astype(np.uint32) << np.uint32(30)) | _pack(others * (math.sqrt(2) / 2) + 0.5, (10, 10, 10))


def _unpack_rotation(packed: np.ndarray) -> np.ndarray:
    """Inverse of ``_pack_rotation``: uint32 [N] -> unit quaternions [N, 4], w first."""
    others = (_unpack(packed, (10, 10, 10)) - 0.5) * math.sqrt(2)  # [N, 3]
    largest = (packed >> np.uint32(30)).astype(np.int64)
    rows = np.arange(len(packed))
    q = np.empty((len(packed), 4))
    q[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - (others**2).sum(1)))
    q[rows[:, None], _OTHERS[largest]] = others
    return q

