from __future__ import annotations

import contextlib
import csv
import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QImage, QPainter
from PySide6.QtWidgets import QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

from trainer_gui.core.metrics.series import CSV_HEADER
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.services.live_data import MetricChunk
from trainer_gui.ui.plots import MetricsPanel
from trainer_gui.ui.plots.curve import SeriesCurve
from trainer_gui.ui.plots.panel import LEGEND_OPEN_MAX
from trainer_gui.ui.plots.widget import log_ticks

JOB = "job-1"


def samples(
    n: int, name: str = "loss", host: str = "algo-1", start: int = 0, t0: float = 1000.0
) -> list[MetricSample]:
    return [
        MetricSample(name, 1.0 / (i + 1), host, t0 + i * 0.5, i) for i in range(start, start + n)
    ]


@pytest.fixture
def panel(qtbot: QtBot) -> MetricsPanel:
    widget = MetricsPanel()
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_jobs([JOB])
    return widget


def tensorboard_ema(values: list[float], w: float) -> list[float]:
    """TensorBoard's loop, transcribed (finite values only)."""
    last, out = 0.0, []
    for n, v in enumerate(values, start=1):
        last = last * w + (1 - w) * v
        out.append(last / (1 - w**n))
    return out


def test_one_plot_per_metric_and_one_curve_per_host(panel: MetricsPanel) -> None:
    panel.add_samples(JOB, samples(10, "loss", "algo-1") + samples(10, "loss", "algo-2"))
    panel.add_samples(JOB, samples(5, "accuracy", "algo-1"))
    panel.redraw()
    assert panel.metric_names == ["accuracy", "loss"]
    assert set(panel.plot("loss").curves) == {(JOB, "algo-1", "loss"), (JOB, "algo-2", "loss")}
    assert set(panel.plot("accuracy").curves) == {(JOB, "algo-1", "accuracy")}
    assert panel.curve(JOB, "algo-2", "loss").name() == "algo-2"
    # Curves are made once: more samples reuse them.
    curve = panel.curve(JOB, "algo-1", "loss")
    panel.add_samples(JOB, samples(10, "loss", "algo-1", start=10))
    panel.redraw()
    assert panel.curve(JOB, "algo-1", "loss") is curve
    items = panel.plot("loss").item.vb.addedItems
    assert sum(isinstance(i, SeriesCurve) for i in items) == 4  # shown + faint raw
    assert [c.name() for c in panel.plot("loss").curves.values()] == ["algo-1", "algo-2"]
    # Two hosts to tell apart: one legend above the plots, none over the curves.
    assert panel.legend.isVisible()
    assert [e.toolTip() for e in panel.legend.entries] == ["algo-1", "algo-2"]
    assert panel.plot("loss").item.legend is None


def test_new_plots_are_built_one_per_redraw_tick(panel: MetricsPanel) -> None:
    panel.add_samples(JOB, samples(5, "a") + samples(5, "b") + samples(5, "c"))
    assert panel.metric_names == ["a", "b", "c"]
    assert panel._plots == {}
    panel.redraw()
    assert sorted(panel._plots) == ["a"]  # the spare plot, ready before any metric came
    panel.redraw()
    panel.redraw()
    assert sorted(panel._plots) == ["a", "b", "c"]
    x, _y = panel.curve(JOB, "algo-1", "c").drawn_points()
    np.testing.assert_array_equal(x, np.arange(5))


def test_a_dense_series_is_drawn_as_pixel_columns_of_its_min_and_max(
    panel: MetricsPanel, qtbot: QtBot
) -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=300_000)
    values[123_456] = 50.0  # one spike among 300,000 points
    values[200_000:200_010] = np.nan
    panel.add_samples(
        JOB, [MetricSample("loss", float(v), "algo-1", 1000.0 + i, i) for i, v in enumerate(values)]
    )
    panel.redraw()
    qtbot.wait(20)  # the new plot gets its size, and its curves are redrawn for it
    panel.redraw()
    curve = panel.curve(JOB, "algo-1", "loss")
    assert curve._band
    x, y = curve.drawn_points()
    columns = len(x) // 2
    assert 100 <= columns <= panel.plot("loss").item.vb.width() + 1
    assert np.nanmax(y) == 50.0  # the spike survives
    assert np.nanmin(y) == np.nanmin(values)
    # Each column holds the min and max of its points (joined to its neighbours' range).
    edges = np.append(x[0::2], 299_999)
    k = columns // 2
    inside = values[int(edges[k]) : int(edges[k + 1])]
    assert y[2 * k] <= np.nanmin(inside) and y[2 * k + 1] >= np.nanmax(inside)
    image = panel.plot_widget("loss").grab().toImage()
    assert not image.isNull()


def test_samples_of_jobs_not_shown_are_ignored(panel: MetricsPanel) -> None:
    panel.add_samples("other", samples(10))
    assert panel.metric_names == []


def test_every_point_is_kept_across_many_batches(panel: MetricsPanel) -> None:
    for b in range(100):
        panel.add_samples(JOB, samples(1000, start=b * 1000))
        if b % 10 == 0:
            panel.redraw()
    panel.redraw()
    series = panel.series(JOB, "algo-1", "loss")
    assert series.n == 100_000
    assert series.capacity >= 100_000
    np.testing.assert_array_equal(series.x_step[: series.n], np.arange(100_000))
    np.testing.assert_allclose(series.value[: series.n], 1.0 / (np.arange(100_000) + 1))
    # Drawn as per-column min/max: the extremes survive, the point count does not.
    x, y = panel.curve(JOB, "algo-1", "loss").drawn_points()
    assert len(x) < 100_000
    assert y.max() == 1.0
    assert y.min() == 1.0 / 100_000
    assert x.min() == 0


def test_zooming_into_a_big_series_draws_its_raw_points(panel: MetricsPanel, qtbot: QtBot) -> None:
    panel.add_samples(JOB, samples(200_000))
    panel.redraw()
    vb = panel.plot_widget("loss").getPlotItem().getViewBox()
    vb.setXRange(150_000, 150_100, padding=0)
    qtbot.waitUntil(lambda: (JOB, "algo-1", "loss") not in panel._dirty or panel.redraw() is None)
    panel.redraw()
    x, y = panel.curve(JOB, "algo-1", "loss").drawn_points()
    inside = (x >= 150_000) & (x <= 150_100)
    np.testing.assert_array_equal(x[inside], np.arange(150_000, 150_101))
    np.testing.assert_allclose(y[inside], 1.0 / (np.arange(150_000, 150_101) + 1))
    assert len(x) < 1000  # the window around the view, not the whole series
    panel.reset_view()
    panel.redraw()
    x, _ = panel.curve(JOB, "algo-1", "loss").drawn_points()
    assert x.min() == 0
    assert x.max() >= 195_000


def test_smoothing_shows_the_ema_with_the_raw_series_faint_behind(panel: MetricsPanel) -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    panel.add_samples(
        JOB, [MetricSample("loss", v, "algo-1", 1000.0 + i, i) for i, v in enumerate(values)]
    )
    panel.set_smoothing(0.6)
    assert panel.smoothing_slider.value() == 600
    panel.redraw()
    curve, raw = panel.curve(JOB, "algo-1", "loss"), panel.raw_curve(JOB, "algo-1", "loss")
    np.testing.assert_allclose(curve.drawn_points()[1], tensorboard_ema(values, 0.6))
    assert raw.isVisible()
    np.testing.assert_array_equal(raw.drawn_points()[1], values)
    # Faint: the colour blended into the background (painted opaque, which is cheaper).
    background = panel.plot_widget("loss").backgroundBrush().color()
    faint, full = raw.opts["pen"].color(), curve.opts["pen"].color()
    assert abs(faint.lightness() - background.lightness()) < abs(
        full.lightness() - background.lightness()
    )
    # New points extend the smoothed series.
    panel.add_samples(JOB, [MetricSample("loss", 0.0, "algo-1", 1010.0, 5)])
    panel.redraw()
    np.testing.assert_allclose(curve.drawn_points()[1], tensorboard_ema([*values, 0.0], 0.6))
    panel.smoothing_slider.setValue(0)  # off
    panel.redraw()
    np.testing.assert_array_equal(curve.drawn_points()[1], [*values, 0.0])
    assert not raw.isVisible()


def test_user_zoom_is_kept_while_new_samples_arrive_until_reset(
    panel: MetricsPanel, qtbot: QtBot
) -> None:
    panel.add_samples(JOB, samples(100))
    panel.add_samples(JOB, samples(100, "accuracy"))
    panel.redraw()
    vb = panel.plot_widget("loss").getPlotItem().getViewBox()
    vb.setRange(xRange=(10, 20), yRange=(0.05, 0.1), padding=0)  # what a mouse zoom does
    zoomed = vb.viewRange()
    panel.add_samples(JOB, samples(1000, start=100))
    panel.add_samples(JOB, samples(1000, "accuracy", start=100))
    panel.redraw()
    qtbot.wait(50)  # let the view boxes process their deferred range updates
    np.testing.assert_allclose(vb.viewRange(), zoomed)
    # The plot the user did not touch follows its data.
    other = panel.plot_widget("accuracy").getPlotItem().getViewBox()
    qtbot.waitUntil(lambda: other.viewRange()[0][1] >= 1099, timeout=2000)
    panel.reset_view()
    qtbot.waitUntil(lambda: vb.viewRange()[0][1] >= 1099, timeout=2000)


def test_csv_export_has_every_point_of_every_series(panel: MetricsPanel, tmp_path: Path) -> None:
    panel.set_jobs([JOB, "job-2"], labels={"job-2": "baseline"})
    panel.add_samples(JOB, samples(3, "loss", "algo-1") + samples(2, "loss", "algo-2"))
    panel.add_samples(JOB, [MetricSample("lr", 0.1, "algo-1", 1001.25, None)])
    panel.add_samples("job-2", samples(2, "loss", "algo-1", t0=2000.0))
    out = tmp_path / "metrics.csv"
    assert panel.export_csv(out) == 8
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_HEADER
    assert rows[1:] == [
        [JOB, "algo-1", "loss", "0", "1000.0", "1.0"],
        [JOB, "algo-1", "loss", "1", "1000.5", "0.5"],
        [JOB, "algo-1", "loss", "2", "1001.0", str(1 / 3)],
        [JOB, "algo-1", "lr", "", "1001.25", "0.1"],
        [JOB, "algo-2", "loss", "0", "1000.0", "1.0"],
        [JOB, "algo-2", "loss", "1", "1000.5", "0.5"],
        ["job-2", "algo-1", "loss", "0", "2000.0", "1.0"],
        ["job-2", "algo-1", "loss", "1", "2000.5", "0.5"],
    ]
    assert panel.curve("job-2", "algo-1", "loss").name() == "baseline · algo-1"


def test_log_scale_toggles_for_x_and_y(panel: MetricsPanel) -> None:
    panel.add_samples(JOB, samples(100, start=1))
    panel.redraw()
    item = panel.plot_widget("loss").getPlotItem()
    curve = panel.curve(JOB, "algo-1", "loss")
    panel.log_y_button.click()
    assert panel.log_mode == (False, True)
    assert item.ctrl.logYCheck.isChecked()
    assert curve.log_mode == (False, True)
    panel.redraw()
    _, y = curve.drawn_points()  # the data goes over again, in log10
    np.testing.assert_allclose(y, np.log10(1.0 / (np.arange(1, 101) + 1)))
    panel.set_log_x(True)
    assert panel.log_x_button.isChecked()
    assert curve.log_mode == (True, True)
    panel.redraw()
    x, _ = curve.drawn_points()
    np.testing.assert_allclose(x, np.log10(np.arange(1, 101)))
    panel.add_samples(JOB, samples(1, "accuracy", start=1))  # a new plot comes in log mode too
    assert panel.plot_widget("accuracy").getPlotItem().ctrl.logXCheck.isChecked()
    panel.log_y_button.click()
    panel.set_log_x(False)
    assert curve.log_mode == (False, False)


def test_x_axis_modes_step_wall_and_relative(panel: MetricsPanel) -> None:
    panel.add_samples(
        JOB, [MetricSample("loss", 1.0, "algo-1", 500.0 + i, 10 * i) for i in range(3)]
    )
    panel.redraw()
    curve = panel.curve(JOB, "algo-1", "loss")
    np.testing.assert_array_equal(curve.drawn_points()[0], [0, 10, 20])
    panel.set_x_mode("wall")
    panel.redraw()
    np.testing.assert_array_equal(curve.drawn_points()[0], [500, 501, 502])
    assert (
        type(panel.plot_widget("loss").getPlotItem().getAxis("bottom")).__name__ == "DateAxisItem"
    )
    panel.x_combo.setCurrentIndex(panel.x_combo.findData("relative"))
    assert panel.x_mode == "relative"
    panel.redraw()
    np.testing.assert_array_equal(curve.drawn_points()[0], [0, 1, 2])
    assert type(panel.plot_widget("loss").getPlotItem().getAxis("bottom")).__name__ == "AxisItem"


def hover_text(panel: MetricsPanel, metric: str) -> str:
    """What the read-out label on `metric`'s plot says ("" while it is hidden)."""
    label = panel.plot(metric).label
    return label.textItem.toPlainText() if label.isVisible() else ""


def move_mouse_to(qtbot: QtBot, panel: MetricsPanel, metric: str, x: float, y: float) -> None:
    """A real mouse move over `metric`'s plot, to the pixel of view point (x, y)."""
    view = panel.plot_widget(metric)
    scene = panel.plot(metric).item.vb.mapViewToScene(QPointF(x, y))
    qtbot.mouseMove(view.viewport(), view.mapFromScene(scene))


def test_hover_reads_out_the_point_nearest_the_mouse(panel: MetricsPanel, qtbot: QtBot) -> None:
    above = [MetricSample("loss", 5.0 + 1.0 / (i + 1), "algo-2", 1000.0 + i, i) for i in range(10)]
    panel.add_samples(JOB, samples(10) + above)  # algo-2 well above algo-1
    panel.redraw()
    qtbot.waitUntil(lambda: panel.plot("loss").item.vb.width() > 100)
    panel.redraw()  # the curves, for the plot's real size
    move_mouse_to(qtbot, panel, "loss", 3.1, 0.25)
    qtbot.waitUntil(lambda: hover_text(panel, "loss").startswith("algo-1"), timeout=3000)
    text = hover_text(panel, "loss")
    assert "x = 3" in text
    assert "y = 0.25" in text
    assert panel.plot("loss").vline.isVisible()
    move_mouse_to(qtbot, panel, "loss", 6.1, 5.0 + 1 / 7)
    qtbot.waitUntil(lambda: hover_text(panel, "loss").startswith("algo-2"), timeout=3000)
    assert "x = 6\ny = 5.14286" in hover_text(panel, "loss")
    panel.log_y_button.click()  # the crosshair's place means nothing on a new scale
    assert hover_text(panel, "loss") == ""


def test_png_export_per_plot_and_all(panel: MetricsPanel, tmp_path: Path) -> None:
    panel.add_samples(JOB, samples(50) + samples(50, "accuracy"))
    one, everything = tmp_path / "loss.png", tmp_path / "all.png"
    panel.export_png(one, "loss")
    panel.export_png(everything)
    assert QImage(str(one)).width() > 100
    assert QImage(str(everything)).width() > QImage(str(one)).width() * 1.5  # both plots


def test_a_million_point_series_sets_and_draws(panel: MetricsPanel) -> None:
    n = 1_000_000
    walls = 1000.0 + np.arange(n) * 0.01
    values = np.sin(np.arange(n) / 1000.0) + np.random.default_rng(1).normal(0, 0.1, n)
    steps = np.arange(n, dtype=np.float64)
    panel.add_samples(JOB, MetricChunk({("algo-1", "loss"): (steps, walls, values)}))
    started = time.perf_counter()
    panel.redraw()
    image = panel.plot_widget("loss").grab()
    elapsed = time.perf_counter() - started
    assert not image.isNull()
    curve = panel.curve(JOB, "algo-1", "loss")
    assert panel.series(JOB, "algo-1", "loss").n == n  # every point kept
    x, y = curve.drawn_points()
    assert len(x) == len(y) < n / 100  # per pixel column, its min and max
    assert y.max() == values.max()
    assert y.min() == values.min()
    assert elapsed < 5.0  # generous: a smoke bound, the benchmark measures it properly


def test_load_from_store_reads_in_the_background_and_merges_live_samples(
    qtbot: QtBot, trainer_home: Path
) -> None:
    from trainer_gui.core.store import Store

    store = Store()
    store.create_job(JOB, "demo", "local-process", "name: demo\n", str(trainer_home / "run"))
    stored = samples(500) + samples(20, "accuracy")
    store.record_batch(JOB, {}, stored)
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.set_jobs([JOB])
    with qtbot.waitSignal(panel.sig_loaded, timeout=10_000):
        panel.load_from_store(store, JOB)
        assert panel.is_loading(JOB)
        panel.add_samples(JOB, samples(10, start=495))  # 495-499 were stored already
    assert not panel.is_loading()
    assert panel.series(JOB, "algo-1", "loss").n == 505
    np.testing.assert_array_equal(panel.series(JOB, "algo-1", "loss").step[:505], np.arange(505))
    assert panel.series(JOB, "algo-1", "accuracy").n == 20
    store.close()


def test_clear_and_set_jobs_drop_plots(panel: MetricsPanel) -> None:
    panel.set_jobs([JOB, "b"])
    panel.add_samples(JOB, samples(3))
    panel.add_samples("b", samples(3, "other"))
    assert panel.metric_names == ["loss", "other"]
    panel.set_jobs([JOB])
    assert panel.metric_names == ["loss"]
    assert panel.curve(JOB, "algo-1", "loss").name() == "algo-1"
    panel.clear()
    assert panel.metric_names == []
    assert panel.placeholder.isVisible()


def test_importing_the_plots_does_not_import_pyqtgraph() -> None:
    code = (
        "import sys, trainer_gui.ui.plots, trainer_gui.ui.log_view, "
        "trainer_gui.ui.bridge; print('pyqtgraph' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_the_export_menu_offers_png_of_all_or_one_plot_and_csv(panel: MetricsPanel) -> None:
    panel.add_samples(JOB, samples(5) + samples(5, "accuracy"))
    menu = panel.export_button.menu()
    menu.aboutToShow.emit()  # what opening it does
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts == [
        "PNG of all plots…",
        "PNG of accuracy…",
        "PNG of loss…",
        "CSV of every point…",
    ]


def export_action(panel: MetricsPanel, text: str) -> QAction:
    menu = panel.export_button.menu()
    menu.aboutToShow.emit()
    return next(a for a in menu.actions() if a.text() == text)


def test_csv_from_the_menu_is_written_in_the_background_and_reported(
    panel: MetricsPanel, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel.add_samples(JOB, samples(3) + samples(2, "accuracy"))
    out = tmp_path / "chosen.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    with qtbot.waitSignal(panel.sig_csv_exported, timeout=10_000) as blocker:
        export_action(panel, "CSV of every point…").trigger()
    assert blocker.args == [str(out), ""]
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 1 + 5
    assert {r[2] for r in rows[1:]} == {"loss", "accuracy"}


def test_a_csv_that_cannot_be_written_is_reported_not_raised(
    panel: MetricsPanel, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel.add_samples(JOB, samples(3))
    out = tmp_path / "no-such-folder" / "x.csv"
    warnings: list[str] = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text: warnings.append(text))
    with qtbot.waitSignal(panel.sig_csv_exported, timeout=10_000) as blocker:
        export_action(panel, "CSV of every point…").trigger()
    path, error = blocker.args
    assert path == str(out) and error
    assert warnings and warnings[0].startswith(f"Could not export {out}")


def test_png_of_one_plot_from_the_menu(
    panel: MetricsPanel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel.add_samples(JOB, samples(20) + samples(20, "accuracy"))
    out = tmp_path / "loss.png"
    offered: list[str] = []

    def choose(_parent: object, _title: str, default: str, _filter: str) -> tuple[str, str]:
        offered.append(default)
        return str(out), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", choose)
    export_action(panel, "PNG of loss…").trigger()
    assert [Path(o).name for o in offered] == [f"{JOB}-loss.png"]  # in the run's folder
    assert QImage(str(out)).width() > 100


def test_a_failed_store_read_still_shows_live_samples(
    panel: MetricsPanel, qtbot: QtBot, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore:
        def metric_samples(self, job_id: str) -> list[object]:
            raise OSError("disk gone")

    with qtbot.waitSignal(panel.sig_loaded, timeout=10_000):
        panel.load_from_store(BrokenStore(), JOB)  # type: ignore[arg-type]
        panel.add_samples(JOB, samples(4))
    assert panel.series(JOB, "algo-1", "loss").n == 4
    assert "could not read the stored metrics" in caplog.text


def test_an_answer_to_an_earlier_store_read_is_dropped(
    panel: MetricsPanel, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Store:
        """The first read answers 5 samples at once; the second 30, once released."""

        def __init__(self) -> None:
            self.calls = 0
            self.first_read = threading.Event()
            self.release = threading.Event()

        def metric_samples(self, job_id: str) -> list[tuple[int, MetricSample]]:
            self.calls += 1
            first = self.calls == 1
            if first:
                self.first_read.set()
            else:
                assert self.release.wait(10)
            return list(enumerate(samples(5 if first else 30)))

    store = Store()
    answers: list[object] = []
    on_loaded = panel._on_loaded
    monkeypatch.setattr(panel, "_on_loaded", lambda r: (answers.append(r), on_loaded(r)))
    loaded: list[str] = []
    panel.sig_loaded.connect(loaded.append)
    panel.load_from_store(store, JOB)  # type: ignore[arg-type]
    assert store.first_read.wait(10)
    panel.load_from_store(store, JOB)  # asked again before the first answer came
    qtbot.waitUntil(lambda: len(answers) == 1)  # the first answer: dropped
    assert panel.is_loading(JOB) and panel.metric_names == []
    with qtbot.waitSignal(panel.sig_loaded, timeout=10_000):
        store.release.set()
    assert loaded == [JOB]
    assert panel.series(JOB, "algo-1", "loss").n == 30


# -- legend and log axes ----------------------------------------------------------------------


def compare(panel: MetricsPanel, runs: int) -> list[str]:
    jobs = [f"job-{i}" for i in range(runs)]
    panel.set_jobs(jobs, {j: f"run {i}" for i, j in enumerate(jobs)})
    for k, job in enumerate(jobs):
        panel.add_samples(
            job, [MetricSample("loss", (k + 1) / i, "algo-1", 1000.0 + i, i) for i in range(1, 60)]
        )
    panel.redraw()
    return jobs


def test_the_compare_legend_sits_above_the_plots_not_over_them(
    panel: MetricsPanel, qtbot: QtBot, tmp_path: Path
) -> None:
    compare(panel, 3)
    legend, plot = panel.legend, panel.plot_widget("loss")
    qtbot.waitUntil(lambda: plot.width() > 200)  # laid out
    assert legend.is_open() and all(e.isVisible() for e in legend.entries)
    assert [e.toolTip() for e in legend.entries] == [f"run {i} · algo-1" for i in range(3)]
    top = legend.mapTo(panel, legend.rect().bottomLeft()).y()
    assert plot.mapTo(panel, plot.rect().topLeft()).y() > top  # under it, not under the curves
    assert panel.plot("loss").item.legend is None
    # A plot exported alone carries its own legend, for that picture only.
    with panel.plot("loss").exported_legend():
        assert panel.plot("loss").item.legend is not None
    panel.export_png(tmp_path / "loss.png", "loss")
    assert panel.plot("loss").item.legend is None
    panel.set_jobs(["job-0"])  # one series: nothing to tell apart
    panel.redraw()
    assert not legend.isVisible()


def test_with_many_runs_the_legend_starts_folded_and_opens_on_a_click(
    panel: MetricsPanel, qtbot: QtBot
) -> None:
    compare(panel, LEGEND_OPEN_MAX + 2)
    legend = panel.legend
    assert not legend.is_open()
    assert legend.toggle.text() == f"{LEGEND_OPEN_MAX + 2} series ▸"
    assert not any(e.isVisible() for e in legend.entries)
    folded = legend.height()
    qtbot.mouseClick(legend.toggle, Qt.MouseButton.LeftButton)
    assert all(e.isVisible() for e in legend.entries)
    qtbot.waitUntil(lambda: legend.height() > folded)
    qtbot.mouseClick(legend.toggle, Qt.MouseButton.LeftButton)
    assert not any(e.isVisible() for e in legend.entries)


def painted_labels(axis: object) -> list[tuple[QRectF, str]]:
    """The tick labels an axis paints: (rectangle, text)."""
    image = QImage(400, 400, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)  # type: ignore[attr-defined]
    finally:
        painter.end()
    return [(QRectF(rect), text) for rect, _flags, text in specs[2]]


@pytest.mark.parametrize(
    "values",
    [
        [0.03 + 0.97 * (1 - 1 / (i + 1)) for i in range(200)],  # accuracy: 0.03 .. 1
        [10.0 ** (k / 10) for k in range(-60, 61)],  # twelve decades
        [0.31 + i / 1000 for i in range(60)],  # less than a decade
    ],
)
def test_log_axis_labels_do_not_overlap(
    panel: MetricsPanel, qtbot: QtBot, values: list[float]
) -> None:
    panel.resize(700, 420)  # plots at their smallest height
    panel.add_samples(
        JOB, [MetricSample("m", v, "algo-1", 1000.0 + i, i + 1) for i, v in enumerate(values)]
    )
    panel.redraw()
    qtbot.mouseClick(panel.log_y_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.log_x_button, Qt.MouseButton.LeftButton)
    panel.redraw()
    plot = panel.plot("m")
    qtbot.waitUntil(lambda: plot.widget.width() > 250)  # laid out in the panel
    plot.widget.scene().prepareForPaint()
    for side in ("left", "bottom"):
        labels = painted_labels(plot.item.getAxis(side))
        assert len(labels) >= 2, (side, labels)
        rects = sorted((r for r, _ in labels), key=lambda r: (r.top(), r.left()))
        for a, b in itertools.pairwise(rects):
            assert not a.intersects(b), (side, [t for _, t in labels])
        shown = [label_value(t) for _, t in labels]
        assert shown == sorted(shown) or shown == sorted(shown, reverse=True)


def label_value(text: str) -> float:
    """A log axis label's value: "0.03", "10⁵", "2×10⁻⁶"."""
    if not any(c in "⁰¹²³⁴⁵⁶⁷⁸⁹⁻" for c in text):
        return float(text)
    mantissa, _, power = text.rpartition("10")
    exponent = int(power.translate(str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")))
    return float(mantissa.rstrip("×") or 1) * 10.0**exponent


def test_log_ticks_pick_what_fits() -> None:
    def at(lo: float, hi: float, pixels: float) -> list[float]:
        return [round(10**t, 9) for t in log_ticks(lo, hi, pixels, 24)]

    assert at(-3, 1, 180) == [0.001, 0.01, 0.1, 1, 10]  # the decades
    assert at(-1, 0, 180) == [0.1, 0.2, 0.5, 1]  # room for 1, 2, 5
    assert at(0, 12, 180) == [10.0**k for k in range(0, 13, 2)]  # every other decade
    assert at(-0.53, -0.05, 180) == [0.3, 0.4, 0.5, 0.6, 0.7]  # round values in a decade
    assert log_ticks(1, 1, 180, 24) == []


@pytest.mark.parametrize(
    ("fx", "fy"), [(0.95, 0.95), (0.05, 0.95), (0.05, 0.05), (0.95, 0.05), (0.6, 0.5)]
)
def test_the_hover_box_stays_inside_the_plot_wherever_the_mouse_is(
    panel: MetricsPanel, qtbot: QtBot, fx: float, fy: float
) -> None:
    panel.resize(520, 300)  # a narrow plot, as beside the Predict dock
    panel.add_samples(JOB, samples(10) + samples(10, host="algo-2", t0=2000.0))
    panel.redraw()
    qtbot.waitUntil(lambda: panel.plot("loss").item.vb.width() > 100)
    panel.redraw()
    plot = panel.plot("loss")
    seen: list[object] = []

    def settled() -> bool:  # the layout done: the same geometry and range on two looks
        seen.append((plot.item.vb.sceneBoundingRect(), plot.item.vb.viewRange()))
        return len(seen) > 1 and seen[-1] == seen[-2]

    qtbot.waitUntil(settled, timeout=10_000)
    (x0, x1), (y0, y1) = plot.item.vb.viewRange()
    move_mouse_to(qtbot, panel, "loss", x0 + (x1 - x0) * fx, y0 + (y1 - y0) * fy)
    qtbot.waitUntil(lambda: plot.label.isVisible(), timeout=10_000)

    def box_and_area() -> tuple[QRectF, QRectF]:
        box = plot.label.mapRectToScene(plot.label.boundingRect())
        return box, plot.item.vb.sceneBoundingRect()

    # The text item fits its transform to the view when it is painted: a box shown a moment
    # ago may still be in view units (thousands of pixels tall) until the next paint.
    with contextlib.suppress(qtbot.TimeoutError):
        qtbot.waitUntil(lambda: box_and_area()[1].contains(box_and_area()[0]), timeout=5_000)
    box, area = box_and_area()
    assert area.contains(box), (box, area)
