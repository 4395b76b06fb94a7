"""The regression network and its SageMaker PyTorch serving handlers.

train.py imports the network from here; the model folder gets a copy of this file as
code/inference.py, which the serving container loads.

Requests (Content-Type; parameters such as "; charset=utf-8" are ignored):
  application/json  [[x1, x2], ...], one row [x1, x2], or {"instances": [[x1, x2], ...]}
  text/csv          one row per line: x1,x2
Responses (Accept): application/json {"predictions": [y, ...]} (the default), or text/csv with
one value per line. Bad input raises ValueError with a message saying what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import os

import torch
from torch import nn

WEIGHTS_FILE = "model.pth"
CONFIG_FILE = "model_config.json"
JSON = "application/json"
CSV = "text/csv"


class Regressor(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def model_fn(model_dir: str) -> nn.Module:
    with open(os.path.join(model_dir, CONFIG_FILE)) as fh:
        config = json.load(fh)
    model = Regressor(int(config["hidden"]))
    state = torch.load(os.path.join(model_dir, WEIGHTS_FILE), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def input_fn(request_body: bytes | str, content_type: str | None = JSON) -> torch.Tensor:
    """Decode a request into rows, shape (N, 2)."""
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
        rows = torch.tensor([[float(v) for v in row] for row in _rows(payload)])
    except (TypeError, ValueError):
        raise ValueError("send rows of two numbers: [[x1, x2], ...]") from None
    if rows.ndim != 2 or rows.shape[1] != 2:
        raise ValueError(f"expected rows [[x1, x2], ...], got shape {tuple(rows.shape)}")
    return rows


def _rows(payload: object) -> list:
    if isinstance(payload, list) and payload and not isinstance(payload[0], list):
        return [payload]  # one row
    if not isinstance(payload, list):
        raise ValueError("send a list of rows: [[x1, x2], ...]")
    return payload


def predict_fn(rows: torch.Tensor, model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(rows)


def output_fn(prediction: torch.Tensor, accept: str | None = JSON) -> tuple[str, str]:
    values = [round(float(v), 6) for v in prediction.tolist()]
    for media in [a.split(";")[0].strip().lower() for a in (accept or JSON).split(",")]:
        if media in (JSON, "*/*", "application/*", ""):
            return json.dumps({"predictions": values}), JSON
        if media == CSV:
            return "".join(f"{v}\n" for v in values), CSV
    raise ValueError(f"unsupported accept type {accept!r}; ask for {JSON} or {CSV}")
