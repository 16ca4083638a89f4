import numpy as np
import pytest
import torch

from volume_cli.camera import CROP_EXTENT_M, look_at_rotation, project, virtual_camera
from volume_cli.gaussians import Gaussians
from volume_cli.render import render
from volume_cli.render.paths import (
    look_at_viewmat,
    orbit_viewmats,
    parallax_cameras,
    render_intrinsics,
    sweep,
)

HEAD_ON_AXIS = np.array([0.0, 0.0, 0.6])
HEAD_OFF_AXIS = np.array([0.12, -0.05, 0.7])


def to_camera(V: np.ndarray, X: np.ndarray) -> np.ndarray:
    """World points [..., 3] -> camera frame of world-to-camera V [4, 4]."""
    return X @ V[:3, :3].T + V[:3, 3]


def to_world(V: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_camera`."""
    return (X - V[:3, 3]) @ V[:3, :3]


def test_look_at_from_origin_down_z_is_identity():
    np.testing.assert_array_equal(look_at_viewmat(np.zeros(3), np.array([0.0, 0.0, 1.0])), np.eye(4))


@pytest.mark.parametrize("eye", [[0.3, -0.2, 0.1], [-0.5, 0.1, 1.2]])
def test_look_at_centres_the_target_upright_without_roll(eye):
    target = HEAD_OFF_AXIS
    V = look_at_viewmat(np.array(eye), target)
    R = V[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    t = to_camera(V, target)
    np.testing.assert_allclose(t[:2], 0.0, atol=1e-12)  # on the optical axis, in front
    assert t[2] > 0
    assert R[0, 1] == pytest.approx(0.0, abs=1e-12)  # camera x is horizontal (no roll)
    assert R[1, 1] > 0  # camera y (down in the image) points down the world's y


def test_look_at_rejects_undefined_cameras():
    with pytest.raises(ValueError, match="target"):
        look_at_viewmat(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="up"):
        look_at_viewmat(np.zeros(3), np.array([0.0, -1.0, 0.0]))


def test_orbit_at_yaw_zero_is_the_original_camera_when_the_head_is_on_axis():
    np.testing.assert_allclose(orbit_viewmats(HEAD_ON_AXIS, [0.0])[0], np.eye(4), atol=1e-12)


def test_orbit_at_yaw_zero_off_axis_is_the_crop_virtual_camera():
    V = orbit_viewmats(HEAD_OFF_AXIS, [0.0])[0]
    np.testing.assert_allclose(V[:3, :3], look_at_rotation(HEAD_OFF_AXIS), atol=1e-12)
    np.testing.assert_allclose(V[:3, 3], 0.0, atol=1e-12)  # at the original camera's centre


@pytest.mark.parametrize("head", [HEAD_ON_AXIS, HEAD_OFF_AXIS])
def test_orbit_keeps_the_head_centre_at_the_image_centre(head):
    K = render_intrinsics(256, float(np.linalg.norm(head)))
    yaws = np.array([-55.0, -40.0, 0.0, 13.0, 40.0, 90.0])
    for V in orbit_viewmats(head, yaws):
        c = to_camera(V, head)
        np.testing.assert_allclose(project(K, c), [128.0, 128.0], atol=1e-9)
        assert c[2] == pytest.approx(np.linalg.norm(head))  # the camera stays at the head's distance
        assert V[0, 1] == pytest.approx(0.0, abs=1e-12)  # and upright


def test_positive_yaw_moves_the_camera_towards_plus_x():
    V = orbit_viewmats(HEAD_ON_AXIS, [90.0])[0]
    eye = -V[:3, :3].T @ V[:3, 3]
    np.testing.assert_allclose(eye, [0.6, 0.0, 0.6], atol=1e-12)


def test_sweep_0_max_0_min_0_in_step_with_time():
    times = np.arange(41) / 10.0  # 4 s at 10 fps, one period
    yaws = sweep(times, amplitude=40.0, period=4.0)
    assert yaws.shape == (41,)
    np.testing.assert_allclose(yaws[[0, 10, 20, 30, 40]], [0.0, 40.0, 0.0, -40.0, 0.0], atol=1e-9)
    assert np.all(np.abs(np.diff(yaws)) < 40.0 * 2 * np.pi / 40)  # smooth: at most the peak slope
    with pytest.raises(ValueError, match="period"):
        sweep(times, 40.0, 0)


@pytest.mark.parametrize("head", [HEAD_ON_AXIS, HEAD_OFF_AXIS])
def test_parallax_holds_the_head_plane_and_moves_the_rest(head):
    d = float(np.linalg.norm(head))
    K = render_intrinsics(256, d)
    base = look_at_viewmat(np.zeros(3), head)
    # Points given in the base camera's frame: on the head plane, nearer, farther.
    on_plane = np.array([[0.0, 0.0, d], [0.1, -0.05, d], [-0.08, 0.12, d]])
    near, far = np.array([0.0, 0.0, d - 0.1]), np.array([0.0, 0.0, d + 0.1])
    views, Ks = parallax_cameras(head, K, sweep(np.arange(9), 0.05, 8))
    np.testing.assert_allclose(views[0], base, atol=1e-12)  # offset 0 is the base camera
    np.testing.assert_allclose(Ks[0], K)
    for V, K_s in zip(views, Ks):
        np.testing.assert_allclose(V[:3, :3], base[:3, :3])  # orientation unchanged
        moved = project(K_s, to_camera(V, to_world(base, on_plane)))
        np.testing.assert_allclose(moved, project(K, on_plane), atol=1e-9)
    # At offset +5 cm (frame 2) the camera has moved right: nearer points move left, farther right.
    V, K_s = views[2], Ks[2]
    assert project(K_s, to_camera(V, to_world(base, near)))[0] < project(K, near)[0]
    assert project(K_s, to_camera(V, to_world(base, far)))[0] > project(K, far)[0]


def test_render_intrinsics_frame_the_extent_at_the_head_distance_like_the_crop():
    K = render_intrinsics(256, 0.6)
    np.testing.assert_allclose(project(K, np.array([[-0.2, 0.0, 0.6], [0.2, 0.0, 0.6]]))[:, 0], [0.0, 256.0])
    np.testing.assert_allclose(K, virtual_camera(HEAD_ON_AXIS, 256, CROP_EXTENT_M).K)
    with pytest.raises(ValueError, match="size"):
        render_intrinsics(0, 0.6)


def test_rendered_orbit_keeps_a_splat_at_the_head_centre_in_the_middle():
    head = HEAD_OFF_AXIS
    splat = Gaussians(
        means=torch.tensor(head[None], dtype=torch.float32),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        log_scales=torch.full((1, 3), float(np.log(0.01))),
        opacity_logits=torch.tensor([2.0]),
        sh=torch.zeros(1, 1, 3),
    )
    K = render_intrinsics(32, float(np.linalg.norm(head)))
    views = orbit_viewmats(head, [-40.0, 0.0, 40.0])
    alpha = render(splat, views, np.stack([K] * 3), 32, 32, backend="torch").alpha
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    for a in alpha:
        centroid = torch.stack([(a * xs).sum(), (a * ys).sum()]) / a.sum()
        torch.testing.assert_close(centroid, torch.tensor([16.0, 16.0]), rtol=0, atol=1e-3)  # symmetric footprint
