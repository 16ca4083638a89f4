"""Cameras: intrinsics, the virtual camera aimed at the head, the homography crop, head distance.

Conventions (stated once, used everywhere):

* Camera frame: OpenCV axes, x right, y down, z forward, metres. The ORIGINAL camera sits at the
  origin. A point (0, 0, 1) projects to the principal point; a point with y > 0 lands below it.
* Pixel coordinates are continuous with pixel centres at +0.5: pixel (column i, row j) covers
  [i, i+1) x [j, j+1) and its centre is (i + 0.5, j + 0.5). The principal point of a W x H image is
  (W / 2, H / 2). gsplat uses the same convention. OpenCV's warp functions index pixel centres at
  integers, so :func:`homography_for_opencv` shifts by half a pixel on both sides.
* ``K`` is the 3x3 intrinsic matrix, built only by :func:`intrinsics`.
* Rotations ``R`` are 3x3 and map ORIGINAL-camera coordinates to virtual-camera coordinates:
  ``X_virtual = R @ X_original``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Typical adult interpupillary distance (metres); the head-size prior behind the distance estimate.
# Adult means are about 0.062 (women) and 0.064 (men).
INTERPUPILLARY_M = 0.063
# Width of the scene, at the head centre's depth, that the S x S crop covers. 0.40 m frames the
# head (about 0.16 m wide, 0.23 m tall) with room for hair, ears, neck and the top of the shoulders.
CROP_EXTENT_M = 0.40
# Default field of view across the LONGER image side, in degrees: a typical laptop webcam
# (about 65 deg horizontal for a 16:9 sensor, 75-78 deg diagonal).
DEFAULT_FOV_DEG = 65.0


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The one place a 3x3 intrinsic matrix is written out. float64, pixel centres at +0.5."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def focal_from_fov(width: int, height: int, fov_deg: float) -> float:
    """Focal length in pixels for a field of view of ``fov_deg`` across the longer image side."""
    if not 1.0 < fov_deg < 179.0:
        raise ValueError(f"fov_deg must be in (1, 179) degrees, got {fov_deg}")
    return 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2.0)


def image_intrinsics(
    width: int,
    height: int,
    *,
    fov_deg: float | None = None,
    focal_px: float | None = None,
    principal_point: tuple[float, float] | None = None,
) -> np.ndarray:
    """K of the original camera: focal from ``focal_px`` or ``fov_deg`` (default webcam-like),
    principal point at the image centre unless given."""
    if focal_px is None:
        focal_px = focal_from_fov(width, height, DEFAULT_FOV_DEG if fov_deg is None else fov_deg)
    elif focal_px <= 0:
        raise ValueError(f"focal_px must be positive, got {focal_px}")
    cx, cy = (width / 2.0, height / 2.0) if principal_point is None else principal_point
    return intrinsics(focal_px, focal_px, cx, cy)


def project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pinhole projection. points [..., 3] in the camera frame (z > 0) -> pixels [..., 2]."""
    p = points @ K.T
    return p[..., :2] / p[..., 2:3]


def unproject(K: np.ndarray, pixels: np.ndarray, depth: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`project`: pixels [..., 2] at z-depth ``depth`` [...] -> points [..., 3]."""
    x = (pixels[..., 0] - K[0, 2]) / K[0, 0]
    y = (pixels[..., 1] - K[1, 2]) / K[1, 1]
    z = np.broadcast_to(np.asarray(depth, dtype=np.float64), x.shape)
    return np.stack([x * z, y * z, z], axis=-1)


def image_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """Rays [H, W, 3] through every pixel centre, scaled to z = 1 (so ``rays * depth[..., None]``
    is the point at z-depth ``depth``)."""
    v, u = np.mgrid[0:height, 0:width] + 0.5
    return unproject(K, np.stack([u, v], axis=-1), 1.0)


def pixel_rays(K: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Unit ray directions [..., 3] through pixels [..., 2]."""
    d = unproject(K, pixels, 1.0)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def look_at_rotation(target: np.ndarray) -> np.ndarray:
    """Rotation R (original -> virtual) whose optical axis passes through ``target`` [3] with zero
    roll: the virtual x axis stays perpendicular to the original y axis, so an upright head stays
    upright in the crop. Example: target (0, 0, 1) gives the identity."""
    z = np.asarray(target, dtype=np.float64)
    z = z / np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    n = np.linalg.norm(x)
    if n < 1e-8:
        raise ValueError("target lies on the camera's vertical axis; the virtual camera is undefined")
    x = x / n
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=0)


@dataclass(frozen=True)
class VirtualCamera:
    """A camera at the original camera's centre, rotated to look at the head.

    R: [3, 3] original -> virtual rotation. K: [3, 3] intrinsics of the S x S crop.
    """

    R: np.ndarray
    K: np.ndarray
    size: int


def virtual_camera(head_center: np.ndarray, size: int, extent_m: float = CROP_EXTENT_M) -> VirtualCamera:
    """Virtual camera aimed at ``head_center`` [3] (original frame, metres) whose S x S image covers
    ``extent_m`` metres at the head centre's distance, so the head has a fixed size in the crop."""
    R = look_at_rotation(head_center)
    distance = float(np.linalg.norm(head_center))
    focal = size * distance / extent_m
    return VirtualCamera(R=R, K=intrinsics(focal, focal, size / 2.0, size / 2.0), size=size)


def crop_homography(K_original: np.ndarray, cam: VirtualCamera) -> np.ndarray:
    """H = K_v R K^-1: original pixel -> crop pixel, both with pixel centres at +0.5."""
    return cam.K @ cam.R @ np.linalg.inv(K_original)


def homography_for_opencv(H: np.ndarray) -> np.ndarray:
    """The same mapping for OpenCV, which puts pixel centres at integers."""
    to_continuous = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], dtype=np.float64)
    to_index = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], dtype=np.float64)
    return to_index @ H @ to_continuous


def apply_homography(H: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """pixels [..., 2] -> H-mapped pixels [..., 2]."""
    p = np.concatenate([pixels, np.ones_like(pixels[..., :1])], axis=-1) @ H.T
    return p[..., :2] / p[..., 2:3]


def warp_crop(image: np.ndarray, K_original: np.ndarray, cam: VirtualCamera) -> np.ndarray:
    """The S x S crop seen by the virtual camera: image [H, W, C] uint8 -> [S, S, C] uint8.

    When the crop shrinks the image (a large face in a big frame), the image is first reduced with
    area averaging, so the crop is anti-aliased rather than sampled from a few pixels. Outside the
    frame the crop is black.
    """
    K = K_original
    # Pixels of the original image per crop pixel, near the head: > 1 means the crop shrinks.
    shrink = K[0, 0] / cam.K[0, 0]
    if shrink > 1.5:
        factor = shrink / 1.2  # keep a little oversampling for the final bilinear warp
        h, w = image.shape[:2]
        new_w, new_h = max(1, round(w / factor)), max(1, round(h / factor))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        # With pixel centres at +0.5, a resize scales every continuous coordinate by the same factor.
        scale = np.diag([new_w / w, new_h / h, 1.0])
        K = scale @ K
    H = homography_for_opencv(crop_homography(K, cam))
    return cv2.warpPerspective(
        image, H, (cam.size, cam.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def distance_from_eyes(
    eye_left: np.ndarray, eye_right: np.ndarray, K_original: np.ndarray, interpupillary_m: float = INTERPUPILLARY_M
) -> float:
    """Distance (metres, from the camera centre to the eyes' midpoint) implied by the eye spacing.

    eye_left, eye_right: [3] face-mesh points as (u, v, z) with u, v in pixels of the original
    image and z a relative depth along the camera axis in the same pixel units (MediaPipe's
    convention, scaled by the image width). At the eyes' mean depth Z one pixel spans Z / f metres,
    so eye i sits at depth Z (1 + z_i / f) on its pixel ray: both eyes are known up to the one scale
    Z, which the interpupillary distance fixes. Using the depth difference keeps the estimate right
    when the head is turned; using rays keeps it right near the image borders.
    """
    focal = K_original[0, 0]
    mean_z = (eye_left[2] + eye_right[2]) / 2.0
    # Eye positions divided by the unknown mean depth Z.
    unit = [unproject(K_original, eye[:2], 1.0 + (eye[2] - mean_z) / focal) for eye in (eye_left, eye_right)]
    separation = float(np.linalg.norm(unit[0] - unit[1]))
    if separation <= 0:
        raise ValueError("the two eye points coincide")
    Z = interpupillary_m / separation
    return float(np.linalg.norm((unit[0] + unit[1]) / 2.0) * Z)
