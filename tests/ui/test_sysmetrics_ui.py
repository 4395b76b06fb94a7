"""System metrics in the window (issue 15, item 4): plotted in a "System" section after the
training metrics, never turned into runs-table columns."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.store import JobRecord
from trainer_gui.ui.jobs_table import JobsView
from trainer_gui.ui.plots import MetricsPanel

JOB = "job-1"
TRAINING = ("loss", "accuracy", "tb/lr")
SYSTEM = ("sys/cpu_percent", "sys/memory_mb")
NOW = time.time()


def _samples(name: str, n: int = 5, host: str = "algo-1") -> list[MetricSample]:
    return [MetricSample(name, float(i), host, 1000.0 + i, i) for i in range(n)]


def test_system_metrics_are_plotted_in_their_own_section_below_training_ones(
    qtbot: QtBot,
) -> None:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.resize(1000, 900)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_jobs([JOB])
    panel.add_samples(JOB, _samples("loss") + _samples("accuracy") + _samples("tb/lr"))
    panel.add_samples(JOB, _samples("sys/cpu_percent") + _samples("sys/memory_mb"))
    qtbot.waitUntil(lambda: len(panel.metric_names) == 5 and panel.system_label.isVisible())
    for name in panel.metric_names:
        panel.plot(name)
    qtbot.waitUntil(lambda: all(panel.plot(n).widget.isVisible() for n in panel.metric_names))

    def ordered() -> bool:
        label = panel.system_label.geometry()
        above = all(panel.plot_widget(n).geometry().bottom() < label.top() for n in TRAINING)
        below = all(panel.plot_widget(n).geometry().top() > label.bottom() for n in SYSTEM)
        return above and below

    qtbot.waitUntil(ordered)
    assert "System" in panel.system_label.text()


def test_no_system_section_without_system_metrics(qtbot: QtBot) -> None:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_jobs([JOB])
    panel.add_samples(JOB, _samples("loss"))
    qtbot.waitUntil(lambda: panel.plot("loss").widget.isVisible())
    assert not panel.system_label.isVisible()


def _record(name: str) -> JobRecord:
    return JobRecord(
        id=f"{name}-20260101-000000-abcd",
        project_id=1,
        name=name,
        backend="local-process",
        spec_yaml=f"name: {name}\n",
        status="Training",
        created_at=NOW - 10,
        started_at=NOW - 5,
        ended_at=None,
        failure_reason=None,
        backend_ids={},
        run_dir=f"/tmp/runs/{name}",
    )


def _header(view: JobsView) -> list[str]:
    model = view.model
    return [str(model.headerData(c, Qt.Orientation.Horizontal)) for c in range(model.columnCount())]


def test_the_runs_table_makes_no_columns_of_system_metrics(qtbot: Any) -> None:
    view = JobsView()
    qtbot.addWidget(view)
    view.show()
    record = _record("alpha")
    view.model.set_jobs([(record, {"loss": 0.5, "sys/cpu_percent": 180.0})])
    assert "loss" in _header(view)
    assert not any(h.startswith("sys/") for h in _header(view))
    view.model.update_metrics(record.id, _samples("sys/memory_mb") + _samples("tb/acc"))
    assert "tb/acc" in _header(view)
    assert not any(h.startswith("sys/") for h in _header(view))
