"""Reading a model's answer for people: class probabilities become labelled, sorted scores.

    readout = read_classes(result.body, result.content_type, labels=labels_from_folder(model))
    if readout is not None:
        for score in readout.rows[0][:5]:          # best first
            print(score.label, f"{score.probability:.1%}")

What counts as class probabilities (anything else is None, and the panel shows the raw body):

* a row: two or more finite numbers, each in [0, 1], summing to 1 within `SUM_TOLERANCE`
  (softmax output, rounded or float32);
* one row, or a batch: a list of rows of the same length (JSON, CSV lines or an NPY array);
* a JSON object of label -> probability (a row whose labels are its keys);
* a JSON object holding a row or a batch under "probabilities" (or "probs", "predictions",
  "outputs", ...), with the class names under "labels" (or "classes", "class_names"; a list
  of numbers there, as [0, 1, 2], names nothing);
* label/score records, as Hugging Face pipelines answer: [{"label": "cat", "score": 0.9}, ...]
  (or a list of such lists for a batch). These name their classes and may be a top-k, so
  their scores need only each be in [0, 1] and add up to at most 1.

Whole numbers (JSON integers, an integer NPY array, CSV of integers) are class indices or
counts, not probabilities, even where they add up to 1. Logits, sigmoid outputs (multi-label,
or one number per example) and regression outputs are not read as probabilities: they look
alike (any real numbers), and a softmax applied to a regression output would be a
confident-looking lie. A model that wants bars answers probabilities.

Labels: the answer's own class names win; else the model folder's (`labels_from_folder`:
labels.txt, classes.txt, labels.json, index_to_name.json, config.json's id2label, ...) when
there are as many as the row has numbers; else "class 0", "class 1", ...

`guess_text_content_type` picks the Content-Type of a typed request (JSON, else CSV).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LABEL_FILES",
    "SUM_TOLERANCE",
    "ClassReadout",
    "ClassScore",
    "guess_text_content_type",
    "labels_from_folder",
    "read_classes",
]

SUM_TOLERANCE = 0.01
"""How far from 1 a row may add up: float32 softmax and answers rounded to 3 places pass."""
MAX_CLASSES = 100_000
MAX_ROWS = 10_000
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_LABEL_FILE_BYTES = 4 * 1024 * 1024
PROBABILITY_KEYS = ("probabilities", "probability", "probs", "scores", "confidences")
WRAPPER_KEYS = ("predictions", "prediction", "outputs", "output", "results", "result")
LABEL_KEYS = ("labels", "classes", "class_names", "label_names")
SCORE_KEYS = ("score", "probability", "prob", "confidence")
LABEL_FILES = (
    "labels.txt",
    "classes.txt",
    "class_names.txt",
    "labels.json",
    "classes.json",
    "class_names.json",
    "index_to_name.json",
    "config.json",
)
"""Where a model folder (or its code/ folder) keeps its class names, in this order."""


@dataclass(frozen=True)
class ClassScore:
    """One class of one example: its index in the model's output, name and probability."""

    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class ClassReadout:
    """Class probabilities per example, each row sorted best first."""

    rows: list[list[ClassScore]]
    labels_from: str
    """Where the names came from: "response", "model folder" or "" (numbered)."""

    @property
    def classes(self) -> int:
        return max((len(row) for row in self.rows), default=0)

    def top(self, row: int = 0, k: int | None = None) -> list[ClassScore]:
        """The best `k` classes of example `row` (all of them with no k)."""
        scores = self.rows[row]
        return scores if k is None else scores[:k]


# -- responses ------------------------------------------------------------------------------------


def read_classes(
    body: bytes | str,
    content_type: str = "application/json",
    labels: Sequence[str] | None = None,
) -> ClassReadout | None:
    """The answer as class probabilities, or None when it is not clearly that (see module doc).

    `labels` are the model folder's class names, used when the answer names none.
    """
    data = _decode(body, content_type)
    if data is None:
        return None
    found = _find(data)
    if found is None:
        return None
    rows, names, relaxed = found
    if not rows or len(rows) > MAX_ROWS:
        return None
    width = len(rows[0])
    if not 2 <= width <= MAX_CLASSES or any(len(row) != width for row in rows):
        return None
    if not all(_is_probability_row(row, relaxed) for row in rows):
        return None
    source = "response"
    if names is None or len(names) != width:
        names, source = None, ""
        if labels is not None and len(labels) == width:
            names, source = [str(label) for label in labels], "model folder"
    if names is None:
        names = [f"class {i}" for i in range(width)]
    out = []
    for row in rows:
        scores = [ClassScore(i, names[i], float(p)) for i, p in enumerate(row)]
        scores.sort(key=lambda s: (-s.probability, s.index))
        out.append(scores)
    return ClassReadout(out, source)


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _decode(body: bytes | str, content_type: str) -> Any:
    """JSON, CSV or NPY as Python data; None when it is none of these or too big to show."""
    if len(body) > MAX_BODY_BYTES:
        return None
    media = _media(content_type)
    if isinstance(body, bytes):
        if media == "application/x-npy" or body[:6] == b"\x93NUMPY":
            return _decode_npy(body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    else:
        text = body
    if media == "text/csv":
        return _decode_csv(text)
    try:
        return json.loads(text)
    except ValueError:
        return None


def _decode_npy(body: bytes) -> Any:
    try:
        import numpy as np

        array = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception:  # not an NPY file numpy can read safely
        return None
    if array.dtype.kind != "f" or array.ndim not in (1, 2):  # integers: class indices
        return None
    return array.tolist()


def _decode_csv(text: str) -> list[list[float]] | list[float] | None:
    rows: list[list[float]] = []
    integers = True
    for fields in csv.reader(io.StringIO(text)):
        if not fields or all(not f.strip() for f in fields):
            continue
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            return None
        integers = integers and all(f.strip().lstrip("+-").isdigit() for f in fields)
    if integers:
        return None  # class indices or counts, not probabilities
    if len(rows) == 1:
        return rows[0] if len(rows[0]) > 1 else None
    return rows or None


Found = tuple[list[list[float]], list[str] | None, bool]
"""(rows, class names or None, whether top-k scores that add up to less than 1 are allowed)."""


def _find(data: Any, depth: int = 0) -> Found | None:
    if depth > 3:
        return None
    if isinstance(data, Mapping):
        return _find_in_object(data, depth)
    if not isinstance(data, list) or not data:
        return None
    if all(_is_number(v) for v in data):
        if all(isinstance(v, int) for v in data):
            return None  # class indices or counts, not probabilities
        return [[float(v) for v in data]], None, False
    if all(isinstance(v, list) and v and all(_is_number(x) for x in v) for v in data):
        if all(isinstance(x, int) for v in data for x in v):
            return None
        return [[float(x) for x in v] for v in data], None, False
    records = _records(data)
    if records is not None:
        return records
    if all(isinstance(v, Mapping) for v in data):  # a batch of label -> probability objects
        found = [_label_map(v) for v in data]
        if all(f is not None for f in found):
            rows = [f[0] for f in found if f is not None]
            names = [f[1] for f in found if f is not None]
            if all(n == names[0] for n in names):
                return rows, names[0], False
    return None


def _find_in_object(data: Mapping[str, Any], depth: int) -> Found | None:
    names = next((data[k] for k in LABEL_KEYS if isinstance(data.get(k), list) and data[k]), None)
    if names is not None and not all(isinstance(n, str) for n in names):
        names = None  # [0, 1, 2] names nothing: the model folder's names, or "class 0", ...
    for key in (*PROBABILITY_KEYS, *WRAPPER_KEYS):
        if key in data:
            found = _find(data[key], depth + 1)
            if found is None:
                return None
            rows, inner, relaxed = found
            chosen = inner if inner is not None else names
            return rows, [str(n) for n in chosen] if chosen is not None else None, relaxed
    mapped = _label_map(data)
    return None if mapped is None else ([mapped[0]], mapped[1], False)


def _label_map(data: Mapping[str, Any]) -> tuple[list[float], list[str]] | None:
    """A {label: probability} object, as a row and its labels."""
    if len(data) < 2 or not all(_is_number(v) for v in data.values()):
        return None
    return [float(v) for v in data.values()], [str(k) for k in data]


def _records(data: list[Any]) -> Found | None:
    """[{"label": ..., "score": ...}, ...], or a list of such lists (a batch)."""
    batch = data if all(isinstance(v, list) for v in data) else [data]
    rows: list[list[float]] = []
    names: list[str] | None = None
    for group in batch:
        row, labels = [], []
        for record in group:
            if not isinstance(record, Mapping) or "label" not in record:
                return None
            score = next((record[k] for k in SCORE_KEYS if k in record), None)
            if not isinstance(score, (int, float)) or isinstance(score, bool):
                return None
            row.append(float(score))
            labels.append(str(record["label"]))
        if names is None:
            names = labels
        elif sorted(labels) != sorted(names):
            return None
        else:  # the same classes in each record's own order: put them in the first's
            by_label = dict(zip(labels, row, strict=True))
            row = [by_label[n] for n in names]
        rows.append(row)
    return rows, names, True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_probability_row(row: list[float], relaxed: bool) -> bool:
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in row):
        return False
    total = math.fsum(row)
    if relaxed:
        return total <= 1.0 + SUM_TOLERANCE
    return abs(total - 1.0) <= SUM_TOLERANCE


# -- labels in a model folder -----------------------------------------------------------------


def labels_from_folder(folder: str | Path | None) -> list[str] | None:
    """The class names a model folder ships (see `LABEL_FILES`), or None.

    Looks in the folder and its code/ folder; a file that cannot be read or understood is
    skipped, never an error: the bars then say "class 0", "class 1", ...
    """
    if not folder:
        return None
    root = Path(folder)
    for where in (root, root / "code"):
        for name in LABEL_FILES:
            path = where / name
            try:
                if not path.is_file() or path.stat().st_size > MAX_LABEL_FILE_BYTES:
                    continue
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            labels = _parse_labels(name, text)
            if labels:
                return labels
    return None


def _parse_labels(name: str, text: str) -> list[str] | None:
    if name.endswith(".txt"):
        lines = [line.strip() for line in text.splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        return lines if len(lines) >= 2 else None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if name == "config.json":  # a Hugging Face model's config
        data = data.get("id2label") if isinstance(data, dict) else None
    if isinstance(data, dict):
        for key in LABEL_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if isinstance(data, list) and len(data) >= 2 and all(isinstance(v, str) for v in data):
        return list(data)
    if isinstance(data, dict) and len(data) >= 2:  # {"0": "cat", "1": "dog"}
        try:
            by_index = {int(k): v for k, v in data.items()}
        except (TypeError, ValueError):
            return None
        if sorted(by_index) == list(range(len(by_index))):
            return [_label_text(by_index[i]) for i in range(len(by_index))]
    return None


def _label_text(value: Any) -> str:
    # TorchServe's index_to_name.json may hold ["n01440764", "tench"]: the readable part.
    if isinstance(value, list) and value:
        return str(value[-1])
    return str(value)


# -- requests ---------------------------------------------------------------------------------


def guess_text_content_type(text: str) -> str:
    """The Content-Type a typed request most likely has: JSON if it parses (or is empty, or
    looks like JSON that is not finished yet), CSV if it is comma-separated lines."""
    stripped = text.strip()
    if not stripped:
        return "application/json"
    try:
        json.loads(stripped)
        return "application/json"
    except ValueError:
        pass
    if stripped[0] in '[{"':
        return "application/json"  # JSON with a typo: the server's 400 says where
    lines = [line for line in stripped.splitlines() if line.strip()]
    if lines and all("," in line for line in lines):
        return "text/csv"
    if len(lines) > 1 and all(len(line.split()) == 1 for line in lines):
        return "text/csv"  # one value per line: a one-column CSV
    return "application/json"
