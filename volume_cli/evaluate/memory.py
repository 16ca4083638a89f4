"""Peak memory of ``volume convert`` on long clips: ``python -m volume_cli.evaluate.memory``.

Clips of 1 and 16 minutes (``--minutes``) are made by looping the real selfie clip (72 frames,
640 x 360, 30 fps) into a temporary H.264 file. For each, a fresh process runs convert's first pass
(decode + face mesh for every frame, the landmarks into their file beside the output, the head
track, and with the whole-head prior the clip's identity and every frame's fit) and reports its
peak resident memory; another runs a whole convert of the shortest clip (``--whole-run-minutes``
of it: a convert runs at ~5 frames/s here). What must hold (issue 12):
from 1 to 16 minutes the first pass grows by less than 10 %. Prints one JSON object; a 16-minute
clip takes about 10 minutes of the 2-core machine (encoding it, then its first pass).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SELFIE = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "selfie_640x360.mp4"


def looped_clip(source: Path, minutes: float, out: Path) -> Path:
    """``source`` played forwards then backwards (no jump at the seams) until ``minutes`` long."""
    from volume_cli.video import VideoWriter, open_source

    src = open_source(source)
    frames = [f.image for f in src]
    cycle = frames + frames[-2:0:-1]
    total = int(round(minutes * 60 * (src.fps or 30)))
    with VideoWriter(out, src.fps or 30, frames[0].shape[1], frames[0].shape[0]) as writer:
        for i in range(total):
            writer.write(cycle[i % len(cycle)])
    return out


def _first_pass(clip: Path, predictor_name: str) -> dict:
    """In this process: convert's first pass and what follows it before any frame is predicted."""
    from volume_cli import pipeline
    from volume_cli.landmark_store import LandmarkStore
    from volume_cli.predictors import PredictorName, load_predictor
    from volume_cli.video import open_source

    settings = pipeline.ConvertSettings()
    source = open_source(clip)
    K = pipeline.original_intrinsics(source, settings)
    predictor = load_predictor(PredictorName(predictor_name), "cpu")
    with tempfile.TemporaryDirectory() as scratch, LandmarkStore(Path(scratch)) as store:
        tracked = pipeline.track(source, K, settings, pipeline.Progress(), store)
        pipeline._head_track(predictor, tracked, store, K, source.kind == "video", settings)
    return {"frames": len(tracked), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "volume_cli.evaluate.memory", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m volume_cli.evaluate.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 16.0])
    parser.add_argument("--whole-run-minutes", type=float, default=0.25)
    parser.add_argument("--predictor", default="geometric")
    parser.add_argument("--source", type=Path, default=SELFIE)
    parser.add_argument("--first-pass-of", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    if args.first_pass_of:
        print(json.dumps(_first_pass(args.first_pass_of, args.predictor)))
        return 0
    result: dict = {"predictor": args.predictor, "first_pass": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clips = {m: looped_clip(args.source, m, Path(tmp) / f"loop_{m:g}min.mp4") for m in args.minutes}
        for m, clip in clips.items():
            result["first_pass"][f"{m:g} min"] = _child(["--first-pass-of", str(clip), "--predictor", args.predictor])
        shortest = clips[min(clips)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, "-m", "volume_cli", "convert", str(shortest), "-o", str(Path(tmp) / "out"),
                        "--end", str(60 * args.whole_run_minutes), "--predictor", args.predictor, "--quiet"],
                       check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        # RUSAGE_CHILDREN's ru_maxrss is the largest child so far: valid for this run when it grew.
        result["whole_run"] = {"minutes": min(min(clips), args.whole_run_minutes), "peak_rss_mb": after / 1024 if after > before else None}
    peaks = [v["peak_rss_mb"] for v in result["first_pass"].values()]
    result["first_pass_growth"] = round(peaks[-1] / peaks[0] - 1, 4) if len(peaks) > 1 else None
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
