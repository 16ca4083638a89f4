"""The geometric baseline predictor: no learning, the bar every trained model must clear.

Per crop pixel, one Gaussian on the pixel's ray at a depth taken from
  * the MediaPipe face mesh inside the face (its 478 landmarks, rasterised densely over the mesh's
    triangles with perspective-correct depth),
  * the whole head behind it (volume_cli.head: the MakeHuman head fitted to the landmarks) over
    ears, skull, jaw line and neck, feathered into the mesh depth so there is no step at the
    face's edge; hair beyond the skull's outline on a shell over the scalp; the neck and
    shoulders beyond that at the depth of the nearest point of the head's outline,
with opacity from MediaPipe selfie segmentation (background removed, soft edges kept), or, asked
for (``matte=True``, not the default yet), that mask corrected at its outline by the learned
person matte (volume_cli.matte: trained on synthetic people against their true coverage). Where the
head cannot be fitted (``HeadFit.ok`` False) the frame falls back to the older proxy: an ellipsoid
fitted to the landmarks, and a plane at the depth of its silhouette.

The side of the head the camera does not see gets splats too: one on every vertex and edge midpoint
of the fitted head that is hidden in the input view (so the input view is untouched), coloured from the clip's
own other frames, the mirrored side or the nearest seen skin or hair (head/texture.py).

The second Gaussian of each pixel is a wider "backing" splat just behind the first: from the input
view it is hidden, but when the splats are seen larger than the crop (a bigger render, a zoom) or
a little from the side, it fills the gaps between the thin front splats.

Colour starts from the pixel and is then refined so that re-rendering from the input camera
reproduces the crop: overlapping splats mix their neighbours' colours (renderers dilate every
footprint by 0.3 px^2), and since a render is linear in the colours, a few Richardson steps
c <- c + (crop - render(c)) undo most of that mixing (colour_fit.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from torch import Tensor

from volume_cli import camera
from volume_cli.concurrency import InTurn
from volume_cli.gaussians import Gaussians, matrix_to_quat, rgb_to_sh_dc, sh_dc_to_rgb
from volume_cli.head.model import load_head_model
from volume_cli.head.prior import HeadPrior, subdivided
from volume_cli.head.track import HeadTrack
from volume_cli.head.texture import hidden_side_colours, seen_colours
from volume_cli.predictors.base import GAUSSIANS_PER_PIXEL, CropBatch
from volume_cli.predictors.prior_input import head_masks
from volume_cli.segmentation import PersonSegmenter

# Standard deviation of a pixel's front Gaussian, in crop pixels at its depth: thin, so that with
# the renderers' 0.3 px^2 dilation a pixel is dominated by its own splat (sharp input view).
PIXEL_SIGMA = 0.35
# The backing Gaussian: wide enough to close the gaps between front splats at twice the crop's
# resolution, and far enough behind the front one (metres) that on slanted surfaces it does not
# poke through a neighbour's front splat (at 2 mm the input-view PSNR fell by ~9 dB); near enough
# that at 40 degrees of yaw it shifts only ~2 crop pixels behind the gaps it fills.
BACKING_SIGMA = 0.7
BACKING_BEHIND_M = 0.008
# A pixel's disc may stretch to at most this many pixel widths along a steep surface (a surface
# at ~84 degrees to the view); beyond that it is a silhouette, not a surface to fill.
MAX_STRETCH = 10.0
# Thickness of a disc along its normal, as a fraction of the pixel width: thin, so seen edge-on
# it does not smear.
THIN_FRACTION = 0.1
# Colour refinement steps (each is one CPU render of the crop's front splats; ~0.07 s at
# 256 x 256 on 2 cores). Two steps lift the input-view PSNR inside the head by 8-12 dB on the real
# test photos.
COLOUR_STEPS = 2
FRAME_THREADS = 2  # frames of a batch predicted at once (see predict)
# Opacity ceiling: renderers clamp alpha at 0.999; 0.99 keeps logits finite and well scaled.
MAX_OPACITY = 0.99
# Opacity for unused Gaussians: far below the 1/255 that any renderer draws; the pipeline prunes them.
UNUSED_OPACITY_LOGIT = math.log(1e-6)
# Ellipsoid head proxy in the head's own frame (x to the person's left eye, y down, z into the
# head), metres, for an average adult head (breadth ~0.155, length ~0.195, chin to crown with
# hair ~0.25), centred level with the eyes and this far behind them.
HEAD_RADII_M = np.array([0.078, 0.125, 0.098])
HEAD_CENTER_BEHIND_EYES_M = 0.078
TYPICAL_FACE_WIDTH_M = 0.14  # cheek to cheek (MediaPipe points 234-454) of an average adult
# Feathering of mesh depth into the proxy, in crop pixels (at S = 256).
FEATHER_PX = 8.0
# Inside the face the depth is MediaPipe's mesh (on real faces it is what was trained on real
# faces: the fitted head alone there swept a fringe of hair back over the forehead in side
# views). Where the head meets the mesh their surfaces differ (by 6 mm at the median and 19 mm
# at the 10th percentile on a real photo: MediaPipe's face is flatter); the head is shifted to
# meet the mesh at its edge, the shift fading out over this many crop pixels (at S = 256).
SEAM_PX = 24.0
# The fitted head's depth is blurred by this much (Gaussian sigma, crop pixels at S = 256): its
# steps (an ear over the cheek, the shell's edge over the skull) are where splats of one pixel
# show in front of its neighbour's, which costs input-view PSNR and flickers with the pixel grid.
PROXY_SMOOTH_PX = 6.0
# Person/background threshold on the segmentation confidence below which no splat is kept.
MIN_PERSON = 0.1
# Splats on the unseen side of the head: a disc on each hidden vertex, its standard deviation this
# fraction of the mean length of the vertex's edges (neighbouring discs overlap into a surface).
HIDDEN_SIGMA_FRACTION = 0.6
HIDDEN_OPACITY = 0.98
# A hidden splat is kept only where the input view is opaque (person confidence at least this)
# and only behind both layers of every pixel within HIDDEN_REACH_SIGMAS of its projected size,
# by HIDDEN_BEHIND_M more (metres): the renderers order splats by depth, so one behind a pixel's
# front and backing splats is drawn after them, where less than 1e-4 of the light is left. At a
# soft outline, or where a disc under the chin spreads onto the farther neck, it would show
# (1.1 dB of input-view PSNR on synthetic people without these tests).
HIDDEN_OPAQUE_PERSON = 0.95
HIDDEN_REACH_SIGMAS = 3.0
HIDDEN_BEHIND_M = 0.01
HIDDEN_FADE_M = 0.01


@functools.lru_cache(maxsize=1)
def face_mesh_triangles() -> np.ndarray:
    """Triangles [T, 3] of the MediaPipe face mesh, recovered from its published edge list as the
    3-cycles of the edge graph (the package lists edges, not faces)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    neighbours: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    tris = set()
    for a, nb in neighbours.items():
        for b in nb:
            if b <= a:
                continue
            for c in nb & neighbours[b]:
                if c > b:
                    tris.add((a, b, c))
    return np.array(sorted(tris), dtype=np.int64)


def rasterize_depth(pixels: np.ndarray, depth: np.ndarray, triangles: np.ndarray, size: int) -> np.ndarray:
    """Nearest z-depth of a triangle mesh at every pixel centre (the slow reference of
    ``geometric_kernels.rasterize_depth``, which the predictor runs).

    pixels [V, 2] projected vertices (pixel centres at +0.5), depth [V] their z (> 0),
    triangles [T, 3]. Returns [size, size] float64, +inf where no triangle covers the pixel.
    Inverse depth is interpolated linearly in the image, which is exact for planar triangles.
    """
    a, b, c = (pixels[triangles[:, i]] for i in range(3))  # [T, 2] each
    inv = 1.0 / depth[triangles]  # [T, 3]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = np.abs(area) > 1e-9
    a, b, c, inv, area = a[keep], b[keep], c[keep], inv[keep], area[keep]
    lo = np.floor(np.minimum(np.minimum(a, b), c) - 0.5).astype(np.int64)  # first candidate pixel
    hi = np.ceil(np.maximum(np.maximum(a, b), c) - 0.5).astype(np.int64)
    extent = int((hi - lo).max(initial=0)) + 1
    best = np.zeros(size * size)  # max inverse depth per pixel; 0 = nothing
    block = 8
    offs = np.arange(block)
    for oy in range(0, extent, block):
        for ox in range(0, extent, block):
            px = lo[:, None, None, 0] + ox + offs[None, None, :]  # [T, 1, B]
            py = lo[:, None, None, 1] + oy + offs[None, :, None]  # [T, B, 1]
            x, y = px + 0.5, py + 0.5
            # Barycentric weights of the pixel centre (signed areas over the triangle's area).
            wb = ((x - a[:, 0, None, None]) * (c[:, 1, None, None] - a[:, 1, None, None])
                  - (y - a[:, 1, None, None]) * (c[:, 0, None, None] - a[:, 0, None, None])) / area[:, None, None]
            wc = ((b[:, 0, None, None] - a[:, 0, None, None]) * (y - a[:, 1, None, None])
                  - (b[:, 1, None, None] - a[:, 1, None, None]) * (x - a[:, 0, None, None])) / area[:, None, None]
            wa = 1.0 - wb - wc
            inside = (wa >= -1e-9) & (wb >= -1e-9) & (wc >= -1e-9)
            inside &= (px >= 0) & (px < size) & (py >= 0) & (py < size)
            value = wa * inv[:, 0, None, None] + wb * inv[:, 1, None, None] + wc * inv[:, 2, None, None]
            t_idx = np.nonzero(inside)
            flat = (py + 0 * px)[t_idx] * size + (px + 0 * py)[t_idx]
            np.maximum.at(best, flat, value[t_idx])
    with np.errstate(divide="ignore"):
        return np.where(best > 0, 1.0 / best, np.inf).reshape(size, size)


def head_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Head-aligned axes and centre from metric landmarks [478, 3] (any camera frame).

    Returns (axes [3, 3] with rows x to the person's left eye, y down the face, z into the head;
    centre [3]; scale relative to an average face width)."""
    from volume_cli.face import CHEEK_LEFT, CHEEK_RIGHT, CHIN, FOREHEAD, LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS

    left = landmarks[list(LEFT_EYE_CORNERS)].mean(0)
    right = landmarks[list(RIGHT_EYE_CORNERS)].mean(0)
    x = left - right
    x /= np.linalg.norm(x)
    down = landmarks[CHIN] - landmarks[FOREHEAD]
    y = down - x * (down @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    centre = (left + right) / 2 + HEAD_CENTER_BEHIND_EYES_M * z
    scale = np.linalg.norm(landmarks[CHEEK_LEFT] - landmarks[CHEEK_RIGHT]) / TYPICAL_FACE_WIDTH_M
    return np.stack([x, y, z]), centre, float(np.clip(scale, 0.8, 1.25))


def ellipsoid_depth(rays: np.ndarray, axes: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """z-depth where camera rays first hit an ellipsoid, +inf where they miss.

    rays [..., 3] from the camera centre (any length), axes [3, 3] (rows = ellipsoid axes in camera
    coordinates), centre [3], radii [3]. Solves |A (t d - c)|^2 = 1 with A = diag(1/r) axes.
    """
    A = axes / radii[:, None]
    d = rays @ A.T  # [..., 3]
    o = -(A @ centre)  # camera centre in the unit-sphere frame
    qa = (d * d).sum(-1)
    qb = 2 * (d @ o)
    qc = o @ o - 1.0
    disc = qb * qb - 4 * qa * qc
    hit = disc >= 0
    t = (-qb - np.sqrt(np.where(hit, disc, 0.0))) / (2 * qa)
    hit &= t > 0
    return np.where(hit, t * rays[..., 2], np.inf)


def surface_aligned(points: np.ndarray, focal: float, sigma_px: float) -> tuple[Tensor, Tensor]:
    """Orientation and size of each pixel's Gaussian as a disc lying on the surface (the slow
    reference of ``geometric_kernels.surface_aligned``, which the predictor runs).

    points [S, S, 3]: the surface point of every crop pixel; focal: the crop's focal length, pixels. The surface's tangents per pixel step,
    a = dP/du and b = dP/dv (central differences), span the patch a pixel sees; the covariance
    sigma^2 (a a^T + b b^T) + thin^2 n n^T projects back to sigma^2 I pixels^2 in the input view,
    and from the side it stretches along a steep surface instead of leaving gaps between
    neighbours. Stretching is capped at MAX_STRETCH pixel widths (the surface near a silhouette is
    almost parallel to the rays). Returns quats [S*S, 4] (w first) and log-scales [S*S, 3].
    """
    p = torch.from_numpy(points)
    pad = torch.nn.functional.pad(p.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")[0].permute(1, 2, 0)
    a = (pad[1:-1, 2:] - pad[1:-1, :-2]) / 2  # [S, S, 3] per pixel step to the right
    b = (pad[2:, 1:-1] - pad[:-2, 1:-1]) / 2  # per pixel step down
    pixel = p[..., 2:3] / focal  # metres per pixel at that depth (fronto-parallel)

    def capped(t: Tensor) -> Tensor:
        length = t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return t * (length.clamp(max=MAX_STRETCH * pixel) / length)

    a, b = capped(a).reshape(-1, 3), capped(b).reshape(-1, 3)
    # The normal is the null direction of a a^T + b b^T; in the tangent plane the covariance is a
    # 2 x 2 problem with a closed form (no 3 x 3 eigendecomposition per pixel).
    normal = torch.linalg.cross(a, b)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    e1 = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    e2 = torch.linalg.cross(normal, e1)
    # In-plane coordinates of the tangents; M = [[p, r], [r, q]] = sum of their outer products.
    a1, b1, b2 = (a * e1).sum(-1), (b * e1).sum(-1), (b * e2).sum(-1)  # a has no e2 component
    p_, q_, r_ = a1 * a1 + b1 * b1, b2 * b2, b1 * b2
    theta = 0.5 * torch.atan2(2 * r_, p_ - q_)  # angle of M's major axis from e1
    mean, half_gap = (p_ + q_) / 2, torch.sqrt(((p_ - q_) / 2) ** 2 + r_**2)
    major, minor = mean + half_gap, (mean - half_gap).clamp_min(0)
    c, s_ = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    axis1, axis2 = c * e1 + s_ * e2, -s_ * e1 + c * e2  # axis2 = normal x axis1: right-handed
    R = torch.stack([axis1, axis2, normal], dim=-1)  # columns are the Gaussian's axes
    thin = THIN_FRACTION * pixel.reshape(-1)
    log_scales = torch.stack(
        [
            0.5 * (sigma_px**2 * major).clamp_min(1e-20).log(),
            0.5 * (sigma_px**2 * minor).clamp_min(1e-20).log(),
            thin.log(),
        ],
        dim=-1,
    )
    return matrix_to_quat(R).float(), log_scales.float()


@functools.lru_cache(maxsize=1)
def _steps():
    """Where ``rasterize_depth`` and ``surface_aligned`` come from: their compiled twins
    (geometric_kernels, numba, imported on the first prediction), or this module's references
    where numba is not installed (the lent GPU machine, which carries no numba wheel)."""
    import importlib.util
    import sys

    if importlib.util.find_spec("numba") is not None:
        from volume_cli.predictors import geometric_kernels

        return geometric_kernels
    return sys.modules[__name__]


def proxy_depth(landmarks: np.ndarray, K: np.ndarray, rays: np.ndarray, prior: HeadPrior | None = None,
                mesh: np.ndarray | None = None) -> np.ndarray:
    """Proxy z-depth [S, S] (metres, virtual-camera frame), finite everywhere: the face mesh
    (landmarks [478, 3]), feathered into the fitted head (``prior``) or, without one, into the
    ellipsoid. rays [S, S, 3]: camera.image_rays of K; mesh: ``face_mesh_depth`` of the landmarks
    when the caller has it already."""
    size = rays.shape[0]
    proxy = ellipsoid_proxy(landmarks, rays) if prior is None else _head_proxy(prior, PROXY_SMOOTH_PX * size / 256.0)
    mesh = face_mesh_depth(landmarks, K, size) if mesh is None else mesh
    covered = np.isfinite(mesh)
    if prior is not None:
        proxy = _meet_the_mesh(proxy, mesh, SEAM_PX * size / 256.0)
    # Weight of the mesh rises from 0 at its edge to 1 FEATHER_PX inside it.
    inside = cv2.distanceTransform(covered.astype(np.uint8), cv2.DIST_L2, 3)
    w = np.clip(inside / (FEATHER_PX * size / 256.0), 0.0, 1.0)
    return np.where(covered, w * np.where(covered, mesh, 0.0) + (1 - w) * proxy, proxy)


def ellipsoid_proxy(landmarks: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """The fallback head: an ellipsoid fitted to the landmarks, and outside it a plane at the
    depth of its silhouette, which in perspective lies in front of its centre (by r^2 / d, ~2.5
    cm at 0.4 m); a plane through the centre would leave a step there that opens into a gap
    seen from the side."""
    axes, centre, scale = head_frame(landmarks)
    proxy = ellipsoid_depth(rays, axes, centre, HEAD_RADII_M * scale)
    hit = np.isfinite(proxy)
    rim = hit & ~cv2.erode(hit.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    outside = float(np.median(proxy[rim])) if rim.any() else centre[2]
    return np.where(hit, proxy, outside)


class GeometricPredictor:
    """See the module docstring. Runs on CPU whatever the pipeline's device (it is NumPy and
    MediaPipe); returns tensors on the CPU."""

    name = "geometric"
    weights_sha256 = None

    def __init__(self, colour_steps: int = COLOUR_STEPS, head: bool = True, matte: bool = False) -> None:
        """head: fit the whole-head model (False: the ellipsoid everywhere, the older baseline);
        matte: refine MediaPipe's person mask with the learned matte (``volume_cli.matte``,
        ``weights/matte.safetensors``). Off by default: on held-out synthetic people it gains
        0.14 dB of side-view PSNR but costs 0.5 / 0.2 dB of authenticity (crop / frame), on the
        real photos and selfie frames 0.5 / 0.3 dB (session 22, weights/experiments/s22_matte/)."""
        self.colour_steps = colour_steps
        self.use_head = head
        self.name = "geometric" if head else "geometric-ellipsoid"
        self.matte = None
        if matte:
            from volume_cli.matte.model import PersonMatte

            self.matte = PersonMatte()
        model = load_head_model() if head else None
        self._hidden_slots = hidden_side_slots(model) if head else 0
        self._pool: ThreadPoolExecutor | None = None
        # One segmenter per thread (a MediaPipe graph takes one frame at a time): this thread's
        # now, the frame pool's when they first segment; all of them closed by close().
        self._local = threading.local()
        self._local.segmenter = PersonSegmenter()
        self._segmenters = [self._local.segmenter]
        self._segmenters_lock = threading.Lock()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for segmenter in self._segmenters:
            segmenter.close()
        self._segmenters.clear()

    def __enter__(self) -> "GeometricPredictor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def person_mask(self, crop: np.ndarray) -> np.ndarray:
        """Person confidence [S, S] in [0, 1] for a crop [S, S, 3] uint8 RGB."""
        return self._thread_segmenter().mask(crop)

    def _thread_segmenter(self) -> PersonSegmenter:
        """The calling thread's segmenter."""
        mine = getattr(self._local, "segmenter", None)
        if mine is None:
            mine = self._local.segmenter = PersonSegmenter()
            with self._segmenters_lock:
                self._segmenters.append(mine)
        return mine

    def predict(self, batch: CropBatch) -> Gaussians:
        # Two frames at once: much of a frame is single-threaded NumPy and MediaPipe between the
        # compiled kernels (which take both cores), so a second frame fills the idle core. The
        # clip texture's step runs in frame order (InTurn), so the result is the serial one.
        turns = InTurn()

        def one(i: int) -> Gaussians:
            try:
                return self._predict_one(batch, i, turns)
            finally:
                turns.done(i)

        if len(batch) == 1 or FRAME_THREADS == 1:
            sets = [one(i) for i in range(len(batch))]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(FRAME_THREADS, thread_name_prefix="geometric")
            sets = list(self._pool.map(one, range(len(batch))))
        return Gaussians(**{k: torch.stack([getattr(s, k) for s in sets]) for k in ("means", "quats", "log_scales", "opacity_logits", "sh")})

    def head_prior(self, batch: CropBatch, i: int) -> HeadPrior | None:
        """The fitted head of crop ``i``: the clip's (``batch.head_priors``, from convert) or, in a
        batch without them, a still-image fit of its own landmarks; None where the fit failed."""
        if not self.use_head:
            return None
        if batch.head_priors is not None:
            return batch.head_priors[i]
        still = HeadTrack(load_head_model(), _steps().rasterize_depth, clip=False)
        return still.prior(batch.landmarks[i].double().cpu().numpy(), batch.K[i].double().cpu().numpy(), batch.size)[0]

    def _predict_one(self, batch: CropBatch, i: int, turns: InTurn) -> Gaussians:
        s = batch.size
        K = batch.K[i].double().cpu().numpy()
        image = batch.images[i].permute(1, 2, 0).cpu().numpy()  # [S, S, 3] float
        crop_u8 = np.ascontiguousarray((image * 255.0 + 0.5).astype(np.uint8))
        rays = camera.image_rays(K, s, s)
        prior = self.head_prior(batch, i)
        landmarks = batch.landmarks[i].double().cpu().numpy()
        mesh = face_mesh_depth(landmarks, K, s)
        depth = proxy_depth(landmarks, K, rays, prior, mesh)

        valid = batch.valid[i].cpu().numpy()
        person = self.person_mask(crop_u8) * valid
        if self.matte is not None:
            person = self.matte.coverage(crop_u8, person, *head_masks(prior, s), np.isfinite(mesh), valid)
        opacity = np.clip(person, MIN_PERSON, MAX_OPACITY)
        logits = np.where(person >= MIN_PERSON, np.log(opacity) - np.log1p(-opacity), UNUSED_OPACITY_LOGIT)

        n = s * s
        keep = torch.from_numpy(person.reshape(n) >= MIN_PERSON)

        opacity_logits = torch.from_numpy(logits.reshape(n)).float()
        points = rays * depth[..., None]
        quats, log_scales = _steps().surface_aligned(points, K[0, 0], PIXEL_SIGMA)
        front = dict(means=torch.from_numpy(points.reshape(n, 3)).float(), quats=quats, log_scales=log_scales,
                     opacity_logits=opacity_logits)
        # The backing surface is the front one pushed BACKING_BEHIND_M along the rays: its tangents
        # differ from the front's by about that over the distance (~1 %), so its discs take the
        # front's orientation and shape, widened by BACKING_SIGMA / PIXEL_SIGMA in the plane and
        # scaled with the depth, rather than being derived again (~7 ms a frame).
        back_z = depth + BACKING_BEHIND_M / rays[..., 2]
        grow = torch.from_numpy(np.log(back_z / depth).reshape(n, 1)).float()
        widen = torch.tensor([math.log(BACKING_SIGMA / PIXEL_SIGMA)] * 2 + [0.0])
        backing = dict(means=torch.from_numpy((rays * back_z[..., None]).reshape(n, 3)).float(), quats=quats.clone(),
                       log_scales=log_scales + widen + grow, opacity_logits=opacity_logits.clone())
        target = torch.from_numpy(image.reshape(n, 3)).float()
        colour, colour_back = self._refine_colours(front, backing, keep, target, K, s)
        assert GAUSSIANS_PER_PIXEL == 2  # one front and one backing splat a pixel
        layers = [front, backing]
        shs = [rgb_to_sh_dc(colour)[:, None, :], rgb_to_sh_dc(colour_back)[:, None, :]]
        if self._hidden_slots:
            hidden = hidden_side_splats(prior, depth, image, K, person, batch.head_texture, self._hidden_slots,
                                        texture_turn=lambda: turns.turn(i))
            shs.append(hidden.pop("sh"))
            layers.append(hidden)
        return Gaussians(**{k: torch.cat([layer[k] for layer in layers]).contiguous() for k in front}, sh=torch.cat(shs))

    def _refine_colours(self, front: dict, backing: dict, keep: Tensor, target: Tensor, K: np.ndarray, size: int) -> tuple[Tensor, Tensor]:
        """Per-pixel colours of the front and the backing splats ([S*S, 3] each, possibly outside
        [0, 1]) whose render from the crop's own camera matches ``target`` [S*S, 3]. Both layers
        are fitted: where the surface steps (a jaw over the neck, an ear over the cheek) the
        nearer pixel's wider backing splat lies in front of the farther pixel's splats and would
        bleed its colour into them."""
        from volume_cli.predictors.colour_fit import fit_colours

        if self.colour_steps == 0 or not bool(keep.any()):
            return target.clone(), target.clone()
        idx = torch.nonzero(keep).squeeze(1)
        n = len(idx)
        both = Gaussians(**{k: torch.cat([front[k][idx], backing[k][idx]]) for k in front},
                         sh=rgb_to_sh_dc(target[idx]).repeat(2, 1)[:, None, :])
        fitted = fit_colours(both, torch.arange(2 * n), idx.repeat(2), target, K, size, self.colour_steps)
        fitted_rgb = sh_dc_to_rgb(fitted.sh[:, 0])
        colour_front, colour_back = target.clone(), target.clone()
        colour_front[idx], colour_back[idx] = fitted_rgb[:n], fitted_rgb[n:]
        return colour_front, colour_back


def _fill_holes(mesh: np.ndarray) -> np.ndarray:
    """The face mesh's depth [S, S] (+inf off it) with its holes (the eye and mouth openings,
    which MediaPipe's tessellation leaves open) filled smoothly from their rims: otherwise the
    head proxy shows through them, and where its surface and the mesh's differ by a centimetre
    (they do on real faces) the splats step around the eyes."""
    covered = np.isfinite(mesh)
    if not covered.any():
        return mesh
    contours, _ = cv2.findContours(covered.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = np.zeros(mesh.shape, np.uint8)
    cv2.drawContours(outline, contours, -1, 1, thickness=cv2.FILLED)
    holes = (outline > 0) & ~covered
    if not holes.any():
        return mesh
    # The openings are horizontal slits: fill each row's gap by interpolating between the mesh
    # pixels left and right of it (linear in the image, which a plane across the slit is in 1/z).
    out = mesh.copy()
    for row in np.nonzero(holes.any(1))[0]:
        have = np.nonzero(covered[row])[0]
        gap = np.nonzero(holes[row])[0]
        out[row, gap] = 1.0 / np.interp(gap, have, 1.0 / mesh[row, have])
    return out


def _meet_the_mesh(proxy: np.ndarray, mesh: np.ndarray, fade_px: float) -> np.ndarray:
    """``proxy`` [S, S] shifted in depth to meet ``mesh`` [S, S] (+inf off it) at the mesh's
    edge: off the mesh each pixel takes the mesh-minus-proxy difference of the nearest mesh pixel
    (smoothed along the edge), fading as exp(-distance / fade_px); on the mesh, the mesh."""
    covered = np.isfinite(mesh)
    if not covered.any():
        return proxy
    diff = np.where(covered, mesh - proxy, 0.0)
    # Smooth the difference over the mesh (normalised, so the off-mesh zeros do not pull it).
    sigma = max(fade_px / 8.0, 0.5)
    # float32 blurs: twice as fast as float64, and 1e-7 of a few centimetres is far below a pixel's depth error.
    weight = cv2.GaussianBlur(covered.astype(np.float32), (0, 0), sigma).astype(np.float64)
    smooth = cv2.GaussianBlur(diff.astype(np.float32), (0, 0), sigma) / np.maximum(weight, 1e-6)
    nearest, dist = _nearest_known(smooth, covered)
    return np.where(covered, mesh, proxy + nearest * np.exp(-dist / fade_px))


def _nearest_known(values: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's value [S, S] taken from the nearest ``known`` [S, S] pixel (its own where
    known), and the distance to that pixel in pixels (0 where known)."""
    # distanceTransformWithLabels measures to the zero pixels, and labels each by its nearest one.
    dist, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    value = np.zeros(labels.max() + 1)
    value[labels[known]] = values[known]
    return value[labels], dist


def face_mesh_depth(landmarks: np.ndarray, K: np.ndarray, size: int) -> np.ndarray:
    """z-depth [S, S] of MediaPipe's face mesh (landmarks [478, 3], crop-camera frame) seen
    through K [3, 3], its eye and mouth openings filled; +inf off it."""
    return _fill_holes(_steps().rasterize_depth(camera.project(K, landmarks), landmarks[:, 2], face_mesh_triangles(), size))


def mesh_depth_rasterizer():
    """The mesh rasteriser the predictor uses (compiled, or the NumPy reference without numba)."""
    return _steps().rasterize_depth


def _head_proxy(prior: HeadPrior, smooth_px: float) -> np.ndarray:
    """z-depth [S, S] from the fitted head: the head where the ray meets it, else the hair shell,
    else (neck, shoulders, long hair) the depth of the nearest pixel of the shell's outline, so
    nothing steps away from the head's edge; blurred by ``smooth_px`` (Gaussian sigma, pixels)."""
    depth = np.where(prior.head_mask, prior.depth, prior.shell_depth)
    known = np.isfinite(depth)
    if not known.any():
        return depth
    filled = _nearest_known(depth, known)[0]
    if smooth_px <= 0:
        return filled
    # Blurred in float32 (twice as fast; ~0.1 um at 0.6 m), returned in float64 like the rest.
    return cv2.GaussianBlur(filled.astype(np.float32), (0, 0), smooth_px).astype(np.float64)


def quats_turning_z_to(normals: np.ndarray) -> np.ndarray:
    """Unit quaternions [N, 4] (w first) of the shortest rotations taking +z to each unit normal
    [N, 3]. For a disc with equal axes in its plane, any rotation that puts its thin axis (z)
    along the normal gives the same covariance, and this one needs no tangent frame: for
    n = (x, y, z) it is (1 + z, -y, x, 0) normalised, and a half turn about x where n is -z."""
    q = np.stack([1.0 + normals[:, 2], -normals[:, 1], normals[:, 0], np.zeros(len(normals))], axis=1)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    flipped = norm[:, 0] < 1e-6  # n = -z: every axis perpendicular to z is shortest; take x
    q[flipped] = [0.0, 1.0, 0.0, 0.0]
    norm[flipped] = 1.0
    return q / norm


def hidden_side_slots(model) -> int:
    """Splat slots :func:`hidden_side_splats` fills for the head model ``model``: one per vertex and
    one per edge midpoint (the same on every frame, so frames stack)."""
    return model.num_vertices + len(model.edges)


def hidden_side_splats(prior: HeadPrior | None, depth: np.ndarray, image: np.ndarray, K: np.ndarray, person: np.ndarray,
                       texture, slots: int, texture_turn=contextlib.nullcontext) -> dict:
    """One disc per point of the fitted head, once subdivided (its vertices and edge midpoints:
    ``slots`` of them), on the side the crop camera does not see (means, quats, log_scales,
    opacity_logits, sh); the seen points, and every slot when there is no prior, get
    UNUSED_OPACITY_LOGIT and are pruned. depth [S, S]: the front layer's z; image [S, S, 3] the
    crop, person [S, S] its person confidence (times the valid mask); texture: the clip's
    ClipTexture or None; texture_turn: a context manager entered around this frame's use of the
    texture (frames predicted at once take their turns in frame order)."""
    means = np.zeros((slots, 3))
    normals = np.tile([0.0, 0.0, -1.0], (slots, 1))
    sigma = np.full(slots, 1e-3)
    colour = np.zeros((slots, 3))
    fade = np.zeros(slots)  # opacity factor: 0 unused, 1 fully there
    if prior is not None:
        model = load_head_model()
        edges = model.edges
        seen, weights = seen_colours(prior, image, K, person)
        with texture_turn():
            vertex_colour = hidden_side_colours(seen, weights, model.mirror, edges, None if texture is None else texture.colours())
            if texture is not None:
                texture.add(seen, weights)  # after use: a frame's own view is in ``seen`` already
            colour = np.concatenate([vertex_colour, 0.5 * (vertex_colour[edges[:, 0]] + vertex_colour[edges[:, 1]])])
            if texture is not None:
                colour = texture.steady(colour)
        means, normals, visible = subdivided(prior, edges, K)
        # Spacing: half the mean length of a vertex's edges (subdivision halves them); a midpoint
        # takes its edge's half length.
        length = np.linalg.norm(prior.vertices[edges[:, 0]] - prior.vertices[edges[:, 1]], axis=1)
        total = np.bincount(edges.ravel(), np.repeat(length, 2), model.num_vertices)
        count = np.bincount(edges.ravel(), minlength=model.num_vertices).clip(1)
        sigma = HIDDEN_SIGMA_FRACTION * 0.5 * np.concatenate([total / count, length])
        s = person.shape[0]
        px = np.clip(np.floor(camera.project(K, means)).astype(np.int64), 0, s - 1)
        sigma_px = sigma * K[0, 0] / np.maximum(means[:, 2], 1e-6)
        # Behind the farthest front splat its footprint covers (a disc under the chin projects onto
        # the chin but spreads onto the neck, which is farther): the depth's maximum over a window
        # of the splats' typical reach.
        reach = int(np.ceil(HIDDEN_REACH_SIGMAS * np.median(sigma_px)))
        farthest = cv2.dilate(depth.astype(np.float32), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
        # Soft edges (over HIDDEN_FADE_M behind the limit), so a splat near it fades in and out
        # as the head moves instead of popping.
        behind = np.clip((means[:, 2] - farthest[px[:, 1], px[:, 0]] - BACKING_BEHIND_M - HIDDEN_BEHIND_M) / HIDDEN_FADE_M, 0.0, 1.0)
        fade = behind * (~visible & (person[px[:, 1], px[:, 0]] >= HIDDEN_OPAQUE_PERSON))
    # A disc in the tangent plane: two axes of sigma, a thin one along the normal.
    log_sigma = np.log(sigma)
    log_scales = np.stack([log_sigma, log_sigma, log_sigma + math.log(THIN_FRACTION)], axis=1)
    opacity = np.clip(HIDDEN_OPACITY * fade, 1e-6, HIDDEN_OPACITY)
    logits = np.where(fade > 0, np.log(opacity) - np.log1p(-opacity), UNUSED_OPACITY_LOGIT)
    return dict(
        means=torch.from_numpy(means).float(),
        quats=torch.from_numpy(quats_turning_z_to(normals)).float(),
        log_scales=torch.from_numpy(log_scales).float(),
        opacity_logits=torch.from_numpy(logits).float(),
        sh=rgb_to_sh_dc(torch.from_numpy(colour).float())[:, None, :],
    )
