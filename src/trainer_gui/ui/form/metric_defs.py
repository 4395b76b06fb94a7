"""Metric definitions (SageMaker MetricDefinitions) with a live regex tester.

Each definition is checked by `MetricDefinition` itself; the tester applies the same rule SageMaker
uses (`naive_parse`: every regex searched on every line, value = group 1) to sample log lines the
user can paste, so what matches here is what the job's curves will show, locally and in the cloud.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.metrics import MetricsParser, naive_parse
from trainer_gui.core.spec.io import format_validation_error
from trainer_gui.core.spec.model import MetricDefinition
from trainer_gui.ui.row_table import RowTable

SAMPLE_LINES = (
    "epoch=1 step=24 train_loss=0.9123 test_loss=0.8811 test_acc=0.6150\n"
    "epoch=2 step=48 train_loss=0.5231 test_loss=0.5012 test_acc=0.8200\n"
)
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
COLUMNS = ("name", "regex")
TEST_DELAY_MS = 150


class _LiveDelegate(QStyledItemDelegate):
    """Cell editors that report each keystroke, so the tester need not wait for Enter."""

    def __init__(self, editor: MetricDefsEditor) -> None:
        super().__init__(editor)
        self._owner = editor

    def createEditor(
        self,
        parent: QWidget,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> QWidget:
        widget = super().createEditor(parent, option, index)
        if isinstance(widget, QLineEdit) and index.column() < len(COLUMNS):
            row, column = index.row(), index.column()
            widget.textEdited.connect(lambda text: self._owner.set_live_text(row, column, text))
        return widget

    def destroyEditor(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        # Committed (Enter, Tab, a click away) or not (Esc): the cells are the truth again.
        self._owner.set_live_text(None, 0, "")
        super().destroyEditor(editor, index)


def suggest_regex(name: str) -> str:
    """A definition regex for `name=value` / `name: value` lines."""
    return rf"{re.escape(name)}\s*[=:]\s*{NUMBER}"


class MetricDefsEditor(RowTable):
    """list[MetricDefinition] as a table, plus sample lines and what each regex finds in them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.set_table(QTableWidget(0, 3, self), checked_columns=len(COLUMNS))
        for col, field in enumerate(COLUMNS):
            info = MetricDefinition.model_fields[field]
            item = QTableWidgetItem(info.title or field)
            item.setToolTip(info.description or "")
            self.table.setHorizontalHeaderItem(col, item)
        test_header = QTableWidgetItem("In the sample")
        test_header.setToolTip("The first value each regex finds in the sample lines below")
        self.table.setHorizontalHeaderItem(2, test_header)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 140)
        self.table.setColumnWidth(2, 140)
        self.table.setToolTip(
            "One capture group around the value, e.g. loss=([0-9.]+); SageMaker reads the same "
            "regexes from the job's logs."
        )

        self.add_button = QPushButton("Add", self)
        self.add_button.clicked.connect(self._on_add_clicked)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.clicked.connect(self.remove_selected)
        self.suggest_button = QPushButton("Suggest from sample", self)
        self.suggest_button.setToolTip(
            "Add a definition for every name=value metric found in the sample lines"
        )
        self.suggest_button.clicked.connect(self.suggest_from_sample)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.suggest_button)
        buttons.addStretch(1)

        self.sample = QPlainTextEdit(self)
        self.sample.setPlaceholderText("Paste a few lines of your training log here")
        self.sample.setPlainText(SAMPLE_LINES)
        self.sample.setToolTip("Sample log lines to test the regexes on; not saved in the spec")
        self.sample.textChanged.connect(self._schedule_test)
        self.results = QTableWidget(0, 3, self)
        self.results.setHorizontalHeaderLabels(["Line", "Metric", "Value"])
        self.results.horizontalHeader().setStretchLastSection(True)
        self.results.verticalHeader().setVisible(False)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)

        tester = QWidget(self)
        tester_layout = QVBoxLayout(tester)
        tester_layout.setContentsMargins(0, 0, 0, 0)
        tester_layout.addWidget(QLabel("Sample log lines (regex tester):", tester))
        row = QSplitter(Qt.Orientation.Horizontal, tester)
        row.addWidget(self.sample)
        row.addWidget(self.results)
        row.setSizes([400, 300])
        tester_layout.addWidget(row)
        tester_layout.addWidget(self.summary)

        top = QWidget(self)
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.table)
        top_layout.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(top)
        split.addWidget(tester)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

        self._live: tuple[int, int, str] | None = None
        self.table.setItemDelegate(_LiveDelegate(self))
        self._test_timer = QTimer(self)
        self._test_timer.setSingleShot(True)
        self._test_timer.setInterval(TEST_DELAY_MS)
        self._test_timer.timeout.connect(self.run_test)
        self.run_test()

    # -- values ------------------------------------------------------------------------------

    def rows(self) -> list[dict[str, str]]:
        out = []
        for row in range(self.table.rowCount()):
            data = {}
            for col, field in enumerate(COLUMNS):
                item = self.table.item(row, col)
                data[field] = item.text() if item is not None else ""
            data["name"] = data["name"].strip()
            out.append(data)
        return out

    def value(self) -> list[dict[str, Any]]:
        return [r for r in self.rows() if r["name"] or r["regex"]]

    def set_live_text(self, row: int | None, column: int, text: str) -> None:
        """What a cell being edited holds now (None: no cell is being edited); the tester uses
        it at once, the spec only once the edit is committed."""
        live = None if row is None else (row, column, text)
        if live != self._live:
            self._live = live
            self._schedule_test()

    def _tested_rows(self) -> list[dict[str, str]]:
        """The rows as the tester sees them: with the text of a cell being typed into."""
        rows = self.rows()
        if self._live is not None:
            row, column, text = self._live
            if 0 <= row < len(rows):
                rows[row][COLUMNS[column]] = text.strip() if column == 0 else text
        return rows

    def set_value(self, definitions: list[Any] | None) -> None:
        with self.quietly():
            self.table.setRowCount(0)
            for d in definitions or []:
                data = d.model_dump() if isinstance(d, MetricDefinition) else dict(d)
                self._append(str(data.get("name", "")), str(data.get("regex", "")))
        self.changed()

    def add_definition(self, name: str, regex: str) -> int:
        with self.quietly():
            row = self._append(name, regex)
        self.changed()
        return row

    def _append(self, name: str, regex: str) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(name))
        self.table.setItem(row, 1, QTableWidgetItem(regex))
        result = QTableWidgetItem("")
        result.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        self.table.setItem(row, 2, result)
        return row

    @Slot()
    def suggest_from_sample(self) -> list[str]:
        """Definitions for the name=value metrics auto-detection finds in the sample."""
        existing = {r["name"] for r in self.rows()}
        parser = MetricsParser([], auto_detect=True)
        names: list[str] = []
        for line in self.sample.toPlainText().splitlines():
            for sample in parser.parse_line(line, "algo-1", 0.0):
                fresh = sample.name not in existing and sample.name not in names
                if fresh and re.search(suggest_regex(sample.name), line):
                    names.append(sample.name)
        with self.quietly():
            for name in names:
                self._append(name, suggest_regex(name))
        if names:
            self.changed()
        return names

    # -- checks and the tester ---------------------------------------------------------------

    def check_rows(self) -> dict[int, str]:
        """Each definition checked by MetricDefinition itself, plus names used twice."""
        return _check(self.rows())

    def test_results(self) -> list[tuple[int, str, float]]:
        """(line number from 1, metric, value) for every match of a valid definition."""
        return self._test(self._tested_rows())[0]

    def _test(
        self, rows: list[dict[str, str]]
    ) -> tuple[list[tuple[int, str, float]], dict[int, str]]:
        problems = _check(rows) if self._live is not None else self.row_problems()
        defs = [
            (d["name"], d["regex"])
            for row, d in enumerate(rows)
            if row not in problems and d["name"] and d["regex"]
        ]
        out: list[tuple[int, str, float]] = []
        if not defs:
            return out, problems
        for number, line in enumerate(self.sample.toPlainText().splitlines(), start=1):
            for sample in naive_parse(defs, line, "algo-1", 0.0):
                out.append((number, sample.name, sample.value))
        return out, problems

    @Slot()
    def run_test(self) -> None:
        self._test_timer.stop()
        rows = self._tested_rows()
        results, problems = self._test(rows)
        self.results.setRowCount(len(results))
        first: dict[str, float] = {}
        for row, (number, name, value) in enumerate(results):
            self.results.setItem(row, 0, QTableWidgetItem(str(number)))
            self.results.setItem(row, 1, QTableWidgetItem(name))
            self.results.setItem(row, 2, QTableWidgetItem(f"{value:g}"))
            first.setdefault(name, value)
        with self.quietly():
            for row, data in enumerate(rows):
                item = self.table.item(row, 2)
                if item is None:
                    continue
                if row in problems:
                    item.setText("invalid")
                    item.setToolTip(problems[row])
                elif data["name"] in first:
                    item.setText(f"{first[data['name']]:g}")
                    item.setToolTip("")
                elif data["name"] or data["regex"]:
                    item.setText("no match")
                    item.setToolTip("")
                else:
                    item.setText("")
                    item.setToolTip("")
        lines = len(self.sample.toPlainText().splitlines())
        matched = sorted(first)
        valid = sum(1 for r, d in enumerate(rows) if r not in problems and d["name"])
        if not valid:
            self.summary.setText("Add a definition to test it on the sample lines.")
        else:
            self.summary.setText(
                f"{len(results)} value(s) from {lines} line(s); matched: "
                + (", ".join(matched) if matched else "nothing")
            )

    def after_change(self) -> None:
        self._schedule_test()

    @Slot()
    def _schedule_test(self) -> None:
        self._test_timer.start()

    @Slot()
    def _on_add_clicked(self) -> None:
        self.edit_row(self.add_definition("", ""))


def _check(rows: list[dict[str, str]]) -> dict[int, str]:
    """Row -> problem: each definition checked by MetricDefinition, plus names used twice."""
    problems: dict[int, str] = {}
    seen: dict[str, int] = {}
    for row, data in enumerate(rows):
        if not data["name"] and not data["regex"]:
            continue
        try:
            MetricDefinition.model_validate(data)
        except ValidationError as exc:
            problems[row] = "; ".join(format_validation_error(exc))
            continue
        if data["name"] in seen:
            problems[row] = f"metric name {data['name']!r} is defined twice; rename one"
        seen[data["name"]] = row
    return problems
