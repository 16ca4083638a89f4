"""A clip's head: one identity, then frame by frame pose, expression, the prior and the texture.

``convert`` makes one per clip; ``evaluate`` one per same-moment pair (the two frames of a clip);
the geometric predictor one per still it is given without a clip's prior.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from volume_cli.head.fit import HeadFit, HeadFitter, smooth_fits
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

    def fit_frames(self, landmark_sets: Iterable[np.ndarray], sigma_frames: float) -> list[HeadFit]:
        """Every frame of the clip fitted in order ([478, 3] landmarks each, one camera frame for
        all) and smoothed over time (``smooth_fits``)."""
        fits = [self.fitter.fit_frame(lm) for lm in landmark_sets]
        return smooth_fits(fits, sigma_frames) if sigma_frames > 0 else fits

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
