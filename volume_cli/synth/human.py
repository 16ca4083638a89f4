"""People: identity (macro body types + local face modifiers), expressions, and the posed mesh.

Frames:

* rest frame: MakeHuman axes (+y up, +z out of the face, +x the person's left), metres.
* head frame: OpenCV-style axes centred on the head centre: x = the person's left (image right when
  they face the camera), y down, z INTO the face (the face looks toward -z, i.e. at a camera on the
  -z side). ``head = FLIP @ (rest - head_center_rest)`` with FLIP = diag(1, -1, -1), a proper rotation.
* world frame: the INPUT camera's frame (OpenCV, metres): ``world = R_head @ head + t_head``.

The head centre is a point inside the skull: 1 cm above and 6.5 cm behind the midpoint of the two
eyeball centres (about the middle of the head's bounding box).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from volume_cli.synth.assets import BustAssets, Target

FLIP = np.diag([1.0, -1.0, -1.0])
HEAD_CENTER_FROM_EYES_M = np.array([0.0, 0.010, -0.065])  # rest frame offset from the eye midpoint

AGE_MIN, AGE_MAX = 15.0, 90.0
ETHNICITIES = ("african", "asian", "caucasian")

# Spread (standard deviation of the slider value in [-1, 1]) of the local modifiers per folder, and
# how much a left/right pair may differ (fraction of that spread): mild asymmetry.
MODIFIER_SPREAD = {
    "head": 0.22, "nose": 0.25, "mouth": 0.2, "chin": 0.22, "cheek": 0.22,
    "ears": 0.25, "eyes": 0.16, "eyebrows": 0.22, "forehead": 0.22, "neck": 0.2,
}
ASYMMETRY = 0.25
SINGLETON_PROBABILITY = 0.15  # modifiers without an opposite (head-oval, chin-triangle ...)
BLINK_FRACTION = 0.06  # frames with the lids closed or closing


def age_to_slider(age_years: float) -> float:
    """MakeHuman's age slider: 0 -> 1 year, 0.1875 -> 11, 0.5 -> 25, 1 -> 90 years (piecewise linear)."""
    a = float(age_years)
    if a < 11.0:
        return (a - 1.0) / 10.0 * 0.1875
    if a < 25.0:
        return 0.1875 + (a - 11.0) / 14.0 * (0.5 - 0.1875)
    return 0.5 + (a - 25.0) / 65.0 * 0.5


def _two_sided(v: float, low: str, mid: str, high: str) -> dict[str, float]:
    """Slider in [0, 1] with 0.5 = ``mid``: linear weights on low/mid or mid/high."""
    if v < 0.5:
        return {low: 1.0 - v / 0.5, mid: v / 0.5}
    return {mid: 1.0 - (v - 0.5) / 0.5, high: (v - 0.5) / 0.5}


def macro_weights(gender: float, age_years: float, muscle: float, weight: float, ethnic: np.ndarray) -> dict[str, float]:
    """Weights of the macrodetails targets (MakeHuman's macro modifier rules).

    gender 0 = female, 1 = male; muscle and weight in [0, 1] with 0.5 average; ethnic [3] proportions
    (african, asian, caucasian) summing to 1. Example: a 25-year-old average caucasian man weights
    only targets that are all zero (``universal-male-young-averagemuscle-averageweight``) and
    ``caucasian-male-young``.
    """
    g = {"female": 1.0 - gender, "male": gender}
    s = age_to_slider(age_years)
    if s < 0.1875:
        a = {"baby": 1.0 - s / 0.1875, "child": s / 0.1875}
    elif s < 0.5:
        a = {"child": 1.0 - (s - 0.1875) / 0.3125, "young": (s - 0.1875) / 0.3125}
    else:
        a = {"young": 1.0 - (s - 0.5) / 0.5, "old": (s - 0.5) / 0.5}
    m = _two_sided(muscle, "minmuscle", "averagemuscle", "maxmuscle")
    w = _two_sided(weight, "minweight", "averageweight", "maxweight")
    out: dict[str, float] = {}
    for gk, gv in g.items():
        for ak, av in a.items():
            for mk, mv in m.items():
                for wk, wv in w.items():
                    out[f"universal-{gk}-{ak}-{mk}-{wk}"] = gv * av * mv * wv
            for e, ev in zip(ETHNICITIES, ethnic):
                out[f"{e}-{gk}-{ak}"] = float(ev) * gv * av
    return {k: v for k, v in out.items() if v > 1e-6}


@dataclass
class Identity:
    gender: float  # 0 female .. 1 male
    age: float  # years
    muscle: float  # 0..1, 0.5 average
    weight: float  # 0..1, 0.5 average
    ethnic: np.ndarray  # [3] african, asian, caucasian proportions
    modifiers: dict[str, float]  # "nose/nose-hump-incr" -> weight in [0, 1]

    def to_json(self) -> dict:
        return {
            "gender": self.gender, "age": self.age, "muscle": self.muscle, "weight": self.weight,
            "ethnic": dict(zip(ETHNICITIES, map(float, self.ethnic))),
            "modifiers": {k: round(v, 4) for k, v in self.modifiers.items()},
        }


@lru_cache(maxsize=4)
def _modifier_groups(names: tuple[str, ...]) -> list[tuple[str, list[str], list[str]]]:
    """Group modifier names into (folder, [negative side names], [positive side names]).

    ``nose/nose-hump-decr`` + ``nose/nose-hump-incr`` form one slider; ``l-`` and ``r-`` versions of
    the same slider are one group (drawn together, with asymmetry). Singletons have an empty side.
    """
    pairs = {"decr": "incr", "down": "up", "in": "out", "backward": "forward", "concave": "convex",
             "compress": "uncompress", "min": "max", "less": "more"}
    negatives = set(pairs)
    positives = set(pairs.values())
    groups: dict[str, tuple[str, list[str], list[str]]] = {}
    for name in names:
        folder, base = name.split("/", 1)
        stem, _, suffix = base.rpartition("-")
        side_free = stem[2:] if stem[:2] in ("l-", "r-") else stem
        if suffix in negatives:
            key = f"{folder}/{side_free}"
            groups.setdefault(key, (folder, [], []))[1].append(name)
        elif suffix in positives:
            key = f"{folder}/{side_free}"
            groups.setdefault(key, (folder, [], []))[2].append(name)
        else:
            groups.setdefault(f"{folder}/{base}", (folder, [], []))[2].append(name)
    return [groups[k] for k in sorted(groups)]


def sample_identity(rng: np.random.Generator, assets: BustAssets) -> Identity:
    """A random person: continuous macro sliders and local modifiers with mild asymmetry."""
    ethnic = rng.dirichlet([0.6, 0.6, 0.6])
    modifiers: dict[str, float] = {}
    for folder, neg, pos in _modifier_groups(tuple(sorted(assets.modifiers))):
        spread = MODIFIER_SPREAD.get(folder, 0.3)
        if not neg:  # singletons
            for name in pos:
                if rng.random() < SINGLETON_PROBABILITY:
                    modifiers[name] = float(rng.uniform(0.0, 0.4))
            continue
        value = float(np.clip(rng.normal(0.0, spread), -1.0, 1.0))
        for side_names in (neg, pos):
            for name in side_names:
                side_value = value + rng.normal(0.0, ASYMMETRY * spread) if "/l-" in name or "/r-" in name else value
                w = -side_value if side_names is neg else side_value
                if w > 0:
                    modifiers[name] = float(min(w, 1.0))
    return Identity(
        gender=float(rng.beta(0.5, 0.5)),  # most people clearly one or the other, some in between
        age=float(rng.uniform(AGE_MIN, AGE_MAX)),
        muscle=float(np.clip(rng.normal(0.5, 0.18), 0.0, 1.0)),
        weight=float(np.clip(rng.normal(0.5, 0.2), 0.0, 1.0)),
        ethnic=ethnic,
        modifiers=modifiers,
    )


# --- expressions -----------------------------------------------------------------------------------

def sample_expression(rng: np.random.Generator) -> dict[str, float]:
    """ARKit blendshape weights drawn like a person talking: jaw and lip shapes, smiles, blinks, brows."""
    e: dict[str, float] = {}
    u = rng.uniform
    e["jawOpen"] = float(u(0.0, 0.06) if rng.random() < 0.35 else u(0.04, 0.4))
    viseme = rng.integers(0, 5)
    if viseme == 1:
        e["mouthFunnel"] = u(0.1, 0.45)
    elif viseme == 2:
        e["mouthPucker"] = u(0.1, 0.5)
    elif viseme == 3:
        e["mouthStretchLeft"] = e["mouthStretchRight"] = u(0.1, 0.5)
    elif viseme == 4:
        e["mouthClose"] = u(0.0, 0.3) * e["jawOpen"]
        e["mouthPressLeft"] = e["mouthPressRight"] = u(0.0, 0.5)
    smile_squint = 0.0
    if rng.random() < 0.45:  # smile, sometimes lopsided
        s = u(0.1, 0.9)
        e["mouthSmileLeft"] = s * u(0.75, 1.0)
        e["mouthSmileRight"] = s * u(0.75, 1.0)
        e["cheekSquintLeft"] = e["cheekSquintRight"] = 0.5 * s
        smile_squint = 0.35 * s  # a smile narrows the eyes (Duchenne)
    if rng.random() < 0.15:
        e["mouthFrownLeft"] = e["mouthFrownRight"] = u(0.1, 0.6)
    e["mouthLowerDownLeft"] = e["mouthLowerDownRight"] = u(0.0, 0.4) * e["jawOpen"] / 0.4
    e["mouthUpperUpLeft"] = e["mouthUpperUpRight"] = u(0.0, 0.3)
    # Eyes open: the hm08 lids rest narrower than a real resting aperture (about 7.5 of 10 mm), so
    # a wide-open eye is a slightly NEGATIVE blink (the target extrapolated; lids look right down to
    # about -0.4). Talking people mostly hold relaxed lids that cover the top of the iris (blink
    # about -0.15 .. 0.2) and narrow them when they smile. People blink some 15-20 times a minute
    # for 0.1-0.3 s: about 6 % of video frames show a closed or closing lid.
    relaxed = -0.15 + 0.35 * rng.beta(2.0, 2.0) + 0.6 * smile_squint
    blink = u(0.5, 1.0) if rng.random() < BLINK_FRACTION else relaxed
    e["eyeBlinkLeft"] = blink + u(-0.04, 0.04)
    e["eyeBlinkRight"] = blink + u(-0.04, 0.04)
    if smile_squint > 0:
        e["eyeSquintLeft"] = e["eyeSquintRight"] = smile_squint
    if rng.random() < 0.05:  # surprise is rare in conversation
        e["eyeWideLeft"] = e["eyeWideRight"] = u(0.1, 0.4)
    if rng.random() < 0.4:
        e["browInnerUp"] = u(0.1, 0.8)
    if rng.random() < 0.25:
        e["browDownLeft"] = e["browDownRight"] = u(0.1, 0.6)
    if rng.random() < 0.3:
        e["browOuterUpLeft"] = e["browOuterUpRight"] = u(0.1, 0.6)
    return {k: float(np.clip(v, -0.45 if k.startswith("eyeBlink") else 0.0, 1.0)) for k, v in e.items()}


def next_expression(rng: np.random.Generator, expression: dict[str, float]) -> dict[str, float]:
    """The same face a moment later (about 1/30 s): small changes, sometimes a blink starting or ending."""
    out = {k: float(np.clip(v + rng.normal(0.0, 0.05), -0.45 if k.startswith("eyeBlink") else 0.0, 1.0))
           for k, v in expression.items()}
    out["jawOpen"] = float(np.clip(expression.get("jawOpen", 0.0) + rng.normal(0.0, 0.08), 0.0, 1.0))
    if rng.random() < 0.1:  # a blink starting or ending
        b = float(rng.uniform(-0.3, 1.0))
        out["eyeBlinkLeft"] = out["eyeBlinkRight"] = b
    return out


# --- the posed mesh --------------------------------------------------------------------------------

def _apply(vertices: np.ndarray, targets: dict[str, Target], weights: dict[str, float]) -> None:
    for name, w in weights.items():
        t = targets.get(name)
        if t is None or w == 0.0 or len(t.index) == 0:
            continue
        vertices[t.index] += w * t.offset  # indices within one target are unique


def shaped_vertices(assets: BustAssets, identity: Identity, expression: dict[str, float]) -> np.ndarray:
    """Rest-frame vertices [V, 3] (metres) with macro, local and expression targets applied."""
    v = assets.rest.copy()
    _apply(v, assets.macro, macro_weights(identity.gender, identity.age, identity.muscle, identity.weight, identity.ethnic))
    _apply(v, assets.modifiers, identity.modifiers)
    _apply(v, assets.faceunits, expression)
    return v


@dataclass
class EyeBall:
    center: np.ndarray  # [3]
    radius: float


def eyeballs(assets: BustAssets, vertices: np.ndarray) -> tuple[EyeBall, EyeBall]:
    """Spheres fitted to the (morphed) eye helper meshes: (left, right) in the given frame."""
    out = []
    for part in ("eye_l", "eye_r"):
        p = vertices[np.unique(assets.parts[part])]
        c = 0.5 * (p.min(0) + p.max(0))
        out.append(EyeBall(center=c, radius=float(np.linalg.norm(p - c, axis=1).mean())))
    return out[0], out[1]


def head_center_rest(assets: BustAssets, vertices: np.ndarray) -> np.ndarray:
    left, right = eyeballs(assets, vertices)
    return 0.5 * (left.center + right.center) + HEAD_CENTER_FROM_EYES_M


def rest_to_head(points: np.ndarray, center_rest: np.ndarray) -> np.ndarray:
    """Rest-frame points [..., 3] -> head frame (see the module docstring)."""
    return (points - center_rest) @ FLIP.T


@dataclass(frozen=True)
class Regions:
    """Per-vertex weights in [0, 1] of face regions, computed once on the REST mesh (so they follow
    the skin through every morph): lips, brows, beard, moustache, blush, freckles, nose, ears, socket, tzone,
    scalp (hair), cloth, face."""

    weights: dict[str, np.ndarray]  # name -> [V]
    landmarks: dict[str, int]  # name -> bust vertex index (nose_tip, chin, mouth_l/r, ear_l/r, brow_mid, eye_l/r_inner/outer)
    face_vertices: np.ndarray  # [F] indices: the region a face detector boxes (brows to chin, cheek to cheek)


def _smooth_box(x: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
    return np.clip((x - lo) / soft + 0.5, 0, 1) * np.clip((hi - x) / soft + 0.5, 0, 1)


@lru_cache(maxsize=1)
def _regions_cached(key: int) -> Regions:  # key: id of the cached assets object
    from volume_cli.synth.assets import load_bust

    return _compute_regions(load_bust())


def regions(assets: BustAssets) -> Regions:
    return _regions_cached(id(assets))


def _compute_regions(assets: BustAssets) -> Regions:
    r = assets.rest
    body = np.zeros(len(r), bool)
    body[np.unique(assets.parts["body"])] = True
    left, right = eyeballs(assets, r)
    eye_y = left.center[1]
    c = head_center_rest(assets, r)
    x, y, z = r[:, 0], r[:, 1] - eye_y, r[:, 2] - c[2]  # y relative to the eyes, z to the head centre
    ax = np.abs(x)
    w: dict[str, np.ndarray] = {}
    w["lips"] = np.clip(assets.masks["lips"] * 1.5, 0, 1) * body
    w["mouth_inside"] = assets.masks["inside-mouth"] * body
    # brows: an arch above each eye
    arch = 0.016 + 0.006 * (1.0 - ((ax - 0.03) / 0.03) ** 2).clip(0, 1)
    w["brows"] = body * _smooth_box(ax, 0.01, 0.052, 0.006) * np.exp(-(((y - arch) / 0.0045) ** 2)) * (z > 0.03)
    front = (z > 0.02).astype(float)
    # beard: jaw and chin below the mouth corners, cheeks below the cheekbones, neck top
    w["beard"] = body * front * _smooth_box(y, -0.125, -0.045, 0.02) * _smooth_box(ax, -1, 0.075, 0.02) * (1 - w["lips"])
    w["moustache"] = body * front * _smooth_box(y, -0.075, -0.058, 0.006) * _smooth_box(ax, -1, 0.024, 0.008) * (1 - w["lips"])
    w["blush"] = body * front * np.exp(-(((ax - 0.045) / 0.018) ** 2 + ((y + 0.03) / 0.018) ** 2))
    # freckles: cheeks and the bridge of the nose, fading onto the forehead
    w["freckles"] = body * front * np.clip(np.exp(-(((ax - 0.03) / 0.035) ** 2 + ((y + 0.025) / 0.022) ** 2))
                                           + 0.3 * _smooth_box(y, 0.01, 0.07, 0.02) * (ax < 0.05), 0, 1)
    # redder skin over the nose and ears (thin skin, blood near the surface); darker eye sockets;
    # an oily T-zone (forehead centre and nose) that shines more
    w["nose"] = body * front * np.exp(-((x / 0.012) ** 2 + ((y + 0.04) / 0.015) ** 2))
    w["ears"] = np.clip(assets.masks["ears"] * 1.2, 0, 1) * body
    w["socket"] = body * front * np.exp(-(((ax - 0.033) / 0.016) ** 2 + ((y + 0.014) / 0.008) ** 2))  # under the eyes
    w["tzone"] = body * front * np.exp(-((x / 0.022) ** 2)) * _smooth_box(y, -0.06, 0.08, 0.02)
    # scalp: above a hairline that is high at the front and low at the nape, not over the ears
    hairline = np.where(z > 0.0, 0.045 + 0.02 * (z / 0.1).clip(0, 1), 0.045 - 0.11 * (-z / 0.09).clip(0, 1))
    ear = _smooth_box(ax, 0.06, 1, 0.01) * _smooth_box(y, -0.06, 0.03, 0.01) * (z < 0.03)
    w["scalp"] = body * np.clip((y - hairline) / 0.012 + 0.5, 0, 1) * (1 - ear) * (r[:, 1] > 0.60)
    # cloth: the bust below a neckline (rest height 0.585 m at the sides, lower at the front)
    neckline = 0.585 - 0.03 * (r[:, 2] > 0.02) * np.exp(-((x / 0.05) ** 2))
    w["cloth"] = body * (r[:, 1] < neckline).astype(float)
    face = body & (y > -0.13) & (y < 0.05) & (ax < 0.07) & (z > 0.04)
    idx = np.nonzero(body)[0]
    land = {
        "nose_tip": int(idx[np.argmax(np.where(np.abs(r[idx, 1] - (eye_y - 0.035)) < 0.02, r[idx, 2], -1))]),
        "chin": int(idx[np.argmin(np.where((np.abs(r[idx, 0]) < 0.004) & (r[idx, 2] > c[2] + 0.04), r[idx, 1], 9))]),
        "brow_mid": int(idx[np.argmax(np.where((np.abs(r[idx, 0]) < 0.004) & (np.abs(r[idx, 1] - eye_y - 0.02) < 0.006), r[idx, 2], -1))]),
    }
    lip = np.nonzero(w["lips"] > 0.5)[0]
    land["mouth_l"] = int(lip[np.argmax(r[lip, 0])])
    land["mouth_r"] = int(lip[np.argmin(r[lip, 0])])
    land["ear_l"] = int(idx[np.argmax(np.where(np.abs(r[idx, 1] - eye_y) < 0.02, r[idx, 0], -9))])
    land["ear_r"] = int(idx[np.argmin(np.where(np.abs(r[idx, 1] - eye_y) < 0.02, r[idx, 0], 9))])
    # eye corners: the ends of the lid margin, the ring of skin vertices tucked inside the eyeball
    # (nearer its centre than its radius); inner = towards the nose (MediaPipe 133 / 362)
    for name, eye in (("l", left), ("r", right)):
        ring = idx[np.linalg.norm(r[idx] - eye.center, axis=1) < eye.radius]
        nasal = np.abs(r[ring, 0])
        land[f"eye_{name}_inner"] = int(ring[np.argmin(nasal)])
        land[f"eye_{name}_outer"] = int(ring[np.argmax(nasal)])
    return Regions(weights={k: v.astype(np.float32) for k, v in w.items()}, landmarks=land, face_vertices=np.nonzero(face)[0])
