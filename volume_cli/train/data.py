"""Training examples from the synthetic generator, rendered on the fly.

An example (tensors, float32 unless noted; S crop side, V target views, view 0 = the crop camera):

    image            [3, S, S]     the crop in [0, 1] (as ``volume convert`` would cut it)
    valid            [S, S] bool   crop pixels inside the input frame
    K                [3, 3]        crop (virtual) camera intrinsics
    distance         []            head distance given to the network, metres: the crop's framing
                                   distance (focal = S d / CROP_EXTENT_M) times ``distance_scale``
    distance_scale   []            exp(N(0, distance_noise)): the error of a real distance estimate
                                   (eye spacing differs between people). The consistent answer for
                                   the network is then the true scene scaled by it about the camera
                                   centre, which projects to the same crop
    background       [3]           random solid colour the views are composited on for the losses
    target_rgb       [V, 3, S, S]  views, PREMULTIPLIED by alpha (over black)
    target_alpha     [V, S, S]
    target_depth     [V, S, S]     camera z, metres, 0 = background
    target_K         [V, 3, 3]
    view_from_crop   [V, 4, 4]     crop-camera frame -> view camera (view 0: the identity)
    prior            [C, S, S]     only for samples re-framed by ``train.priors`` (convert's crop and
                                   camera): prior_input.PRIOR_CHANNELS, its three depth channels times
                                   distance_scale (they are relative to the distance the network is
                                   given, and the consistent scene is the true one scaled by it)
    pair_image, pair_valid, pair_view_from_crop (and pair_prior: ``prior_seen_by``)
                                   the stability partner: the SAME frame re-cropped by a virtual
                                   camera turned by a small random rotation (same distance, so the
                                   same K), plus fresh sensor noise. Both crops show the same moment,
                                   so in the world frame their ideal predictions are identical: the
                                   known motion between them is exactly zero.

Every random choice of example ``index`` comes from ``(AUG_SALT, run_seed, index)``, so the data is
the same whatever the number of workers, and a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from volume_cli import camera

AUG_SALT = 0xA06
# Pair jitter: the partner's virtual camera is aimed at a point moved by N(0, PAIR_AIM_STD) times
# the distance across the view (0.5 % ~ 2 crop pixels at S = 256, 0.6 m): the size of a smoothed
# track's frame-to-frame wobble.
PAIR_AIM_STD = 0.005
# Extra sensor noise on the partner crop (std, in [0, 1] units, ~2.5/255): a webcam's temporal noise.
PAIR_NOISE_STD = 0.01
# Relative error of the head-distance estimate (log-normal std): the spread of adult eye spacing
# around camera.INTERPUPILLARY_M is ~5 %.
DISTANCE_NOISE = 0.05


def framing_distance(K: np.ndarray, size: int) -> float:
    """The distance a crop camera was framed for: ``camera.virtual_camera`` sets fx = S d / extent."""
    return float(K[0, 0] * camera.CROP_EXTENT_M / size)


def valid_mask(frame_hw: tuple[int, int], K_in: np.ndarray, cam: camera.VirtualCamera) -> np.ndarray:
    """[S, S] bool: crop pixels that see the input frame (as ``framing.frame_crop`` computes it)."""
    inside = camera.warp_crop(np.full(frame_hw, 255, np.uint8), K_in, cam)
    return inside > 250


def jittered_camera(cam: camera.VirtualCamera, rng: np.random.Generator, aim_std: float = PAIR_AIM_STD) -> camera.VirtualCamera:
    """The same virtual camera re-aimed at a point moved sideways by N(0, aim_std) * distance, at
    the same distance (so the same K)."""
    d = framing_distance(cam.K, cam.size)
    aim = cam.R.T @ np.array([0.0, 0.0, d])
    aim = aim + cam.R.T @ np.array([rng.normal(0, aim_std * d), rng.normal(0, aim_std * d), 0.0])
    aim = aim / np.linalg.norm(aim) * d
    new = camera.virtual_camera(aim, cam.size)
    return camera.VirtualCamera(R=new.R, K=cam.K.copy(), size=cam.size)


def prior_seen_by(prior: np.ndarray, K: np.ndarray, R_from: np.ndarray, R_to: np.ndarray) -> np.ndarray:
    """Prior channels [C, S, S] of a crop camera (rotation R_from, intrinsics K) resampled into
    another crop camera with the same centre and K (rotation R_to): the stability partner's prior,
    which convert would compute from the partner's own landmarks; for the partner's small turn
    (~0.3 degrees) the resampled one differs from that by far less than a fit's own noise. Normals
    turn with the camera; depths stay (z changes by ~1e-5 of itself); pixels the first crop does not
    cover get 0 ("no prior")."""
    from volume_cli.predictors.prior_input import PRIOR_CHANNELS

    H = camera.homography_for_opencv(K @ R_to @ R_from.T @ np.linalg.inv(K))  # first crop's pixel -> partner's
    size = prior.shape[-1]
    out = np.stack([cv2.warpPerspective(np.ascontiguousarray(c, dtype=np.float32), H, (size, size), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0) for c in prior])
    axes = [PRIOR_CHANNELS.index(n) for n in ("normal_x", "normal_y", "normal_z")]
    out[axes] = np.einsum("ij,jhw->ihw", (R_to @ R_from.T).astype(np.float32), out[axes])
    return out


def _w2c(R: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    return T


def make_example(sample: dict, rng: np.random.Generator, *, distance_noise: float = DISTANCE_NOISE,
                 pair: bool = True) -> dict[str, torch.Tensor]:
    """One training example (see the module docstring) from a ``generate_sample`` dict (numpy;
    needs ``input_image``)."""
    size = sample["crop"].shape[0]
    K, R = sample["crop_K"], sample["crop_R"]
    cam = camera.VirtualCamera(R=R, K=K, size=size)
    K_in = sample["input_K"]
    frame_hw = sample["input_image"].shape[:2]
    scale = float(np.exp(rng.normal(0.0, distance_noise))) if distance_noise > 0 else 1.0
    crop_from_world = _w2c(R)
    view_from_crop = sample["target_w2c"] @ np.linalg.inv(crop_from_world)
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    out = {
        "image": f32(sample["crop"]).permute(2, 0, 1) / 255.0,
        "valid": torch.from_numpy(valid_mask(frame_hw, K_in, cam)),
        "K": f32(K),
        "distance": torch.tensor(framing_distance(K, size) * scale, dtype=torch.float32),
        "distance_scale": torch.tensor(scale, dtype=torch.float32),
        "background": f32(rng.uniform(0.0, 1.0, 3)),
        "target_rgb": f32(sample["target_rgb"]).permute(0, 3, 1, 2) / 255.0,
        "target_alpha": f32(sample["target_alpha"]) / 255.0,
        "target_depth": f32(sample["target_depth"]),
        "target_K": f32(sample["target_K"]),
        "view_from_crop": f32(view_from_crop),
    }
    if "prior" in sample:
        from volume_cli.predictors.prior_input import PRIOR_CHANNELS

        prior = sample["prior"].astype(np.float32)
        for name in ("proxy_depth", "head_depth", "mesh_depth"):
            prior[PRIOR_CHANNELS.index(name)] *= scale
        out["prior"] = torch.from_numpy(prior)
    if pair:
        cam2 = jittered_camera(cam, rng)
        crop2 = camera.warp_crop(sample["input_image"], K_in, cam2).astype(np.float32) / 255.0
        crop2 = np.clip(crop2 + rng.normal(0.0, PAIR_NOISE_STD, crop2.shape), 0.0, 1.0)
        out["pair_image"] = f32(crop2).permute(2, 0, 1)
        out["pair_valid"] = torch.from_numpy(valid_mask(frame_hw, K_in, cam2))
        out["pair_view_from_crop"] = f32(sample["target_w2c"] @ np.linalg.inv(_w2c(cam2.R)))
        if "prior" in out:
            out["pair_prior"] = torch.from_numpy(prior_seen_by(out["prior"].numpy(), K, R, cam2.R))
    return out


def collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([e[k] for e in examples]) for k in examples[0]}


def example_rng(run_seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([AUG_SALT, int(run_seed), int(index)])


def render_example(run_seed: int, index: int, *, size: int, views: int, distance_noise: float = DISTANCE_NOISE,
                   pair: bool = True) -> dict[str, torch.Tensor]:
    """Example ``index`` of run ``run_seed``: sample seed ``sample_seed(run_seed, index)``."""
    from volume_cli.synth.sample import generate_sample, sample_seed

    sample = generate_sample(sample_seed(run_seed, index), size=size, views=views, temporal=False)
    return make_example(sample, example_rng(run_seed, index), distance_noise=distance_noise, pair=pair)


class TrainBatches(IterableDataset):
    """Whole batches, rendered on the fly: batch b holds examples b*B ... b*B + B - 1, for
    b = start, start + 1, ... (endless when ``count`` is None). Use with
    ``DataLoader(ds, batch_size=None, num_workers=n, multiprocessing_context="spawn")``: workers
    take batches round-robin and the loader returns them in order, so the sequence does not depend
    on ``n`` (spawn, because an EGL context does not survive a fork)."""

    def __init__(self, run_seed: int, *, batch_size: int, size: int, views: int, start: int = 0,
                 count: int | None = None, distance_noise: float = DISTANCE_NOISE, pair: bool = True) -> None:
        super().__init__()
        self.run_seed, self.batch_size, self.size, self.views = run_seed, batch_size, size, views
        self.start, self.count, self.distance_noise, self.pair = start, count, distance_noise, pair

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        b = self.start + worker
        while self.count is None or b < self.start + self.count:
            first = b * self.batch_size
            yield collate([render_example(self.run_seed, i, size=self.size, views=self.views,
                                          distance_noise=self.distance_noise, pair=self.pair)
                           for i in range(first, first + self.batch_size)])
            b += workers


# --- examples from ``volume synth`` shards (rendered once, reused every epoch) ---------------------

SHUFFLE_SALT = 0x5A4D
VIEW_SALT = 0x7E3
# What make_example needs of a stored sample; the rest (alphas of the full frame, landmarks, meta)
# is dropped on loading to keep the set in memory.
SHARD_KEYS = ("seed", "input_image", "input_K", "crop", "crop_K", "crop_R",
              "target_rgb", "target_alpha", "target_depth", "target_K", "target_w2c")
_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))


def mirror_example(ex: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The example of the mirror-image world (x -> -x in the crop-camera frame): every image
    flipped left-right, every camera conjugated by the mirror, principal points reflected
    (u -> S - u). A point that projects to u in a view projects to S - u in the mirrored view, at
    the same depth, so targets and geometry stay consistent. A person's mirror image is another
    plausible person, which doubles the variety of a fixed set of samples."""
    out = dict(ex)
    size = ex["image"].shape[-1]
    for key in ("image", "valid", "target_rgb", "target_alpha", "target_depth", "pair_image", "pair_valid"):
        if key in ex:
            out[key] = ex[key].flip(-1)
    for key in ("prior", "pair_prior"):  # the x component of the normals changes sign too
        if key in ex:
            from volume_cli.predictors.prior_input import MIRROR_SIGN

            out[key] = ex[key].flip(-1) * torch.from_numpy(MIRROR_SIGN)[:, None, None]
    for key in ("view_from_crop", "pair_view_from_crop"):
        if key in ex:
            out[key] = _MIRROR @ ex[key] @ _MIRROR
    for key in ("K", "target_K"):
        K = ex[key].clone()
        K[..., 0, 2] = size - K[..., 0, 2]
        K[..., 0, 1] = -K[..., 0, 1]
        out[key] = K
    return out


def downsized_sample(sample: dict, size: int) -> dict:
    """A stored sample with its crop and target views area-averaged to ``size`` (the stored side a
    multiple of it) and their intrinsics scaled to match (pixel centres at +0.5 scale exactly); depth
    is sampled at the nearest pixel so that it never blends surface and background. The input frame is
    kept: stability partners are cut from it at the new size."""
    s = sample["crop"].shape[0]
    if s == size:
        return sample
    f = s // size

    def area(img: np.ndarray, channels_last: bool) -> np.ndarray:
        """uint8 [..., s, s] (or [..., s, s, c]) -> the means of its f x f blocks, uint8."""
        a = img.astype(np.float32)
        if channels_last:
            a = np.moveaxis(a, -1, 0)
        a = a.reshape(a.shape[:-2] + (size, f, size, f)).mean((-3, -1))
        if channels_last:
            a = np.moveaxis(a, 0, -1)
        return (a + 0.5).astype(np.uint8)

    def scaled(K: np.ndarray) -> np.ndarray:
        K = K.copy()
        K[..., :2, :] /= f
        return K

    out = dict(sample)
    out["crop"], out["target_rgb"] = area(sample["crop"], True), area(sample["target_rgb"], True)
    out["target_alpha"] = area(sample["target_alpha"], False)
    out["target_depth"] = sample["target_depth"][..., f // 2::f, f // 2::f].copy()
    if "prior" in sample:  # nearest too: an average would blend the head's depth with the 0 beside it
        out["prior"] = sample["prior"][:, f // 2::f, f // 2::f].copy()
    out["crop_K"], out["target_K"] = scaled(sample["crop_K"]), scaled(sample["target_K"])
    return out


class ShardExamples:
    """Training examples from the shards of one or more ``volume synth`` output folders, all held in
    memory (mostly the input frame, which stability partners are cut from: ~1 MB a sample), resized to the run's crop size when the stored one is a
    multiple of it. Example ``i`` of run ``run_seed``:

    * sample: epoch ``i // N`` visits the N samples in a shuffled order drawn from the run seed and
      the epoch; example i takes place ``i % N`` of it;
    * views: view 0 (the crop camera) plus ``views - 1`` of the stored novel views, drawn anew;
    * distance error, background, stability partner: ``make_example`` with ``example_rng(run_seed, i)``;
    * mirrored (``mirror_example``) with probability 1/2.

    Everything comes from (run_seed, i), so a resumed run sees the batches it would have seen."""

    def __init__(self, folders: list[str | Path] | tuple[str | Path, ...], *, run_seed: int, size: int, views: int,
                 distance_noise: float = DISTANCE_NOISE, pair: bool = True, priors: bool = False, progress=None) -> None:
        """priors: use each shard's ``train.priors`` sidecar (which must exist): convert's crop and
        camera in place of the generator's (target view 0 resampled into it: ``train.priors.reframed``),
        the prior channels as ``prior``; samples in which
        MediaPipe found no face are left out (``self.no_face`` counts them)."""
        from volume_cli.synth.shards import read_index, read_shard
        from volume_cli.train.priors import read_prior_sidecar, reframed, sidecar_name

        self.run_seed, self.views, self.distance_noise, self.pair = run_seed, views, distance_noise, pair
        self.samples: list[dict] = []
        self.sources: list[dict] = []
        self.no_face = 0
        for folder in folders:
            folder = Path(folder)
            index = read_index(folder)
            if index["size"] % size:
                raise ValueError(f"{folder} holds {index['size']} px samples; this run trains at --size {size}, "
                                 "which must divide it")
            if index["views"] < views:
                raise ValueError(f"{folder} holds {index['views']} views a sample; this run needs --views {views} or fewer")
            for shard in index["shards"]:
                views_of = None
                if priors:
                    sidecar = folder / sidecar_name(shard["file"])
                    if not sidecar.is_file():
                        raise ValueError(f"{sidecar} not found: make it with python -m volume_cli.train.priors {folder}")
                    views_of = read_prior_sidecar(sidecar)
                for j, sample in enumerate(read_shard(folder / shard["file"])):
                    kept = {k: sample[k] for k in SHARD_KEYS}
                    if views_of is not None:
                        if views_of[j] is None:
                            self.no_face += 1
                            continue
                        kept = reframed(kept, views_of[j])
                    self.samples.append(downsized_sample(kept, size))
                    if progress:
                        progress(len(self.samples))
            self.sources.append({"folder": str(folder), "run_seed": index["run_seed"], "count": index["count"]})
        if not self.samples:
            raise ValueError("the shard folders hold no samples")

    def __len__(self) -> int:
        return len(self.samples)

    def sample_for(self, index: int) -> int:
        n = len(self.samples)
        order = np.random.default_rng([SHUFFLE_SALT, int(self.run_seed), index // n]).permutation(n)
        return int(order[index % n])

    def example(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[self.sample_for(index)]
        pick = np.random.default_rng([VIEW_SALT, int(self.run_seed), int(index)])
        stored = sample["target_rgb"].shape[0]
        chosen = np.concatenate([[0], np.sort(pick.choice(np.arange(1, stored), self.views - 1, replace=False))]).astype(int)
        sub = dict(sample)
        for key in ("target_rgb", "target_alpha", "target_depth", "target_K", "target_w2c"):
            sub[key] = sample[key][chosen]
        ex = make_example(sub, example_rng(self.run_seed, index), distance_noise=self.distance_noise, pair=self.pair)
        return mirror_example(ex) if pick.random() < 0.5 else ex

    def batches(self, start: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """Batch b = examples b*B ... b*B + B - 1, for b = start, start + 1, ... (endless)."""
        b = start
        while True:
            yield collate([self.example(i) for i in range(b * batch_size, (b + 1) * batch_size)])
            b += 1
