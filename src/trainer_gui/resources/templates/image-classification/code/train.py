"""Train a small CNN on grayscale images, one folder per class, in SageMaker's script mode.

Reads:  SM_CHANNEL_TRAIN / SM_CHANNEL_TEST  folders of <class>/<image>.pgm (ImageFolder layout)
        --epochs --batch-size --lr --seed   hyperparameters, as SageMaker passes them
Writes: SM_MODEL_DIR        model.pth, model_config.json, code/inference.py (serving handlers)
        SM_OUTPUT_DATA_DIR  metrics.json
One line per epoch, for the job's metric definitions:
  epoch=3 step=18 train_loss=0.4231 test_loss=0.4012 test_acc=0.8650
Without SM_* variables (`python code/train.py` in the project) it uses ../data and ../model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# isort: split
from inference import CONFIG_FILE, WEIGHTS_FILE, SmallCNN, read_pgm

CODE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = CODE_DIR.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
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


def load_folder(
    root: Path, classes: list[str] | None
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Images under root/<class>/; the classes are the sorted folder names of the train set."""
    if not root.is_dir():
        raise SystemExit(f"train.py: {root} is not a folder of class folders")
    names = classes or sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(names) < 2:
        raise SystemExit(f"train.py: {root} needs a folder per class (at least two)")
    images, labels = [], []
    for index, name in enumerate(names):
        for file in sorted((root / name).glob("*.pgm")):
            images.append(read_pgm(file.read_bytes()))
            labels.append(index)
    if not images:
        raise SystemExit(f"train.py: no .pgm images under {root}")
    sizes = {img.shape for img in images}
    if len(sizes) != 1:
        raise SystemExit(f"train.py: images in {root} differ in size: {sorted(sizes)}")
    x = torch.from_numpy(np.stack(images)).unsqueeze(1)
    return names, x, torch.tensor(labels)


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
        torch.set_num_threads(1)  # tiny images: one thread is fastest
    torch.manual_seed(args.seed)
    classes, x_train, y_train = load_folder(Path(args.train), None)
    _, x_test, y_test = load_folder(Path(args.test), classes)
    size = x_train.shape[-1]
    if x_train.shape[-2] != size or size % 4:
        raise SystemExit(f"train.py: images must be square with a side divisible by 4, not {size}")
    print(
        f"train.py: {len(x_train)} training images of {size}x{size}, classes {classes}; "
        f"{args.epochs} epochs, batch size {args.batch_size}, lr {args.lr}",
        flush=True,
    )
    model = SmallCNN(len(classes), size)
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
    config = {"classes": classes, "size": size}
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
