"""Training data for the person matte: synthetic people framed as ``volume convert`` frames them,
with the truth's coverage of the crop.

Per person (``generate_sample(sample_seed(MATTE_RUN_SEED, i))``, one frame, no novel views):
MediaPipe's face mesh on the synthetic webcam frame and convert's framing (``crop_of_still``), the
still-image head fit and the prior channels exactly as ``prior_input.batch_prior_channels`` makes
them for the predictors (so the matte is trained on what it is given in convert), and the true
coverage (the frame's alpha) warped into that crop camera as the crop itself is. People MediaPipe
finds no face in are skipped, as convert skips those frames.

Shards of SHARD_SAMPLES people, ``DIR/matte_00000.npz`` ..., each (N = people kept):
    crop    uint8 [N, S, S, 3]
    prior   float16 [N, 10, S, S]   prior_input.PRIOR_CHANNELS
    valid   bool [N, S, S]          inside the original frame
    alpha   uint8 [N, S, S]         the true coverage (255 = opaque)
    seed    int64 [N]               sample seeds
A shard is written under a temporary name and renamed, so an interrupted run keeps what it
finished and a rerun makes only the rest; shards can be made by several processes at once
(``--worker K --workers N`` takes every N-th shard).

    python -m volume_cli.matte.dataset -o /tmp/matte_data --shards 120 --worker 0 --workers 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

# Its own people: neither a training run's (small run seeds), the validation's, the evaluation's
# (train.loop.RESERVED_RUN_SEEDS) nor the head model build's.
MATTE_RUN_SEED = 0x3A77E
SHARD_SAMPLES = 50


def shard_path(folder: Path, k: int) -> Path:
    return folder / f"matte_{k:05d}.npz"


def make_shard(k: int, finder, segmenter, size: int) -> dict[str, np.ndarray]:
    """Shard ``k``'s arrays (see the module docstring)."""
    from volume_cli import camera
    from volume_cli.framing import crop_of_still
    from volume_cli.pipeline import crop_batch
    from volume_cli.predictors.prior_input import batch_prior_channels
    from volume_cli.synth.sample import generate_sample, sample_seed

    rows: dict[str, list] = {"crop": [], "prior": [], "valid": [], "alpha": [], "seed": []}
    for j in range(SHARD_SAMPLES):
        seed = sample_seed(MATTE_RUN_SEED, k * SHARD_SAMPLES + j)
        sample = generate_sample(seed, size=size, views=1, temporal=False)
        fc = crop_of_still(sample["input_image"], sample["input_K"], finder, size)
        if fc is None:
            continue
        rows["crop"].append(fc.crop)
        rows["prior"].append(batch_prior_channels(crop_batch([fc], "cpu"), segmenter)[0].numpy().astype(np.float16))
        rows["valid"].append(fc.valid)
        rows["alpha"].append(camera.warp_crop(sample["input_alpha"], sample["input_K"], fc.cam))
        rows["seed"].append(seed)
    return {key: np.stack(values) for key, values in rows.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--shards", type=int, required=True, help="make shards 0 .. N-1 (those missing)")
    parser.add_argument("--first", type=int, default=0, help="start at this shard")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    from volume_cli.face import FaceFinder
    from volume_cli.segmentation import PersonSegmenter

    args.output.mkdir(parents=True, exist_ok=True)
    with FaceFinder(video=False) as finder, PersonSegmenter() as segmenter:
        for k in range(args.first, args.shards):
            path = shard_path(args.output, k)
            if k % args.workers != args.worker or path.exists():
                continue
            started = time.time()
            arrays = make_shard(k, finder, segmenter, args.size)
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez_compressed(tmp, **arrays)
            tmp.rename(path)
            print(f"shard {k}: {len(arrays['seed'])} people, {time.time() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
