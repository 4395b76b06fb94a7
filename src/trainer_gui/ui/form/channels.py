"""The input-channels table: drop folders, files or s3:// text to add channels; edit, reorder,
remove them.

Columns come from `ChannelSpec.model_fields` (titles as headers, descriptions as tooltips); each
row is checked with the model itself, so the messages are the ones `trainer-gui run` would print.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError
from PySide6.QtCore import QMimeData, Qt, Slot
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.spec.io import format_validation_error
from trainer_gui.core.spec.model import CHANNEL_NAME_RE, MAX_CHANNELS, ChannelSpec
from trainer_gui.ui.row_table import RowTable

log = logging.getLogger(__name__)

FIELDS = list(ChannelSpec.model_fields)  # name, source, content_type, input_mode
_INVALID = re.compile(r"[^A-Za-z0-9.\-_]+")
MAX_NAME = 64


def sanitize_channel_name(raw: str) -> str:
    """A folder or file name -> a valid channel name (letters, digits, '.', '-', '_')."""
    name = _INVALID.sub("_", raw.strip()).strip("_")
    name = name[:MAX_NAME].rstrip("_")
    return name or "data"


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`... whichever is free, kept within 64 characters."""
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: MAX_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def name_for_source(source: str) -> str:
    """The channel name a dropped folder, file or s3:// URI suggests."""
    if source.startswith("s3://"):
        parts = [p for p in source[5:].split("/") if p]
        return sanitize_channel_name(parts[-1] if parts else "data")
    path = Path(source)
    stem = path.name if path.is_dir() or not path.suffix else path.stem
    return sanitize_channel_name(stem)


def sources_from_mime(mime: QMimeData) -> list[str]:
    """Local paths from dropped URLs, and s3:// URIs from dropped URLs or text."""
    out: list[str] = []
    if mime.hasUrls():
        for url in mime.urls():
            if url.isLocalFile():
                out.append(url.toLocalFile())
            elif url.scheme() == "s3":
                out.append(url.toString())
    if not out and mime.hasText():
        for line in mime.text().splitlines():
            line = line.strip()
            if line.startswith("s3://"):
                out.append(line)
            elif line.startswith("file://"):
                from PySide6.QtCore import QUrl

                out.append(QUrl(line).toLocalFile())
    return out


class _DropTable(QTableWidget):
    """The table itself: accepts external drops and moves rows on internal drags."""

    def __init__(self, owner: ChannelsTable) -> None:
        super().__init__(0, len(FIELDS), owner)
        self._owner = owner
        self.setAcceptDrops(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDropIndicatorShown(True)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.source() is self or sources_from_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.source() is self:
            event.setDropAction(Qt.DropAction.MoveAction)
            event.accept()
        elif sources_from_mime(event.mimeData()):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        pos = event.position().toPoint()
        target = self.rowAt(pos.y())
        if event.source() is self:
            source = self.currentRow()
            if source >= 0:
                self._owner.move_row(source, self.rowCount() - 1 if target < 0 else target)
            # Copy, not Move: we moved the row ourselves; a Move would make Qt delete the source.
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            return
        added = self._owner.add_from_mime(event.mimeData())
        if added:
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()


class ChannelsTable(RowTable):
    """Input channels (list[ChannelSpec]) as an editable table with drag and drop."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.base_dir: Path | None = None
        self.set_table(_DropTable(self), checked_columns=len(FIELDS))
        header = self.table.horizontalHeader()
        for col, field in enumerate(FIELDS):
            info = ChannelSpec.model_fields[field]
            item = QTableWidgetItem(info.title or field)
            item.setToolTip(info.description or "")
            self.table.setHorizontalHeaderItem(col, item)
        header.setSectionResizeMode(FIELDS.index("source"), QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(FIELDS.index("name"), 130)
        self.table.setColumnWidth(FIELDS.index("content_type"), 110)
        self.table.setColumnWidth(FIELDS.index("input_mode"), 100)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setMinimumHeight(130)
        self.table.setToolTip(
            "Drop folders or files here (or s3:// URIs as text) to add channels; drag rows to "
            "reorder; double-click to edit."
        )
        self.hint = QLabel("Drop data folders or files here, or s3:// URIs.", self)
        self.hint.setEnabled(False)

        self.add_folder_button = QPushButton("Add folder…", self)
        self.add_folder_button.clicked.connect(self._on_add_folder)
        self.add_file_button = QPushButton("Add file…", self)
        self.add_file_button.clicked.connect(self._on_add_file)
        self.add_s3_button = QPushButton("Add S3 URI…", self)
        self.add_s3_button.clicked.connect(self._on_add_s3)
        self.up_button = QPushButton("Up", self)
        self.up_button.setToolTip("Move the selected channel up (Alt+Up)")
        self.up_button.clicked.connect(self.move_up)
        self.down_button = QPushButton("Down", self)
        self.down_button.setToolTip("Move the selected channel down (Alt+Down)")
        self.down_button.clicked.connect(self.move_down)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Remove the selected channel (Del)")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons = QHBoxLayout()
        for button in (
            self.add_folder_button,
            self.add_file_button,
            self.add_s3_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        for button in (self.up_button, self.down_button, self.remove_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.hint)
        layout.addLayout(buttons)
        self.add_shortcut(QKeySequence("Alt+Up"), self.move_up)
        self.add_shortcut(QKeySequence("Alt+Down"), self.move_down)

    # -- values ------------------------------------------------------------------------------

    def _cell(self, row: int, field: str) -> str:
        col = FIELDS.index(field)
        widget = self.table.cellWidget(row, col)
        if isinstance(widget, QComboBox):
            return widget.currentText()
        item = self.table.item(row, col)
        return item.text().strip() if item is not None else ""

    def row_data(self, row: int) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self._cell(row, "name"),
            "source": self._cell(row, "source"),
        }
        content_type = self._cell(row, "content_type")
        if content_type:
            data["content_type"] = content_type
        mode = self._cell(row, "input_mode")
        if mode and mode != ChannelSpec.model_fields["input_mode"].default:
            data["input_mode"] = mode
        return data

    def value(self) -> list[dict[str, Any]]:
        return [self.row_data(row) for row in range(self.table.rowCount())]

    def names(self) -> list[str]:
        return [self._cell(row, "name") for row in range(self.table.rowCount())]

    def set_value(self, channels: list[Any] | None) -> None:
        with self.quietly():
            self.table.setRowCount(0)
            for ch in channels or []:
                data = ch.model_dump() if isinstance(ch, ChannelSpec) else dict(ch)
                self._append(data)
        self.changed()

    def _append(self, data: dict[str, Any], row: int | None = None) -> int:
        row = self.table.rowCount() if row is None else row
        self.table.insertRow(row)
        for col, field in enumerate(FIELDS):
            info = ChannelSpec.model_fields[field]
            choices = get_args(info.annotation)
            value = data.get(field)
            if field == "input_mode" and choices:
                combo = QComboBox(self.table)
                combo.addItems([str(c) for c in choices])
                combo.setCurrentText(str(value or info.default))
                combo.setToolTip(info.description or "")
                combo.currentTextChanged.connect(self._on_combo_changed)
                self.table.setCellWidget(row, col, combo)
            else:
                self.table.setItem(row, col, QTableWidgetItem("" if value is None else str(value)))
        return row

    def add_channel(self, source: str, name: str | None = None) -> str:
        """Add one channel; the name is derived from the source, sanitised and made unique."""
        source = self._display_path(source)
        base = sanitize_channel_name(name) if name else name_for_source(source)
        final = unique_name(base, set(self.names()))
        with self.quietly():
            self._append({"name": final, "source": source})
        self.changed()
        return final

    def add_sources(self, sources: list[str]) -> list[str]:
        added = []
        for source in sources:
            if self.table.rowCount() >= MAX_CHANNELS:
                break
            added.append(self.add_channel(source))
        return added

    def add_from_mime(self, mime: QMimeData) -> list[str]:
        """What a drop adds: one channel per local path or s3:// URI in the data."""
        return self.add_sources(sources_from_mime(mime))

    def _display_path(self, source: str) -> str:
        """Paths inside the project folder are kept relative, so the project can move."""
        if source.startswith("s3://") or self.base_dir is None:
            return source
        path = Path(source)
        if not path.is_absolute():
            return source
        try:
            rel = path.resolve().relative_to(self.base_dir.resolve())
        except (ValueError, OSError):
            return str(path)
        return rel.as_posix() or "."

    # -- editing -----------------------------------------------------------------------------

    def move_row(self, source: int, target: int) -> None:
        count = self.table.rowCount()
        if not (0 <= source < count) or not (0 <= target < count) or source == target:
            return
        data = self.value()
        item = data.pop(source)
        data.insert(target, item)
        self.set_value(data)
        self.table.setCurrentCell(target, 0)

    @Slot()
    def move_up(self) -> None:
        row = self.table.currentRow()
        self.move_row(row, row - 1)

    @Slot()
    def move_down(self) -> None:
        row = self.table.currentRow()
        self.move_row(row, row + 1)

    # -- checks ------------------------------------------------------------------------------

    def check_rows(self) -> dict[int, str]:
        """Each row checked by ChannelSpec itself, plus names used twice."""
        problems: dict[int, str] = {}
        seen: dict[str, int] = {}
        context = {"base_dir": self.base_dir}
        for row in range(self.table.rowCount()):
            data = self.row_data(row)
            try:
                ChannelSpec.model_validate(data, context=context)
            except ValidationError as exc:
                problems[row] = "; ".join(format_validation_error(exc))
                continue
            name = data["name"]
            if name in seen:
                problems[row] = (
                    f"channel name {name!r} is used twice (row {seen[name] + 1}); rename one"
                )
            seen[name] = row
        return problems

    def after_change(self) -> None:
        self.hint.setVisible(self.table.rowCount() == 0)

    @Slot(str)
    def _on_combo_changed(self, text: str) -> None:
        if not self._loading:
            self.changed()

    # -- buttons -----------------------------------------------------------------------------

    def _start_dir(self) -> str:
        return str(self.base_dir) if self.base_dir else os.path.expanduser("~")

    @Slot()
    def _on_add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a data folder", self._start_dir())
        if path:
            self.add_channel(path)

    @Slot()
    def _on_add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a data file", self._start_dir())
        if path:
            self.add_channel(path)

    @Slot()
    def _on_add_s3(self) -> None:
        uri, ok = QInputDialog.getText(self, "Add an S3 channel", "s3:// URI:", text="s3://")
        if ok and uri.strip() and uri.strip() != "s3://":
            self.add_channel(uri.strip())


def is_valid_channel_name(name: str) -> bool:
    return bool(name) and len(name) <= MAX_NAME and bool(CHANNEL_NAME_RE.match(name))
