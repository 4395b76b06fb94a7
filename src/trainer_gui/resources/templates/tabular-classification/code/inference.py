"""The tabular MLP, its feature encoding, and SageMaker PyTorch serving handlers.

train.py imports the network and `encode` from here, so training and serving turn rows into
numbers the same way; the model folder gets a copy of this file as code/inference.py.

Requests (Content-Type; parameters such as "; charset=utf-8" are ignored):
  application/json  one row as an object {"weight_g": 150, "colour": "red", ...}, a list of
                    them, rows as lists in the training column order, or {"instances": [...]}
  text/csv          rows of values; a first line naming the columns is used to match them
                    (so a file like data/test/fruit.csv works as it is, its target ignored),
                    without it the values are in the training column order
Response (application/json):
  {"predictions": [[p_class0, p_class1, ...], ...], "classes": [...], "predicted": [...]}
Missing numbers count as the training mean; unseen categories as none of the known ones.
Bad input raises ValueError with a message saying what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

import numpy as np
import torch
from torch import nn

WEIGHTS_FILE = "model.pth"
CONFIG_FILE = "model_config.json"
JSON = "application/json"
CSV = "text/csv"

Row = Any  # an object by column name, or a list in column order (Python 3.8 has no `|` here)


class TabularMLP(nn.Module):
    def __init__(self, n_inputs: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_inputs, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def feature_names(config: dict[str, Any]) -> list[str]:
    return [c["name"] for c in config["columns"]]


def as_number(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def encode(rows: list[Row], config: dict[str, Any]) -> np.ndarray:
    """Rows (objects by column name, or lists in column order) to the model's float inputs."""
    names = feature_names(config)
    width = sum(1 if c["kind"] == "numeric" else len(c["values"]) for c in config["columns"])
    out = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            unknown = sorted(set(row) - set(names) - {config["target"]})
            if unknown:
                raise ValueError(f"row {i}: unknown columns {unknown}; the model knows {names}")
            values = [row.get(name) for name in names]
        elif isinstance(row, list):
            if len(row) != len(names):
                raise ValueError(f"row {i} has {len(row)} values; the model wants {names}")
            values = row
        else:
            raise ValueError(f"row {i} is neither an object nor a list: {row!r:.60}")
        col = 0
        for column, value in zip(config["columns"], values):  # noqa: B905 (Python 3.8 images)
            if column["kind"] == "numeric":
                number = as_number(value)
                if number is None and value not in (None, ""):
                    raise ValueError(f"row {i}: {column['name']} must be a number, got {value!r}")
                if number is not None:
                    out[i, col] = (number - column["mean"]) / column["std"]
                col += 1
            else:
                text = "" if value is None else str(value)
                if text in column["values"]:
                    out[i, col + column["values"].index(text)] = 1.0
                col += len(column["values"])
    return out


def model_fn(model_dir: str) -> nn.Module:
    """Rebuild the MLP from model_config.json and load model.pth."""
    with open(os.path.join(model_dir, CONFIG_FILE)) as fh:
        config = json.load(fh)
    model = TabularMLP(int(config["n_inputs"]), int(config["hidden"]), len(config["classes"]))
    state = torch.load(os.path.join(model_dir, WEIGHTS_FILE), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.config = config
    return model.eval()


def _parse_csv(text: str) -> list[Row]:
    lines = [r for r in csv.reader(io.StringIO(text)) if r and any(v.strip() for v in r)]
    if not lines:
        raise ValueError("text/csv: no rows in the request")
    first = lines[0]
    if all(as_number(v) is None for v in first):  # a header: match the columns by name
        header = [v.strip() for v in first]
        return [dict(zip(header, r)) for r in lines[1:]]  # noqa: B905
    return [list(r) for r in lines]


def input_fn(request_body: bytes | str, content_type: str | None = JSON) -> list[Row]:
    """Decode a request into rows: objects by column name, or lists in column order."""
    media = (content_type or JSON).split(";")[0].strip().lower()
    text = request_body if isinstance(request_body, str) else bytes(request_body).decode("utf-8")
    if media == CSV:
        return _parse_csv(text)
    if media != JSON:
        raise ValueError(f"unsupported content type {content_type!r}; send {JSON} or {CSV}")
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"application/json: body is not valid JSON ({exc})") from None
    if isinstance(payload, dict):
        payload = payload.get("instances", [payload])
    if isinstance(payload, list) and payload and not isinstance(payload[0], (dict, list)):
        payload = [payload]  # one row given as a list
    if not isinstance(payload, list) or not payload:
        raise ValueError(
            "application/json: send a row object, a list of rows or {instances: [...]}"
        )
    return payload


def predict_fn(rows: list[Row], model: nn.Module) -> dict[str, Any]:
    """Class probabilities per row, with the class names."""
    config = model.config
    with torch.no_grad():
        logits = model(torch.from_numpy(encode(rows, config)))
        probs = torch.softmax(logits, dim=1).numpy()
    classes = list(config["classes"])
    return {
        "predictions": probs.round(6).tolist(),
        "classes": classes,
        "predicted": [classes[i] for i in probs.argmax(axis=1)],
    }


def output_fn(prediction: dict[str, Any], accept: str | None = JSON) -> tuple[str, str]:
    """JSON only: probabilities need their class names beside them."""
    wanted = [a.split(";")[0].strip().lower() for a in (accept or JSON).split(",")]
    if not any(a in (JSON, "*/*", "application/*", "") for a in wanted):
        raise ValueError(f"unsupported accept type {accept!r}; this model answers {JSON}")
    return json.dumps(prediction), JSON
