"""DistributedDataParallel training under torchrun, as SageMaker's torch_distributed starts it.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK (and MASTER_ADDR/PORT for the rendezvous); this
script joins the process group (gloo on CPU, nccl on GPU), trains on its shard of the data with a
DistributedSampler, and lets rank 0 print the metrics and save the model. Alone (no torchrun)
it trains the same model in one process.

The data, points inside a disc ("inner") or on a ring around it ("outer"), is made from --seed,
so every rank makes the same set without a download; --samples says how many.
Writes (rank 0): SM_MODEL_DIR model.pth, model_config.json, code/inference.py;
                 SM_OUTPUT_DATA_DIR metrics.json
One line per epoch:  epoch=2 step=32 world_size=2 train_loss=0.41 val_loss=0.38 val_acc=0.95
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

# isort: split
from inference import CONFIG_FILE, WEIGHTS_FILE, RingNet

CODE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = CODE_DIR.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", PROJECT_DIR / "model"))
    p.add_argument(
        "--output-data-dir",
        default=os.environ.get("SM_OUTPUT_DATA_DIR", PROJECT_DIR / "output" / "data"),
    )
    args, unknown = p.parse_known_args()
    if unknown:
        print(f"train.py: ignoring unknown arguments {unknown}", flush=True)
    return args


def make_data(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Half the points in a disc of radius 1, half on a ring from 1.5 to 2.5, with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(samples) % 2
    radius = torch.where(
        labels == 0, torch.rand(samples, generator=g), 1.5 + torch.rand(samples, generator=g)
    )
    angle = 2 * math.pi * torch.rand(samples, generator=g)
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    points += 0.15 * torch.randn(samples, 2, generator=g)
    return points, labels


def setup() -> tuple[int, int, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and int(os.environ.get("SM_NUM_GPUS", "0") or 0) > 0
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return dist.get_rank(), world_size, device
    return 0, 1, device


def mean_over_ranks(values: list[float], device: torch.device, world_size: int) -> list[float]:
    if world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / world_size).tolist()


def main() -> int:
    args = parse_args()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    rank, world_size, device = setup()
    points, labels = make_data(args.samples, args.seed)
    cut = int(0.8 * len(points))
    train = TensorDataset(points[:cut], labels[:cut])
    x_val, y_val = points[cut:].to(device), labels[cut:].to(device)
    sampler = DistributedSampler(train, num_replicas=world_size, rank=rank, seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)

    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts)
    model = RingNet(args.hidden).to(device)
    net: nn.Module = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    if rank == 0:
        print(
            f"train.py: world size {world_size} on host {os.environ.get('SM_CURRENT_HOST', '-')}, "
            f"{len(sampler)} of {len(train)} training points per rank, device {device}",
            flush=True,
        )
    started = time.monotonic()
    step = 0
    metrics: dict[str, float] = {}
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        total, count = 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(xb), yb)
            loss.backward()
            optimizer.step()
            step += 1
            total += loss.item() * len(yb)
            count += len(yb)
        (train_loss,) = mean_over_ranks([total / max(1, count)], device, world_size)
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = nn.functional.cross_entropy(logits, y_val).item()
            val_acc = (logits.argmax(dim=1) == y_val).float().mean().item()
        model.train()
        metrics = {"train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc}
        if rank == 0:
            print(
                f"epoch={epoch} step={step} world_size={world_size} train_loss={train_loss:.4f} "
                f"val_loss={val_loss:.4f} val_acc={val_acc:.4f}",
                flush=True,
            )

    if rank == 0:
        model_dir = Path(args.model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, model_dir / WEIGHTS_FILE)
        config = {"hidden": args.hidden, "world_size": world_size}
        (model_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        (model_dir / "code").mkdir(exist_ok=True)
        shutil.copy2(CODE_DIR / "inference.py", model_dir / "code" / "inference.py")
        output_dir = Path(args.output_data_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        metrics["train_seconds"] = round(time.monotonic() - started, 3)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"train.py: saved the model to {model_dir}", flush=True)
    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
