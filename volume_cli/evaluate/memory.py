"""Peak memory of ``volume convert`` on long clips: ``python -m volume_cli.evaluate.memory``.

Clips of 1 and 16 minutes (``--minutes``) are made by looping the real selfie clip (72 frames,
640 x 360, 30 fps) into a temporary H.264 file. For each, a fresh process runs convert's first pass
(decode + face mesh for every frame, the landmarks into their file beside the output, the head
track, and with the whole-head prior the clip's identity and every frame's fit) and reports its
peak resident memory; another runs a whole convert of the shortest clip (``--whole-run-minutes``
of it: a convert runs at ~5 frames/s here). What must hold (issue 12):
from 1 to 16 minutes the first pass grows by less than 10 %. Prints one JSON object; a 16-minute
clip takes about 10 minutes of the 2-core machine (encoding it, then its first pass).

The manifest writer (``--writer-frames N ...``, alone): convert's writer given N simulated
records of ~5 kB (a whole-head fit each), rewriting sequence.json every 1 000: the memory it holds
after the last (tracemalloc), which must not grow with N beyond a few dozen bytes a frame.

Playback (``--playback-minutes``, 1 and 4 by default): sequences of that length are made from 24
frames converted at 64 px, looped (the files hard-linked, the records repeated with their own
index and time), and a fresh process each runs ``volume info``, ``volume render --size 64`` and
the flicker command (64 px) on them; each reports its peak. Those read one frame's splats at a
time and sequence.json a record at a time (a few numbers a frame kept), so little grows with
the length.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


def looped_sequence(folder: Path, minutes: float, out: Path) -> Path:
    """A sequence folder ``minutes`` long at ``folder``'s frame rate, made of ``folder``'s frames in
    a loop: the frame files hard-linked (no disk for the copies), each record repeated with its own
    index, time and file name; sequence.json written as convert writes it (one record a line)."""
    from dataclasses import replace

    from volume_cli.formats import frame_file_name, read_manifest
    from volume_cli.formats.manifest import record_line, write_manifest_lines

    manifest = read_manifest(folder)
    cycle = manifest.frames
    fps = manifest.source.fps or 30.0
    out.mkdir(parents=True)

    def lines():
        for i in range(int(round(minutes * 60 * fps))):
            looped = cycle[i % len(cycle)]
            record = replace(looped, index=i, time_s=i / fps, file=frame_file_name(i, manifest.splat_format))
            os.link(folder / looped.file, out / record.file)
            yield record_line(record)

    write_manifest_lines(out, manifest.header().to_dict(), lines(), [])
    return out


def simulated_record(i: int, fps: float = 30.0) -> dict:
    """A frame record as convert makes it with the whole-head prior (~5 kB of JSON: the fitted
    head's 52 expression weights are most of it)."""
    rng = random.Random(i)
    row = lambda n: [rng.uniform(-1, 1) for _ in range(n)]  # noqa: E731
    return {
        "index": i, "file": f"frame_{i:06d}.ply", "time_s": i / fps, "num_splats": 90_000 + i % 977, "status": "ok",
        "rotation": [row(3) for _ in range(3)], "virtual_K": [row(3) for _ in range(3)], "face_box": row(4),
        "head_center": row(3), "distance_m": rng.uniform(0.4, 0.8),
        "head": {"ok": True, "residual_mm": rng.uniform(1, 3), "scale": rng.uniform(0.9, 1.1),
                 "rotation": [row(3) for _ in range(3)], "translation_m": row(3),
                 "expression": {f"faceUnit{k:02d}_{'LR'[k % 2]}": rng.uniform(0, 1) for k in range(52)}},
    }


def _writer(frames: int, flush_every: int) -> dict:
    """In this process: convert's manifest writer (pipeline._Folder) given ``frames`` records,
    rewriting sequence.json every ``flush_every``; what tracemalloc sees it hold and at most."""
    import tracemalloc

    from volume_cli import pipeline

    header = {"format": "volume-sequence", "version": 1, "tool": {"name": "volume", "version": "0"}, "created": "2025-01-01T00:00:00Z",
              "source": {"path": "talk.mp4", "kind": "video", "fps": 30.0, "frame_count": frames, "rotation_deg": 0},
              "image_size": [640, 360], "intrinsics": {"K": [[500.0, 0.0, 320.0], [0.0, 500.0, 180.0], [0.0, 0.0, 1.0]], "focal_px": 500.0, "fov_deg": 60.0},
              "crop_size": 256, "coordinates": pipeline.COORDINATES, "predictor": {"name": "geometric", "weights_sha256": None},
              "splat_format": "ply", "options": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = pipeline._Folder(Path(tmp), header, [])
        folder.open(previous=False)
        folder.flush()  # what a first rewrite imports and caches is not the records'
        tracemalloc.start()
        for i in range(frames):
            folder.add(simulated_record(i))
            if (i + 1) % flush_every == 0:
                folder.flush()
        held = tracemalloc.get_traced_memory()[0]
        folder.flush(complete=True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        folder.close()
        size = (Path(tmp) / pipeline.MANIFEST_NAME).stat().st_size
    return {"frames": frames, "held_mb": round(held / 1e6, 2), "peak_mb": round(peak / 1e6, 2),
            "bytes_held_a_frame": round(held / frames, 1), "sequence_json_mb": round(size / 1e6, 1)}


def _peak_mb(cmd: list[str]) -> float:
    """Run ``cmd`` to its end; its own peak resident memory in MB (os.wait4 reports the one child)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise subprocess.CalledProcessError(proc.returncode, cmd, stderr=err.read())
    return usage.ru_maxrss / 1024


def _playback(source: Path, minutes: list[float], tmp: Path) -> dict:
    volume = [sys.executable, "-m", "volume_cli"]
    frames = tmp / "frames"
    subprocess.run([*volume, "convert", str(source), "-o", str(frames), "--max-frames", "24", "--size", "64", "--quiet"],
                   check=True, capture_output=True)
    result = {}
    for m in minutes:
        seq = looped_sequence(frames, m, tmp / f"seq_{m:g}min")
        result[f"{m:g} min"] = {
            "frames": len(list(seq.glob("frame_*"))),
            "sequence_json_mb": round((seq / "sequence.json").stat().st_size / 1e6, 1),
            "info_mb": _peak_mb([*volume, "info", str(seq), "--json"]),
            "render_mb": _peak_mb([*volume, "render", str(seq), "-o", str(tmp / f"render_{m:g}.mp4"), "--size", "64", "--quiet"]),
            "flicker_mb": _peak_mb([sys.executable, "-m", "volume_cli.evaluate.flicker", str(seq), "--size", "64", "--json"]),
        }
    return result


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "volume_cli.evaluate.memory", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m volume_cli.evaluate.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 16.0])
    parser.add_argument("--whole-run-minutes", type=float, default=0.25)
    parser.add_argument("--playback-minutes", type=float, nargs="*", default=[1.0, 4.0],
                        help="sequence lengths for info, render and flicker (none: skip them)")
    parser.add_argument("--predictor", default="geometric")
    parser.add_argument("--source", type=Path, default=SELFIE)
    parser.add_argument("--writer-frames", type=int, nargs="*", default=[],
                        help="only measure convert's manifest writer (tracemalloc) over this many simulated records")
    parser.add_argument("--first-pass-of", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    if args.first_pass_of:
        print(json.dumps(_first_pass(args.first_pass_of, args.predictor)))
        return 0
    if args.writer_frames:
        print(json.dumps({"writer": [_writer(n, flush_every=1000) for n in args.writer_frames]}))
        return 0
    result: dict = {"predictor": args.predictor, "first_pass": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clips = {m: looped_clip(args.source, m, Path(tmp) / f"loop_{m:g}min.mp4") for m in args.minutes}
        for m, clip in clips.items():
            result["first_pass"][f"{m:g} min"] = _child(["--first-pass-of", str(clip), "--predictor", args.predictor])
        shortest = clips[min(clips)]
        peak = _peak_mb([sys.executable, "-m", "volume_cli", "convert", str(shortest), "-o", str(Path(tmp) / "out"),
                         "--end", str(60 * args.whole_run_minutes), "--predictor", args.predictor, "--quiet"])
        result["whole_run"] = {"minutes": min(min(clips), args.whole_run_minutes), "peak_rss_mb": peak}
        if args.playback_minutes:
            result["playback"] = _playback(args.source, args.playback_minutes, Path(tmp))
    peaks = [v["peak_rss_mb"] for v in result["first_pass"].values()]
    result["first_pass_growth"] = round(peaks[-1] / peaks[0] - 1, 4) if len(peaks) > 1 else None
    if len(result.get("playback", {})) > 1:
        first, last = list(result["playback"].values())[0], list(result["playback"].values())[-1]
        result["playback_growth"] = {k.removesuffix("_mb"): round(last[k] / first[k] - 1, 4) for k in ("info_mb", "render_mb", "flicker_mb")}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
