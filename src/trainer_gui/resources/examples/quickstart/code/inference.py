"""SageMaker PyTorch serving handlers for the quickstart model.

The serving container imports this file from /opt/ml/model/code (SAGEMAKER_PROGRAM, default
inference.py) and calls output_fn(predict_fn(input_fn(body, content_type), model), accept) with
model = model_fn("/opt/ml/model").

Requests (Content-Type; parameters such as "; charset=utf-8" are ignored):
  application/json    [[x1, x2, x3, x4], ...], one row [x1, x2, x3, x4], or {"instances": [...]}
  text/csv            one row of features per line; an optional header line is skipped
  application/x-npy   a float array of shape (rows, features) or (features,), saved with np.save
Responses (Accept; missing or */* means application/json):
  application/json    {"predictions": [[p0, p1, p2], ...], "classes": [0, 1, 2]}
  text/csv            one line of class probabilities per row
  application/x-npy   the probabilities as an np.save'd float32 array
Bad input raises ValueError with a message saying what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import Any

import numpy as np
import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from model_def import WEIGHTS_FILE, build_model, read_config  # noqa: E402

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
SUPPORTED = (JSON, CSV, NPY)


def model_fn(model_dir: str) -> torch.nn.Module:
    """Rebuild the MLP from model_config.json and load model.pth."""
    config = read_config(model_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(config)
    state = torch.load(
        os.path.join(model_dir, WEIGHTS_FILE), map_location=device, weights_only=True
    )
    model.load_state_dict(state)
    model.n_features = int(config["n_features"])
    return model.to(device).eval()


def _media_type(content_type: str | None) -> str:
    """'Text/CSV; charset=utf-8' -> 'text/csv'."""
    return (content_type or "").split(";")[0].strip().lower()


def _as_text(body: bytes | bytearray | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("request body is not UTF-8 text") from None


def _to_2d(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"{what}: expected rows of numeric features, shape (rows, features); "
            f"got shape {tuple(array.shape)}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{what}: features must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: features contain NaN or infinity")
    return array


def _parse_json(text: str) -> np.ndarray:
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"application/json: body is not valid JSON ({exc})") from None
    if isinstance(payload, dict):
        if "instances" not in payload:
            raise ValueError(
                'application/json: an object must have an "instances" key holding the rows, '
                'e.g. {"instances": [[0.1, 0.2, 0.3, 0.4]]}'
            )
        payload = payload["instances"]
    if not isinstance(payload, list):
        raise ValueError("application/json: send a list of rows (lists of numbers)")
    rows = payload if payload and isinstance(payload[0], list) else [payload]
    for i, row in enumerate(rows):
        if not isinstance(row, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in row
        ):
            raise ValueError(f"application/json: row {i} is not a list of numbers: {row!r:.80}")
        if len(row) != len(rows[0]):
            raise ValueError(
                f"application/json: row {i} has {len(row)} values, row 0 has {len(rows[0])}"
            )
    return _to_2d(np.asarray(rows, dtype=np.float64), JSON)


def _parse_csv(text: str) -> np.ndarray:
    rows: list[list[float]] = []
    for i, row in enumerate(csv.reader(io.StringIO(text))):
        if not row or all(not v.strip() for v in row):
            continue
        try:
            values = [float(v) for v in row]
        except ValueError:
            if i == 0 and not rows:  # a header line
                continue
            raise ValueError(
                f"text/csv: line {i + 1} has a non-numeric value: {row!r:.80}"
            ) from None
        if rows and len(values) != len(rows[0]):
            raise ValueError(
                f"text/csv: line {i + 1} has {len(values)} values, the first row has {len(rows[0])}"
            )
        rows.append(values)
    if not rows:
        raise ValueError("text/csv: no rows of features in the request")
    return _to_2d(np.asarray(rows, dtype=np.float64), CSV)


def _parse_npy(body: bytes | bytearray | str) -> np.ndarray:
    if isinstance(body, str):
        raise ValueError("application/x-npy: body must be bytes written by np.save")
    try:
        array = np.load(io.BytesIO(bytes(body)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"application/x-npy: body is not a .npy array ({exc})") from None
    return _to_2d(array, NPY)


def input_fn(
    request_body: bytes | bytearray | str, content_type: str | None = JSON
) -> torch.Tensor:
    """Decode a request into a float32 tensor of shape (rows, features)."""
    media = _media_type(content_type) or JSON
    if media == JSON:
        array = _parse_json(_as_text(request_body))
    elif media == CSV:
        array = _parse_csv(_as_text(request_body))
    elif media == NPY:
        array = _parse_npy(request_body)
    else:
        raise ValueError(
            f"unsupported content type {content_type!r}; send one of {', '.join(SUPPORTED)}"
        )
    return torch.from_numpy(array)


def predict_fn(input_data: torch.Tensor | np.ndarray, model: torch.nn.Module) -> np.ndarray:
    """Class probabilities, shape (rows, classes)."""
    x = torch.as_tensor(input_data, dtype=torch.float32)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    n_features = getattr(model, "n_features", None)
    if x.ndim != 2 or (n_features is not None and x.shape[1] != n_features):
        raise ValueError(
            f"expected rows of {n_features} features, got an input of shape {tuple(x.shape)}"
        )
    device = next(model.parameters()).device
    with torch.no_grad():
        probs = torch.softmax(model(x.to(device)), dim=1)
    return probs.cpu().numpy()


def output_fn(prediction: Any, accept: str | None = JSON) -> str | bytes:
    """Encode probabilities as JSON (default), CSV or NPY, the first supported type in Accept."""
    if isinstance(prediction, torch.Tensor):
        prediction = prediction.detach().cpu().numpy()
    probs = np.asarray(prediction, dtype=np.float32)
    if probs.ndim == 1:
        probs = probs.reshape(1, -1)
    wanted = [_media_type(a) for a in (accept or "").split(",")]
    for media in wanted:
        if media in ("", "*/*", JSON):
            # train.py requires labels 0..K-1, so column k is the probability of class k.
            classes = list(range(probs.shape[1]))
            return json.dumps({"predictions": probs.tolist(), "classes": classes})
        if media == CSV:
            return "".join(",".join(repr(float(p)) for p in row) + "\n" for row in probs)
        if media == NPY:
            buf = io.BytesIO()
            np.save(buf, probs)
            return buf.getvalue()
    raise ValueError(f"unsupported accept type {accept!r}; ask for one of {', '.join(SUPPORTED)}")
