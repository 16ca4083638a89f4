"""Contact sheets: images resized to a common height, labelled, tiled into rows."""

from __future__ import annotations

import cv2
import numpy as np


def resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    """[H, W, 3] uint8 -> [height, W * height / H, 3], area-averaged when shrinking."""
    w = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (w, height), interpolation=cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR)


def label(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` [H, W, 3] uint8 with ``text`` in its top-left corner, white on a black outline."""
    image = image.copy()
    scale = max(0.3, image.shape[0] / 400)
    origin = (4, int(14 * scale) + 8)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def stack_rows(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Tiles of equal height side by side, rows one under another (short rows padded with black)."""
    joined = [np.concatenate(r, axis=1) for r in rows]
    width = max(r.shape[1] for r in joined)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in joined], axis=0)
