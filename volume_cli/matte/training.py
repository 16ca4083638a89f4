"""Training the person matte (``matte.model``) on synthetic people against their true coverage.

Data: folders of ``matte_*.npz`` shards from ``matte.dataset`` (crop, prior channels, valid mask,
true coverage, convert's framing). The last ``--val-shards`` shards (in name order) are held out
for validation; the rest are loaded into memory once (~0.65 MB a sample) and sampled with
replacement, as random square patches, mirrored at random.

Loss per pixel inside the valid mask: binary cross-entropy of the logits against the soft true
coverage (fractional at hair and edges) plus the absolute error of the coverage itself, the
outline band (where the truth or MediaPipe is unsure) weighted BAND_WEIGHT times.

A run folder holds ``checkpoint.pt`` (model, optimiser, step, config), ``log.jsonl`` (one line a
logging interval and one a validation) and ``config.json``; ``--resume`` continues it exactly
(the sampler's generator is in the checkpoint), and ``--max-minutes`` stops it cleanly with a
checkpoint, so a long run is made of pieces.

    python -m volume_cli.matte.training --data /tmp/matte_data -o runs/matte --steps 3000 --max-minutes 60
    python -m volume_cli.matte.training --export runs/matte weights/
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from volume_cli.matte.model import INPUT_CHANNELS, MatteNet, parameter_count
from volume_cli.predictors.prior_input import PRIOR_CHANNELS


@dataclass
class MatteConfig:
    data: list[str]
    steps: int = 3000
    batch_size: int = 12
    patch: int = 128  # side of the training patches (a multiple of 16)
    lr: float = 2e-3
    warmup_steps: int = 100
    val_shards: int = 4
    seed: int = 0
    log_every: int = 25
    val_every: int = 250


def load_shards(files: list[Path]) -> dict[str, np.ndarray]:
    """The inputs [N, len(INPUT_CHANNELS), S, S] float16 and targets (coverage [N, S, S] uint8,
    valid [N, S, S] bool) of every sample in ``files``."""
    inputs, alpha, valid = [], [], []
    # The network's inputs between the colours and the valid mask are prior channels, in its order.
    picks = [PRIOR_CHANNELS.index(name) for name in INPUT_CHANNELS[3:-1]]
    for path in files:
        with np.load(path) as shard:
            crop = shard["crop"].transpose(0, 3, 1, 2).astype(np.float16) / np.float16(255.0)
            prior = shard["prior"][:, picks]
            v = shard["valid"]
            inputs.append(np.concatenate([crop, prior, v[:, None].astype(np.float16)], 1))
            alpha.append(shard["alpha"])
            valid.append(v)
    return {"inputs": np.concatenate(inputs), "alpha": np.concatenate(alpha), "valid": np.concatenate(valid)}


def batch_from(data: dict[str, np.ndarray], index: np.ndarray, patch: int, rng: torch.Generator) -> tuple:
    """Random patches of the samples ``index``, each mirrored with probability 1/2: inputs [B, C,
    P, P] float32, coverage [B, P, P] float32 in [0, 1], valid [B, P, P] bool."""
    size = data["alpha"].shape[-1]
    xs, ts, vs = [], [], []
    for i in index:
        y0, x0 = (int(v) for v in torch.randint(0, size - patch + 1, (2,), generator=rng))
        x = torch.from_numpy(data["inputs"][i, :, y0:y0 + patch, x0:x0 + patch].astype(np.float32))
        t = torch.from_numpy(data["alpha"][i, y0:y0 + patch, x0:x0 + patch].astype(np.float32) / 255.0)
        v = torch.from_numpy(data["valid"][i, y0:y0 + patch, x0:x0 + patch])
        if bool(torch.rand((), generator=rng) < 0.5):
            x, t, v = x.flip(-1), t.flip(-1), v.flip(-1)
        xs.append(x)
        ts.append(t)
        vs.append(v)
    return torch.stack(xs), torch.stack(ts), torch.stack(vs)


# 95 % of a crop's pixels are surely person or surely not, and MediaPipe is right there; the
# outline band (the truth or MediaPipe between 0.05 and 0.95) weighs this much more per pixel.
BAND_WEIGHT = 5.0


def outline_band(target: torch.Tensor, person: torch.Tensor) -> torch.Tensor:
    """Pixels where the truth or MediaPipe's confidence is between 0.05 and 0.95."""
    return ((target > 0.05) & (target < 0.95)) | ((person > 0.05) & (person < 0.95))


def matte_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, person: torch.Tensor) -> torch.Tensor:
    """Weighted mean over valid pixels of BCE(logits, target) + |sigmoid(logits) - target|, the
    outline band (``outline_band``) weighted BAND_WEIGHT times."""
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none") + (torch.sigmoid(logits) - target).abs()
    weight = valid.float() * (1.0 + (BAND_WEIGHT - 1.0) * outline_band(target, person).float())
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)


@torch.no_grad()
def validate(net: MatteNet, data: dict[str, np.ndarray], chunk: int = 8) -> dict:
    """On whole validation crops: the mean absolute coverage error inside the valid mask, the
    same for MediaPipe's confidence, and the error on the outline band (pixels where the truth or
    MediaPipe is between 0.05 and 0.95)."""
    net.eval()
    total = {"net": 0.0, "mediapipe": 0.0, "net_band": 0.0, "mediapipe_band": 0.0, "pixels": 0.0, "band": 0.0}
    person = INPUT_CHANNELS.index("person")
    for start in range(0, len(data["alpha"]), chunk):
        x = torch.from_numpy(data["inputs"][start:start + chunk].astype(np.float32))
        t = torch.from_numpy(data["alpha"][start:start + chunk].astype(np.float32) / 255.0)
        v = torch.from_numpy(data["valid"][start:start + chunk])
        pred = torch.sigmoid(net(x))
        mp = x[:, person]
        band = v & outline_band(t, mp)
        total["net"] += float((pred - t).abs()[v].sum())
        total["mediapipe"] += float((mp - t).abs()[v].sum())
        total["net_band"] += float((pred - t).abs()[band].sum())
        total["mediapipe_band"] += float((mp - t).abs()[band].sum())
        total["pixels"] += float(v.sum())
        total["band"] += float(band.sum())
    net.train()
    return {
        "mae": total["net"] / total["pixels"], "mediapipe_mae": total["mediapipe"] / total["pixels"],
        "band_mae": total["net_band"] / total["band"], "mediapipe_band_mae": total["mediapipe_band"] / total["band"],
        "samples": int(len(data["alpha"])),
    }


def _shard_files(folders: list[str]) -> list[Path]:
    files = sorted(p for f in folders for p in Path(f).glob("matte_*.npz") if not p.name.endswith(".tmp.npz"))
    if not files:
        raise SystemExit(f"no matte_*.npz shards in {', '.join(folders)} (make them with python -m volume_cli.matte.dataset)")
    return files


def train(config: MatteConfig, out: Path, resume: bool, max_minutes: float | None, steps: int | None = None) -> None:
    """Train (or with ``resume`` continue, to ``steps`` when given) the run in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    if resume:
        state = torch.load(checkpoint, weights_only=False)
        config = MatteConfig(**{**state["config"], **({"steps": steps} if steps else {})})
    elif checkpoint.exists():
        raise SystemExit(f"{out} already holds a run: pass --resume to continue it")
    files = _shard_files(config.data)
    if len(files) <= config.val_shards:
        raise SystemExit(f"{len(files)} shards: need more than the {config.val_shards} held out for validation")
    train_data, val_data = load_shards(files[: -config.val_shards]), load_shards(files[-config.val_shards:])
    torch.manual_seed(config.seed)
    net = MatteNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    rng = torch.Generator().manual_seed(config.seed)
    step = 0
    if resume:
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        rng.set_state(state["rng"])
        step = state["step"]
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1))
    log = (out / "log.jsonl").open("a")
    n = len(train_data["alpha"])
    print(f"{n} training and {len(val_data['alpha'])} validation samples, {parameter_count(net)} parameters", flush=True)
    started = time.time()
    running, seen = 0.0, 0

    def save() -> None:
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"model": net.state_dict(), "optimiser": optimiser.state_dict(), "rng": rng.get_state(), "step": step,
                    "config": asdict(config)}, tmp)
        tmp.replace(checkpoint)

    while step < config.steps:
        if max_minutes is not None and time.time() - started > 60 * max_minutes:
            break
        # Linear warm-up, then cosine decay to a tenth.
        progress = min(1.0, step / max(1, config.steps))
        lr = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps)) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimiser.param_groups:
            group["lr"] = lr
        index = torch.randint(0, n, (config.batch_size,), generator=rng).numpy()
        x, t, v = batch_from(train_data, index, config.patch, rng)
        loss = matte_loss(net(x), t, v, x[:, INPUT_CHANNELS.index("person")])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        running, seen = running + loss.item(), seen + 1
        if step % config.log_every == 0:
            log.write(json.dumps({"step": step, "loss": running / seen, "lr": lr, "minutes": (time.time() - started) / 60}) + "\n")
            log.flush()
            print(f"step {step} loss {running / seen:.4f} lr {lr:.2e}", flush=True)
            running, seen = 0.0, 0
        if step % config.val_every == 0 or step == config.steps:
            metrics = validate(net, val_data)
            log.write(json.dumps({"step": step, "validation": metrics}) + "\n")
            log.flush()
            print(f"step {step} validation {metrics}", flush=True)
            save()
    save()
    print(f"stopped at step {step} of {config.steps}", flush=True)


def export(run: Path, folder: Path, extra: dict | None = None) -> Path:
    """``weights/matte.safetensors`` and its card ``matte.json`` from a run's checkpoint."""
    from safetensors.torch import save_file

    from volume_cli.matte.model import HEAD_WIDTH, TRAINED_SIZE, WIDTHS, flops_estimate, sha256_of

    state = torch.load(run / "checkpoint.pt", weights_only=False)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "matte.safetensors"
    save_file({k: v.contiguous() for k, v in state["model"].items()}, str(path))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    validations = [row for row in log if "validation" in row]
    card = {
        "model": "volume person matte (matte/model.py)",
        "architecture": {"widths": list(WIDTHS), "head_width": HEAD_WIDTH, "inputs": list(INPUT_CHANNELS),
                         "multiply_adds_at_trained_size": flops_estimate(TRAINED_SIZE)},
        "training": state["config"], "steps": state["step"],
        "validation": validations[-1]["validation"] if validations else None,
        "sha256": sha256_of(path),
        **(extra or {}),
    }
    (folder / "matte.json").write_text(json.dumps(card, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", default=[], help="a folder of matte_*.npz shards (repeatable)")
    parser.add_argument("-o", "--output", type=Path, help="run folder")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--steps", type=int, help=f"train until this step (default {MatteConfig.steps}; with --resume, the run's own)")
    parser.add_argument("--batch-size", type=int, default=MatteConfig.batch_size)
    parser.add_argument("--patch", type=int, default=MatteConfig.patch)
    parser.add_argument("--lr", type=float, default=MatteConfig.lr)
    parser.add_argument("--seed", type=int, default=MatteConfig.seed)
    parser.add_argument("--warmup-steps", type=int, default=MatteConfig.warmup_steps)
    parser.add_argument("--val-shards", type=int, default=MatteConfig.val_shards, help="the last N shards are held out")
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--export", nargs=2, type=Path, metavar=("RUN", "FOLDER"), help="write RUN's weights and card into FOLDER")
    args = parser.parse_args(argv)
    if args.export:
        print(export(*args.export))
        return
    if args.output is None:
        parser.error("-o/--output is required")
    if args.patch % 16:
        parser.error("--patch must be a multiple of 16")
    if not args.resume and not args.data:
        parser.error("--data is required for a new run")
    config = MatteConfig(data=[str(d) for d in args.data], steps=args.steps or MatteConfig.steps, batch_size=args.batch_size,
                         patch=args.patch, lr=args.lr, seed=args.seed, val_shards=args.val_shards,
                         warmup_steps=args.warmup_steps)
    train(config, args.output, args.resume, args.max_minutes, steps=args.steps)


if __name__ == "__main__":
    main()
