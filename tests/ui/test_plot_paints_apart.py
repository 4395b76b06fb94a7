"""New plots in the middle of a flood: the grid changes once, and the plots it resized repaint
one per redraw tick, not all in one paint of the window (issue 18)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from trainer_gui.services.live_data import MetricChunk
from trainer_gui.ui.plots import MetricsPanel
from trainer_gui.ui.plots.panel import SPARE_PLOTS

JOB = "job-1"


def chunk(*metrics: str, n: int = 50) -> MetricChunk:
    steps = np.arange(n, dtype=np.float64)
    return MetricChunk(
        {("algo-1", m): (steps, 1000.0 + steps, np.sin(steps) + i) for i, m in enumerate(metrics)}
    )


@pytest.fixture
def panel(qtbot: QtBot) -> MetricsPanel:
    widget = MetricsPanel()
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    qtbot.waitExposed(widget)
    # The spare plots, built ahead while nothing arrives: new metrics take them in one tick.
    qtbot.waitUntil(lambda: len(widget._spares) == SPARE_PLOTS, timeout=10_000)
    widget.set_jobs([JOB])
    widget.add_samples(JOB, chunk("loss"))
    widget.redraw()
    return widget


def updates_on(panel: MetricsPanel) -> dict[str, bool]:
    return {m: p.widget.updatesEnabled() for m, p in sorted(panel._plots.items())}


def test_plots_resized_by_new_ones_repaint_one_per_tick(panel: MetricsPanel) -> None:
    panel.add_samples(JOB, chunk("sys/cpu_percent", "sys/memory_mb"))
    panel._tick()  # the timer's tick: places both new plots, with one change of the grid
    assert sorted(panel._plots) == ["loss", "sys/cpu_percent", "sys/memory_mb"]
    # It draws nothing more this turn: the new series wait for their own ticks.
    assert {"sys/cpu_percent", "sys/memory_mb"} <= {k[2] for k in panel._dirty}
    assert not any(updates_on(panel).values())
    panel._tick()  # the training plot first, then the system ones, in grid order
    assert updates_on(panel) == {"loss": True, "sys/cpu_percent": False, "sys/memory_mb": False}
    panel._tick()
    assert updates_on(panel) == {"loss": True, "sys/cpu_percent": True, "sys/memory_mb": False}
    panel._tick()
    assert all(updates_on(panel).values())
    waiting = {k[2] for k in panel._dirty}
    panel._tick()  # then the curves, one plot a tick
    assert len(waiting - {k[2] for k in panel._dirty}) == 1


def test_the_timer_lets_every_plot_paint_and_draws_every_new_curve(
    panel: MetricsPanel, qtbot: QtBot
) -> None:
    panel.add_samples(JOB, chunk("sys/cpu_percent", "sys/memory_mb", "accuracy"))
    qtbot.waitUntil(lambda: len(panel._plots) == 4, timeout=10_000)
    qtbot.waitUntil(lambda: all(updates_on(panel).values()) and not panel._dirty, timeout=10_000)
    for metric in ("accuracy", "sys/cpu_percent", "sys/memory_mb"):
        x, _ = panel.curve(JOB, "algo-1", metric).drawn_points()
        np.testing.assert_array_equal(x, np.arange(50))
    image = panel.plot_widget("accuracy").grab().toImage()
    assert not image.isNull() and image.width() > 100


def test_redraw_and_export_do_not_wait_for_held_paints(panel: MetricsPanel, tmp_path: Path) -> None:
    panel.add_samples(JOB, chunk("accuracy"))
    panel._tick()
    assert not any(updates_on(panel).values())
    panel.export_png(tmp_path / "all.png")  # redraw() first: everything drawn and painted
    assert all(updates_on(panel).values())
    assert (tmp_path / "all.png").stat().st_size > 0


def test_plots_removed_while_their_paint_is_held_are_let_go(
    panel: MetricsPanel, qtbot: QtBot
) -> None:
    panel.add_samples(JOB, chunk("accuracy"))
    panel._tick()
    assert len(panel._held) == 2
    panel.clear()  # every plot removed (and deleted later) before its tick
    assert panel._held == []
    qtbot.wait(200)  # the timer ticks on, touching no deleted plot
    panel.add_samples(JOB, chunk("loss"))
    qtbot.waitUntil(lambda: "loss" in panel._plots and not panel._held, timeout=10_000)
    assert all(updates_on(panel).values())
