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


# Skin along a melanin axis, sRGB (very light .. very dark); interpolated continuously.
SKIN_SRGB = np.array([[246, 218, 200], [231, 190, 160], [200, 150, 112], [150, 100, 68], [100, 64, 44], [58, 38, 28]], float)
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

    cloth = srgb_to_linear(rng.uniform(10, 240, size=3) if rng.random() < 0.7 else np.full(3, rng.uniform(10, 240)))
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


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """Key, fill and rim lights with colour temperatures between 2700 K and 7500 K, plus ambient."""
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
    return Lighting(directions=np.array(dirs), colors=np.array(cols), sky=sky, ground=ground)


def lighting_to_json(light: Lighting) -> dict:
    return {"directions": light.directions.tolist(), "colors": light.colors.tolist(),
            "sky": list(map(float, light.sky)), "ground": list(map(float, light.ground))}


# --- backgrounds (procedural only: no photos ship with the package) ---------------------------------

def _noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    small = rng.random((max(2, cells * height // max(width, 1)), cells)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def sample_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """sRGB float32 [H, W, 3] in [0, 1]: coloured fractal noise, or a blurred room (walls, window,
    shelves, door), or a plain wall with a gradient; always slightly out of focus."""
    kind = rng.choice(["noise", "room", "wall"], p=[0.35, 0.45, 0.2])
    base = rng.uniform(0.1, 0.9, size=3)
    if kind == "noise":
        img = np.zeros((height, width), np.float32)
        for octave, amp in ((3, 0.5), (7, 0.25), (15, 0.15), (31, 0.1)):
            img += amp * _noise(rng, width, height, octave)
        c2 = rng.uniform(0.0, 1.0, size=3)
        out = base[None, None] * (1 - img[..., None]) + c2[None, None] * img[..., None]
    else:
        grad = np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.6, 1.0), height, dtype=np.float32)[:, None, None]
        out = np.broadcast_to(base[None, None] * grad, (height, width, 3)).copy()
        if kind == "room":
            for _ in range(rng.integers(2, 7)):
                x0, y0 = rng.uniform(-0.2, 1.0, 2)
                w, h = rng.uniform(0.05, 0.6, 2)
                col = rng.uniform(0.0, 1.0, 3) if rng.random() < 0.7 else np.full(3, rng.uniform(0.85, 1.0))
                p0 = (int(x0 * width), int(y0 * height))
                p1 = (int((x0 + w) * width), int((y0 + h) * height))
                cv2.rectangle(out, p0, p1, tuple(float(c) for c in col), thickness=-1)
            for _ in range(rng.integers(0, 4)):  # shelves / edges
                y = int(rng.uniform(0, 1) * height)
                cv2.line(out, (0, y), (width, y), tuple(float(c) for c in rng.uniform(0, 1, 3)), max(1, height // 80))
        out *= 1 + 0.15 * (_noise(rng, width, height, 9)[..., None] - 0.5)
    sigma = rng.uniform(0.5, 4.0) * max(width, height) / 256.0
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
