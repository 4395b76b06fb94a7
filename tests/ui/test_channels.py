"""The channels table: drops from the file manager, s3:// text, names, validation, order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import drop, mime_for
from PySide6.QtWidgets import QTableWidgetItem

from trainer_gui.ui.form.channels import (
    ChannelsTable,
    name_for_source,
    sanitize_channel_name,
    unique_name,
)


@pytest.fixture
def table(qtbot: Any, tmp_path: Path) -> ChannelsTable:
    widget = ChannelsTable()
    widget.base_dir = tmp_path
    qtbot.addWidget(widget)
    widget.resize(700, 300)
    widget.show()
    return widget


def cell(table: ChannelsTable, row: int, column: int) -> QTableWidgetItem:
    item = table.table.item(row, column)
    assert item is not None
    return item


def folder(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "part-0.csv").write_text("x,y\n1,2\n")
    return path


def test_dropping_a_folder_adds_a_channel_named_after_it(
    table: ChannelsTable, tmp_path_factory: pytest.TempPathFactory
) -> None:
    train = folder(tmp_path_factory.mktemp("elsewhere"), "train")

    entered, dropped = drop(table.table.viewport(), mime_for([train]))

    assert entered and dropped
    assert table.value() == [{"name": "train", "source": str(train)}]
    assert table.row_problems() == {}


def test_dropping_several_folders_adds_one_channel_each_with_unique_names(
    table: ChannelsTable, tmp_path: Path
) -> None:
    a = folder(tmp_path / "a", "train")
    b = folder(tmp_path / "b", "train")
    c = folder(tmp_path, "My Data (v2)")

    drop(table.table.viewport(), mime_for([a, b, c]))

    assert table.names() == ["train", "train-2", "My_Data_v2"]
    assert table.row_problems() == {}
    assert [ch["source"] for ch in table.value()] == ["a/train", "b/train", "My Data (v2)"]


def test_dropping_a_file_names_the_channel_after_its_stem(
    table: ChannelsTable, tmp_path: Path
) -> None:
    data = tmp_path / "labels.csv"
    data.write_text("a\n")

    drop(table.table.viewport(), mime_for([data]))

    assert table.value() == [{"name": "labels", "source": "labels.csv"}]


def test_paths_inside_the_project_stay_relative(table: ChannelsTable, tmp_path: Path) -> None:
    inside = folder(tmp_path / "data", "test")

    drop(table.table.viewport(), mime_for([inside]))

    assert table.value()[0]["source"] == "data/test"


def test_dropping_s3_text_adds_an_s3_channel(table: ChannelsTable) -> None:
    entered, dropped = drop(
        table.table.viewport(), mime_for(text="s3://my-bucket/datasets/validation/\n")
    )

    assert entered and dropped
    assert table.value() == [
        {"name": "validation", "source": "s3://my-bucket/datasets/validation/"}
    ]
    assert table.row_problems() == {}


def test_plain_text_that_is_not_a_location_is_refused(table: ChannelsTable) -> None:
    entered, dropped = drop(table.table.viewport(), mime_for(text="hello world"))

    assert not entered and not dropped
    assert table.value() == []


def test_renaming_to_an_invalid_name_shows_the_models_message(
    table: ChannelsTable, tmp_path: Path
) -> None:
    table.add_channel(str(folder(tmp_path, "train")))

    cell(table, 0, 0).setText("bad name!")

    problems = table.row_problems()
    assert "channel name 'bad name!' must be 1-64 letters" in problems[0]
    assert cell(table, 0, 0).toolTip() == problems[0]


def test_a_name_used_twice_is_flagged(table: ChannelsTable, tmp_path: Path) -> None:
    table.add_channel(str(folder(tmp_path, "train")))
    table.add_channel(str(folder(tmp_path, "test")))

    cell(table, 1, 0).setText("train")

    assert "used twice" in table.row_problems()[1]


def test_a_missing_local_path_is_flagged(table: ChannelsTable, tmp_path: Path) -> None:
    table.add_channel(str(tmp_path / "nope"), name="train")

    assert "does not exist" in table.row_problems()[0]


def test_rows_can_be_reordered_and_removed(table: ChannelsTable, tmp_path: Path) -> None:
    for name in ("train", "test", "extra"):
        table.add_channel(str(folder(tmp_path, name)))

    table.table.setCurrentCell(2, 0)
    table.move_up()
    assert table.names() == ["train", "extra", "test"]
    table.move_row(0, 2)
    assert table.names() == ["extra", "test", "train"]

    table.table.setCurrentCell(1, 0)
    table.remove_selected()
    assert table.names() == ["extra", "train"]


def test_set_value_round_trips_modes_and_content_types(table: ChannelsTable) -> None:
    channels = [
        {"name": "train", "source": "s3://bucket-x/train", "content_type": "text/csv"},
        {"name": "stream", "source": "s3://bucket-x/s", "input_mode": "Pipe"},
    ]

    table.set_value(channels)

    assert table.value() == channels


def test_model_errors_for_a_row_mark_that_row(table: ChannelsTable, tmp_path: Path) -> None:
    table.add_channel(str(folder(tmp_path, "train")))
    table.add_channel(str(folder(tmp_path, "test")))

    lines = table.show_problems([("[1].input_mode", "local backends support File mode only")])

    assert lines == ["row 2: local backends support File mode only"]
    assert cell(table, 1, 0).toolTip() == "local backends support File mode only"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("train", "train"),
        ("My Data (v2)", "My_Data_v2"),
        ("  ", "data"),
        ("ünïcode", "n_code"),
        ("a" * 80, "a" * 64),
        ("x.y-z_1", "x.y-z_1"),
    ],
)
def test_names_are_sanitised_to_the_channel_pattern(raw: str, expected: str) -> None:
    assert sanitize_channel_name(raw) == expected


def test_unique_name_adds_a_counter_within_64_chars() -> None:
    assert unique_name("train", {"train", "train-2"}) == "train-3"
    long = "a" * 64
    assert unique_name(long, {long}) == "a" * 62 + "-2"


def test_s3_uri_names_use_the_last_path_part() -> None:
    assert name_for_source("s3://bucket/a/b/") == "b"
    assert name_for_source("s3://bucket") == "bucket"
