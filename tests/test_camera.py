"""Camera conventions, the virtual camera and homography crop, and the distance estimate, each
checked against a slow obvious reference or a counter-example."""

import math

import numpy as np
import pytest

from volume_cli import camera


def test_point_on_axis_projects_to_principal_point_and_plus_y_lands_below():
    K = camera.image_intrinsics(640, 360, fov_deg=60)
    assert np.allclose(camera.project(K, np.array([0.0, 0.0, 2.0])), [320.0, 180.0])
    below = camera.project(K, np.array([0.0, 0.1, 1.0]))
    assert below[1] > 180.0 and below[0] == pytest.approx(320.0)


def test_fov_is_across_the_longer_side():
    K = camera.image_intrinsics(360, 640, fov_deg=90)  # portrait: the longer side is the height
    # The top edge of the image (v = 0) is 45 degrees off axis.
    ray = camera.pixel_rays(K, np.array([180.0, 0.0]))
    assert math.degrees(math.atan2(-ray[1], ray[2])) == pytest.approx(45.0)


@pytest.mark.parametrize("shape", [(2,), (5, 2), (3, 4, 2)])
def test_project_unproject_round_trip(shape):
    rng = np.random.default_rng(0)
    K = camera.image_intrinsics(320, 240, focal_px=300)
    pixels = rng.uniform(0, 320, size=shape)
    depth = rng.uniform(0.3, 3.0, size=shape[:-1])
    points = camera.unproject(K, pixels, depth)
    assert np.allclose(camera.project(K, points), pixels, atol=1e-9)
    assert np.allclose(points[..., 2], depth)


def test_look_at_identity_and_zero_roll():
    assert np.allclose(camera.look_at_rotation(np.array([0.0, 0.0, 1.0])), np.eye(3))
    R = camera.look_at_rotation(np.array([0.4, -0.3, 1.0]))
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) == pytest.approx(1.0)
    target = np.array([0.4, -0.3, 1.0])
    assert np.allclose(R @ target / np.linalg.norm(target), [0, 0, 1])
    # Zero roll: the virtual x axis has no component along the original (vertical) y axis.
    assert abs(R[0, 1]) < 1e-12


def test_point_projects_to_same_pixel_through_both_cameras():
    """A 3D point seen by the original camera and by the virtual camera lands on pixels that the
    crop homography maps onto each other."""
    rng = np.random.default_rng(1)
    K = camera.image_intrinsics(1280, 720, fov_deg=70)
    head = np.array([0.25, -0.1, 0.7])
    cam = camera.virtual_camera(head, 256)
    H = camera.crop_homography(K, cam)
    points = head + rng.normal(scale=0.1, size=(50, 3))
    original_px = camera.project(K, points)
    virtual_px = camera.project(cam.K, points @ cam.R.T)
    assert np.allclose(camera.apply_homography(H, original_px), virtual_px, atol=1e-9)
    # The head centre is at the crop centre.
    assert np.allclose(camera.project(cam.K, cam.R @ head), [128.0, 128.0])


def test_crop_scale_is_fixed_in_metres():
    """The crop covers CROP_EXTENT_M at the head's distance, near or far."""
    for distance in (0.4, 1.2):
        cam = camera.virtual_camera(np.array([0.0, 0.0, distance]), 200)
        edge = camera.project(cam.K, np.array([camera.CROP_EXTENT_M / 2, 0.0, distance]))
        assert edge[0] == pytest.approx(200.0)


@pytest.mark.parametrize("shrink", [False, True])
def test_warp_crop_puts_a_marked_point_where_the_homography_says(shrink):
    """Pixel-centre conventions end to end: a bright dot drawn in the frame appears in the crop at
    the projected position, with and without the anti-aliasing pre-shrink."""
    width, height = (3840, 2160) if shrink else (640, 480)
    K = camera.image_intrinsics(width, height, fov_deg=60)
    head = np.array([0.05, 0.02, 0.5 if shrink else 1.0])
    cam = camera.virtual_camera(head, 128)
    point = head + np.array([0.03, -0.02, 0.0])
    u, v = camera.project(K, point)
    image = np.zeros((height, width, 3), np.uint8)
    r = 6 if shrink else 1  # a disc a few crop pixels wide survives the area reduction
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    image[(xx - u) ** 2 + (yy - v) ** 2 <= r * r] = 255
    crop = camera.warp_crop(image, K, cam).astype(float)[..., 0]
    expected = camera.project(cam.K, cam.R @ point)
    yy, xx = np.mgrid[0:128, 0:128] + 0.5
    centroid = np.array([(crop * xx).sum(), (crop * yy).sum()]) / crop.sum()
    # Budget: a quarter pixel, the centroid error of a few-pixel blob after bilinear resampling.
    assert np.allclose(centroid, expected, atol=0.25)


def test_warp_crop_is_black_outside_the_frame():
    K = camera.image_intrinsics(100, 100, fov_deg=60)
    cam = camera.virtual_camera(np.array([0.5, 0.0, 0.6]), 64)  # head near the right edge
    crop = camera.warp_crop(np.full((100, 100, 3), 200, np.uint8), K, cam)
    assert (crop[:, -1] == 0).all() and (crop[:, 0] > 0).any()


def _synthetic_eyes(K, distance, yaw_deg, offset_x=0.0, ipd=camera.INTERPUPILLARY_M):
    """Two eyes of a head turned by yaw, midpoint at ``distance`` along its ray, as (u, v, z) with
    z in pixel units relative to the eyes' midpoint, the way MediaPipe reports them."""
    yaw = math.radians(yaw_deg)
    mid = np.array([offset_x, 0.0, 0.0])
    mid[2] = math.sqrt(distance**2 - offset_x**2)
    half = 0.5 * ipd * np.array([math.cos(yaw), 0.0, math.sin(yaw)])
    eyes = []
    for p in (mid + half, mid - half):
        u, v = camera.project(K, p)
        # MediaPipe-like relative depth: metres -> pixels at the face's depth.
        eyes.append(np.array([u, v, (p[2] - mid[2]) * K[0, 0] / mid[2]]))
    return eyes


@pytest.mark.parametrize("distance", [0.35, 0.6, 1.2])
@pytest.mark.parametrize("yaw_deg", [0.0, 30.0])
def test_distance_from_eyes_recovers_known_distance(distance, yaw_deg):
    K = camera.image_intrinsics(1280, 720, fov_deg=65)
    left, right = _synthetic_eyes(K, distance, yaw_deg)
    # Budget: 1 %, the weak-perspective approximation of the relative depth at a 30 deg turn.
    assert camera.distance_from_eyes(left, right, K) == pytest.approx(distance, rel=0.01)


def test_distance_holds_near_the_image_border():
    K = camera.image_intrinsics(1280, 720, fov_deg=80)
    left, right = _synthetic_eyes(K, 0.5, 0.0, offset_x=0.3)  # about 37 deg off axis
    assert camera.distance_from_eyes(left, right, K) == pytest.approx(0.5, rel=0.01)


def test_bad_intrinsics_are_rejected():
    with pytest.raises(ValueError, match="fov_deg"):
        camera.focal_from_fov(640, 480, 0.0)
    with pytest.raises(ValueError, match="focal_px"):
        camera.image_intrinsics(640, 480, focal_px=-1)


def test_image_rays_pass_through_pixel_centres_at_unit_depth():
    K = camera.image_intrinsics(6, 4, focal_px=5.0)
    rays = camera.image_rays(K, 6, 4)
    assert rays.shape == (4, 6, 3) and np.allclose(rays[..., 2], 1.0)
    # Pixel (column 2, row 1) has its centre at (2.5, 1.5).
    assert np.allclose(camera.project(K, rays[1, 2]), [2.5, 1.5])
    # The principal point (3, 2) lies on the corner shared by the four central pixels.
    assert np.allclose(rays[1:3, 2:4, :2].mean(axis=(0, 1)), 0.0)
