"""Name/value tables: hyperparameters (typed values, import from JSON/YAML) and plain string maps
(environment variables, tags).

Typed values are read the way YAML reads a scalar, so `0.01` is a float, `8` an int, `true` a bool
and `[1, 2]` a list, exactly what the same text in job.yaml would give.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.errors import UserError
from trainer_gui.core.spec.io import parse_spec_yaml
from trainer_gui.ui.row_table import RowTable

log = logging.getLogger(__name__)

_NUMBER_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def parse_value(text: str) -> Any:
    """Cell text -> value, as YAML would read it; text YAML cannot read stays text."""
    if not text.strip():
        return ""
    try:  # the spec file's bounded reader: `[[[...`, 5,000 digits or 2001-13-45 stay text
        value = parse_spec_yaml(text)
    except UserError:
        return text
    if value is None and text.strip() not in ("null", "~", "None"):
        return text
    if value is None:
        return None
    if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-3 as text; people mean a number
    if isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return text  # dates and other YAML types: keep what the user typed


def format_value(value: Any) -> str:
    """Value -> cell text that parses back to the same value."""
    if isinstance(value, str):
        return value if parse_value(value) == value else json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


class KeyValueTable(RowTable):
    """A two-column table of names and values with add/remove buttons.

    `typed=False` keeps every value a string (environment variables, tags).
    """

    def __init__(
        self,
        typed: bool = False,
        key_title: str = "Name",
        value_title: str = "Value",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.typed = typed
        self.base_dir: Path | None = None
        """The spec's folder (the project): where file dialogs start."""
        self.set_table(QTableWidget(0, 2, self), checked_columns=2)
        self.table.setHorizontalHeaderLabels([key_title, value_title])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 180)
        self.table.setMinimumHeight(120)
        self.add_button = QPushButton("Add", self)
        self.add_button.setToolTip("Add a row")
        self.add_button.clicked.connect(self._on_add_clicked)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Remove the selected rows (Del)")
        self.remove_button.clicked.connect(self.remove_selected)
        self.buttons = QHBoxLayout()
        self.buttons.addWidget(self.add_button)
        self.buttons.addWidget(self.remove_button)
        self.buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(self.buttons)

    # -- values ------------------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str]]:
        out = []
        for row in range(self.table.rowCount()):
            key_item, value_item = self.table.item(row, 0), self.table.item(row, 1)
            out.append(
                (
                    key_item.text().strip() if key_item else "",
                    value_item.text() if value_item else "",
                )
            )
        return out

    def value(self) -> dict[str, Any]:
        """The mapping; rows without a name are left out (they are flagged in the table)."""
        out: dict[str, Any] = {}
        for key, text in self.rows():
            if not key:
                continue
            out[key] = parse_value(text) if self.typed else text
        return out

    def set_value(self, mapping: dict[str, Any] | None) -> None:
        with self.quietly():
            self.table.setRowCount(0)
            for key, value in (mapping or {}).items():
                self._append(str(key), format_value(value) if self.typed else str(value))
        self.changed()

    def add_row(self, key: str = "", value: Any = "") -> int:
        text = format_value(value) if self.typed and not isinstance(value, str) else str(value)
        with self.quietly():
            row = self._append(key, text)
        self.changed()
        return row

    def _append(self, key: str, text: str) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(key))
        self.table.setItem(row, 1, QTableWidgetItem(text))
        return row

    def merge(self, mapping: dict[str, Any]) -> None:
        """Set these names (replacing rows with the same name, adding the others)."""
        existing = {key: row for row, (key, _) in enumerate(self.rows()) if key}
        with self.quietly():
            for key, value in mapping.items():
                text = format_value(value) if self.typed else str(value)
                if key in existing:
                    item = self.table.item(existing[key], 1)
                    if item is not None:
                        item.setText(text)
                else:
                    self._append(str(key), text)
        self.changed()

    # -- checks ------------------------------------------------------------------------------

    def local_problems(self) -> dict[int, str]:
        """Row -> what is wrong that the model cannot see (it only gets the mapping)."""
        problems: dict[int, str] = {}
        seen: dict[str, int] = {}
        for row, (key, text) in enumerate(self.rows()):
            if not key and text.strip():
                problems[row] = "this value has no name"
            elif key in seen:
                problems[row] = f"{key!r} is already set in row {seen[key] + 1}; remove one"
            elif key:
                seen[key] = row
        return problems

    def check_rows(self) -> dict[int, str]:
        return self.local_problems()

    @Slot()
    def _on_add_clicked(self) -> None:
        self.edit_row(self.add_row())


class HyperparamsTable(KeyValueTable):
    """Hyperparameters: typed values, plus import from a JSON or YAML file."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(typed=True, key_title="Name", value_title="Value", parent=parent)
        self.table.setToolTip(
            "Values are read like YAML: 8 is a number, true a boolean, [1, 2] a list; quote text "
            "that looks like a number."
        )
        self.import_button = QPushButton("Import…", self)
        self.import_button.setToolTip("Add hyperparameters from a JSON or YAML file")
        self.import_button.clicked.connect(self._on_import_clicked)
        self.buttons.insertWidget(2, self.import_button)

    def import_file(self, path: str | Path) -> int:
        """Merge a JSON/YAML mapping into the table; returns how many names it set."""
        from trainer_gui.core.spec.io import load_hyperparameters_file

        data = load_hyperparameters_file(Path(path))
        self.merge(data)
        return len(data)

    @Slot()
    def _on_import_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Import hyperparameters",
            str(self.base_dir or Path.home()),
            "Hyperparameters (*.json *.yaml *.yml);;All files (*)",
        )
        if not path:
            return
        try:
            count = self.import_file(path)
        except UserError as exc:
            QMessageBox.warning(self, "Cannot import hyperparameters", str(exc))
            return
        if count == 0:
            QMessageBox.information(self, "Import hyperparameters", f"{path} holds no values.")
