"""The 3DGS PLY, as the reference implementation (graphdeco-inria/gaussian-splatting) writes it and
SuperSplat / PlayCanvas, the mkkellogg viewer, gsplat and nerfstudio read it.

Binary little-endian, one element ``vertex`` with one float32 property per raw parameter, in this
order (``vertex_properties``):

    x y z            mean, metres
    nx ny nz         normals, always zero (unused; the reference writes them and some readers expect them)
    f_dc_0..2        SH DC of r, g, b: rgb = 0.5 + 0.28209479 * f_dc
    f_rest_0..M-1    higher SH, M = 3 (K - 1), channel-major: all of red's K - 1 coefficients, then
                     green's, then blue's (degree 1: f_rest_0..2 red, 3..5 green, 6..8 blue)
    opacity          logit of the opacity
    scale_0..2       natural log of the standard deviations, metres
    rot_0..3         rotation quaternion w, x, y, z (not necessarily normalised)

The reader takes any file with these properties, in any order and of any numeric type, with or
without normals and f_rest.
"""

from __future__ import annotations

import os

import numpy as np

from volume_cli.formats._common import (
    RawArrays,
    f_rest_names,
    parse_ply,
    ply_bytes,
    ply_element,
    raw_arrays,
    sh_from_columns,
    sh_rest_columns,
    to_gaussians,
)
from volume_cli.gaussians import Gaussians

_REQUIRED = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip


def vertex_properties(sh_degree: int) -> list[str]:
    """The vertex property names, in file order, of a PLY with SH of degree ``sh_degree``."""
    if sh_degree < 0:
        raise ValueError(f"sh_degree must be >= 0, got {sh_degree}")
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(n_rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def encode_ply(gaussians: Gaussians) -> bytes:
    """One set of Gaussians (means [N, 3]) -> the bytes of a 3DGS PLY file.

    Raises ValueError, saying how many splats, if any parameter is non-finite or a quaternion is zero.
    """
    a = raw_arrays(gaussians)
    n = len(a.means)
    columns = np.concatenate(
        [
            a.means,
            np.zeros((n, 3), np.float32),  # normals
            a.sh[:, 0, :],
            sh_rest_columns(a.sh),
            a.opacity_logits[:, None],
            a.log_scales,
            a.quats,
        ],
        axis=1,
        dtype=np.float32,
    )  # [N, P]
    return ply_bytes([ply_element("vertex", vertex_properties(gaussians.sh_degree), columns, "<f4")])


def read_ply(path: str | os.PathLike) -> Gaussians:
    """A 3DGS PLY file -> float32 CPU Gaussians [N, ...], values as stored (not checked for
    finiteness: callers that render use ``Gaussians.prune``, which raises on them)."""
    ply = parse_ply(path)
    if "chunk" in ply:
        raise ValueError("this is a compressed PLY (it has a 'chunk' element); read it with read_compressed_ply")
    if "vertex" not in ply:
        raise ValueError(f"PLY has no 'vertex' element (elements: {[e.name for e in ply.elements]}); not a splat file")
    vertex = ply["vertex"]
    names = [p.name for p in vertex.properties]
    missing = [name for name in _REQUIRED if name not in names]
    if missing:
        raise ValueError(f"PLY is not a Gaussian splat file: the vertex element lacks {', '.join(missing)}")
    rest_names = f_rest_names(names, "PLY vertex")

    def stack(cols: list[str]) -> np.ndarray:  # [N, len(cols)] float32, whatever the stored type
        out = np.empty((vertex.count, len(cols)), np.float32)
        for j, col in enumerate(cols):
            out[:, j] = vertex[col]
        return out

    return to_gaussians(
        RawArrays(
            means=stack(["x", "y", "z"]),
            quats=stack(["rot_0", "rot_1", "rot_2", "rot_3"]),
            log_scales=stack(["scale_0", "scale_1", "scale_2"]),
            opacity_logits=stack(["opacity"])[:, 0],
            sh=sh_from_columns(stack(["f_dc_0", "f_dc_1", "f_dc_2"]), stack(rest_names)),
        )
    )

