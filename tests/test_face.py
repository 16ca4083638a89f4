"""Face finding on real photographs, choosing the person, the head track and its smoothing."""


import cv2
import numpy as np

from volume_cli import camera
from volume_cli.face import FaceFinder, head_state, landmarks_to_camera, smooth_track

from realdata import REAL, needs_real


def load(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(REAL / name)), cv2.COLOR_BGR2RGB)


@needs_real
def test_finds_the_face_and_a_plausible_distance():
    image = load("grace_hopper_512.jpg")
    K = camera.image_intrinsics(image.shape[1], image.shape[0])
    with FaceFinder(video=False) as finder:
        face = finder.find(image)
    assert face is not None and face.landmarks.shape == (478, 3)
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512 and (x1 - x0) > 150  # face ~45 % of the width
    # A head-and-shoulders portrait with a webcam-like field of view: well under a metre.
    assert 0.25 < head_state(face, K).distance < 0.8


@needs_real
def test_landmarks_in_metres_project_back_onto_their_pixels():
    image = load("man_outdoors_572x562.jpg")
    K = camera.image_intrinsics(image.shape[1], image.shape[0])
    with FaceFinder(video=False) as finder:
        face = finder.find(image)
    points = landmarks_to_camera(face, K, head_state(face, K))
    assert np.allclose(camera.project(K, points), face.landmarks[:, :2], atol=1e-9)
    # The nose tip (landmark 1) is nearer the camera than the cheeks' edges.
    assert points[1, 2] < points[234, 2] and points[1, 2] < points[454, 2]


@needs_real
def test_the_largest_face_is_chosen_and_then_followed():
    big = load("grace_hopper_512.jpg")
    small = cv2.resize(load("man_outdoors_572x562.jpg"), (300, 295), interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 1000, 3), 128, np.uint8)
    canvas[0:512, 480:992] = big  # larger face on the right
    canvas[150:445, 20:320] = small
    with FaceFinder(video=False) as finder:
        first = finder.find(canvas)
        assert (first.box[0] + first.box[2]) / 2 > 500
        # With the larger face gone, the other one is taken; the choice then sticks to it
        # even when a larger face comes back.
        only_small = canvas.copy()
        only_small[:, 470:] = 128
        assert (finder.find(only_small).box[0] + finder.find(only_small).box[2]) / 2 < 400
        assert (finder.find(canvas).box[0] + finder.find(canvas).box[2]) / 2 < 400


@needs_real
def test_no_face_in_a_title_card():
    import av

    container = av.open(str(REAL / "no_face_960x540.mp4"))
    with FaceFinder(video=True) as finder:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 10 == 6:  # frame 76 once fooled the full-range detector (a letter "a")
                assert finder.find(frame.to_ndarray(format="rgb24")) is None
    container.close()


def test_smoothing_keeps_a_steady_track_and_damps_jitter():
    rng = np.random.default_rng(0)
    steady = [np.array([0.1, -0.05, 0.6])] * 20
    assert np.allclose(np.array(smooth_track(steady)), np.array(steady))
    jittery = [c + rng.normal(scale=0.005, size=3) for c in steady]
    smoothed = np.array(smooth_track(jittery))
    assert np.std(smoothed, axis=0).max() < 0.5 * np.std(np.array(jittery), axis=0).max()


def test_smoothing_leaves_gaps_and_keeps_distance_on_a_sideways_move():
    track = [np.array([x, 0.0, np.sqrt(0.5**2 - x**2)]) for x in np.linspace(-0.2, 0.2, 15)]
    track[7] = None
    out = smooth_track(track)
    assert out[7] is None
    # Moving on a circle of radius 0.5 m around the camera: averaging directions and distances
    # separately keeps the distance (averaging points would pull it inwards).
    assert all(abs(np.linalg.norm(c) - 0.5) < 1e-9 for c in out if c is not None)


def test_landmark_smoothing_damps_jitter_and_keeps_gaps():
    from volume_cli.face import FaceObservation, smooth_landmarks

    rng = np.random.default_rng(1)
    base = rng.uniform(100, 200, size=(478, 3))
    faces = [FaceObservation(box=np.array([0.0, 0, 1, 1]), landmarks=base + rng.normal(scale=0.5, size=base.shape)) for _ in range(12)]
    faces[5] = None
    out = smooth_landmarks(faces, sigma_frames=1.0)
    assert out[5] is None
    before = np.std([f.landmarks - base for f in faces if f is not None])
    after = np.std([f.landmarks - base for f in out if f is not None])
    assert after < 0.75 * before
    # A steady face stays exactly where it is.
    steady = smooth_landmarks([FaceObservation(box=np.zeros(4), landmarks=base)] * 5)
    assert all(np.allclose(f.landmarks, base) for f in steady)
