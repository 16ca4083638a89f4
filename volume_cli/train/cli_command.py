"""The ``volume train`` command (register in ``volume_cli/cli.py`` with ``app.command("train")(train)``).

Also runnable without the registration, e.g. on a GPU machine: ``python -m volume_cli.train.cli_command``.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


class RenderBackend(str, enum.Enum):
    auto = "auto"
    numba = "numba"
    torch = "torch"
    gsplat = "gsplat"


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available here")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {name!r}")
    return name


def _learned_heads(option: str, spec: str, heads: tuple[str, ...], none_allowed: bool) -> tuple[str, ...]:
    """The heads a ``--front-learns`` / ``--back-learns`` value names: 'all', 'none' (where
    ``none_allowed``) or a comma-separated, non-empty list of ``heads``."""
    if spec.strip() == "all":
        return heads
    if spec.strip() == "none" and none_allowed:
        return ()
    named = tuple(h.strip() for h in spec.split(",") if h.strip())
    if not named or set(named) - set(heads):
        forms = "'all', 'none'" if none_allowed else "'all'"
        raise ValueError(f"{option} takes {forms} or comma-separated heads from {', '.join(heads)}; got {spec!r}")
    return named


def train(
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder: checkpoint.pt, log.jsonl, config.json.")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output (its model, data and loss settings are kept).")] = False,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Train until this step.")] = 100_000,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", min=0.1, help="Stop cleanly, with a checkpoint, before this many minutes have passed.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per step.")] = 8,
    size: Annotated[int, typer.Option("--size", min=32, max=1024, help="Crop side S (a multiple of 16).")] = 256,
    views: Annotated[int, typer.Option("--views", min=1, max=16, help="Views per example: the input view plus novel views.")] = 4,
    network_size: Annotated[int, typer.Option("--network-size", min=0, help="Run the U-Net at this side inside the --size crop (the crop area-averaged to it, its outputs resized back), as the predictor runs it on a bigger crop (0: --size; a multiple of 16 dividing it).")] = 0,
    refine: Annotated[bool, typer.Option("--refine/--no-refine", help="A light refinement head at the crop's own side corrects the front opacity and colour after the U-Net (which runs at --network-size): detail the resized outputs blur.")] = False,
    front_min_scale: Annotated[float, typer.Option("--front-min-scale", min=0.0, max=15.0, help="Floor every axis of the front splats at this many crop pixels (0: none): thin splats reproduce the crop at its own pixel centres but leave a screen-door of gaps in the original frame.")] = 0.0,
    front_learns: Annotated[str, typer.Option("--front-learns", help="The front layer's heads the network predicts, comma-separated from depth, opacity, scale, rotation, colour, or 'all'; the others keep the untrained values (with --prior: the prior's person mask, 0.5 px round splats, the pixel's colour). 'depth' leaves the input view to the prior and trains what novel views need.")] = "all",
    back_learns: Annotated[str, typer.Option("--back-learns", help="The back layer's heads the network predicts, comma-separated from depth, offset, opacity, scale, rotation, colour, or 'all' or 'none'; the others keep their start (with --backing-start: the geometric predictor's backing 8 mm behind each front splat, as opaque as the person). 'none' with --backing-start: trained freely at 64 px the back layer drifted 28 mm behind the front and lost 2.8 dB in the original frame on real photos; held, it did not (session 16).")] = "all",
    front_depth_cells: Annotated[int, typer.Option("--front-depth-cells", min=0, help="Predict the front depth residual on this many cells a side (1, 2, 4, 8 or 16), interpolated smoothly (0: per pixel): the prior's surface bent, not rippled.")] = 0,
    front_size_at_own_depth: Annotated[bool, typer.Option("--front-size-at-own-depth/--front-size-at-head", help="Size each front splat in crop pixels at its own depth instead of at the head's distance: its footprint in the input view then does not change with the depth the network gives it.")] = False,
    backing_start: Annotated[bool, typer.Option("--backing-start/--free-back-start", help="With --prior: start as the geometric predictor's two layers (front splats 0.35 px; the back layer a backing 8 mm behind each front splat, 0.7 px, as opaque as the person), and fit both layers' colours in the predictor. The default start (0.5 px front, a faint free back layer) is 5 dB less authentic on real photos after colour fitting.")] = False,
    front_depth_shape_only: Annotated[bool, typer.Option("--front-depth-shape-only/--front-depth-free", help="With --prior: remove the front depth residual's mean over the person, so the network reshapes the prior's surface but cannot move the whole face along the rays (trained freely it moved faces 6-8 cm).")] = False,
    novel_view_size: Annotated[int, typer.Option("--novel-view-size", min=0, help="Render novel views for the losses at this side (S a multiple of it; 0: S). Half of S saves ~15 % of a CPU step.")] = 0,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Adam learning rate (after a linear warm-up).")] = 2e-4,
    warmup_steps: Annotated[int, typer.Option("--warmup-steps", min=0, help="Linear learning-rate warm-up.")] = 500,
    data: Annotated[Optional[list[Path]], typer.Option("--data", exists=True, file_okay=False, help="A volume synth output folder to train from (repeatable): samples rendered once, loaded into memory and reused every epoch with fresh views, partners, distance errors and mirroring. Default: render every example on the fly.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Run seed of the training people (sample i: sample_seed(seed, i)).")] = 0,
    init_seed: Annotated[int, typer.Option("--init-seed", help="Seed of the initial weights.")] = 0,
    widths: Annotated[str, typer.Option("--widths", help="Channels of the five U-Net levels, comma-separated.")] = "32,48,96,128,192",
    prior: Annotated[bool, typer.Option("--prior/--no-prior", help="The network takes the head prior (fitted-head depth, normals, masks, face-mesh depth) and predicts its front layer over it; needs --data folders whose priors are made (python -m volume_cli.train.priors DIR).")] = False,
    opacity_band: Annotated[bool, typer.Option("--opacity-band/--free-opacity", help="With --prior: the front opacity is the person mask where the mask is sure, the network's residual weighted by 4p(1-p) of the mask (it decides where the mask is unsure: hair, silhouettes).")] = False,
    convert_framing: Annotated[bool, typer.Option("--convert-framing/--truth-framing", help="Train on convert's crops (MediaPipe's framing, from the priors made for --data) without the prior channels: --prior's ablation. --prior implies it.")] = False,
    stability: Annotated[bool, typer.Option("--stability/--no-stability", help="The stability loss on same-moment jitter pairs (off: the ablation).")] = True,
    stability_weight: Annotated[float, typer.Option("--stability-weight", min=0.0, help="Weight of the stability loss.")] = 0.5,
    input_view_weight: Annotated[float, typer.Option("--input-view-weight", min=0.0, help="Weight of the input view's photometric term (authenticity), beside novel views' 1.")] = 1.0,
    front_alpha_weight: Annotated[float, typer.Option("--front-alpha-weight", min=0.0, help="Weight of the front-alpha term: each pixel's front Gaussian as opaque as the ground truth at that pixel (0: off).")] = 1.0,
    front_slope_weight: Annotated[float, typer.Option("--front-slope-weight", min=0.0, help="Weight of the front-slope term: the front layer's depth slope between neighbouring input-view pixels should be the ground truth's (depth change per pixel footprint), against far sides folded past grazing (0: off).")] = 0.0,
    pair_depth_weight: Annotated[float, typer.Option("--pair-depth-weight", min=0.0, help="Weight of the pair-depth term: the stability pair's novel-view depths should agree where both are solid, in 5 cm units (0: off).")] = 0.0,
    head_input_weight: Annotated[float, typer.Option("--head-input-weight", min=0.0, help="Weight of an extra input-view L1 term inside the head (the prior's fitted head and hair shell, where the person is), where authenticity is scored; needs --prior (0: logged only).")] = 0.0,
    perceptual_weight: Annotated[float, typer.Option("--perceptual-weight", min=0.0, help="Weight of a perceptual term: LPIPS (the shift-tolerant AlexNet shipped in the stlpips wheel) between every rendered view and its target (0: off).")] = 0.0,
    upsampled_input_weight: Annotated[float, typer.Option("--upsampled-input-weight", min=0.0, help="Weight of the input view rendered again at 4x the crop's side against the enlarged target: charges the gaps between thin front splats that a big face in a big photo shows in its own frame (0: off).")] = 0.0,
    input_target_crop: Annotated[float, typer.Option("--input-target-crop", min=0.0, max=1.0, help="Train the input view toward the webcam crop itself where the person is (1) instead of the generator's clean render (0), or a mix: authenticity is scored against the crop, noise and all.")] = 0.0,
    init_weights: Annotated[Optional[Path], typer.Option("--init-weights", exists=True, dir_okay=False, help="Start from these weights (.safetensors with its card; same --widths) instead of random ones: fine-tuning.")] = None,
    distance_noise: Annotated[float, typer.Option("--distance-noise", min=0.0, help="Log-normal std of the head-distance error given to the network.")] = 0.05,
    render_backend: Annotated[RenderBackend, typer.Option("--render-backend", help="Rasteriser for the losses: auto = gsplat on CUDA when installed, else the compiled CPU rasteriser (numba); torch = the slow pure-torch reference.")] = RenderBackend.auto,
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="bf16 autocast for the network on CUDA.")] = True,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Data-rendering processes (0: in the training process).")] = 0,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=1, help="Checkpoint every N steps (also on SIGTERM, Ctrl-C and at the budget).")] = 500,
    log_every: Annotated[int, typer.Option("--log-every", min=1, help="Log mean losses every N steps.")] = 10,
    val_every: Annotated[int, typer.Option("--val-every", min=0, help="Validate every N steps (0: never).")] = 1000,
    val_count: Annotated[int, typer.Option("--val-count", min=0, help="Held-out validation examples.")] = 8,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    export: Annotated[Optional[Path], typer.Option("--export", file_okay=False, help="Also write shippable weights (unet.safetensors + unet.json) into this folder.")] = None,
    export_hidden_side: Annotated[bool, typer.Option("--export-hidden-side/--export-without-hidden-side", help="With --prior: the exported predictor also puts the geometric predictor's splats on the side of the fitted head the camera does not see (coloured from the clip's other frames, the mirror, the nearest skin or hair); recorded in the model card.")] = False,
    export_colour_steps: Annotated[int, typer.Option("--export-colour-steps", min=0, max=16, help="The exported predictor fits its splats' colours to the crop in this many steps after the network (recorded in the model card; the geometric predictor uses 2). 0: the network's own colours.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")] = False,
) -> None:
    """Train the U-Net predictor on synthetic heads rendered on the fly; checkpoint and resume.

    Example: volume train -o runs/unet --steps 20000 --max-minutes 9 --workers 12 --resume
    """
    from volume_cli.train.loop import RunControl, TrainConfig, run
    from volume_cli.train.losses import LossWeights

    show = not quiet and not json_output

    def progress(record: dict) -> None:
        if not show:
            return
        if record["kind"] == "train":
            print(f"step {record['step']}: loss {record['total']:.4f} (input {record['input_view']:.4f}, "
                  f"novel {record.get('novel_views', float('nan')):.4f}, stability {record.get('stability', 0.0):.4f}, "
                  f"front alpha {record.get('front_alpha', 0.0):.4f}) "
                  f"{record['step_s']:.2f} s/step", file=sys.stderr, flush=True)
        elif record["kind"] == "val":
            print("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in record.items() if isinstance(v, float)),
                  file=sys.stderr, flush=True)

    try:
        dev = _device(device)
        try:
            width_tuple = tuple(int(w) for w in widths.split(","))
        except ValueError as exc:
            raise ValueError(f"--widths must be comma-separated integers, got {widths!r}") from exc
        if size % 16:
            raise ValueError(f"--size must be a multiple of 16, got {size}")
        if opacity_band and not prior:
            raise ValueError("--opacity-band weights the residual over the prior's person mask: it needs --prior")
        from volume_cli.predictors.unet import BACK_HEADS, LAYER_HEADS

        learned = _learned_heads("--front-learns", front_learns, LAYER_HEADS, none_allowed=False)
        back_learned = _learned_heads("--back-learns", back_learns, BACK_HEADS, none_allowed=True)
        if front_depth_cells and 16 % front_depth_cells:
            raise ValueError(f"--front-depth-cells must be 1, 2, 4, 8 or 16 (every crop side is a multiple of 16), got {front_depth_cells}")
        if export_hidden_side and not prior:
            raise ValueError("--export-hidden-side puts splats on the fitted head: it needs --prior")
        if backing_start and not prior:
            raise ValueError("--backing-start puts the back layer behind the prior's surface: it needs --prior")
        if front_depth_shape_only and not prior:
            raise ValueError("--front-depth-shape-only measures the residual over the prior's person mask: it needs --prior")
        if head_input_weight and not prior:
            raise ValueError("--head-input-weight finds the head through the prior's fitted head: it needs --prior")
        if network_size and (network_size % 16 or size % network_size or network_size > size):
            raise ValueError(f"--network-size must be a multiple of 16 that divides --size {size}, got {network_size}")
        if novel_view_size and size % novel_view_size:
            raise ValueError(f"--size {size} must be a multiple of --novel-view-size {novel_view_size}")
        config = None if resume else TrainConfig(
            run_seed=seed, init_seed=init_seed, size=size, views=views, batch_size=batch_size, lr=lr,
            warmup_steps=warmup_steps, widths=width_tuple, distance_noise=distance_noise,
            loss_weights=LossWeights(input_view=input_view_weight, stability=stability_weight if stability else 0.0,
                                     front_alpha=front_alpha_weight,
                                     input_target_crop=input_target_crop, pair_depth=pair_depth_weight,
                                     upsampled_input_view=upsampled_input_weight, head_input_view=head_input_weight,
                                     perceptual=perceptual_weight, front_slope=front_slope_weight),
            render_backend=render_backend.value, amp=amp, novel_view_size=novel_view_size, network_size=network_size,
            refine=refine, front_min_scale_px=front_min_scale, front_learned=learned, back_learned=back_learned,
            front_depth_cells=front_depth_cells,
            front_size_at_own_depth=front_size_at_own_depth, front_depth_shape_only=front_depth_shape_only,
            backing_start=backing_start,
            shard_folders=tuple(str(p.resolve()) for p in data or ()),
            init_weights=str(init_weights) if init_weights else "", prior=prior,
            convert_framing=convert_framing or prior, opacity_band=opacity_band,
        )
        control = RunControl(steps=steps, max_minutes=max_minutes, checkpoint_every=checkpoint_every, log_every=log_every,
                             val_every=val_every, val_count=val_count, workers=workers, device=dev)
        summary = run(output, config, control, resume=resume, export=export,
                      export_colour_steps=export_colour_steps, export_hidden_side=export_hidden_side, progress=progress)
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError, OSError) as exc:  # WeightsError is a ValueError
        print(f"Error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc
    except Exception as exc:  # the synthetic generator's own errors (no EGL, no MakeHuman data)
        from volume_cli.synth.assets import SynthAssetsError
        from volume_cli.synth.renderer import EGLUnavailableError

        if isinstance(exc, (SynthAssetsError, EGLUnavailableError)):
            print(f"Error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from exc
        raise
    if json_output:
        print(json.dumps(summary))
    else:
        val = summary["validation"] or {}
        extra = ", ".join(f"{k} {v:.3f}" for k, v in val.items() if isinstance(v, float))
        print(f"step {summary['step']} ({summary['stopped']}) -> {summary['checkpoint']}"
              + (f"; validation: {extra}" if extra else "")
              + (f"; weights -> {summary['exported']}" if "exported" in summary else ""))
    if summary["stopped"] == "interrupted":
        raise typer.Exit(130)


if __name__ == "__main__":
    typer.run(train)
