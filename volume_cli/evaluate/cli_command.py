"""The ``volume evaluate`` command (register in ``volume_cli/cli.py`` with
``app.command("evaluate")(evaluate)``): authenticity, realism and stability of predictors on
held-out synthetic people (see :mod:`volume_cli.evaluate.synthetic`)."""

from __future__ import annotations

import enum
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


class EvalPredictor(str, enum.Enum):
    geometric = "geometric"
    geometric_ellipsoid = "geometric-ellipsoid"
    unet = "unet"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def evaluate(
    predictor: Annotated[Optional[list[EvalPredictor]], typer.Option("--predictor", help="Predictor to evaluate (repeat for several).")] = None,
    count: Annotated[int, typer.Option("--count", min=1, help="Held-out synthetic samples to render.")] = 20,
    size: Annotated[int, typer.Option("--size", min=32, max=1024, help="Crop side S in pixels (16 divides it for the U-Net).")] = 256,
    weights: Annotated[Optional[list[Path]], typer.Option("--weights", exists=True, dir_okay=False, help="U-Net weights (.safetensors with its .json card beside it); default weights/unet.safetensors. Repeat to compare several (each is named unet:<its folder>).")] = None,
    real: Annotated[Optional[list[Path]], typer.Option("--real", exists=True, help="Instead of synthetic people: real photos, image folders or videos (repeatable). Measures authenticity; there is no ground truth for novel views, so look at --sheet.")] = None,
    frames: Annotated[int, typer.Option("--frames", min=1, help="With --real: evenly spaced frames taken from each video.")] = 6,
    sheet: Annotated[Optional[Path], typer.Option("--sheet", dir_okay=False, help="With --real: write a contact sheet PNG (crop, input-view render, yaw -40/-20/+20/+40 per input and predictor).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Run seed of the held-out people (default: the reserved evaluation seed).")] = None,
    device: Annotated[str, typer.Option("--device", help="Where the U-Net runs: cpu or cuda.")] = "cpu",
    samples: Annotated[bool, typer.Option("--samples", help="With --json, include every sample's metrics.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")] = False,
) -> None:
    """Authenticity (input-view PSNR/SSIM/LPIPS, in the crop and PSNR/SSIM in the original frame
    at its own resolution), realism (PSNR/SSIM/LPIPS at yaw -40..+40 against ground truth)
    and stability (novel-view jitter on same-moment crop pairs) on held-out synthetic heads; with
    --real, authenticity and a contact sheet of novel views on real photos and videos.

    Example: volume evaluate --predictor geometric --predictor unet --count 20 --json

    Example: volume evaluate --predictor geometric --predictor unet --real talk.mp4 --sheet sheet.png
    """
    from volume_cli.progress import silence_native_stderr

    silence_native_stderr()  # MediaPipe's own log lines
    names = predictor or [EvalPredictor.geometric]
    show = not quiet and not json_output and sys.stderr.isatty()
    try:
        from volume_cli.evaluate.synthetic import evaluate_synthetic
        from volume_cli.synth.assets import SynthAssetsError
        from volume_cli.synth.renderer import EGLUnavailableError, egl_status

        if not real:  # the synthetic people are rendered with OpenGL
            ok, reason = egl_status()
            if not ok:
                raise EGLUnavailableError(reason)
        predictors = {}
        for name in names:
            if name in (EvalPredictor.geometric, EvalPredictor.geometric_ellipsoid):
                from volume_cli.predictors.geometric import GeometricPredictor

                predictors[name.value] = GeometricPredictor(head=name is EvalPredictor.geometric)
            else:
                from volume_cli.predictors.unet import DEFAULT_WEIGHTS, WeightsError, load_unet_predictor

                paths = weights or [DEFAULT_WEIGHTS]
                for path in paths:
                    label = "unet" if len(paths) == 1 else f"unet:{path.resolve().parent.name}"
                    if label in predictors:
                        label = f"unet:{path}"
                    try:
                        predictors[label] = load_unet_predictor(path, device)
                    except WeightsError as exc:
                        raise ValueError(str(exc)) from exc
        if real:
            _evaluate_real(real, predictors, size=size, frames=frames, sheet=sheet, show=show, json_output=json_output)
            return
        if sheet is not None:
            raise ValueError("--sheet needs --real (the synthetic evaluation compares with ground truth instead)")
        progress = (lambda i: print(f"\revaluate {i}/{count}", end="", file=sys.stderr, flush=True)) if show else None
        result = evaluate_synthetic(predictors, count=count, size=size, run_seed=seed, progress=progress)
        if show:
            print(file=sys.stderr)
    except (SynthAssetsError, EGLUnavailableError, OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc
    if not samples:
        result.pop("samples")
    if json_output:
        print(json.dumps(result))
        return
    print(f"{result['evaluated']} of {result['requested']} held-out samples at S={size} "
          f"({result['no_face']} without a MediaPipe face, skipped)")
    for name, m in result["predictors"].items():
        if m is None:
            print(f"{name}: no sample evaluated")
            continue
        yaws = "  ".join(f"{y}: {_fmt(v['psnr'])}" for y, v in m["realism"].items())
        print(f"{name}: authenticity {_fmt(m['authenticity_psnr'])} dB / SSIM {_fmt(m['authenticity_ssim'], 3)} / LPIPS {_fmt(m['authenticity_lpips'], 3)} in the crop, "
              f"{_fmt(m['original_authenticity_psnr'])} dB / {_fmt(m['original_authenticity_ssim'], 3)} in the original frame; "
              f"realism {_fmt(m['realism_psnr'])} dB / SSIM {_fmt(m['realism_ssim'], 3)} / LPIPS {_fmt(m['realism_lpips'], 3)} ({yaws}); "
              f"stability {_fmt(m['stability_mad'], 4)} (x{_fmt(m['stability_ratio'])} the input's); "
              f"{_fmt(m['seconds_per_frame'], 3)} s/frame")


def _evaluate_real(paths: list[Path], predictors: dict, *, size: int, frames: int, sheet: Path | None, show: bool,
                   json_output: bool) -> None:
    import cv2

    from volume_cli.evaluate.real import evaluate_real
    from volume_cli.video import InputError

    if sheet is not None and sheet.suffix.lower() != ".png":
        raise ValueError(f"--sheet must name a .png file, got {sheet}")
    progress = (lambda i, n: print(f"\revaluate {i}/{n}", end="", file=sys.stderr, flush=True)) if show else None
    try:
        result, image = evaluate_real(paths, predictors, size=size, frames_per_video=frames,
                                      sheet_height=None if sheet is None else 160, progress=progress)
    except InputError as exc:
        raise ValueError(str(exc)) from exc
    if show:
        print(file=sys.stderr)
    if sheet is not None and image is not None:
        sheet.parent.mkdir(parents=True, exist_ok=True)
        tmp = sheet.with_name(f".{sheet.name}.tmp.png")
        if not cv2.imwrite(str(tmp), image[..., ::-1]):
            raise OSError(f"could not write {sheet}")
        tmp.replace(sheet)
        result["sheet"] = str(sheet)
    if json_output:
        print(json.dumps(result))
        return
    print(f"{result['evaluated']} of {result['inputs']} real inputs at S={size}"
          + (f" (no face in {', '.join(result['no_face'])})" if result["no_face"] else ""))
    for row in result["rows"]:
        print(f"  {row['input']}: " + ", ".join(f"{name} {_fmt(v['psnr'])} dB / {_fmt(v['ssim'], 3)} (original frame {_fmt(v['original_psnr'])} dB)"
                                               for name, v in row["predictors"].items()))
    for name, m in result["predictors"].items():
        if m is not None:
            print(f"{name}: authenticity {_fmt(m['authenticity_psnr'])} dB / SSIM {_fmt(m['authenticity_ssim'], 3)} / LPIPS {_fmt(m['authenticity_lpips'], 3)} in the crop, "
                  f"{_fmt(m['original_authenticity_psnr'])} dB / {_fmt(m['original_authenticity_ssim'], 3)} in the original frame")
    if "sheet" in result:
        print(f"sheet -> {result['sheet']}")


if __name__ == "__main__":
    typer.run(evaluate)
