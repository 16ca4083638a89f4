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
    unet = "unet"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def evaluate(
    predictor: Annotated[Optional[list[EvalPredictor]], typer.Option("--predictor", help="Predictor to evaluate (repeat for several).")] = None,
    count: Annotated[int, typer.Option("--count", min=1, help="Held-out synthetic samples to render.")] = 20,
    size: Annotated[int, typer.Option("--size", min=32, max=1024, help="Crop side S in pixels (16 divides it for the U-Net).")] = 256,
    weights: Annotated[Optional[Path], typer.Option("--weights", exists=True, dir_okay=False, help="U-Net weights (.safetensors with its .json card beside it); default weights/unet.safetensors.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Run seed of the held-out people (default: the reserved evaluation seed).")] = None,
    device: Annotated[str, typer.Option("--device", help="Where the U-Net runs: cpu or cuda.")] = "cpu",
    samples: Annotated[bool, typer.Option("--samples", help="With --json, include every sample's metrics.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")] = False,
) -> None:
    """Authenticity (input-view PSNR/SSIM), realism (PSNR/SSIM at yaw -40..+40 against ground truth)
    and stability (novel-view jitter on same-moment crop pairs) on held-out synthetic heads.

    Example: volume evaluate --predictor geometric --predictor unet --count 20 --json
    """
    names = predictor or [EvalPredictor.geometric]
    show = not quiet and not json_output and sys.stderr.isatty()
    try:
        from volume_cli.evaluate.synthetic import evaluate_synthetic
        from volume_cli.synth.assets import SynthAssetsError
        from volume_cli.synth.renderer import EGLUnavailableError, egl_status

        ok, reason = egl_status()
        if not ok:
            raise EGLUnavailableError(reason)
        predictors = {}
        for name in names:
            if name is EvalPredictor.geometric:
                from volume_cli.predictors.geometric import GeometricPredictor

                predictors["geometric"] = GeometricPredictor()
            else:
                from volume_cli.predictors.unet import DEFAULT_WEIGHTS, WeightsError, load_unet_predictor

                try:
                    predictors["unet"] = load_unet_predictor(weights or DEFAULT_WEIGHTS, device)
                except WeightsError as exc:
                    raise ValueError(str(exc)) from exc
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
        print(f"{name}: authenticity {_fmt(m['authenticity_psnr'])} dB / SSIM {_fmt(m['authenticity_ssim'], 3)}; "
              f"realism {_fmt(m['realism_psnr'])} dB / SSIM {_fmt(m['realism_ssim'], 3)} ({yaws}); "
              f"stability {_fmt(m['stability_mad'], 4)} (x{_fmt(m['stability_ratio'])} the input's); "
              f"{_fmt(m['seconds_per_frame'], 3)} s/frame")


if __name__ == "__main__":
    typer.run(evaluate)
