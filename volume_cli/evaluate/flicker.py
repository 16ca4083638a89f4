"""Flicker of a converted sequence seen from fixed cameras: how much the splats' renders change from
one frame to the next when the viewer does not move.

The cameras are those of ``volume render --views``: the original camera swung about the median head
centre by each yaw, 256 px spanning the render's default extent. For each pair of consecutive
frames that were both predicted (``status == "ok"``, adjacent source indices; held frames would
count as perfectly still), the score is the mean absolute rgb difference (0-1 scale, averaged over
channels) over the pixels that both renders cover (alpha > 0.5), so the background does not dilute
it; the sequence's figure is the mean over pairs. Part of it is the person's real motion (speech,
blinks, the head moving in the fixed view), so compare predictors on the same clip, not with 0.

Run ``python -m volume_cli.evaluate.flicker SEQUENCE`` (a ``volume convert`` output folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np

from volume_cli.formats.manifest import Sequence

DEFAULT_YAWS = (0.0, 25.0)
COVERED_ALPHA = 0.5  # a pixel counts where both renders are at least this opaque


def consecutive_pairs(seq: Sequence) -> list[tuple[int, int]]:
    """Positions (i - 1, i) in ``seq.frames`` of frames both predicted and adjacent in the source."""
    frames = seq.frames
    return [(i - 1, i) for i in range(1, len(frames))
            if frames[i - 1].status == "ok" and frames[i].status == "ok" and frames[i].index == frames[i - 1].index + 1]


def fixed_camera_flicker(seq: Sequence, yaws_deg: tuple[float, ...] = DEFAULT_YAWS, size: int = 256,
                         progress: Callable[[int, int], None] | None = None) -> dict:
    """{"pairs": n, "yaws": {"+25": mean |difference|, ...}} over the consecutive predicted frames
    (see the module docstring). Raises ValueError when there is no such pair."""
    from volume_cli.playback import RenderSettings, target_centre
    from volume_cli.render import render, resolve_backend
    from volume_cli.render.paths import orbit_viewmats, render_intrinsics

    pairs = consecutive_pairs(seq)
    if not pairs:
        raise ValueError(f"{seq.root}: no two consecutive predicted frames to compare")
    centre = target_centre(seq)
    viewmats = orbit_viewmats(centre, list(yaws_deg))  # [C, 4, 4]
    K = render_intrinsics(size, float(np.linalg.norm(centre)), RenderSettings().extent_m)  # volume render's framing
    Ks = np.repeat(K[None], len(yaws_deg), 0)  # [C, 3, 3]
    pair_set = set(pairs)
    needed = sorted({i for pair in pairs for i in pair})
    scores = [[] for _ in yaws_deg]
    previous = None  # (position, RenderResult) of the last frame rendered
    for k, i in enumerate(needed):
        current = render(seq.read_frame(i), viewmats, Ks, size, size, backend=resolve_backend("auto", "cpu"))
        if previous is not None and (previous[0], i) in pair_set:
            a, b = previous[1], current
            for c in range(len(yaws_deg)):
                covered = (a.alpha[c] > COVERED_ALPHA) & (b.alpha[c] > COVERED_ALPHA)  # [H, W]
                if covered.any():
                    scores[c].append(float((a.rgb[c] - b.rgb[c]).abs().mean(-1)[covered].mean()))
        previous = (i, current)
        if progress:
            progress(k + 1, len(needed))
    return {"pairs": len(pairs), "size": size,
            "yaws": {f"{y:+.0f}": float(np.mean(s)) if s else float("nan") for y, s in zip(yaws_deg, scores)}}


def main(argv: list[str] | None = None) -> int:
    from volume_cli.formats.manifest import load_sequence

    parser = argparse.ArgumentParser(prog="python -m volume_cli.evaluate.flicker", description=__doc__.split("\n\n")[0])
    parser.add_argument("sequence", help="a volume convert output folder")
    parser.add_argument("--yaw", type=float, action="append", help="camera yaw in degrees (repeat; default 0 and 25)")
    parser.add_argument("--size", type=int, default=256, help="render side in pixels (default 256)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    show = not args.json and sys.stderr.isatty()  # a long clip renders for minutes: say how far it is
    progress = (lambda i, n: print(f"\rrender {i}/{n}", end="", file=sys.stderr, flush=True)) if show else None
    try:
        try:
            result = fixed_camera_flicker(load_sequence(args.sequence), tuple(args.yaw or DEFAULT_YAWS), args.size, progress)
        finally:
            if show:
                print(file=sys.stderr)  # end the progress line before anything else is printed
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['pairs']} frame pairs, {args.size} px: "
              + ", ".join(f"yaw {y}: {v:.4f}" for y, v in result["yaws"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
