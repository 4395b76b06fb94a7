"""Live metric plots: one plot per metric, one series per host (and per job overlaid).

Samples go into growable numpy buffers (`trainer_gui.core.metrics.series.Series`, every point
kept), and nothing is drawn when samples arrive: a `QTimer` at `REDRAW_HZ` hands the curves
whose series changed since the last tick what to draw (`peak_downsample`: the points, or per
pixel column their min and max), so a million-point series redraws in a few milliseconds.
The timer draws one plot per tick, so the plots' repaints are spread out in time.

Views are kept: a plot follows its data (auto-range) only until the user pans or zooms it, and
"Reset view" hands it back to auto-range.

A series has the same colour in every plot, so one legend above the plots says which is which
(`SeriesLegend`), never over the curves; with more than `LEGEND_OPEN_MAX` series it starts
folded to one line ("12 series ▸"), and the hover read-out names the curve under the mouse.

pyqtgraph is imported when the first panel is built, not when this module is imported, so the
main window can import this module and still open fast.
"""

from __future__ import annotations

import html
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.metrics.series import (
    X_RELATIVE,
    X_STEP,
    X_WALL,
    Series,
    SeriesKey,
    write_csv,
)
from trainer_gui.core.naming import PALETTE, run_color, run_colors
from trainer_gui.core.runners.sysmetrics import is_system_metric
from trainer_gui.services.live_data import MetricChunk, as_metric_chunk, overlap
from trainer_gui.ui import gcguard
from trainer_gui.ui.flow_layout import FlowLayout
from trainer_gui.ui.plots.curve import SeriesCurve
from trainer_gui.ui.plots.export import ExportMenu
from trainer_gui.ui.plots.widget import MetricPlot, load_pyqtgraph
from trainer_gui.ui.tasks import run_task

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from trainer_gui.core.metrics.types import MetricSample
    from trainer_gui.core.store import Store

    FloatArray = NDArray[np.float64]
    StoreColumns = dict[tuple[str, str], tuple[FloatArray, FloatArray, FloatArray]]

log = logging.getLogger(__name__)

REDRAW_HZ = 10.0  # per plot
# The timer ticks this many times per redraw period and draws one plot a tick, the one that
# waited longest: the plots' repaints are spread over the period instead of all landing in
# one paint of the window (with the log's), which took 15-30 ms of the GUI thread at once.
TICKS_PER_REDRAW = 4
MAX_SMOOTHING = 0.999
SLIDER_STEPS = 1000
COLUMNS = 2
LEGEND_OPEN_MAX = 8  # more series than this: the legend starts folded
# Plots built ahead of need, one per event-loop turn while the panel is idle: a job's first
# metrics and its system readings (CPU, memory, GPU) arrive together, and building a plot
# then costs 25-35 ms of the GUI thread each (pyqtgraph's PlotItem and its menus).
SPARE_PLOTS = 4
SPARE_PACE_MS = 50  # between two spare plots built
SPARE_RETRY_MS = 1000  # samples are arriving: try again this much later
# A spare is built only after this long without samples: a job under a loaded machine pauses
# its output for a second now and then, and a spare built then (25-40 ms of the GUI thread
# there) was the longest stall of a flood.
SPARE_QUIET_S = 5.0
X_MODES = {X_STEP: "Step", X_WALL: "Wall time", X_RELATIVE: "Relative time (s)"}


def use_small_pages() -> None:
    """Turn off numpy's request for 2 MB pages (madvise) for its big arrays, in this process.

    A series grows into fresh memory a slice at a time; with huge pages the first write to
    each 2 MB faults all of it in at once, which took 50-200 ms of the GUI thread on the
    development VM (4 KB pages: a few milliseconds spread over the appends). What huge pages
    buy, fewer TLB misses in scans of big arrays, a plot of a few columns per pixel never needs.
    """
    for module in ("_core", "core"):  # numpy 2, numpy 1
        setter = getattr(getattr(np, module, None), "multiarray", None)
        setter = getattr(setter, "_set_madvise_hugepage", None)
        if setter is not None:
            try:
                setter(False)
            except Exception:  # a numpy without it: nothing to turn off
                log.debug("cannot turn off numpy's huge pages", exc_info=True)
            return


class SeriesLegend(QWidget):
    """Which colour is which run and host, once for all plots; folds to one button."""

    sig_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = FlowLayout(self, spacing=10)
        self.toggle = QToolButton(self)
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolTip("Show or hide which colour is which series")
        self.toggle.toggled.connect(self._on_toggled)
        self._layout.addWidget(self.toggle)
        self.entries: list[QLabel] = []
        self._shown: list[tuple[str, str]] = []
        self._chosen: bool | None = None  # the user's open/fold, once they clicked
        self.hide()

    def set_entries(self, entries: list[tuple[str, str]]) -> None:
        """(name, colour) per series; shown from two on (one needs no legend)."""
        if entries == self._shown:
            return
        self._shown = list(entries)
        for label in self.entries:
            self._layout.removeWidget(label)
            label.deleteLater()
        self.entries = []
        for name, color in entries:
            label = QLabel(
                f'<span style="color:{color}">&#9644;&#9644;</span>&nbsp;{html.escape(name)}',
                self,
            )
            label.setToolTip(name)
            self._layout.addWidget(label)
            self.entries.append(label)
        opened = self._chosen if self._chosen is not None else len(entries) <= LEGEND_OPEN_MAX
        self.toggle.blockSignals(True)
        self.toggle.setChecked(opened)
        self.toggle.blockSignals(False)
        self._apply(opened)
        self.setVisible(len(entries) >= 2)

    def is_open(self) -> bool:
        return self.toggle.isChecked()

    @Slot(bool)
    def _on_toggled(self, opened: bool) -> None:
        self._chosen = opened
        self._apply(opened)
        self.sig_toggled.emit(opened)

    def _apply(self, opened: bool) -> None:
        count = len(self.entries)
        self.toggle.setText("◂" if opened else f"{count} series ▸")
        for label in self.entries:
            label.setVisible(opened)
        self._layout.invalidate()


class MetricsPanel(QWidget):
    """Every metric of one job (or several jobs overlaid), plotted live.

    Typical wiring::

        panel.set_jobs([job_id])
        panel.load_from_store(store, job_id)            # history, read on a worker thread
        bridge.sig_metrics.connect(panel.add_samples)   # live samples

    Samples of jobs not in `set_jobs` are ignored.
    """

    sig_loaded = Signal(str)
    """(job_id): stored samples of the job are loaded and shown."""

    sig_csv_exported = Signal(str, str)
    """(path, error message or "") after a CSV export started from the button."""

    def __init__(self, parent: QWidget | None = None, redraw_hz: float = REDRAW_HZ):
        super().__init__(parent)
        self.pg = load_pyqtgraph()
        use_small_pages()
        self._jobs: list[str] = []
        self._labels: dict[str, str] = {}
        self._series: dict[SeriesKey, Series] = {}
        self._plots: dict[str, MetricPlot] = {}
        self._colors: dict[tuple[str, str], str] = {}
        self._t0: dict[str, float] = {}
        self._dirty: set[SeriesKey] = set()
        self._smoothing = 0.0
        self._x_mode = X_STEP
        self._log_x = False
        self._log_y = False
        self._load_generation: dict[str, int] = {}
        self._loading: set[str] = set()
        self._pending: dict[str, list[MetricChunk]] = {}
        self._generation = 0
        self._spares: list[MetricPlot] = []
        self._spare_pending = False
        self._held: list[MetricPlot] = []  # plots whose repaint waits for its tick
        self._last_sample = -math.inf  # time.monotonic() when samples last arrived
        self._closing = False

        # Controls.
        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.smoothing_slider.setMinimumWidth(90)
        self.smoothing_slider.setRange(0, int(MAX_SMOOTHING * SLIDER_STEPS))
        self.smoothing_slider.setToolTip(
            "Exponential moving average, as in TensorBoard (0 = off); the raw series stays "
            "faint behind the smoothed one"
        )
        self.smoothing_slider.valueChanged.connect(self._on_slider)
        self.smoothing_label = QLabel("0.000", self)
        self.x_combo = QComboBox(self)
        for mode, text in X_MODES.items():
            self.x_combo.addItem(text, mode)
        self.x_combo.currentIndexChanged.connect(self._on_x_combo)
        self.log_x_button = self._check_button("Log X", "Logarithmic x axis", self.set_log_x)
        self.log_y_button = self._check_button("Log Y", "Logarithmic y axis", self.set_log_y)
        reset = QToolButton(self)
        reset.setText("Reset view")
        reset.setToolTip("Fit every plot to its data and follow new points again")
        reset.clicked.connect(self.reset_view)
        # One "Export" menu (PNG of all plots or of one, CSV of every point): the bar shares
        # the width of a 1366-pixel window with the log's controls.
        self.export_button = QToolButton(self)
        self.export_button.setText("Export")
        self.export_button.setToolTip("Save the plots as PNG, or every point as CSV")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_menu = ExportMenu(self, self.export_button)
        self.export_menu.sig_csv_exported.connect(self.sig_csv_exported)
        self.export_button.setMenu(self.export_menu)
        # The bar wraps onto a second line rather than squeezing its buttons to "…" (a
        # 1280-pixel window with the Predict dock open leaves the plots ~300 pixels).
        self.controls = QWidget(self)
        bar = FlowLayout(self.controls, spacing=4)
        smoothing = QWidget(self.controls)
        smoothing.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        smoothing_layout = QHBoxLayout(smoothing)
        smoothing_layout.setContentsMargins(0, 0, 0, 0)
        smoothing_layout.addWidget(QLabel("Smoothing", smoothing))
        smoothing_layout.addWidget(self.smoothing_slider, 1)
        smoothing_layout.addWidget(self.smoothing_label)
        x_axis = QWidget(self.controls)
        x_layout = QHBoxLayout(x_axis)
        x_layout.setContentsMargins(0, 0, 0, 0)
        x_layout.addWidget(QLabel("X axis", x_axis))
        x_layout.addWidget(self.x_combo)
        for widget in (smoothing, x_axis, self.log_x_button, self.log_y_button, reset):
            bar.addWidget(widget)
        bar.addWidget(self.export_button)

        self._grid_host = QWidget(self)
        host_layout = QVBoxLayout(self._grid_host)
        host_layout.setContentsMargins(0, 0, 0, 0)
        # The legend scrolls with the plots and is in the PNG of all of them.
        self.legend = SeriesLegend(self._grid_host)
        host_layout.addWidget(self.legend)
        self._legend_dirty = False
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        host_layout.addLayout(self._grid, 1)
        self.placeholder = QLabel("No metrics yet", self._grid_host)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._grid.addWidget(self.placeholder, 0, 0, 1, COLUMNS)
        self.system_label = QLabel("<b>System</b> (CPU, memory, GPU per host)", self._grid_host)
        self.system_label.hide()
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setWidget(self._grid_host)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls)
        layout.addWidget(self.scroll_area, 1)

        self._timer = QTimer(self)
        self._redraw_period = 1.0 / redraw_hz
        self._drawn_at: dict[str, float] = {}  # metric -> time.monotonic() of its last draw
        self._timer.setInterval(max(1, round(1000.0 / (redraw_hz * TICKS_PER_REDRAW))))
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._schedule_spare(0)

    def _check_button(self, text: str, tip: str, slot: Any) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setCheckable(True)
        button.toggled.connect(slot)
        return button

    # -- jobs and data ----------------------------------------------------------------------

    @property
    def jobs(self) -> list[str]:
        """The jobs shown; the first is the primary one."""
        return list(self._jobs)

    def set_jobs(self, job_ids: list[str], labels: dict[str, str] | None = None) -> None:
        """Show these jobs (the first is primary); data of jobs no longer listed is dropped."""
        keep = list(dict.fromkeys(job_ids))
        self._labels = {j: (labels or {}).get(j, self._labels.get(j, j)) for j in keep}
        for key in [k for k in self._series if k[0] not in keep]:
            self._drop_series(key)
        for job in [j for j in self._t0 if j not in keep]:
            del self._t0[job]
        for job in [j for j in self._loading if j not in keep]:
            self._loading.discard(job)
            self._pending.pop(job, None)
        self._colors = {k: c for k, c in self._colors.items() if k[0] in keep}
        self._jobs = keep
        for key in self._series:
            if key[2] in self._plots:
                self._plots[key[2]].rename_curve(key, self._series_name(key))
        self._legend_dirty = True
        self._remove_empty_plots()
        self._schedule_spare(0)

    def clear(self) -> None:
        """Drop every series and plot (the job list stays)."""
        for key in list(self._series):
            self._drop_series(key)
        self._t0.clear()
        self._colors.clear()
        self._loading.clear()
        self._pending.clear()
        self._remove_empty_plots()

    def add_samples(self, job_id: str, samples: MetricChunk | Sequence[MetricSample]) -> None:
        """Append live samples; drawn at the next redraw tick. Other jobs' samples are ignored."""
        if job_id not in self._jobs or not len(samples):
            return
        chunk = as_metric_chunk(samples)
        if job_id in self._loading:
            self._pending.setdefault(job_id, []).append(chunk)
            return
        for (host, metric), cols in chunk.columns.items():
            self._extend(job_id, host, metric, *cols)

    def load_from_store(self, store: Store, job_id: str) -> None:
        """Replace the job's series with its stored samples, read on a worker thread.

        Live samples that arrive meanwhile are held and appended after the stored ones, minus
        any the read already returned.
        """
        if job_id not in self._jobs:
            self.set_jobs([*self._jobs, job_id])
        for key in [k for k in self._series if k[0] == job_id]:
            self._drop_series(key)
        self._remove_empty_plots()
        self._t0.pop(job_id, None)
        self._generation += 1
        self._load_generation[job_id] = self._generation
        self._loading.add(job_id)
        self._pending[job_id] = []
        generation = self._generation

        def read() -> tuple[int, str, StoreColumns]:  # worker thread
            try:
                rows = store.metric_samples(job_id)
                columns = as_metric_chunk([s for _, s in rows]).columns
            except Exception:
                log.warning("could not read the stored metrics of %s", job_id, exc_info=True)
                columns = {}  # a failed read shows live samples only
            return generation, job_id, columns

        run_task(read, self._on_loaded)

    def is_loading(self, job_id: str | None = None) -> bool:
        return bool(self._loading) if job_id is None else job_id in self._loading

    @Slot(object)
    def _on_loaded(self, result: tuple[int, str, StoreColumns]) -> None:
        generation, job_id, columns = result
        if self._load_generation.get(job_id) != generation or job_id not in self._loading:
            return
        self._loading.discard(job_id)
        for (host, metric), cols in sorted(columns.items()):
            self._extend(job_id, host, metric, *cols)
        # Live samples that came in meanwhile, minus those the read already returned: per
        # series, the longest head of the live ones that repeats the tail of the stored ones.
        pending = MetricChunk.merge(self._pending.pop(job_id, []))
        for (host, metric), cols in pending.columns.items():
            series = self._series.get((job_id, host, metric))
            if series is not None:
                n = series.n
                stored = (series.step[:n], series.wall[:n], series.value[:n])
                skip = overlap(stored, cols)
                cols = (cols[0][skip:], cols[1][skip:], cols[2][skip:])
            if len(cols[2]):
                self._extend(job_id, host, metric, *cols)
        self.sig_loaded.emit(job_id)

    def _extend(
        self,
        job_id: str,
        host: str,
        metric: str,
        steps: FloatArray,
        walls: FloatArray,
        values: FloatArray,
    ) -> None:
        key = (job_id, host, metric)
        self._last_sample = time.monotonic()
        gcguard.note_activity()  # a full GC waits until the samples stop (ui/gcguard.py)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(job_id, host, metric)
            self._color(job_id, host)
            self._legend_dirty = True
            plot = self._plots.get(metric)
            if plot is not None:
                plot.ensure_curve(key, self._series_name(key), self._color(job_id, host))
        series.extend(steps, walls, values)
        if len(walls):
            low = float(np.nanmin(walls)) if np.isfinite(walls).any() else math.nan
            old = self._t0.get(job_id)
            if math.isfinite(low) and (old is None or low < old):
                self._t0[job_id] = low
                if old is not None and self._x_mode == X_RELATIVE:
                    self._dirty.update(k for k in self._series if k[0] == job_id)
        self._dirty.add(key)

    def _drop_series(self, key: SeriesKey) -> None:
        self._legend_dirty = True
        self._series.pop(key, None)
        self._dirty.discard(key)
        plot = self._plots.get(key[2])
        if plot is not None:
            plot.remove_curve(key)

    def _series_name(self, key: SeriesKey) -> str:
        job_id, host, _ = key
        if len(self._jobs) > 1:
            return f"{self._labels.get(job_id, job_id)} · {host}"
        return host

    def _color(self, job_id: str, host: str) -> str:
        """A run's first host gets the run's own colour (`core.naming.run_colors`: the same in
        every view); further hosts, or a colour taken already, the next free one."""
        color = self._colors.get((job_id, host))
        if color is None:
            used = set(self._colors.values())
            own = run_colors(self._jobs or [job_id]).get(job_id, run_color(job_id))
            free = [c for c in PALETTE if c not in used]
            color = own if own not in used else (free[0] if free else own)
            self._colors[(job_id, host)] = color
        return color

    # -- plots ------------------------------------------------------------------------------

    @property
    def metric_names(self) -> list[str]:
        """Every metric with data (its plot may still be waiting for a redraw tick)."""
        return sorted({k[2] for k in self._series})

    def plot(self, metric: str) -> MetricPlot:
        """The plot of `metric`, built now if the redraw tick has not got to it yet."""
        if metric not in self._plots and any(k[2] == metric for k in self._series):
            self._add_plot(metric)
        return self._plots[metric]

    def plot_widget(self, metric: str) -> Any:
        """The pyqtgraph PlotWidget of `metric`."""
        return self.plot(metric).widget

    def curve(self, job_id: str, host: str, metric: str) -> SeriesCurve:
        """The shown curve (smoothed when smoothing is on) of one series."""
        return self.plot(metric).curves[(job_id, host, metric)]

    def raw_curve(self, job_id: str, host: str, metric: str) -> SeriesCurve:
        """The faint raw curve behind a smoothed one (hidden while smoothing is off)."""
        return self.plot(metric).raw_curves[(job_id, host, metric)]

    def series(self, job_id: str, host: str, metric: str) -> Series:
        return self._series[(job_id, host, metric)]

    def all_series(self) -> list[Series]:
        """Every series: jobs in `jobs` order, then host and metric."""
        order = {job: i for i, job in enumerate(self._jobs)}
        return [
            self._series[k]
            for k in sorted(self._series, key=lambda k: (order.get(k[0], len(order)), k[1], k[2]))
        ]

    def _new_plot(self) -> MetricPlot:
        plot = MetricPlot(self.pg, self._grid_host, self)
        plot.sig_view_changed.connect(self._on_view_changed)
        plot.sig_log_changed.connect(self._on_log_changed)
        return plot

    def _add_plot(self, metric: str, relayout: bool = True) -> MetricPlot:
        """The plot of `metric` with a curve per series: the spare one if ready (see
        `_prepare_spare`), else built now; placed in the grid unless `relayout` is False."""
        plot = self._spares.pop(0) if self._spares else self._new_plot()
        self._schedule_spare(SPARE_RETRY_MS)
        plot.set_title(metric)
        plot.item.setLogMode(x=self._log_x, y=self._log_y)
        plot.set_x_axis(X_MODES[self._x_mode], date=self._x_mode == X_WALL)
        self._plots[metric] = plot
        plot.widget.show()
        for key in self._series:
            if key[2] == metric:
                plot.ensure_curve(key, self._series_name(key), self._color(key[0], key[1]))
                self._dirty.add(key)
        if relayout:
            self._relayout()
        return plot

    def _ensure_plots(self, budget: int | None = None) -> None:
        """Build the plots of metrics that have series but no plot yet, at most `budget`.

        Building one costs ~30 ms (pyqtgraph's PlotItem and its menus), so the redraw tick
        builds one at a time unless spares are ready: five new metrics show within half a
        second, and the GUI thread never stalls for all five at once.
        """
        wanted = sorted({k[2] for k in self._series}.difference(self._plots))
        for metric in wanted[:budget]:
            self._add_plot(metric, relayout=False)
        if wanted[:budget]:
            self._relayout()  # once for all of them

    def _schedule_spare(self, delay_ms: int) -> None:
        if not self._spare_pending and len(self._spares) < SPARE_PLOTS and not self._closing:
            self._spare_pending = True
            QTimer.singleShot(delay_ms, self, self._prepare_spare)

    @Slot()
    def _prepare_spare(self) -> None:
        """Build one plot before any metric needs it (`SPARE_PLOTS` are kept), so a job's
        first metrics show at once; the next one in `SPARE_PACE_MS`. Only while no samples
        arrive: during a flood of them the GUI thread has no 30 ms to spare."""
        self._spare_pending = False
        if len(self._spares) >= SPARE_PLOTS or self._closing:
            return
        if time.monotonic() - self._last_sample < SPARE_QUIET_S:
            self._schedule_spare(SPARE_RETRY_MS)
            return
        self._spares.append(self._new_plot())
        if len(self._spares) >= SPARE_PLOTS:
            gcguard.refreeze()  # the spares' objects live long: out of the full GC's scans
        self._schedule_spare(SPARE_PACE_MS)

    def _remove_empty_plots(self) -> None:
        used = {k[2] for k in self._series}
        removed = False
        for metric in [m for m in self._plots if m not in used]:
            plot = self._plots.pop(metric)
            self._grid.removeWidget(plot.widget)
            plot.widget.setParent(None)
            plot.widget.deleteLater()
            plot.deleteLater()
            removed = True
        if removed:
            self._relayout()

    def _relayout(self) -> None:
        self._release_paints()  # the held ones may be gone now (removed plots)
        for plot in self._plots.values():
            self._grid.removeWidget(plot.widget)
        self._grid.removeWidget(self.placeholder)
        self._grid.removeWidget(self.system_label)
        self.system_label.hide()
        if not self._plots:
            self._grid.addWidget(self.placeholder, 0, 0, 1, COLUMNS)
            self.placeholder.show()
            return
        self.placeholder.hide()
        # Training metrics first; CPU, memory and GPU (`sys/`) in a section of their own.
        training = sorted(m for m in self._plots if not is_system_metric(m))
        system = sorted(m for m in self._plots if is_system_metric(m))
        for i, metric in enumerate(training):
            self._grid.addWidget(self._plots[metric].widget, i // COLUMNS, i % COLUMNS)
        row = -(-len(training) // COLUMNS)
        if system:
            self._grid.addWidget(self.system_label, row, 0, 1, COLUMNS)
            self.system_label.show()
        for i, metric in enumerate(system):
            self._grid.addWidget(self._plots[metric].widget, row + 1 + i // COLUMNS, i % COLUMNS)
        for column in range(COLUMNS):  # equal widths, whatever each plot's size hint
            self._grid.setColumnStretch(column, 1)
        self._hold_paints([self._plots[m] for m in (*training, *system)])

    def _hold_paints(self, plots: list[MetricPlot]) -> None:
        """Let the plots repaint one per timer tick, in this order, instead of all at once.

        A change of the grid resizes every plot, and Qt would repaint them all in one paint
        of the window (3-4 ms of the GUI thread each, 10-20 ms on a loaded machine, at the
        moment a job's system readings appear); held, each shows its previous picture until
        its tick (25 ms apart).
        """
        self._release_paints()
        if not self._timer.isActive():
            return
        for plot in plots:
            plot.widget.setUpdatesEnabled(False)
        self._held = list(plots)

    def _release_paints(self, count: int | None = None) -> None:
        """Let the first `count` held plots (every one with None) repaint."""
        release = self._held if count is None else self._held[:count]
        self._held = self._held[len(release) :]
        for plot in release:
            plot.widget.setUpdatesEnabled(True)  # and repaints it

    # -- drawing ----------------------------------------------------------------------------

    def legend_entries(self) -> list[tuple[str, str]]:
        """(name, colour) of each run and host shown, in `all_series` order."""
        seen: dict[tuple[str, str], tuple[str, str]] = {}
        for series in self.all_series():
            pair = (series.job_id, series.host)
            if pair not in seen:
                key = (series.job_id, series.host, series.metric)
                seen[pair] = (self._series_name(key), self._color(*pair))
        return list(seen.values())

    def _update_legend(self) -> None:
        self._legend_dirty = False
        self.legend.set_entries(self.legend_entries())

    def _prologue(self) -> bool:
        """The legend and the plots of new metrics; whether plots were added."""
        if self._legend_dirty:
            self._update_legend()
        if len(self._plots) < len({k[2] for k in self._series}):
            # The spares at once (~3 ms each): one change of the grid, one repaint of the
            # plots; at least one built from scratch.
            self._ensure_plots(budget=max(1, len(self._spares)))
            return True
        return False

    @Slot()
    def redraw(self) -> None:
        """Push every changed series to its curve now (the timer draws one plot a tick)."""
        self._prologue()
        self._release_paints()
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        self._draw(dirty)

    @Slot()
    def _tick(self) -> None:
        """The timer: the changed plot that waited longest, once `REDRAW_HZ` allows it.

        A tick that added plots draws nothing, and the ticks after it let the plots the new
        grid resized repaint one at a time (`_hold_paints`) before curves are drawn again.
        """
        if self._prologue():
            return
        if self._held:  # a held plot's repaint is this tick's work
            self._release_paints(1)
            return
        if not self._dirty:
            return
        waited: dict[str, float] = {}
        for key in self._dirty:
            if key[2] not in waited:
                waited[key[2]] = self._drawn_at.get(key[2], -math.inf)
        metric, last = min(waited.items(), key=lambda item: item[1])
        now = time.monotonic()
        if now - last < self._redraw_period:
            return
        keys = {key for key in self._dirty if key[2] == metric}
        self._dirty.difference_update(keys)
        self._drawn_at[metric] = now
        self._draw(keys)

    def _draw(self, dirty: set[SeriesKey]) -> None:
        smoothing = self._smoothing
        touched: set[str] = set()
        for key in dirty:
            series = self._series.get(key)
            plot = self._plots.get(key[2])
            if series is None:
                continue
            if plot is None:  # built on a later tick
                self._dirty.add(key)
                continue
            x = series.x_values(self._x_mode, self._t0.get(key[0], 0.0))
            plot.draw_series(key, series, x, series.is_sorted(self._x_mode), smoothing)
            touched.add(key[2])
        for metric in touched:
            # Settle auto-range and axes now: left to the paint itself, they change the view
            # during the paint and cost a second paint of the plot.
            self._plots[metric].widget.scene().prepareForPaint()

    @Slot(object)
    def _on_view_changed(self, plot: MetricPlot) -> None:
        """A pan, zoom or resize: redraw the series whose handed-over window no longer fits."""
        following = plot.following()
        pixels = plot.pixels()
        for key, old in plot.windows.items():
            series = self._series.get(key)
            if series is None or key in self._dirty:
                continue
            if following:
                if old[2] != pixels or old[1] - old[0] != series.n:
                    self._dirty.add(key)
                continue
            x = series.x_values(self._x_mode, self._t0.get(key[0], 0.0))
            new = plot.window(x, series.n, series.is_sorted(self._x_mode))
            if new[0] < old[0] or new[1] > old[1] or not 0.7 <= new[2] / max(old[2], 1) <= 1.4:
                self._dirty.add(key)

    @Slot(object)
    def _on_log_changed(self, plot: MetricPlot) -> None:
        self._dirty.update(plot.curves)

    def _mark_all_dirty(self) -> None:
        self._dirty.update(self._series)

    # -- controls ---------------------------------------------------------------------------

    @property
    def smoothing(self) -> float:
        return self._smoothing

    def set_smoothing(self, weight: float) -> None:
        """EMA weight in [0, 0.999]; 0 turns smoothing off."""
        weight = min(max(float(weight), 0.0), MAX_SMOOTHING)
        position = round(weight * SLIDER_STEPS)
        if self.smoothing_slider.value() != position:
            self.smoothing_slider.blockSignals(True)
            self.smoothing_slider.setValue(position)
            self.smoothing_slider.blockSignals(False)
        self._apply_smoothing(weight)

    @Slot(int)
    def _on_slider(self, position: int) -> None:
        self._apply_smoothing(position / SLIDER_STEPS)

    def _apply_smoothing(self, weight: float) -> None:
        self.smoothing_label.setText(f"{weight:.3f}")
        if weight != self._smoothing:
            self._smoothing = weight
            self._mark_all_dirty()

    @property
    def x_mode(self) -> str:
        return self._x_mode

    def set_x_mode(self, mode: str) -> None:
        """ "step" (index when a sample has no step), "wall" (clock time) or "relative" (s)."""
        if mode not in X_MODES:
            raise ValueError(f"x mode must be one of {sorted(X_MODES)}, got {mode!r}")
        index = self.x_combo.findData(mode)
        if self.x_combo.currentIndex() != index:
            self.x_combo.setCurrentIndex(index)  # calls back into _on_x_combo
            return
        if mode == self._x_mode:
            return
        self._x_mode = mode
        for plot in self._plots.values():
            plot.set_x_axis(X_MODES[mode], date=mode == X_WALL)
            plot.item.vb.enableAutoRange()  # a new x quantity: the old view means nothing
        self._mark_all_dirty()

    @Slot(int)
    def _on_x_combo(self, index: int) -> None:
        self.set_x_mode(str(self.x_combo.itemData(index)))

    @Slot(bool)
    def set_log_x(self, on: bool) -> None:
        self._set_log(on, self._log_y)

    @Slot(bool)
    def set_log_y(self, on: bool) -> None:
        self._set_log(self._log_x, on)

    def _set_log(self, log_x: bool, log_y: bool) -> None:
        self._log_x, self._log_y = log_x, log_y
        for button, on in ((self.log_x_button, log_x), (self.log_y_button, log_y)):
            if button.isChecked() != on:
                button.blockSignals(True)
                button.setChecked(on)
                button.blockSignals(False)
        for plot in self._plots.values():
            plot.item.setLogMode(x=log_x, y=log_y)
            plot.hide_hover()

    @property
    def log_mode(self) -> tuple[bool, bool]:
        return (self._log_x, self._log_y)

    @Slot()
    def reset_view(self) -> None:
        """Fit every plot to its data and follow new points again."""
        for plot in self._plots.values():
            plot.item.vb.enableAutoRange()
        self._mark_all_dirty()

    # -- export -----------------------------------------------------------------------------

    def export_png(self, path: str | os.PathLike[str], metric: str | None = None) -> None:
        """One plot (pyqtgraph's ImageExporter) or, with no metric, all plots in one image."""
        self._ensure_plots()
        self._grid.activate()  # plots built just now get their size
        self.redraw()
        if metric is not None:
            plot = self.plot(metric)
            with plot.exported_legend():
                exporter = self.pg.exporters.ImageExporter(plot.item)
                exporter.export(str(path))
            return
        if not self._grid_host.grab().save(str(path)):
            raise OSError(f"could not write {path}")

    def export_csv(self, path: str | os.PathLike[str]) -> int:
        """Write all points of all series (job, host, metric, step, wall_time, value)."""
        return write_csv(path, self.all_series())

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched
            palette = self.palette()
            base = palette.color(QPalette.ColorRole.Base)
            text = palette.color(QPalette.ColorRole.Text)
            for plot in [*self._plots.values(), *self._spares]:
                plot.set_colors(base, text)

    def closeEvent(self, event: Any) -> None:
        self._timer.stop()
        self._release_paints()
        self._closing = True
        super().closeEvent(event)
