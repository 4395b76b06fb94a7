"""A job's live log: bounded, filterable by host, searchable, following the end unless told not to.

Lines come from two places: the tail of `<run_dir>/logs/job.log`, read on a worker thread when a
job is selected, and `append_lines` (fed by `JobEventBridge.sig_logs`) while the job runs. Memory
is bounded by `max_lines`: the view keeps at most that many lines, the oldest go first.

The lines sit in a table model shown by a `QTableView` with fixed row heights, so the view only
ever lays out and paints the rows on screen: appending a batch and dropping the oldest lines cost
the same at 100 lines as at 100,000, where a `QPlainTextEdit` lays out every inserted line (about
10 µs each, 200 ms a second at 20,000 lines a second). Selection is by whole lines.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPointF,
    QRect,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QFontDatabase,
    QFontMetrics,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QStyle,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.joblog import JOB_LOG, parse_log_line
from trainer_gui.core.runners.events import LogLine
from trainer_gui.services.live_data import LogChunk, as_log_chunk
from trainer_gui.ui.bridge import drop_overlap
from trainer_gui.ui.tasks import BackgroundTask, run_task

log = logging.getLogger(__name__)
DEFAULT_MAX_LINES = 100_000
ALL_HOSTS = "All hosts"
_READ_BLOCK = 1 << 20
_TEXT_PAD = 4  # pixels left of each line's text
# Dropped rows kept at the front of the model's list before they are let go of. Letting go
# frees them (a tuple and usually a string a line): 100,000 at once held the GUI thread for
# 20-40 ms, 8,192 at a time cost about a millisecond, every 0.4 s at 20,000 lines a second.
_COMPACT_AT = 1 << 13

_Kept = tuple[str, str, str]  # (host, stream, text)
_Index = QModelIndex | QPersistentModelIndex


def _lines_backwards(fh: BinaryIO, end: int | None = None) -> Iterator[bytes]:
    """The lines of a binary file up to byte `end` (its end when None), last first, read in
    1 MiB blocks from there."""
    fh.seek(0, os.SEEK_END)
    pos = fh.tell() if end is None else min(fh.tell(), max(0, end))
    carry = b""
    while pos > 0:
        size = min(_READ_BLOCK, pos)
        pos -= size
        fh.seek(pos)
        pieces = (fh.read(size) + carry).split(b"\n")
        carry = pieces[0]  # may continue in the previous block
        yield from reversed(pieces[1:])
    yield carry


def read_log_tail(
    path: str | os.PathLike[str], max_lines: int, end: int | None = None
) -> list[LogLine]:
    """The last `max_lines` lines of a job.log as `LogLine`s, reading the file from its end.

    Only the blocks holding those lines are read, so a multi-gigabyte log costs what is shown.
    Lines that do not parse (a torn last line, stray text) are skipped and not counted. `end`:
    the length the store accounts for; bytes past it are a batch whose follower died before
    committing, which the next follower writes again, so they are not shown twice.
    """
    if max_lines <= 0:
        return []
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with-block below
    except OSError:
        return []
    out: list[LogLine] = []
    with fh:
        for piece in _lines_backwards(fh, end):
            if not piece:
                continue
            parsed = parse_log_line(piece.decode("utf-8", "replace"))
            if parsed is None:
                continue
            t, host, stream, text = parsed
            out.append(LogLine(host, stream, text, t))
            if len(out) >= max_lines:
                break
    out.reverse()
    return out


def _line_keys(chunk: LogChunk, count: int) -> list[tuple[str, str, str, float]]:
    """Identity of the last `count` lines: job.log keeps times to the millisecond, live lines
    carry full precision."""
    start = max(0, len(chunk.rows) - count)
    return [
        (host, stream, text, round(t, 3))
        for (host, stream, text), t in zip(chunk.rows[start:], chunk.times[start:], strict=True)
    ]


def _identity(item: tuple[str, str, str, float]) -> tuple[str, str, str, float]:
    return item


def _host_sort_key(host: str) -> tuple[str, int, str]:
    m = re.match(r"^(.*?)(\d+)$", host)
    return (m.group(1), int(m.group(2)), host) if m else (host, -1, host)


def _load_tail(
    path: Path, max_lines: int, committed: Callable[[], int | None] | None = None
) -> LogChunk:
    """The tail of a job.log as a chunk (the per-line work, on a pool thread)."""
    try:
        end = committed() if committed is not None else None
        return LogChunk.from_lines(read_log_tail(path, max_lines, end))
    except Exception:  # a failed read shows an empty log, never a crash
        log.warning("cannot read the log %s", path, exc_info=True)
        return LogChunk()


class _LogModel(QAbstractTableModel):
    """The shown lines, one column; the oldest are dropped by advancing a start offset."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Kept] = []
        self._start = 0
        self.prefix = False  # "[host] " before each line (several hosts)
        self.colors: dict[str, QColor] = {}

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows) - self._start

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 1

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(index.row())
        if role == Qt.ItemDataRole.ForegroundRole:
            return self.colors.get(self._rows[self._start + index.row()][1])
        return None

    def text(self, row: int) -> str:
        host, _, text = self._rows[self._start + row]
        return f"[{host}] {text}" if self.prefix else text

    def stream(self, row: int) -> str:
        return self._rows[self._start + row][1]

    def rows(self, first: int, stop: int) -> list[_Kept]:
        """Rows `first` to `stop` - 1 as kept: (host, stream, text)."""
        return self._rows[self._start + first : self._start + stop]

    def texts(self) -> list[str]:
        rows = self._rows[self._start :]
        if self.prefix:
            return [f"[{host}] {text}" for host, _, text in rows]
        return [text for _, _, text in rows]

    def append(self, rows: list[_Kept], limit: int) -> None:
        """Add rows at the end and drop the oldest beyond `limit`: one insert, one removal."""
        rows = rows[-limit:]
        if rows:
            n = self.rowCount()
            self.beginInsertRows(QModelIndex(), n, n + len(rows) - 1)
            self._rows.extend(rows)
            self.endInsertRows()
        excess = self.rowCount() - limit
        if excess > 0:
            self.beginRemoveRows(QModelIndex(), 0, excess - 1)
            self._start += excess
            if self._start >= _COMPACT_AT:
                del self._rows[: self._start]
                self._start = 0
            self.endRemoveRows()

    def reset(self, rows: list[_Kept]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._start = 0
        self.endResetModel()


class _LogTable(QTableView):
    """The lines' table, painted in one pass: every visible line in one Python call.

    A delegate would be called once per visible line per repaint (each call an entry into
    Python that waits for the GIL when another thread holds it, plus a save/restore of the
    painter); at 20,000 lines a second the view repaints all of its lines 15 times a second.
    Selection, the current line and scrolling stay QTableView's.
    """

    def __init__(self, view: LogView) -> None:
        super().__init__(view)
        self._view = view

    def paintEvent(self, event: QPaintEvent) -> None:
        view = self._view
        model = view.model
        count = model.rowCount()
        viewport = self.viewport()
        painter = QPainter(viewport)
        try:
            if not count:
                return
            exposed = event.rect()
            first = self.rowAt(exposed.top())
            last = self.rowAt(exposed.bottom())
            if first < 0:
                first = 0
            if last < 0:
                last = count - 1
            height = self.verticalHeader().defaultSectionSize()
            top = self.rowViewportPosition(first)
            x = self.columnViewportPosition(0) + _TEXT_PAD
            width = viewport.width()
            palette = viewport.palette()
            text_color = palette.color(QPalette.ColorRole.Text)
            selected_color = palette.color(QPalette.ColorRole.HighlightedText)
            highlight = palette.highlight()
            colors = model.colors
            metrics = QFontMetrics(self.font())
            baseline = (height - metrics.height()) // 2 + metrics.ascent()
            selection = self.selectionModel()
            root = QModelIndex()
            needle = view.needle
            match_color = view.match_color
            painter.setFont(self.font())
            current_pen: QColor | None = None
            for offset, (host, stream, text) in enumerate(model.rows(first, last + 1)):
                row = first + offset
                y = top + offset * height
                if model.prefix:
                    text = f"[{host}] {text}"
                selected = selection.isRowSelected(row, root)
                if selected:
                    painter.fillRect(QRect(0, y, width, height), highlight)
                if needle:
                    lowered = text.lower()
                    pos = lowered.find(needle)
                    while pos >= 0:
                        left = x + metrics.horizontalAdvance(text[:pos])
                        size = metrics.horizontalAdvance(text[pos : pos + len(needle)])
                        painter.fillRect(QRect(left, y, size, height), match_color)
                        pos = lowered.find(needle, pos + len(needle))
                pen = selected_color if selected else colors.get(stream, text_color)
                if pen is not current_pen:
                    painter.setPen(pen)
                    current_pen = pen
                painter.drawText(QPointF(x, y + baseline), text)
        finally:
            painter.end()


class LogView(QWidget):
    """Live log of one job: host filter, search, follow mode, copy and save."""

    sig_follow_changed = Signal(bool)
    """Emitted when follow mode turns on or off (by the button or by scrolling)."""

    sig_loaded = Signal(str)
    """(job_id): the tail of the job's log finished loading."""

    def __init__(self, parent: QWidget | None = None, max_lines: int = DEFAULT_MAX_LINES):
        super().__init__(parent)
        self._job_id: str | None = None
        self._run_dir: str | None = None
        self._max_lines = max(1, int(max_lines))
        # Kept as (host, stream, text) tuples, not LogLines: tuples of strings drop out of the
        # garbage collector's tracking, so 100,000 kept lines add nothing to its full passes.
        self._lines: deque[_Kept] = deque(maxlen=self._max_lines)
        self._hosts: list[str] = []
        self._host_filter: str | None = None
        self._follow = True
        self._programmatic_scroll = 0
        self._tail_task: BackgroundTask | None = None
        self._loading = False
        self._pending: list[LogChunk] = []
        self._widest = 0  # characters in the longest shown line
        self.needle = ""  # the search text, lower case
        self.match_color = QColor(255, 200, 0, 110)

        self.model = _LogModel(self)
        self.table = _LogTable(self)
        self.table.setModel(self.model)
        self.table.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().hide()
        self.table.verticalHeader().hide()
        # Fixed row height and column width: the view never asks the model for sizes, so its
        # cost does not grow with the number of lines.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self._update_metrics()

        self.host_combo = QComboBox(self)
        self.host_combo.addItem(ALL_HOSTS)
        self.host_combo.setToolTip("Show the lines of one host only")
        self.host_combo.currentIndexChanged.connect(self._on_host_changed)

        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search (Ctrl+F)")
        self.search_edit.setMinimumWidth(120)
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(self._on_search_changed)
        self.search_edit.returnPressed.connect(self.find_next)
        self.prev_button = self._tool_button("◀", "Previous match (Shift+Enter, Shift+F3)")
        self.prev_button.clicked.connect(self.find_previous)
        self.next_button = self._tool_button("▶", "Next match (Enter, F3)")
        self.next_button.clicked.connect(self.find_next)
        self.match_label = QLabel(self)
        # Room for the longest count from the start: a count appearing as you type must not
        # squeeze the search box and shift the buttons beside it.
        self.match_label.setFixedWidth(
            self.match_label.fontMetrics().horizontalAdvance("0000000 matches") + 4
        )
        self.match_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

        self.follow_button = self._tool_button("Follow", "Keep the newest line in view")
        self.follow_button.setCheckable(True)
        self.follow_button.setChecked(True)
        self.follow_button.toggled.connect(self.set_follow)

        self.copy_action = QAction("Copy", self)
        self.copy_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.copy_action.triggered.connect(self.copy_selection)
        self.table.addAction(self.copy_action)
        self.copy_all_action = QAction("Copy all", self)
        self.copy_all_action.setToolTip("Copy every shown line to the clipboard")
        self.copy_all_action.triggered.connect(self.copy_all)
        self.save_action = QAction("Save as…", self)
        self.save_action.setToolTip("Save the shown lines to a text file")
        self.save_action.triggered.connect(self._save_dialog)
        # Icons only on the bar (the tooltips and the context menu say what they do): the
        # bar shares the width of a 1366-pixel window with the plots' controls.
        style = self.style()
        self.copy_all_action.setIcon(
            QIcon.fromTheme("edit-copy", style.standardIcon(QStyle.StandardPixmap.SP_FileIcon))
        )
        self.save_action.setIcon(
            QIcon.fromTheme(
                "document-save-as", style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton)
            )
        )
        copy_button = QToolButton(self)
        copy_button.setDefaultAction(self.copy_all_action)
        save_button = QToolButton(self)
        save_button.setDefaultAction(self.save_action)
        for button in (copy_button, save_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.host_combo)
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.prev_button)
        bar.addWidget(self.next_button)
        bar.addWidget(self.match_label)
        bar.addStretch(0)
        bar.addWidget(self.follow_button)
        bar.addWidget(copy_button)
        bar.addWidget(save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)

        context = Qt.ShortcutContext.WidgetWithChildrenShortcut
        shortcuts = []
        for keys, slot in (
            (QKeySequence.StandardKey.Find, self.focus_search),
            (QKeySequence.StandardKey.FindNext, self.find_next),
            (QKeySequence.StandardKey.FindPrevious, self.find_previous),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(context)
            shortcut.activated.connect(slot)
            shortcuts.append(shortcut)
        # A window with its own Find action turns this one off: two enabled shortcuts on one
        # key are ambiguous, and Qt then triggers neither.
        self.find_shortcut = shortcuts[0]
        shift_enter = QShortcut(QKeySequence("Shift+Return"), self.search_edit)
        shift_enter.setContext(Qt.ShortcutContext.WidgetShortcut)
        shift_enter.activated.connect(self.find_previous)

        scroll = self.table.verticalScrollBar()
        scroll.valueChanged.connect(self._on_scrolled)
        scroll.rangeChanged.connect(self._on_range_changed)
        self._update_colors()
        self.table.installEventFilter(self)

    def _tool_button(self, text: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        return button

    # -- public API -------------------------------------------------------------------------

    @property
    def job_id(self) -> str | None:
        return self._job_id

    @property
    def max_lines(self) -> int:
        """The most lines kept (and shown); older lines are dropped first."""
        return self._max_lines

    @max_lines.setter
    def max_lines(self, value: int) -> None:
        self._max_lines = max(1, int(value))
        self._lines = deque(self._lines, maxlen=self._max_lines)
        self._rebuild()

    @property
    def follow(self) -> bool:
        """Whether new lines scroll the view to the end."""
        return self._follow

    @property
    def hosts(self) -> list[str]:
        """Hosts seen so far, in natural order (algo-2 before algo-10)."""
        return list(self._hosts)

    @property
    def loading(self) -> bool:
        """True while the log tail of the current job is being read."""
        return self._loading

    def line_count(self) -> int:
        """Lines kept for the current job (all hosts)."""
        return len(self._lines)

    def shown_lines(self) -> list[str]:
        """The lines as shown (filtered, with host prefixes when there are several hosts)."""
        return self.model.texts()

    def shown_text(self) -> str:
        return "\n".join(self.model.texts())

    def selected_text(self) -> str:
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return "\n".join(self.model.text(row) for row in rows)

    def set_job(
        self,
        job_id: str | None,
        run_dir: str | None,
        committed: Callable[[], int | None] | None = None,
    ) -> None:
        """Show another job: clear, then read the tail of its job.log on a worker thread, up
        to the length `committed` says the store accounts for (all of it when None)."""
        self._cancel_load()  # a read for the job shown before is of no use now
        self._job_id = job_id
        self._run_dir = run_dir
        self._lines.clear()
        self._pending = []
        self._hosts = []
        self._host_filter = None
        self.host_combo.blockSignals(True)
        self.host_combo.clear()
        self.host_combo.addItem(ALL_HOSTS)
        self.host_combo.blockSignals(False)
        self.model.prefix = False
        self._reset_model([])
        self.set_follow(True)
        self._loading = False
        if job_id is None or not run_dir:
            return
        path = Path(run_dir) / "logs" / JOB_LOG
        self._loading = True
        max_lines = self._max_lines
        self._tail_task = run_task(
            lambda: _load_tail(path, max_lines, committed), self._on_tail_loaded
        )

    def append_lines(self, job_id: str, lines: LogChunk | Sequence[LogLine]) -> None:
        """Append live lines (one model insert per call); lines of other jobs are ignored."""
        if job_id != self._job_id or not len(lines):
            return
        chunk = as_log_chunk(lines)
        if self._loading:
            self._pending.append(chunk)
            return
        self._add(chunk)

    def set_host_filter(self, host: str | None) -> None:
        """Show only `host`'s lines, or every host's with None."""
        index = 0 if host is None else self.host_combo.findText(host)
        if index < 0:
            raise ValueError(f"unknown host {host!r}; known: {self._hosts}")
        self.host_combo.setCurrentIndex(index)

    @Slot(bool)
    def set_follow(self, on: bool) -> None:
        """Turn follow mode on (jump to the end and stay there) or off."""
        changed = on != self._follow
        self._follow = on
        if self.follow_button.isChecked() != on:
            self.follow_button.blockSignals(True)
            self.follow_button.setChecked(on)
            self.follow_button.blockSignals(False)
        if on:
            self._scroll_to_end()
        if changed:
            self.sig_follow_changed.emit(on)

    @Slot()
    def focus_search(self) -> None:
        self.search_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_edit.selectAll()

    @Slot()
    def find_next(self) -> bool:
        """Select the next line with a match after the current one (wrapping); False if none."""
        return self._find(backward=False)

    @Slot()
    def find_previous(self) -> bool:
        """Select the previous line with a match (wrapping around); False if none."""
        return self._find(backward=True)

    def current_row(self) -> int:
        """The current (last found or clicked) line, or -1."""
        index = self.table.currentIndex()
        return index.row() if index.isValid() else -1

    @Slot()
    def copy_selection(self) -> None:
        """Copy the selected lines (Ctrl+C)."""
        text = self.selected_text()
        if text:
            QGuiApplication.clipboard().setText(text)

    @Slot()
    def copy_all(self) -> None:
        QGuiApplication.clipboard().setText(self.shown_text())

    def save_to(self, path: str | os.PathLike[str]) -> None:
        """Write the shown lines to `path` (UTF-8, one line per line, trailing newline)."""
        lines = self.model.texts()
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(line + "\n" for line in lines)

    # -- loading ----------------------------------------------------------------------------

    def _cancel_load(self) -> None:
        if self._tail_task is not None:
            self._tail_task.cancel()
            self._tail_task = None

    def closeEvent(self, event: QCloseEvent) -> None:
        self._cancel_load()
        self._loading = False
        super().closeEvent(event)

    @Slot(object)
    def _on_tail_loaded(self, loaded: LogChunk) -> None:
        self._tail_task = None
        self._loading = False
        pending = LogChunk.merge(self._pending)
        self._pending = []
        if len(pending) and len(loaded):
            # The live lines that came in meanwhile, minus those the read already returned.
            keys = _line_keys(pending, len(pending))
            fresh = drop_overlap(_line_keys(loaded, len(pending)), keys, _identity)
            pending = pending.tail(len(fresh))
        self._add(LogChunk.merge([loaded, pending]))
        if self._job_id is not None:
            self.sig_loaded.emit(self._job_id)

    # -- rendering --------------------------------------------------------------------------

    def _add(self, chunk: LogChunk) -> None:
        if not len(chunk):
            return
        self._lines.extend(chunk.rows)
        new_hosts = set(chunk.hosts).difference(self._hosts)
        if new_hosts:
            self._hosts = sorted([*self._hosts, *new_hosts], key=_host_sort_key)
            self.host_combo.blockSignals(True)
            current = self.host_combo.currentText()
            self.host_combo.clear()
            self.host_combo.addItems([ALL_HOSTS, *self._hosts])
            self.host_combo.setCurrentIndex(max(0, self.host_combo.findText(current)))
            self.host_combo.blockSignals(False)
            if len(self._hosts) > 1 and not self.model.prefix:
                self.model.prefix = True  # earlier lines get their [host] prefix too
                self._widest += 3 + max(len(h) for h in self._hosts)
                self._update_width()
                self.table.viewport().update()
        self._insert(chunk)

    def _visible(self, lines: list[_Kept]) -> list[_Kept]:
        host = self._host_filter
        return lines if host is None else [ln for ln in lines if ln[0] == host]

    def _insert(self, chunk: LogChunk) -> None:
        """Append at the end, dropping the oldest past `max_lines`: one model update a call."""
        lines = chunk.rows_of(self._host_filter)[-self._max_lines :]
        if not lines:
            return
        widest = chunk.widest  # of every host's lines: at worst a little wider than needed
        if self.model.prefix:
            widest += 3 + max(len(host) for host in chunk.hosts)
        self._programmatic_scroll += 1
        try:
            self.model.append(lines, self._max_lines)
            if widest > self._widest:
                self._widest = widest
                self._update_width()
            if self._follow:
                self._scroll_to_end()
        finally:
            self._programmatic_scroll -= 1

    def _reset_model(self, lines: list[_Kept]) -> None:
        self._programmatic_scroll += 1
        try:
            self.model.reset(lines)
            self._widest = 0
            if lines:
                self._widest = max(len(text) for _, _, text in lines)
                if self.model.prefix:
                    self._widest += 3 + max(len(host) for host in self._hosts)
            self._update_width()
        finally:
            self._programmatic_scroll -= 1
        self._update_match_count()

    def _rebuild(self) -> None:
        """Show the kept lines again (after a filter or size change)."""
        follow = self._follow
        value = self.table.verticalScrollBar().value()
        self._reset_model(self._visible(list(self._lines))[-self._max_lines :])
        self._programmatic_scroll += 1
        try:
            if follow:
                self._scroll_to_end()
            else:
                self.table.verticalScrollBar().setValue(value)
        finally:
            self._programmatic_scroll -= 1

    def _update_metrics(self) -> None:
        metrics = QFontMetrics(self.table.font())
        self._char_width = max(1, metrics.horizontalAdvance("M"))
        self.table.verticalHeader().setDefaultSectionSize(metrics.height() + 2)
        self.table.verticalHeader().setMinimumSectionSize(1)

    def _update_width(self) -> None:
        # A fixed-pitch font: the widest line in characters gives the column width.
        width = self._widest * self._char_width + 2 * _TEXT_PAD
        self.table.setColumnWidth(0, max(width, self.table.viewport().width()))

    def _scroll_to_end(self) -> None:
        self._programmatic_scroll += 1
        try:
            bar = self.table.verticalScrollBar()
            bar.setValue(bar.maximum())
        finally:
            self._programmatic_scroll -= 1

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        if self._programmatic_scroll:
            return
        at_end = value >= self.table.verticalScrollBar().maximum()
        if at_end != self._follow:
            self.set_follow(at_end)

    @Slot(int, int)
    def _on_range_changed(self, _minimum: int, _maximum: int) -> None:
        if self._follow:
            self._scroll_to_end()

    @Slot(int)
    def _on_host_changed(self, index: int) -> None:
        self._host_filter = None if index <= 0 else self.host_combo.itemText(index)
        self._rebuild()

    # -- theme ------------------------------------------------------------------------------

    def _update_colors(self) -> None:
        """Stream colours that read well on the current palette (light or dark)."""
        base = self.table.palette().color(QPalette.ColorRole.Base)
        dark = base.lightness() < 128
        self.model.colors = {
            "stderr": QColor("#ff7b72" if dark else "#b3261e"),
            "system": QColor("#9aa4ae" if dark else "#5f6b76"),
        }
        self.match_color = QColor(255, 200, 0, 90 if dark else 120)
        self.table.viewport().update()

    def stream_color(self, stream: str) -> QColor:
        """The text colour of `stream` lines (the palette's text colour for stdout)."""
        color = self.model.colors.get(stream)
        return color if color is not None else self.table.palette().color(QPalette.ColorRole.Text)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # The table's own palette decides (it follows ours unless set on it directly).
        if watched is self.table:
            if event.type() == QEvent.Type.PaletteChange:
                self._update_colors()
            elif event.type() == QEvent.Type.FontChange:
                self._update_metrics()
                self._update_width()
        return super().eventFilter(watched, event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_width()

    # -- search -----------------------------------------------------------------------------

    def _find(self, backward: bool) -> bool:
        needle = self.needle
        count = self.model.rowCount()
        if not needle or not count:
            return False
        texts = self.model.texts()
        current = self.current_row()
        if backward:
            start = current - 1 if current >= 0 else count - 1
            order = [*range(start, -1, -1), *range(count - 1, start, -1)]
        else:
            start = current + 1 if current >= 0 else 0
            order = [*range(start, count), *range(0, start)]
        for row in order:
            if needle in texts[row].lower():
                index = self.model.index(row, 0)
                self.table.setCurrentIndex(index)  # selects the line
                # Scrolling away from the end turns follow off through `_on_scrolled`.
                self.table.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
                # Horizontally: show the match itself, not the middle of the longest line.
                x = _TEXT_PAD + texts[row].lower().find(needle) * self._char_width
                hbar = self.table.horizontalScrollBar()
                page = self.table.viewport().width()
                if not hbar.value() <= x < hbar.value() + page - len(needle) * self._char_width:
                    hbar.setValue(max(0, x - page // 3))
                return True
        return False

    @Slot(str)
    def _on_search_changed(self, text: str) -> None:
        self.needle = text.lower()
        self._update_match_count()
        self.table.viewport().update()

    def match_count(self) -> int:
        """Case-insensitive matches of the search text in the shown lines."""
        if not self.needle:
            return 0
        return self.shown_text().lower().count(self.needle)

    def _update_match_count(self) -> None:
        if not self.needle:
            self.match_label.clear()
            return
        count = self.match_count()
        self.match_label.setText(f"{count} match" + ("" if count == 1 else "es"))

    def highlighted_ranges(self) -> list[tuple[int, int, int]]:
        """(row, position, length) of the matches highlighted on screen."""
        needle = self.needle
        if not needle:
            return []
        first = self.table.rowAt(0)
        last = self.table.rowAt(self.table.viewport().height() - 1)
        if first < 0:
            return []
        if last < 0:
            last = self.model.rowCount() - 1
        out = []
        for row in range(first, last + 1):
            text = self.model.text(row).lower()
            pos = text.find(needle)
            while pos >= 0:
                out.append((row, pos, len(needle)))
                pos = text.find(needle, pos + len(needle))
        return out

    # -- menus and dialogs ------------------------------------------------------------------

    @Slot(object)
    def _show_context_menu(self, pos: object) -> None:
        menu = QMenu(self)
        menu.addAction(self.copy_action)
        menu.addAction(self.copy_all_action)
        menu.addSeparator()
        menu.addAction(self.save_action)
        menu.exec(self.table.viewport().mapToGlobal(pos))  # type: ignore[call-overload]
        menu.deleteLater()

    @Slot()
    def _save_dialog(self) -> None:
        default = f"{self._job_id or 'log'}.log"
        if self._run_dir:  # start in the run's folder, not the process's working folder
            default = str(Path(self._run_dir) / default)
        path, _ = QFileDialog.getSaveFileName(
            self, "Save log as", default, "Log files (*.log *.txt);;All files (*)"
        )
        if not path:
            return
        try:
            self.save_to(path)
        except OSError as exc:
            QMessageBox.warning(self, "Save log", f"Could not save {path}: {exc}")
