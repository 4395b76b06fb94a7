"""One metric's plot: a pyqtgraph PlotWidget with a curve per series, its grid, and the hover
read-out (a crosshair and the nearest point's name, x and y).

No legend over the curves: a series has the same colour in every plot, so the panel shows one
legend above them all (`SeriesLegend` in panel.py); a plot gets its own only while it is
exported alone (`exported_legend`). Log axes label what fits (`log_ticks`): every decade's
1, 2 and 5 where there is room, the decades only, or every n-th decade.

pyqtgraph is passed in (see `load_pyqtgraph`), not imported here, so importing the plots does
not import it: the main window opens before pyqtgraph is loaded.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import MethodType
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QColor, QFontMetrics, QPalette
from PySide6.QtWidgets import QWidget

from trainer_gui.core.metrics.numerics import peak_downsample, visible_window
from trainer_gui.core.metrics.series import Series, SeriesKey
from trainer_gui.ui.plots.curve import PlotGrid, SeriesCurve

if TYPE_CHECKING:
    from types import ModuleType

    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

PLOT_MIN_HEIGHT = 180  # two rows fit the metrics area of a 1366x768 window
RAW_ALPHA = 70  # the raw series behind a smoothed one (blended into the background once)
GRID_ALPHA = 0.25
LOG_STEPS = ((1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 5), (1, 3), (1,))
"""Mantissas labelled in each decade of a log axis, densest first; the densest that fits wins."""

Window = tuple[int, int, int]
"""(i0, i1, pixel columns): the raw index range handed to a curve and its width on screen."""


def load_pyqtgraph() -> ModuleType:
    """pyqtgraph, bound to PySide6 whatever else is installed (style-anchors 2.1)."""
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    import pyqtgraph
    import pyqtgraph.exporters  # registers the exporters the panel uses

    return pyqtgraph


class MetricPlot(QObject):
    """One metric's plot: its curves (a shown one and a faint raw one per series) and hover.

    The panel decides what each curve shows; the plot tells it when its view changed (a pan,
    zoom or resize) or its log mode did (also from pyqtgraph's own context menu), since both
    call for the data to go over again.
    """

    sig_view_changed = Signal(object)
    """(this plot): its x range or size changed."""
    sig_log_changed = Signal(object)
    """(this plot): log x or log y was switched."""

    def __init__(self, pg: ModuleType, host: QWidget, parent: QWidget):
        """The plot widget goes into `host`; colours come from `parent`'s palette."""
        super().__init__(parent)
        self.pg = pg
        self.metric = ""
        self._date_axis = False
        self.widget: Any = pg.PlotWidget(host)
        self.widget.hide()
        self.widget.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.item: Any = self.widget.getPlotItem()
        # The plot's colours follow the window's: its base colour behind, its text colour for
        # the axes and the title (pyqtgraph's own default is black whatever the theme).
        self.background = parent.palette().color(QPalette.ColorRole.Base)
        self.foreground = parent.palette().color(QPalette.ColorRole.Text)
        self.grid = PlotGrid(self.item, self.foreground)
        self.curves: dict[SeriesKey, SeriesCurve] = {}
        self.raw_curves: dict[SeriesKey, SeriesCurve] = {}
        self.windows: dict[SeriesKey, Window] = {}
        self.shown: dict[SeriesKey, tuple[FloatArray, FloatArray, bool]] = {}
        """Per series, what its shown curve was given: (x, y, x is sorted), for the hover."""
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
        # The slot goes in the constructor: pyqtgraph's SignalProxy made without one drops every
        # signal it gets, so a slot connected afterwards never heard of the mouse.
        self._proxy = pg.SignalProxy(
            self.widget.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved
        )
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

    @contextmanager
    def exported_legend(self) -> Iterator[None]:
        """A legend on this plot while it is exported alone (on screen, the panel's legend
        says which colour is which)."""
        if len(self.curves) < 2 or self.item.legend is not None:
            yield
            return
        legend = self.item.addLegend(offset=(-10, 10))
        legend.setLabelTextColor(self.foreground)
        behind = QColor(self.background)
        behind.setAlpha(200)
        legend.setBrush(behind)
        for curve in self.curves.values():
            legend.addItem(curve, curve.name())
        try:
            yield
        finally:
            legend.clear()
            if legend.scene() is not None:
                legend.scene().removeItem(legend)
            self.item.legend = None

    def _style_axis(self, axis: Any) -> None:
        # Grid and ticks on major steps only: minor grid lines cost more paint time than the
        # curves. Axes only ever widen, so changing tick labels do not re-layout the plot (and
        # paint it again). No automatic SI prefix: it re-renders the axis label (HTML) on
        # every range change.
        axis.setStyle(maxTickLevel=0, autoReduceTextSpace=False)
        axis.enableAutoSIPrefix(False)
        axis.setPen(self.foreground)
        axis.setTextPen(self.foreground)
        # Log ticks that do not overlap, labelled with the values they stand for.
        axis.logTickValues = MethodType(_log_tick_values, axis)
        axis.logTickStrings = MethodType(_log_tick_strings, axis)

    def set_x_axis(self, label: str, date: bool) -> None:
        """Label the x axis; a date axis (clock times as ticks) or a plain one."""
        if date != self._date_axis:
            axis = self.pg.DateAxisItem("bottom") if date else self.pg.AxisItem("bottom")
            self._style_axis(axis)
            self.item.setAxisItems({"bottom": axis})
            self._date_axis = date
        self.item.setLabel("bottom", label)

    @Slot(object)
    def _on_view_changed(self, *_args: object) -> None:
        self.sig_view_changed.emit(self)

    @Slot(bool)
    def _on_log_changed(self, _on: bool) -> None:
        # Also from pyqtgraph's own context menu: the data goes over again, log10 applied.
        self.sig_log_changed.emit(self)

    def log_mode(self) -> tuple[bool, bool]:
        return (self.item.ctrl.logXCheck.isChecked(), self.item.ctrl.logYCheck.isChecked())

    def following(self) -> bool:
        """Whether x follows the data (auto-range), i.e. the user has not panned or zoomed."""
        return bool(self.item.vb.autoRangeEnabled()[0])

    def pixels(self) -> int:
        return max(100, int(self.item.vb.width()))

    def window(self, x: FloatArray, n: int, x_sorted: bool) -> Window:
        """The raw index range of a series to hand over, and its width on screen.

        The whole series while the plot follows its data; once the user zoomed in, the visible
        x range plus one view width either side (see `visible_window`).
        """
        pixels = self.pixels()
        if self.following() or not x_sorted or n < 2:
            return (0, n, pixels)
        (v0, v1), _ = self.item.vb.viewRange()
        return visible_window(x, n, (v0, v1), pixels, self.log_mode()[0])

    def draw_series(
        self, key: SeriesKey, series: Series, x: FloatArray, x_sorted: bool, smoothing: float
    ) -> None:
        """Hand the curves of `series` (x given) what to draw of it: the shown one the values,
        smoothed with this EMA weight when it is over 0, and then the faint one the raw values.
        """
        n = series.n
        raw = series.value[:n]
        curve, raw_curve = self.curves[key], self.raw_curves[key]
        log = self.log_mode()
        window = self.window(x, n, x_sorted)
        if smoothing > 0.0:
            shown = series.smoothed_values(smoothing)
            peaks = series.raw_peaks if series.constant else series.smooth_peaks
            raw_curve.draw(peak_downsample(series.raw_peaks, x, raw, n, window, log, x_sorted))
            raw_curve.setVisible(True)
        else:
            shown, peaks = raw, series.raw_peaks
            if raw_curve.isVisible():
                raw_curve.setVisible(False)
                raw_curve.clear()
        curve.draw(peak_downsample(peaks, x, shown, n, window, log, x_sorted))
        self.shown[key] = (x, shown, x_sorted)
        self.windows[key] = window

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

    def remove_curve(self, key: SeriesKey) -> None:
        self.windows.pop(key, None)
        self.shown.pop(key, None)
        for curves in (self.curves, self.raw_curves):
            curve = curves.pop(key, None)
            if curve is not None:
                self.item.removeItem(curve)

    def rename_curve(self, key: SeriesKey, name: str) -> None:
        curve = self.curves.get(key)
        if curve is None or curve.name() == name:
            return
        curve.opts["name"] = name

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
            data = self.shown.get(key)
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
        # The box opens away from the nearest edges, so it stays inside the plot: below the
        # point in the upper half, to its left in the right half.
        fx = (vx - x0) / (x1 - x0) if x1 > x0 else 0.0
        fy = (vy - y0) / (y1 - y0) if y1 > y0 else 0.0
        box = self.label.textItem.boundingRect()
        right, left = (1.0 - fx) * width, fx * width  # pixels free on each side of the point
        above, below = (1.0 - fy) * height, fy * height  # view y grows upwards
        to_right = box.width() <= right or (box.width() > left and right >= left)
        upward = box.height() <= above or (box.height() > below and above >= below)
        self.label.setAnchor((0.0 if to_right else 1.0, 1.0 if upward else 0.0))
        self.label.setPos(vx, vy)
        for hover_item in (self.vline, self.hline, self.label):
            hover_item.show()
        self.hover_text = text
        return text


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def log_ticks(lo: float, hi: float, pixels: float, min_gap: float) -> list[float]:
    """Where to label a log axis that shows 10**lo to 10**hi over `pixels`: log10 of the
    values, no two closer than `min_gap` pixels.

    Each decade's 1, 2, 3, ... 9 where there is room, else 1, 2, 5, else 1 and 3, else the
    decades, else every n-th decade; an axis that spans too little for two of those gets
    evenly spaced round values instead.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or pixels <= 0:
        return []
    per_decade = pixels / (hi - lo)
    first, last = math.floor(lo), math.ceil(hi)
    ticks: list[float] | None = None
    for steps in LOG_STEPS:
        logs = [math.log10(m) for m in (*steps, 10)]
        closest = min(b - a for a, b in itertools.pairwise(logs))
        if closest * per_decade >= min_gap:
            ticks = [d + math.log10(m) for d in range(first, last + 1) for m in steps]
            break
    if ticks is None:
        every = max(1, math.ceil(min_gap / per_decade))
        ticks = [float(d) for d in range(math.ceil(lo / every) * every, last + 1, every)]
    inside = _thin([t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9], per_decade, min_gap)
    if len(inside) < 3:  # a short span: round values may say more
        linear = _thin(_linear_log_ticks(lo, hi, pixels, min_gap), per_decade, min_gap)
        if len(linear) > len(inside):
            return linear
    return inside


def _thin(ticks: list[float], per_decade: float, min_gap: float) -> list[float]:
    """Never two labels closer than `min_gap` pixels, whatever made them."""
    kept: list[float] = []
    for t in ticks:
        if not kept or (t - kept[-1]) * per_decade >= min_gap:
            kept.append(t)
    return kept


def _linear_log_ticks(lo: float, hi: float, pixels: float, min_gap: float) -> list[float]:
    """Round values, evenly spaced, for a log axis that spans less than a decade or so."""
    a, b = 10.0**lo, 10.0**hi
    raw = (b - a) / max(2, int(pixels // max(min_gap, 1.0)))
    if not raw > 0 or not math.isfinite(raw):
        return []
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.ceil(a / step - 1e-9)
    values = [(first + k) * step for k in range(100)]
    return [math.log10(v) for v in values if 0 < v <= b * (1 + 1e-9)]


def _log_tick_values(
    axis: Any, lo: float, hi: float, size: float, _std: Any
) -> list[tuple[None, list[float]]]:
    """pyqtgraph's logTickValues, on one level: labels that do not overlap (`log_ticks`)."""
    metrics = QFontMetrics(axis.style.get("tickFont") or axis.font())
    if axis.orientation in ("left", "right"):
        gap = metrics.height() * 1.6
    else:
        gap = metrics.horizontalAdvance("0.0005") + metrics.height()
    return [(None, log_ticks(lo, hi, size, gap))]


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _log_tick_strings(axis: Any, values: list[float], scale: float, _spacing: Any) -> list[str]:
    """The values a log axis' ticks stand for: 0.002, 50, 10⁵, 2×10⁻⁶."""
    del axis
    xs = [10.0**v * scale for v in values]
    digits = 1
    if len(xs) >= 2:
        gaps = [abs(b - a) for a, b in itertools.pairwise(xs) if b != a]
        if gaps:
            digits = max(1, min(6, math.ceil(math.log10(max(map(abs, xs)) / min(gaps))) + 1))
    return [_log_label(x, digits) for x in xs]


def _log_label(x: float, digits: int) -> str:
    text = f"{x:.{digits}g}"
    match = re.fullmatch(r"(-?[\d.]+)e([+-]\d+)", text)
    if match is None:
        return text
    mantissa, exponent = match.group(1), int(match.group(2))
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if mantissa == "1" else f"{mantissa}×{power}"


def _blend(color: QColor, background: QColor, alpha: float) -> QColor:
    """`color` drawn at `alpha` over `background`, as one opaque colour."""
    a, b = color, background
    return QColor(
        round(alpha * a.red() + (1.0 - alpha) * b.red()),
        round(alpha * a.green() + (1.0 - alpha) * b.green()),
        round(alpha * a.blue() + (1.0 - alpha) * b.blue()),
    )
