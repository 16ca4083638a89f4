"""Shards on disk: the format ``volume synth`` writes and training reads.

Layout of an output folder::

    DIR/index.json              the index (below), written last: a folder without it is incomplete
    DIR/shard_000000.npz        samples 0 .. n-1 (n = samples per shard)
    DIR/shard_000001.npz        ...

Each shard is a numpy ``.npz`` (zip, deflate-compressed). Sample ``j`` of a shard stores every array
of :mod:`volume_cli.synth.sample` under ``"{j:05d}/{key}"`` (e.g. ``"00003/target_rgb"``) and its
metadata as UTF-8 JSON bytes in a uint8 array under ``"{j:05d}/meta"``. ``np.load`` reads members
lazily, so one sample can be read without decompressing the rest.

``index.json``::

    {"format": "volume-synth-shards", "format_version": 1,
     "count": N, "run_seed": S, "size": 256, "views": 4, "temporal": true,
     "shards": [{"file": "shard_000000.npz", "first": 0, "count": 32, "seeds": [...]}, ...],
     "keys": {"target_rgb": {"shape": [4, 256, 256, 3], "dtype": "uint8"}, ...},   # of sample 0
     "conventions": "..."}

Sample ``i`` has seed ``sample_seed(run_seed, i)`` and can be re-rendered alone with
``generate_sample(seed, size=..., views=..., temporal=...)``. Files are written under a temporary
name and renamed, so a crash never leaves a truncated shard under its final name.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

INDEX_NAME = "index.json"
FORMAT = "volume-synth-shards"
FORMAT_VERSION = 1
CONVENTIONS = (
    "world = input camera frame, OpenCV axes (x right, y down, z forward), metres; w2c are 4x4 "
    "world-to-camera; K has pixel centres at +0.5 and the principal point of WxH at (W/2, H/2); "
    "target_rgb is premultiplied by alpha; depth is camera z in metres, 0 = background"
)


def shard_name(k: int) -> str:
    return f"shard_{k:06d}.npz"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_shard(path: Path, samples: list[dict]) -> None:
    """Write ``samples`` (dicts from ``generate_sample``; "scene" entries are dropped) to ``path``."""
    arrays = {}
    for j, sample in enumerate(samples):
        for key, value in sample.items():
            if key == "scene":
                continue
            if key == "meta":
                arrays[f"{j:05d}/meta"] = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
            else:
                arrays[f"{j:05d}/{key}"] = np.asarray(value)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    _atomic_write(path, write)


def write_index(folder: Path, index: dict) -> None:
    index = {"format": FORMAT, "format_version": FORMAT_VERSION, **index, "conventions": CONVENTIONS}
    _atomic_write(folder / INDEX_NAME, lambda tmp: tmp.write_text(json.dumps(index, indent=1)))


def key_table(sample: dict) -> dict:
    return {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)} for k, v in sample.items() if k not in ("meta", "scene")}


def read_index(folder: Path) -> dict:
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a finished volume synth output")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} index (format={index.get('format')!r})")
    if index.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {index['format_version']}, this reader knows {FORMAT_VERSION}")
    return index


def read_shard(path: Path) -> Iterator[dict]:
    """Samples of one shard, in order, as dicts of numpy arrays plus "meta"."""
    with np.load(path) as z:
        members = sorted({name.split("/", 1)[0] for name in z.files})
        for m in members:
            sample = {}
            for name in z.files:
                prefix, key = name.split("/", 1)
                if prefix != m:
                    continue
                sample[key] = json.loads(bytes(z[name]).decode()) if key == "meta" else z[name]
            yield sample


def read_samples(folder: Path) -> Iterator[dict]:
    """Every sample of an output folder, in index order."""
    folder = Path(folder)
    for shard in read_index(folder)["shards"]:
        yield from read_shard(folder / shard["file"])


def is_valid_shard(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False
