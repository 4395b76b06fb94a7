"""The linear model and its SageMaker serving handlers (NumPy only).

train.py saves model.json (weights and bias) in SM_MODEL_DIR and a copy of this file as
code/inference.py, which the serving container loads.

Requests: application/json rows `[[x1, ..., xn], ...]`, one row `[x1, ..., xn]` or
{"instances": rows}; text/csv one row per line. Response (application/json):
{"predictions": [y, ...]}. Bad input raises ValueError saying what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

import numpy as np

MODEL_FILE = "model.json"
JSON = "application/json"
CSV = "text/csv"


def predict(weights: np.ndarray, bias: float, rows: np.ndarray) -> np.ndarray:
    return rows @ weights + bias


def model_fn(model_dir: str) -> dict[str, Any]:
    with open(os.path.join(model_dir, MODEL_FILE)) as fh:
        saved = json.load(fh)
    return {"weights": np.asarray(saved["weights"], dtype=float), "bias": float(saved["bias"])}


def input_fn(request_body: bytes | str, content_type: str | None = JSON) -> np.ndarray:
    media = (content_type or JSON).split(";")[0].strip().lower()
    text = request_body if isinstance(request_body, str) else bytes(request_body).decode("utf-8")
    if media == JSON:
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the body is not JSON: {exc}") from None
        if isinstance(payload, dict):
            payload = payload.get("instances")
        rows = payload
    elif media == CSV:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    else:
        raise ValueError(f"unsupported content type {content_type!r}; send {JSON} or {CSV}")
    try:
        array = np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("send rows of numbers, e.g. [[0.1, 0.2, 0.3, 0.4]]") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError("send one or more rows of numbers, e.g. [[0.1, 0.2, 0.3, 0.4]]")
    return array


def predict_fn(rows: np.ndarray, model: dict[str, Any]) -> np.ndarray:
    weights = model["weights"]
    if rows.shape[1] != weights.shape[0]:
        raise ValueError(f"each row needs {weights.shape[0]} numbers, got {rows.shape[1]}")
    return predict(weights, model["bias"], rows)


def output_fn(prediction: np.ndarray, accept: str | None = JSON) -> tuple[str, str]:
    media = (accept or JSON).split(";")[0].strip().lower()
    if media not in (JSON, "*/*"):
        raise ValueError(f"unsupported accept type {accept!r}; ask for {JSON}")
    return json.dumps({"predictions": [round(float(y), 6) for y in prediction]}), JSON
