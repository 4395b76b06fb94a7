"""A series on a plot, and the plot's grid: pyqtgraph graphics items that paint whole pixels.

Both paint through QPainter's array calls (`drawLines`, `drawRects`) on numpy rows, with no
per-item Python objects, so a dense series or a grid costs a tenth of what pyqtgraph's own
items cost to paint. The numbers they draw come from `trainer_gui.core.metrics.numerics`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
from PySide6.QtCore import QLineF, QRect, QRectF, Qt, Slot
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QTransform
from PySide6.QtWidgets import QGraphicsObject
from shiboken6 import wrapInstance

from trainer_gui.core.metrics.numerics import Band, Line, nan_bounds, snap_bounds

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

T = TypeVar("T")


def qt_array(rows: np.ndarray, kind: type[T]) -> T:
    """`rows` (C-contiguous, one row per item, the item's own memory layout) as a pointer to
    its first `kind`, for QPainter's draw*(pointer, count) calls: no per-item objects."""
    return cast(T, wrapInstance(rows.ctypes.data, kind))


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
        painter.drawRects(qt_array(ints, QRect), len(ints))
        painter.restore()


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
        self._set_bounds(*nan_bounds(x), *nan_bounds(y))

    def set_band(self, edges: FloatArray, lo: FloatArray, hi: FloatArray) -> None:
        """Draw column k from x = edges[k] to edges[k + 1], y from lo[k] to hi[k]."""
        self._band = True
        self._segments = np.empty((0, 4))
        self._edges, self._lo, self._hi = edges, lo, hi
        ylo, _ = nan_bounds(lo)
        _, yhi = nan_bounds(hi)
        self._set_bounds(float(edges[0]), float(edges[-1]), ylo, yhi)

    def draw(self, shape: Line | Band) -> None:
        """Draw what `peak_downsample` chose: points joined by lines, or pixel columns."""
        if isinstance(shape, Band):
            self.set_band(shape.edges, shape.lo, shape.hi)
        else:
            self.set_line(shape.x, shape.y)

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
        painter.drawLines(qt_array(self._segments, QLineF), n)

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
            painter.drawRects(qt_array(rects, QRectF), len(rects))
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
        painter.drawRects(qt_array(ints, QRect), len(ints))
        painter.restore()
