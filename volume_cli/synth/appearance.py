"""Appearance draws: skin, lips, blush, facial hair, brows, eyes, hair colour and style, clothing,
glasses, lights and backgrounds. Colours are LINEAR RGB albedo in [0, 1] unless a name says sRGB;
the renderer encodes to sRGB. Everything here is a pure function of a numpy Generator.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from volume_cli.synth.human import Identity
from volume_cli.synth.renderer import Lighting


def srgb_to_linear(c) -> np.ndarray:
    return (np.asarray(c, dtype=np.float64) / 255.0) ** 2.2


# Skin along a melanin axis, sRGB (very light .. very dark); interpolated continuously. Chosen as
# skin appears in webcam frames (less orange than colour-chart swatches: red/green about 1.1-1.4,
# blue/green 0.75-0.9), then pulled a little towards grey.
_SKIN_BASE_SRGB = np.array([[236, 214, 196], [224, 190, 165], [205, 165, 130], [175, 130, 95],
                            [140, 100, 72], [105, 75, 58], [75, 55, 45], [50, 40, 34]], float)
SKIN_DESATURATE = 0.1
SKIN_SRGB = _SKIN_BASE_SRGB * (1 - SKIN_DESATURATE) + SKIN_DESATURATE * (_SKIN_BASE_SRGB @ [0.299, 0.587, 0.114])[:, None]
# Hair base colours, sRGB, from blond to black, plus red and auburn.
HAIR_SRGB = {
    "platinum": (225, 205, 160), "blond": (190, 150, 90), "light_brown": (135, 95, 60),
    "brown": (85, 58, 38), "dark_brown": (50, 35, 25), "black": (18, 15, 13),
    "red": (160, 70, 35), "auburn": (110, 45, 30),
}
IRIS_SRGB = {"brown": (90, 55, 30), "dark": (45, 30, 20), "hazel": (120, 100, 50), "green": (80, 110, 70),
             "blue": (70, 110, 150), "grey": (120, 130, 135)}
HAIR_STYLES = ("bald", "buzz", "short", "medium", "long")


@dataclass
class Look:
    skin_melanin: float  # 0 very light .. 1 very dark
    skin: tuple  # linear rgb
    skin_noise: float  # amplitude of the procedural skin texture
    lips: tuple
    blush: float
    beard: float  # 0 none .. 1 full beard (darkening of the beard region)
    moustache: float
    brows: float  # eyebrow density
    hair_color: tuple  # linear rgb
    grey: float  # fraction grey
    hair_style: str
    hair_length: float  # metres (0 for bald)
    hair_curl: float  # 0 straight .. 1 curly
    hair_cards: int
    iris: tuple
    cloth: tuple
    cloth_scale: float
    glasses: dict | None
    # fine skin detail (drawn last, so older fields keep their draws): freckle density on the cheeks
    # and nose, moles (count scale), darkness under the eyes, redness of cheeks and nose, and how
    # much the skin's shine varies from place to place (0 even .. 1 patchy)
    freckles: float = 0.0
    moles: float = 0.0
    under_eye: float = 0.1
    redness: float = 0.1
    shine_variation: float = 0.5

    def to_json(self) -> dict:
        return {k: (list(map(float, v)) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _interp_palette(palette: np.ndarray, t: float) -> np.ndarray:
    x = float(np.clip(t, 0, 1)) * (len(palette) - 1)
    i = min(int(x), len(palette) - 2)
    return palette[i] * (1 - (x - i)) + palette[i + 1] * (x - i)


def sample_look(rng: np.random.Generator, identity: Identity) -> Look:
    """Skin tone across the whole human range (biased by the ethnic mix, never restricted by it)."""
    african, asian, caucasian = identity.ethnic
    melanin = float(np.clip(rng.normal(0.15 * caucasian + 0.35 * asian + 0.75 * african, 0.17), 0.0, 1.0))
    skin_srgb = _interp_palette(SKIN_SRGB, melanin) * np.array([1 + rng.normal(0, 0.03), 1 + rng.normal(0, 0.03), 1 + rng.normal(0, 0.05)])
    skin = srgb_to_linear(np.clip(skin_srgb, 0, 255))
    male = identity.gender > 0.5
    age = identity.age

    lips = skin * np.array([0.85, 0.55, 0.58]) * rng.uniform(0.8, 1.05)
    if not male and rng.random() < 0.3:  # lipstick
        lips = srgb_to_linear(rng.choice([(150, 30, 40), (190, 70, 80), (120, 40, 50), (200, 100, 100)]))

    # hair colour: darker with more melanin; grey with age
    names = list(HAIR_SRGB)
    p = np.array([0.5 * caucasian, 1.0 * caucasian, 1.0 * caucasian + 0.3, 1.0, 1.0 + asian + african,
                  0.5 + 2 * asian + 2 * african, 0.25 * caucasian, 0.3 * caucasian])
    base = np.asarray(HAIR_SRGB[names[rng.choice(len(names), p=p / p.sum())]], float) * rng.uniform(0.85, 1.15)
    grey = float(np.clip((age - 35.0) / 40.0 + rng.normal(0, 0.2), 0.0, 1.0))
    hair_srgb = base * (1 - grey) + np.array([200, 198, 195]) * rng.uniform(0.8, 1.1) * grey
    hair = srgb_to_linear(np.clip(hair_srgb, 0, 255))

    # style: men bald more often with age; women longer
    if male:
        pb = 0.03 + 0.25 * max(0.0, (age - 35) / 55)
        probs = np.array([pb, 0.22, 0.45, 0.2, 0.08])
    else:
        probs = np.array([0.01, 0.03, 0.14, 0.32, 0.5])
    style = HAIR_STYLES[rng.choice(5, p=probs / probs.sum())]
    length = {"bald": 0.0, "buzz": rng.uniform(0.003, 0.008), "short": rng.uniform(0.03, 0.07),
              "medium": rng.uniform(0.08, 0.18), "long": rng.uniform(0.2, 0.42)}[style]
    curl = float(rng.beta(0.7, 1.5))
    cards = {"bald": 0, "buzz": 0, "short": 1400, "medium": 1200, "long": 1400}[style]

    beard = moustache = 0.0
    if male and age > 17:
        r = rng.random()
        if r < 0.35:
            beard = float(rng.uniform(0.15, 0.4))  # stubble
        elif r < 0.55:
            beard = float(rng.uniform(0.6, 0.95))  # beard
        moustache = beard * rng.uniform(0.8, 1.2) if rng.random() < 0.8 else float(rng.uniform(0.5, 0.9)) * (rng.random() < 0.2)

    iris_names = list(IRIS_SRGB)
    pi = np.array([1.0 + asian + african, 0.5 + 2 * (asian + african), 0.5, 0.3 * caucasian, 0.9 * caucasian, 0.2])
    iris = srgb_to_linear(np.asarray(IRIS_SRGB[iris_names[rng.choice(len(iris_names), p=pi / pi.sum())]]) * rng.uniform(0.8, 1.2))

    # clothes: greys, black, white and muted colours mostly, a saturated one now and then
    cloth_srgb = rng.uniform(10, 240, size=3) if rng.random() < 0.6 else np.full(3, rng.uniform(10, 240))
    cloth_srgb = cloth_srgb.mean() + (cloth_srgb - cloth_srgb.mean()) * (rng.uniform(0.3, 0.8) if rng.random() < 0.8 else 1.0)
    cloth = srgb_to_linear(np.clip(cloth_srgb, 0, 255))
    glasses = None
    if rng.random() < 0.3:
        metal = rng.random() < 0.35
        glasses = {
            "half_width": float(rng.uniform(0.021, 0.029)),
            "half_height": float(rng.uniform(0.013, 0.022)),
            "roundness": float(rng.uniform(2.0, 5.0)),  # superellipse exponent: 2 oval .. 5 rectangular
            "rim": float(rng.uniform(0.0008, 0.0012) if metal else rng.uniform(0.0018, 0.0035)),
            "metal": bool(metal),
            "color": list(map(float, srgb_to_linear((200, 170, 90) if metal and rng.random() < 0.5 else
                                                      (170, 170, 175) if metal else
                                                      rng.choice([(15, 15, 15), (60, 35, 20), (120, 30, 30), (30, 40, 80)])))),
            "lens_alpha": float(rng.uniform(0.04, 0.2)),
            "lens_tint": list(map(float, rng.uniform(0.6, 1.0, size=3))),
        }
    return Look(
        skin_melanin=melanin, skin=tuple(skin), skin_noise=float(rng.uniform(0.08, 0.22)), lips=tuple(lips),
        blush=float(rng.uniform(0.0, 0.35)), beard=beard, moustache=float(moustache),
        brows=float(rng.uniform(0.45, 0.9) * (1.0 if male else 0.85)), hair_color=tuple(hair), grey=grey,
        hair_style=style, hair_length=float(length), hair_curl=curl, hair_cards=cards, iris=tuple(iris),
        cloth=tuple(cloth), cloth_scale=float(rng.uniform(150, 900)), glasses=glasses,
        # freckles mostly on light skin (a third of the lightest people), moles on anyone
        freckles=float(rng.uniform(0.2, 1.0) * (rng.random() < 0.35 * (1 - melanin) ** 2)),
        moles=float(rng.uniform(0.0, 1.0) if rng.random() < 0.5 else 0.0),
        under_eye=float(rng.uniform(0.05, 0.35) + 0.15 * max(0.0, (age - 40) / 50)),
        redness=float(rng.uniform(0.0, 0.6) * (1 - 0.6 * melanin)),
        shine_variation=float(rng.uniform(0.3, 1.0)),
    )


def kelvin_to_rgb(kelvin: float) -> np.ndarray:
    """Approximate linear RGB of a black body (Tanner Helland's fit), normalised to max 1."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    c = srgb_to_linear(np.clip([r, g, b], 0, 255))
    return c / c.max()


def _direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector towards a light, in the input camera's frame: azimuth 0 = at the camera (-z),
    +90 = to the image right (+x); elevation up (-y in OpenCV)."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(a) * math.cos(e), -math.sin(e), -math.cos(a) * math.cos(e)])


LUMA = np.array([0.2126, 0.7152, 0.0722])  # linear RGB -> luminance
# A webcam's auto white balance removes most of an illuminant's tint (this fraction, drawn per
# sample), and its auto exposure sets the frontal irradiance on the face so that the face's linear
# luminance lands in this range (darker skin is exposed up part of the way, as cameras do).
WHITE_BALANCE = (0.55, 0.95)
FACE_IRRADIANCE = (0.4, 0.75)  # frontal irradiance luma for the lightest skin (albedo luma 0.5)
DARK_SKIN_EXPOSURE = 0.35  # exposure grows as (0.5 / skin luma) ** this: partly, never fully
MAX_IRRADIANCE = 2.0  # caps the exposure, so highlights on dark skin do not blow out


def _frontal_irradiance(light: Lighting) -> np.ndarray:
    """Linear RGB irradiance [3] on a surface facing the input camera (normal -z), shader's model."""
    facing = np.clip(light.directions @ np.array([0.0, 0.0, -1.0]), 0.0, None)
    return (light.colors * facing[:, None]).sum(0) + 0.5 * (np.asarray(light.sky) + np.asarray(light.ground))


def auto_exposure(rng: np.random.Generator, light: Lighting, skin_luma: float) -> Lighting:
    """Rescale every light (same gains for all, so the scene's colours stay consistent across
    views) as a webcam's auto white balance and exposure would: a partial grey-world correction of
    the frontal irradiance's tint, then the frontal irradiance into ``FACE_IRRADIANCE``, raised
    partly for darker skin (``skin_luma``: the albedo's luminance)."""
    e = _frontal_irradiance(light)
    gain = (float(e @ LUMA) / np.maximum(e, 1e-6)) ** rng.uniform(*WHITE_BALANCE)
    e = e * gain
    darkness = (0.5 / max(skin_luma, 0.02)) ** DARK_SKIN_EXPOSURE
    target = min(rng.uniform(*FACE_IRRADIANCE) * darkness, MAX_IRRADIANCE)
    scale = gain * target / max(float(e @ LUMA), 1e-6)
    return Lighting(directions=light.directions, colors=light.colors * scale[None], sky=np.asarray(light.sky) * scale,
                    ground=np.asarray(light.ground) * scale)


def sample_lighting(rng: np.random.Generator, skin: np.ndarray | None = None) -> Lighting:
    """Key, fill and rim lights with colour temperatures between 2700 K and 7500 K, plus ambient;
    with ``skin`` (linear RGB albedo [3]) auto-exposed and white-balanced (:func:`auto_exposure`)."""
    side = 1 if rng.random() < 0.5 else -1
    key_t = rng.uniform(2700, 7500)
    dirs = [
        _direction(side * rng.uniform(0, 70), rng.uniform(-5, 50)),
        _direction(-side * rng.uniform(20, 80), rng.uniform(-10, 30)),
        _direction(rng.choice([-1, 1]) * rng.uniform(110, 170), rng.uniform(10, 60)),
    ]
    cols = [
        kelvin_to_rgb(key_t) * rng.uniform(1.0, 2.2),
        kelvin_to_rgb(rng.uniform(3000, 7500)) * rng.uniform(0.1, 0.6),
        kelvin_to_rgb(rng.uniform(3000, 9000)) * rng.uniform(0.0, 1.5) * (rng.random() < 0.7),
    ]
    amb = rng.uniform(0.08, 0.35)
    sky = kelvin_to_rgb(rng.uniform(4000, 9000)) * amb
    ground = sky * rng.uniform(0.3, 0.7)
    light = Lighting(directions=np.array(dirs), colors=np.array(cols), sky=sky, ground=ground)
    return light if skin is None else auto_exposure(rng, light, float(np.asarray(skin) @ LUMA))


def lighting_to_json(light: Lighting) -> dict:
    return {"directions": light.directions.tolist(), "colors": light.colors.tolist(),
            "sky": list(map(float, light.sky)), "ground": list(map(float, light.ground))}


# --- backgrounds (procedural only: no photos ship with the package) ---------------------------------

# Wall paints, sRGB in [0, 1]: whites, creams, greys, muted pastels, a few darker accent walls.
WALL_SRGB = np.array([
    [0.92, 0.91, 0.88], [0.86, 0.84, 0.80], [0.90, 0.86, 0.78], [0.80, 0.78, 0.74], [0.70, 0.70, 0.70],
    [0.78, 0.82, 0.84], [0.76, 0.82, 0.76], [0.88, 0.84, 0.70], [0.84, 0.76, 0.72], [0.55, 0.58, 0.62],
    [0.42, 0.46, 0.50], [0.35, 0.40, 0.36], [0.60, 0.50, 0.42], [0.30, 0.30, 0.32],
])
# Wood, fabric and book colours for furniture and shelves, sRGB.
THINGS_SRGB = np.array([
    [0.55, 0.40, 0.28], [0.40, 0.28, 0.18], [0.70, 0.58, 0.42], [0.25, 0.22, 0.20], [0.85, 0.85, 0.85],
    [0.20, 0.25, 0.35], [0.55, 0.20, 0.18], [0.30, 0.40, 0.30], [0.75, 0.65, 0.40], [0.12, 0.12, 0.13],
])


def _noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    small = rng.random((max(2, cells * height // max(width, 1)), cells)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _jitter(rng: np.random.Generator, c: np.ndarray, amount: float = 0.06) -> np.ndarray:
    return np.clip(c * rng.uniform(1 - amount, 1 + amount, 3) * rng.uniform(0.85, 1.1), 0, 1)


def _fill(img: np.ndarray, poly: np.ndarray, color) -> None:
    cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], tuple(float(c) for c in color), cv2.LINE_AA, shift=4)


def _wall_objects(rng: np.random.Generator, img: np.ndarray, quad: np.ndarray, wall: np.ndarray) -> None:
    """Door, window, shelf with books, picture frames and a lamp on one wall, given as its image
    quadrilateral [4, 2] (top-left, top-right, bottom-right, bottom-left in wall coordinates):
    objects are drawn in wall coordinates (s, t) in [0, 1]^2 and mapped through the wall's homography,
    so they have the wall's perspective."""
    H = cv2.getPerspectiveTransform(np.float32([[0, 0], [1, 0], [1, 1], [0, 1]]), quad.astype(np.float32))

    def to_img(pts) -> np.ndarray:
        return cv2.perspectiveTransform(np.float32(pts)[None], H)[0]

    def rect(s0, t0, s1, t1, color) -> None:
        _fill(img, to_img([[s0, t0], [s1, t0], [s1, t1], [s0, t1]]), color)

    for _ in range(int(rng.integers(1, 5))):
        what = rng.choice(["door", "window", "shelf", "picture", "cabinet"], p=[0.2, 0.2, 0.25, 0.25, 0.1])
        s0 = rng.uniform(-0.1, 0.85)
        if what == "door":
            w = rng.uniform(0.12, 0.25)
            rect(s0 - 0.01, 0.18, s0 + w + 0.01, 1.01, wall * 0.8)  # frame
            rect(s0, 0.2, s0 + w, 1.01, _jitter(rng, THINGS_SRGB[rng.integers(len(THINGS_SRGB))]) if rng.random() < 0.6 else _jitter(rng, wall, 0.04) * 1.05)
        elif what == "window":
            w, t0, h = rng.uniform(0.15, 0.4), rng.uniform(0.1, 0.3), rng.uniform(0.3, 0.5)
            sky = np.array([0.95, 0.97, 1.0]) if rng.random() < 0.6 else np.array([0.75, 0.85, 0.95])
            rect(s0 - 0.012, t0 - 0.012, s0 + w + 0.012, t0 + h + 0.012, np.full(3, 0.9))
            rect(s0, t0, s0 + w, t0 + h, sky * rng.uniform(0.9, 1.0))
            if rng.random() < 0.6:  # bars
                rect(s0 + w / 2 - 0.006, t0, s0 + w / 2 + 0.006, t0 + h, np.full(3, 0.88))
            if rng.random() < 0.5:  # a curtain or blind
                c = _jitter(rng, THINGS_SRGB[rng.integers(len(THINGS_SRGB))] * 0.5 + 0.45)
                rect(s0 - 0.05, t0 - 0.03, s0 + rng.uniform(0.05, 0.12), t0 + h + 0.08, c)
        elif what == "shelf":
            w, t0 = rng.uniform(0.15, 0.45), rng.uniform(0.15, 0.5)
            wood = _jitter(rng, THINGS_SRGB[rng.integers(0, 4)])
            for k in range(int(rng.integers(1, 4))):
                t = t0 + k * rng.uniform(0.12, 0.16)
                s = s0
                while s < s0 + w and rng.random() < 0.92:  # books and boxes standing on the board
                    bw = rng.uniform(0.008, 0.03)
                    rect(s, t - rng.uniform(0.05, 0.1), s + bw, t, _jitter(rng, THINGS_SRGB[rng.integers(len(THINGS_SRGB))], 0.2))
                    s += bw + (rng.uniform(0.02, 0.08) if rng.random() < 0.15 else 0.001)
                rect(s0, t, s0 + w, t + 0.012, wood)
        elif what == "picture":
            w, t0 = rng.uniform(0.06, 0.2), rng.uniform(0.1, 0.45)
            h = w * rng.uniform(0.6, 1.4)
            rect(s0, t0, s0 + w, t0 + h, _jitter(rng, THINGS_SRGB[rng.integers(len(THINGS_SRGB))]))
            inner = rng.uniform(0.2, 0.9, 3) * 0.6 + 0.2
            rect(s0 + 0.01, t0 + 0.01, s0 + w - 0.01, t0 + h - 0.01, inner)
            rect(s0 + 0.01, t0 + h * rng.uniform(0.3, 0.7), s0 + w - 0.01, t0 + h - 0.01, inner * rng.uniform(0.5, 0.9))
        else:  # cabinet / sofa back / desk at the bottom
            w = rng.uniform(0.2, 0.6)
            rect(s0, rng.uniform(0.6, 0.8), s0 + w, 1.01, _jitter(rng, THINGS_SRGB[rng.integers(len(THINGS_SRGB))]))


def _room(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A room seen from a desk: a back wall (facing the camera) and, sometimes, side walls, ceiling
    and floor in one-point perspective, with objects on the walls, lit by a lamp (falloff)."""
    wall = _jitter(rng, WALL_SRGB[rng.integers(len(WALL_SRGB))], 0.05)
    img = np.empty((height, width, 3), np.float32)
    img[:] = wall
    W, Hh = float(width), float(height)
    # back wall rectangle: full frame (camera facing a wall) or smaller (a room's depth visible)
    if rng.random() < 0.4:
        back = np.array([[-0.05 * W, -0.05 * Hh], [1.05 * W, -0.05 * Hh], [1.05 * W, 1.05 * Hh], [-0.05 * W, 1.05 * Hh]])
        quads = [back]
    else:
        cx, cy = rng.uniform(0.2, 0.8) * W, rng.uniform(0.25, 0.6) * Hh
        hw, hh = rng.uniform(0.2, 0.45) * W, rng.uniform(0.2, 0.45) * Hh
        x0, x1, y0, y1 = cx - hw, cx + hw, cy - hh, cy + hh
        back = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        k = 4.0  # side planes reach far outside the frame
        vp = np.array([cx, cy])
        outer = vp + (back - vp) * k
        shade = {"left": rng.uniform(0.7, 1.1), "right": rng.uniform(0.7, 1.1), "ceil": rng.uniform(0.85, 1.05)}
        floor_col = _jitter(rng, THINGS_SRGB[rng.integers(0, 5)], 0.1) * rng.uniform(0.6, 1.0)
        _fill(img, np.array([outer[0], outer[1], back[1], back[0]]), np.clip(wall * shade["ceil"], 0, 1))
        _fill(img, np.array([back[3], back[2], outer[2], outer[3]]), floor_col)
        _fill(img, np.array([outer[0], back[0], back[3], outer[3]]), np.clip(wall * shade["left"], 0, 1))
        _fill(img, np.array([back[1], outer[1], outer[2], back[2]]), np.clip(wall * shade["right"], 0, 1))
        _fill(img, back, wall)
        # side walls as wall quads for objects: near edge at the frame's border
        left = np.array([outer[0], back[0], back[3], outer[3]])
        right = np.array([back[1], outer[1], outer[2], back[2]])
        quads = [back] + [q for q in (left, right) if rng.random() < 0.5]
    for q in quads:
        _wall_objects(rng, img, q, wall)
    # lamp / window light: smooth falloff from a point, plus a vertical gradient
    lx, ly = rng.uniform(-0.3, 1.3) * W, rng.uniform(-0.3, 0.8) * Hh
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - lx) ** 2 + (yy - ly) ** 2) / (rng.uniform(0.4, 1.2) * W) ** 2
    light = rng.uniform(0.5, 0.85) + rng.uniform(0.3, 0.7) / (1.0 + r2)
    light *= np.linspace(rng.uniform(0.9, 1.1), rng.uniform(0.75, 1.0), height, dtype=np.float32)[:, None]
    tint = kelvin_to_rgb(rng.uniform(3000, 6500)) ** 0.15  # mostly corrected by the white balance
    return img * light[..., None] * tint[None, None].astype(np.float32)


def sample_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """sRGB float32 [H, W, 3] in [0, 1]: mostly a room (walls in perspective, a door, windows,
    shelves, pictures, furniture, lamp light), else a plain wall or muted fractal noise; out of
    focus (the camera focuses on the face), with a partial grey-world white balance."""
    kind = rng.choice(["room", "wall", "noise"], p=[0.7, 0.15, 0.15])
    if kind == "noise":
        img = np.zeros((height, width), np.float32)
        for octave, amp in ((3, 0.5), (7, 0.25), (15, 0.15), (31, 0.1)):
            img += amp * _noise(rng, width, height, octave)
        c1, c2 = rng.uniform(0.1, 0.9, size=3), rng.uniform(0.0, 1.0, size=3)
        out = c1[None, None] * (1 - img[..., None]) + c2[None, None] * img[..., None]
    elif kind == "wall":
        wall = _jitter(rng, WALL_SRGB[rng.integers(len(WALL_SRGB))], 0.08)
        grad = np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.6, 1.0), height, dtype=np.float32)[:, None, None]
        side = np.linspace(rng.uniform(0.8, 1.1), rng.uniform(0.8, 1.1), width, dtype=np.float32)[None, :, None]
        out = wall[None, None] * grad * side
    else:
        out = _room(rng, width, height)
    out = out * (1 + 0.08 * (_noise(rng, width, height, 9)[..., None] - 0.5))
    # partial grey world (webcam white balance) and desaturation of extreme colours
    mean = out.reshape(-1, 3).mean(0)
    out = out * ((mean @ [0.299, 0.587, 0.114]) / np.maximum(mean, 1e-3)) ** rng.uniform(0.3, 0.8)
    grey = out @ np.array([0.299, 0.587, 0.114], np.float32)
    out = grey[..., None] + (out - grey[..., None]) * rng.uniform(0.6, 1.0)
    sigma = rng.uniform(1.0, 5.0) * max(width, height) / 640.0  # depth of field: the room is behind the focus
    out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), sigma)
    return np.clip(out, 0.0, 1.0)


def degrade_webcam(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A webcam's look on a uint8 [H, W, 3] frame: slight blur, sensor noise, JPEG compression."""
    img = image.astype(np.float32)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.9))
    img += rng.normal(0.0, rng.uniform(0.5, 4.0), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 96))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(img)
