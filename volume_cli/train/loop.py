"""The training loop: deterministic data, checkpoints (every N steps, on SIGTERM, on Ctrl-C and when
the time budget runs out), resume, a JSONL log of losses and validation metrics, and export of
shippable weights.

A run folder holds:
    checkpoint.pt   model, optimiser, step, config, elapsed time (written atomically)
    log.jsonl       one JSON object a line: {"kind": "train" | "val" | "event", "step": ..., ...}
    config.json     the run's TrainConfig

Determinism: the model's initial weights come from ``init_seed``; batch b is always the examples
b*B ... b*B + B - 1 of the run seed (data.py), so a resumed run continues with exactly the batch it
would have seen. On a CPU the next step after a resume gives the same loss bit for bit; on a GPU,
up to the non-determinism of its kernels.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from volume_cli.metrics import psnr, ssim
from volume_cli.predictors.unet import BACK_HEADS, DEFAULT_WIDTHS, LAYER_HEADS, UNet, network_at_size, save_weights
from volume_cli.render import render, resolve_backend
from volume_cli.train.data import DISTANCE_NOISE, ShardExamples, TrainBatches, render_example
from volume_cli.train.losses import LossWeights, example_losses

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CONFIG = "config.json"
CHECKPOINT_FORMAT = 1
# Held-out people: validation during training and the evaluation harness draw their samples from
# these run seeds (sample seeds are hashes of (run seed, index), so other run seeds share none).
VALIDATION_RUN_SEED = 7_000_001
EVAL_RUN_SEED = 9_000_001
RESERVED_RUN_SEEDS = (VALIDATION_RUN_SEED, EVAL_RUN_SEED)


@dataclass
class TrainConfig:
    """What defines a run (saved in the checkpoint; a resume keeps it)."""

    run_seed: int = 0  # training samples: sample_seed(run_seed, i)
    init_seed: int = 0  # initial weights
    size: int = 256
    views: int = 4  # view 0 is the input view; the rest are novel views
    batch_size: int = 8
    lr: float = 2e-4
    warmup_steps: int = 500
    grad_clip: float = 1.0
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    distance_noise: float = DISTANCE_NOISE
    loss_weights: LossWeights = field(default_factory=LossWeights)
    render_backend: str = "auto"
    amp: bool = True  # bf16 autocast for the network on CUDA (ignored on CPU)
    # Side of the novel-view (and stability) renders in the losses; 0: the crop size. Half the crop
    # size saved ~15 % of a CPU step at S = 128: the rasteriser's cost follows the splat count more
    # than the pixel count.
    novel_view_size: int = 0
    # ``volume synth`` output folders to train from (rendered once, reused every epoch); empty:
    # render every example on the fly
    shard_folders: tuple[str, ...] = ()
    # Start from these shipped weights (a .safetensors with its card) instead of ``init_seed``:
    # fine-tuning. Their sha256 is recorded so the card can say where a model came from.
    init_weights: str = ""
    init_weights_sha256: str = ""
    # The network takes the head prior (prior_input.PRIOR_CHANNELS) and predicts its front layer
    # over it; trains from shards with ``train.priors`` sidecars (convert's crops and priors).
    prior: bool = False
    # Train on convert's crops (MediaPipe's framing, from the sidecars) without giving the network
    # the prior: the ablation of ``prior`` on the same crops. ``prior`` implies it.
    convert_framing: bool = False
    # With ``prior``: the front-opacity residual is scaled by unet.person_band (the network decides
    # opacity where the person mask is unsure, and leaves it where the mask is sure).
    opacity_band: bool = False
    # The side the U-Net runs at inside a crop of ``size`` (0: ``size``): the crop area-averaged to
    # it, the outputs resized back (unet.network_at_size), as the predictor runs a network trained
    # at 64 px on a 256 px crop. Trained at its own side only, a network's per-pixel outputs
    # (thin splats, sharpened colours) do not survive that resize (session 11: 0.4 dB below the
    # prior it starts from at 64 px, 2.9 dB below at 256).
    network_size: int = 0
    # A full-resolution refiner corrects the front opacity and colour at the crop's side
    # (unet.FullResolutionRefiner); useful with network_size below size.
    refine: bool = False
    # Every axis of a front splat at least this many crop pixels (0: no floor; unet.UNet).
    front_min_scale_px: float = 0.0
    # The front heads the network learns (unet.locked_heads): the rest keep the prior's values.
    front_learned: tuple[str, ...] = LAYER_HEADS
    # The back heads the network learns; empty: the back layer held at its start (unet.locked_heads).
    back_learned: tuple[str, ...] = BACK_HEADS
    # The front depth residual on this many cells a side (unet.coarse_front_depth); 0: per pixel.
    front_depth_cells: int = 0
    # Front splat sizes in crop pixels at their own depth (unet.to_gaussians), not the head's distance.
    front_size_at_own_depth: bool = False
    # With prior: the front depth residual's mean over the person removed (unet.to_gaussians).
    front_depth_shape_only: bool = False
    # With prior: start as the geometric predictor's front and backing layers (unet.BACKING_START_FRONT_PX).
    backing_start: bool = False

    @property
    def uses_sidecars(self) -> bool:
        return self.prior or self.convert_framing

    def to_json(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["shard_folders"] = list(self.shard_folders)
        d["front_learned"] = list(self.front_learned)
        d["back_learned"] = list(self.back_learned)
        return d

    @staticmethod
    def from_json(d: dict) -> "TrainConfig":
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        d["shard_folders"] = tuple(d.get("shard_folders", ()))
        d["front_learned"] = tuple(d.get("front_learned", LAYER_HEADS))  # runs before session 12 learned all
        d["back_learned"] = tuple(d.get("back_learned", BACK_HEADS))  # and before session 17
        # Runs from before the front-alpha term trained without it, and from before the crop target
        # toward the clean render.
        d["loss_weights"] = LossWeights(**{"front_alpha": 0.0, "input_target_crop": 0.0, **d["loss_weights"]})
        return TrainConfig(**d)

    @property
    def stability(self) -> bool:
        return self.loss_weights.stability > 0


@dataclass
class RunControl:
    """How long and how often (may change between resumes)."""

    steps: int = 100_000  # stop at this step
    max_minutes: float | None = None  # stop, with a checkpoint, before this wall-clock budget runs out
    checkpoint_every: int = 500
    log_every: int = 10
    val_every: int = 1000
    val_count: int = 8
    workers: int = 0
    device: str = "cpu"


# --- one step ------------------------------------------------------------------------------------

def forward(model: UNet, images: Tensor, valid: Tensor, K: Tensor, distance: Tensor, amp: bool, prior: Tensor | None = None,
            network_size: int = 0):
    """Gaussians [B, 2 S S, ...] (float32) for a batch (prior: its channels [B, C, S, S], for a
    network with the prior), the network run at ``network_size`` (0: S; see TrainConfig); bf16
    autocast around the network when asked and on CUDA."""
    use_amp = amp and images.device.type == "cuda"
    prior = prior if model.prior else None
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=use_amp):
        raw = network_at_size(model, images, valid, K, network_size or images.shape[-1], prior)
    return model.gaussians_from(raw, images, K, distance, prior)


def batch_losses(model: UNet, batch: dict[str, Tensor], config: TrainConfig) -> dict[str, Tensor]:
    """Mean loss terms over a batch (see losses.py); ``total`` is what is minimised."""
    b = batch["image"].shape[0]
    pair = config.stability and "pair_image" in batch and config.views > 1
    if pair:  # one forward pass for both crops of every pair
        images = torch.cat([batch["image"], batch["pair_image"]])
        valid = torch.cat([batch["valid"], batch["pair_valid"]])
        K = torch.cat([batch["K"], batch["K"]])
        distance = torch.cat([batch["distance"], batch["distance"]])
        prior = torch.cat([batch["prior"], batch["pair_prior"]]) if "prior" in batch else None
    else:
        images, valid, K, distance = batch["image"], batch["valid"], batch["K"], batch["distance"]
        prior = batch.get("prior")
    g = forward(model, images, valid, K, distance, config.amp, prior, config.network_size)
    per: dict[str, list[Tensor]] = {}
    for i in range(b):
        ex = {k: v[i] for k, v in batch.items()}
        terms = example_losses(g[i], ex, g[b + i] if pair else None, config.loss_weights, backend=config.render_backend,
                              novel_size=config.novel_view_size or None)
        for k, v in terms.items():
            per.setdefault(k, []).append(v)
    return {k: torch.stack(v).mean() for k, v in per.items()}


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then constant."""
    return config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))


def train_step(model: UNet, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor], config: TrainConfig,
               step: int) -> dict[str, float]:
    """One optimiser step at ``step``; returns the loss terms (before the update) as floats."""
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, config)
    terms = batch_losses(model, batch, config)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    out = {k: float(v.detach()) for k, v in terms.items()}
    out["grad_norm"] = float(grad_norm)
    return out


def build(config: TrainConfig, device: str) -> tuple[UNet, torch.optim.Optimizer]:
    torch.manual_seed(config.init_seed)
    model = UNet(config.widths, prior=config.prior, opacity_band=config.opacity_band, refine=config.refine,
                 front_min_scale_px=config.front_min_scale_px, front_learned=config.front_learned,
                 back_learned=config.back_learned,
                 front_depth_cells=config.front_depth_cells,
                 front_size_at_own_depth=config.front_size_at_own_depth,
                 front_depth_shape_only=config.front_depth_shape_only,
                 backing_start=config.backing_start).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return model, optimizer


def start_from_weights(model: UNet, config: TrainConfig) -> TrainConfig:
    """Load ``config.init_weights`` (sha256-checked against its card) into ``model``; returns the
    config with the file's sha256 recorded. The widths must match."""
    from dataclasses import replace

    from volume_cli.predictors.unet import load_weights

    start, card = load_weights(Path(config.init_weights))
    if tuple(start.widths) != tuple(model.widths):
        raise ValueError(f"{config.init_weights} has widths {start.widths}, the run {model.widths}")
    if start.prior != model.prior:
        raise ValueError(f"{config.init_weights} {'takes' if start.prior else 'does not take'} the head prior; the run "
                         f"{'does' if model.prior else 'does not'} (--prior)")
    # A run that adds the refiner starts it fresh on top of weights trained without one.
    missing, unexpected = model.load_state_dict(start.state_dict(), strict=False)
    if unexpected or any(not k.startswith("refiner.") for k in missing):
        raise ValueError(f"{config.init_weights} does not fit this run's network (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return replace(config, init_weights=str(Path(config.init_weights).resolve()), init_weights_sha256=card["sha256"])


# --- checkpoints ---------------------------------------------------------------------------------

def save_checkpoint(path: Path, model: UNet, optimizer: torch.optim.Optimizer, step: int, config: TrainConfig,
                    elapsed_s: float, last_val: dict | None) -> None:
    """Atomically (temporary file, then rename): a kill mid-write leaves the previous checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({
        "format": CHECKPOINT_FORMAT, "step": step, "config": config.to_json(),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "elapsed_s": elapsed_s, "last_val": last_val, "torch_rng": torch.get_rng_state(),
        "device_name": device_name(next(model.parameters()).device),
    }, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: str) -> tuple[UNet, torch.optim.Optimizer, dict]:
    """(model, optimiser, the checkpoint dict) restored from ``path`` onto ``device``."""
    ckpt = torch.load(Path(path), map_location=device, weights_only=False)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a volume training checkpoint (format {ckpt.get('format')!r})")
    config = TrainConfig.from_json(ckpt["config"])
    model, optimizer = build(config, device)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"].cpu())
    ckpt["config"] = config
    return model, optimizer, ckpt


# --- validation ----------------------------------------------------------------------------------

@torch.no_grad()
def validate(model: UNet, examples: list[dict[str, Tensor]], config: TrainConfig, device: str) -> dict:
    """Mean metrics over held-out examples (made with distance_noise 0 and no scale correction:
    what a user would see). Input view: PSNR/SSIM against the premultiplied target inside the
    ground-truth alpha > 0.5; novel views: inside the union of ground-truth and rendered alpha > 0.5.
    All renders over black."""
    model.eval()
    rows = []
    for ex in examples:
        ex = {k: v.to(device) for k, v in ex.items()}
        prior = ex["prior"][None] if "prior" in ex else None
        g = forward(model, ex["image"][None], ex["valid"][None], ex["K"][None], ex["distance"][None], config.amp, prior,
                    config.network_size)[0]
        s = ex["image"].shape[-1]
        res = render(g, ex["view_from_crop"], ex["target_K"], s, s, backend=config.render_backend)
        target = ex["target_rgb"].permute(0, 2, 3, 1)
        gt_mask = ex["target_alpha"] > 0.5
        row = {"input_psnr": psnr(res.rgb[0].cpu(), target[0].cpu(), gt_mask[0].cpu()),
               "input_ssim": ssim(res.rgb[0].cpu(), target[0].cpu(), gt_mask[0].cpu())}
        if res.rgb.shape[0] > 1:
            union = (gt_mask | (res.alpha > 0.5))[1:].cpu()
            row["novel_psnr"] = sum(psnr(r, t, m) for r, t, m in zip(res.rgb[1:].cpu(), target[1:].cpu(), union)) / len(union)
            row["novel_ssim"] = sum(ssim(r, t, m) for r, t, m in zip(res.rgb[1:].cpu(), target[1:].cpu(), union)) / len(union)
            row["alpha_l1"] = float((res.alpha - ex["target_alpha"]).abs().mean())
        rows.append(row)
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} | {"count": len(rows)}


# --- data sources --------------------------------------------------------------------------------

class SynthSource:
    """Training batches and validation examples from the synthetic generator (needs EGL + anny)."""

    def __init__(self, config: TrainConfig, workers: int) -> None:
        self.config, self.workers = config, workers

    def batches(self, start: int) -> Iterator[dict[str, Tensor]]:
        from torch.utils.data import DataLoader

        c = self.config
        ds = TrainBatches(c.run_seed, batch_size=c.batch_size, size=c.size, views=c.views, start=start,
                          distance_noise=c.distance_noise, pair=c.stability)
        if self.workers == 0:
            return iter(ds)
        loader = DataLoader(ds, batch_size=None, num_workers=self.workers, multiprocessing_context="spawn",
                            prefetch_factor=4, persistent_workers=False)
        return iter(loader)

    def validation(self, count: int) -> list[dict[str, Tensor]]:
        c = self.config
        if c.uses_sidecars:  # convert's view of the held-out people, as the training shards have
            from volume_cli.train.priors import examples_with_prior

            return examples_with_prior(VALIDATION_RUN_SEED, count, size=c.size, views=c.views)
        return [render_example(VALIDATION_RUN_SEED, i, size=c.size, views=c.views, distance_noise=0.0, pair=False)
                for i in range(count)]


class ShardSource(SynthSource):
    """Training batches from ``volume synth`` shards (``config.shard_folders``, loaded into memory
    once); validation examples from the generator, as for SynthSource."""

    def __init__(self, config: TrainConfig, workers: int = 0) -> None:
        super().__init__(config, workers)
        c = config
        self.examples = ShardExamples(c.shard_folders, run_seed=c.run_seed, size=c.size, views=c.views,
                                      distance_noise=c.distance_noise, pair=c.stability, priors=c.uses_sidecars)

    def batches(self, start: int) -> Iterator[dict[str, Tensor]]:
        return self.examples.batches(start, self.config.batch_size)


def default_source(config: TrainConfig, workers: int) -> SynthSource:
    if config.uses_sidecars and not config.shard_folders:
        raise ValueError("--prior trains from shards whose priors are made (python -m volume_cli.train.priors DIR): give --data DIR")
    return ShardSource(config) if config.shard_folders else SynthSource(config, workers)


# --- the run -------------------------------------------------------------------------------------

class _Stop:
    """SIGTERM -> finish the current step, checkpoint, stop."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_Stop":
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no signal handling
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _append(log_path: Path, record: dict) -> None:
    with open(log_path, "a") as f:
        f.write(json.dumps(record) + "\n")


def run(run_dir: Path, config: TrainConfig | None, control: RunControl, *, resume: bool = False,
        source=None, export: Path | None = None, export_colour_steps: int = 0, export_hidden_side: bool = False,
        progress: Callable[[dict], None] | None = None) -> dict:
    """Train into ``run_dir`` until ``control.steps``, the time budget, SIGTERM or Ctrl-C, whichever
    comes first; always leave a checkpoint. ``config`` is required for a new run and ignored on
    resume (the checkpoint's is used). ``source`` gives batches and validation examples (default:
    the synthetic generator). ``export``: also write shippable weights there at the end, whose
    predictor fits the input view's colours in ``export_colour_steps`` steps (and, with
    ``export_hidden_side``, adds the geometric predictor's unseen-side splats). Returns a
    summary (``stopped``: "done", "budget", "signal" or "interrupted")."""
    t_start = time.monotonic()
    run_dir = Path(run_dir)
    ckpt_path, log_path = run_dir / CHECKPOINT, run_dir / LOG
    device = control.device
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"nothing to resume: no {ckpt_path}")
        model, optimizer, ckpt = load_checkpoint(ckpt_path, device)
        config, step, elapsed_before, last_val = ckpt["config"], ckpt["step"], ckpt["elapsed_s"], ckpt["last_val"]
    else:
        if config is None:
            raise ValueError("a new run needs a TrainConfig")
        if config.run_seed in RESERVED_RUN_SEEDS:
            raise ValueError(f"run seed {config.run_seed} is reserved for held-out validation/evaluation people")
        if ckpt_path.exists():
            raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue it, or choose another folder")
        run_dir.mkdir(parents=True, exist_ok=True)
        model, optimizer = build(config, device)
        if config.init_weights:
            config = start_from_weights(model, config)
        step, elapsed_before, last_val = 0, 0.0, None
        (run_dir / CONFIG).write_text(json.dumps(config.to_json(), indent=2) + "\n")
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    source = source or default_source(config, control.workers)
    backend = resolve_backend(config.render_backend).value
    _append(log_path, {"kind": "event", "event": "resume" if resume else "start", "step": step, "device": device,
                       "backend": backend, "time": time.time()})
    val_examples = source.validation(control.val_count) if control.val_every > 0 and control.val_count > 0 else []

    deadline = None if control.max_minutes is None else t_start + 60.0 * control.max_minutes
    step_s = None  # running estimate of a step's duration (data wait included)
    ckpt_s = 5.0  # estimate of a checkpoint's duration
    val_s = 0.0
    window: dict[str, float] = {}
    window_n = 0
    stopped = "done"
    batches = source.batches(step)
    last_terms: dict[str, float] = {}

    def checkpoint() -> None:
        nonlocal ckpt_s
        t0 = time.monotonic()
        save_checkpoint(ckpt_path, model, optimizer, step, config, elapsed_before + time.monotonic() - t_start, last_val)
        ckpt_s = max(1.0, time.monotonic() - t0)

    def log_window(step_seconds: float, data_seconds: float) -> None:
        """One "train" line: the mean of each loss term over the steps since the previous line."""
        nonlocal window, window_n
        record = {"kind": "train", "step": step, **{k: v / window_n for k, v in window.items()},
                  "lr": lr_at(step - 1, config), "step_s": step_seconds, "data_s": data_seconds,
                  "elapsed_s": elapsed_before + time.monotonic() - t_start}
        _append(log_path, record)
        window, window_n = {}, 0
        if progress:
            progress(record)

    with _Stop() as stop:
        try:
            while step < control.steps:
                if stop.requested:
                    stopped = "signal"
                    break
                if deadline is not None and step_s is not None and time.monotonic() + 1.5 * step_s + 2 * ckpt_s > deadline:
                    stopped = "budget"
                    break
                t0 = time.monotonic()
                batch = next(batches)
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                t_data = time.monotonic() - t0
                terms = train_step(model, optimizer, batch, config, step)
                if not math.isfinite(terms["total"]):
                    raise FloatingPointError(f"the loss became {terms['total']} at step {step}")
                step += 1
                dt = time.monotonic() - t0
                step_s = dt if step_s is None else 0.9 * step_s + 0.1 * dt
                last_terms = terms
                for k, v in terms.items():
                    window[k] = window.get(k, 0.0) + v
                window_n += 1
                if step % control.log_every == 0 or step == control.steps:
                    log_window(dt, t_data)
                if val_examples and step % control.val_every == 0:
                    if deadline is None or time.monotonic() + val_s + 2 * ckpt_s < deadline:
                        t1 = time.monotonic()
                        last_val = {"step": step, **validate(model, val_examples, config, device)}
                        val_s = time.monotonic() - t1
                        _append(log_path, {"kind": "val", **last_val})
                        if progress:
                            progress({"kind": "val", **last_val})
                if step % control.checkpoint_every == 0:
                    checkpoint()
        except KeyboardInterrupt:
            stopped = "interrupted"
        if window_n:  # steps since the last log line (a budget, signal or Ctrl-C stop)
            log_window(step_s or 0.0, 0.0)
        checkpoint()
    if stopped == "done" and val_examples and (last_val is None or last_val["step"] != step):
        last_val = {"step": step, **validate(model, val_examples, config, device)}
        _append(log_path, {"kind": "val", **last_val})
        checkpoint()
    elapsed = elapsed_before + time.monotonic() - t_start
    _append(log_path, {"kind": "event", "event": "stop", "reason": stopped, "step": step, "time": time.time()})
    summary = {"run": str(run_dir), "step": step, "stopped": stopped, "checkpoint": str(ckpt_path),
               "loss": last_terms.get("total"), "validation": last_val, "elapsed_s": round(elapsed, 1),
               "device": device, "backend": backend}
    if export is not None:
        summary["exported"] = str(export_weights(model, config, step, device, last_val, export,
                                                 colour_steps=export_colour_steps, hidden_side=export_hidden_side))
    return summary


def export_weights(model: UNet, config: TrainConfig, step: int, device: str, validation: dict | None, folder: Path,
                   colour_steps: int = 0, hidden_side: bool = False) -> Path:
    """Write ``folder/unet.safetensors`` and its model card ``folder/unet.json``. ``colour_steps``:
    input-view colour fitting steps the predictor applies after the network, ``hidden_side``:
    whether it adds the geometric predictor's unseen-side splats (both recorded in the card's
    "inference" section, which ``load_unet_predictor`` follows)."""
    from volume_cli.synth.sample import FORMAT_VERSION

    dev_name = device_name(torch.device(device)) if device in ("cpu", "cuda") or device.startswith("cuda:") else device
    path = Path(folder) / "unet.safetensors"
    save_weights(model, path, {
        "config": config.to_json(),
        "data": {"generator": "volume_cli.synth", "sample_format_version": FORMAT_VERSION, "run_seed": config.run_seed,
                 "shards": _shard_summary(config.shard_folders),
                 "examples_seen": step * config.batch_size, "validation_run_seed": VALIDATION_RUN_SEED},
        "steps": step, "started_from": _parent_summary(config), "device": dev_name, "torch": torch.__version__,
        "validation": validation,
        "inference": {"network_size": config.network_size or config.size, "colour_steps": int(colour_steps),
                      "hidden_side": bool(hidden_side)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return path


def _parent_summary(config: TrainConfig) -> dict | None:
    """The weights a fine-tuning run started from: file, sha256, and their own card's steps and
    device when the card is still there."""
    if not config.init_weights:
        return None
    from volume_cli.predictors.unet import card_path

    out = {"file": Path(config.init_weights).name, "sha256": config.init_weights_sha256}
    try:
        parent = json.loads(card_path(Path(config.init_weights)).read_text())
        out |= {"steps": parent.get("steps"), "device": parent.get("device"), "loss_weights": parent.get("config", {}).get("loss_weights")}
    except (OSError, ValueError):
        pass
    return out


def _shard_summary(folders: tuple[str, ...]) -> list[dict]:
    """Where pre-rendered training samples came from: each folder's synth run seed and count."""
    from volume_cli.synth.shards import read_index

    out = []
    for folder in folders:
        try:
            index = read_index(Path(folder))
            out.append({"folder": Path(folder).name, "run_seed": index["run_seed"], "count": index["count"],
                        "size": index["size"], "views": index["views"]})
        except (OSError, ValueError):
            out.append({"folder": Path(folder).name, "missing": True})
    return out


def export_checkpoint(checkpoint: Path, folder: Path, colour_steps: int = 0) -> Path:
    """Shippable weights from a training checkpoint (e.g. one brought back from a GPU machine)."""
    model, _, ckpt = load_checkpoint(checkpoint, "cpu")
    return export_weights(model, ckpt["config"], ckpt["step"], ckpt.get("device_name", "unknown"), ckpt.get("last_val"),
                          folder, colour_steps=colour_steps)


def device_name(device: torch.device) -> str:
    """"cpu" or the GPU's name, for the model card."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return device.type
