"""Quickstart training script: an MLP on a small CSV dataset, following SageMaker's script mode.

It reads everything the way a script does on SageMaker:
  * channels from SM_CHANNEL_TRAIN / SM_CHANNEL_TEST: folders of .csv files, header, label last;
  * hyperparameters as `--key value` arguments (--epochs, --batch-size, --lr, --hidden, --seed);
  * SM_MODEL_DIR for the model, SM_OUTPUT_DATA_DIR for other outputs, SM_NUM_GPUS for GPUs.
Run under torchrun (WORLD_SIZE > 1) it trains with DistributedDataParallel, gloo on CPU or nccl on
GPU; only rank 0 prints metrics and writes files.

Without any SM_* variables (`python code/train.py` from the project folder) it reads
../data/<channel> and writes ../model and ../output/data next to this folder.

One line per epoch, for metric regexes and key=value detection alike:
  epoch=3 step=72 train_loss=0.4231 test_loss=0.4012 test_acc=0.8650
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

# isort: split
# model_def.py sits next to this script, and Python puts the script's folder on sys.path.
from model_def import CONFIG_FILE, MLP, WEIGHTS_FILE

CODE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = CODE_DIR.parent

DEFAULT_CHECKPOINT_DIR = "/opt/ml/checkpoints"
CHECKPOINT_FILE = "checkpoint.pt"
SERVING_FILES = ("inference.py", "model_def.py")


# -- arguments and environment -------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # Hyperparameters (SageMaker passes them as --key value, keys sorted, hyphens kept).
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--checkpoint-dir",
        "--checkpoint_dir",
        dest="checkpoint_dir",
        default=None,
        help="save a checkpoint each epoch and resume from it (default: $SM_CHECKPOINT_DIR, "
        f"or {DEFAULT_CHECKPOINT_DIR} when it exists and is writable)",
    )
    # SageMaker's environment, overridable from the command line like its own examples do.
    p.add_argument("--train", default=channel_dir("train"))
    p.add_argument("--test", default=channel_dir("test"))
    p.add_argument("--model-dir", dest="model_dir", default=env_dir("SM_MODEL_DIR", "model"))
    p.add_argument(
        "--output-data-dir",
        dest="output_data_dir",
        default=env_dir("SM_OUTPUT_DATA_DIR", "output/data"),
    )
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print(f"quickstart: ignoring unknown arguments {unknown}", flush=True)
    return args


def channel_dir(name: str) -> str | None:
    """SM_CHANNEL_<NAME>, else the SageMaker path when SM_CHANNELS lists it, else ../data/<name>."""
    env = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    if env:
        return env
    try:
        listed = json.loads(os.environ.get("SM_CHANNELS", "[]"))
    except ValueError:
        listed = []
    if name in listed:
        input_dir = os.environ.get("SM_INPUT_DIR", "/opt/ml/input")
        return os.path.join(input_dir, "data", name)
    local = PROJECT_DIR / "data" / name
    return str(local) if local.exists() else None


def env_dir(var: str, fallback: str) -> str:
    return os.environ.get(var) or str(PROJECT_DIR / fallback)


def checkpoint_dir(arg: str | None) -> Path | None:
    """--checkpoint-dir, else $SM_CHECKPOINT_DIR, else /opt/ml/checkpoints if writable."""
    arg = arg or os.environ.get("SM_CHECKPOINT_DIR")
    if arg:
        path = Path(arg)
        path.mkdir(parents=True, exist_ok=True)
        return path
    default = Path(DEFAULT_CHECKPOINT_DIR)
    if default.is_dir() and os.access(default, os.W_OK):
        return default
    return None


# -- data ------------------------------------------------------------------------------------------


def read_csv_dir(path: str) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """All .csv files in a channel folder (or one file): header row, features, label last."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(root.glob("*.csv"))
    if not files:
        raise SystemExit(f"quickstart: no .csv files in {path}")
    header: list[str] = []
    rows: list[list[float]] = []
    for file in files:
        with file.open(newline="") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if not row:
                    continue
                try:
                    rows.append([float(v) for v in row])
                except ValueError:
                    if i == 0:
                        header = row
                        continue
                    raise SystemExit(
                        f"quickstart: {file}:{i + 1}: non-numeric value in {row}"
                    ) from None
    data = torch.tensor(rows, dtype=torch.float32)
    return header[:-1], data[:, :-1].contiguous(), data[:, -1].long()


# -- distributed -----------------------------------------------------------------------------------


def setup_distributed(num_gpus: int) -> tuple[int, int, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    # Every process on a host decides alike (one GPU each, or all on CPU): the backend must match.
    gpus = min(num_gpus, torch.cuda.device_count()) if torch.cuda.is_available() else 0
    use_cuda = gpus > 0 and local_world_size <= gpus
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return dist.get_rank(), world_size, device
    return 0, 1, device


def all_sum(values: list[float], device: torch.device, world_size: int) -> list[float]:
    if world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def load_checkpoint(
    path: Path | None, rank: int, world_size: int, config: dict[str, Any]
) -> dict[str, Any] | None:
    """Rank 0 reads the checkpoint and shares it, so every rank resumes at the same epoch."""
    state: dict[str, Any] | None = None
    if rank == 0 and path is not None and (path / CHECKPOINT_FILE).is_file():
        state = torch.load(path / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
        if state.get("config") != config:
            print(f"quickstart: {path / CHECKPOINT_FILE} is for another model; ignoring it")
            state = None
    if world_size > 1:
        box = [state]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    return state


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path / CHECKPOINT_FILE)


# -- training --------------------------------------------------------------------------------------


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        acc = (logits.argmax(dim=1) == y).float().mean().item()
    model.train()
    return loss, acc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    num_gpus = int(os.environ.get("SM_NUM_GPUS") or torch.cuda.device_count())
    rank, world_size, device = setup_distributed(num_gpus)
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # a model this small is slower on several threads, much slower
        # when the cores are busy; set OMP_NUM_THREADS to override
    torch.manual_seed(args.seed)

    if not args.train:
        raise SystemExit("quickstart: no train channel (set SM_CHANNEL_TRAIN or --train)")
    feature_names, x_train, y_train = read_csv_dir(args.train)
    x_test = y_test = None
    if args.test:
        _, x_test, y_test = read_csv_dir(args.test)
        x_test, y_test = x_test.to(device), y_test.to(device)

    classes = sorted(int(c) for c in y_train.unique().tolist())
    if classes != list(range(len(classes))):
        raise SystemExit(f"quickstart: labels must be 0..K-1, got {classes}")
    config = {
        "n_features": x_train.shape[1],
        "hidden": args.hidden,
        "n_classes": len(classes),
        "classes": classes,
        "feature_names": feature_names,
    }

    model = MLP(config["n_features"], args.hidden, config["n_classes"])
    model.mean.copy_(x_train.mean(dim=0))
    model.std.copy_(x_train.std(dim=0).clamp_min(1e-6))
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    ckpt_dir = checkpoint_dir(args.checkpoint_dir)
    start_epoch = 1
    state = load_checkpoint(ckpt_dir, rank, world_size, config)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"]) + 1
        if rank == 0:
            print(f"quickstart: resuming after epoch {state['epoch']} from {ckpt_dir}", flush=True)

    net: nn.Module = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    dataset = TensorDataset(x_train, y_train)
    sampler = (
        DistributedSampler(dataset, num_replicas=world_size, rank=rank, seed=args.seed)
        if world_size > 1
        else None
    )
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=torch.Generator().manual_seed(args.seed),
    )

    if rank == 0:
        print(
            f"quickstart: {len(dataset)} training rows, {config['n_features']} features, "
            f"{config['n_classes']} classes; {args.epochs} epochs, batch size {args.batch_size}, "
            f"lr {args.lr}, hidden {args.hidden}; device {device}, world size {world_size}, "
            f"host {os.environ.get('SM_CURRENT_HOST', 'local')}",
            flush=True,
        )

    started = time.monotonic()
    metrics: dict[str, Any] = {}
    step = (start_epoch - 1) * len(loader)
    for epoch in range(start_epoch, args.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        loss_sum, count = 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(xb), yb)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.item() * len(yb)
            count += len(yb)
        loss_sum, count = all_sum([loss_sum, float(count)], device, world_size)
        metrics = {"epoch": epoch, "step": step, "train_loss": loss_sum / count}
        line = f"epoch={epoch} step={step} train_loss={metrics['train_loss']:.4f}"
        if x_test is not None and y_test is not None:
            metrics["test_loss"], metrics["test_acc"] = evaluate(model, x_test, y_test)
            line += f" test_loss={metrics['test_loss']:.4f} test_acc={metrics['test_acc']:.4f}"
        if rank == 0:
            print(line, flush=True)
            if ckpt_dir is not None:
                save_checkpoint(
                    ckpt_dir,
                    {
                        "epoch": epoch,
                        "config": config,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                    },
                )

    if rank == 0:
        if not metrics and x_test is not None and y_test is not None:  # resumed a finished run
            metrics["test_loss"], metrics["test_acc"] = evaluate(model, x_test, y_test)
        metrics["train_seconds"] = round(time.monotonic() - started, 3)
        save_outputs(model, config, metrics, Path(args.model_dir), Path(args.output_data_dir))

    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def save_outputs(
    model: nn.Module,
    config: dict[str, Any],
    metrics: dict[str, Any],
    model_dir: Path,
    output_dir: Path,
) -> None:
    """model.pth + model_config.json + code/ (serving handlers) in the model dir; metrics.json."""
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, model_dir / WEIGHTS_FILE)
    (model_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    code_out = model_dir / "code"
    code_out.mkdir(exist_ok=True)
    for name in SERVING_FILES:
        shutil.copy2(CODE_DIR / name, code_out / name)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"quickstart: saved {WEIGHTS_FILE} and {CONFIG_FILE} to {model_dir}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
