"""Camera paths for ``volume render``: orbit, parallax and fixed views around the head.

World frame = the ORIGINAL camera's frame (OpenCV axes: x right, y down, z forward; metres; the
original camera at the origin looking down +z). Poses are world-to-camera 4x4 matrices
(``X_cam = V @ X_world``), as gsplat takes them. "Up" is -y.

The base render camera sits at the original camera's centre and looks at the head centre with no
roll (the crop's virtual camera, ``camera.look_at_rotation``); with the head on the optical axis it
IS the original camera (identity). Every path departs from it:

* orbit / fixed views: the base camera rigidly rotated by a yaw about the vertical line through
  the head centre; it keeps looking at the head, and the head centre stays at the image centre.
  Positive yaw moves the camera towards +x: yaw 90 deg around a head at (0, 0, d) puts the camera
  at (d, 0, d).
* parallax: the base camera slid sideways along its own x axis (horizontal; world x when the head
  is on the optical axis), orientation unchanged, principal point shifted so that the plane through
  the head centre facing the camera stays fixed in the image (an off-axis projection, as a
  head-tracked display makes).

Pure functions, numpy float64 in and out.
"""

from __future__ import annotations

import numpy as np

from volume_cli.camera import CROP_EXTENT_M, intrinsics


def look_at_viewmat(eye: np.ndarray, target: np.ndarray, up: np.ndarray | tuple = (0.0, -1.0, 0.0)) -> np.ndarray:
    """World-to-camera [4, 4] of a camera at ``eye`` [3] looking at ``target`` [3], its x axis
    horizontal (perpendicular to ``up``, no roll) and its y axis pointing away from ``up``.
    Example: eye (0, 0, 0), target (0, 0, 1) gives the identity."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    if np.linalg.norm(z) < 1e-12:
        raise ValueError("target must differ from eye")
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-8:
        raise ValueError("the viewing direction is parallel to up; the camera's roll is undefined")
    x = x / np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])  # rows: the camera's axes in world coordinates
    V = np.eye(4)
    V[:3, :3] = R
    V[:3, 3] = -R @ eye
    return V


def _yaw_matrix(yaw_deg: float) -> np.ndarray:
    """Rotation [3, 3] about world y that turns the head-to-camera direction (-z) towards +x for
    positive angles."""
    a = np.radians(yaw_deg)
    return np.array([[np.cos(a), 0.0, -np.sin(a)], [0.0, 1.0, 0.0], [np.sin(a), 0.0, np.cos(a)]])


def _head(head_center: np.ndarray) -> np.ndarray:
    c = np.asarray(head_center, dtype=np.float64)
    if c.shape != (3,):
        raise ValueError(f"head_center must be [3], got {list(c.shape)}")
    return c


def orbit_viewmats(head_center: np.ndarray, yaws_deg: np.ndarray | list[float]) -> np.ndarray:
    """World-to-camera [F, 4, 4] for each yaw [F] (degrees): the original camera's centre rotated
    about the vertical line through ``head_center`` [3], looking at the head centre. Also the
    fixed views of a grid (``--views -40,0,40``)."""
    c = _head(head_center)
    return np.stack([look_at_viewmat(c + _yaw_matrix(yaw) @ -c, c) for yaw in np.atleast_1d(yaws_deg)])


def sweep(times: np.ndarray | list[float], amplitude: float, period: float) -> np.ndarray:
    """amplitude * sin(2 pi t / period) for each time t [F]: 0 -> +amplitude -> 0 -> -amplitude -> 0
    once every ``period`` (the unit of ``times``). The orbit's yaw in degrees or the parallax's
    sideways offset in metres, in step with the frames' timestamps; time 0 is the base view."""
    if period <= 0:
        raise ValueError(f"period must be positive, got {period}")
    return amplitude * np.sin(2.0 * np.pi * np.asarray(times, dtype=np.float64) / period)


def parallax_cameras(
    head_center: np.ndarray, K: np.ndarray, offsets_m: np.ndarray | list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera [F, 4, 4] and intrinsics [F, 3, 3] for sideways offsets [F] (metres).

    The base camera (looking at ``head_center`` [3], intrinsics ``K`` [3, 3]) moves by ``s`` along
    its x axis; a point at the head's depth then moves by ``-fx s / depth`` pixels, so the principal
    point moves by ``+fx s / depth`` to hold that plane still while nearer and farther points slide.
    """
    c = _head(head_center)
    if np.shape(K) != (3, 3):
        raise ValueError(f"K must be [3, 3], got {list(np.shape(K))}")
    base = look_at_viewmat(np.zeros(3), c)
    depth = float(np.linalg.norm(c))  # the head centre's z in the base camera
    views, Ks = [], []
    for s in np.atleast_1d(offsets_m):
        V = base.copy()
        V[0, 3] -= s  # the camera centre moves by +s along its own x axis
        views.append(V)
        Ks.append(intrinsics(K[0, 0], K[1, 1], K[0, 2] + K[0, 0] * s / depth, K[1, 2]))
    return np.stack(views), np.stack(Ks)


def render_intrinsics(size: int, head_distance: float, extent_m: float = CROP_EXTENT_M) -> np.ndarray:
    """Square K [3, 3] for a ``size`` x ``size`` render that spans ``extent_m`` metres at
    ``head_distance`` metres, principal point at the image centre (the crop's framing)."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if head_distance <= 0 or extent_m <= 0:
        raise ValueError(f"head_distance and extent_m must be positive, got {head_distance}, {extent_m}")
    focal = size * head_distance / extent_m
    return intrinsics(focal, focal, size / 2.0, size / 2.0)
