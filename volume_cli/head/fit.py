"""Fitting the head model to MediaPipe's metric landmarks.

Observed: landmarks P [L, 3] in metres in a camera frame (``face.landmarks_to_camera``, or a
crop's ``CropBatch.landmarks``): their image position is measured, their depth is MediaPipe's
learned guess (off by 7-15 mm on our synthetic people against 1-3 mm in the image). Model:
M(a, b) = m0 + A a + B b on the same L points (``HeadModel.landmark_bases``), posed as
X = s R M + t. Per landmark (weighted by how steady its point is: head/build.py's spread) the
residual is

    ((X_x / X_z - P_x / P_z) P_z,  (X_y / X_z - P_y / P_z) P_z,  DEPTH_WEIGHT (X_z - P_z))

i.e. the reprojection error in metres at the landmark's depth, and a weak pull towards
MediaPipe's depth (which is also what fixes the head's distance, as the track does). Minimised
with priors |a|^2 (unit-variance identity components), |b / EXPRESSION_STD|^2 and, warm-started
from the previous frame, |b - b_prev|^2 / TEMPORAL_STD^2; residuals in units of SIGMA_M. A few
Gauss-Newton steps over (rotation, log-scale, translation, expression), with face-unit weights
kept in [0, 1]; the identity is a linear solve over all frames at the current poses. Started from
a closed-form similarity (Umeyama) of the 3D points.

One identity a is fitted per clip (jointly over up to IDENTITY_FRAMES frames spread over it) or
per still image; each frame then fits pose and expression with a fixed. A frame whose residual or
scale says the head does not explain it (a hand over the face, a profile the mesh got wrong, a
cartoon) comes back with ``ok=False`` and a reason; the predictor uses the ellipsoid there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from volume_cli.head.model import RELIABLE_SPREAD_M, HeadModel

SIGMA_M = 0.008  # landmark noise and model error together: tuned on 16 people outside the evaluation set
DEPTH_WEIGHT = 0.05
# ... but the landmarks' mean depth is held to MediaPipe's (to about this, metres): that depth is
# where convert placed the head, and MediaPipe's own mesh, which the predictor feathers into the
# fitted head, lies there. Without it a larger head farther away reprojects as well (the 2D
# terms fix only size over distance) and the two surfaces part by centimetres at their seam.
CENTROID_SIGMA_M = 0.001
EXPRESSION_STD = 0.3
TEMPORAL_STD = 0.15  # how far a face unit's weight moves between consecutive frames
IDENTITY_FRAMES = 24
IDENTITY_ROUNDS = 4
FRAME_STEPS = 4
# The fit is refused when the reliable landmarks sit this far (RMS reprojection, metres at their
# depth) from the fitted head or when the head had to be scaled beyond these bounds to reach them
# (the landmarks' metric size comes from an assumed eye spacing, so a plausible face lands within
# ~25 % of the model's size).
MAX_RESIDUAL_M = 0.006
SCALE_RANGE = (0.75, 1.35)
MIN_LANDMARK_WEIGHT = 0.02


@dataclass
class HeadFit:
    """One frame's fitted head: camera = scale * R @ head + t.

    identity [K], expression [E] (weights of ``HeadModel.expression_names``), R [3, 3], t [3];
    residual_m: RMS reprojection distance (metres at the landmarks' depth) of the reliable
    landmarks to the fitted head; ok False: do not use it (``reason`` says why)."""

    identity: np.ndarray
    expression: np.ndarray
    scale: float
    R: np.ndarray
    t: np.ndarray
    residual_m: float
    ok: bool = True
    reason: str = ""

    def in_frame(self, R_cam: np.ndarray) -> "HeadFit":
        """The same head seen from a camera turned by R_cam [3, 3] about the same centre (the
        original camera -> a crop's virtual camera: ``x_virtual = R_cam @ x``)."""
        return dataclasses.replace(self, R=R_cam @ self.R, t=R_cam @ self.t)

    def vertices(self, model: HeadModel) -> np.ndarray:
        """The posed head's vertices [V, 3] in the landmarks' camera frame."""
        return self.scale * model.vertices(self.identity, self.expression) @ self.R.T + self.t

    def as_json(self, model: HeadModel) -> dict:
        return {
            "ok": self.ok, **({"reason": self.reason} if not self.ok else {}),
            "residual_mm": round(1000 * self.residual_m, 3), "scale": round(self.scale, 5),
            "rotation": np.round(self.R, 6).tolist(), "translation_m": np.round(self.t, 6).tolist(),
            "expression": {n: round(float(w), 4) for n, w in zip(model.expression_names, self.expression) if w > 0.01},
        }


def identity_frames(count: int) -> np.ndarray:
    """Which of ``count`` frames a clip's identity is fitted to: at most IDENTITY_FRAMES, spread
    evenly over the clip (indices, increasing)."""
    return np.unique(np.linspace(0, count - 1, min(IDENTITY_FRAMES, count)).round().astype(int))


def smooth_fits(fits: list[HeadFit], sigma_frames: float) -> list[HeadFit]:
    """Frame-by-frame fits of one clip (consecutive frames, refused ones included) smoothed with a
    centred Gaussian of ``sigma_frames`` (the slow reference of ``track.PackedFits.smooth``, which
    convert runs): pose (rotations averaged, then the nearest rotation),
    scale and expression; refused frames neither move nor pull their neighbours. MediaPipe's
    landmarks jitter from frame to frame, and the whole head would follow them."""
    from volume_cli.face import _centred_average

    packed = [np.concatenate([f.R.ravel(), f.t, [f.scale], f.expression]) if f.ok else None for f in fits]
    out = []
    for f, p in zip(fits, _centred_average(packed, sigma_frames)):
        if p is None:
            out.append(f)
            continue
        U, _, Vt = np.linalg.svd(p[:9].reshape(3, 3))
        R = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
        out.append(dataclasses.replace(f, R=R, t=p[9:12], scale=float(p[12]), expression=np.clip(p[13:], 0.0, 1.0)))
    return out


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares s, R, t with target ~ s R source + t (Umeyama 1991); points [N, 3]."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    U, S, Vt = np.linalg.svd(xt.T @ xs / len(source))
    sign = np.ones(3)
    if np.linalg.det(U @ Vt) < 0:
        sign[2] = -1.0  # a reflection would fit better; the nearest rotation keeps handedness
    R = U @ np.diag(sign) @ Vt
    s = float((S * sign).sum() / (xs**2).sum(1).mean())
    return s, R, mu_t - s * R @ mu_s


def rotation_from_vector(w: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation [3, 3] by |w| radians about w [3]."""
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return np.eye(3)
    k = w / angle
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * Kx + (1 - np.cos(angle)) * Kx @ Kx


def _skew(v: np.ndarray) -> np.ndarray:
    """[N, 3] -> [N, 3, 3] cross-product matrices."""
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def _bounded_step(H: np.ndarray, g: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """The Newton step -H^-1 g over (7 pose parameters, E face units) with each unit kept in
    [0, 1]: units the step would push out of range are held at the bound and the rest re-solved
    (a few rounds of an active set), so that the answer does not depend on where it started."""
    n = len(g)
    free = np.ones(n, bool)
    step = np.zeros(n)
    lo = np.r_[np.full(7, -np.inf), -expression]
    hi = np.r_[np.full(7, np.inf), 1.0 - expression]
    for _ in range(4):
        fixed = ~free
        step = np.where(fixed, np.clip(step, lo, hi), 0.0)
        rhs = -g[free] - H[np.ix_(free, fixed)] @ step[fixed]
        step[free] = np.linalg.solve(H[np.ix_(free, free)], rhs)
        out = free & ((step < lo - 1e-9) | (step > hi + 1e-9))
        if not out.any():
            break
        step[out] = np.clip(step[out], lo[out], hi[out])
        free &= ~out
    return np.clip(step, lo, hi)


@dataclass
class _Frame:
    P: np.ndarray  # [l, 3] observed reliable landmarks
    expression: np.ndarray
    scale: float = 1.0
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))


class HeadFitter:
    """Fits ``model`` to landmark sets; holds the clip's identity and the previous frame."""

    def __init__(self, model: HeadModel) -> None:
        self.model = model
        m0, A, B = model.landmark_bases
        # Every landmark that was ever lifted onto the head, weighted by how steady it is: the
        # reliable ones fully, the sliding contour by (RELIABLE_SPREAD_M / its spread)^2 (it still
        # says where the cheek's outline is: 4 % less vertex error and steadier novel views than
        # fitting the reliable ones alone, on synthetic people).
        keep = model.landmark_spread_m < 0.5
        weight = np.clip((RELIABLE_SPREAD_M / np.maximum(model.landmark_spread_m[keep], 1e-6)) ** 2, MIN_LANDMARK_WEIGHT, 1.0)
        self._m0, self._A, self._B = m0[keep], A[:, keep], B[:, keep]  # [l, 3], [K, l, 3], [E, l, 3]
        self._keep = keep
        self._sqrt_w = np.sqrt(weight)[:, None]
        self._reliable = model.landmark_reliable[keep]
        self.identity = np.zeros(len(A))
        self._previous: HeadFit | None = None

    def _shape(self, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
        return self._m0 + np.tensordot(identity, self._A, 1) + np.tensordot(expression, self._B, 1)

    def _weighted(self, X: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, J = self._residual(X, P)
        return r * self._sqrt_w, J * self._sqrt_w[:, :, None]

    @staticmethod
    def _residual(X: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals [l, 3] (units of SIGMA_M) of posed points X against P, and their Jacobian
        with respect to X [l, 3, 3]."""
        z, zx = P[:, 2:3], X[:, 2:3]
        r = np.concatenate([(X[:, :2] / zx - P[:, :2] / z) * z, DEPTH_WEIGHT * (X[:, 2:] - z)], 1) / SIGMA_M
        J = np.zeros((len(X), 3, 3))
        J[:, 0, 0] = J[:, 1, 1] = (z / zx)[:, 0]
        J[:, :2, 2] = -X[:, :2] * (z / zx**2)
        J[:, 2, 2] = DEPTH_WEIGHT
        return r, J / SIGMA_M

    @staticmethod
    def _centroid(X: np.ndarray, P: np.ndarray, dX: np.ndarray) -> tuple[float, np.ndarray]:
        """The mean-depth residual (units of 1) and its gradient over the parameters of dX [l, 3, p]."""
        return float((X[:, 2].mean() - P[:, 2].mean()) / CENTROID_SIGMA_M), dX[:, 2].mean(0) / CENTROID_SIGMA_M

    def _pose_expression(self, f: _Frame, identity: np.ndarray, previous: np.ndarray | None, steps: int) -> None:
        """Gauss-Newton over (rotation, log-scale, translation, expression) for one frame."""
        E = len(self._B)
        base = self._m0 + np.tensordot(identity, self._A, 1)
        prior = np.r_[np.zeros(7), np.full(E, 1 / EXPRESSION_STD**2 + (0 if previous is None else 1 / TEMPORAL_STD**2))]
        for _ in range(steps):
            M = base + np.tensordot(f.expression, self._B, 1)
            RM = f.scale * M @ f.R.T  # [l, 3]
            r, Jx = self._weighted(RM + f.t, f.P)
            # dX / d(params): rotation (left perturbation) -[sRM]x, log-scale sRM, translation I,
            # expression s R B_e.
            dX = np.concatenate([-_skew(RM), RM[..., None], np.broadcast_to(np.eye(3), (len(RM), 3, 3)),
                                 (self._B @ (f.scale * f.R).T).transpose(1, 2, 0)], axis=2)  # [l, 3, 7 + E]
            J = np.matmul(Jx, dX).reshape(-1, 7 + E)
            rc, Jc = self._centroid(RM + f.t, f.P, dX)
            H = J.T @ J + np.outer(Jc, Jc) + np.diag(prior)
            g = J.T @ r.reshape(-1) + Jc * rc
            g[7:] += f.expression / EXPRESSION_STD**2
            if previous is not None:
                g[7:] += (f.expression - previous) / TEMPORAL_STD**2
            step = _bounded_step(H, g, f.expression)
            f.R = rotation_from_vector(step[:3]) @ f.R
            f.scale *= float(np.exp(step[3]))
            f.t = f.t + step[4:7]
            f.expression = np.clip(f.expression + step[7:], 0.0, 1.0)

    def _identity_step(self, frames: list[_Frame], identity: np.ndarray) -> np.ndarray:
        """One Gauss-Newton step of the shared identity at the frames' current poses."""
        K = len(self._A)
        H = np.eye(K)
        g = identity.copy()
        for f in frames:
            X = f.scale * self._shape(identity, f.expression) @ f.R.T + f.t
            r, Jx = self._weighted(X, f.P)
            dX = (self._A @ (f.scale * f.R).T).transpose(1, 2, 0)  # [l, 3, K]
            J = np.matmul(Jx, dX).reshape(-1, K)
            rc, Jc = self._centroid(X, f.P, dX)
            H += J.T @ J + np.outer(Jc, Jc)
            g += J.T @ r.reshape(-1) + Jc * rc
        return identity - np.linalg.solve(H, g)

    def _start(self, P: np.ndarray, identity: np.ndarray, expression: np.ndarray) -> _Frame:
        f = _Frame(P=P, expression=expression)
        f.scale, f.R, f.t = similarity(self._shape(identity, expression), P)
        return f

    # -- public -----------------------------------------------------------------------------------

    def fit_identity(self, landmark_sets: list[np.ndarray]) -> np.ndarray:
        """One identity [K] for the person in all of ``landmark_sets`` ([478, 3] each, any camera
        frames, metres); kept for the frames that follow. Up to IDENTITY_FRAMES sets, spread evenly."""
        if not landmark_sets:
            raise ValueError("fit_identity needs at least one landmark set")
        identity = np.zeros(len(self._A))
        frames = [self._start(np.asarray(landmark_sets[i], np.float64)[self._keep], identity, np.zeros(len(self._B)))
                  for i in identity_frames(len(landmark_sets))]
        for _ in range(IDENTITY_ROUNDS):
            for f in frames:
                self._pose_expression(f, identity, None, 2)
            identity = self._identity_step(frames, identity)
        self.identity = identity
        self._previous = None
        return identity

    def fit_frame(self, landmarks: np.ndarray, *, warm: bool = True) -> HeadFit:
        """Pose and expression for one frame's landmarks [478, 3] with the current identity;
        ``warm``: start from (and lean towards) the previous frame's expression."""
        prev = self._previous if warm else None
        P = np.asarray(landmarks, np.float64)[self._keep]
        # The pose starts afresh each frame (the crop camera turns between frames, so the previous
        # pose is in another frame); the expression starts from, and leans towards, the last one.
        f = self._start(P, self.identity, prev.expression.copy() if prev is not None else np.zeros(len(self._B)))
        steps = FRAME_STEPS
        self._pose_expression(f, self.identity, None if prev is None else prev.expression, steps)
        r, _ = self._residual(f.scale * self._shape(self.identity, f.expression) @ f.R.T + f.t, P)
        residual = float(np.sqrt((r[self._reliable, :2] ** 2).sum(1).mean())) * SIGMA_M
        fit = HeadFit(identity=self.identity, expression=f.expression, scale=f.scale, R=f.R, t=f.t, residual_m=residual)
        if not np.isfinite(residual) or residual > MAX_RESIDUAL_M:
            fit.ok, fit.reason = False, f"landmarks {1000 * residual:.1f} mm from the fitted head"
        elif not SCALE_RANGE[0] <= f.scale <= SCALE_RANGE[1]:
            fit.ok, fit.reason = False, f"head scaled by {f.scale:.2f} to fit"
        self._previous = fit if fit.ok else None
        return fit

    def fit_still(self, landmarks: np.ndarray) -> HeadFit:
        """A still image: its own identity, then its pose and expression."""
        self.fit_identity([landmarks])
        return self.fit_frame(landmarks, warm=False)
