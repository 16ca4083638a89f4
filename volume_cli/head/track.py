"""A clip's head: one identity, then frame by frame pose, expression, the prior and the texture.

``convert`` makes one per clip; ``evaluate`` one per same-moment pair (the two frames of a clip);
the geometric predictor one per still it is given without a clip's prior.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from volume_cli.head.fit import HeadFit, HeadFitter
from volume_cli.head.model import HeadModel
from volume_cli.head.prior import HeadPrior, head_prior
from volume_cli.head.texture import ClipTexture


class HeadTrack:
    """model: the head model; rasterize_depth: the mesh rasteriser the prior is drawn with
    (``(pixels [V, 2], z [V], triangles [T, 3], size) -> [S, S]``); clip: frames of one video
    (a shared identity, warm starts, a texture) rather than unrelated stills."""

    def __init__(self, model: HeadModel, rasterize_depth: Callable, *, clip: bool = True) -> None:
        self.model = model
        self.fitter = HeadFitter(model)
        self.clip = clip
        self.texture = ClipTexture(model.num_vertices) if clip else None
        self._rasterize_depth = rasterize_depth

    def fit_identity(self, landmark_sets: list[np.ndarray]) -> None:
        """The clip's identity from its frames' metric landmarks ([478, 3] each; at most
        IDENTITY_FRAMES of them, spread evenly over the clip, are used)."""
        self.fitter.fit_identity(landmark_sets)

    def fit_frames(self, landmark_sets: Iterable[np.ndarray], sigma_frames: float) -> "PackedFits":
        """Every frame of the clip fitted in order ([478, 3] landmarks each, one camera frame for
        all), kept packed (float32, ~240 bytes a frame: memory stays flat in the clip's length)
        and smoothed over time (``smooth_fits``'s rule)."""
        packed = PackedFits(self.fitter.identity, len(self.model.expression_names))
        for lm in landmark_sets:
            packed.append(self.fitter.fit_frame(lm))
        packed.smooth(sigma_frames)
        return packed

    def prior(self, landmarks: np.ndarray, K: np.ndarray, size: int) -> tuple[HeadPrior | None, dict]:
        """The next frame's head from its crop's landmarks [478, 3] (crop frame) seen through the
        crop camera K [3, 3] at S = size: (the prior, None where the fit is refused; the fit's
        record for sequence.json)."""
        fit = self.fitter.fit_frame(landmarks) if self.clip else self.fitter.fit_still(landmarks)
        return self.prior_of(fit, K, size)

    def prior_of(self, fit: HeadFit, K: np.ndarray, size: int) -> tuple[HeadPrior | None, dict]:
        """A fit already made (posed in the crop's frame) seen through K at S = size, as ``prior``."""
        record = fit.as_json(self.model)
        if not fit.ok:
            return None, record
        return head_prior(self.model, fit, K, size, self._rasterize_depth), record

    def header(self) -> dict:
        """What sequence.json records of the clip's head."""
        return {"model": "weights/head_model.safetensors",
                "identity": np.round(self.fitter.identity, 5).tolist() if self.clip else None}


class PackedFits:
    """A clip's per-frame fits as one float32 array [F, 9 + 3 + 1 + E] (rotation, translation,
    scale, face units) that grows by doubling, with ok flags, residuals and the refusal reasons;
    ``fit(i)`` is frame i. ~240 bytes a frame and nothing per frame as a Python object, so a long
    clip's fits stay a few MB (issue 12)."""

    _CHUNK_ROWS = 4096  # smoothing works on this many rows (plus its margin) at a time

    def __init__(self, identity: np.ndarray, expressions: int) -> None:
        self.identity = identity
        self._width = 13 + expressions
        self._count = 0
        self._array = np.zeros((256, self._width), np.float32)
        self._ok = np.zeros(256, bool)
        self._residual = np.zeros(256, np.float64)
        self._reasons: dict[int, str] = {}  # only the refused frames

    def append(self, fit: HeadFit) -> None:
        if self._count == len(self._ok):
            self._array, self._ok, self._residual = (np.concatenate([a, np.zeros_like(a)])
                                                     for a in (self._array, self._ok, self._residual))
        k = self._count
        if not fit.ok:
            self._reasons[k] = fit.reason
        self._array[k, :9], self._array[k, 9:12], self._array[k, 12] = fit.R.ravel(), fit.t, fit.scale
        self._array[k, 13:] = fit.expression
        self._ok[k], self._residual[k] = fit.ok, fit.residual_m
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def smooth(self, sigma_frames: float) -> None:
        """Centred Gaussian average over the ok frames (refused ones neither move nor pull), in
        place, a chunk of rows at a time (the originals a chunk's window needs from the chunk
        before it are kept aside), so it needs no second copy of the clip's fits."""
        if sigma_frames <= 0 or self._count == 0:
            return
        n, a, ok = self._count, self._array, self._ok
        radius = int(np.ceil(3 * sigma_frames))
        chunk = max(self._CHUNK_ROWS, radius)
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2).astype(np.float32)
        carried = np.zeros((0, self._width), np.float32)  # originals of the rows just before this chunk
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            lo, hi = max(0, start - radius), min(n, stop + radius)
            window = a[lo:hi].copy()
            window[:start - lo] = carried
            w_ok = ok[lo:hi].astype(np.float32)
            total = np.zeros((stop - start, self._width), np.float32)
            weight = np.zeros(stop - start, np.float32)
            for d, k in zip(range(-radius, radius + 1), kernel):
                i0, i1 = max(start, lo - d), min(stop, hi - d)  # rows i whose neighbour i + d is in the window
                if i0 >= i1:
                    continue
                src = slice(i0 + d - lo, i1 + d - lo)
                total[i0 - start:i1 - start] += k * w_ok[src, None] * window[src]
                weight[i0 - start:i1 - start] += k * w_ok[src]
            carried = window[max(stop - radius, lo) - lo:stop - lo].copy()
            mine = ok[start:stop]
            a[start:stop][mine] = total[mine] / np.maximum(weight[mine], 1e-12)[:, None]

    def fit(self, i: int) -> HeadFit:
        row = self._array[i].astype(np.float64)
        R = row[:9].reshape(3, 3)
        if self._ok[i]:  # an average of rotations: the nearest rotation to it
            U, _, Vt = np.linalg.svd(R)
            R = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
        return HeadFit(identity=self.identity, expression=np.clip(row[13:], 0.0, 1.0), scale=float(row[12]), R=R,
                       t=row[9:12], residual_m=float(self._residual[i]), ok=bool(self._ok[i]), reason=self._reasons.get(i, ""))
