"""The sweep view (View > Sweeps…, or a trial job's context menu): a local sweep's trials with
their values and objective, the best one marked, the objective by trial, and "Make a job spec
from this trial" (a YAML file next to the sweep file).

Every read and write runs off the GUI thread (`TaskGroup`); the view reloads every two seconds
while it is shown, since the job host moves sweeps on without telling the window.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.store import Store
from trainer_gui.core.store.sweeps import SweepRecord, TrialRecord
from trainer_gui.ui.tasks import TaskGroup, error_text

if TYPE_CHECKING:
    from trainer_gui.services.api import Jobs

log = logging.getLogger(__name__)

REFRESH_MS = 2000
BEST_MARK = "★"
EMPTY_TEXT = "No local sweeps yet. Start one with: trainer-gui sweep run SWEEP.yaml"
FIXED = ("Trial", "State")


@dataclass(frozen=True)
class SweepSnapshot:
    """One read of the store (worker thread)."""

    sweeps: list[SweepRecord] = field(default_factory=list)
    current: SweepRecord | None = None
    trials: list[TrialRecord] = field(default_factory=list)
    best: TrialRecord | None = None


def read_sweeps(store: Store, key: str | None) -> SweepSnapshot:
    from trainer_gui.services.sweeps import best_trial

    sweeps = store.list_sweeps()
    current = next((s for s in sweeps if s.id == key), sweeps[0] if sweeps else None)
    if current is None:
        return SweepSnapshot(sweeps)
    trials = store.trials(current.id)
    return SweepSnapshot(sweeps, current, trials, best_trial(current, trials))


def spec_path_for(record: SweepRecord, trial: TrialRecord) -> Path:
    """`<sweep file's folder>/<sweep name>-t<N>.yaml`, numbered on when taken."""
    from trainer_gui.core.spec.sweep import trial_name

    folder = Path(record.source).parent if record.source else Path(record.base_dir or ".")
    stem = trial_name(record.name, trial.number)
    path = folder / f"{stem}.yaml"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.yaml"
        n += 1
    return path


def write_trial_spec(record: SweepRecord, trial: TrialRecord) -> Path:
    """The trial's job spec (the sweep's spec with the trial's values), as a spec file."""
    from trainer_gui.core.spec import dump_spec
    from trainer_gui.core.spec.sweep import trial_spec
    from trainer_gui.services.sweeps import stored_sweep

    spec = trial_spec(stored_sweep(record), trial.params, trial.number)
    path = spec_path_for(record, trial)
    path.write_text(dump_spec(spec), encoding="utf-8")
    return path


def _value(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.6g}"


class SweepView(QDialog):
    """The sweeps of the store, one at a time (module notes)."""

    def __init__(
        self,
        store: Store,
        service: Jobs | None = None,
        sweep_id: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sweeps")
        self.resize(900, 600)
        self.store = store
        self.service = service
        self.snapshot = SweepSnapshot()
        self._key = sweep_id
        self._tasks = TaskGroup(self)
        self._loading = False

        self.chooser = QComboBox()
        self.chooser.setMinimumWidth(320)
        self.chooser.activated.connect(self._on_chosen)
        self.summary = QLabel(EMPTY_TEXT)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, 0)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        import pyqtgraph as pg

        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "trial")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.points = pg.ScatterPlotItem(size=8)
        self.best_line = pg.PlotDataItem(stepMode=None)
        self.best_point = pg.ScatterPlotItem(size=14, symbol="star")
        for item in (self.points, self.best_line, self.best_point):
            self.plot.addItem(item)

        self.spec_button = QPushButton("Make a job spec from this trial")
        self.spec_button.setToolTip("Write the selected trial's job spec next to the sweep file")
        self.spec_button.clicked.connect(self.make_spec)
        self.stop_button = QPushButton("Stop sweep")
        self.stop_button.setToolTip("No new trials; the running ones are stopped")
        self.stop_button.clicked.connect(self.stop_sweep)
        self.note = QLabel("")
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        top.addWidget(QLabel("Sweep:"))
        top.addWidget(self.chooser, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.spec_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.note)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.reload)
        self._update_buttons()

    # -- loading -------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.timer.start()
        self.reload()

    def hideEvent(self, event: QHideEvent) -> None:
        self.timer.stop()
        super().hideEvent(event)

    def reload(self) -> None:
        if self._loading:
            return
        self._loading = True
        store, key = self.store, self._key
        self._tasks.run(lambda: read_sweeps(store, key), self._on_loaded, self._on_failed)

    def _on_failed(self, exc: BaseException, tb: str) -> None:
        self._loading = False
        self.note.setText(error_text(exc))

    def _on_chosen(self, index: int) -> None:
        self._key = self.chooser.itemData(index)
        self.reload()

    def _on_loaded(self, snapshot: SweepSnapshot) -> None:
        self._loading = False
        self.snapshot = snapshot
        current = snapshot.current
        self._key = current.id if current else None
        self.chooser.blockSignals(True)
        self.chooser.clear()
        for s in snapshot.sweeps:
            self.chooser.addItem(f"{s.id} ({s.status})", s.id)
        if current is not None:
            self.chooser.setCurrentIndex(self.chooser.findData(current.id))
        self.chooser.blockSignals(False)
        if current is None:
            self.summary.setText(EMPTY_TEXT)
        else:
            counts: dict[str, int] = {}
            for t in snapshot.trials:
                counts[t.state] = counts.get(t.state, 0) + 1
            shown = ", ".join(f"{n} {state}" for state, n in counts.items()) or "no trials yet"
            text = f"{current.status}: {current.goal} {current.objective}; {shown}"
            if snapshot.best is not None:
                text += (
                    f". Best ({BEST_MARK}): trial {snapshot.best.number}, "
                    f"{current.objective} = {_value(snapshot.best.value)}"
                )
            self.summary.setText(text)
        self._fill_table()
        self._fill_plot()
        self._update_buttons()

    def _fill_table(self) -> None:
        snapshot = self.snapshot
        selected = self.selected_trial()
        names: list[str] = []
        for t in snapshot.trials:
            names += [n for n in t.params if n not in names]
        objective = snapshot.current.objective if snapshot.current else "objective"
        headers = [*FIXED, objective, *names, "Job"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(snapshot.trials))
        bold = QFont()
        bold.setBold(True)
        for row, t in enumerate(snapshot.trials):
            best = snapshot.best is not None and snapshot.best.number == t.number
            label = f"{t.number} {BEST_MARK}" if best else str(t.number)
            cells = [label, t.state, _value(t.value)]
            cells += [str(t.params.get(n, "")) for n in names]
            cells.append(t.job_id)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, t.number)
                if best:
                    item.setFont(bold)
                    item.setToolTip("The best trial so far")
                self.table.setItem(row, col, item)
            if selected is not None and selected.number == t.number:
                self.table.selectRow(row)

    def _fill_plot(self) -> None:
        snapshot = self.snapshot
        done = [t for t in snapshot.trials if t.value is not None and math.isfinite(t.value)]
        self.plot.setLabel("left", snapshot.current.objective if snapshot.current else "")
        self.points.setData(
            [float(t.number) for t in done],
            [float(t.value or 0.0) for t in done],
            brush=["#4a90d9" if t.state == "complete" else "#aaaaaa" for t in done],
        )
        complete = [t for t in done if t.state == "complete"]
        xs: list[float] = []
        ys: list[float] = []
        maximize = snapshot.current is not None and snapshot.current.goal == "maximize"
        running: float | None = None
        for t in complete:
            value = float(t.value or 0.0)
            if running is None or (value > running if maximize else value < running):
                running = value
            xs.append(float(t.number))
            ys.append(running)
        self.best_line.setData(xs, ys)
        best = snapshot.best
        if best is not None and best.value is not None:
            self.best_point.setData([float(best.number)], [best.value], brush="#e0a020")
        else:
            self.best_point.setData([], [])

    # -- actions -------------------------------------------------------------------------------

    def selected_trial(self) -> TrialRecord | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        number = rows[0].data(Qt.ItemDataRole.UserRole)
        return next((t for t in self.snapshot.trials if t.number == number), None)

    def _update_buttons(self) -> None:
        current = self.snapshot.current
        self.spec_button.setEnabled(current is not None and self.selected_trial() is not None)
        self.stop_button.setEnabled(
            current is not None and current.is_active and self.service is not None
        )

    def make_spec(self) -> None:
        record, trial = self.snapshot.current, self.selected_trial()
        if record is None or trial is None:
            return
        self.spec_button.setEnabled(False)

        def done(path: Path) -> None:
            self.note.setText(f"Wrote {path}")
            self._update_buttons()

        def failed(exc: BaseException, tb: str) -> None:
            self.note.setText(f"Could not write the spec: {error_text(exc)}")
            self._update_buttons()

        self._tasks.run(lambda: write_trial_spec(record, trial), done, failed)

    def stop_sweep(self) -> None:
        record, service = self.snapshot.current, self.service
        if record is None or service is None:
            return
        from trainer_gui.services.sweeps import stop_sweep

        self.stop_button.setEnabled(False)
        self.note.setText(f"Stopping {record.id}…")

        def done(_: Any) -> None:
            self.note.setText(f"Stopping {record.id}: no new trials; its running trials stop")
            self.reload()

        self._tasks.run(lambda: stop_sweep(service, record.id), done, self._on_failed)

    def done(self, result: int) -> None:
        self.timer.stop()
        self._tasks.cancel_all()
        super().done(result)


def open_sweeps(window: Any) -> SweepView:
    """View > Sweeps…: the selected trial job's sweep, else the newest."""
    records = window.selected_records()
    store: Store = window.store
    key = None
    if records:
        trial = store.trial_of_job(records[0].id)  # one indexed read
        key = trial.sweep_id if trial is not None else None
    view = SweepView(store, window.service, key, window)
    view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    view.show()
    return view
