"""Make examples/hopper.mp4, the bundled talking-head-like clip, from a public-domain still.

The source is the US Navy portrait of Rear Admiral Grace Hopper (public domain, see SOURCES.md). A
virtual camera looks at the photo and moves smoothly, as a hand-held webcam or a person shifting in
their chair would: the face pans around the frame, grows and shrinks a little (zoom), tilts (roll)
and turns slightly (a yaw-like perspective warp of the photo plane). Where the camera sees past
the photo's edges it sees a blurred extension of them. Mild sensor noise is added.
Every motion is one period of a sine over the clip, so the clip loops without a jump.

Deterministic: fixed motion, seeded noise, single-threaded x264 (same bytes for the same x264).

    python examples/make_example_clip.py                 # writes examples/hopper.mp4
    python examples/make_example_clip.py -o /tmp/h.mp4   # elsewhere
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 640, 480  # output size in pixels
FPS = 24
N_FRAMES = 48  # 2 s
# The photo is 512x512 and tight (face about 45 % of its width, hat near the top edge). A webcam
# frames more: the camera sees a 560x420 photo-pixel window at zoom 1 (face about 38 % of the frame
# width) from the hat to the collar, the head a little left of centre so that the busy flag on the
# left needs less backdrop. The window reaches past the photo's edges (x -87..672, y -47..457 over
# the clip), so the photo is extended by MARGIN_PX on each side with its edge pixels, blurred: a
# defocused backdrop.
SOURCE_SCALE = WIDTH / 560  # output pixels per source pixel at zoom 1
WINDOW_CENTRE = (285.0, 200.0)  # photo pixels (x, y)
PAN_PX = (24.0, 14.0)  # pan amplitude in photo pixels (x, y)
MARGIN_PX = 160  # backdrop added around the photo, pixels
BACKDROP_BLUR_PX = 30.0  # Gaussian sigma of the backdrop, pixels
ZOOM = 0.07  # relative zoom amplitude: the face is 7 % larger or smaller at the extremes
ROLL_DEG = 3.0  # in-plane tilt amplitude
YAW_DEG = 7.0  # turn of the photo plane about its vertical axis
FOCAL_PX = 600.0  # focal length of the virtual camera for the yaw warp (about 56 deg horizontal)
NOISE_SIGMA = 1.5  # sensor noise, standard deviation in 8-bit levels
CRF = 23  # x264 quality: keeps the clip near 160 KB despite the noise


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _scale(s: float) -> np.ndarray:
    return np.diag([s, s, 1.0])


def _roll(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _yaw(deg: float) -> np.ndarray:
    """Homography K R_y K^-1 of a camera turning by `deg` about its vertical axis, for pixel
    coordinates centred on the principal point."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    k = np.diag([FOCAL_PX, FOCAL_PX, 1.0])
    r = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return k @ r @ np.linalg.inv(k)


def output_to_canvas(i: int) -> np.ndarray:
    """3x3 homography from output pixel (x, y, 1) of frame i to a pixel of the backdrop canvas."""
    phase = 2.0 * math.pi * i / N_FRAMES  # one period over the clip, so it loops
    cx = MARGIN_PX + WINDOW_CENTRE[0] + PAN_PX[0] * math.sin(phase)
    cy = MARGIN_PX + WINDOW_CENTRE[1] + PAN_PX[1] * math.sin(phase + 1.0)
    zoom = 1.0 + ZOOM * math.sin(phase - 0.5)
    return (
        _translate(cx, cy)
        @ _roll(ROLL_DEG * math.sin(phase + 0.6))
        @ _scale(1.0 / (SOURCE_SCALE * zoom))
        @ _yaw(YAW_DEG * math.sin(phase + 1.7))
        @ _translate(-WIDTH / 2, -HEIGHT / 2)
    )


def backdrop(photo: np.ndarray) -> np.ndarray:
    """The photo [H, W, 3] in the middle of a [H + 2 M, W + 2 M, 3] canvas (M = MARGIN_PX) whose
    margin repeats the photo's edge pixels outward, blurred, with a soft seam."""
    padded = cv2.copyMakeBorder(photo, *[MARGIN_PX] * 4, cv2.BORDER_REPLICATE)
    blurred = cv2.GaussianBlur(padded, (0, 0), BACKDROP_BLUR_PX)
    inside = np.zeros(padded.shape[:2], np.float32)
    inside[MARGIN_PX:-MARGIN_PX, MARGIN_PX:-MARGIN_PX] = 1.0
    inside = cv2.GaussianBlur(inside, (0, 0), 3.0)[..., None]  # a 3-pixel feathered seam
    return np.rint(inside * padded + (1.0 - inside) * blurred).astype(np.uint8)


def render_frames(photo: np.ndarray) -> list[np.ndarray]:
    """The clip's frames, each [HEIGHT, WIDTH, 3] uint8 RGB, from photo [H, W, 3] uint8 RGB."""
    canvas = backdrop(photo)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(N_FRAMES):
        warped = cv2.warpPerspective(
            canvas, output_to_canvas(i), (WIDTH, HEIGHT),
            # The matrix maps output to canvas, as the sampling needs.
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        )
        noisy = warped.astype(np.float32) + rng.normal(0.0, NOISE_SIGMA, warped.shape)
        frames.append(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    return frames


def encode(frames: list[np.ndarray], path: Path) -> None:
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS), options={"crf": str(CRF)})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.thread_count = 1  # x264's output depends on its thread count
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=HERE / "grace_hopper_512.jpg")
    parser.add_argument("-o", "--out", type=Path, default=HERE / "hopper.mp4")
    args = parser.parse_args()
    photo = cv2.imread(str(args.photo), cv2.IMREAD_COLOR)
    if photo is None:
        raise SystemExit(f"Error: {args.photo} is not a readable image")
    encode(render_frames(np.ascontiguousarray(photo[:, :, ::-1])), args.out)
    size_kb = args.out.stat().st_size // 1024
    print(f"{args.out}: {N_FRAMES} frames, {WIDTH}x{HEIGHT}, {FPS} fps, {size_kb} KB")


if __name__ == "__main__":
    main()
