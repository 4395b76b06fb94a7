"""The runs table that explains runs: hyperparameter and metric (last/best) columns, sorting,
grouping, tags and notes edited in place and kept in the store, the filter expression, the
column set remembered per project, and export (CSV, Parquet)."""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WindowFactory, window_factory
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QLineEdit

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.store import Store
from trainer_gui.ui.jobs_table import JobsView, load_runs


def add_run(
    store: Store,
    project_id: int,
    name: str,
    hps: dict[str, Any],
    metrics: dict[str, list[float]],
    created: float,
    sweep: str | None = None,
) -> str:
    job_id = f"{name}-{int(created)}"
    lines = [f"name: {name}", "hyperparameters:"]
    lines += [f"  {k}: {v!r}" if isinstance(v, str) else f"  {k}: {v}" for k, v in hps.items()]
    store.create_job(
        job_id,
        name,
        "local-process",
        "\n".join(lines) + "\n",
        "/tmp",
        project_id,
        created_at=created,
    )
    if sweep:
        store.update_backend_ids(job_id, {"sweep": sweep})
    samples = [
        MetricSample(metric, value, "algo-1", created + i, i)
        for metric, values in metrics.items()
        for i, value in enumerate(values)
    ]
    if samples:
        store.record_batch(job_id, {}, samples)
    return job_id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db.sqlite3")
    yield s
    s.close()


@pytest.fixture
def project(store: Store, tmp_path: Path) -> int:
    folder = tmp_path / "proj"
    folder.mkdir()
    return store.add_project("proj", str(folder)).id


@pytest.fixture
def runs(store: Store, project: int) -> dict[str, str]:
    return {
        "a": add_run(
            store, project, "mnist", {"lr": 0.1, "opt": "sgd"},
            {"loss": [2.0, 0.5, 0.9], "test_acc": [0.5, 0.97, 0.8]}, 1000,
        ),
        "b": add_run(
            store, project, "mnist", {"lr": 0.001, "opt": "adam"},
            {"loss": [1.0, 0.2, 0.3], "test_acc": [0.6, 0.91, 0.95]}, 2000,
        ),
        "c": add_run(
            store, project, "cifar", {"lr": 0.005, "opt": "adam"},
            {"loss": [3.0, 1.5], "test_acc": [0.3, 0.4]}, 3000,
        ),
    }  # fmt: skip


def open_view(qtbot: Any, store: Store, project: int) -> JobsView:
    view = JobsView(store=store)
    qtbot.addWidget(view)
    view.resize(1400, 400)
    view.show()
    view.set_runs(load_runs(store, project))
    return view


def column(view: JobsView, key: str) -> int:
    col = view.model.column_of(key)
    assert col is not None, f"no column {key}: {view.model.column_keys}"
    return col


def cells(view: JobsView, key: str) -> list[str]:
    col = column(view, key)
    return [str(view.proxy.index(r, col).data() or "") for r in range(view.proxy.rowCount())]


def cell_of(view: JobsView, job_id: str, key: str) -> str:
    row = view.model.row_of(job_id)
    assert row is not None
    index = view.proxy.mapFromSource(view.model.index(row, column(view, key)))
    return str(index.data() or "")


def test_hyperparameter_and_metric_columns_show_each_runs_values(
    qtbot: Any, store: Store, project: int, runs: dict[str, str]
) -> None:
    view = open_view(qtbot, store, project)
    view.toggle_column("best:loss", True)
    view.toggle_column("best:test_acc", True)

    assert cell_of(view, runs["a"], "hp:lr") == "0.1"
    assert cell_of(view, runs["b"], "hp:opt") == "adam"
    assert cell_of(view, runs["a"], "last:loss") == "0.9"
    assert cell_of(view, runs["a"], "best:loss") == "0.5"  # loss: lowest is best
    assert cell_of(view, runs["a"], "best:test_acc") == "0.97"  # accuracy: highest is best
    header = view.model.headerData(column(view, "best:loss"), Qt.Orientation.Horizontal)
    assert header == "loss (best ↓)"

    view.set_goal("loss", "max")  # the user flips it

    assert cell_of(view, runs["a"], "best:loss") == "2"
    assert "↑" in view.model.headerData(column(view, "best:loss"), Qt.Orientation.Horizontal)


def test_sorting_by_a_metric_orders_the_runs_by_its_value(
    qtbot: Any, store: Store, project: int, runs: dict[str, str]
) -> None:
    view = open_view(qtbot, store, project)
    view.table.horizontalHeader().setSortIndicatorShown(True)

    view.table.sortByColumn(column(view, "last:test_acc"), Qt.SortOrder.DescendingOrder)

    assert cells(view, "last:test_acc") == ["0.95", "0.8", "0.4"]
    view.table.sortByColumn(column(view, "hp:lr"), Qt.SortOrder.AscendingOrder)
    assert cells(view, "hp:lr") == ["0.001", "0.005", "0.1"]


def test_a_selection_follows_its_run_when_the_table_is_sorted(
    qtbot: Any, store: Store, project: int, runs: dict[str, str]
) -> None:
    view = open_view(qtbot, store, project)
    assert view.select_job(runs["c"])

    view.table.sortByColumn(column(view, "last:loss"), Qt.SortOrder.AscendingOrder)

    assert view.selected_ids() == [runs["c"]]


def test_grouping_by_tag_puts_each_tags_runs_together(
    qtbot: Any, store: Store, project: int, runs: dict[str, str]
) -> None:
    store.set_run_tags(runs["a"], ["baseline"])
    store.set_run_tags(runs["c"], ["baseline"])
    view = open_view(qtbot, store, project)
    view.table.sortByColumn(column(view, "last:loss"), Qt.SortOrder.AscendingOrder)

    view.group_combo.setCurrentIndex(view.group_combo.findData("tag"))

    assert view.model.column_keys[0] == "group"
    assert cells(view, "group") == ["baseline", "baseline", "(no tag)"]
    assert cells(view, "last:loss") == ["0.9", "1.5", "0.3"]  # sorted within each group
    view.group_combo.setCurrentIndex(view.group_combo.findData("spec"))
    assert cells(view, "group") == ["cifar", "mnist", "mnist"]


def edit_cell(qtbot: Any, view: JobsView, job_id: str, key: str, text: str) -> None:
    """Double-click the cell, type, press Enter: as a user edits it."""
    row = view.model.row_of(job_id)
    assert row is not None
    index = view.proxy.mapFromSource(view.model.index(row, column(view, key)))
    view.table.scrollTo(index)
    rect = view.table.visualRect(index)
    viewport = view.table.viewport()
    qtbot.waitUntil(lambda: viewport.findChild(QLineEdit) is None, timeout=2000)  # last editor
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: viewport.findChild(QLineEdit) is not None, timeout=2000)
    editor = viewport.findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


def test_tags_and_notes_edited_in_the_table_are_kept_for_the_next_window(
    qtbot: Any, store: Store, project: int, runs: dict[str, str]
) -> None:
    view = open_view(qtbot, store, project)

    edit_cell(qtbot, view, runs["b"], "tags", "baseline,  best ")
    edit_cell(qtbot, view, runs["b"], "note", "lr too small?")

    qtbot.waitUntil(lambda: store.run_annotation(runs["b"]).note == "lr too small?", timeout=5000)
    assert store.run_annotation(runs["b"]).tags == ("baseline", "best")
    assert cell_of(view, runs["b"], "tags") == "baseline, best"
    again = open_view(qtbot, store, project)
    assert cell_of(again, runs["b"], "tags") == "baseline, best"
    assert cell_of(again, runs["b"], "note") == "lr too small?"


def test_the_filter_expression_keeps_only_matching_runs(
    qtbot: Any, store: Store, project: int, runs: dict[str, str]
) -> None:
    store.set_run_tags(runs["b"], ["baseline"])
    view = open_view(qtbot, store, project)

    qtbot.keyClicks(view.expr_edit, "lr < 0.01 and test_acc > 0.9")
    qtbot.keyClick(view.expr_edit, Qt.Key.Key_Return)

    assert view.visible_ids() == [runs["b"]]
    assert not view.expr_message.isVisible()
    for text, expected in (
        ('tag == "baseline"', [runs["b"]]),
        ('name ~ "CIF"', [runs["c"]]),
        ("loss_best < 0.3", [runs["b"]]),
        ('status == "Pending" and not opt == "adam"', [runs["a"]]),
    ):
        view.expr_edit.setText(text)
        qtbot.keyClick(view.expr_edit, Qt.Key.Key_Return)
        assert view.visible_ids() == expected, text


def test_a_bad_filter_expression_says_what_is_wrong_under_the_box(
    qtbot: Any, store: Store, project: int, runs: dict[str, str]
) -> None:
    view = open_view(qtbot, store, project)

    qtbot.keyClicks(view.expr_edit, "lr < 0.01 and tset_acc > 0.9")
    qtbot.keyClick(view.expr_edit, Qt.Key.Key_Return)

    assert view.expr_message.isVisible()
    message = view.expr_message.text()
    assert "Unknown column 'tset_acc' at character 15" in message
    assert "test_acc" in message and "lr" in message  # the known columns are listed
    view.expr_edit.setText("__import__('os').system('x')")
    qtbot.keyClick(view.expr_edit, Qt.Key.Key_Return)
    assert "not allowed" in view.expr_message.text()
    assert view.proxy.rowCount() == 3  # the rows stay as they were


def test_the_column_set_is_remembered_per_project(
    qtbot: Any, store: Store, project: int, runs: dict[str, str], tmp_path: Path
) -> None:
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    other = store.add_project("other", str(other_folder)).id
    add_run(store, other, "x", {"lr": 0.1}, {"loss": [1.0]}, 5000)
    view = open_view(qtbot, store, project)
    menu = view.header_menu(column(view, "last:loss"))
    entries = {a.data(): a for m in [menu, *menu.findChildren(type(menu))] for a in m.actions()}

    entries["best:test_acc"].trigger()
    entries["note"].trigger()

    keys = view.model.column_keys
    assert "best:test_acc" in keys and "note" not in keys

    def stored() -> list[str]:
        project_row = store.get_project(project)
        assert project_row is not None
        return list((project_row.settings.get("runs_table") or {}).get("columns", []))

    qtbot.waitUntil(lambda: stored() == keys, timeout=5000)
    again = open_view(qtbot, store, project)
    assert again.model.column_keys == keys
    elsewhere = open_view(qtbot, store, other)
    assert "best:test_acc" not in elsewhere.model.column_keys
    assert "note" in elsewhere.model.column_keys


def test_the_runs_table_exports_as_shown_to_csv(
    qtbot: Any,
    store: Store,
    project: int,
    runs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    view = open_view(qtbot, store, project)
    view.expr_edit.setText('opt == "adam"')
    qtbot.keyClick(view.expr_edit, Qt.Key.Key_Return)
    view.table.sortByColumn(column(view, "hp:lr"), Qt.SortOrder.AscendingOrder)
    starts: list[str] = []
    target = tmp_path / "out" / "runs.csv"
    target.parent.mkdir()

    def ask(_parent: Any, _title: str, start: str = "", *_a: Any) -> tuple[str, str]:
        starts.append(start)
        return str(target), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", ask)

    view.export_table_action.trigger()

    qtbot.waitUntil(target.exists, timeout=5000)
    project_row = store.get_project(project)
    assert project_row is not None
    assert Path(starts[0]).parent == Path(project_row.path)
    with open(target, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["Name", "Status"] and "lr" in rows[0] and "loss" in rows[0]
    lr = rows[0].index("lr")
    assert [r[lr] for r in rows[1:]] == ["0.001", "0.005"]  # filtered and sorted as shown
    loss = rows[0].index("loss")
    assert rows[1][loss] == "0.3"


def export_metrics(
    qtbot: Any, view: JobsView, action: Any, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_a, **_k: (str(target), ""))
    action.trigger()
    qtbot.waitUntil(lambda: view.last_export == target, timeout=5000)


def test_the_selected_runs_metrics_export_to_csv(
    qtbot: Any,
    store: Store,
    project: int,
    runs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    view = open_view(qtbot, store, project)
    assert view.select_job(runs["c"])
    target = tmp_path / "m.csv"

    export_metrics(qtbot, view, view.export_metrics_csv_action, target, monkeypatch)

    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["metric"], r["step"], r["value"]) for r in rows if r["metric"] == "loss"] == [
        ("loss", "0", "3.0"),
        ("loss", "1", "1.5"),
    ]
    assert {r["job_id"] for r in rows} == {runs["c"]}


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow not installed")
def test_the_selected_runs_metrics_export_to_parquet(
    qtbot: Any,
    store: Store,
    project: int,
    runs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    view = open_view(qtbot, store, project)
    view.table.selectAll()
    target = tmp_path / "m.parquet"

    export_metrics(qtbot, view, view.export_metrics_parquet_action, target, monkeypatch)

    table = pq.read_table(target).to_pydict()
    assert len(table["value"]) == 16
    assert set(table["job_id"]) == set(runs.values())
    assert table["step"][0] == 0 and isinstance(table["value"][0], float)


def test_parquet_without_pyarrow_says_to_install_it(
    qtbot: Any, store: Store, project: int, runs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer_gui.ui.runs_export as runs_export

    monkeypatch.setattr(runs_export, "has_pyarrow", lambda: False)
    view = open_view(qtbot, store, project)
    assert view.select_job(runs["a"])

    view.export_metrics_parquet_action.trigger()

    assert "pip install" in view.expr_message.text() and "pyarrow" in view.expr_message.text()


def test_a_reload_shows_new_values_and_keeps_unchanged_rows(
    qtbot: Any, store: Store, project: int, runs: dict[str, str]
) -> None:
    view = open_view(qtbot, store, project)
    assert view.select_job(runs["a"])
    store.record_batch(runs["a"], {}, [MetricSample("loss", 0.1, "algo-1", 5000.0, 3)])
    changed: list[int] = []
    view.model.dataChanged.connect(lambda top, _bottom, *_: changed.append(top.row()))

    view.set_runs(load_runs(store, project))

    assert cell_of(view, runs["a"], "last:loss") == "0.1"
    assert changed == [view.model.row_of(runs["a"])]  # the other runs were not redrawn
    assert view.selected_ids() == [runs["a"]]


def test_grouping_by_sweep_uses_the_runs_sweep_id(qtbot: Any, store: Store, project: int) -> None:
    one = add_run(store, project, "t", {"lr": 0.1}, {}, 10, sweep="sweep-1")
    two = add_run(store, project, "t", {"lr": 0.2}, {}, 20, sweep="sweep-1")
    alone = add_run(store, project, "t", {"lr": 0.3}, {}, 30)
    view = open_view(qtbot, store, project)

    view.group_combo.setCurrentIndex(view.group_combo.findData("sweep"))

    assert cells(view, "group") == ["sweep-1", "sweep-1", "(no sweep)"]
    assert set(view.visible_ids()[:2]) == {one, two} and view.visible_ids()[2] == alone


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot, in_process=True)


def test_the_main_window_lists_a_projects_runs_with_their_values_and_offers_exports(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    store = make_window.store
    folder = tmp_path / "proj"
    folder.mkdir()
    project = store.add_project("proj", str(folder)).id
    first = add_run(store, project, "mnist", {"lr": 0.1}, {"loss": [1.0, 0.5]}, 1000)
    add_run(store, project, "mnist", {"lr": 0.01}, {"loss": [2.0]}, 2000)
    window = make_window()
    assert window.projects.select_project(project)

    qtbot.waitUntil(lambda: len(window.jobs.model.job_ids()) == 2, timeout=5000)

    assert cell_of(window.jobs, first, "hp:lr") == "0.1"
    assert cell_of(window.jobs, first, "last:loss") == "0.5"
    texts = [a.text() for a in window.window_actions.export_menu.actions()]
    assert texts == [
        "Export metrics as CSV…",
        "Export metrics as Parquet…",
        "Export runs table as CSV…",
    ]
    assert window.jobs.export_table_action in window.jobs.table.actions()
