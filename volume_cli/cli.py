"""The `volume` command line: convert, render, view, info, bench.

Results go to stdout (one JSON object with --json); progress, warnings and errors go to stderr.
Exit codes: 0 success, 1 an expected failure (bad input, no face, ...) reported as one line
"Error: ...", 2 a usage error (unknown option, bad value), 130 interrupted (Ctrl-C, or SIGTERM
from kill, timeout or a cancelled job: both stop cleanly, finishing the files in flight).
"""

from __future__ import annotations

import enum
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

# convert and render run threads beside torch's (decoding, writing, MediaPipe's graphs). With
# OpenMP's default spin-waiting, idle torch threads keep the cores busy and starve them: a
# prediction took 1.5 s instead of 0.45 s on 2 busy cores. Set before torch loads; a user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# NumPy's and SciPy's OpenBLAS start a thread per core that waits by calling sched_yield in a
# loop; our matrices are small (the head fit's), and on 2 cores those threads took ~10 % of the
# CPU and 3 of a convert's 4 s of system time. One thread: set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer

from volume_cli import __version__
from volume_cli.concurrency import signal_as_interrupt
from volume_cli.formats import MANIFEST_NAME, SplatFormat
from volume_cli.pipeline import OnMissing
from volume_cli.predictors import PredictorName

app = typer.Typer(
    name="volume",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
# examples/hopper.mp4 of a source checkout (an installed wheel does not carry it).
BUNDLED_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hopper.mp4"


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# Options shared by several commands.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else (no progress).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or warnings; results and errors only.")]
DeviceOpt = Annotated[Device, typer.Option(help="Where to run: auto picks cuda when available, else cpu.")]


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    print(f"Error: {message}", file=sys.stderr)
    return typer.Exit(code)


def os_error_message(e: OSError, target: Path) -> str:
    """One line for an OSError met while writing ``target``: "out/frame_000003.ply: No space left on device"."""
    return f"{e.filename or target}: {e.strerror or e}"


def sigterm_as_interrupt():
    """Within the block SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so that a pipeline's kill
    or timeout also leaves complete files and an up-to-date sequence.json (the default handler
    ends the process at once)."""
    return signal_as_interrupt(signal.SIGTERM)


def resolve_device(device: Device) -> str:
    import torch

    if device is Device.cuda and not torch.cuda.is_available():
        raise fail("--device cuda was asked for but CUDA is not available here (use --device cpu or auto)")
    if device is Device.auto:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device.value


def emit(result: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for line in lines:
            print(line)


def version_callback(value: bool) -> None:
    if value:
        print(f"volume {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Turn a recorded talking-head video into 3D Gaussian splats, one set per frame, and render them back.

    Coordinates: every splat set is in the ORIGINAL camera's frame, OpenCV axes (x right, y down,
    z forward), metres, camera at the origin; a sequence replays the person's real motion.
    Exit codes: 0 success, 1 failure ("Error: ..." on stderr), 2 usage error, 130 interrupted.
    """


@app.command()
def convert(
    source: Annotated[list[str], typer.Argument(help="Video file, image, or folder of images. Several (or @FILE, a file of paths, one a line): each is converted into its own folder under -o, named after the clip.", show_default=False, metavar="SOURCE")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write frame_NNNNNN.ply and sequence.json into (with several clips: the folder their folders go into).", show_default=False)],
    fov: Annotated[Optional[float], typer.Option(help="Camera field of view across the longer image side, degrees. [default: 65, a typical webcam]")] = None,
    focal: Annotated[Optional[float], typer.Option(help="Camera focal length in pixels (overrides --fov).")] = None,
    size: Annotated[int, typer.Option(help="Side of the square head crop in pixels; two splats per crop pixel before pruning.", min=64, max=1024)] = 256,
    start: Annotated[Optional[float], typer.Option(help="First time to convert, seconds.", min=0)] = None,
    end: Annotated[Optional[float], typer.Option(help="Stop before this time, seconds.", min=0)] = None,
    every: Annotated[int, typer.Option(help="Convert every N-th frame.", min=1)] = 1,
    max_frames: Annotated[Optional[int], typer.Option(help="Convert at most N frames.", min=1)] = None,
    format: Annotated[SplatFormat, typer.Option("--format", help="Splat file format: ply (3DGS, lossless), splat (antimatter15, 32 B a splat), ply-compressed (SuperSplat, 16 B a splat).")] = SplatFormat.ply,
    predictor: Annotated[PredictorName, typer.Option(help="Predictor: geometric (MediaPipe's face mesh on a whole MakeHuman head fitted to it, hair on a shell over the skull, and splats on the side the camera does not see coloured from the clip's other frames; no learning; where the head cannot be fitted a frame falls back to an ellipsoid, and sequence.json says so), geometric-ellipsoid (the older proxy everywhere: face mesh on an ellipsoid, hair a cut-out) or unet (the dual-Gaussian network in weights/, trained on CPU so far: rounder heads, truer novel views and less flicker on real video, input view nearly as faithful on real photos, but it keeps background beside the head and smears the far side at 40 degrees; see the README).")] = PredictorName.geometric,
    weights: Annotated[Optional[Path], typer.Option("--weights", exists=True, dir_okay=False, help="With --predictor unet: a .safetensors file of your own training (its .json model card beside it). [default: weights/unet.safetensors]")] = None,
    device: DeviceOpt = Device.auto,
    batch_size: Annotated[int, typer.Option(help="Crops per predictor call.", min=1)] = 8,
    on_missing: Annotated[OnMissing, typer.Option(help="Frames with no face: skip (write nothing), hold (repeat the previous frame's splats), fail (stop before writing anything).")] = OnMissing.skip,
    overwrite: Annotated[bool, typer.Option(help="Replace the splats and sequence.json in a non-empty output folder.")] = False,
    resume: Annotated[bool, typer.Option(help="Finish an interrupted run into the same folder (same input and options); with several clips, each clip's own folder.")] = False,
    jobs: Annotated[int, typer.Option(help="With several clips: how many to convert at a time on this machine (each in its own process).", min=1)] = 1,
    on_ray: Annotated[bool, typer.Option("--ray", help="Convert each clip as a task on a Ray cluster (even a single clip: it goes into DIR/<clip name>): the one at --ray-address, else $RAY_ADDRESS, else the one started on this machine (ray start), else a new local Ray for this run. One GPU a clip when the predictor runs on CUDA; a clip whose worker dies is retried and resumes its folder. The clips and -o must be at the same paths on every node. Needs pip install \"volume[cluster]\".")] = False,
    ray_address: Annotated[Optional[str], typer.Option(help="The Ray cluster for --ray (implies it), as ray.init takes it: HOST:6379, ray://HOST:10001, auto or local.")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show MediaPipe's own log lines on stderr.")] = False,
) -> None:
    """Convert a video (or images) into a folder of per-frame Gaussian splats.

    Several clips (volume convert a.mp4 b.mp4 -o DIR, or @list.txt) each get DIR/<clip name>
    (the same name twice: name-2, ...); --jobs N converts N at a time. One line per clip on stderr
    (or with --json one object listing each clip's result or error); exit 0 when every clip
    converted, 1 when any failed (the others finish regardless), 130 when interrupted.

    Ctrl-C or SIGTERM stops cleanly: the files in flight are finished, sequence.json lists what is
    on disk, exit 130 (with --json stdout still gets one object, "complete": false); run the same
    command with --resume to finish.

    Example: volume convert talk.mp4 -o splats/ --max-frames 100

    Example: volume convert @calls.txt -o splats/ --jobs 2 --json

    Example: volume convert @calls.txt -o /shared/splats/ --ray-address head:6379
    """
    on_ray = on_ray or ray_address is not None
    if len(source) > 1 or source[0].startswith("@") or on_ray:
        if on_ray and jobs != 1:
            raise typer.BadParameter("--jobs is for this machine; with --ray the cluster's CPUs and GPUs decide how many run at a time")
        child = _convert_options(fov=fov, focal=focal, size=size, start=start, end=end, every=every, max_frames=max_frames,
                                 format=format.value, predictor=predictor.value, weights=weights and weights.absolute(),
                                 device=device.value, batch_size=batch_size, on_missing=on_missing.value, overwrite=overwrite,
                                 resume=resume)
        ray = {"address": ray_address, "device": device.value} if on_ray else None
        _convert_many(source, output, child, jobs, as_json=as_json, quiet=quiet, ray=ray)
        return
    source = Path(source[0])
    from volume_cli import pipeline
    from volume_cli.head.model import HeadModelError
    from volume_cli.predictors import load_predictor
    from volume_cli.predictors.unet import WeightsError
    from volume_cli.progress import RichProgress, silence_native_stderr, warn
    from volume_cli.video import InputError, open_source

    if not verbose:
        silence_native_stderr()

    if overwrite and resume:
        raise typer.BadParameter("use either --overwrite or --resume, not both")
    if weights is not None and predictor is not PredictorName.unet:
        raise typer.BadParameter("--weights is for --predictor unet")
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter(f"--end ({end}) must be after --start ({start})")
    if focal is not None and focal <= 0 or fov is not None and not 1 < fov < 179:
        raise typer.BadParameter("--focal must be positive and --fov between 1 and 179 degrees")

    settings = pipeline.ConvertSettings(
        fov_deg=fov, focal_px=focal, size=size, start_s=start, end_s=end, every=every, max_frames=max_frames,
        splat_format=format, on_missing=on_missing, predictor=predictor.value,
    )
    run_device = resolve_device(device)
    progress = RichProgress(enabled=not (quiet or as_json))
    try:
        with sigterm_as_interrupt():
            src = open_source(source, start_s=start, end_s=end, every=every, max_frames=max_frames)
            model = load_predictor(predictor, run_device, weights)
            report = pipeline.convert(
                src, output, model, settings, device=run_device, batch_size=batch_size,
                overwrite=overwrite, resume=resume, progress=progress,
            )
    except (InputError, WeightsError, HeadModelError) as e:
        raise fail(str(e))
    except OSError as e:  # the output folder cannot be written: permissions, disk full, ...
        raise fail(os_error_message(e, output))
    except KeyboardInterrupt:
        progress.stop()
        started = (output / MANIFEST_NAME).exists()
        if as_json:  # a script still gets its one object: what is on disk, and how to finish
            print(json.dumps(_interrupted_summary(output, started)))
        if not started:
            raise fail("interrupted before any frame was written", EXIT_INTERRUPTED)
        raise fail(f"interrupted; {output} holds the frames finished so far. Run the same command with --resume to finish.", EXIT_INTERRUPTED)
    for w in report.warnings:
        warn(w, quiet or as_json)
    total = report.frames_written + report.frames_held
    fps = report.frames_written / report.seconds if report.seconds > 0 else 0.0
    result = {
        "output": str(report.output),
        "frames_written": report.frames_written,
        "frames_held": report.frames_held,
        "frames_missing": report.frames_missing,
        "frames_resumed": report.frames_resumed,
        "seconds": round(report.seconds, 3),
        "frames_per_second": round(fps, 2),
        # Seconds in each stage: track (decode + face mesh, pass 1), decode+crop, predict and write
        # (pass 2; decode+crop and write run beside predict, so the stages overlap).
        "stage_seconds": {k: round(v, 2) for k, v in report.stage_seconds.items()},
        "warnings": report.warnings,
    }
    lines = [f"Wrote {total} frames to {report.output} ({report.frames_held} held, {report.frames_missing} without a face skipped"
             + (f", {report.frames_resumed} from the earlier run" if report.frames_resumed else "")
             + f") in {report.seconds:.1f} s, {fps:.1f} frames/s"]
    emit(result, as_json, lines)


def _convert_options(**options) -> list[str]:
    """The single-clip convert options of a batch, as a clip's own command line takes them."""
    args = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        elif value is not None:
            args += [flag, str(value)]
    return args


def _convert_many(items: list[str], output: Path, child_args: list[str], jobs: int, *, as_json: bool, quiet: bool,
                  ray: dict | None = None) -> None:
    from volume_cli.batch.clips import EXIT_INTERRUPTED, BatchInputError, convert_clips, expand_sources, output_folders
    from volume_cli.batch.ray_cluster import INSTALL_HINT, ClusterError, convert_clips_on_ray, ray_installed

    if ray is not None and not ray_installed():
        raise fail(f"--ray needs Ray, which is not installed: {INSTALL_HINT}", code=2)
    try:
        sources = expand_sources(items)
    except BatchInputError as e:
        raise fail(str(e))
    folders = output_folders(sources, output)

    def report(r, done: int, total: int) -> None:
        if quiet or as_json:
            return
        if r.ok:
            frames = (r.summary or {}).get("frames_written", "?")
            print(f"[{done}/{total}] {r.source} -> {r.output}: {frames} frames", file=sys.stderr)
        else:
            print(f"[{done}/{total}] {r.source}: {'interrupted' if r.exit_code == EXIT_INTERRUPTED else 'failed'}: {r.error}", file=sys.stderr)

    with sigterm_as_interrupt():
        if ray is None:
            results, interrupted = convert_clips(list(zip(sources, folders)), child_args, jobs, on_done=report)
        else:
            try:
                results, interrupted = convert_clips_on_ray(list(zip(sources, folders)), child_args, **ray,
                                                            quiet=quiet or as_json, on_done=report)
            except ClusterError as e:
                raise fail(str(e))
    converted = sum(r.ok for r in results)
    failed = sum(1 for r in results if r.exit_code not in (0, None, EXIT_INTERRUPTED))
    summary = {"output": str(output), "clips": [r.as_json() for r in results], "converted": converted, "failed": failed,
               "complete": converted == len(results)}
    lines = [f"Converted {converted} of {len(results)} clips into {output}" + (f"; {failed} failed" if failed else "")
             + ("; interrupted (run the same command with --resume to finish)" if interrupted else "")]
    emit(summary, as_json, lines)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if failed or converted < len(results):
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def render(
    sequence: Annotated[Path, typer.Argument(help="Sequence folder, its sequence.json, or one splat file (.ply, .splat, .compressed.ply).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Video to write (.mp4, .mov, .mkv: H.264; .webm: VP9).", show_default=False)] = None,
    png: Annotated[Optional[Path], typer.Option(help="Write frame_000000.png ... into this folder instead of a video.", show_default=False)] = None,
    orbit: Annotated[Optional[float], typer.Option(help="Orbit: the camera swings +-DEG of yaw around the head, in step with the frames. [default: 30]", min=0, max=90)] = None,
    parallax: Annotated[Optional[float], typer.Option(help="Parallax: the camera slides +-CM sideways, as for a head-tracked display.", min=0, max=50)] = None,
    views: Annotated[Optional[str], typer.Option(help="Fixed views side by side at these yaws in degrees, e.g. -40,0,40.")] = None,
    period: Annotated[float, typer.Option(help="Seconds for one full orbit or parallax swing.", min=0.1)] = 4.0,
    side_by_side: Annotated[bool, typer.Option(help="Put the source frame to the left of the render.")] = False,
    size: Annotated[int, typer.Option(help="Height and width of each rendered panel, pixels (even).", min=16, max=4096)] = 512,
    fps: Annotated[Optional[float], typer.Option(help="Output frame rate. [default: the sequence's]", min=0.1)] = None,
    frames: Annotated[Optional[int], typer.Option(help="For a single splat file: how many frames to render. [default: one period; 1 with --views, whose fixed cameras see the same picture every frame]", min=1)] = None,
    background: Annotated[str, typer.Option(help="black, white, gray, green, #RRGGBB or R,G,B.")] = "black",
    device: DeviceOpt = Device.auto,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file or non-empty --png folder.")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Render a splat sequence (or one splat file) into a video from a moving camera.

    Example: volume render splats/ --orbit 40 -o orbit.mp4
    """
    from volume_cli import playback
    from volume_cli.formats import load_sequence
    from volume_cli.progress import RichProgress
    from volume_cli.video import InputError, PngWriter, VideoWriter

    if (output is None) == (png is None):
        raise typer.BadParameter("give exactly one of --output/-o (a video) or --png (a folder)")
    if sum(x is not None for x in (orbit, parallax, views)) > 1:
        raise typer.BadParameter("choose one camera path: --orbit, --parallax or --views")
    if size % 2:
        raise typer.BadParameter(f"--size must be even (video encoders need even sizes), got {size}")
    try:
        bg = playback.parse_background(background)
        yaws = tuple(float(v) for v in views.split(",")) if views is not None else ()
    except ValueError as e:
        raise typer.BadParameter(str(e) if views is None or "background" in str(e) else f"--views must be comma-separated degrees, got {views!r}")
    if views is not None:
        kind = playback.PathKind.views
    elif parallax is not None:
        kind = playback.PathKind.parallax
    else:
        kind = playback.PathKind.orbit
    settings = playback.RenderSettings(
        path=kind, orbit_deg=30.0 if orbit is None else orbit, parallax_m=(parallax or 0.0) / 100.0,
        views_deg=yaws or (-40.0, 0.0, 40.0), period_s=period, size=size, fps=fps, background=bg,
        side_by_side=side_by_side, loop_frames=frames,
    )
    target = output if output is not None else png
    if output is not None and output.is_dir():
        raise fail(f"{output} is a folder; give a video file name (or use --png FOLDER)")
    if output is not None and not output.absolute().parent.is_dir():
        raise fail(f"cannot write {output}: {output.parent} is not an existing folder")
    if output is not None and output.exists() and not overwrite:
        raise fail(f"{output} exists; use --overwrite to replace it")
    if png is not None and png.exists() and not png.is_dir():
        raise fail(f"{png} exists and is not a folder")
    if png is not None and png.exists() and any(png.iterdir()) and not overwrite:
        raise fail(f"{png} is not empty; use --overwrite to write into it")
    run_device = resolve_device(device)
    progress = RichProgress(enabled=not (quiet or as_json))
    try:
        with sigterm_as_interrupt():
            seq = load_sequence(sequence)
            if not seq.frames:
                raise InputError(f"{sequence}: the sequence has no frames")
            width, height = playback.output_size(seq, settings)
            _, _, out_fps = playback.frame_times(seq, settings)
            writer = VideoWriter(output, out_fps, width, height) if output is not None else PngWriter(png)
            with writer:
                report = playback.render_sequence(seq, writer, settings, device=run_device, progress=progress)
    except (InputError, ValueError) as e:
        raise fail(str(e))
    except OSError as e:
        raise fail(os_error_message(e, target))
    except KeyboardInterrupt:
        progress.stop()
        raise fail("interrupted; no video was written" if output is not None else f"interrupted; {png} holds the frames rendered so far", EXIT_INTERRUPTED)
    result = {
        "output": str(target), "frames": report.frames, "width": report.width, "height": report.height,
        "fps": round(report.fps, 3), "seconds": round(report.seconds, 3),
        "render_ms_per_frame": round(1000 * report.render_seconds / max(report.frames, 1), 1),
    }
    emit(result, as_json, [f"Wrote {report.frames} frames ({report.width}x{report.height}, {report.fps:.2f} fps) to {target} in {report.seconds:.1f} s"])


@app.command()
def info(
    sequence: Annotated[Path, typer.Argument(help="Sequence folder, its sequence.json, or one splat file.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Describe a splat sequence: frames, splats per frame, bounding box, fps, predictor, missing frames.

    Example: volume info splats/ --json
    """
    from volume_cli.inspect import describe

    try:
        result = describe(sequence)
    except (ValueError, FileNotFoundError) as e:
        raise fail(str(e))
    if as_json:
        print(json.dumps(result))
        return
    splats = result["splats_per_frame"]
    bbox = result["bounding_box_m"]
    lines = [
        f"{result['path']}",
        f"  frames        {result['frames']} ({result['held']} held, {result['missing']} missing)"
        + ("" if result["complete"] else "  [INCOMPLETE: run convert --resume]"),
        f"  splats/frame  min {splats['min']}, mean {splats['mean']:.0f}, max {splats['max']}",
        f"  bounding box  x {bbox['min'][0]:.3f}..{bbox['max'][0]:.3f}  y {bbox['min'][1]:.3f}..{bbox['max'][1]:.3f}  z {bbox['min'][2]:.3f}..{bbox['max'][2]:.3f} m",
        f"  fps           {result['fps'] if result['fps'] is not None else 'n/a'}",
        f"  predictor     {result['predictor']}",
        f"  format        {result['splat_format']}",
    ]
    if result["missing_frames"]:
        lines.append(f"  missing       frames {_ranges(result['missing_frames'])}")
    emit(result, False, lines)


@app.command()
def view(
    sequence: Annotated[Path, typer.Argument(help="Sequence folder, its sequence.json, or one splat file.", show_default=False)],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to serve on; 0 picks a free one.", min=0, max=65535)] = 0,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in the default browser.")] = True,
    loop: Annotated[bool, typer.Option("--loop/--no-loop", help="Play in a loop, or stop at the end (the page can change it).")] = True,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Show the source video beside the splats, in step with them (when the source file is readable; the page can hide it).")] = False,
    export: Annotated[Optional[Path], typer.Option("--export", help="Instead of serving: write the page and the frames (.spz, ~11 bytes a splat) into this folder, for any web server (python -m http.server -d DIR) or to send. It must be new, empty, or an earlier export.", show_default=False)] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Watch a sequence in 3D in the browser: it plays at its own timestamps while you orbit.

    Serves a page on 127.0.0.1 only and prints its URL; Ctrl-C stops it (exit 0). The page:
    drag to orbit around the head, right-drag (or two fingers) to pan, wheel (or pinch) to zoom;
    play/pause (space), frame step (arrow keys), time slider, speed, loop, reset view (r) back to
    the input camera. Everything the page loads comes from this server: the renderer (three.js and
    Spark, MIT) ships inside volume. Works in Chromium and Firefox, also with software WebGL.
    With --json: one line {"url", "port", "frames", "video"} when serving, the export summary with --export.

    Example: volume view splats/

    Example: volume view splats/ --side-by-side --port 8080 --no-open

    Example: volume view splats/ --export viewer/ && python -m http.server -d viewer/
    """
    from volume_cli.view import command

    try:
        loaded = command.open_sequence(sequence)
        if export is not None:
            summary = command.export(loaded, export, loop=loop, side_by_side=side_by_side, as_json=as_json, quiet=quiet)
            emit(summary, as_json, [f"Wrote the viewer for {summary['frames']} frames to {export} ({summary['frame_bytes'] / 1e6:.1f} MB of frames)"
                                    + ("" if as_json or quiet else f"; serve it with: python -m http.server -d {export}")])
            return
        command.serve(loaded, port=port, open_browser=open_browser, loop=loop, side_by_side=side_by_side, as_json=as_json, quiet=quiet)
    except command.ViewError as e:
        raise fail(str(e))
    except KeyboardInterrupt:
        print("Interrupted; the export folder has no index.html until it is run again.", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def bench(
    source: Annotated[Path, typer.Argument(help="Video to time on. [default: the bundled example]", show_default=False)] = BUNDLED_EXAMPLE,
    frames: Annotated[int, typer.Option(help="Frames to time.", min=1)] = 48,
    size: Annotated[int, typer.Option(help="Crop size.", min=64, max=1024)] = 256,
    predictor: Annotated[PredictorName, typer.Option(help="Predictor to time.")] = PredictorName.geometric,
    weights: Annotated[Optional[Path], typer.Option("--weights", exists=True, dir_okay=False, help="With --predictor unet: its weights. [default: weights/unet.safetensors]")] = None,
    device: DeviceOpt = Device.auto,
    train_step: Annotated[bool, typer.Option("--train-step/--no-train-step", help="Also time a training step (64 and 128 px) with each rasteriser: about a minute on 2 cores; needs volume synth's EGL.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Time each convert stage and the whole pipeline (frames/s), rendering with each CPU
    rasteriser (ms/frame: the compiled one beside the pure-torch reference) and a training step
    with each (s/step).

    Example: volume bench examples/hopper.mp4 --frames 48
    """
    from volume_cli.evaluate import bench as benchmarks
    from volume_cli.predictors import load_predictor
    from volume_cli.progress import silence_native_stderr
    from volume_cli.video import InputError

    silence_native_stderr()
    run_device = resolve_device(device)
    try:
        model = load_predictor(predictor, run_device, weights)
        result = benchmarks.bench_convert(source, model, frames=frames, device=run_device, size=size)
    except (InputError, ValueError) as e:
        raise fail(str(e))
    splats, head = result.pop("_splats"), result.pop("_head")
    result["render"] = benchmarks.bench_render(splats, head, device=run_device)
    if predictor is PredictorName.unet:
        result["network"] = benchmarks.bench_network(model.model, model.network_size or size, device=run_device)
    if train_step:
        result["train_step"] = benchmarks.bench_train_step()
    result["machine"] = benchmarks.machine_description(run_device)
    result["device"] = run_device
    if as_json:
        print(json.dumps(result))
        return
    print(f"machine     {result['machine']}")
    print(f"input       {source} ({result['frames']} frames, {result['frames_with_face']} with a face, "
          f"{result['splats_per_frame']} splats/frame, {result['ply_mb_per_frame']} MB/frame as PLY)")
    for stage, fps in result["stages_fps"].items():
        print(f"  {stage:<12}{fps:>8.1f} frames/s")
    print(f"  {'end to end':<12}{result['end_to_end_fps']:>8.1f} frames/s  (stages overlapped)")
    if "head_ms" in result:
        h = result["head_ms"]
        print(f"  head fit {h['fit_per_frame']:.1f} ms/frame, its prior in the crop {h['prior_per_frame']:.1f} ms/frame, "
              f"the clip's identity {h['identity_per_clip']:.0f} ms (on the decode thread in convert)")
    for name, value in result["render"].items():
        print(f"  render {name:<20}{value:>8.1f} {'x' if 'speedup' in name else 'ms'}")
    for name, value in result.get("train_step", {}).items():
        print(f"  train step {name:<16}{value:>8} {'x' if 'speedup' in name else '' if name == 'skipped' else 's'}")
    if "network" in result:
        net = result["network"]
        print(f"  U-Net at {net['size']} px: {net['parameters'] / 1e6:.2f} M parameters, {net['gflop_per_frame']} GFLOP/frame, "
              + ", ".join(f"{k} {v} frames/s" for k, v in net["frames_per_second"].items()))


# Commands written in their own packages, registered beside the others.
from volume_cli.evaluate.cli_command import evaluate  # noqa: E402
from volume_cli.synth.cli_command import synth  # noqa: E402
from volume_cli.train.cli_command import train  # noqa: E402

app.command("synth")(synth)
app.command("train")(train)
app.command("evaluate")(evaluate)


def _interrupted_summary(output: Path, started: bool) -> dict:
    """convert's --json object for a run stopped by Ctrl-C or SIGTERM, read back from the manifest
    it left (which lists exactly the complete files)."""
    from volume_cli.formats import read_listing

    held = read_listing(output).frames.held if started else []
    return {
        "output": str(output), "complete": False, "interrupted": True,
        "frames_written": int(len(held) - sum(held)),
        "frames_held": int(sum(held)),
        "resume": "run the same command with --resume" if started else "nothing was written: run the same command again",
    }


def _ranges(indices: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    parts, start = [], None
    for i, x in enumerate(indices):
        if start is None:
            start = x
        if i + 1 == len(indices) or indices[i + 1] != x + 1:
            parts.append(str(start) if start == x else f"{start}-{x}")
            start = None
    return ", ".join(parts)
