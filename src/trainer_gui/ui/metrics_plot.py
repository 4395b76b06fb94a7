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
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
from PySide6.QtCore import (
    QEvent,
    QLineF,
    QObject,
    QRect,
    QRectF,
    QRunnable,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QBrush, QColor, QPainter, QPalette, QPen, QTransform
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGraphicsObject,
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
from shiboken6 import wrapInstance

from trainer_gui.services.live_data import MetricChunk, as_metric_chunk, overlap

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
PLOT_MIN_HEIGHT = 180  # two rows fit the metrics area of a 1366x768 window
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
RAW_ALPHA = 70  # the raw series behind a smoothed one (blended into the background once)
GRID_ALPHA = 0.25
LEVEL_FACTOR = 64  # raw points per bin on the first pyramid level, and bins per bin on the next
LEVEL_MIN_BINS = 4096  # a coarser level is kept once it would have this many bins
LINE_POINTS_PER_PIXEL = 2  # up to this many points per pixel column a series is drawn as a line
BINS_PER_COLUMN = 8  # a pyramid level serves pixel columns at least this many of its bins wide
NICE_STEPS = 20  # auto-range snaps to 1/20 of the span, so axes change every ~5% of growth

SeriesKey = tuple[str, str, str]  # (job_id, host, metric)
T = TypeVar("T")


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

    Kept up to date incrementally as points arrive, so the min/max of each pixel column of a
    million-point series (peak downsampling: every spike stays visible) costs a few thousand
    operations per redraw instead of a million. NaN is ignored inside a bin.
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

    def column_minmax(
        self, y: FloatArray, n: int, starts: np.ndarray, end: int
    ) -> tuple[np.ndarray, FloatArray, FloatArray]:
        """Min and max of `y` per column: column k is `y[starts[k]:starts[k + 1]]`, the last
        one ends at `end`. Returns (the column starts used, mins, maxes); NaN is ignored.

        Columns many bins wide are reduced from the coarsest level that still has at least
        `BINS_PER_COLUMN` bins per column, their edges moved to the nearest bin edge (under
        1/16 of a column: less than a pixel), so the cost is O(columns + bins), not O(points).
        """
        self.update(y, n)
        widths = np.diff(starts, append=end)
        narrowest = int(widths.min()) if len(widths) else 0
        level = -1
        for index, size in enumerate(self.bins):
            if narrowest >= BINS_PER_COLUMN * size and self.count[index] >= 2:
                level = index
        with np.errstate(invalid="ignore"):
            if level >= 0:
                size, done = self.bins[level], self.count[level]
                edges = _strictly_increasing(
                    np.clip((np.append(starts, end) + size // 2) // size, 0, done)
                )
                if len(edges) >= 2:
                    first, last = edges[:-1], int(edges[-1])
                    lo = np.fmin.reduceat(self.lo[level][:last], first)
                    hi = np.fmax.reduceat(self.hi[level][:last], first)
                    if end > done * size and last == done:  # the incomplete bins, from raw points
                        tail = y[done * size : end]
                        lo[-1] = np.fmin(lo[-1], np.fmin.reduce(tail))
                        hi[-1] = np.fmax(hi[-1], np.fmax.reduce(tail))
                    return first * size, lo, hi
            segment = y[:end]
            return starts, np.fmin.reduceat(segment, starts), np.fmax.reduceat(segment, starts)


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
    return as_metric_chunk(samples).columns


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


class PlotGrid(QGraphicsObject):
    """Grid lines at the axes' major ticks, under the curves, as one-pixel filled rectangles.

    pyqtgraph's own grid strokes translucent lines across the whole view from each axis, which
    costs about as much to paint as a dense curve; whole-pixel rectangles in one opaque colour
    (the translucent one, blended into the background) cost a tenth of that.
    """

    def __init__(self, plot_item: Any, color: QColor) -> None:
        super().__init__()
        self._item = plot_item
        self._brush = QBrush(color)
        self._key: tuple[Any, ...] = ()
        self._lines: tuple[list[float], list[float]] = ([], [])
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setZValue(-1e6 + 1)  # above the view's background, below everything else
        self.setParentItem(plot_item.vb)
        plot_item.vb.sigRangeChanged.connect(self._on_range_changed)
        plot_item.vb.sigResized.connect(self._on_resized)

    def set_color(self, color: QColor) -> None:
        self._brush = QBrush(color)
        self.update()

    @Slot(object, object, object)
    def _on_range_changed(self, *_args: object) -> None:
        self.update()

    @Slot(object)
    def _on_resized(self, *_args: object) -> None:
        self.prepareGeometryChange()
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(self._item.vb.rect())

    def lines(self) -> tuple[list[float], list[float]]:
        """(x, y) of the grid lines in this item's pixels: the major ticks in view."""
        vb = self._item.vb
        rect = vb.rect()
        (x0, x1), (y0, y1) = vb.viewRange()
        axes = (self._item.getAxis("bottom"), self._item.getAxis("left"))
        key = (
            x0,
            x1,
            y0,
            y1,
            rect.width(),
            rect.height(),
            *map(id, axes),
            *(a.logMode for a in axes),
        )
        if key == self._key:
            return self._lines
        out: list[list[float]] = []
        for side, lo, hi, length in (
            ("bottom", x0, x1, rect.width()),
            ("left", y0, y1, rect.height()),
        ):
            axis = self._item.getAxis(side)
            if hi <= lo or length <= 0 or not axis.isVisible():
                out.append([])
                continue
            levels = axis.tickValues(lo, hi, length)
            ticks = levels[0][1] if levels else []
            if side == "bottom":
                out.append([(v - lo) / (hi - lo) * length for v in ticks if lo <= v <= hi])
            else:
                out.append([(hi - v) / (hi - lo) * length for v in ticks if lo <= v <= hi])
        self._key, self._lines = key, (out[0], out[1])
        return self._lines

    def paint(self, painter: QPainter, *_args: Any) -> None:
        xs, ys = self.lines()
        if not xs and not ys:
            return
        rect = self._item.vb.rect()
        t = painter.transform()
        if t.type().value > QTransform.TransformationType.TxScale.value:  # pragma: no cover
            return
        width, height = rect.width() * t.m11(), rect.height() * t.m22()
        rows = [(float(math.floor(x * t.m11() + t.dx())), t.dy(), 0.0, height) for x in xs]
        rows += [(t.dx(), float(math.floor(y * t.m22() + t.dy())), width, 0.0) for y in ys]
        arr = np.array(rows, dtype=np.float64)
        # QRect keeps inclusive corners: (x, y, x + w - 1, y + h - 1), at least one pixel.
        arr[:, 2] = np.maximum(arr[:, 0] + np.maximum(arr[:, 2], 1.0) - 1.0, arr[:, 0])
        arr[:, 3] = np.maximum(arr[:, 1] + np.maximum(arr[:, 3], 1.0) - 1.0, arr[:, 1])
        ints = np.ascontiguousarray(np.clip(arr, -1e6, 1e6), dtype=np.int32)
        painter.save()
        painter.resetTransform()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._brush)
        painter.drawRects(_qt_array(ints, QRect), len(ints))
        painter.restore()


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


def _nice_step(span: float) -> float:
    """The 1, 2 or 5 times a power of ten nearest above `span`."""
    exponent = math.floor(math.log10(span))
    for factor in (1.0, 2.0, 5.0, 10.0):
        step = factor * 10.0**exponent
        if step >= span:
            return step
    return 10.0 ** (exponent + 1)


def snap_bounds(lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) widened to multiples of a round step of about 1/20 of the span.

    Auto-range fits these instead of the exact extremes, so a growing series moves its axes
    (new ticks, new labels, a repaint of both) once per ~5% of growth, not on every redraw.
    """
    span = hi - lo
    if not (math.isfinite(lo) and math.isfinite(hi)) or span <= 0:
        return lo, hi
    step = _nice_step(span / NICE_STEPS)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def _qt_array(rows: np.ndarray, kind: type[T]) -> T:
    """`rows` (C-contiguous, one row per item, the item's own memory layout) as a pointer to
    its first `kind`, for QPainter's draw*(pointer, count) calls: no per-item objects."""
    return cast(T, wrapInstance(rows.ctypes.data, kind))


def _strictly_increasing(values: np.ndarray) -> np.ndarray:
    """A sorted array without its repeats (np.unique without the sort)."""
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.greater(values[1:], values[:-1], out=keep[1:])
    return values if keep.all() else values[keep]


def _log10(values: FloatArray) -> FloatArray:
    """log10 for a log axis: values <= 0 (and NaN) become NaN, which is not drawn."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(values)
    out[~np.isfinite(out)] = np.nan
    return out


def _nan_bounds(values: FloatArray) -> tuple[float, float]:
    finite = values[np.isfinite(values)] if not np.isfinite(values).all() else values
    if not len(finite):
        return math.nan, math.nan
    return float(finite.min()), float(finite.max())


class SeriesCurve(QGraphicsObject):
    """One series on a plot: a line where points are sparse, per-pixel-column bars where dense.

    The panel hands over either points (`set_line`) or, for a series with more points than
    pixels, each pixel column's min and max (`set_band`, extended to meet the neighbouring
    columns, as a line through the points would). A column is painted as one filled rectangle
    in device pixels, which the raster engine fills span by span, where the same picture drawn
    as pyqtgraph's peak zig-zag costs a cosmetic-pen stroke per pixel of twice the length.
    Coordinates are view coordinates (log10 already applied on a log axis).
    """

    def __init__(self, view_box: Any, color: QColor, name: str = "") -> None:
        super().__init__()
        pen = QPen(color)
        pen.setWidth(1)
        pen.setCosmetic(True)
        # `opts` is what pyqtgraph's legend reads to draw the sample line.
        self.opts: dict[str, Any] = {"pen": pen, "name": name, "symbol": None, "antialias": False}
        self.log_mode = (False, False)
        self._view_box = view_box
        self._brush = QBrush(color)
        self._segments = np.empty((0, 4))
        self._band = False
        self._edges = np.empty(0)
        self._lo = np.empty(0)
        self._hi = np.empty(0)
        self._bounds = (math.nan, math.nan, math.nan, math.nan)
        self._snapped: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._rect = QRectF()

    # -- data -------------------------------------------------------------------------------

    def name(self) -> str:
        return str(self.opts["name"])

    def set_color(self, color: QColor) -> None:
        self.opts["pen"].setColor(color)
        self._brush = QBrush(color)
        self.update()

    def set_line(self, x: FloatArray, y: FloatArray) -> None:
        """Draw the points joined by straight lines; NaN breaks the line."""
        m = len(x)
        seg = np.empty((max(m - 1, 1 if m else 0), 4))
        if m == 1:
            seg[0] = (x[0], y[0], x[0], y[0])
        elif m:
            seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3] = x[:-1], y[:-1], x[1:], y[1:]
        finite = np.isfinite(seg).all(axis=1)
        self._segments = seg if finite.all() else np.ascontiguousarray(seg[finite])
        self._band = False
        self._edges = self._lo = self._hi = np.empty(0)
        self._set_bounds(*_nan_bounds(x), *_nan_bounds(y))

    def set_band(self, edges: FloatArray, lo: FloatArray, hi: FloatArray) -> None:
        """Draw column k from x = edges[k] to edges[k + 1], y from lo[k] to hi[k]."""
        self._band = True
        self._segments = np.empty((0, 4))
        self._edges, self._lo, self._hi = edges, lo, hi
        ylo, _ = _nan_bounds(lo)
        _, yhi = _nan_bounds(hi)
        self._set_bounds(float(edges[0]), float(edges[-1]), ylo, yhi)

    def clear(self) -> None:
        self.set_line(np.empty(0), np.empty(0))

    def drawn_points(self) -> tuple[FloatArray, FloatArray]:
        """What is drawn, as points: the line's points, or each column's (x, min), (x, max)."""
        seg = self._segments
        if self._band:
            return np.repeat(self._edges[:-1], 2), np.column_stack([self._lo, self._hi]).ravel()
        if not len(seg):
            return np.empty(0), np.empty(0)
        return np.append(seg[:, 0], seg[-1, 2]), np.append(seg[:, 1], seg[-1, 3])

    def _set_bounds(self, x0: float, x1: float, y0: float, y1: float) -> None:
        bounds = (x0, x1, y0, y1)
        if bounds == self._bounds:
            self.update()
            return
        self.prepareGeometryChange()
        self._bounds = bounds
        if all(math.isfinite(v) for v in bounds):
            # A little margin: a line is one pixel wide and a column at least one pixel tall.
            pad_x = max((x1 - x0) * 0.01, abs(x0) * 1e-9, 1e-12)
            pad_y = max((y1 - y0) * 0.01, abs(y0) * 1e-9, 1e-12)
            self._rect = QRectF(x0 - pad_x, y0 - pad_y, x1 - x0 + 2 * pad_x, y1 - y0 + 2 * pad_y)
        else:
            self._rect = QRectF()
        snapped = None
        if math.isfinite(x0) and math.isfinite(y0):
            snapped = (snap_bounds(x0, x1), snap_bounds(y0, y1))
        if snapped != self._snapped:
            self._snapped = snapped
            self._view_box.itemBoundsChanged(self)  # auto-range refits (lazily, before paint)
        self.update()

    # -- what pyqtgraph's ViewBox and PlotItem ask --------------------------------------------

    def dataBounds(
        self, ax: int, frac: float = 1.0, orthoRange: Any = None
    ) -> tuple[float, float] | None:
        """Auto-range fits the snapped bounds (see `snap_bounds`)."""
        if self._snapped is None:
            return None
        return self._snapped[ax]

    def pixelPadding(self) -> float:
        return 1.0

    def setLogMode(self, x: bool, y: bool) -> None:
        """PlotItem calls this when its log mode changes; the panel re-sends the data."""
        self.log_mode = (bool(x), bool(y))

    # -- painting ---------------------------------------------------------------------------

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, *_args: Any) -> None:
        if self._band:
            self._paint_band(painter)
            return
        n = len(self._segments)
        if not n:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(self.opts["pen"])
        painter.drawLines(_qt_array(self._segments, QLineF), n)

    def _paint_band(self, painter: QPainter) -> None:
        count = len(self._lo)
        if not count:
            return
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._brush)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        t = painter.transform()
        if t.type().value > QTransform.TransformationType.TxScale.value:  # never in a plot
            rects = np.column_stack(
                [self._edges[:-1], self._lo, np.diff(self._edges), self._hi - self._lo]
            )
            rects = np.ascontiguousarray(rects[np.isfinite(rects).all(axis=1)])
            painter.drawRects(_qt_array(rects, QRectF), len(rects))
            return
        # Whole device pixels: integer rectangles take the raster engine's solid-fill path.
        sx, sy, dx, dy = t.m11(), t.m22(), t.dx(), t.dy()
        device = painter.device()
        limit = 4.0 + (max(device.width(), device.height()) if device is not None else 1e6)
        with np.errstate(invalid="ignore"):
            xs = np.clip(np.floor(self._edges * sx + dx), -4.0, limit)
            left = np.fmin(xs[:-1], xs[1:])
            right = np.fmax(np.fmax(xs[:-1], xs[1:]) - 1.0, left)  # QRect: inclusive edges
            ya, yb = self._lo * sy + dy, self._hi * sy + dy
            top = np.clip(np.floor(np.fmin(ya, yb)), -4.0, limit)
            bottom = np.clip(np.ceil(np.fmax(ya, yb)) - 1.0, top, limit)
        rects = np.column_stack([left, top, right, bottom])
        finite = np.isfinite(rects).all(axis=1)
        if not finite.all():
            rects = rects[finite]
        ints = np.ascontiguousarray(rects, dtype=np.int32)
        painter.save()
        painter.resetTransform()
        painter.drawRects(_qt_array(ints, QRect), len(ints))
        painter.restore()


class _MetricPlot(QObject):
    """One metric's plot: its curves (a shown one and a faint raw one per series) and hover."""

    def __init__(self, panel: MetricsPanel, metric: str = ""):
        super().__init__(panel)
        pg = panel.pg
        self.panel = panel
        self.metric = metric
        self.widget: Any = pg.PlotWidget(panel._grid_host)
        self.widget.hide()
        self.widget.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.item: Any = self.widget.getPlotItem()
        # The plot's colours follow the window's: its base colour behind, its text colour for
        # the axes and the title (pyqtgraph's own default is black whatever the theme).
        self.background = panel.palette().color(QPalette.ColorRole.Base)
        self.foreground = panel.palette().color(QPalette.ColorRole.Text)
        self.grid = PlotGrid(self.item, self.foreground)
        self.curves: dict[SeriesKey, SeriesCurve] = {}
        self.raw_curves: dict[SeriesKey, SeriesCurve] = {}
        self.windows: dict[SeriesKey, tuple[int, int, int]] = {}
        self.item.vb.sigXRangeChanged.connect(self._on_view_changed)
        self.item.vb.sigResized.connect(self._on_view_changed)
        self.item.ctrl.logXCheck.toggled.connect(self._on_log_changed)
        self.item.ctrl.logYCheck.toggled.connect(self._on_log_changed)
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
        self.set_colors(self.background, self.foreground)

    def set_title(self, metric: str) -> None:
        self.metric = metric
        self.item.setTitle(metric, color=self.foreground.name())

    def set_colors(self, background: QColor, foreground: QColor) -> None:
        """Background, axes, title, grid and faint raw curves in these colours."""
        self.background, self.foreground = QColor(background), QColor(foreground)
        self.widget.setBackground(self.background)
        for side in ("left", "bottom"):
            self._style_axis(self.item.getAxis(side))
        self.grid.set_color(_blend(self.foreground, self.background, GRID_ALPHA))
        for key, raw in self.raw_curves.items():
            shown = self.curves[key].opts["pen"].color()
            raw.set_color(_blend(shown, self.background, RAW_ALPHA / 255))
        if self.metric:
            self.set_title(self.metric)
        if self.item.legend is not None:
            self._style_legend(self.item.legend)

    def _style_legend(self, legend: Any) -> None:
        legend.setLabelTextColor(self.foreground)
        behind = QColor(self.background)
        behind.setAlpha(200)
        legend.setBrush(behind)

    def _style_axis(self, axis: Any) -> None:
        # Grid and ticks on major steps only: minor grid lines cost more paint time than the
        # curves. Axes only ever widen, so changing tick labels do not re-layout the plot (and
        # paint it again). No automatic SI prefix: it re-renders the axis label (HTML) on
        # every range change.
        axis.setStyle(maxTickLevel=0, autoReduceTextSpace=False)
        axis.enableAutoSIPrefix(False)
        axis.setPen(self.foreground)
        axis.setTextPen(self.foreground)

    def make_axis(self, date: bool) -> Any:
        pg = self.panel.pg
        axis = pg.DateAxisItem("bottom") if date else pg.AxisItem("bottom")
        self._style_axis(axis)
        return axis

    @Slot(object)
    def _on_view_changed(self, *_args: object) -> None:
        self.panel._on_view_changed(self)

    @Slot(bool)
    def _on_log_changed(self, _on: bool) -> None:
        # Also from pyqtgraph's own context menu: the data goes over again, log10 applied.
        self.panel._dirty.update(self.curves)

    def log_mode(self) -> tuple[bool, bool]:
        return (self.item.ctrl.logXCheck.isChecked(), self.item.ctrl.logYCheck.isChecked())

    def ensure_curve(self, key: SeriesKey, name: str, color: str) -> None:
        if key in self.curves:
            return
        vb = self.item.vb
        # The raw series behind a smoothed one: its colour blended into the background once,
        # so it paints opaque (blending every pixel of a dense band costs several times more).
        faint = _blend(QColor(color), self.background, RAW_ALPHA / 255)
        raw = SeriesCurve(vb, faint)
        raw.setZValue(-1)
        raw.setVisible(False)
        self.item.addItem(raw)
        curve = SeriesCurve(vb, QColor(color), name)
        self.item.addItem(curve)
        self.curves[key] = curve
        self.raw_curves[key] = raw
        if len(self.curves) == 2 and self.item.legend is None:
            # A legend only once there is something to tell apart (it costs paint time).
            legend = self.item.addLegend(offset=(-10, 10))
            self._style_legend(legend)
            for other in self.curves.values():
                legend.addItem(other, other.name())
        elif self.item.legend is not None:
            self.item.legend.addItem(curve, name)

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


def _blend(color: QColor, background: QColor, alpha: float) -> QColor:
    """`color` drawn at `alpha` over `background`, as one opaque colour."""
    a, b = color, background
    return QColor(
        round(alpha * a.red() + (1.0 - alpha) * b.red()),
        round(alpha * a.green() + (1.0 - alpha) * b.green()),
        round(alpha * a.blue() + (1.0 - alpha) * b.blue()),
    )


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
        self._pending: dict[str, list[MetricChunk]] = {}
        self._generation = 0
        self._spare: _MetricPlot | None = None
        self._closing = False

        self._signals = _WorkerSignals(self)
        self._signals.sig_loaded.connect(self._on_loaded)
        self._signals.sig_csv_done.connect(self._on_csv_done)

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
        self._export_menu = QMenu(self.export_button)
        self._export_menu.aboutToShow.connect(self._fill_export_menu)
        self.export_button.setMenu(self._export_menu)
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
        bar.addWidget(self.export_button)

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
        QTimer.singleShot(0, self, self._prepare_spare)

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
        self._remove_empty_plots()
        if self._spare is None:
            QTimer.singleShot(0, self, self._prepare_spare)

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
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(job_id, host, metric)
            self._color(job_id, host)
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
        """Every metric with data (its plot may still be waiting for a redraw tick)."""
        return sorted({k[2] for k in self._series})

    def plot(self, metric: str) -> _MetricPlot:
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

    def hover_at(self, metric: str, view_x: float, view_y: float) -> str:
        """The read-out the crosshair shows for a mouse at (view_x, view_y) on `metric`'s plot."""
        return self._plots[metric].hover_at(view_x, view_y)

    def _add_plot(self, metric: str) -> _MetricPlot:
        """The plot of `metric` with a curve per series: the spare one if ready (see
        `_prepare_spare`), else built now."""
        plot, self._spare = self._spare or _MetricPlot(self), None
        plot.set_title(metric)
        plot.item.setLogMode(x=self._log_x, y=self._log_y)
        if self._x_mode == X_WALL:
            plot.item.setAxisItems({"bottom": plot.make_axis(date=True)})
        plot.item.setLabel("bottom", X_MODES[self._x_mode])
        self._plots[metric] = plot
        plot.widget.show()
        for key in self._series:
            if key[2] == metric:
                plot.ensure_curve(key, self._series_name(key), self._color(key[0], key[1]))
                self._dirty.add(key)
        self._relayout()
        return plot

    def _ensure_plots(self, budget: int | None = None) -> None:
        """Build the plots of metrics that have series but no plot yet, at most `budget`.

        Building one costs ~30 ms (pyqtgraph's PlotItem and its menus), so the redraw tick
        builds one at a time: five new metrics show within half a second, and the GUI
        thread never stalls for all five at once.
        """
        wanted = sorted({k[2] for k in self._series}.difference(self._plots))
        for metric in wanted[:budget]:
            self._add_plot(metric)

    @Slot()
    def _prepare_spare(self) -> None:
        """Build a plot before any metric needs it, so a job's first metric shows at once."""
        if self._spare is None and not self._closing:
            self._spare = _MetricPlot(self)

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
        for column in range(COLUMNS):  # equal widths, whatever each plot's size hint
            self._grid.setColumnStretch(column, 1)

    # -- drawing ----------------------------------------------------------------------------

    @Slot()
    def redraw(self) -> None:
        """Push changed series to their curves; the timer calls this at `REDRAW_HZ`."""
        if len(self._plots) < len({k[2] for k in self._series}):
            self._ensure_plots(budget=1)
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
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
            n = series.n
            x = series.x_values(self._x_mode, self._t0.get(key[0], 0.0))
            raw = series.value[:n]
            curve, raw_curve = plot.curves[key], plot.raw_curves[key]
            log = plot.log_mode()
            x_sorted = series.is_sorted(self._x_mode)
            window = self._window(plot, series, x, log[0])
            if smoothing > 0.0:
                shown = series.smoothed_values(smoothing)
                peaks = series.raw_peaks if series.constant else series.smooth_peaks
                self._hand_over(raw_curve, series.raw_peaks, x, raw, n, window, log, x_sorted)
                raw_curve.setVisible(True)
            else:
                shown, peaks = raw, series.raw_peaks
                if raw_curve.isVisible():
                    raw_curve.setVisible(False)
                    raw_curve.clear()
            self._hand_over(curve, peaks, x, shown, n, window, log, x_sorted)
            self._shown[key] = (x, shown, x_sorted)
            plot.windows[key] = window
            touched.add(key[2])
        for metric in touched:
            # Settle auto-range and axes now: left to the paint itself, they change the view
            # during the paint and cost a second paint of the plot.
            self._plots[metric].widget.scene().prepareForPaint()

    def _window(
        self, plot: _MetricPlot, series: Series, x: FloatArray, log_x: bool
    ) -> tuple[int, int, int]:
        """(i0, i1, pixel columns): the raw index range to hand over and its width on screen.

        The whole series while the plot follows its data; once the user zoomed in, the visible
        x range plus one view width either side (so a pan redraws only when it leaves that).
        """
        n = series.n
        vb = plot.item.vb
        pixels = max(100, int(vb.width()))
        if vb.autoRangeEnabled()[0] or not series.is_sorted(self._x_mode) or n < 2:
            return (0, n, pixels)
        (v0, v1), _ = vb.viewRange()
        span = v1 - v0
        lo, hi = v0 - span, v1 + span
        if log_x:
            lo, hi = 10.0**lo, 10.0**hi
        i0, i1 = (int(i) for i in np.searchsorted(x, [lo, hi]))
        i0, i1 = max(0, i0 - 1), min(n, i1 + 1)
        if i1 - i0 < 2:
            return (i0, i1, pixels)
        a, b = float(x[i0]), float(x[i1 - 1])
        if log_x:
            a, b = (math.log10(v) if v > 0 else v0 for v in (a, b))
        return (i0, i1, max(1, min(4 * pixels, math.ceil(pixels * (b - a) / max(span, 1e-300)))))

    def _hand_over(
        self,
        curve: SeriesCurve,
        peaks: PeakPyramid,
        x: FloatArray,
        y: FloatArray,
        n: int,
        window: tuple[int, int, int],
        log: tuple[bool, bool],
        x_sorted: bool,
    ) -> None:
        """Give `curve` the points of `window`, or per pixel column their min and max."""
        i0, i1, columns = window
        log_x, log_y = log
        sorted_x = x_sorted and bool(np.isfinite(x[[i0, i1 - 1]]).all()) if i1 > i0 else True
        if log_x and sorted_x and i1 > i0 and x[i0] <= 0:  # no place for x <= 0 on a log axis
            i0 = max(i0, int(np.searchsorted(x[:i1], 0.0, side="right")))
        if i1 - i0 <= LINE_POINTS_PER_PIXEL * columns:
            xs, ys = x[i0:i1], y[i0:i1]
            curve.set_line(_log10(xs) if log_x else xs, _log10(ys) if log_y else ys)
            return
        if not sorted_x:
            # x goes back and forth (a step counter that restarted, say): columns of equal
            # point counts, drawn as the min/max zig-zag at each column's first x.
            starts = _strictly_increasing(np.linspace(i0, i1, columns + 1)[:-1].astype(np.intp))
            starts, lo, hi = peaks.column_minmax(y, n, starts, i1)
            xs = np.repeat(x[starts], 2)
            ys = np.column_stack([lo, hi]).ravel()
            curve.set_line(_log10(xs) if log_x else xs, _log10(ys) if log_y else ys)
            return
        a, b = float(x[i0]), float(x[i1 - 1])
        if log_x:
            edges = 10.0 ** np.linspace(math.log10(a), math.log10(b), columns + 1)
        else:
            edges = np.linspace(a, b, columns + 1)
        # Where each column starts; on a coarse sample of x when columns are wide (the
        # pyramid moves column edges to its bin edges anyway).
        stride = LEVEL_FACTOR if i1 - i0 >= BINS_PER_COLUMN * LEVEL_FACTOR * columns else 1
        base = -(-i0 // stride) * stride
        starts = np.searchsorted(x[base:i1:stride], edges[:-1], side="left") * stride + base
        starts[0] = i0
        starts = _strictly_increasing(np.minimum(starts, i1 - 1))
        starts, lo, hi = peaks.column_minmax(y, n, starts, i1)
        # Each column reaches its neighbour's range, as the line between them would.
        with np.errstate(invalid="ignore"):
            lo_j, hi_j = lo.copy(), hi.copy()
            lo_j[1:] = np.fmin(lo[1:], hi[:-1])
            hi_j[1:] = np.fmax(hi[1:], lo[:-1])
            missing = np.isnan(lo)
            lo_j[missing] = np.nan
            hi_j[missing] = np.nan
        xs = np.append(x[starts], b)
        if log_x:
            xs = _log10(xs)
        if log_y:
            hi_j = _log10(hi_j)
            lo_j = _log10(lo_j)
            lo_j = np.where(np.isnan(lo_j), hi_j, lo_j)
        curve.set_band(xs, lo_j, hi_j)

    def _on_view_changed(self, plot: _MetricPlot) -> None:
        """A pan, zoom or resize: redraw the series whose handed-over window no longer fits."""
        vb = plot.item.vb
        following = vb.autoRangeEnabled()[0]
        pixels = max(100, int(vb.width()))
        for key, old in plot.windows.items():
            series = self._series.get(key)
            if series is None or key in self._dirty:
                continue
            if following:
                if old[2] != pixels or old[1] - old[0] != series.n:
                    self._dirty.add(key)
                continue
            x = series.x_values(self._x_mode, self._t0.get(key[0], 0.0))
            new = self._window(plot, series, x, plot.log_mode()[0])
            if new[0] < old[0] or new[1] > old[1] or not 0.7 <= new[2] / max(old[2], 1) <= 1.4:
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
        self._ensure_plots()
        self._grid.activate()  # plots built just now get their size
        self.redraw()
        if metric is not None:
            exporter = self.pg.exporters.ImageExporter(self.plot(metric).item)
            exporter.export(str(path))
            return
        if not self._grid_host.grab().save(str(path)):
            raise OSError(f"could not write {path}")

    def export_csv(self, path: str | os.PathLike[str]) -> int:
        """Write all points of all series (job, host, metric, step, wall_time, value)."""
        return write_csv(path, self.all_series())

    @Slot()
    def _fill_export_menu(self) -> None:
        menu = self._export_menu
        menu.clear()
        everything = menu.addAction("PNG of all plots…")
        everything.triggered.connect(self._png_all_dialog)
        for metric in self.metric_names:
            action = menu.addAction(f"PNG of {metric}…")
            action.setData(metric)
            action.triggered.connect(self._png_one_dialog)
        menu.addSeparator()
        csv_action = menu.addAction("CSV of every point…")
        csv_action.setToolTip("job, host, metric, step, wall_time, value")
        csv_action.triggered.connect(self._csv_dialog)

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

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched
            palette = self.palette()
            base = palette.color(QPalette.ColorRole.Base)
            text = palette.color(QPalette.ColorRole.Text)
            for plot in [*self._plots.values(), *([self._spare] if self._spare else [])]:
                plot.set_colors(base, text)

    def closeEvent(self, event: Any) -> None:
        self._timer.stop()
        self._closing = True
        super().closeEvent(event)
