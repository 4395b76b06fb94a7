"""Live metric plots: one pyqtgraph plot per metric, one series per host (and per job overlaid).

Samples go into growable numpy buffers (the capacity doubles when full), every point is kept,
and nothing is drawn when samples arrive: a `QTimer` at `REDRAW_HZ` calls `setData` on the
curves whose series changed since the last tick. Curves are created once, with clip-to-view and
automatic peak downsampling, so a million-point series redraws in a few milliseconds.

Views are kept: a plot follows its data (auto-range) only until the user pans or zooms it, and
"Reset view" hands it back to auto-range.

pyqtgraph is imported when the first panel is built, not when this module is imported, so the
main window can import this module and still open fast.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.ui.bridge import drop_overlap

if TYPE_CHECKING:
    from types import ModuleType

    from numpy.typing import NDArray

    from trainer_gui.core.metrics.types import MetricSample
    from trainer_gui.core.store import Store

    FloatArray = NDArray[np.float64]

REDRAW_HZ = 10.0
MAX_SMOOTHING = 0.999
SLIDER_STEPS = 1000
INITIAL_CAPACITY = 256
PLOT_MIN_HEIGHT = 220
COLUMNS = 2
X_STEP = "step"
X_WALL = "wall"
X_RELATIVE = "relative"
X_MODES = {X_STEP: "Step", X_WALL: "Wall time", X_RELATIVE: "Relative time (s)"}
CSV_HEADER = ("job", "host", "metric", "step", "wall_time", "value")
# Tableau 10: distinct on light and dark backgrounds.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
RAW_ALPHA = 70  # the raw series behind a smoothed one
AUTO_DOWNSAMPLE_FACTOR = 1.0
# Series longer than this are handed to pyqtgraph pre-decimated (see `PeakPyramid`).
DECIMATE_ABOVE = 50_000
LEVEL_FACTOR = 64  # raw points per bin on the first level, and bins per bin on the next
LEVEL_MIN_BINS = 4096  # a coarser level is kept once it would have this many bins
BINS_PER_PIXEL = 4  # resolution asked of a level: bins across the visible range per pixel

SeriesKey = tuple[str, str, str]  # (job_id, host, metric)


def _pyqtgraph() -> ModuleType:
    """pyqtgraph, bound to PySide6 whatever else is installed (style-anchors 2.1)."""
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    import pyqtgraph
    import pyqtgraph.exporters  # registers the exporters used below

    return pyqtgraph


# -- smoothing -------------------------------------------------------------------------------


@dataclass
class EmaState:
    """Where a running EMA stands: the biased accumulator and how many finite values it saw."""

    last: float = 0.0
    count: int = 0


def ema_extend(values: FloatArray, weight: float, state: EmaState) -> FloatArray:
    """Smooth `values` continuing from `state` (updated in place), TensorBoard's way.

    TensorBoard's debiased exponential moving average, for each finite value v, with weight w
    in [0, 1) and n the number of finite values so far (including v)::

        last = last * w + (1 - w) * v          # last starts at 0
        smoothed = last / (1 - w ** n)         # debias: undo the pull towards the 0 start

    Non-finite values (NaN, inf) pass through unchanged and do not touch the average. w = 0 is
    "off" (smoothed == raw). Vectorised in blocks: inside a block of length B,
    last_i = w^(i+1) last + (1 - w) w^i cumsum(w^-k v_k), with B small enough that w^-B stays
    finite, so a million points take milliseconds rather than a Python loop.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    finite = np.isfinite(values)
    v = values[finite]
    m = len(v)
    if m == 0:
        return out
    if weight == 0.0:
        state.last = float(v[-1])
        state.count += m
        return out
    res = np.empty(m, dtype=np.float64)
    block = max(1, min(m, int(600.0 / -math.log(weight))))
    i = np.arange(block, dtype=np.float64)
    decay = np.power(weight, i)  # w^i
    grow = 1.0 / decay  # w^-i, at most e^600
    decay_next = decay * weight  # w^(i+1)
    last, count = state.last, state.count
    for start in range(0, m, block):
        chunk = v[start : start + block]
        k = len(chunk)
        acc = np.cumsum(chunk * grow[:k])
        lasts = decay_next[:k] * last + (1.0 - weight) * decay[:k] * acc
        res[start : start + k] = lasts / (1.0 - weight**count * decay_next[:k])
        last = float(lasts[-1])
        count += k
    state.last, state.count = last, count
    out[finite] = res
    return out


def ema_smooth(values: Sequence[float] | FloatArray, weight: float) -> FloatArray:
    """TensorBoard's smoothing of a whole series (see `ema_extend` for the formula).

    Like TensorBoard, a constant series is returned as is (debiasing would only add rounding).
    """
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 0 or bool(np.all(arr == arr[0])):
        return arr.copy()
    return ema_extend(arr, weight, EmaState())


# -- data ------------------------------------------------------------------------------------


class PeakPyramid:
    """Min/max of every bin of a growing array, on levels of 64, 4096, ... points per bin.

    The same picture as pyqtgraph's peak downsampling (each bin drawn as its min and max), kept
    up to date incrementally as points arrive, so redrawing a million-point series hands
    pyqtgraph a few thousand points instead of a million (its own bounds, clipping and
    downsampling passes are O(points) on every `setData`). NaN is ignored inside a bin.
    """

    def __init__(self) -> None:
        self.bins: list[int] = []  # raw points per bin, per level
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.count: list[int] = []  # complete bins per level

    def clear(self) -> None:
        self.bins, self.lo, self.hi, self.count = [], [], [], []

    def update(self, y: FloatArray, n: int) -> None:
        """Bring the complete bins up to date with `y[:n]` (appends only)."""
        level = 0
        while True:
            size = LEVEL_FACTOR ** (level + 1)
            if level == len(self.bins):
                if level > 0 and n // size < LEVEL_MIN_BINS:
                    return
                self.bins.append(size)
                self.lo.append(np.empty(0))
                self.hi.append(np.empty(0))
                self.count.append(0)
            done, total = self.count[level], n // size
            if total > done:
                if total > len(self.lo[level]):
                    cap = max(1024, 2 * total)
                    for arrays in (self.lo, self.hi):
                        grown = np.empty(cap)
                        grown[:done] = arrays[level][:done]
                        arrays[level] = grown
                if level == 0:
                    block = y[done * size : total * size].reshape(-1, size)
                    lo_src = hi_src = block
                else:
                    k = LEVEL_FACTOR
                    lo_src = self.lo[level - 1][done * k : total * k].reshape(-1, k)
                    hi_src = self.hi[level - 1][done * k : total * k].reshape(-1, k)
                with np.errstate(invalid="ignore"):
                    self.lo[level][done:total] = np.fmin.reduce(lo_src, axis=1)
                    self.hi[level][done:total] = np.fmax.reduce(hi_src, axis=1)
                self.count[level] = total
            level += 1

    def pick(self, visible: int, budget: int) -> int:
        """The finest level whose bins across `visible` points fit `budget`; -1 for raw."""
        if visible <= budget:
            return -1
        for level, size in enumerate(self.bins):
            if visible / size <= budget:
                return level
        return len(self.bins) - 1

    def display(
        self, level: int, x: FloatArray, y: FloatArray, n: int, i0: int, i1: int
    ) -> tuple[FloatArray, FloatArray]:
        """Points to draw for raw indices [i0, i1) at `level`: each bin as (x0, min), (x0, max)."""
        if level < 0:
            return x[i0:i1], y[i0:i1]
        size = self.bins[level]
        done = self.count[level]
        b0, b1 = i0 // size, min(done, -(-i1 // size))
        lo, hi = self.lo[level][b0:b1], self.hi[level][b0:b1]
        starts = np.arange(b0, b1) * size
        if i1 > done * size and n > done * size:  # the partial last bin, from the raw points
            tail = y[done * size : n]
            with np.errstate(invalid="ignore"):
                lo = np.append(lo, np.fmin.reduce(tail))
                hi = np.append(hi, np.fmax.reduce(tail))
            starts = np.append(starts, done * size)
        xs = np.repeat(x[starts], 2)
        ys = np.empty(2 * len(lo))
        ys[0::2] = lo
        ys[1::2] = hi
        return xs, ys


@dataclass
class Series:
    """All points of one (job, host, metric) series, in growable arrays (capacity doubles)."""

    job_id: str
    host: str
    metric: str
    n: int = 0
    step: FloatArray = field(default_factory=lambda: np.empty(0))  # NaN: the sample had none
    x_step: FloatArray = field(default_factory=lambda: np.empty(0))  # step, or the index
    wall: FloatArray = field(default_factory=lambda: np.empty(0))
    value: FloatArray = field(default_factory=lambda: np.empty(0))
    constant: bool = True
    finite: bool = True  # every x and y so far is finite: pyqtgraph may skip its own check
    x_sorted: bool = True
    wall_sorted: bool = True
    smoothed: FloatArray = field(default_factory=lambda: np.empty(0))
    ema: EmaState = field(default_factory=EmaState)
    ema_n: int = 0
    ema_weight: float = -1.0
    raw_peaks: PeakPyramid = field(default_factory=PeakPyramid)
    smooth_peaks: PeakPyramid = field(default_factory=PeakPyramid)

    @property
    def key(self) -> SeriesKey:
        return (self.job_id, self.host, self.metric)

    @property
    def capacity(self) -> int:
        return len(self.value)

    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        cap = max(INITIAL_CAPACITY, self.capacity)
        while cap < needed:
            cap *= 2
        for name in ("step", "x_step", "wall", "value", "smoothed"):
            old = getattr(self, name)
            new = np.empty(cap, dtype=np.float64)
            keep = self.n if name != "smoothed" else self.ema_n
            new[:keep] = old[:keep]
            setattr(self, name, new)

    def extend(self, steps: FloatArray, walls: FloatArray, values: FloatArray) -> None:
        """Append points; `steps` holds NaN where a sample had no step."""
        m = len(values)
        if m == 0:
            return
        n0, n1 = self.n, self.n + m
        self._grow(n1)
        index = np.arange(n0, n1, dtype=np.float64)
        x = np.where(np.isnan(steps), index, steps)
        if self.x_sorted:
            prev = self.x_step[n0 - 1] if n0 else -np.inf
            self.x_sorted = bool(x[0] >= prev and np.all(np.diff(x) >= 0))
        if self.wall_sorted:
            prev = self.wall[n0 - 1] if n0 else -np.inf
            self.wall_sorted = bool(walls[0] >= prev and np.all(np.diff(walls) >= 0))
        if self.finite:
            self.finite = bool(np.isfinite(values).all() and np.isfinite(walls).all())
        if self.constant:
            first = self.value[0] if n0 else values[0]
            self.constant = bool(np.all(values == first))
        self.step[n0:n1] = steps
        self.x_step[n0:n1] = x
        self.wall[n0:n1] = walls
        self.value[n0:n1] = values
        self.n = n1

    def smoothed_values(self, weight: float) -> FloatArray:
        """EMA of the values (see `ema_extend`), extended incrementally as points arrive."""
        n = self.n
        if self.constant or weight == 0.0:
            if self.ema_n:
                self.smooth_peaks.clear()
            self.ema_n, self.ema, self.ema_weight = 0, EmaState(), -1.0
            return self.value[:n]
        if weight != self.ema_weight:
            self.ema_n, self.ema, self.ema_weight = 0, EmaState(), weight
            self.smooth_peaks.clear()
        if self.ema_n < n:
            self.smoothed[self.ema_n : n] = ema_extend(self.value[self.ema_n : n], weight, self.ema)
            self.ema_n = n
        return self.smoothed[:n]

    def x_values(self, mode: str, t0: float) -> FloatArray:
        if mode == X_WALL:
            return self.wall[: self.n]
        if mode == X_RELATIVE:
            return self.wall[: self.n] - t0
        return self.x_step[: self.n]

    def is_sorted(self, mode: str) -> bool:
        return self.x_sorted if mode == X_STEP else self.wall_sorted


def samples_to_columns(
    samples: Iterable[MetricSample],
) -> dict[tuple[str, str], tuple[FloatArray, FloatArray, FloatArray]]:
    """Group samples by (host, metric) into (steps with NaN for none, wall times, values)."""
    items = samples if isinstance(samples, list) else list(samples)
    keys = {(s.host, s.name) for s in items}
    groups: dict[tuple[str, str], list[MetricSample]]
    if len(keys) == 1:  # the common case: one metric of one host per batch
        groups = {keys.pop(): items}
    else:
        groups = {}
        for s in items:
            groups.setdefault((s.host, s.name), []).append(s)
    nan = math.nan
    out = {}
    for key, group in groups.items():
        n = len(group)
        out[key] = (
            np.fromiter((nan if s.step is None else s.step for s in group), np.float64, n),
            np.fromiter((s.wall_time for s in group), np.float64, n),
            np.fromiter((nan if s.value is None else s.value for s in group), np.float64, n),
        )
    return out


def _point_key(step: float | None, wall: float, value: float | None) -> tuple[Any, ...]:
    # The store keeps NaN values as NULL and a missing step as NULL: compare them as None.
    return (
        None if step is None or step != step else float(step),
        float(wall),
        None if value is None or value != value else float(value),
    )


def _identity(item: tuple[Any, ...]) -> tuple[Any, ...]:
    return item


def _sample_key(s: MetricSample) -> tuple[Any, ...]:
    return _point_key(s.step, s.wall_time, s.value)


def write_csv(path: str | os.PathLike[str], series: Iterable[Series]) -> int:
    """Write every point of every series; returns the number of rows (header excluded)."""
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for s in series:
            n = s.n
            steps = s.step[:n].tolist()
            walls = s.wall[:n].tolist()
            values = s.value[:n].tolist()
            writer.writerows(
                (s.job_id, s.host, s.metric, "" if st != st else int(st), wt, va)
                for st, wt, va in zip(steps, walls, values, strict=True)
            )
            rows += n
    return rows


def _snapshot(s: Series) -> Series:
    n = s.n
    return Series(
        s.job_id,
        s.host,
        s.metric,
        n=n,
        step=s.step[:n].copy(),
        x_step=s.x_step[:n].copy(),
        wall=s.wall[:n].copy(),
        value=s.value[:n].copy(),
    )


# -- background work -------------------------------------------------------------------------


class _WorkerSignals(QObject):
    sig_loaded = Signal(int, str, object)
    """(generation, job_id, {(host, metric): (steps, wall times, values)})."""

    sig_csv_done = Signal(str, str)
    """(path, error message or "")."""


class _StoreLoader(QRunnable):
    def __init__(self, signals: _WorkerSignals, generation: int, store: Store, job_id: str):
        super().__init__()
        self._signals, self._generation, self._store, self._job_id = (
            signals,
            generation,
            store,
            job_id,
        )

    def run(self) -> None:
        try:
            rows = self._store.metric_samples(self._job_id)
            columns = samples_to_columns(s for _, s in rows)
            del rows
        except Exception:  # a failed read shows live samples only
            columns = {}
        with contextlib.suppress(RuntimeError):  # the panel went away while we read
            self._signals.sig_loaded.emit(self._generation, self._job_id, columns)


class _CsvWriter(QRunnable):
    def __init__(self, signals: _WorkerSignals, path: str, series: list[Series]):
        super().__init__()
        self._signals, self._path, self._series = signals, path, series

    def run(self) -> None:
        try:
            write_csv(self._path, self._series)
            error = ""
        except OSError as exc:
            error = str(exc)
        with contextlib.suppress(RuntimeError):
            self._signals.sig_csv_done.emit(self._path, error)


# -- widgets ---------------------------------------------------------------------------------


class _MetricPlot(QObject):
    """One metric's plot: its curves (a shown one and a faint raw one per series) and hover."""

    def __init__(self, panel: MetricsPanel, metric: str):
        super().__init__(panel)
        pg = panel.pg
        self.panel = panel
        self.metric = metric
        self.widget: Any = pg.PlotWidget(title=metric)
        self.widget.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.item: Any = self.widget.getPlotItem()
        self.item.showGrid(x=True, y=True, alpha=0.25)
        for side in ("left", "bottom"):
            # Grid and ticks on major steps only: minor grid lines cost more paint time than
            # the curves. Axes only ever widen, so changing tick labels do not re-layout the
            # plot (and paint it again) on every redraw.
            self.item.getAxis(side).setStyle(maxTickLevel=0, autoReduceTextSpace=False)
        self.item.setClipToView(True)
        self.item.setDownsampling(auto=True, mode="peak")
        self.curves: dict[SeriesKey, Any] = {}
        self.raw_curves: dict[SeriesKey, Any] = {}
        self.windows: dict[SeriesKey, tuple[int, int, int]] = {}
        self.item.vb.sigXRangeChanged.connect(self._on_view_changed)
        self.item.vb.sigStateChanged.connect(self._on_view_changed)
        pen = pg.mkPen((128, 128, 128), width=1)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self.label = pg.TextItem(anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150), color="w")
        for hover_item in (self.vline, self.hline, self.label):
            hover_item.setZValue(1000)
            hover_item.hide()
            self.item.addItem(hover_item, ignoreBounds=True)
        self.hover_text = ""
        self._proxy = pg.SignalProxy(self.widget.scene().sigMouseMoved, rateLimit=30)
        self._proxy.sigDelayed.connect(self._on_mouse_moved)

    def make_axis(self, date: bool) -> Any:
        pg = self.panel.pg
        axis = pg.DateAxisItem("bottom") if date else pg.AxisItem("bottom")
        axis.setStyle(maxTickLevel=0, autoReduceTextSpace=False)
        if self.item.getAxis("bottom").grid is not False:
            axis.setGrid(self.item.getAxis("bottom").grid)
        return axis

    @Slot(object)
    def _on_view_changed(self, *_args: object) -> None:
        self.panel._on_view_changed(self)

    def _configure(self, curve: Any) -> None:
        # After addItem, which copies the plot's own settings onto the curve.
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        # Peak downsampling keeps each bin's min and max, so one bin per pixel column draws
        # the same picture as pyqtgraph's default of five, with a fifth of the segments.
        curve.opts["autoDownsampleFactor"] = AUTO_DOWNSAMPLE_FACTOR
        # Separate segments: the raster engine's fast path for thin pens, no path stroking.
        curve.curve.setSegmentedLineMode("on")

    def ensure_curve(self, key: SeriesKey, name: str, color: str) -> None:
        if key in self.curves:
            return
        pg = self.panel.pg
        faint = QColor(color)
        faint.setAlpha(RAW_ALPHA)
        raw = pg.PlotDataItem(pen=pg.mkPen(faint, width=1))
        raw.setZValue(-1)
        self.item.addItem(raw)
        self._configure(raw)
        raw.setVisible(False)
        curve = pg.PlotDataItem(pen=pg.mkPen(color, width=1), name=name)
        self.item.addItem(curve)
        self._configure(curve)
        self.curves[key] = curve
        self.raw_curves[key] = raw
        if len(self.curves) == 2 and self.item.legend is None:
            # A legend only once there is something to tell apart (it costs paint time).
            legend = self.item.addLegend(offset=(-10, 10))
            for other in self.curves.values():
                legend.addItem(other, other.name())

    def remove_curve(self, key: SeriesKey) -> None:
        self.windows.pop(key, None)
        for curves in (self.curves, self.raw_curves):
            curve = curves.pop(key, None)
            if curve is not None:
                self.item.removeItem(curve)

    def rename_curve(self, key: SeriesKey, name: str) -> None:
        curve = self.curves.get(key)
        if curve is None or curve.name() == name:
            return
        legend = self.item.legend
        if legend is not None:
            legend.removeItem(curve)
        curve.opts["name"] = name
        if legend is not None:
            legend.addItem(curve, name)

    @Slot(object)
    def _on_mouse_moved(self, event: tuple[Any, ...]) -> None:
        pos = event[0]
        if not self.item.sceneBoundingRect().contains(pos):
            self.hide_hover()
            return
        point = self.item.vb.mapSceneToView(pos)
        self.hover_at(point.x(), point.y())

    def hide_hover(self) -> None:
        for hover_item in (self.vline, self.hline, self.label):
            hover_item.hide()
        self.hover_text = ""

    def hover_at(self, view_x: float, view_y: float) -> str:
        """Show the point nearest to (view_x, view_y) in view coordinates; returns the text."""
        best: tuple[float, float, float, float, float, str] | None = None
        log_x, log_y = self.item.ctrl.logXCheck.isChecked(), self.item.ctrl.logYCheck.isChecked()
        vb = self.item.vb
        (x0, x1), (y0, y1) = vb.viewRange()
        width = max(vb.width(), 1.0)
        height = max(vb.height(), 1.0)
        sx, sy = width / max(x1 - x0, 1e-300), height / max(y1 - y0, 1e-300)
        for key, curve in self.curves.items():
            if not curve.isVisible():
                continue
            data = self.panel._shown.get(key)
            if data is None or len(data[0]) == 0:
                continue
            x, y, is_sorted = data
            target = 10.0**view_x if log_x else view_x
            if is_sorted:
                i = int(np.searchsorted(x, target))
                candidates = [j for j in (i - 1, i) if 0 <= j < len(x)]
                idx = min(candidates, key=lambda j: abs(x[j] - target))
            else:
                idx = int(np.nanargmin(np.abs(x - target))) if np.isfinite(x).any() else 0
            px, py = float(x[idx]), float(y[idx])
            vx = math.log10(px) if log_x and px > 0 else px
            vy = math.log10(py) if log_y and py > 0 else py
            dist = math.hypot((vx - view_x) * sx, (vy - view_y) * sy)
            if not math.isfinite(dist):
                dist = math.inf
            if best is None or dist < best[0]:
                best = (dist, px, py, vx, vy, curve.name() or "")
        if best is None:
            self.hide_hover()
            return ""
        _, px, py, vx, vy, name = best
        text = f"{name}\nx = {_fmt(px)}\ny = {_fmt(py)}"
        self.vline.setPos(vx)
        self.hline.setPos(vy)
        self.label.setText(text)
        self.label.setPos(vx, vy)
        for hover_item in (self.vline, self.hline, self.label):
            hover_item.show()
        self.hover_text = text
        return text


def _fmt(v: float) -> str:
    return f"{v:.6g}"


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
        self.pg = _pyqtgraph()
        self._jobs: list[str] = []
        self._labels: dict[str, str] = {}
        self._series: dict[SeriesKey, Series] = {}
        self._plots: dict[str, _MetricPlot] = {}
        self._colors: dict[tuple[str, str], str] = {}
        self._t0: dict[str, float] = {}
        self._dirty: set[SeriesKey] = set()
        self._shown: dict[SeriesKey, tuple[FloatArray, FloatArray, bool]] = {}
        self._smoothing = 0.0
        self._x_mode = X_STEP
        self._log_x = False
        self._log_y = False
        self._load_generation: dict[str, int] = {}
        self._loading: set[str] = set()
        self._pending: dict[str, list[MetricSample]] = {}
        self._generation = 0

        self._signals = _WorkerSignals(self)
        self._signals.sig_loaded.connect(self._on_loaded)
        self._signals.sig_csv_done.connect(self._on_csv_done)

        # Controls.
        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal, self)
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
        self.png_button = QToolButton(self)
        self.png_button.setText("Export PNG")
        self.png_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self._png_menu = QMenu(self.png_button)
        self._png_menu.aboutToShow.connect(self._fill_png_menu)
        self.png_button.setMenu(self._png_menu)
        csv_button = QToolButton(self)
        csv_button.setText("Export CSV…")
        csv_button.setToolTip(
            "Every point of every series: job, host, metric, step, wall_time, value"
        )
        csv_button.clicked.connect(self._csv_dialog)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("Smoothing", self))
        bar.addWidget(self.smoothing_slider, 1)
        bar.addWidget(self.smoothing_label)
        bar.addWidget(QLabel("X axis", self))
        bar.addWidget(self.x_combo)
        bar.addWidget(self.log_x_button)
        bar.addWidget(self.log_y_button)
        bar.addWidget(reset)
        bar.addWidget(self.png_button)
        bar.addWidget(csv_button)

        self._grid_host = QWidget(self)
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self.placeholder = QLabel("No metrics yet", self._grid_host)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._grid.addWidget(self.placeholder, 0, 0)
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setWidget(self._grid_host)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.scroll_area, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(max(1, round(1000.0 / redraw_hz)))
        self._timer.timeout.connect(self.redraw)
        self._timer.start()

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
            self._plots[key[2]].rename_curve(key, self._series_name(key))
        self._remove_empty_plots()

    def clear(self) -> None:
        """Drop every series and plot (the job list stays)."""
        for key in list(self._series):
            self._drop_series(key)
        self._t0.clear()
        self._colors.clear()
        self._loading.clear()
        self._pending.clear()
        self._remove_empty_plots()

    def add_samples(self, job_id: str, samples: list[MetricSample]) -> None:
        """Append live samples; drawn at the next redraw tick. Other jobs' samples are ignored."""
        if job_id not in self._jobs or not samples:
            return
        if job_id in self._loading:
            self._pending.setdefault(job_id, []).extend(samples)
            return
        for (host, metric), cols in samples_to_columns(samples).items():
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
        loader = _StoreLoader(self._signals, self._generation, store, job_id)
        QThreadPool.globalInstance().start(loader)

    def is_loading(self, job_id: str | None = None) -> bool:
        return bool(self._loading) if job_id is None else job_id in self._loading

    @Slot(int, str, object)
    def _on_loaded(
        self,
        generation: int,
        job_id: str,
        columns: dict[tuple[str, str], tuple[FloatArray, FloatArray, FloatArray]],
    ) -> None:
        if self._load_generation.get(job_id) != generation or job_id not in self._loading:
            return
        self._loading.discard(job_id)
        for (host, metric), cols in sorted(columns.items()):
            self._extend(job_id, host, metric, *cols)
        # Live samples that came in meanwhile, minus those the read already returned: per
        # series, the longest head of the live ones that repeats the tail of the stored ones.
        pending = self._pending.pop(job_id, [])
        by_series: dict[tuple[str, str], list[MetricSample]] = {}
        for sample in pending:
            by_series.setdefault((sample.host, sample.name), []).append(sample)
        fresh: list[MetricSample] = []
        for (host, metric), items in by_series.items():
            series = self._series.get((job_id, host, metric))
            tail: list[tuple[Any, ...]] = []
            if series is not None:
                start = max(0, series.n - len(items))
                tail = [
                    _point_key(st, wt, va)
                    for st, wt, va in zip(
                        series.step[start : series.n].tolist(),
                        series.wall[start : series.n].tolist(),
                        series.value[start : series.n].tolist(),
                        strict=True,
                    )
                ]
            fresh.extend(drop_overlap(tail, items, _sample_key, loaded_key=_identity))
        if fresh:
            self.add_samples(job_id, fresh)
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
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(job_id, host, metric)
            plot = self._plots.get(metric) or self._add_plot(metric)
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
        self._series.pop(key, None)
        self._shown.pop(key, None)
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
        color = self._colors.get((job_id, host))
        if color is None:
            color = PALETTE[len(self._colors) % len(PALETTE)]
            self._colors[(job_id, host)] = color
        return color

    # -- plots ------------------------------------------------------------------------------

    @property
    def metric_names(self) -> list[str]:
        return sorted(self._plots)

    def plot_widget(self, metric: str) -> Any:
        """The pyqtgraph PlotWidget of `metric`."""
        return self._plots[metric].widget

    def curve(self, job_id: str, host: str, metric: str) -> Any:
        """The shown curve (smoothed when smoothing is on) of one series."""
        return self._plots[metric].curves[(job_id, host, metric)]

    def raw_curve(self, job_id: str, host: str, metric: str) -> Any:
        """The faint raw curve behind a smoothed one (hidden while smoothing is off)."""
        return self._plots[metric].raw_curves[(job_id, host, metric)]

    def series(self, job_id: str, host: str, metric: str) -> Series:
        return self._series[(job_id, host, metric)]

    def all_series(self) -> list[Series]:
        """Every series: jobs in `jobs` order, then host and metric."""
        order = {job: i for i, job in enumerate(self._jobs)}
        return [
            self._series[k]
            for k in sorted(self._series, key=lambda k: (order.get(k[0], len(order)), k[1], k[2]))
        ]

    def hover_at(self, metric: str, view_x: float, view_y: float) -> str:
        """The read-out the crosshair shows for a mouse at (view_x, view_y) on `metric`'s plot."""
        return self._plots[metric].hover_at(view_x, view_y)

    def _add_plot(self, metric: str) -> _MetricPlot:
        plot = _MetricPlot(self, metric)
        plot.item.setLogMode(x=self._log_x, y=self._log_y)
        if self._x_mode == X_WALL:
            plot.item.setAxisItems({"bottom": plot.make_axis(date=True)})
        plot.item.setLabel("bottom", X_MODES[self._x_mode])
        self._plots[metric] = plot
        self._relayout()
        return plot

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
        for plot in self._plots.values():
            self._grid.removeWidget(plot.widget)
        self._grid.removeWidget(self.placeholder)
        if not self._plots:
            self._grid.addWidget(self.placeholder, 0, 0)
            self.placeholder.show()
            return
        self.placeholder.hide()
        for i, metric in enumerate(sorted(self._plots)):
            self._grid.addWidget(self._plots[metric].widget, i // COLUMNS, i % COLUMNS)

    # -- drawing ----------------------------------------------------------------------------

    @Slot()
    def redraw(self) -> None:
        """Push changed series to their curves; the timer calls this at `REDRAW_HZ`."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        smoothing = self._smoothing
        touched: set[str] = set()
        for key in dirty:
            series = self._series.get(key)
            plot = self._plots.get(key[2])
            if series is None or plot is None:
                continue
            n = series.n
            x = series.x_values(self._x_mode, self._t0.get(key[0], 0.0))
            raw = series.value[:n]
            curve, raw_curve = plot.curves[key], plot.raw_curves[key]
            window = self._window(plot, series, x)
            if smoothing > 0.0:
                shown = series.smoothed_values(smoothing)
                peaks = series.raw_peaks if series.constant else series.smooth_peaks
                raw_curve.setData(
                    *self._decimate(series.raw_peaks, x, raw, n, window),
                    skipFiniteCheck=series.finite,
                )
                raw_curve.setVisible(True)
            else:
                shown, peaks = raw, series.raw_peaks
                if raw_curve.isVisible():
                    raw_curve.setVisible(False)
                    raw_curve.setData([], [])
            curve.setData(
                *self._decimate(peaks, x, shown, n, window), skipFiniteCheck=series.finite
            )
            self._shown[key] = (x, shown, series.is_sorted(self._x_mode))
            plot.windows[key] = window
            touched.add(key[2])
        for metric in touched:
            # Settle auto-range and axes now: left to the paint itself, they change the view
            # during the paint and cost a second paint of the plot.
            self._plots[metric].widget.scene().prepareForPaint()

    def _window(self, plot: _MetricPlot, series: Series, x: FloatArray) -> tuple[int, int, int]:
        """(i0, i1, visible points): the raw index range to hand over for the current view.

        Small series go whole. A big one goes whole while the plot follows its data, and as
        the visible x range plus one view width either side once the user zoomed in.
        """
        n = series.n
        vb = plot.item.vb
        if n <= DECIMATE_ABOVE or vb.autoRangeEnabled()[0] or not series.is_sorted(self._x_mode):
            return (0, n, n)
        (v0, v1), _ = vb.viewRange()
        if self._log_x:
            v0, v1 = 10.0**v0, 10.0**v1
        span = v1 - v0
        lo, a, b, hi = np.searchsorted(x, [v0 - span, v0, v1, v1 + span])
        return (max(0, int(lo) - 1), min(n, int(hi) + 1), max(1, int(b - a)))

    def _decimate(
        self,
        peaks: PeakPyramid,
        x: FloatArray,
        y: FloatArray,
        n: int,
        window: tuple[int, int, int],
    ) -> tuple[FloatArray, FloatArray]:
        i0, i1, visible = window
        if n <= DECIMATE_ABOVE:
            return x[i0:i1], y[i0:i1]
        peaks.update(y, n)
        budget = BINS_PER_PIXEL * max(100, int(self.width()))
        return peaks.display(peaks.pick(visible, budget), x, y, n, i0, i1)

    def _on_view_changed(self, plot: _MetricPlot) -> None:
        """A pan or zoom: refresh the big series whose handed-over window no longer fits."""
        budget = BINS_PER_PIXEL * max(100, int(self.width()))
        for key in plot.curves:
            series = self._series.get(key)
            old = plot.windows.get(key)
            if series is None or old is None or series.n <= DECIMATE_ABOVE or key in self._dirty:
                continue
            x = series.x_values(self._x_mode, self._t0.get(key[0], 0.0))
            new = self._window(plot, series, x)
            peaks = series.raw_peaks
            if (
                new[0] < old[0]
                or new[1] > old[1]
                or peaks.pick(new[2], budget) != peaks.pick(old[2], budget)
            ):
                self._dirty.add(key)

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
        was_wall = self._x_mode == X_WALL
        self._x_mode = mode
        for plot in self._plots.values():
            if mode == X_WALL:
                plot.item.setAxisItems({"bottom": plot.make_axis(date=True)})
            elif was_wall:
                plot.item.setAxisItems({"bottom": plot.make_axis(date=False)})
            plot.item.setLabel("bottom", X_MODES[mode])
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
        self.redraw()
        if metric is not None:
            exporter = self.pg.exporters.ImageExporter(self._plots[metric].item)
            exporter.export(str(path))
            return
        if not self._grid_host.grab().save(str(path)):
            raise OSError(f"could not write {path}")

    def export_csv(self, path: str | os.PathLike[str]) -> int:
        """Write all points of all series (job, host, metric, step, wall_time, value)."""
        return write_csv(path, self.all_series())

    @Slot()
    def _fill_png_menu(self) -> None:
        self._png_menu.clear()
        everything = self._png_menu.addAction("All plots…")
        everything.triggered.connect(self._png_all_dialog)
        if self._plots:
            self._png_menu.addSeparator()
        for metric in sorted(self._plots):
            action = self._png_menu.addAction(f"{metric}…")
            action.setData(metric)
            action.triggered.connect(self._png_one_dialog)

    @Slot()
    def _png_all_dialog(self) -> None:
        self._png_dialog(None)

    @Slot()
    def _png_one_dialog(self) -> None:
        action = self.sender()
        metric = action.data() if action is not None else None  # type: ignore[attr-defined]
        self._png_dialog(str(metric) if metric else None)

    def _png_dialog(self, metric: str | None) -> None:
        default = f"{self._jobs[0] if self._jobs else 'metrics'}-{metric or 'all'}.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export PNG", default, "PNG images (*.png)")
        if not path:
            return
        try:
            self.export_png(path, metric)
        except (OSError, KeyError) as exc:
            QMessageBox.warning(self, "Export PNG", f"Could not export {path}: {exc}")

    @Slot()
    def _csv_dialog(self) -> None:
        default = f"{self._jobs[0] if self._jobs else 'metrics'}.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export CSV", default, "CSV files (*.csv)")
        if not path:
            return
        snapshot = [_snapshot(s) for s in self.all_series()]
        QThreadPool.globalInstance().start(_CsvWriter(self._signals, path, snapshot))

    @Slot(str, str)
    def _on_csv_done(self, path: str, error: str) -> None:
        self.sig_csv_exported.emit(path, error)
        if error:
            QMessageBox.warning(self, "Export CSV", f"Could not export {path}: {error}")

    def closeEvent(self, event: Any) -> None:
        self._timer.stop()
        super().closeEvent(event)
