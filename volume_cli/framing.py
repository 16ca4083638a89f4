"""From a frame and its face to the predictor's input: the virtual camera aimed at the head, the
homography crop, and the landmarks in the virtual-camera frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from volume_cli import camera
from volume_cli.face import FaceObservation, HeadState, head_state, landmarks_to_camera


@dataclass
class FramedCrop:
    """One frame's crop. crop [S, S, 3] uint8 RGB; valid [S, S] bool (inside the original frame);
    landmarks [478, 3] metres in the virtual-camera frame; head_center [3] metres in the ORIGINAL
    frame."""

    cam: camera.VirtualCamera
    crop: np.ndarray
    valid: np.ndarray
    landmarks: np.ndarray
    head_center: np.ndarray


def frame_crop(image: np.ndarray, K: np.ndarray, face: FaceObservation, head: HeadState, size: int) -> FramedCrop:
    """Aim the virtual camera at the (smoothed) head centre and cut the S x S crop from ``image``
    [H, W, 3] uint8."""
    cam = camera.virtual_camera(head.center, size)
    crop = camera.warp_crop(image, K, cam)
    # Which crop pixels see the frame: warp a white image the same way (border stays 0).
    inside = camera.warp_crop(np.full(image.shape[:2], 255, np.uint8), K, cam)
    points = landmarks_to_camera(face, K, head) @ cam.R.T
    return FramedCrop(cam=cam, crop=crop, valid=inside > 250, landmarks=points, head_center=head.center)


def crop_of_still(image: np.ndarray, K: np.ndarray, finder, size: int) -> FramedCrop | None:
    """A frame taken alone, as ``volume convert`` crops it: MediaPipe's face (``finder``, a
    ``face.FaceFinder``), its head state and the crop; None when no face is found."""
    face = finder.find(image)
    if face is None:
        return None
    return frame_crop(image, K, face, head_state(face, K), size)
