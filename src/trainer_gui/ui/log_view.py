"""A job's live log: bounded, filterable by host, searchable, following the end unless told not to.

Lines come from two places: the tail of `<run_dir>/logs/job.log`, read on a worker thread when a
job is selected, and `append_lines` (fed by `JobEventBridge.sig_logs`) while the job runs. Memory
is bounded by `max_lines`: the view keeps at most that many lines, the oldest go first.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterator
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

from PySide6.QtCore import QEvent, QObject, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QColor,
    QFontDatabase,
    QGuiApplication,
    QKeySequence,
    QPalette,
    QResizeEvent,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.jobs import JOB_LOG, parse_log_line
from trainer_gui.core.runners.events import LogLine
from trainer_gui.ui.bridge import drop_overlap

DEFAULT_MAX_LINES = 100_000
ALL_HOSTS = "All hosts"
_READ_BLOCK = 1 << 20
# Visible-area highlighting gives up past this many matches (a one-letter query on a wide view).
_MAX_HIGHLIGHTS = 2000


def _lines_backwards(fh: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary file, last first, read in 1 MiB blocks from the end."""
    fh.seek(0, os.SEEK_END)
    pos = fh.tell()
    carry = b""
    while pos > 0:
        size = min(_READ_BLOCK, pos)
        pos -= size
        fh.seek(pos)
        pieces = (fh.read(size) + carry).split(b"\n")
        carry = pieces[0]  # may continue in the previous block
        yield from reversed(pieces[1:])
    yield carry


def read_log_tail(path: str | os.PathLike[str], max_lines: int) -> list[LogLine]:
    """The last `max_lines` lines of a job.log as `LogLine`s, reading the file from its end.

    Only the blocks holding those lines are read, so a multi-gigabyte log costs what is shown.
    Lines that do not parse (a torn last line, stray text) are skipped and not counted.
    """
    if max_lines <= 0:
        return []
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with-block below
    except OSError:
        return []
    out: list[LogLine] = []
    with fh:
        for piece in _lines_backwards(fh):
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


_Kept = tuple[str, str, str]  # (host, stream, text)


def _line_key(line: LogLine) -> tuple[str, str, str, float]:
    # job.log keeps times to the millisecond; live lines carry full precision.
    return (line.host, line.stream, line.text, round(line.time, 3))


def _host_sort_key(host: str) -> tuple[str, int, str]:
    m = re.match(r"^(.*?)(\d+)$", host)
    return (m.group(1), int(m.group(2)), host) if m else (host, -1, host)


class _TailSignals(QObject):
    sig_done = Signal(int, object)
    """(generation, list[LogLine]): a tail read finished."""


class _TailLoader(QRunnable):
    """Reads the tail of a job.log on a pool thread and hands the lines back by signal."""

    def __init__(self, signals: _TailSignals, generation: int, path: Path, max_lines: int):
        super().__init__()
        self._signals = signals
        self._generation = generation
        self._path = path
        self._max_lines = max_lines

    def run(self) -> None:
        try:
            lines = read_log_tail(self._path, self._max_lines)
        except Exception:  # a failed read shows an empty log, never a crash
            lines = []
        self._signals.sig_done.emit(self._generation, lines)


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
        self._generation = 0
        self._loading = False
        self._pending: list[LogLine] = []
        self._shown = 0  # lines in the document
        self._stream_formats: dict[str, QTextCharFormat] = {}

        self._signals = _TailSignals(self)
        self._signals.sig_done.connect(self._on_tail_loaded)

        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setUndoRedoEnabled(False)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        # No setMaximumBlockCount: it drops old blocks one at a time on every insert, which
        # costs ~50 ms per batch once the log is full; `_insert` trims in one removal instead.
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.text.customContextMenuRequested.connect(self._show_context_menu)

        self.host_combo = QComboBox(self)
        self.host_combo.addItem(ALL_HOSTS)
        self.host_combo.setToolTip("Show the lines of one host only")
        self.host_combo.currentIndexChanged.connect(self._on_host_changed)

        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search (Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(self._on_search_changed)
        self.search_edit.returnPressed.connect(self.find_next)
        self.prev_button = self._tool_button("◀", "Previous match (Shift+Enter, Shift+F3)")
        self.prev_button.clicked.connect(self.find_previous)
        self.next_button = self._tool_button("▶", "Next match (Enter, F3)")
        self.next_button.clicked.connect(self.find_next)
        self.match_label = QLabel(self)

        self.follow_button = self._tool_button("Follow", "Keep the newest line in view")
        self.follow_button.setCheckable(True)
        self.follow_button.setChecked(True)
        self.follow_button.toggled.connect(self.set_follow)

        self.copy_all_action = QAction("Copy all", self)
        self.copy_all_action.setToolTip("Copy every shown line to the clipboard")
        self.copy_all_action.triggered.connect(self.copy_all)
        self.save_action = QAction("Save as…", self)
        self.save_action.setToolTip("Save the shown lines to a text file")
        self.save_action.triggered.connect(self._save_dialog)
        copy_button = QToolButton(self)
        copy_button.setDefaultAction(self.copy_all_action)
        save_button = QToolButton(self)
        save_button.setDefaultAction(self.save_action)

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
        layout.addWidget(self.text, 1)

        context = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for keys, slot in (
            (QKeySequence.StandardKey.Find, self.focus_search),
            (QKeySequence.StandardKey.FindNext, self.find_next),
            (QKeySequence.StandardKey.FindPrevious, self.find_previous),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(context)
            shortcut.activated.connect(slot)
        shift_enter = QShortcut(QKeySequence("Shift+Return"), self.search_edit)
        shift_enter.setContext(Qt.ShortcutContext.WidgetShortcut)
        shift_enter.activated.connect(self.find_previous)

        bar_widget = self.text.verticalScrollBar()
        bar_widget.valueChanged.connect(self._on_scrolled)
        bar_widget.rangeChanged.connect(self._on_range_changed)
        self._update_formats()
        self.text.installEventFilter(self)

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

    def shown_text(self) -> str:
        """The text as shown (filtered, with host prefixes when there are several hosts)."""
        return self.text.toPlainText()

    def set_job(self, job_id: str | None, run_dir: str | None) -> None:
        """Show another job: clear, then read the tail of its job.log on a worker thread."""
        self._generation += 1
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
        self._clear_document()
        self.set_follow(True)
        self._loading = False
        if job_id is None or not run_dir:
            return
        path = Path(run_dir) / "logs" / JOB_LOG
        self._loading = True
        loader = _TailLoader(self._signals, self._generation, path, self._max_lines)
        QThreadPool.globalInstance().start(loader)

    def append_lines(self, job_id: str, lines: list[LogLine]) -> None:
        """Append live lines (one document insert per call); lines of other jobs are ignored."""
        if job_id != self._job_id or not lines:
            return
        if self._loading:
            self._pending.extend(lines)
            return
        self._add(lines)

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
        """Select the next match after the cursor (wrapping around); False if none."""
        return self._find(backward=False)

    @Slot()
    def find_previous(self) -> bool:
        """Select the previous match before the cursor (wrapping around); False if none."""
        return self._find(backward=True)

    @Slot()
    def copy_all(self) -> None:
        QGuiApplication.clipboard().setText(self.shown_text())

    def save_to(self, path: str | os.PathLike[str]) -> None:
        """Write the shown lines to `path` (UTF-8, one line per line, trailing newline)."""
        text = self.shown_text()
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text + ("\n" if text else ""))

    # -- loading ----------------------------------------------------------------------------

    @Slot(int, object)
    def _on_tail_loaded(self, generation: int, lines: list[LogLine]) -> None:
        if generation != self._generation:
            return  # a later set_job superseded this read
        self._loading = False
        pending = drop_overlap(lines, self._pending, _line_key)
        self._pending = []
        self._add(lines + pending)
        if self._job_id is not None:
            self.sig_loaded.emit(self._job_id)

    # -- rendering --------------------------------------------------------------------------

    def _add(self, lines: list[LogLine]) -> None:
        kept = [(ln.host, ln.stream, ln.text) for ln in lines]
        self._lines.extend(kept)
        new_hosts = {line[0] for line in kept}.difference(self._hosts)
        if new_hosts:
            was_multi = len(self._hosts) > 1
            self._hosts = sorted([*self._hosts, *new_hosts], key=_host_sort_key)
            self.host_combo.blockSignals(True)
            current = self.host_combo.currentText()
            self.host_combo.clear()
            self.host_combo.addItems([ALL_HOSTS, *self._hosts])
            self.host_combo.setCurrentIndex(max(0, self.host_combo.findText(current)))
            self.host_combo.blockSignals(False)
            if not was_multi and len(self._hosts) > 1 and self._shown:
                self._rebuild()  # earlier lines now need their [host] prefix
                return
        self._insert(kept)

    def _visible(self, lines: list[_Kept]) -> list[_Kept]:
        host = self._host_filter
        return lines if host is None else [ln for ln in lines if ln[0] == host]

    def _insert(self, lines: list[_Kept]) -> None:
        """Append lines at the end in one edit block, one insert per run of same-stream lines.

        Lines past `max_lines` are removed from the top in the same edit block, in one go.
        """
        lines = self._visible(lines)[-self._max_lines :]
        if not lines:
            return
        formats = self._stream_formats
        prefix = len(self._hosts) > 1
        runs: list[tuple[str, list[str]]] = []
        for stream, group in groupby(lines, key=itemgetter(1)):
            if prefix:
                texts = [f"[{host}] {text}" for host, _, text in group]
            else:
                texts = [text for _, _, text in group]
            runs.append((stream if stream in formats else "stdout", texts))
        self._programmatic_scroll += 1
        try:
            doc = self.text.document()
            cursor = QTextCursor(doc)
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.beginEditBlock()
            first = self._shown == 0
            for stream, texts in runs:
                body = "\n".join(texts)
                cursor.insertText(body if first else "\n" + body, formats[stream])
                first = False
            self._shown += len(lines)
            excess = self._shown - self._max_lines
            if excess > 0:
                top = QTextCursor(doc)
                top.setPosition(
                    doc.findBlockByNumber(excess).position(), QTextCursor.MoveMode.KeepAnchor
                )
                top.removeSelectedText()
                self._shown = self._max_lines
            cursor.endEditBlock()
            if self._follow:
                self._scroll_to_end()
        finally:
            self._programmatic_scroll -= 1
        self._refresh_highlights()

    def _clear_document(self) -> None:
        self._programmatic_scroll += 1
        try:
            self.text.clear()
            self._shown = 0
        finally:
            self._programmatic_scroll -= 1
        self.match_label.clear()
        self.text.setExtraSelections([])

    def _rebuild(self) -> None:
        """Render the kept lines again (after a filter, prefix, palette or size change)."""
        follow = self._follow
        value = self.text.verticalScrollBar().value()
        self._clear_document()
        self._insert(list(self._lines))
        if not follow:
            self._programmatic_scroll += 1
            try:
                self.text.verticalScrollBar().setValue(value)
            finally:
                self._programmatic_scroll -= 1
        self._update_match_count()

    def _scroll_to_end(self) -> None:
        self._programmatic_scroll += 1
        try:
            bar = self.text.verticalScrollBar()
            bar.setValue(bar.maximum())
        finally:
            self._programmatic_scroll -= 1

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        self._refresh_highlights()
        if self._programmatic_scroll:
            return
        at_end = value >= self.text.verticalScrollBar().maximum()
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

    def _update_formats(self) -> None:
        """Stream colours that read well on the current palette (light or dark)."""
        base = self.text.palette().color(QPalette.ColorRole.Base)
        dark = base.lightness() < 128
        stdout = QTextCharFormat()
        stderr = QTextCharFormat()
        stderr.setForeground(QColor("#ff7b72" if dark else "#b3261e"))
        system = QTextCharFormat()
        system.setForeground(QColor("#9aa4ae" if dark else "#5f6b76"))
        system.setFontItalic(True)
        self._stream_formats = {"stdout": stdout, "stderr": stderr, "system": system}

    def stream_color(self, stream: str) -> QColor:
        """The foreground colour used for `stream` lines (the default text colour for stdout)."""
        fmt = self._stream_formats.get(stream, self._stream_formats["stdout"])
        if fmt.hasProperty(QTextCharFormat.Property.ForegroundBrush):
            return fmt.foreground().color()
        return self.text.palette().color(QPalette.ColorRole.Text)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # The text edit's own palette decides (it follows ours unless set on it directly).
        if watched is self.text and event.type() == QEvent.Type.PaletteChange:
            self._update_formats()
            if self._shown:
                self._rebuild()
        return super().eventFilter(watched, event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._refresh_highlights()

    # -- search -----------------------------------------------------------------------------

    def _find(self, backward: bool) -> bool:
        needle = self.search_edit.text()
        if not needle:
            return False
        flags = QTextDocument.FindFlag(0)
        if backward:
            flags |= QTextDocument.FindFlag.FindBackward
        doc = self.text.document()
        found = doc.find(needle, self.text.textCursor(), flags)
        if found.isNull():  # wrap around
            start = QTextCursor(doc)
            start.movePosition(
                QTextCursor.MoveOperation.Start if not backward else QTextCursor.MoveOperation.End
            )
            found = doc.find(needle, start, flags)
        if found.isNull():
            return False
        self.text.setTextCursor(found)  # scrolls to it; leaving the end turns follow off
        self.text.ensureCursorVisible()
        self._refresh_highlights()
        return True

    @Slot(str)
    def _on_search_changed(self, _text: str) -> None:
        self._update_match_count()
        self._refresh_highlights()

    def match_count(self) -> int:
        """Case-insensitive matches of the search text in the shown lines."""
        needle = self.search_edit.text().lower()
        if not needle:
            return 0
        return self.shown_text().lower().count(needle)

    def _update_match_count(self) -> None:
        if not self.search_edit.text():
            self.match_label.clear()
            return
        count = self.match_count()
        self.match_label.setText(f"{count} match" + ("" if count == 1 else "es"))

    def highlighted_ranges(self) -> list[tuple[int, int]]:
        """(position, length) of the matches highlighted in the visible area."""
        return [
            (sel.cursor.selectionStart(), sel.cursor.selectionEnd() - sel.cursor.selectionStart())
            for sel in self.text.extraSelections()
        ]

    def _refresh_highlights(self) -> None:
        """Highlight matches in the visible blocks only, so the cost does not grow with the log."""
        needle = self.search_edit.text().lower()
        if not needle:
            if self.text.extraSelections():
                self.text.setExtraSelections([])
            return
        fmt = QTextCharFormat()
        highlight = self.palette().color(QPalette.ColorRole.Highlight)
        highlight.setAlpha(90)
        fmt.setBackground(highlight)
        selections: list[QTextEdit.ExtraSelection] = []
        block = self.text.firstVisibleBlock()
        height = self.text.viewport().height()
        offset = self.text.contentOffset()
        doc = self.text.document()
        while block.isValid():
            top = self.text.blockBoundingGeometry(block).translated(offset).top()
            if top > height:
                break
            text = block.text().lower()
            pos = text.find(needle)
            while pos >= 0 and len(selections) < _MAX_HIGHLIGHTS:
                cursor = QTextCursor(doc)
                cursor.setPosition(block.position() + pos)
                cursor.setPosition(
                    block.position() + pos + len(needle), QTextCursor.MoveMode.KeepAnchor
                )
                sel = QTextEdit.ExtraSelection()
                sel.cursor = cursor
                sel.format = fmt
                selections.append(sel)
                pos = text.find(needle, pos + len(needle))
            block = block.next()
        self.text.setExtraSelections(selections)

    # -- menus and dialogs ------------------------------------------------------------------

    @Slot(object)
    def _show_context_menu(self, pos: object) -> None:
        menu = self.text.createStandardContextMenu()
        menu.addSeparator()
        menu.addAction(self.copy_all_action)
        menu.addAction(self.save_action)
        menu.exec(self.text.viewport().mapToGlobal(pos))  # type: ignore[call-overload]
        menu.deleteLater()

    @Slot()
    def _save_dialog(self) -> None:
        default = f"{self._job_id or 'log'}.log"
        path, _ = QFileDialog.getSaveFileName(
            self, "Save log as", default, "Log files (*.log *.txt);;All files (*)"
        )
        if not path:
            return
        try:
            self.save_to(path)
        except OSError as exc:
            QMessageBox.warning(self, "Save log", f"Could not save {path}: {exc}")
