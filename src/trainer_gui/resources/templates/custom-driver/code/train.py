"""Fit y = f(x1, x2) with DistributedDataParallel over the workers the custom driver starts.

The driver (driver/launch.py) sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for each
worker, as torchrun would; this script joins the gloo process group when WORLD_SIZE > 1 and
trains on its shard of the data. Alone (`python code/train.py`) it trains in one process.

The data, y = sin(2 x1) + 0.5 x2^2 plus noise, is made from --seed (no download).
Writes (rank 0): SM_MODEL_DIR model.pth, model_config.json, code/inference.py;
                 SM_OUTPUT_DATA_DIR metrics.json
One line per epoch:  epoch=2 step=26 world_size=2 train_mse=0.0412 val_mse=0.0388
"""

from __future__ import annotations

import argparse
import json
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
from inference import CONFIG_FILE, WEIGHTS_FILE, Regressor

CODE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = CODE_DIR.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
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
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(samples, 2, generator=g) - 1
    y = torch.sin(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.05 * torch.randn(samples, generator=g)
    return x, y


def main() -> int:
    args = parse_args()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1:
        dist.init_process_group(backend="gloo", rank=rank, world_size=world_size)
    x, y = make_data(args.samples, args.seed)
    cut = int(0.8 * len(x))
    train = TensorDataset(x[:cut], y[:cut])
    x_val, y_val = x[cut:], y[cut:]
    sampler = DistributedSampler(train, num_replicas=world_size, rank=rank, seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)
    torch.manual_seed(args.seed)
    model = Regressor(args.hidden)
    net: nn.Module = nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    if rank == 0:
        print(f"train.py: rank 0 of {world_size}, {len(sampler)} points per rank", flush=True)
    started = time.monotonic()
    step = 0
    metrics: dict[str, float] = {}
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        total, count = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(net(xb), yb)
            loss.backward()
            optimizer.step()
            step += 1
            total += loss.item() * len(yb)
            count += len(yb)
        sums = torch.tensor([total, float(count)], dtype=torch.float64)
        if world_size > 1:
            dist.all_reduce(sums)
        train_mse = (sums[0] / sums[1]).item()
        with torch.no_grad():
            val_mse = nn.functional.mse_loss(model(x_val), y_val).item()
        metrics = {"train_mse": train_mse, "val_mse": val_mse}
        if rank == 0:
            print(
                f"epoch={epoch} step={step} world_size={world_size} "
                f"train_mse={train_mse:.5f} val_mse={val_mse:.5f}",
                flush=True,
            )
    if rank == 0:
        model_dir = Path(args.model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), model_dir / WEIGHTS_FILE)
        (model_dir / CONFIG_FILE).write_text(json.dumps({"hidden": args.hidden}) + "\n")
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
