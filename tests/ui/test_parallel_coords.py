"""Parallel coordinates of the selected runs: dragging along an axis selects runs in the table."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WindowFactory, window_factory
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.paths import runs_home
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.store import Store
from trainer_gui.ui.plots.parallel import ParallelCoordsDialog, scale

SPEC = "name: {name}\nsource:\n  command: [python, -c, 'print(1)']\nhyperparameters:\n{hp}\n"


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot, in_process=True)


def _run(store: Store, name: str, hp: dict[str, Any], metrics: dict[str, float]) -> str:
    job_id = f"{name}-20260101-000000-0000"
    run = runs_home() / job_id
    (run / "logs").mkdir(parents=True)
    hp_yaml = "\n".join(f"  {k}: {v}" for k, v in hp.items())
    store.create_job(job_id, name, "local-process", SPEC.format(name=name, hp=hp_yaml), str(run))
    store.set_status(job_id, JobStatus.TRAINING.value, "", time.time() - 5)
    store.set_status(job_id, JobStatus.COMPLETED.value, "", time.time())
    samples = [MetricSample(k, v, "algo-1", time.time(), step=1) for k, v in metrics.items()]
    store.record_batch(job_id, {}, samples)
    return job_id


def _drag(qtbot: Any, view: Any, axis: int, y0: float, y1: float) -> None:
    """A user's left-button drag along `axis` from y0 to y1 (the plot's 0..1 scale)."""
    widget = view.parallel
    viewport = widget.viewport()

    def point(y: float) -> QPoint:
        scene = view.vb.mapViewToScene(QPointF(axis, y))
        return widget.mapFromScene(scene)

    start, end = point(y0), point(y1)
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for step in range(1, 6):
        at = QPointF(start + (end - start) * (step / 5))
        move = QMouseEvent(
            QMouseEvent.Type.MouseMove,
            at,
            viewport.mapToGlobal(at),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(viewport, move)
        qtbot.wait(40)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_scale_spreads_numbers_and_text_over_the_axis() -> None:
    numbers = scale([0.1, None, 0.001, 0.01])
    assert numbers.norm[0] == 1.0 and numbers.norm[2] == 0.0 and math.isnan(numbers.norm[1])
    assert numbers.ticks == [(0.0, "0.001"), (1.0, "0.1")]
    words = scale(["sgd", "adam", "sgd"])
    assert words.norm == [1.0, 0.0, 1.0]
    assert [t for _, t in words.ticks] == ["adam", "sgd"]


def test_dragging_along_an_axis_selects_the_runs_in_its_range_in_the_table(
    qtbot: Any, make_window: WindowFactory
) -> None:
    store = make_window.store
    fast = _run(store, "fast", {"lr": 0.1, "optimizer": "sgd"}, {"acc": 0.7, "loss": 0.9})
    mid = _run(store, "mid", {"lr": 0.01, "optimizer": "adam"}, {"acc": 0.9, "loss": 0.3})
    slow = _run(store, "slow", {"lr": 0.001, "optimizer": "adam"}, {"acc": 0.8})
    window = make_window()
    window.show()
    qtbot.waitUntil(lambda: len(window.jobs.model.job_ids()) == 3, timeout=10_000)
    window.jobs.table.selectAll()
    assert window.window_actions.parallel_action.isEnabled()
    assert window.window_actions.parallel_action in window.jobs.table.actions()
    window.window_actions.parallel_action.trigger()

    dialog = window.findChild(ParallelCoordsDialog)
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.view is not None, timeout=10_000)
    view = dialog.view
    qtbot.waitExposed(view.parallel)
    qtbot.waitUntil(lambda: view.vb.boundingRect().height() > 150)  # laid out at its size
    assert [f.label for f in view.fields] == ["lr", "optimizer", "acc (last)", "loss (last)"]
    assert view.color_combo.currentText() == "acc (last)"  # coloured by the first metric
    # The slow run has no loss: it is grey; the others run from purple to yellow by acc.
    colors = dict(zip([r.job_id for r in view.runs], view.colors, strict=True))
    assert colors[fast] != colors[mid]
    view.color_combo.setCurrentIndex(view.color_combo.findText("loss (last)"))
    assert view.colors[[r.job_id for r in view.runs].index(slow)].getRgb()[:3] == (150, 150, 150)

    # lr: 0.1 at the top, 0.01 just above the bottom, 0.001 at the bottom.
    with qtbot.waitSignal(view.sig_brushed, timeout=5000) as brushed:
        _drag(qtbot, view, 0, 1.05, 0.5)
    assert brushed.args == [[fast]]
    qtbot.waitUntil(lambda: window.jobs.selected_ids() == [fast])

    # A second axis narrows it further: optimizer "adam" (bottom) leaves no run with lr >= 0.5.
    with qtbot.waitSignal(view.sig_brushed, timeout=5000):
        _drag(qtbot, view, 1, -0.05, 0.2)
    qtbot.waitUntil(lambda: window.jobs.selected_ids() == [])

    # Clicking the lr axis drops its range: both adam runs are selected.
    with qtbot.waitSignal(view.sig_brushed, timeout=5000):
        scene = view.vb.mapViewToScene(QPointF(0, 0.3))
        QTest.mouseClick(
            view.parallel.viewport(),
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
            view.parallel.mapFromScene(scene),
        )
    qtbot.waitUntil(lambda: sorted(window.jobs.selected_ids()) == sorted([mid, slow]))

    # Dark theme: the axes and their values take the palette's text colour.
    window.set_theme("dark")
    qtbot.waitUntil(lambda: view.palette().color(QPalette.ColorRole.Base).lightness() < 128)
    text = view.palette().color(QPalette.ColorRole.Text)
    qtbot.waitUntil(lambda: view.tick_labels[0].color == text)
    assert view.axis_lines[0].pen.color() == text
    dialog.close()


def test_clicking_a_scatter_point_selects_its_run(qtbot: Any, make_window: WindowFactory) -> None:
    store = make_window.store
    first = _run(store, "first", {"lr": 0.1}, {"acc": 0.5})
    second = _run(store, "second", {"lr": 0.2}, {"acc": 0.9})
    window = make_window()
    window.show()
    qtbot.waitUntil(lambda: len(window.jobs.model.job_ids()) == 2, timeout=10_000)
    window.jobs.table.selectAll()
    window.window_actions.parallel_action.trigger()
    dialog = window.findChild(ParallelCoordsDialog)
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.view is not None, timeout=10_000)
    view = dialog.view
    view.tabs.setCurrentIndex(1)
    qtbot.waitExposed(view.scatter)
    assert (view.x_combo.currentText(), view.y_combo.currentText()) == ("lr", "acc (last)")
    item = view.scatter.getPlotItem()
    item.vb.setRange(xRange=(0.05, 0.25), yRange=(0.4, 1.0), padding=0)
    scene = item.vb.mapViewToScene(QPointF(0.2, 0.9))
    QTest.mouseClick(
        view.scatter.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        view.scatter.mapFromScene(scene),
    )
    qtbot.waitUntil(lambda: window.jobs.selected_ids() == [second])
    assert first != second
    dialog.close()
