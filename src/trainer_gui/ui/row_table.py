"""Tables of rows edited in place and checked row by row: what the job form's table editors share.

The channels, the hyperparameters (and other name/value maps) and the metric definitions are
each a `QTableWidget` the user types into. They differ in their columns and in how a row is
checked; everything else is here: programmatic changes that do not count as the user's
(`quietly`), removing the selected rows (button and Del), rows marked with their problem (a
tinted background and the message as tooltip), the model's messages for `[i].field` put on row
i, and one `sig_changed` after every change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import BaseModel
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

ERROR_BG = QColor(214, 69, 69, 60)
_ROW_PATH = re.compile(r"^\[(\d+)\]")


class RowTable(QWidget):
    """A `QTableWidget` of rows checked by `check_rows`; a subclass builds the table, hands it
    over with `set_table`, and lays out the rest.

    `checked_columns` (the first ones) are the columns whose edits are the user's changes and
    which are tinted when their row has a problem; later columns show derived values.
    """

    sig_changed = Signal()
    """After every change to the rows (typed, added, removed, set)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table: QTableWidget  # given by the subclass through `set_table`
        self._checked_columns = 0
        self._loading = False
        self._model_problems: dict[int, str] = {}

    def set_table(self, table: QTableWidget, checked_columns: int) -> None:
        self.table = table
        self._checked_columns = checked_columns
        table.verticalHeader().setVisible(False)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.itemChanged.connect(self._on_item_changed)
        self.add_shortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.remove_selected)

    def set_model_columns(self, model: type[BaseModel], columns: tuple[str, ...]) -> None:
        """Column titles and header tooltips from the spec model's fields (its title and
        description), so the table names its columns as the spec and its docs do."""
        for col, field in enumerate(columns):
            info = model.model_fields[field]
            item = QTableWidgetItem(info.title or field)
            item.setToolTip(info.description or "")
            self.table.setHorizontalHeaderItem(col, item)

    def lay_out_compact(
        self,
        hint: str,
        add: tuple[str, str],
        remove_tip: str,
        max_rows: int,
        on_add: Callable[[], object],
    ) -> None:
        """The table as tall as its rows (up to `max_rows`; more scroll), a greyed `hint` in
        place of an empty table's box, and Add (`add`: text, tooltip) / Remove buttons."""
        self._max_rows = max_rows
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.hint = QLabel(hint, self)
        self.hint.setEnabled(False)  # the palette's placeholder look, light and dark
        self.hint.setWordWrap(True)
        self.add_button = QPushButton(add[0], self)
        self.add_button.setToolTip(add[1])
        self.add_button.clicked.connect(on_add)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip(remove_tip)
        self.remove_button.clicked.connect(self.remove_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.hint)
        layout.addLayout(buttons)
        model = self.table.model()
        model.rowsInserted.connect(self._fit_height)
        model.rowsRemoved.connect(self._fit_height)
        self._fit_height()

    def _fit_height(self) -> None:
        rows = self.table.rowCount()
        shown = min(max(rows, 1), self._max_rows)
        height = self.table.horizontalHeader().sizeHint().height()
        height += shown * self.table.verticalHeader().defaultSectionSize()
        self.table.setFixedHeight(height + 2 * self.table.frameWidth())
        self.hint.setVisible(rows == 0)

    def append_text_row(self, *cells: str) -> int:
        """A row of plain text cells at the end (no change signal: callers batch them)."""
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, text in enumerate(cells):
            self.table.setItem(row, col, QTableWidgetItem(text))
        return row

    def add_text_row(self, *cells: str) -> int:
        """`append_text_row` as one change of the user's rows."""
        with self.quietly():
            row = self.append_text_row(*cells)
        self.changed()
        return row

    def add_shortcut(self, keys: QKeySequence, slot: Callable[[], object]) -> None:
        """A key that works while the table has the focus."""
        shortcut = QShortcut(keys, self.table)
        shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
        shortcut.activated.connect(slot)

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """Change cells without each change being taken for the user's edit."""
        was, self._loading = self._loading, True
        try:
            yield
        finally:
            self._loading = was

    # -- rows ---------------------------------------------------------------------------------

    def selected_rows(self) -> list[int]:
        """The selected rows (or the current one), last first."""
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        if not rows and self.table.currentRow() >= 0:
            rows = [self.table.currentRow()]
        return rows

    @Slot()
    def remove_selected(self) -> None:
        rows = self.selected_rows()
        for row in rows:
            self.table.removeRow(row)
        if rows:
            self.changed()

    def edit_row(self, row: int, column: int = 0) -> None:
        """Put the cursor on a (new) row and start typing in it."""
        self.table.setCurrentCell(row, column)
        item = self.table.item(row, column)
        if item is not None:
            self.table.editItem(item)

    # -- checks -------------------------------------------------------------------------------

    def check_rows(self) -> dict[int, str]:
        """Row -> what is wrong with it, as far as the table itself can tell."""
        return {}

    def row_problems(self) -> dict[int, str]:
        """`check_rows`, plus the model's messages for rows that pass it."""
        problems = self.check_rows()
        for row, msg in self._model_problems.items():
            problems.setdefault(row, msg)
        return problems

    def show_problems(self, problems: list[tuple[str, str]]) -> list[str]:
        """Take the model's problems for this field (`[1].name: ...` belongs to row 1), mark
        the rows; returns the lines to show under the table."""
        self._model_problems = {}
        general = []
        for subpath, msg in problems:
            match = _ROW_PATH.match(subpath)
            if match:
                self._model_problems[int(match.group(1))] = msg
            else:
                general.append(msg)
        rows = self.row_problems()
        self.mark_rows(rows)
        return [f"row {row + 1}: {msg}" for row, msg in sorted(rows.items())] + general

    def mark_rows(self, problems: dict[int, str]) -> None:
        """Tint the rows that have a problem and give their cells the message as tooltip."""
        with self.quietly():
            for row in range(self.table.rowCount()):
                for col in range(self._checked_columns):
                    item = self.table.item(row, col)
                    if item is None:
                        continue
                    item.setBackground(QBrush(ERROR_BG) if row in problems else QBrush())
                    item.setToolTip(problems.get(row, ""))

    # -- changes ------------------------------------------------------------------------------

    def changed(self) -> None:
        """After any change: the rows checked again, `after_change`, then `sig_changed`."""
        self._model_problems = {}
        self.mark_rows(self.row_problems())
        self.after_change()
        self.sig_changed.emit()

    def after_change(self) -> None:
        """What a subclass does after every change (a hint shown, a test scheduled)."""

    @Slot(QTableWidgetItem)
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if not self._loading and item.column() < self._checked_columns:
            self.changed()
