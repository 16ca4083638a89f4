"""Convert's view of the training samples: the crop that MediaPipe's framing cuts from a sample's
synthetic webcam frame, and the head prior of that crop, computed as ``volume convert`` computes
them (issue 10: train and convert must see the same thing).

The generator frames its crops from the TRUE head pose; convert frames from MediaPipe's landmarks
and their metric head estimate, which is off by a few millimetres and degrees and by the distance
error of a real face's size. A network trained on convert's framing and prior learns to correct
exactly those errors; target view 0 (the input camera, which the losses use pixel for pixel) is
resampled into convert's camera (``input_view_in``). Every sample is therefore re-framed once: MediaPipe face mesh on the input
frame, ``face.head_state`` and ``framing.frame_crop`` (as convert and ``volume evaluate`` do), a
still-image head fit (a sample is one frame: it fits its own identity, ~0.7 s), the person mask and
``predictors.prior_input.batch_prior_channels``. The results are kept beside each shard:

    DIR/prior_000000.npz   for DIR/shard_000000.npz; sample j of the shard under "{j:05d}/key":
        face      bool []            MediaPipe found a face (when False nothing else is stored:
                                     convert would skip that frame, and so does training)
        crop      uint8 [S, S, 3]    convert's crop
        crop_K    float64 [3, 3]     its virtual camera
        crop_R    float64 [3, 3]
        prior     float16 [C, S, S]  prior_input.PRIOR_CHANNELS
        fit_ok    bool []            the head fit was accepted (else the head channels are 0)

A sidecar is written under a temporary name and renamed, one shard at a time, so an interrupted
run keeps what it finished and a rerun does only the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

PRIOR_SIDECAR_KEYS = ("crop", "crop_K", "crop_R", "prior", "fit_ok")


def sidecar_name(shard_file: str) -> str:
    """prior_000000.npz for shard_000000.npz."""
    return shard_file.replace("shard_", "prior_", 1)


def convert_view(sample: dict, finder, segmenter) -> dict | None:
    """Convert's crop, camera and prior channels of a ``generate_sample`` dict (needs
    ``input_image``, ``input_K``; the crop side is the sample's), or None when MediaPipe finds no
    face. finder: a ``face.FaceFinder(video=False)``; segmenter: a ``segmentation.PersonSegmenter``."""
    from volume_cli.framing import crop_of_still
    from volume_cli.pipeline import crop_batch
    from volume_cli.predictors.prior_input import PRIOR_CHANNELS, batch_prior_channels

    fc = crop_of_still(sample["input_image"], sample["input_K"], finder, sample["crop"].shape[0])
    if fc is None:
        return None
    prior = batch_prior_channels(crop_batch([fc], "cpu"), segmenter)[0].numpy()
    fit_ok = bool(prior[PRIOR_CHANNELS.index("head")].any())  # empty only where the fit was refused
    return {"crop": fc.crop, "crop_K": fc.cam.K, "crop_R": fc.cam.R, "prior": prior.astype(np.float16), "fit_ok": np.bool_(fit_ok)}


def input_view_in(sample: dict, K: np.ndarray, R: np.ndarray) -> dict:
    """The sample's view 0 (the generator's crop camera) resampled into another crop camera with
    the same centre (K [3, 3], rotation R), as arrays for view 0 of ``target_*``: rgb [S, S, 3] and
    alpha [S, S] uint8 (bilinear: rgb is premultiplied, so the two stay consistent), depth [S, S]
    (nearest, then converted: the same point's z in the new camera; 0 stays background), K, w2c.
    Every virtual camera turns about the webcam's centre, so this is exact up to resampling: no
    point moves behind another.

    Training on convert's crops needs it: the losses take view 0 as the input camera, pixel for
    pixel (the front-alpha term, the input-view colour, its depth), and convert's camera is turned
    from the generator's by ~2.5 degrees and zoomed by its distance error."""
    import cv2

    from volume_cli import camera

    size = sample["crop"].shape[0]
    K_old, R_old = sample["target_K"][0], sample["target_w2c"][0][:3, :3]
    H = camera.homography_for_opencv(K @ R @ R_old.T @ np.linalg.inv(K_old))  # old pixel -> new pixel

    def warp(image: np.ndarray, flags: int) -> np.ndarray:
        return cv2.warpPerspective(image, H, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    z_old = warp(np.ascontiguousarray(sample["target_depth"][0], dtype=np.float32), cv2.INTER_NEAREST).astype(np.float64)
    # A new pixel's ray (z = 1 in the new camera) seen in the old camera has z = d_z, and the
    # point at old depth z_old on it is at z_old / d_z in the new one.
    d_z = (camera.image_rays(K, size, size) @ (R_old @ R.T).T)[..., 2]
    w2c = np.eye(4)
    w2c[:3, :3] = R
    return {"rgb": warp(sample["target_rgb"][0], cv2.INTER_LINEAR), "alpha": warp(sample["target_alpha"][0], cv2.INTER_LINEAR),
            "depth": np.where(z_old > 0, z_old / d_z, 0.0).astype(sample["target_depth"].dtype), "K": K, "w2c": w2c}


def reframed(sample: dict, view: dict) -> dict:
    """``sample`` as convert sees it: its crop, crop camera and prior from ``view``
    (``convert_view`` or a sidecar's entry), and target view 0 resampled into that camera."""
    out = dict(sample)
    out.update({k: view[k] for k in ("crop", "crop_K", "crop_R", "prior")})
    first = input_view_in(sample, np.asarray(view["crop_K"], np.float64), np.asarray(view["crop_R"], np.float64))
    for key, name in (("target_rgb", "rgb"), ("target_alpha", "alpha"), ("target_depth", "depth"), ("target_K", "K"),
                      ("target_w2c", "w2c")):
        out[key] = np.concatenate([first[name][None].astype(sample[key].dtype), sample[key][1:]])
    return out


def write_prior_sidecars(folder: Path, progress=None) -> dict:
    """Sidecars for every shard of a ``volume synth`` folder that lacks one. Returns counts
    {"shards_done", "shards_skipped", "samples", "no_face", "fit_refused"} (of the shards done
    now). progress: called with (samples done, samples in the shards to do)."""
    from volume_cli.face import FaceFinder
    from volume_cli.segmentation import PersonSegmenter
    from volume_cli.synth.shards import read_index, read_shard, write_shard

    folder = Path(folder)
    index = read_index(folder)
    todo = [s for s in index["shards"] if not (folder / sidecar_name(s["file"])).is_file()]
    counts = {"shards_done": 0, "shards_skipped": len(index["shards"]) - len(todo), "samples": 0, "no_face": 0, "fit_refused": 0}
    total = sum(s["count"] for s in todo)
    with FaceFinder(video=False) as finder, PersonSegmenter() as segmenter:
        for shard in todo:
            records = []  # one per sample, written in the shards' own layout (synth.shards)
            for sample in read_shard(folder / shard["file"]):
                view = convert_view(sample, finder, segmenter)
                records.append({"face": np.bool_(view is not None), **({} if view is None else
                                                                       {k: view[k] for k in PRIOR_SIDECAR_KEYS})})
                if view is None:
                    counts["no_face"] += 1
                else:
                    counts["fit_refused"] += int(not view["fit_ok"])
                counts["samples"] += 1
                if progress:
                    progress(counts["samples"], total)
            write_shard(folder / sidecar_name(shard["file"]), records)  # atomic, as shards are
            counts["shards_done"] += 1
    return counts


def examples_with_prior(run_seed: int, count: int, *, size: int, views: int) -> list[dict]:
    """``count`` examples (distance_noise 0, no partner) of run ``run_seed``'s people in convert's
    view, for validation: samples 0, 1, ... rendered on the fly, those without a face skipped."""
    from volume_cli.face import FaceFinder
    from volume_cli.segmentation import PersonSegmenter
    from volume_cli.synth.sample import generate_sample, sample_seed
    from volume_cli.train.data import example_rng, make_example

    out = []
    with FaceFinder(video=False) as finder, PersonSegmenter() as segmenter:
        i = 0
        while len(out) < count and i < 4 * count + 8:
            sample = generate_sample(sample_seed(run_seed, i), size=size, views=views, temporal=False)
            view = convert_view(sample, finder, segmenter)
            if view is not None:
                out.append(make_example(reframed(sample, view), example_rng(run_seed, i), distance_noise=0.0, pair=False))
            i += 1
    if len(out) < count:
        raise RuntimeError(f"MediaPipe found a face in only {len(out)} of {i} validation people")
    return out


def read_prior_sidecar(path: Path) -> list[dict | None]:
    """Per sample of the shard, in order: its convert view (PRIOR_SIDECAR_KEYS) or None (no face)."""
    from volume_cli.synth.shards import read_shard

    return [{k: r[k] for k in PRIOR_SIDECAR_KEYS} if bool(r["face"]) else None for r in read_shard(path)]


if __name__ == "__main__":  # python -m volume_cli.train.priors DIR [DIR ...]
    for arg in sys.argv[1:]:
        result = write_prior_sidecars(Path(arg), progress=lambda done, total: print(f"\r{arg}: {done}/{total}", end="", file=sys.stderr))
        print(f"\n{arg}: {result}", file=sys.stderr)
