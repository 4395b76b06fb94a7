"""The Queue dock: the local jobs waiting for the machine, in the order they start.

Reorder (buttons, Ctrl+Up/Down, Ctrl+Home, drag and drop), priority, cancel (Delete), pause and
resume, and how many jobs run at once. Every read and change goes through `QueueControl` off the
GUI thread: with the job host's client a call may wait on the host. The view reloads on the
bridge's status events and, while shown, every second: the CLI changes the queue too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QDropEvent, QHideEvent, QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.errors import UserError
from trainer_gui.core.resources import LOCAL_BACKENDS, Needs, default_max_parallel, fits
from trainer_gui.services.api import Jobs
from trainer_gui.services.queue import QueueControl, QueuedJob
from trainer_gui.ui.icons import WARN_COLOR
from trainer_gui.ui.jobs_table import format_duration
from trainer_gui.ui.tasks import TaskGroup, error_text

log = logging.getLogger(__name__)

EMPTY_TEXT = "No queued jobs. Local runs wait here while others use the machine."
COLUMNS = ("#", "Name", "Backend", "Priority", "Needs", "Waiting")
STARTING_TEXT = "starting"
JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 1
REFRESH_MS = 1000


@dataclass(frozen=True)
class QueueSnapshot:
    """One read of the queue and its settings (taken on a worker thread)."""

    entries: list[QueuedJob] = field(default_factory=list)
    paused: bool = False
    max_parallel: int = 1
    is_default: bool = True
    default: int = 1
    running: int = 0
    taken_at: float = 0.0

    @property
    def waiting(self) -> list[QueuedJob]:
        return [e for e in self.entries if e.position > 0]

    @property
    def positions(self) -> dict[str, int]:
        """Job id -> place in the queue (1 = next; 0 while being started)."""
        return {e.job_id: e.position for e in self.entries}


def read_queue(control: QueueControl) -> QueueSnapshot:
    """Everything the view shows, read at once (worker thread)."""
    entries = control.entries()
    queued = {e.job_id for e in entries}
    running = sum(
        1
        for r in control.store.list_jobs(active_only=True)
        if r.backend in LOCAL_BACKENDS and r.id not in queued
    )
    return QueueSnapshot(
        entries=entries,
        paused=control.paused,
        max_parallel=control.max_parallel,
        is_default=control.max_parallel_is_default,
        default=default_max_parallel(),
        running=running + sum(1 for e in entries if e.position == 0),
        taken_at=time.time(),
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def waiting_text(position: int, paused: bool = False) -> str:
    """What the job detail shows for a queued job instead of its (empty) log."""
    if position <= 0:
        return "Starting: leaving the queue"
    text = f"Waiting in the queue (#{position}; {_plural(position - 1, 'job')} ahead)"
    return text + " — the queue is paused" if paused else text


def queue_note(jobs: Jobs, job_id: str) -> str | None:
    """The status-bar line for a job just submitted that waits for the machine; None when it
    starts now (worker thread). The job host answers a submit before it schedules, so the
    jobs still "Queued" here may start the next moment: this plays the scheduler's pass (in
    order, while what is ahead fits) to tell a job that waits from one about to start."""
    control = QueueControl(jobs)
    snapshot = read_queue(control)
    waiting = snapshot.waiting
    if not any(e.job_id == job_id for e in waiting):
        return None
    if snapshot.paused:
        place = next(e.position for e in waiting if e.job_id == job_id)
        return f"Queued (#{place}): starts when the queue is resumed (View > Queue)"
    ids = {e.job_id for e in waiting}
    held = []
    for record in control.store.list_jobs(active_only=True):
        if record.backend not in LOCAL_BACKENDS or record.id in ids:
            continue
        stored = record.backend_ids.get("needs")
        if isinstance(stored, list) and len(stored) == 2:
            held.append(Needs(int(stored[0]), int(stored[1])))
        else:
            held.append(Needs(0, 1))
    gpus = control.gpus()
    starting = 0
    for entry in waiting:
        need = Needs(entry.entry.gpus, entry.entry.slots)
        if not fits(need, held, snapshot.max_parallel, gpus):
            break
        if entry.job_id == job_id:
            return None
        held.append(need)
        starting += 1
    place = next(e.position for e in waiting if e.job_id == job_id) - starting
    head = f"Queued (#{place}): starts "
    if place > 1:
        return head + f"after the {_plural(place - 1, 'job')} ahead of it (View > Queue)"
    running = len(held)
    return head + (
        "when a running job ends" if running <= 1 else f"when one of {running} running jobs ends"
    )


class _QueueTable(QTableWidget):
    """The rows; keys and drops become requests the view carries out (no shortcuts of the
    window's: Delete is the jobs table's there)."""

    sig_key = Signal(str)
    """"cancel", "up", "down" or "top"."""
    sig_dropped = Signal(str, int)
    """(job id, row it was dropped on; -1 after the last)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.verticalHeader().hide()
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        request = {
            (Qt.Key.Key_Delete, False): "cancel",
            (Qt.Key.Key_Up, True): "up",
            (Qt.Key.Key_Down, True): "down",
            (Qt.Key.Key_Home, True): "top",
        }.get((Qt.Key(key), ctrl))
        if request is None:
            super().keyPressEvent(event)
            return
        event.accept()
        self.sig_key.emit(request)

    def dropEvent(self, event: QDropEvent) -> None:
        """A row dragged onto another: ask for the move, and let the reload show it (the
        table never rearranges its own items)."""
        if event.source() is not self:
            event.ignore()
            return
        rows = self.selectionModel().selectedRows()
        if not rows:
            event.ignore()
            return
        job_id = str(rows[0].data(JOB_ID_ROLE))
        target = self.indexAt(event.position().toPoint())
        row = target.row() if target.isValid() else -1
        if target.isValid():
            rect = self.visualRect(target)
            if event.position().y() > rect.center().y():
                row += 1
        event.setDropAction(Qt.DropAction.IgnoreAction)
        event.accept()
        self.viewport().update()  # the drop indicator goes (Qt's own dropEvent does this)
        self.sig_dropped.emit(job_id, row if row < self.rowCount() else -1)


class QueueView(QWidget):
    """The queue: its rows and the controls that change it."""

    sig_snapshot = Signal(object)
    """(QueueSnapshot): after every reload, for the jobs table and the job detail."""

    def __init__(self, service: Jobs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("queue_view")
        self.control = QueueControl(service)
        self.snapshot: QueueSnapshot | None = None
        self._tasks = TaskGroup(self)
        self._loading = False
        self._reload = False
        self._busy = 0  # changes in flight
        self._closed = False
        self._syncing = False  # filling the spin boxes from a snapshot, not the user

        self.table = _QueueTable(self)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.sig_key.connect(self._on_key)
        self.table.sig_dropped.connect(self._on_dropped)
        self.empty = QLabel(EMPTY_TEXT, self)
        self.empty.setObjectName("queue_empty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setEnabled(False)  # the palette's muted text
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.table)

        self.up_button = self._button("Move up", "Start it earlier (Ctrl+Up)", self.move_up)
        self.down_button = self._button("Move down", "Start it later (Ctrl+Down)", self.move_down)
        self.top_button = self._button(
            "To top", "Start it next, before every waiting job (Ctrl+Home)", self.to_top
        )
        self.cancel_button = self._button(
            "Cancel…", "Take the job out of the queue: it never starts (Del)", self.cancel_selected
        )
        self.priority_spin = QSpinBox(self)
        self.priority_spin.setRange(-100, 100)
        self.priority_spin.setPrefix("Priority ")
        self.priority_spin.setToolTip(
            "Higher starts first; 0 is the default. Jobs of one priority keep their order."
        )
        self.priority_spin.setKeyboardTracking(False)
        self.priority_spin.valueChanged.connect(self._on_priority_changed)
        self.pause_button = QPushButton("Pause queue", self)
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("No queued job starts until resumed; running jobs go on")
        self.pause_button.clicked.connect(self._on_pause_clicked)
        self.parallel_spin = QSpinBox(self)
        self.parallel_spin.setRange(0, 256)
        self.parallel_spin.setKeyboardTracking(False)
        self.parallel_spin.setToolTip(
            "How many local jobs run at once on this machine. "
            "Default: one per GPU, 1 on a machine without GPUs."
        )
        self.parallel_spin.valueChanged.connect(self._on_parallel_changed)
        self.state_label = QLabel(self)
        self.state_label.setObjectName("queue_state")
        self.state_label.setTextFormat(Qt.TextFormat.RichText)

        moves = QHBoxLayout()
        for widget in (self.up_button, self.down_button, self.top_button):
            moves.addWidget(widget)
        moves.addStretch(1)
        moves.addWidget(self.priority_spin)
        moves.addWidget(self.cancel_button)
        settings = QHBoxLayout()
        settings.addWidget(self.pause_button)
        settings.addStretch(1)
        at_once = QLabel("At once:", self)
        at_once.setBuddy(self.parallel_spin)
        settings.addWidget(at_once)
        settings.addWidget(self.parallel_spin)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.state_label)
        layout.addWidget(self.stack, 1)
        layout.addLayout(moves)
        layout.addLayout(settings)

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(150)
        self._soon.timeout.connect(self.refresh)
        self._priority_for: tuple[QueuedJob, int] | None = None
        self._priority_timer = QTimer(self)
        self._priority_timer.setSingleShot(True)
        self._priority_timer.setInterval(400)
        self._priority_timer.timeout.connect(self._apply_priority)
        self._parallel_timer = QTimer(self)
        self._parallel_timer.setSingleShot(True)
        self._parallel_timer.setInterval(400)
        self._parallel_timer.timeout.connect(self._apply_parallel)
        self._show(QueueSnapshot())
        self.refresh()

    def _button(self, text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    # -- loading -------------------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Read the queue again (off the GUI thread; one read at a time)."""
        if self._closed:
            return
        if self._loading:
            self._reload = True
            return
        self._loading = True
        control = self.control
        self._tasks.run(lambda: read_queue(control), self._on_loaded, self._on_load_failed)

    def refresh_soon(self) -> None:
        if not self._closed:
            self._soon.start()

    @Slot(str, str, str)
    def on_status(self, job_id: str, status: str, message: str) -> None:
        """A bridge status event: a job queued, started or ended changes the queue."""
        del job_id, status, message
        self.refresh_soon()  # any change may free room or fill it: one read per burst

    def _on_loaded(self, snapshot: QueueSnapshot) -> None:
        self._loading = False
        if self._reload:
            self._reload = False
            self.refresh()
            return
        self.snapshot = snapshot
        self._show(snapshot)
        self.sig_snapshot.emit(snapshot)

    def _on_load_failed(self, exc: BaseException, tb: str) -> None:
        self._loading = False
        log.warning("cannot read the queue: %s\n%s", exc, tb)
        self.state_label.setText(f"Cannot read the queue: {error_text(exc)}")

    # -- showing -------------------------------------------------------------------------------

    def _show(self, snapshot: QueueSnapshot) -> None:
        selected = self.selected_job_id()
        self.table.setRowCount(len(snapshot.entries))
        now = snapshot.taken_at or time.time()
        for row, job in enumerate(snapshot.entries):
            starting = job.position == 0
            waited = format_duration(max(0.0, now - job.entry.enqueued_at))
            cells = (
                STARTING_TEXT if starting else str(job.position),
                job.name,
                job.backend,
                str(job.entry.priority),
                job.needs,
                waited,
            )
            for col, text in enumerate(cells):
                item = self.table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, col, item)
                item.setText(text)
                item.setData(JOB_ID_ROLE, job.job_id)
                flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                if not starting:
                    flags |= Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemIsDropEnabled
                item.setFlags(flags)
                item.setToolTip(f"{job.name} ({job.job_id})" if col == 1 else "")
            if job.job_id == selected:
                self.table.selectRow(row)
        if selected is not None and self.selected_job_id() != selected:
            self.table.clearSelection()
        self.stack.setCurrentWidget(self.table if snapshot.entries else self.empty)
        self._syncing = True
        try:
            if not self._busy:  # a pause or resume on its way: the click's state stays
                self.pause_button.setChecked(snapshot.paused)
                self.pause_button.setText("Resume queue" if snapshot.paused else "Pause queue")
            self.parallel_spin.setSpecialValueText(f"default ({snapshot.default})")
            if not self._parallel_timer.isActive() and not self.parallel_spin.hasFocus():
                self.parallel_spin.setValue(0 if snapshot.is_default else snapshot.max_parallel)
        finally:
            self._syncing = False
        waiting = len(snapshot.waiting)
        state = (
            f"{_plural(snapshot.running, 'job')} running of {snapshot.max_parallel} at once"
            f" · {waiting} waiting"
        )
        if snapshot.paused:
            state = (
                f"<b style='color:{WARN_COLOR}'>Paused</b>: no queued job starts until resumed"
                f" · {state}"
            )
        self.state_label.setText(state)
        self._update_buttons()

    def selected_job_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return None if item is None else str(item.data(JOB_ID_ROLE))

    def _selected(self) -> QueuedJob | None:
        job_id = self.selected_job_id()
        if self.snapshot is None or job_id is None:
            return None
        return next((e for e in self.snapshot.entries if e.job_id == job_id), None)

    def select_job(self, job_id: str) -> bool:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(JOB_ID_ROLE) == job_id:
                self.table.selectRow(row)
                return True
        return False

    @Slot()
    def _update_buttons(self) -> None:
        job = self._selected()
        pending = self._priority_for
        if pending is not None and (job is None or pending[0].job_id != job.job_id):
            self._priority_timer.stop()  # another row now: the typed priority goes first
            self._apply_priority()
        waiting = self.snapshot.waiting if self.snapshot else []
        index = waiting.index(job) if job in waiting else -1
        self.up_button.setEnabled(index > 0)
        self.top_button.setEnabled(index > 0)
        self.down_button.setEnabled(0 <= index < len(waiting) - 1)
        self.priority_spin.setEnabled(index >= 0)
        self.cancel_button.setEnabled(job is not None)
        if job is not None and self._priority_for is None:
            self._syncing = True
            try:
                self.priority_spin.setValue(job.entry.priority)
            finally:
                self._syncing = False

    # -- changes -------------------------------------------------------------------------------

    def _change(self, what: str, fn: Callable[[], Any]) -> None:
        """Run a change off the GUI thread, then reload; a refusal is shown, not raised."""
        self._busy += 1

        def done(_result: object) -> None:
            self._busy -= 1
            self.refresh()

        def failed(exc: BaseException, tb: str) -> None:
            self._busy -= 1
            if not isinstance(exc, UserError):
                log.error("queue: %s failed: %s\n%s", what, exc, tb)
            self.state_label.setText(f"Cannot {what}: {error_text(exc)}")
            self.refresh()

        self._tasks.run(fn, done, failed)

    @property
    def busy(self) -> bool:
        """A change is on its way (for tests: wait until it is done)."""
        return self._busy > 0 or self._loading

    def place(self, job_id: str, index: int) -> None:
        """Put a waiting job at `index` (0 = next) of the whole waiting line: within its
        priority, or taking the priority of the job it goes before (after, at the end)."""
        waiting = self.snapshot.waiting if self.snapshot else []
        job = next((e for e in waiting if e.job_id == job_id), None)
        if job is None:
            return
        others = [e for e in waiting if e.job_id != job_id]
        index = max(0, min(index, len(others)))
        if index < len(others):
            anchor = others[index]
            priority = anchor.entry.priority
            group = [e for e in others if e.entry.priority == priority]
            position = group.index(anchor) + 1
        else:
            priority = job.entry.priority
            if others:
                priority = min(priority, others[-1].entry.priority)
            position = sum(1 for e in others if e.entry.priority == priority) + 1
        control = self.control

        def move() -> None:
            if priority != job.entry.priority:
                control.set_priority(job_id, priority)
            control.move(job_id, position)

        self._change("move the job", move)

    def _index(self, job: QueuedJob) -> int:
        return self.snapshot.waiting.index(job) if self.snapshot else -1

    @Slot()
    def move_up(self) -> None:
        job = self._selected()
        if job is not None and job.position > 0 and self._index(job) > 0:
            self.place(job.job_id, self._index(job) - 1)

    @Slot()
    def move_down(self) -> None:
        job = self._selected()
        if job is not None and job.position > 0:
            self.place(job.job_id, self._index(job) + 1)

    @Slot()
    def to_top(self) -> None:
        job = self._selected()
        if job is not None and job.position > 0:
            self.place(job.job_id, 0)

    @Slot(str, int)
    def _on_dropped(self, job_id: str, row: int) -> None:
        if self.snapshot is None:
            return
        entries = self.snapshot.entries
        below = entries[row:] if row >= 0 else []
        # The waiting jobs before the drop row (a "starting" row counts for none).
        target = sum(1 for e in entries[: len(entries) - len(below)] if e.position > 0)
        job = next((e for e in entries if e.job_id == job_id), None)
        if job is None or job.position == 0:
            return
        if self._index(job) < target:
            target -= 1  # it leaves its own place above the drop row
        self.place(job_id, target)

    def confirm(self, title: str, text: str) -> bool:
        """Ask before something that cannot be undone; tests replace this."""
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    @Slot()
    def cancel_selected(self) -> None:
        job = self._selected()
        if job is None:
            return
        state = "is being started: it will be stopped" if job.position == 0 else "never starts"
        if not self.confirm("Cancel queued job", f"Cancel {job.name} ({job.job_id})? It {state}."):
            return
        control = self.control
        self._change("cancel the job", lambda: control.cancel(job.job_id))

    @Slot(bool)
    def _on_pause_clicked(self, checked: bool) -> None:
        self.pause_button.setText("Resume queue" if checked else "Pause queue")
        control = self.control
        if checked:
            self._change("pause the queue", control.pause)
        else:
            self._change("resume the queue", control.resume)

    @Slot(int)
    def _on_priority_changed(self, value: int) -> None:
        job = self._selected()
        if not self._syncing and job is not None:
            self._priority_for = (job, value)  # the job it was typed for, whatever is selected next
            self._priority_timer.start()

    @Slot()
    def _apply_priority(self) -> None:
        if self._priority_for is None:
            return
        (job, value), self._priority_for = self._priority_for, None
        if job.position == 0 or value == job.entry.priority:
            return
        control = self.control
        self._change("change the priority", lambda: control.set_priority(job.job_id, value))

    @Slot(int)
    def _on_parallel_changed(self, _value: int) -> None:
        if not self._syncing:
            self._parallel_timer.start()

    @Slot()
    def _apply_parallel(self) -> None:
        value = self.parallel_spin.value()
        control = self.control
        self._change("change how many run at once", lambda: control.set_max_parallel(value or None))

    @Slot(str)
    def _on_key(self, request: str) -> None:
        {
            "cancel": self.cancel_selected,
            "up": self.move_up,
            "down": self.move_down,
            "top": self.to_top,
        }[request]()

    # -- life ----------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._timer.start()
        self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._timer.stop()

    def shutdown(self) -> None:
        """The window closes: no more reads, and no answer reaches it."""
        self._closed = True
        for timer in (self._timer, self._soon, self._priority_timer, self._parallel_timer):
            timer.stop()
        self._tasks.cancel_all()
