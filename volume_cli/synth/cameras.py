"""Cameras of a synthetic sample: the webcam-like input camera, the head's pose in front of it, the
face box and crop camera, and target views orbiting the head.

The WORLD frame of a sample is the input camera's OpenCV frame (x right, y down, z forward, metres),
so the input camera's world-to-camera matrix is the identity, and the crop (virtual) camera's is
``[[R, 0], [0, 1]]`` with R from :func:`volume_cli.camera.virtual_camera`. Every K comes from
:func:`volume_cli.camera.intrinsics` (pixel centres at +0.5).
"""

from __future__ import annotations

import math

import numpy as np

from volume_cli.camera import (
    CROP_EXTENT_M, VirtualCamera, image_intrinsics, intrinsics, look_at_rotation, pixel_rays, project, virtual_camera,
)

DISTANCE_RANGE_M = (0.35, 1.2)
FOV_RANGE_DEG = (50.0, 80.0)  # across the longer image side
HEAD_ANGLE_DEG = 30.0  # yaw, pitch, roll limits
# The face box (brows to chin, cheek to cheek) of a typical drawn person (measured over 150 seeds), metres, and how much of it stays in frame.
FACE_WIDTH_M, FACE_HEIGHT_M = 0.16, 0.20
FACE_CENTER_HEAD_M = np.array([0.0, 0.04, -0.08])  # the face box's centre in the head frame (below, in front)
FACE_INSIDE = 0.85  # fraction of the box's width and of its height inside the frame, at least
FACE_MAX_HEIGHT = 0.8  # the face box is at most this fraction of the frame height
TARGET_YAW_DEG = 60.0
TARGET_PITCH_DEG = 25.0


def world_to_camera(R: np.ndarray, center: np.ndarray) -> np.ndarray:
    """[4, 4] from a rotation R (world -> camera axes) and the camera centre [3] in the world."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ center
    return T


def rotation_ypr(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head rotation in OpenCV axes: yaw about y (down), pitch about x (right), roll about z."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    Ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    Rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return Ry @ Rx @ Rz


def sample_input_camera(rng: np.random.Generator, size: int) -> tuple[np.ndarray, int, int, float]:
    """(K [3, 3], width, height, fov_deg) of a webcam frame about 2.5 crop sizes wide, 4:3 or 16:9."""
    width = int(round(2.5 * size / 8)) * 8
    height = int(round(width * (0.75 if rng.random() < 0.5 else 0.5625) / 2)) * 2
    fov = float(rng.uniform(*FOV_RANGE_DEG))
    return image_intrinsics(width, height, fov_deg=fov), width, height, fov


def sample_head_pose(rng: np.random.Generator, K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(R_head [3, 3], t_head [3], pose dict): the head at 0.35-1.2 m (log-uniform; nearer only as
    near as lets the face fit the frame), turned up to 30 deg each way, placed so that the face box
    stays mostly inside the frame (at least FACE_INSIDE of its width and height on each axis), as in
    webcam footage where a detector found the face. Hair, ears and neck may leave the frame."""
    lo, hi = DISTANCE_RANGE_M
    focal = float(K[0, 0])
    # nearest distance at which the face's height still fits in FACE_MAX_HEIGHT of the frame
    nearest = focal * FACE_HEIGHT_M / (FACE_MAX_HEIGHT * height)
    distance = float(math.exp(rng.uniform(math.log(max(lo, nearest)), math.log(max(hi, nearest * 1.2)))))
    half = np.array([FACE_WIDTH_M, FACE_HEIGHT_M]) / 2 * focal / distance  # face box half-size, pixels
    margin = half * (2 * FACE_INSIDE - 1)  # the box centre this far from a border keeps FACE_INSIDE inside
    u = rng.uniform(margin[0], max(margin[0], width - margin[0]))
    v = rng.uniform(margin[1], max(margin[1], height - margin[1]))
    # off-axis the face is nearer in depth than its distance, so larger on the image: widen the margin
    margin /= pixel_rays(K, np.array([u, v]))[2]
    u = float(np.clip(u, margin[0], max(margin[0], width - margin[0])))
    v = float(np.clip(v, margin[1], max(margin[1], height - margin[1])))
    a = HEAD_ANGLE_DEG
    ypr = np.clip(rng.normal(0.0, a / 2, size=3), -a, a)
    ypr[2] *= 0.6  # roll is rarer than yaw and pitch
    R = rotation_ypr(*ypr)
    # place the FACE centre (not the skull's) on the pixel's ray, turned with the head
    t = pixel_rays(K, np.array([u, v])) * distance - R @ FACE_CENTER_HEAD_M
    return R, t, {"yaw": float(ypr[0]), "pitch": float(ypr[1]), "roll": float(ypr[2]), "distance": distance}


def face_box(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[4] (x0, y0, x1, y1) pixel box of the face points [F, 3] (camera frame, those in front)."""
    pts = points[points[:, 2] > 1e-3]
    uv = project(K, pts)
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def crop_from_box(K: np.ndarray, box: np.ndarray, distance: float, size: int) -> tuple[VirtualCamera, np.ndarray]:
    """The crop camera as ``volume convert`` aims it: at the point on the ray through the face box's
    centre at the head's distance. Returns (camera, aimed point [3])."""
    center_px = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    aim = pixel_rays(K, center_px) * distance
    return virtual_camera(aim, size), aim


def jitter_box(rng: np.random.Generator, box: np.ndarray, amount: float) -> tuple[np.ndarray, float]:
    """A detector's jitter: shift by ``amount`` of the box size and scale by 1 +- ``amount``.
    Returns (box, scale) where scale also perturbs the distance estimate."""
    w, h = box[2] - box[0], box[3] - box[1]
    c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]) + rng.normal(0, amount, 2) * [w, h]
    s = float(1 + rng.normal(0, amount))
    return np.array([c[0] - s * w / 2, c[1] - s * h / 2, c[0] + s * w / 2, c[1] + s * h / 2]), s


def orbit_views(rng: np.random.Generator, head_center: np.ndarray, count: int, size: int) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
    """``count`` target cameras around the head: yaw within +-60 deg and pitch within +-25 deg of
    the input camera's direction, at 0.85-1.2x its distance, aimed at the head centre, zero roll,
    framed like the crop (``CROP_EXTENT_M`` across at the head). Returns Ks, world_to_cameras, angles."""
    R0 = look_at_rotation(head_center)
    d0 = float(np.linalg.norm(head_center))
    Ks, w2cs, info = [], [], []
    for _ in range(count):
        yaw = math.radians(rng.uniform(-TARGET_YAW_DEG, TARGET_YAW_DEG))
        pitch = math.radians(rng.uniform(-TARGET_PITCH_DEG, TARGET_PITCH_DEG))
        local = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
        dist = float(np.clip(d0 * rng.uniform(0.85, 1.2), 0.3, 1.5))
        center = head_center - dist * (R0.T @ local)
        R = look_at_rotation(head_center - center)
        f = size * dist / CROP_EXTENT_M
        Ks.append(intrinsics(f, f, size / 2, size / 2))
        w2cs.append(world_to_camera(R, center))
        info.append({"yaw": math.degrees(yaw), "pitch": math.degrees(pitch), "distance": dist})
    return Ks, w2cs, info
