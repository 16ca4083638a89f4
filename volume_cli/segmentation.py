"""Who is the person in a crop: MediaPipe's selfie segmentation, in one place.

The geometric predictor turns it into opacities, ``volume evaluate`` into the head mask it scores
inside, and the learned predictor's prior input (``predictors.prior_input``) into a channel, so
all three see the same mask of the same crop.
"""

from __future__ import annotations

import numpy as np


class PersonSegmenter:
    """Person confidence of a crop. Model 0 ("general") takes a square 256 x 256 input, the shape
    of our crops; other sizes are resized by MediaPipe. Not thread-safe: one per thread."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def mask(self, crop: np.ndarray) -> np.ndarray:
        """Confidence [S, S] float64 in [0, 1] for a crop [S, S, 3] uint8 RGB."""
        return np.clip(self._segmenter.process(crop).segmentation_mask, 0.0, 1.0).astype(np.float64)

    def close(self) -> None:
        self._segmenter.close()

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
