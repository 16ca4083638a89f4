"""Torch datasets of synthetic samples: rendered on the fly (nothing to carry to the GPU machine) or
read from shards written by ``volume synth``. Both yield the same dict of tensors.

Tensor layout (float32 unless noted): images [3, H, W] in [0, 1]; alphas and depths [1, H, W];
views stacked first: target_rgb [V, 3, S, S] (premultiplied), target_alpha / target_depth
[V, 1, S, S]; cameras as in :mod:`volume_cli.synth.sample` (K [3, 3], w2c [4, 4]); ``seed`` int64.
The full-size input frame is left out by default (``with_frames=True`` keeps it); ``meta`` is
dropped (read it from the shards or re-draw it with ``draw_person``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from volume_cli.synth.sample import generate_sample, sample_seed
from volume_cli.synth.shards import read_index, read_shard

FRAME_KEYS = ("input_image", "input_alpha", "next_input_image", "next_input_alpha")


def to_tensors(sample: dict, with_frames: bool = False) -> dict[str, torch.Tensor]:
    """numpy sample -> tensors (layout in the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sample.items():
        if key in ("meta", "scene") or (not with_frames and key in FRAME_KEYS):
            continue
        a = np.asarray(value)
        if a.dtype == np.uint8:
            t = torch.from_numpy(np.ascontiguousarray(a)).float() / 255.0
            if a.shape[-1] == 3 and a.ndim >= 3:  # [..., H, W, 3] -> [..., 3, H, W]
                t = t.movedim(-1, -3)
            else:  # alpha [..., H, W] -> [..., 1, H, W]
                t = t.unsqueeze(-3)
        elif key.endswith("depth"):
            t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).unsqueeze(-3)
        elif a.dtype.kind in "iu":
            t = torch.as_tensor(a.astype(np.int64))
        else:
            t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        out[key] = t
    return out


def _worker_slice() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class SynthDataset(IterableDataset):
    """Samples rendered on the fly: sample i has seed ``sample_seed(run_seed, i)`` for i in
    ``range(length)`` (endless when length is None). DataLoader workers split the indices
    (worker w of n takes i = w, w + n, ...); each worker opens its own EGL context.

    Example: ``DataLoader(SynthDataset(run_seed=0, size=256, length=10_000), batch_size=8, num_workers=4)``.
    """

    def __init__(self, run_seed: int = 0, *, size: int = 256, views: int = 4, temporal: bool = True,
                 length: int | None = None, with_frames: bool = False, crop_source: str = "truth") -> None:
        super().__init__()
        self.crop_source = crop_source
        self.run_seed, self.size, self.views, self.temporal = run_seed, size, views, temporal
        self.length, self.with_frames = length, with_frames

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker, workers = _worker_slice()
        i = worker
        while self.length is None or i < self.length:
            sample = generate_sample(sample_seed(self.run_seed, i), size=self.size, views=self.views, temporal=self.temporal,
                                     crop_source=self.crop_source)
            yield to_tensors(sample, self.with_frames)
            i += workers


class ShardDataset(IterableDataset):
    """Samples read from a ``volume synth`` output folder; workers split the shards."""

    def __init__(self, folder: str | Path, *, with_frames: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.index = read_index(self.folder)
        self.with_frames = with_frames

    def __len__(self) -> int:
        return int(self.index["count"])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker, workers = _worker_slice()
        for k, shard in enumerate(self.index["shards"]):
            if k % workers == worker:
                for sample in read_shard(self.folder / shard["file"]):
                    yield to_tensors(sample, self.with_frames)
