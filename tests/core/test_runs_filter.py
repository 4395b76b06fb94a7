"""The runs table's filter expressions (hostile input refused with a message naming what and
where, never a traceback), and the store's per-project metric summary query."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.errors import UserError
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runs_filter import FilterError, filter_name, parse_filter
from trainer_gui.core.store import Store
from trainer_gui.core.store.annotations import clean_tags

KNOWN = ["lr", "test_acc", "tag", "status", "name", "epochs", "loss_best"]
ROW: dict[str, Any] = {
    "lr": 0.001,
    "test_acc": 0.95,
    "tag": ["baseline", "small"],
    "status": "Completed",
    "name": "mnist-cnn",
    "epochs": "10",  # hyperparameters may be stored as text
    "loss_best": None,
}


def matches(text: str, row: dict[str, Any] = ROW) -> bool:
    compiled = parse_filter(text, KNOWN)
    assert compiled is not None
    return compiled(row.get)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr < 0.01 and test_acc > 0.9", True),
        ("lr < 0.01 and test_acc > 0.96", False),
        ("lr > 0.01 or test_acc >= 0.95", True),
        ('tag == "baseline"', True),
        ('tag == "large"', False),
        ('tag != "large"', True),
        ('tag != "small"', False),
        ('status == "Completed"', True),
        ('name ~ "MNIST"', True),
        ('not name ~ "cifar"', True),
        ('tag ~ "base"', True),
        ("0.0001 < lr <= 0.001", True),
        ("epochs >= 10", True),  # "10" compares as a number
        ("lr > -1", True),
        ("loss_best < 1", False),  # a missing value matches nothing
        ("loss_best > 1", False),
        ('(lr < 1 and tag == "small") or name ~ "x"', True),
    ],
)
def test_expressions_filter_as_written(text: str, expected: bool) -> None:
    assert matches(text) is expected


OTHER_ROWS: list[dict[str, Any]] = [
    ROW,
    {"lr": None, "test_acc": float("nan"), "tag": [], "status": "Failed", "name": "", "epochs": 3},
    {"lr": 0.5, "test_acc": 1, "tag": ["large"], "status": "Completed", "name": "cifar"},
    {"lr": "0.001", "test_acc": True, "tag": ["baseline"], "name": None, "epochs": "ten"},
]


@pytest.mark.parametrize(
    "text",
    [
        "lr < 0.01 and test_acc > 0.9",
        "lr > 0.01 or not test_acc >= 0.95",
        'tag == "baseline" or tag != "large"',
        'name ~ "i" and status == "Completed"',
        "0.0001 < lr <= 0.5",
        "epochs >= 4 or lr == lr",
        "lr > -1 and test_acc != 1",
        'not (tag ~ "a" or epochs < 5)',
    ],
)
def test_a_whole_column_at_once_gives_what_each_row_gives(text: str) -> None:
    compiled = parse_filter(text, KNOWN)
    assert compiled is not None
    columns = {name: [row.get(name) for row in OTHER_ROWS] for name in KNOWN}

    at_once = compiled.rows(columns, len(OTHER_ROWS))

    assert at_once == [compiled(row.get) for row in OTHER_ROWS]


def test_an_empty_expression_filters_nothing() -> None:
    assert parse_filter("   ", KNOWN) is None


def refused(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse_filter(text, KNOWN)
    return info.value


def test_an_unknown_name_lists_the_known_columns_and_where_it_is() -> None:
    error = refused("lr < 0.01 and tset_acc > 0.9")

    assert error.position == 15
    assert "Unknown column 'tset_acc' at character 15" in str(error)
    assert "Known columns: lr, test_acc, tag, status, name, epochs, loss_best" in str(error)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("__import__('os').system('rm -rf /')", "function call"),
        ("lr.__class__ > 1", "Attribute access"),
        ("name[0] == 'm'", "Indexing"),
        ("lr + 1 > 2", "Arithmetic"),
        ("(lambda: 1)() > 0", "function call"),
        ("lr in [1, 2]", "'in'"),
        ("lr is 1", "'is'"),
        ("lr % 2", "Unknown operator '%'"),
        ("lr", "needs a comparison"),
        ("'text'", "bare value"),
        ("lr < 0.01 and", "ends after 'and'"),
        ("lr <", "ends after '<'"),
        ("lr < (0.01", "not finished"),
        ('name ~ "unterminated', "Cannot read"),
        ("lr < 1\nimport os", "line break"),
        ("lr == None", "not allowed"),
        ("[x for x in ()]", "not allowed"),
    ],
)
def test_hostile_or_wrong_input_is_refused_with_a_message(text: str, words: str) -> None:
    error = refused(text)

    assert words in str(error)


def test_very_long_input_is_refused_before_parsing() -> None:
    error = refused("lr < 1 and " * 1000 + "lr < 1")

    assert "too long" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 150 + "lr < 1" + ")" * 150,
        "not " * 300 + "lr < 1",
        "-" * 1500 + "1 < lr",
        "~" * 1500,
        "lr < 1 and " * 180 + "lr < 1",
    ],
)
def test_deep_nesting_gives_a_message_never_a_traceback(text: str) -> None:
    try:
        compiled = parse_filter(text, KNOWN)
    except FilterError as exc:
        assert str(exc)
    else:  # a long flat chain is fine
        assert compiled is not None and compiled(ROW.get) is True


def test_positions_count_leading_spaces() -> None:
    assert refused("   nope > 1").position == 4


def test_filter_names_are_identifiers() -> None:
    assert filter_name("train/loss") == "train_loss"
    assert filter_name("1st-metric") == "_1st_metric"
    assert filter_name("///") == "column"


def test_tags_are_cleaned_and_bounded() -> None:
    assert clean_tags(" b, a ,, a ") == ("a", "b")
    with pytest.raises(UserError, match="too long"):
        clean_tags(["x" * 65])


# -- the aggregate query --------------------------------------------------------------------------


def test_metric_summaries_give_last_low_and_high_per_run_and_metric(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    try:
        mine = store.add_project("mine", str(tmp_path / "a")).id
        other = store.add_project("other", str(tmp_path / "b")).id
        store.create_job("j1", "a", "local-process", "", "/tmp", mine)
        store.create_job("j2", "b", "local-process", "", "/tmp", mine)
        store.create_job("j3", "c", "local-process", "", "/tmp", other)

        def sample(name: str, value: float, host: str = "algo-1") -> MetricSample:
            return MetricSample(name, value, host, 0.0)

        store.record_batch(
            "j1",
            {},
            [
                sample("loss", 2.0),
                sample("acc", 0.1),
                sample("loss", 0.5),
                sample("loss", math.nan),  # diverged: last is NaN, best ignores it
                sample("acc", 0.9, "algo-2"),
                sample("acc", 0.7),
            ],
        )
        store.record_batch("j2", {}, [sample("loss", 3.0)])
        store.record_batch("j3", {}, [sample("loss", 9.0)])

        summaries = store.metric_summaries(mine)

        assert set(summaries) == {"j1", "j2"}
        loss = summaries["j1"]["loss"]
        assert math.isnan(loss.last) and (loss.low, loss.high, loss.samples) == (0.5, 2.0, 3)
        acc = summaries["j1"]["acc"]
        assert (acc.last, acc.low, acc.high) == (0.7, 0.1, 0.9)
        assert summaries["j2"]["loss"].last == 3.0
        assert set(store.metric_summaries(None)) == {"j1", "j2", "j3"}
    finally:
        store.close()


def test_the_summary_query_reads_samples_through_the_index(tmp_path: Path) -> None:
    from trainer_gui.core.store.annotations import _SUMMARY_SQL

    store = Store(tmp_path / "db.sqlite3")
    try:
        plan = store._query(
            "EXPLAIN QUERY PLAN " + _SUMMARY_SQL.format(where="WHERE j.project_id = ?"), (1,)
        )
        details = " | ".join(str(row["detail"]) for row in plan)
        assert "metric_samples_job_name" in details
        assert "SCAN m" not in details and "SCAN metric_samples" not in details
    finally:
        store.close()
