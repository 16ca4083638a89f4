"""Face detection and landmarks (MediaPipe, bundled models, offline), choosing one person, and the
head track: per-frame head centre and distance, smoothed over time.

Landmarks are MediaPipe face-mesh points, 478 with the iris refinement, as ``(u, v, z)``: u, v in
pixels of the original image (pixel centres at +0.5) and z a relative depth in the same pixel
units (MediaPipe scales it like x, by the image width; smaller is nearer the camera).

Choosing the person: when a face is first found, the largest one is taken (among faces within
20 % of the largest area, the one nearest the image centre); from then on, the face that overlaps the previous choice most. If the chosen
face is lost, the next frame with faces chooses again by size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from volume_cli import camera

os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging; keep stderr for our messages

NUM_LANDMARKS = 478
# MediaPipe face-mesh indices. "Right"/"left" are the person's own.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
CHEEK_RIGHT, CHEEK_LEFT = 234, 454
FOREHEAD, CHIN = 10, 152
# The head's centre lies this far behind the eyes (metres, along the viewing ray): roughly the
# eye-to-ear depth of an adult head. Only used to aim and frame the virtual camera.
HEAD_CENTER_BEHIND_EYES_M = 0.08


@dataclass(frozen=True)
class FaceObservation:
    """One face in one frame. box [4] = x0, y0, x1, y1 pixels; landmarks [478, 3] (u, v, z)."""

    box: np.ndarray
    landmarks: np.ndarray

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Eye centres (person's left, right) as (u, v, z) [3]: mean of each eye's two corners,
        which unlike the iris does not move with the gaze."""
        lm = self.landmarks
        return lm[list(LEFT_EYE_CORNERS)].mean(0), lm[list(RIGHT_EYE_CORNERS)].mean(0)


def _box_of(landmarks: np.ndarray) -> np.ndarray:
    return np.array([*landmarks[:, :2].min(0), *landmarks[:, :2].max(0)], dtype=np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceFinder:
    """Finds the chosen person's face mesh in each frame.

    ``video=True`` lets MediaPipe track between consecutive frames (faster, steadier); use
    ``video=False`` for unrelated stills. Not thread-safe: one instance per thread.
    """

    def __init__(self, video: bool, max_faces: int = 4) -> None:
        import mediapipe as mp  # imported here: it is slow to import and only this module needs it

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video, max_num_faces=max_faces, refine_landmarks=True,
            min_detection_confidence=0.5, min_tracking_confidence=0.5,
        )
        self._crop_mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
        )
        # model 1 = full range (faces up to about 5 m), for faces too small for the mesh's own
        # detector. It is permissive (a cartoon letter scored 0.60, a real 100-pixel face 0.66), so
        # each find is verified by the short-range model on the enlarged patch, where real faces
        # score about 0.9 and that letter nothing.
        self._detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.4)
        self._verifier = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.6)
        self._previous_box: np.ndarray | None = None

    def close(self) -> None:
        self._mesh.close()
        self._crop_mesh.close()
        self._detector.close()
        self._verifier.close()

    def __enter__(self) -> "FaceFinder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def find(self, image: np.ndarray) -> FaceObservation | None:
        """The chosen person's face in ``image`` [H, W, 3] uint8 RGB, or None."""
        faces = self._mesh_faces(image)
        if not faces:
            faces = self._small_faces(image)
        if not faces:
            self._previous_box = None
            return None
        chosen = self._choose(faces, image.shape[1], image.shape[0])
        self._previous_box = chosen.box
        return chosen

    def _mesh_faces(self, image: np.ndarray) -> list[FaceObservation]:
        h, w = image.shape[:2]
        result = self._mesh.process(image)
        faces = []
        for lms in result.multi_face_landmarks or []:
            lm = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float64)
            faces.append(FaceObservation(box=_box_of(lm), landmarks=lm))
        return faces

    def _small_faces(self, image: np.ndarray) -> list[FaceObservation]:
        """Full-range detection, then a mesh of an enlarged, upscaled crop around each face."""
        import cv2

        h, w = image.shape[:2]
        result = self._detector.process(image)
        faces = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            cx, cy = (rb.xmin + rb.width / 2) * w, (rb.ymin + rb.height / 2) * h
            side = 2.2 * max(rb.width * w, rb.height * h)  # the mesh model wants the face ~half the crop
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            x1, y1 = x0 + int(round(side)), y0 + int(round(side))
            patch = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
            sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if sx1 <= sx0 or sy1 <= sy0:
                continue
            patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
            scale = 256.0 / patch.shape[0]
            patch = np.ascontiguousarray(cv2.resize(patch, (256, 256), interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA))
            if not self._verifier.process(patch).detections:
                continue
            mesh = self._crop_mesh.process(patch)
            if not mesh.multi_face_landmarks:
                continue
            ph, pw = patch.shape[:2]
            lm = np.array([(p.x * pw, p.y * ph, p.z * pw) for p in mesh.multi_face_landmarks[0].landmark])
            lm = lm / scale
            lm[:, 0] += x0
            lm[:, 1] += y0
            faces.append(FaceObservation(box=_box_of(lm), landmarks=lm))
        return faces

    def _choose(self, faces: list[FaceObservation], width: int, height: int) -> FaceObservation:
        if self._previous_box is not None:
            overlaps = [_iou(f.box, self._previous_box) for f in faces]
            best = int(np.argmax(overlaps))
            if overlaps[best] > 0.1:
                return faces[best]
        # The largest face; among faces within 20 % of the largest area, the most central one.
        areas = np.array([(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces])
        centre = np.array([width / 2, height / 2])
        offsets = [np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre) for f in faces]
        candidates = [i for i in range(len(faces)) if areas[i] >= 0.8 * areas.max()]
        return faces[min(candidates, key=lambda i: offsets[i])]


@dataclass(frozen=True)
class HeadState:
    """Where the head is in one frame: centre [3] (metres, original camera frame) and the distance
    to it (metres)."""

    center: np.ndarray

    @property
    def distance(self) -> float:
        return float(np.linalg.norm(self.center))


def head_state(face: FaceObservation, K: np.ndarray) -> HeadState:
    """Head centre from the eyes: on the ray through the eyes' midpoint, HEAD_CENTER_BEHIND_EYES_M
    beyond the eye distance implied by their spacing (camera.distance_from_eyes)."""
    left, right = face.eyes
    d_eyes = camera.distance_from_eyes(left, right, K)
    ray = camera.pixel_rays(K, (left[:2] + right[:2]) / 2)
    return HeadState(center=ray * (d_eyes + HEAD_CENTER_BEHIND_EYES_M))


def _centred_average(values: list[np.ndarray | None], sigma_frames: float) -> list[np.ndarray | None]:
    """Centred Gaussian average over time of per-frame arrays (all of one shape); None (no face)
    stays None and does not pull its neighbours."""
    known = [i for i, v in enumerate(values) if v is not None]
    if sigma_frames <= 0 or not known:
        return list(values)
    stacked = np.zeros((len(values),) + values[known[0]].shape)
    stacked[known] = np.stack([values[i] for i in known])
    present = np.zeros(len(values))
    present[known] = 1.0
    radius = int(np.ceil(3 * sigma_frames))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_frames) ** 2)
    out: list[np.ndarray | None] = [None] * len(values)
    for i in known:
        idx = i + offsets
        ok = (idx >= 0) & (idx < len(values))
        idx, wgt = idx[ok], kernel[ok] * present[idx[ok]]
        out[i] = np.tensordot(wgt, stacked[idx], axes=1) / wgt.sum()
    return out


def smooth_track(centers: list[np.ndarray | None], sigma_frames: float = 2.0) -> list[np.ndarray | None]:
    """Centred Gaussian smoothing of a head-centre track [3] per frame (None = no face), so the
    crop does not jitter with the landmarks. Frames without a face stay None and do not pull their
    neighbours. The direction and the distance are smoothed separately, so a head that moves
    sideways keeps its distance."""
    dirs = _centred_average([None if c is None else c / np.linalg.norm(c) for c in centers], sigma_frames)
    dists = _centred_average([None if c is None else np.array([np.linalg.norm(c)]) for c in centers], sigma_frames)
    return [None if d is None else d / np.linalg.norm(d) * r[0] for d, r in zip(dirs, dists)]


def smooth_landmarks(faces: list[FaceObservation | None], sigma_frames: float = 1.0) -> list[FaceObservation | None]:
    """Faces whose landmarks [478, 3] are averaged over neighbouring frames (centred Gaussian):
    MediaPipe's mesh jitters by a fraction of a pixel from frame to frame, which the geometry
    would turn into flicker. sigma = 1 frame (33 ms at 30 fps) damps that jitter while speech
    and blinks, which take several frames, come through. (convert smooths the landmarks it keeps
    on disk in chunks, ``LandmarkStore.smooth``; this whole-list form is its reference.)"""
    smoothed = _centred_average([None if f is None else f.landmarks for f in faces], sigma_frames)
    return [None if f is None else FaceObservation(box=f.box, landmarks=lm) for f, lm in zip(faces, smoothed)]


def landmarks_to_camera(face: FaceObservation, K: np.ndarray, head: HeadState) -> np.ndarray:
    """Face-mesh landmarks as metric 3D points [478, 3] in the original camera frame.

    MediaPipe's z is a relative depth in pixel units; at the eyes' depth Z one pixel spans Z / f
    metres, so z offsets from the eyes scale by that to metres, placing the mesh at the head's
    (smoothed) distance.
    """
    lm = face.landmarks
    left, right = face.eyes
    eye_mid_z = (left[2] + right[2]) / 2
    ray_mid = camera.pixel_rays(K, (left[:2] + right[:2]) / 2)
    z_eyes = (head.distance - HEAD_CENTER_BEHIND_EYES_M) * ray_mid[2]
    depth = z_eyes + (lm[:, 2] - eye_mid_z) * (z_eyes / K[0, 0])
    return camera.unproject(K, lm[:, :2], depth)
