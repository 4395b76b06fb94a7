"""Train an MLP on a CSV table in SageMaker's script mode.

Reads:  SM_CHANNEL_TRAIN / SM_CHANNEL_TEST  folders of .csv files with a header row
        --target                            the label column (any values: text or numbers)
        --epochs --batch-size --lr --hidden --seed
Every other column is a feature: numeric when all its training values are numbers (missing ones
allowed), otherwise a category, one-hot encoded.
Writes: SM_MODEL_DIR        model.pth, model_config.json, code/inference.py (serving handlers)
        SM_OUTPUT_DATA_DIR  metrics.json
One line per epoch, for the job's metric definitions:
  epoch=3 step=45 train_loss=0.4231 test_loss=0.4012 test_acc=0.8650
Without SM_* variables (`python code/train.py` in the project) it uses ../data and ../model.
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
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# isort: split
from inference import CONFIG_FILE, WEIGHTS_FILE, TabularMLP, as_number, encode

CODE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = CODE_DIR.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default="fruit")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--train", default=os.environ.get("SM_CHANNEL_TRAIN", PROJECT_DIR / "data/train")
    )
    p.add_argument("--test", default=os.environ.get("SM_CHANNEL_TEST", PROJECT_DIR / "data/test"))
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", PROJECT_DIR / "model"))
    p.add_argument(
        "--output-data-dir",
        default=os.environ.get("SM_OUTPUT_DATA_DIR", PROJECT_DIR / "output" / "data"),
    )
    args, unknown = p.parse_known_args()
    if unknown:
        print(f"train.py: ignoring unknown arguments {unknown}", flush=True)
    return args


def read_table(path: Path) -> list[dict[str, str]]:
    """Every .csv file in a channel folder (or one file), rows as {column: text}."""
    files = [path] if path.is_file() else sorted(path.glob("*.csv"))
    if not files:
        raise SystemExit(f"train.py: no .csv files in {path}")
    rows: list[dict[str, str]] = []
    for file in files:
        with file.open(newline="") as fh:
            rows.extend(dict(r) for r in csv.DictReader(fh))
    if not rows:
        raise SystemExit(f"train.py: {path} holds a header but no rows")
    return rows


def describe(rows: list[dict[str, str]], target: str, hidden: int) -> dict[str, Any]:
    """The encoding, learnt from the training rows: column kinds, category values, mean, std."""
    if target not in rows[0]:
        raise SystemExit(f"train.py: no column {target!r}; the columns are {list(rows[0])}")
    columns: list[dict[str, Any]] = []
    for name in rows[0]:
        if name == target:
            continue
        texts = [r[name] for r in rows]
        numbers = [as_number(t) for t in texts]
        if all(n is not None or not t.strip() for n, t in zip(numbers, texts)):  # noqa: B905
            present = [n for n in numbers if n is not None]
            mean = sum(present) / max(1, len(present))
            var = sum((n - mean) ** 2 for n in present) / max(1, len(present))
            columns.append({"name": name, "kind": "numeric", "mean": mean, "std": var**0.5 or 1.0})
        else:
            columns.append({"name": name, "kind": "category", "values": sorted(set(texts))})
    n_inputs = sum(1 if c["kind"] == "numeric" else len(c["values"]) for c in columns)
    classes = sorted({r[target] for r in rows})
    if len(classes) < 2:
        raise SystemExit(f"train.py: the target {target!r} has only one value: {classes}")
    return {
        "target": target,
        "columns": columns,
        "classes": classes,
        "n_inputs": n_inputs,
        "hidden": hidden,
    }


def tensors(
    rows: list[dict[str, str]], config: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    classes = config["classes"]
    unknown = sorted({r[config["target"]] for r in rows} - set(classes))
    if unknown:
        raise SystemExit(f"train.py: test labels {unknown} never occur in the training data")
    x = torch.from_numpy(encode(list(rows), config))
    y = torch.tensor([classes.index(r[config["target"]]) for r in rows])
    return x, y


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        acc = (logits.argmax(dim=1) == y).float().mean().item()
    model.train()
    return loss, acc


def main() -> int:
    args = parse_args()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # a model this small is slower on several threads
    torch.manual_seed(args.seed)
    train_rows = read_table(Path(args.train))
    config = describe(train_rows, args.target, args.hidden)
    x_train, y_train = tensors(train_rows, config)
    x_test, y_test = tensors(read_table(Path(args.test)), config)
    print(
        f"train.py: {len(x_train)} rows, {len(config['columns'])} feature columns "
        f"({config['n_inputs']} inputs), classes {config['classes']}; {args.epochs} epochs",
        flush=True,
    )
    model = TabularMLP(config["n_inputs"], args.hidden, len(config["classes"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    started = time.monotonic()
    step = 0
    metrics: dict[str, float] = {}
    for epoch in range(1, args.epochs + 1):
        total, count = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            step += 1
            total += loss.item() * len(yb)
            count += len(yb)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        metrics = {"train_loss": total / count, "test_loss": test_loss, "test_acc": test_acc}
        print(
            f"epoch={epoch} step={step} train_loss={total / count:.4f} "
            f"test_loss={test_loss:.4f} test_acc={test_acc:.4f}",
            flush=True,
        )

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / WEIGHTS_FILE)
    (model_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (model_dir / "code").mkdir(exist_ok=True)
    shutil.copy2(CODE_DIR / "inference.py", model_dir / "code" / "inference.py")
    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics["train_seconds"] = round(time.monotonic() - started, 3)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"train.py: saved the model to {model_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
