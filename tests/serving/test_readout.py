"""Class probabilities read out of a model's answer (core/serving/readout.py, no Qt)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from trainer_gui.core.serving.readout import (
    guess_text_content_type,
    labels_from_folder,
    read_classes,
)


def top(body: object, content_type: str = "application/json", **kw: object) -> list[tuple]:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    readout = read_classes(raw, content_type, **kw)  # type: ignore[arg-type]
    assert readout is not None, body
    return [(s.label, round(s.probability, 4)) for s in readout.rows[0]]


def test_a_softmax_row_is_sorted_best_first_with_numbered_classes() -> None:
    assert top([0.1, 0.7, 0.2]) == [("class 1", 0.7), ("class 2", 0.2), ("class 0", 0.1)]


def test_a_batch_keeps_one_sorted_row_per_example() -> None:
    readout = read_classes(json.dumps([[0.9, 0.1], [0.25, 0.75]]))
    assert readout is not None and len(readout.rows) == 2
    assert [s.index for s in readout.rows[1]] == [1, 0]
    assert readout.top(1, 1)[0].probability == 0.75


def test_a_label_map_and_a_probabilities_object_name_their_classes() -> None:
    assert top({"cat": 0.2, "dog": 0.8}) == [("dog", 0.8), ("cat", 0.2)]
    body = {"probabilities": [[0.3, 0.6, 0.1]], "labels": ["a", "b", "c"]}
    assert top(body) == [("b", 0.6), ("a", 0.3), ("c", 0.1)]
    assert top({"predictions": [0.5, 0.5]}) == [("class 0", 0.5), ("class 1", 0.5)]


def test_label_score_records_may_be_a_top_k() -> None:
    records = [{"label": "POSITIVE", "score": 0.6}, {"label": "NEUTRAL", "score": 0.3}]
    assert top(records) == [("POSITIVE", 0.6), ("NEUTRAL", 0.3)]
    batch = [records, list(reversed(records))]
    readout = read_classes(json.dumps(batch))
    assert readout is not None and [s.label for s in readout.rows[1]] == ["POSITIVE", "NEUTRAL"]


def test_the_model_folders_labels_are_used_when_the_answer_names_none() -> None:
    readout = read_classes("[0.2, 0.8]", labels=["cat", "dog"])
    assert readout is not None and readout.labels_from == "model folder"
    assert readout.rows[0][0].label == "dog"
    wrong_count = read_classes("[0.2, 0.8]", labels=["cat", "dog", "bird"])
    assert wrong_count is not None and wrong_count.rows[0][0].label == "class 1"
    named = read_classes('{"probs": [0.2, 0.8], "classes": ["x", "y"]}', labels=["cat", "dog"])
    assert named is not None and named.labels_from == "response"
    # The quickstart model's answer: class numbers are no names.
    numbered = read_classes('{"predictions": [[0.2, 0.8]], "classes": [0, 1]}', labels=["a", "b"])
    assert numbered is not None and numbered.rows[0][0].label == "b"


@pytest.mark.parametrize(
    "body",
    [
        [2.3, -1.1, 0.4],  # logits
        [0.9, 0.8, 0.7],  # sigmoid outputs, multi-label
        [[0.83]],  # one number per example
        [0.5],
        [0, 1],  # class indices
        [[1, 0], [0, 1]],
        {"loss": 0.5, "accuracy": 0.9},
        {"predictions": [1]},
        [[0.2, 0.8], [0.1, 0.2, 0.7]],  # ragged
        "cat",
        [],
        {"probabilities": [1.5, -0.5]},
        [{"label": "a", "score": 0.9}, {"label": "b", "score": 0.9}],
    ],
)
def test_what_is_not_clearly_probabilities_is_left_raw(body: object) -> None:
    assert read_classes(json.dumps(body)) is None


def test_csv_and_npy_answers() -> None:
    assert top("0.25,0.75\n", "text/csv")[0] == ("class 1", 0.75)
    assert read_classes("0,1\n1,0\n", "text/csv") is None
    assert read_classes("a,b\n", "text/csv") is None
    buffer = io.BytesIO()
    np.save(buffer, np.array([[0.1, 0.9]], dtype=np.float32))
    assert top(buffer.getvalue(), "application/x-npy")[0][0] == "class 1"
    buffer = io.BytesIO()
    np.save(buffer, np.array([0, 1]))
    assert read_classes(buffer.getvalue(), "application/x-npy") is None
    assert read_classes(b"\xff\xfe", "application/octet-stream") is None
    assert read_classes(b"{bad", "application/json") is None


def test_labels_from_a_model_folder(tmp_path: Path) -> None:
    assert labels_from_folder(tmp_path) is None
    assert labels_from_folder(None) is None
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "index_to_name.json").write_text(
        json.dumps({"1": ["n2", "goldfish"], "0": ["n1", "tench"]})
    )
    assert labels_from_folder(tmp_path) == ["tench", "goldfish"]
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"0": "NEG", "1": "POS"}}))
    assert labels_from_folder(tmp_path) == ["NEG", "POS"]
    (tmp_path / "labels.json").write_text(json.dumps({"labels": ["a", "b", "c"]}))
    assert labels_from_folder(tmp_path) == ["a", "b", "c"]
    (tmp_path / "labels.txt").write_text("cat\ndog\n\n")
    assert labels_from_folder(tmp_path) == ["cat", "dog"]
    (tmp_path / "labels.txt").write_bytes(b"\xff\xfe")  # unreadable: the next file is used
    assert labels_from_folder(tmp_path) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[0.5, 1.0]]", "application/json"),
        ('{"instances": [1]}', "application/json"),
        ("[[0.5, 1.0", "application/json"),  # unfinished JSON is still JSON
        ("", "application/json"),
        ("0.5,-1.2,0.1\n0.3,0.2,0.1", "text/csv"),
        ("1,2,3", "text/csv"),
        ("0.5\n0.7\n", "text/csv"),
    ],
)
def test_a_typed_requests_content_type(text: str, expected: str) -> None:
    assert guess_text_content_type(text) == expected
