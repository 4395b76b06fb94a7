"""End to end in the window: create a project, fill the job form (channels by drag and drop), run
the example on the host-process backend, see Completed in the jobs table and the loss curves."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import EXAMPLE, WindowFactory, drop, mime_for, window_factory
from PySide6.QtCore import Qt

from trainer_gui.core.runners.events import JobStatus
from trainer_gui.ui.jobs_table import FIXED_COLUMNS

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot)  # the job host follows the job, as the app does it


def curve_points(panel: Any, job_id: str, metric: str) -> int:
    """How many points the shown curve of `metric` has for the job (any host)."""
    total = 0
    for series in panel.all_series():
        if series.job_id == job_id and series.metric == metric:
            x, _y = panel.curve(job_id, series.host, metric).drawn_points()
            total += len(x)
    return total


def test_create_fill_drop_run_and_watch_the_loss_curve(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    shutil.copytree(EXAMPLE / "code", code, ignore=shutil.ignore_patterns("__pycache__"))
    window = make_window()
    window.show()

    # 1. a project
    project = window.projects.create_project(tmp_path / "spirals", "Spirals")
    assert window.current_project() is not None

    # 2. the form, filled in like a person would
    dialog = window.new_job()
    assert dialog is not None
    form = dialog.form
    name = form.editor("name").edit
    name.clear()
    qtbot.keyClicks(name, "spirals-e2e")
    form.editor("source.source_dir").edit.setText(str(code))
    entry = form.editor("source.entry_point").edit
    entry.clear()
    qtbot.keyClicks(entry, "train.py")

    # 3. channels: drop the example's data folders from the "file manager"
    channels = form.editor("channels")
    drop(
        channels.table.viewport(), mime_for([EXAMPLE / "data" / "train", EXAMPLE / "data" / "test"])
    )
    assert channels.names() == ["train", "test"]

    hyper = form.editor("hyperparameters")
    hyper.add_row("epochs", 3)
    metrics = form.editor("metric_definitions")
    metrics.suggest_button.click()
    assert {"train_loss", "test_loss"} <= {d["name"] for d in metrics.value()}

    qtbot.waitUntil(lambda: form.spec is not None, timeout=3000)
    assert form.problems == []

    # 4. save and run on the host-process backend
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    spec_file = Path(project.path) / "spirals-e2e.yaml"
    assert spec_file.is_file()

    # (a "Starting…" row shows at once; the job is listed once the submit has returned)
    qtbot.waitUntil(lambda: len(window.jobs.model.job_ids()) == 1, timeout=30_000)
    job_id = window.jobs.model.job_ids()[0]
    record = window.jobs.model.record_by_id(job_id)
    assert record is not None and record.backend == "local-process"

    # 5. the status reaches Completed in the jobs table
    qtbot.waitUntil(
        lambda: window.jobs.status_text(job_id) == JobStatus.COMPLETED.value, timeout=90_000
    )
    assert window.jobs.selected_ids() == [job_id]

    # 6. the loss curves are plotted
    panel = window.detail.metrics
    qtbot.waitUntil(lambda: curve_points(panel, job_id, "test_loss") >= 3, timeout=10_000)
    qtbot.waitUntil(lambda: curve_points(panel, job_id, "train_loss") >= 3, timeout=10_000)
    assert "test_loss" in panel.metric_names

    # and the table shows the last values
    qtbot.waitUntil(lambda: "test_loss" in window.jobs.model.metric_names, timeout=5000)
    column = len(FIXED_COLUMNS) + window.jobs.model.metric_names.index("test_loss")
    row = window.jobs.model.row_of(job_id)
    assert row is not None
    assert float(window.jobs.model.index(row, column).data()) > 0
    qtbot.waitUntil(lambda: "epoch=3" in window.detail.log_view.shown_text(), timeout=10_000)
