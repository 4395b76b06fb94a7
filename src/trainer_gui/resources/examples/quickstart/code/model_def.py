"""The model shared by train.py and inference.py: a small MLP for tabular classification.

Feature standardization (mean/std) lives inside the model as buffers, so it is saved in
model.pth and inference needs nothing else than model_config.json and the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS_FILE = "model.pth"
CONFIG_FILE = "model_config.json"


class MLP(nn.Module):
    def __init__(self, n_features: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def build_model(config: dict[str, Any]) -> MLP:
    return MLP(int(config["n_features"]), int(config["hidden"]), int(config["n_classes"]))


def read_config(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{CONFIG_FILE} not found in {model_dir}; was the model trained?")
    with path.open() as fh:
        config: dict[str, Any] = json.load(fh)
    return config
