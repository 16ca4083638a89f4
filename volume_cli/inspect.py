"""`volume info`: a summary of a splat sequence, as a JSON-ready dict."""

from __future__ import annotations

from pathlib import Path

import torch

from volume_cli.formats.manifest import load_sequence


def describe(path: Path) -> dict:
    """Frames, splats per frame, bounding box of all splat centres (metres, original camera frame),
    fps, predictor and missing frames of the sequence (folder, sequence.json or one splat file).
    Reads every frame file: the counts and the box are measured, not copied from the manifest."""
    seq = load_sequence(path)
    counts = []
    lo = torch.full((3,), float("inf"))
    hi = torch.full((3,), float("-inf"))
    for i in range(len(seq.frames)):
        g = seq.read_frame(i)
        counts.append(g.count)
        if g.count:
            lo = torch.minimum(lo, g.means.min(0).values)
            hi = torch.maximum(hi, g.means.max(0).values)
    m = seq.manifest
    missing = sorted(m.missing.index[~m.missing.held].tolist()) if m else []
    return {
        "path": str(path),
        "frames": len(seq.frames),
        "held": int(m.frames.held.sum()) if m else 0,
        "missing": len(missing),
        "missing_frames": missing,
        "complete": m.complete if m else True,
        "splats_per_frame": {
            "min": min(counts, default=0),
            "mean": sum(counts) / len(counts) if counts else 0.0,
            "max": max(counts, default=0),
        },
        "bounding_box_m": {"min": lo.tolist(), "max": hi.tolist()} if counts and max(counts) else None,
        "fps": seq.fps,
        "duration_s": (seq.frames[-1].time_s - seq.frames[0].time_s) if len(seq.frames) > 1 else 0.0,
        "image_size": m.image_size if m else None,
        "predictor": m.predictor.name if m else None,
        "splat_format": seq.splat_format.value,
        "source": m.source.path if m else None,
    }
