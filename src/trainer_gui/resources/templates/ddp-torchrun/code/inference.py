"""The ring classifier and its SageMaker PyTorch serving handlers.

train.py imports the network from here; the model folder gets a copy of this file as
code/inference.py, which the serving container loads.

Requests (Content-Type; parameters such as "; charset=utf-8" are ignored):
  application/json  [[x, y], ...], one point [x, y], or {"instances": [[x, y], ...]}
  text/csv          one point per line: x,y
Response (application/json):
  {"predictions": [[p_inner, p_outer], ...], "classes": ["inner", "outer"], "predicted": [...]}
Bad input raises ValueError with a message saying what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

import torch
from torch import nn

WEIGHTS_FILE = "model.pth"
CONFIG_FILE = "model_config.json"
CLASSES = ["inner", "outer"]
JSON = "application/json"
CSV = "text/csv"


class RingNet(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, len(CLASSES)),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def model_fn(model_dir: str) -> nn.Module:
    with open(os.path.join(model_dir, CONFIG_FILE)) as fh:
        config = json.load(fh)
    model = RingNet(int(config["hidden"]))
    state = torch.load(os.path.join(model_dir, WEIGHTS_FILE), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def input_fn(request_body: bytes | str, content_type: str | None = JSON) -> torch.Tensor:
    """Decode a request into points, shape (N, 2)."""
    media = (content_type or JSON).split(";")[0].strip().lower()
    text = request_body if isinstance(request_body, str) else bytes(request_body).decode("utf-8")
    if media == JSON:
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"application/json: body is not valid JSON ({exc})") from None
        if isinstance(payload, dict):
            payload = payload.get("instances")
    elif media == CSV:
        payload = [row for row in csv.reader(io.StringIO(text)) if row]
    else:
        raise ValueError(f"unsupported content type {content_type!r}; send {JSON} or {CSV}")
    try:
        points = torch.tensor(payload, dtype=torch.float32)
    except (TypeError, ValueError):
        try:
            points = torch.tensor([[float(v) for v in row] for row in payload])
        except (TypeError, ValueError):
            raise ValueError("send points as numbers: [[x, y], ...]") from None
    if points.ndim == 1:
        points = points.unsqueeze(0)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"expected points [[x, y], ...], got shape {tuple(points.shape)}")
    return points


def predict_fn(points: torch.Tensor, model: nn.Module) -> dict[str, Any]:
    with torch.no_grad():
        probs = torch.softmax(model(points), dim=1)
    return {
        "predictions": probs.round(decimals=6).tolist(),
        "classes": CLASSES,
        "predicted": [CLASSES[i] for i in probs.argmax(dim=1).tolist()],
    }


def output_fn(prediction: dict[str, Any], accept: str | None = JSON) -> tuple[str, str]:
    """JSON only: probabilities need their class names beside them."""
    wanted = [a.split(";")[0].strip().lower() for a in (accept or JSON).split(",")]
    if not any(a in (JSON, "*/*", "application/*", "") for a in wanted):
        raise ValueError(f"unsupported accept type {accept!r}; this model answers {JSON}")
    return json.dumps(prediction), JSON
