"""Orchestration behind ``volume synth``: render N samples into shards, or a preview contact sheet."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from volume_cli.sheets import label, resize_to_height, stack_rows
from volume_cli.synth.sample import composite, generate_sample, sample_seed
from volume_cli.synth.shards import is_valid_shard, key_table, read_shard, shard_name, write_index, write_shard


def write_dataset(
    output: Path,
    *,
    count: int,
    run_seed: int,
    size: int = 256,
    views: int = 4,
    temporal: bool = True,
    shard_size: int = 32,
    crop_source: str = "truth",
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Render ``count`` samples into ``output`` (shards + index.json). Returns a summary dict.
    ``progress(n)`` is called after each sample with the number done so far. ``resume``: keep
    every complete shard already there whose samples are the ones this call would render (same
    seeds, size and views), so an interrupted run continues where it stopped."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    output.mkdir(parents=True, exist_ok=True)
    shards, keys, pending, done, reused = [], None, [], 0, 0
    start = time.perf_counter()
    for i in range(count):
        if resume and i % shard_size == 0:
            first_seeds = [sample_seed(run_seed, j) for j in range(i, min(i + shard_size, count))]
            kept = _reusable_shard(output / shard_name(len(shards)), first_seeds, size, views, temporal)
            if kept is not None:
                keys = keys or kept
                shards.append({"file": shard_name(len(shards)), "first": i, "count": len(first_seeds), "seeds": first_seeds})
                reused += len(first_seeds)
        if i < reused:
            done += 1
            if progress:
                progress(done)
            continue
        seed = sample_seed(run_seed, i)
        sample = generate_sample(seed, size=size, views=views, temporal=temporal, crop_source=crop_source)
        if keys is None:
            keys = key_table(sample)
        pending.append(sample)
        done += 1
        if progress:
            progress(done)
        if len(pending) == shard_size or i == count - 1:
            k = len(shards)
            write_shard(output / shard_name(k), pending)
            shards.append({"file": shard_name(k), "first": i + 1 - len(pending), "count": len(pending),
                           "seeds": [int(s["seed"]) for s in pending]})
            pending = []
    elapsed = time.perf_counter() - start
    rendered = count - reused
    index = {"count": count, "run_seed": run_seed, "size": size, "views": views, "temporal": temporal,
             "crop_source": crop_source, "shards": shards, "keys": keys}
    write_index(output, index)
    return {"output": str(output), "count": count, "shards": len(shards), "seconds": round(elapsed, 3),
            "samples_per_second": round(rendered / elapsed, 3) if elapsed > 0 and rendered else None,
            "reused": reused, "size": size, "views": views, "run_seed": run_seed}


def _reusable_shard(path: Path, seeds: list[int], size: int, views: int, temporal: bool) -> dict | None:
    """The key table of the shard at ``path`` if it is complete and holds exactly these samples
    (seeds in order, crop size, number of views, temporal partner or not); else None."""
    if not path.is_file() or not is_valid_shard(path):
        return None
    samples = list(read_shard(path))
    if [int(s["seed"]) for s in samples] != seeds:
        return None
    first = samples[0]
    if first["crop"].shape[0] != size or first["target_rgb"].shape[0] != views or ("next_crop" in first) != temporal:
        return None
    return key_table(first)


def contact_sheet(samples: list[dict], height: int) -> np.ndarray:
    """One row per sample: input frame (face box drawn), crop, next crop, then every target view
    over grey. uint8 [rows * height, W, 3]."""
    rows = []
    for s in samples:
        frame = s["input_image"].copy()
        x0, y0, x1, y1 = (int(round(v)) for v in s["face_box"])
        cv2.rectangle(frame, (x0, y0), (x1, y1), (0, 255, 0), max(1, frame.shape[0] // 200))
        meta = s["meta"]
        look, ident = meta["look"], meta["identity"]
        text = f"{int(s['seed']) % 100000} age {ident['age']:.0f} {look['hair_style']}" + (" glasses" if look["glasses"] else "")
        tiles = [label(resize_to_height(frame, height), text),
                 label(resize_to_height(s["crop"], height), f"crop ({meta.get('crop_source', 'truth')})")]
        if "next_crop" in s:
            tiles.append(label(resize_to_height(s["next_crop"], height), "next"))
        for v, (rgb, a) in enumerate(zip(s["target_rgb"], s["target_alpha"])):
            info = meta["target_views"][v]
            tiles.append(label(resize_to_height(composite(rgb, a, (110, 110, 110)), height),
                                "crop cam" if v == 0 else f"yaw {info['yaw']:.0f} pitch {info['pitch']:.0f}"))
        rows.append(tiles)
    return stack_rows(rows)


def write_preview(path: Path, *, run_seed: int, people: int = 6, size: int = 256, views: int = 4,
                  crop_source: str = "truth") -> dict:
    """Render ``people`` samples and write their contact sheet PNG to ``path``."""
    samples = [generate_sample(sample_seed(run_seed, i), size=size, views=views, crop_source=crop_source)
               for i in range(people)]
    sheet = contact_sheet(samples, height=size)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet[..., ::-1]):
        raise OSError(f"could not write {path}")
    return {"preview": str(path), "people": people, "size": size, "views": views, "run_seed": run_seed,
            "width": int(sheet.shape[1]), "height": int(sheet.shape[0])}
