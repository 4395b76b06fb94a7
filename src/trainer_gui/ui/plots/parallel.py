"""Parallel coordinates and a scatter plot of the selected runs: which settings won.

Each hyperparameter and each metric's last value is an axis; every run is a line across them,
coloured by the chosen objective (viridis, low to high; runs without it grey). Dragging along
an axis brushes a range on it: the runs inside every brushed range are selected in the jobs
table (the others fade); a click on the axis drops its brush. The scatter tab plots any two of
the same fields, points coloured the same way; clicking a point selects its run.

Axes are drawn on one normalised scale (each axis's own min at the bottom, max at the top,
with the values written there); text values (an optimizer's name) are spread evenly in
sorted order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal, Slot
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.naming import run_colors
from trainer_gui.core.run_diff import hyperparameters_of
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import JobRecord
from trainer_gui.ui.tasks import TaskGroup, error_text

if TYPE_CHECKING:
    from types import ModuleType

    from trainer_gui.ui.jobs_table import JobsView

RUN_COLOUR = "(run colour)"
DIM_ALPHA = 40
GREY = QColor(150, 150, 150)
AXIS_HALF_WIDTH = 0.35
"""How far (in axis spacings) from an axis a drag still brushes it."""
PAD = 0.08


@dataclass(frozen=True)
class Field:
    """One axis: a hyperparameter or a metric's last value."""

    key: str
    label: str


@dataclass
class RunValues:
    job_id: str
    name: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scale:
    """A field's values on the 0..1 scale of the plot, with what to write along the axis."""

    raw: list[float]
    norm: list[float]
    ticks: list[tuple[float, str]]


def load_runs(
    records: Sequence[JobRecord],
    spec_of: Callable[[JobRecord], JobSpec],
    last_metrics: Callable[[str], dict[str, float]],
) -> tuple[list[Field], list[RunValues]]:
    """The fields (hyperparameters, then metrics, each sorted) and each run's values."""
    runs = []
    hyper: set[str] = set()
    metrics: set[str] = set()
    for record in records:
        values: dict[str, Any] = {}
        try:
            for key, value in hyperparameters_of(spec_of(record)).items():
                values[f"hp:{key}"] = value
                hyper.add(key)
        except Exception:  # a spec that no longer reads: its metrics still show
            pass
        for name, value in last_metrics(record.id).items():
            values[f"metric:{name}"] = value
            metrics.add(name)
        runs.append(RunValues(record.id, record.name, values))
    fields = [Field(f"hp:{k}", k) for k in sorted(hyper)]
    fields += [Field(f"metric:{m}", f"{m} (last)") for m in sorted(metrics)]
    return fields, runs


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _short(value: float) -> str:
    return f"{value:.4g}"


def scale(values: Sequence[Any]) -> Scale:
    """Numbers (or numeric text) map min..max to 0..1; anything else is a category."""
    present = [v for v in values if v is not None]
    numbers = [_number(v) for v in present]
    if all(n is not None for n in numbers):
        raw = [math.nan if v is None else (_number(v) or 0.0) for v in values]
        finite = [r for r in raw if math.isfinite(r)]
        if not finite:
            return Scale(raw, [math.nan] * len(raw), [])
        lo, hi = min(finite), max(finite)
        if hi == lo:
            norm = [0.5 if math.isfinite(r) else math.nan for r in raw]
            return Scale(raw, norm, [(0.5, _short(lo))])
        norm = [(r - lo) / (hi - lo) if math.isfinite(r) else math.nan for r in raw]
        return Scale(raw, norm, [(0.0, _short(lo)), (1.0, _short(hi))])
    categories = sorted({str(v) for v in present})
    step = 1.0 / (len(categories) - 1) if len(categories) > 1 else 0.0
    place = {c: (i * step if len(categories) > 1 else 0.5) for i, c in enumerate(categories)}
    index = {c: float(i) for i, c in enumerate(categories)}
    raw = [math.nan if v is None else index[str(v)] for v in values]
    norm = [math.nan if v is None else place[str(v)] for v in values]
    return Scale(raw, norm, [(place[c], c) for c in categories])


def objective_colors(pg: ModuleType, values: Sequence[float]) -> list[QColor]:
    """Viridis from the lowest to the highest value; a run without one is grey."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [GREY for _ in values]
    lo, hi = min(finite), max(finite)
    cmap = pg.colormap.get("viridis")
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(GREY)
            continue
        t = 0.5 if hi == lo else (v - lo) / (hi - lo)
        out.append(QColor(cmap.mapToQColor(np.array([t]))[0]))
    return out


def select_in_table(view: JobsView, job_ids: Iterable[str]) -> None:
    """Select exactly these jobs' rows in the jobs table (ones filtered out stay unselected)."""
    selection = QItemSelection()
    for job_id in job_ids:
        row = view.model.row_of(job_id)
        if row is None:
            continue
        index = view.proxy.mapFromSource(view.model.index(row, 0))
        if index.isValid():
            selection.select(index, index)
    flags = QItemSelectionModel.SelectionFlag
    view.table.selectionModel().select(selection, flags.ClearAndSelect | flags.Rows)


class ParallelCoordsWidget(QWidget):
    """Parallel coordinates and scatter tabs over fixed runs and fields."""

    sig_brushed = Signal(list)
    """The job ids inside every brushed range (all runs when no axis is brushed)."""
    sig_clicked = Signal(str)
    """A scatter point was clicked: its job id."""

    def __init__(
        self,
        pg: ModuleType,
        fields: list[Field],
        runs: list[RunValues],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.pg = pg
        self.fields = fields
        self.runs = runs
        self.scales = {f.key: scale([r.values.get(f.key) for r in runs]) for f in fields}
        self.brushes: dict[int, tuple[float, float]] = {}
        self.regions: dict[int, Any] = {}
        self.colors: list[QColor] = []
        self.lines: dict[str, Any] = {}
        self.axis_lines: list[Any] = []
        self.tick_labels: list[Any] = []

        self.color_combo = QComboBox(self)
        metrics = [f for f in fields if f.key.startswith("metric:")]
        for f in [*metrics, *(f for f in fields if f not in metrics)]:
            self.color_combo.addItem(f.label, f.key)
        self.color_combo.addItem(RUN_COLOUR, "")
        self.color_combo.setToolTip("The objective the lines and points are coloured by")
        self.color_note = QLabel(self)
        self.tabs = QTabWidget(self)

        self.parallel = pg.PlotWidget(self, viewBox=_BrushViewBox(self))
        self.item: Any = self.parallel.getPlotItem()
        self.vb: Any = self.item.vb
        self.item.hideAxis("left")
        self.item.hideButtons()
        self.item.setMenuEnabled(False)
        self.vb.setMouseEnabled(x=False, y=False)
        n = max(1, len(fields))
        self.vb.setRange(xRange=(-0.5, n - 0.5), yRange=(-PAD, 1 + PAD), padding=0)
        bottom = self.item.getAxis("bottom")
        bottom.setTicks([[(i, f.label) for i, f in enumerate(fields)], []])
        self.tabs.addTab(self.parallel, "Parallel coordinates")

        scatter_tab = QWidget(self)
        self.x_combo = QComboBox(scatter_tab)
        self.y_combo = QComboBox(scatter_tab)
        for combo in (self.x_combo, self.y_combo):
            for f in fields:
                combo.addItem(f.label, f.key)
        if len(fields) > 1:
            self.y_combo.setCurrentIndex(len(fields) - 1)
        self.scatter = pg.PlotWidget(scatter_tab)
        self.points = pg.ScatterPlotItem(size=11, hoverable=True)
        self.points.sigClicked.connect(self._on_point_clicked)
        self.scatter.addItem(self.points)
        pickers = QHBoxLayout()
        pickers.addWidget(QLabel("x:", scatter_tab))
        pickers.addWidget(self.x_combo, 1)
        pickers.addWidget(QLabel("y:", scatter_tab))
        pickers.addWidget(self.y_combo, 1)
        scatter_layout = QVBoxLayout(scatter_tab)
        scatter_layout.setContentsMargins(0, 0, 0, 0)
        scatter_layout.addLayout(pickers)
        scatter_layout.addWidget(self.scatter, 1)
        self.tabs.addTab(scatter_tab, "Scatter")

        top = QHBoxLayout()
        top.addWidget(QLabel("Colour by:", self))
        top.addWidget(self.color_combo)
        top.addWidget(self.color_note, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)

        self._draw_axes()
        self._recolor()
        self.color_combo.currentIndexChanged.connect(self._recolor)
        self.x_combo.currentIndexChanged.connect(self._draw_scatter)
        self.y_combo.currentIndexChanged.connect(self._draw_scatter)
        self._apply_palette()

    # -- drawing ----------------------------------------------------------------------------

    def _draw_axes(self) -> None:
        pg = self.pg
        text = self.palette().color(QPalette.ColorRole.Text)
        for i, f in enumerate(self.fields):
            line = pg.InfiniteLine(pos=i, angle=90, movable=False, pen=pg.mkPen(text, width=1))
            self.item.addItem(line)
            self.axis_lines.append(line)
            for y, label in self.scales[f.key].ticks:
                tick = pg.TextItem(label, color=text, anchor=(-0.05, 0.5))
                tick.setPos(i, y)
                self.item.addItem(tick)
                self.tick_labels.append(tick)
        xs = np.arange(len(self.fields), dtype=float)
        for row, run in enumerate(self.runs):
            ys = np.array([self.scales[f.key].norm[row] for f in self.fields])
            curve = pg.PlotDataItem(xs, ys, connect="finite")
            curve.setToolTip(f"{run.name} ({run.job_id})")
            self.item.addItem(curve)
            self.lines[run.job_id] = curve

    @Slot()
    def _recolor(self) -> None:
        key = str(self.color_combo.currentData() or "")
        if not key:
            by_run = run_colors(r.job_id for r in self.runs)
            self.colors = [QColor(by_run[r.job_id]) for r in self.runs]
            self.color_note.setText("each run its own colour")
        else:
            self.colors = objective_colors(self.pg, self.scales[key].raw)
            self.color_note.setText(
                f"{self.color_combo.currentText()}: low (purple) → high (yellow)"
            )
        self._restyle()
        self._draw_scatter()

    def _restyle(self) -> None:
        inside = set(self.selected_ids())
        for run, color in zip(self.runs, self.colors, strict=True):
            shown = QColor(color)
            width = 2.0
            if self.brushes and run.job_id not in inside:
                shown.setAlpha(DIM_ALPHA)
                width = 1.0
            self.lines[run.job_id].setPen(self.pg.mkPen(shown, width=width))
            self.lines[run.job_id].setZValue(1 if run.job_id in inside else 0)

    @Slot()
    def _draw_scatter(self) -> None:
        if not self.fields:
            return
        xkey, ykey = str(self.x_combo.currentData()), str(self.y_combo.currentData())
        xs, ys = self.scales[xkey], self.scales[ykey]
        spots = []
        for i, run in enumerate(self.runs):
            x, y = xs.raw[i], ys.raw[i]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            spots.append(
                {"pos": (x, y), "data": run.job_id, "brush": self.pg.mkBrush(self.colors[i])}
            )
        self.points.setData(spots)
        self.scatter.getPlotItem().setLabel("bottom", self.x_combo.currentText())
        self.scatter.getPlotItem().setLabel("left", self.y_combo.currentText())

    def _apply_palette(self) -> None:
        base = self.palette().color(QPalette.ColorRole.Base)
        text = self.palette().color(QPalette.ColorRole.Text)
        for plot in (self.parallel, self.scatter):
            plot.setBackground(base)
            for name in ("bottom", "left"):
                axis = plot.getPlotItem().getAxis(name)
                axis.setPen(text)
                axis.setTextPen(text)
        for line in self.axis_lines:
            line.setPen(self.pg.mkPen(text, width=1))
        for tick in self.tick_labels:
            tick.setColor(text)

    # -- brushing ---------------------------------------------------------------------------

    def axis_at(self, x: float) -> int | None:
        i = round(x)
        if 0 <= i < len(self.fields) and abs(x - i) <= AXIS_HALF_WIDTH:
            return i
        return None

    def brush(self, axis: int, lo: float, hi: float, *, final: bool = True) -> None:
        """Brush `axis` over lo..hi (the 0..1 scale); `final` tells the table."""
        lo, hi = sorted((max(-PAD, min(1 + PAD, lo)), max(-PAD, min(1 + PAD, hi))))
        self.brushes[axis] = (lo, hi)
        region = self.regions.get(axis)
        if region is None:
            n = len(self.fields)
            span = ((axis + 0.5 - 0.12) / n, (axis + 0.5 + 0.12) / n)
            region = self.pg.LinearRegionItem(
                values=(lo, hi), orientation="horizontal", span=span, brush=(90, 140, 255, 60)
            )
            region.setZValue(10)
            region.sigRegionChanged.connect(lambda r, a=axis: self._region_moved(a, r, False))
            region.sigRegionChangeFinished.connect(lambda r, a=axis: self._region_moved(a, r, True))
            self.regions[axis] = region
            self.item.addItem(region)
        else:
            region.blockSignals(True)
            region.setRegion((lo, hi))
            region.blockSignals(False)
        self._restyle()
        if final:
            self.sig_brushed.emit(self.selected_ids())

    def _region_moved(self, axis: int, region: Any, final: bool) -> None:
        lo, hi = region.getRegion()
        self.brushes[axis] = (float(lo), float(hi))
        self._restyle()
        if final:
            self.sig_brushed.emit(self.selected_ids())

    def clear_brush(self, axis: int) -> None:
        region = self.regions.pop(axis, None)
        if region is not None:
            self.item.removeItem(region)
        if self.brushes.pop(axis, None) is not None:
            self._restyle()
            self.sig_brushed.emit(self.selected_ids())

    def selected_ids(self) -> list[str]:
        """The runs inside every brushed range (every run when nothing is brushed)."""
        out = []
        for i, run in enumerate(self.runs):
            inside = True
            for axis, (lo, hi) in self.brushes.items():
                v = self.scales[self.fields[axis].key].norm[i]
                if not (math.isfinite(v) and lo <= v <= hi):
                    inside = False
                    break
            if inside:
                out.append(run.job_id)
        return out

    def _on_point_clicked(self, _item: Any, points: Any, _ev: Any = None) -> None:
        if len(points):
            self.sig_clicked.emit(str(points[0].data()))

    def changeEvent(self, event: Any) -> None:
        super().changeEvent(event)
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()


@functools.cache
def _brush_view_box_class() -> type:
    from trainer_gui.ui.plots.widget import load_pyqtgraph

    pg = load_pyqtgraph()

    class BrushViewBox(pg.ViewBox):  # type: ignore[name-defined]
        """A drag along an axis brushes it; a click on a brushed axis clears it."""

        def __init__(self, owner: ParallelCoordsWidget) -> None:
            super().__init__()
            self.owner = owner
            self._axis: int | None = None
            self._start = 0.0

        def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:
            if ev.button() != Qt.MouseButton.LeftButton:
                ev.ignore()
                return
            if ev.isStart():
                start = self.mapSceneToView(ev.buttonDownScenePos())
                self._axis = self.owner.axis_at(start.x())
                self._start = start.y()
            if self._axis is None:
                ev.ignore()
                return
            ev.accept()
            y = self.mapSceneToView(ev.scenePos()).y()
            self.owner.brush(self._axis, self._start, y, final=ev.isFinish())

        def mouseClickEvent(self, ev: Any) -> None:
            if ev.button() == Qt.MouseButton.LeftButton:
                axis = self.owner.axis_at(self.mapSceneToView(ev.scenePos()).x())
                if axis is not None and axis in self.owner.brushes:
                    ev.accept()
                    self.owner.clear_brush(axis)
                    return
            super().mouseClickEvent(ev)

    return BrushViewBox


def _BrushViewBox(owner: ParallelCoordsWidget) -> Any:
    return _brush_view_box_class()(owner)


class ParallelCoordsDialog(QDialog):
    """The selected runs' parallel coordinates and scatter; brushing selects in the table."""

    def __init__(
        self,
        records: Sequence[JobRecord],
        spec_of: Callable[[JobRecord], JobSpec],
        last_metrics: Callable[[str], dict[str, float]],
        jobs: JobsView | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Parallel coordinates: {len(records)} runs")
        self.resize(1000, 600)
        self.jobs = jobs
        self.view: ParallelCoordsWidget | None = None
        self.status = QLabel(f"Reading {len(records)} runs…", self)
        self.status.setWordWrap(True)
        self._layout = QVBoxLayout(self)
        self._layout.addWidget(self.status)
        self._tasks = TaskGroup(self)
        chosen = list(records)
        self._tasks.run(
            lambda: load_runs(chosen, spec_of, last_metrics), self._loaded, self._failed
        )

    def _loaded(self, result: tuple[list[Field], list[RunValues]]) -> None:
        fields, runs = result
        if not fields:
            self.status.setText("These runs have no hyperparameters or metrics to plot yet.")
            return
        from trainer_gui.ui.plots.widget import load_pyqtgraph

        self.status.setText(
            f"{len(runs)} runs. Drag along an axis to select the runs in a range; "
            "click the axis to drop its range. Click a point in Scatter to select its run."
        )
        self.view = ParallelCoordsWidget(load_pyqtgraph(), fields, runs, self)
        self._layout.addWidget(self.view, 1)
        if self.jobs is not None:
            jobs = self.jobs
            self.view.sig_brushed.connect(lambda ids: select_in_table(jobs, ids))
            self.view.sig_clicked.connect(lambda job_id: select_in_table(jobs, [job_id]))

    def _failed(self, exc: BaseException, _tb: str) -> None:
        self.status.setText(f"Could not read the runs: {error_text(exc)}")

    def done(self, result: int) -> None:
        self._tasks.cancel_all()
        super().done(result)


def open_for_selection(window: Any) -> ParallelCoordsDialog | None:
    """Job > Parallel coordinates: the table's selected runs (two or more) in a new window."""
    records = window.selected_records()
    if len(records) < 2:
        window.statusBar().showMessage("Select two or more runs for parallel coordinates", 5000)
        return None
    dialog = ParallelCoordsDialog(
        records, window.service.spec_of, window.store.last_metrics, window.jobs, window
    )
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


__all__ = [
    "Field",
    "ParallelCoordsDialog",
    "ParallelCoordsWidget",
    "RunValues",
    "load_runs",
    "open_for_selection",
    "scale",
    "select_in_table",
]
