"""The ``volume synth`` command (registered in ``volume_cli/cli.py`` with ``app.command("synth")(synth)``)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class CropSource(str, Enum):
    truth = "truth"
    mediapipe = "mediapipe"


def synth(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder for shards (or the preview PNG path / folder).")],
    count: Annotated[int, typer.Option("--count", min=1, help="Number of samples to render.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Run seed: sample i has seed hash(seed, i).")] = 0,
    preview: Annotated[bool, typer.Option("--preview", help="Write a contact sheet PNG of a few people instead of shards.")] = False,
    people: Annotated[int, typer.Option("--people", min=1, max=64, help="People on the preview sheet.")] = 6,
    size: Annotated[int, typer.Option("--size", min=16, max=2048, help="Crop and target view side in pixels.")] = 256,
    views: Annotated[int, typer.Option("--views", min=1, max=64, help="Target views per sample (view 0 is the crop camera).")] = 4,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Samples per shard file.")] = 32,
    crop_from: Annotated[CropSource, typer.Option("--crop-from", help="Aim the crop from the ground-truth face box, or from MediaPipe on the render as volume convert does (box as fallback).")] = CropSource.truth,
    temporal: Annotated[bool, typer.Option("--temporal/--no-temporal", help="Render each sample's temporal partner frame.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Keep the complete shards an interrupted run left in the output folder (same seed, size, views, --temporal) and render only the rest.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object with the results.")] = False,
) -> None:
    """Render synthetic multi-view heads into training shards, or a preview contact sheet.

    Example: volume synth --count 1000 --seed 0 -o data/synth/
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    err = Console(stderr=True)
    try:
        from volume_cli.synth.assets import SynthAssetsError
        from volume_cli.synth.renderer import EGLUnavailableError, egl_status
        from volume_cli.synth.writer import write_dataset, write_preview

        ok, reason = egl_status()
        if not ok:
            raise EGLUnavailableError(reason)
        if preview:
            path = output / "preview.png" if output.suffix.lower() != ".png" else output
            if not quiet and not json_output:
                err.print(f"rendering a preview of {people} people ...")
            result = write_preview(path, run_seed=seed, people=people, size=size, views=views,
                                   crop_source=crop_from.value)
        else:
            if output.exists() and not output.is_dir():
                raise NotADirectoryError(f"{output} exists and is not a folder")
            show = not quiet and not json_output and sys.stderr.isatty()
            with Progress(TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=err, disable=not show) as bar:
                task = bar.add_task("synth", total=count)
                result = write_dataset(output, count=count, run_seed=seed, size=size, views=views, temporal=temporal,
                                       shard_size=shard_size, crop_source=crop_from.value, resume=resume, progress=lambda n: bar.update(task, completed=n))
    except (SynthAssetsError, EGLUnavailableError, OSError, ValueError) as exc:
        err.print(f"Error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    if json_output:
        typer.echo(json.dumps(result))
    elif preview:
        typer.echo(result["preview"])
    else:
        kept = f", {result['reused']} kept from before" if result["reused"] else ""
        rate = f"{result['samples_per_second']} samples/s" if result["samples_per_second"] else "nothing rendered"
        typer.echo(f"{result['count']} samples in {result['shards']} shards -> {result['output']} ({rate}{kept})")
