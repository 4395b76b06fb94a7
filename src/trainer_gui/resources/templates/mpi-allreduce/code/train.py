"""Data-parallel linear regression with mpi4py: a SageMaker MPI script.

Started by `mpirun ... python -m mpi4py train.py --epochs N ...` on every host (the app's
Docker backend and SageMaker's MPI distribution both do that). Every rank makes the same data
from --seed and keeps every size-th row from its rank on; each epoch it computes the gradient
of the squared error on its shard, and an Allreduce sums the gradients (and the losses) over
all ranks, so every rank takes the same step. Rank 0 prints the metrics and writes the model.
Without mpi4py or mpirun it runs as a single rank.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np

try:
    from mpi4py import MPI

    COMM = MPI.COMM_WORLD
except ImportError:  # a plain `python train.py`
    MPI = None
    COMM = None

from inference import MODEL_FILE, predict


def allreduce(values: np.ndarray) -> np.ndarray:
    """The element-wise sum over all ranks (the rank's own values alone without MPI)."""
    if COMM is None:
        return values
    total = np.zeros_like(values)
    COMM.Allreduce(values, total, op=MPI.SUM)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--features", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    args = parser.parse_args()

    rank = COMM.Get_rank() if COMM is not None else 0
    size = COMM.Get_size() if COMM is not None else 1
    host = os.environ.get("SM_CURRENT_HOST", "local")
    print(f"rank {rank} of {size} on {os.uname().nodename} ({host})", flush=True)

    rng = np.random.default_rng(args.seed)
    true_weights = rng.normal(size=args.features)
    x = rng.normal(size=(args.samples, args.features))
    y = x @ true_weights + 0.5 + rng.normal(scale=0.1, size=args.samples)
    split = int(args.samples * 0.8)
    train_x, train_y = x[rank:split:size], y[rank:split:size]
    val_x, val_y = x[split + rank :: size], y[split + rank :: size]

    weights = np.zeros(args.features)
    bias = 0.0
    total_train = allreduce(np.array([len(train_y)], dtype=float))[0]
    total_val = allreduce(np.array([len(val_y)], dtype=float))[0]
    for epoch in range(1, args.epochs + 1):
        error = predict(weights, bias, train_x) - train_y
        local = np.concatenate([train_x.T @ error, [error.sum(), (error**2).sum()]])
        summed = allreduce(local)  # gradients and loss, summed over every rank's shard
        grad_w = summed[:-2] * 2 / total_train
        grad_b = summed[-2] * 2 / total_train
        loss = summed[-1] / total_train
        weights -= args.lr * grad_w
        bias -= args.lr * grad_b
        val_error = predict(weights, bias, val_x) - val_y
        val_loss = allreduce(np.array([(val_error**2).sum()]))[0] / total_val
        if rank == 0:
            print(f"epoch={epoch} train_loss={loss:.6f} val_loss={val_loss:.6f}", flush=True)

    if rank == 0:
        os.makedirs(os.path.join(args.model_dir, "code"), exist_ok=True)
        with open(os.path.join(args.model_dir, MODEL_FILE), "w") as fh:
            json.dump({"weights": weights.tolist(), "bias": bias, "world_size": size}, fh)
        here = os.path.dirname(os.path.abspath(__file__))
        shutil.copy(os.path.join(here, "inference.py"), os.path.join(args.model_dir, "code"))
        print(f"saved the model (world_size={size})", flush=True)


if __name__ == "__main__":
    main()
