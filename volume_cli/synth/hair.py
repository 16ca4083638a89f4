"""Hair as cards: ribbons grown from roots on the scalp, textured in the shader as several see-through
strands (alpha from the strand pattern, tapering to the tip), and glasses as swept tubes.

All geometry here is built in the REST frame (metres, +y up, +z forward) on the morphed mesh and
moved with it.
"""

from __future__ import annotations

import numpy as np

FLYAWAY_FRACTION = 0.04  # of the outer layer's cards


def _ellipsoid(points: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Semi-axes [3] of an axis-aligned ellipsoid around ``center`` enclosing most of ``points``."""
    return np.percentile(np.abs(points - center), 98, axis=0) + 1e-3


def _push_out(p: np.ndarray, center: np.ndarray, axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project points inside the ellipsoid onto its surface; also return the outward normals [N, 3]."""
    q = (p - center) / axes
    r = np.linalg.norm(q, axis=-1, keepdims=True)
    inside = r < 1.0
    q = np.where(inside, q / np.maximum(r, 1e-9), q)
    n = q / axes
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    return center + q * axes, n


def hair_cards(
    rng: np.random.Generator,
    vertices: np.ndarray,
    triangles: np.ndarray,
    scalp: np.ndarray,
    head_center: np.ndarray,
    gravity: np.ndarray,
    *,
    length: float,
    curl: float,
    count: int,
) -> tuple[np.ndarray, ...]:
    """Cards for a hairstyle, in three layers (inner cards darker: light reaches them less).

    vertices [V, 3] and triangles [T, 3] of the morphed body (rest frame); scalp [V] weights;
    gravity [3] unit vector in the rest frame. Returns positions [M, 3], normals [M, 3], tangents
    [M, 3] (unit, root to tip), uv [M, 2] (u across the card, v from root 0 to tip 1), card seed [M],
    shade [M] (albedo factor), density [M] (0 see-through strands .. 1 a full clump), triangles [K, 3].
    """
    tri_scalp = scalp[triangles].mean(axis=1) > 0.5
    tris = triangles[tri_scalp]
    if len(tris) == 0 or count == 0 or length <= 0:
        return (np.zeros((0, 3)),) * 3 + (np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 3), np.int32))
    p = vertices[tris]
    cross = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    pick = rng.choice(len(tris), size=count, p=area / area.sum())
    b = rng.dirichlet([1, 1, 1], size=count)
    roots = np.einsum("nk,nkd->nd", b, p[pick])
    head_pts = vertices[np.unique(tris)]
    axes = _ellipsoid(head_pts, head_center)

    layers = 3
    layer = rng.integers(0, layers, size=count)
    margin = 1.0 + 0.02 + 0.03 * layer * min(1.0, length / 0.1) + 0.04 * curl * min(1.0, length / 0.1)
    ax_n = axes[None] * margin[:, None]
    segments = 10 if length > 0.1 else 6
    # varied lengths (layered cuts): the outer layer longest, inner ones shorter and more varied
    step = length / segments * rng.uniform(0.6, 1.15, size=count) * (0.85 + 0.075 * layer)
    seed = rng.random(count)

    # initial direction: away from the face (combed back and to a side part), along the scalp
    _, n0 = _push_out(roots, head_center, axes)
    part_x = head_center[0] + rng.uniform(-0.03, 0.03)
    away = np.stack([np.sign(roots[:, 0] - part_x) * 0.6, np.full(count, 0.2), -np.ones(count)], axis=1)
    # a few flyaways, only on the outer layer: more random directions
    fly = (layer == layers - 1) & (rng.random(count) < FLYAWAY_FRACTION)
    d = n0 * 0.3 + away + rng.normal(0, 1, (count, 3)) * np.where(fly, 0.45, 0.12)[:, None]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    stiffness = 0.75 if length < 0.1 else 0.55

    pts = [roots + n0 * 0.002]
    normals = [n0]
    cur = pts[0]
    for k in range(segments):
        # short hair hugs the head (tangential), long hair falls with gravity after leaving the skull
        d = stiffness * d + (1 - stiffness) * gravity[None] * (0.4 + 1.2 * k / segments)
        _, nrm = _push_out(cur, head_center, ax_n)
        d = d - np.minimum(0.0, (d * nrm).sum(1, keepdims=True)) * nrm  # never point into the head
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        nxt = cur + d * step[:, None]
        nxt, nrm = _push_out(nxt, head_center, ax_n)
        pts.append(nxt)
        normals.append(nrm)
        cur = nxt
    pts = np.stack(pts, axis=1)  # [N, S+1, 3]
    normals = np.stack(normals, axis=1)

    if curl > 0.05:  # helical offsets growing from the root
        tangent = np.gradient(pts, axis=1)
        tangent /= np.maximum(np.linalg.norm(tangent, axis=2, keepdims=True), 1e-9)
        b1 = np.cross(tangent, normals)
        b1 /= np.maximum(np.linalg.norm(b1, axis=2, keepdims=True), 1e-9)
        b2 = np.cross(tangent, b1)
        s = np.linspace(0, 1, segments + 1)[None, :]
        period = rng.uniform(0.015, 0.04)
        phase = rng.uniform(0, 2 * np.pi, size=(count, 1)) + s * length / period * 2 * np.pi
        amp = curl * min(0.02, 0.15 * length) * s[..., None]
        pts = pts + amp * (np.cos(phase)[..., None] * b1 + np.sin(phase)[..., None] * b2)

    tangent = np.gradient(pts, axis=1)
    side = np.cross(tangent, normals)
    side /= np.maximum(np.linalg.norm(side, axis=2, keepdims=True), 1e-9)
    width = (rng.uniform(0.011, 0.021, size=count) * (1.0 if length > 0.1 else 0.8) * np.where(fly, 0.5, 1.0))[:, None, None]
    taper = (1.0 - 0.5 * np.linspace(0, 1, segments + 1))[None, :, None]
    left = pts - side * width * taper / 2
    right = pts + side * width * taper / 2
    positions = np.stack([left, right], axis=2).reshape(-1, 3)  # [N*(S+1)*2, 3]
    nrm = np.repeat(normals, 2, axis=1).reshape(-1, 3)
    v = np.linspace(0, 1, segments + 1)
    uv = np.stack(np.broadcast_arrays(np.array([0.0, 1.0])[None, None, :], v[None, :, None]), axis=-1)
    uv = np.broadcast_to(uv, (count, segments + 1, 2, 2)).reshape(-1, 2)
    seeds = np.repeat(seed, (segments + 1) * 2)
    tangents = np.repeat(tangent / np.maximum(np.linalg.norm(tangent, axis=2, keepdims=True), 1e-9), 2, axis=1).reshape(-1, 3)
    shade = np.repeat(0.7 + 0.3 * layer / (layers - 1), (segments + 1) * 2)
    density = np.repeat(1.0 - layer / (layers - 1), (segments + 1) * 2)  # inner layer fullest
    base = (np.arange(count) * (segments + 1) * 2)[:, None] + np.arange(segments)[None, :] * 2
    quads = np.stack([base, base + 1, base + 3, base, base + 3, base + 2], axis=-1).reshape(-1, 3)
    return positions, nrm, tangents, uv, seeds, shade, density, quads.astype(np.int32)


def tube(path: np.ndarray, radius: float, *, closed: bool, sides: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tube of ``radius`` around a polyline [K, 3]: positions, normals [K*sides, 3], triangles."""
    k = len(path)
    t = np.roll(path, -1, 0) - np.roll(path, 1, 0) if closed else np.gradient(path, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    ref = np.where(np.abs(t[:, 1:2]) < 0.9, np.array([[0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))
    b1 = np.cross(t, ref)
    b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
    b2 = np.cross(t, b1)
    ang = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    nrm = np.cos(ang)[None, :, None] * b1[:, None] + np.sin(ang)[None, :, None] * b2[:, None]
    pos = path[:, None] + radius * nrm
    rings = k if closed else k - 1
    i = np.arange(rings)[:, None]
    j = np.arange(sides)[None, :]
    a = i * sides + j
    b = i * sides + (j + 1) % sides
    c = ((i + 1) % k) * sides + (j + 1) % sides
    d = ((i + 1) % k) * sides + j
    tris = np.stack([a, b, c, a, c, d], axis=-1).reshape(-1, 3)
    return pos.reshape(-1, 3), nrm.reshape(-1, 3), tris.astype(np.int32)


def glasses_geometry(params: dict, eye_left: np.ndarray, eye_right: np.ndarray, eye_radius: float,
                     ear_left: np.ndarray, ear_right: np.ndarray) -> dict[str, tuple]:
    """Frames (tubes) and lenses (fans) in the rest frame. Returns {"frame": (pos, nrm, tris),
    "lens": (pos, nrm, tris)}."""
    a, b, e = params["half_width"], params["half_height"], params["roundness"]
    rim = params["rim"]
    th = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    cos, sin = np.cos(th), np.sin(th)
    outline = np.stack([a * np.sign(cos) * np.abs(cos) ** (2 / e), b * np.sign(sin) * np.abs(sin) ** (2 / e)], axis=1)
    frame_p, frame_n, frame_t, lens_p, lens_n, lens_t = [], [], [], [], [], []
    ends = []
    for eye, side in ((eye_left, 1.0), (eye_right, -1.0)):
        center = eye + np.array([side * 0.002, 0.002, eye_radius + 0.011])
        wrap = np.deg2rad(6.0) * side  # lenses turned slightly toward the temples
        x = outline[:, 0]
        pts = np.stack([center[0] + x * np.cos(wrap), center[1] + outline[:, 1], center[2] - x * np.sin(wrap)], axis=1)
        p, n, t = tube(pts, rim, closed=True)
        frame_t.append(t + sum(len(q) for q in frame_p)); frame_p.append(p); frame_n.append(n)
        fan_p = np.concatenate([center[None], pts])
        fan_n = np.tile([0.0, 0.0, 1.0], (len(fan_p), 1))
        m = len(pts)
        fan_t = np.stack([np.zeros(m, int), 1 + np.arange(m), 1 + (np.arange(m) + 1) % m], axis=1)
        lens_t.append(fan_t + sum(len(q) for q in lens_p)); lens_p.append(fan_p); lens_n.append(fan_n)
        inner = pts[np.argmin(side * pts[:, 0])]
        outer = pts[np.argmax(side * pts[:, 0])]
        ends.append((inner, outer))
    bridge = np.linspace(ends[0][0], ends[1][0], 8) + np.array([0, -0.004, 0.002]) * np.sin(np.linspace(0, np.pi, 8))[:, None]
    for path in [bridge] + [
        np.stack([outer, outer + np.array([s * 0.006, 0, -0.01]), np.array([ear[0] + s * 0.004, outer[1] + 0.004, ear[2] - 0.005])])
        for (inner, outer), ear, s in ((ends[0], ear_left, 1.0), (ends[1], ear_right, -1.0))
    ]:
        p, n, t = tube(path, rim * 0.8, closed=False)
        frame_t.append(t + sum(len(q) for q in frame_p)); frame_p.append(p); frame_n.append(n)
    return {
        "frame": (np.concatenate(frame_p), np.concatenate(frame_n), np.concatenate(frame_t).astype(np.int32)),
        "lens": (np.concatenate(lens_p), np.concatenate(lens_n), np.concatenate(lens_t).astype(np.int32)),
    }
