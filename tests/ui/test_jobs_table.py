"""The jobs table: columns, status colours, in-place updates, sorting, filtering, multi-select."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from PySide6.QtCore import Qt

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.store import JobRecord
from trainer_gui.ui.icons import STATUS_COLORS
from trainer_gui.ui.jobs_table import (
    COL_DURATION,
    COL_NAME,
    COL_STARTED,
    COL_STATUS,
    FIXED_COLUMNS,
    MAX_METRIC_COLUMNS,
    STARTING,
    JobsView,
    format_duration,
    metric_priority,
)

NOW = time.time()


def record(
    name: str,
    status: str = "Completed",
    started: float | None = NOW - 100,
    ended: float | None = NOW - 10,
    backend: str = "local-process",
) -> JobRecord:
    return JobRecord(
        id=f"{name}-20260101-000000-abcd",
        project_id=1,
        name=name,
        backend=backend,
        spec_yaml=f"name: {name}\n",
        status=status,
        created_at=(started or NOW) - 1,
        started_at=started,
        ended_at=ended,
        failure_reason=None,
        backend_ids={},
        run_dir=f"/tmp/runs/{name}",
    )


@pytest.fixture
def view(qtbot: Any) -> JobsView:
    widget = JobsView()
    qtbot.addWidget(widget)
    widget.resize(900, 300)
    widget.show()
    return widget


def shown(view: JobsView, column: int = COL_NAME) -> list[str]:
    proxy = view.proxy
    return [str(proxy.index(row, column).data()) for row in range(proxy.rowCount())]


def header(view: JobsView) -> list[str]:
    model = view.model
    return [str(model.headerData(c, Qt.Orientation.Horizontal)) for c in range(model.columnCount())]


def test_rows_show_name_status_backend_start_duration_and_last_metrics(view: JobsView) -> None:
    view.model.set_jobs(
        [(record("alpha"), {"test_loss": 0.25, "test_acc": 0.9}), (record("beta"), {})]
    )

    assert header(view)[: len(FIXED_COLUMNS)] == list(FIXED_COLUMNS)
    assert header(view)[len(FIXED_COLUMNS) :] == ["test_loss", "test_acc", "Tags", "Note"]
    model = view.model
    row = model.row_of("alpha-20260101-000000-abcd")
    assert row is not None
    values = [model.index(row, c).data() for c in range(model.columnCount())]
    assert values[0] == "alpha" and values[1] == "Completed" and values[2] == "local-process"
    assert values[COL_DURATION] == "1:30"
    assert values[len(FIXED_COLUMNS) : len(FIXED_COLUMNS) + 2] == ["0.25", "0.9"]


def test_status_cells_have_the_status_colour_and_a_dot(view: JobsView) -> None:
    view.model.set_jobs([(record("a", "Failed"), {}), (record("b", "Training", ended=None), {})])

    for row, status in ((0, "Failed"), (1, "Training")):
        index = view.model.index(row, COL_STATUS)
        assert index.data(Qt.ItemDataRole.ForegroundRole).name() == STATUS_COLORS[status]
        assert not index.data(Qt.ItemDataRole.DecorationRole).isNull()


def test_key_metrics_come_first_and_columns_are_capped(view: JobsView) -> None:
    metrics = {f"m{i}": float(i) for i in range(8)} | {"val_acc": 0.5, "train_loss": 1.0}

    view.model.set_jobs([(record("a"), metrics)])

    names = view.model.metric_names
    assert len(names) == MAX_METRIC_COLUMNS
    assert names[:2] == ["train_loss", "val_acc"]
    assert metric_priority("loss") < metric_priority("accuracy") < metric_priority("zeta")


def test_refresh_updates_rows_in_place_and_keeps_the_selection(view: JobsView) -> None:
    a, b = record("a", "Training", ended=None), record("b")
    view.model.set_jobs([(a, {}), (b, {})])
    assert view.select_job(b.id)
    removed: list[Any] = []
    view.model.rowsRemoved.connect(lambda *args: removed.append(args))

    view.model.set_jobs([(replace(a, status="Completed"), {"loss": 0.1}), (b, {})])

    assert removed == []
    assert view.selected_ids() == [b.id]
    assert view.status_text(a.id) == "Completed"
    assert view.model.last_metrics(a.id) == {"loss": 0.1}


def test_jobs_that_disappear_are_removed(view: JobsView) -> None:
    a, b = record("a"), record("b")
    view.model.set_jobs([(a, {}), (b, {})])

    view.model.set_jobs([(b, {})])

    assert shown(view) == ["b"]


def test_live_status_and_metrics_update_the_row(view: JobsView) -> None:
    job = record("a", "Starting", started=None, ended=None)
    view.model.set_jobs([(job, {})])

    assert view.model.update_status(job.id, "Training")
    view.model.update_metrics(job.id, [MetricSample("loss", 0.7, "algo-1", NOW, 1)])
    view.model.update_metrics(job.id, [MetricSample("loss", 0.4, "algo-1", NOW, 2)])
    assert view.model.update_status(job.id, "Failed", "exit code 1")

    updated = view.model.record_by_id(job.id)
    assert updated is not None
    assert updated.status == "Failed" and updated.failure_reason == "exit code 1"
    assert updated.started_at is not None and updated.ended_at is not None
    assert view.model.last_metrics(job.id) == {"loss": 0.4}
    assert not view.model.update_status("unknown-job", "Completed")


def test_sorting_by_a_metric_is_numeric(view: JobsView) -> None:
    view.model.set_jobs(
        [
            (record("a"), {"loss": 10.0}),
            (record("b"), {"loss": 9.0}),
            (record("c"), {"loss": 100.0}),
            (record("d"), {}),
        ]
    )
    column = len(FIXED_COLUMNS) + view.model.metric_names.index("loss")

    view.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)

    assert shown(view) == ["b", "a", "c", "d"]  # a run without the metric goes last


def test_sorting_by_duration_and_start(view: JobsView) -> None:
    view.model.set_jobs(
        [
            (record("short", started=NOW - 20, ended=NOW - 10), {}),
            (record("long", started=NOW - 5000, ended=NOW - 10), {}),
            (record("mid", started=NOW - 300, ended=NOW - 10), {}),
        ]
    )

    view.table.sortByColumn(COL_DURATION, Qt.SortOrder.DescendingOrder)
    assert shown(view) == ["long", "mid", "short"]
    view.table.sortByColumn(COL_NAME, Qt.SortOrder.AscendingOrder)
    assert shown(view) == ["long", "mid", "short"]


def test_filter_by_text_and_by_status(view: JobsView) -> None:
    view.model.set_jobs(
        [
            (record("mnist-small"), {}),
            (record("mnist-big", "Failed"), {}),
            (record("cifar", "Training", ended=None), {}),
        ]
    )

    view.filter_edit.setText("MNIST")
    assert sorted(shown(view)) == ["mnist-big", "mnist-small"]
    view.status_combo.setCurrentIndex(view.status_combo.findData("Failed"))
    assert shown(view) == ["mnist-big"]
    view.filter_edit.clear()
    view.status_combo.setCurrentIndex(view.status_combo.findData("Active"))
    assert shown(view) == ["cifar"]
    view.status_combo.setCurrentIndex(0)
    assert len(shown(view)) == 3


def test_several_jobs_can_be_selected(qtbot: Any, view: JobsView) -> None:
    jobs = [record(n) for n in ("a", "b", "c")]
    view.model.set_jobs([(j, {}) for j in jobs])
    view.table.sortByColumn(COL_NAME, Qt.SortOrder.AscendingOrder)

    with qtbot.waitSignal(view.sig_selection_changed) as signal:
        view.table.selectAll()

    assert sorted(signal.args[0]) == sorted(j.id for j in jobs)
    assert [r.name for r in view.selected_records()] == ["a", "b", "c"]


def test_durations_format_like_a_clock() -> None:
    assert format_duration(None) == ""
    assert format_duration(5) == "0:05"
    assert format_duration(3725) == "1:02:05"


def test_running_durations_count_up(qtbot: Any, view: JobsView) -> None:
    job = record("a", "Training", started=time.time() - 3, ended=None)
    view.model.set_jobs([(job, {})])
    changed: list[int] = []
    view.model.dataChanged.connect(lambda top, *_: changed.append(top.column()))

    qtbot.waitUntil(lambda: COL_DURATION in changed, timeout=3000)


def test_a_new_job_lands_at_the_top_of_a_list_sorted_newest_first(view: JobsView) -> None:
    """The first load adds a metric column to an empty table, which used to unsort it."""
    older = [(record("a", started=NOW - 300), {"loss": 1.0}), (record("b", started=NOW - 200), {})]
    view.model.set_jobs([])
    view.model.set_jobs(older)
    assert shown(view) == ["b", "a"]
    new = replace(record("new", "Pending", started=None, ended=None), created_at=NOW)

    view.model.set_jobs([*older, (new, {})])

    assert shown(view) == ["new", "b", "a"]
    header = view.table.horizontalHeader()
    assert header.sortIndicatorSection() == COL_STARTED
    assert header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder


def test_a_user_chosen_sort_survives_metric_columns_coming_and_going(view: JobsView) -> None:
    view.table.sortByColumn(COL_NAME, Qt.SortOrder.AscendingOrder)
    view.model.set_jobs([(record("b"), {"loss": 1.0}), (record("a"), {"acc": 0.5})])

    view.model.set_jobs([(record("b"), {}), (record("c"), {}), (record("a"), {})])

    assert shown(view) == ["a", "b", "c"]


def test_metric_columns_are_those_of_the_jobs_listed(view: JobsView) -> None:
    view.model.set_jobs([(record("a"), {"loss": 0.5})])
    assert view.model.metric_names == ["loss"]

    view.model.set_jobs([])
    view.model.set_jobs([(record("z"), {"acc": 0.9})])

    assert view.model.metric_names == ["acc"]
    assert header(view)[len(FIXED_COLUMNS) :] == ["acc", "Tags", "Note"]


def test_a_starting_row_shows_at_once_at_the_top_and_gives_way_to_the_job(view: JobsView) -> None:
    old = record("old", started=NOW - 100)
    view.model.set_jobs([(old, {})])

    starting = view.model.add_placeholder("fresh", "local-process", 1)
    assert view.select_job(starting)

    assert shown(view) == ["fresh", "old"]
    assert shown(view, COL_STATUS)[0] == STARTING
    assert view.selected_records() == []  # no job yet to act on
    view.model.set_jobs([(old, {})])  # a reload before the submit returned keeps it
    assert shown(view) == ["fresh", "old"]
    real = replace(record("fresh", "Pending", started=None, ended=None), created_at=NOW + 1)
    view.model.resolve_placeholder(starting)
    view.model.set_jobs([(old, {}), (real, {})])
    assert shown(view) == ["fresh", "old"]
    assert sorted(view.model.job_ids()) == sorted([old.id, real.id])
    failed = view.model.add_placeholder("broken", "local-process", 1)
    view.model.remove_placeholder(failed)
    assert shown(view) == ["fresh", "old"]


def test_a_queued_job_shows_no_start_time_only_when_it_was_queued(view: JobsView) -> None:
    view.model.set_jobs([(record("waits", "Queued", started=None, ended=None), {})])
    index = view.model.index(0, COL_STARTED)
    assert view.model.data(index, Qt.ItemDataRole.DisplayRole) == "–"
    assert str(view.model.data(index, Qt.ItemDataRole.ToolTipRole)).startswith("Queued at ")
