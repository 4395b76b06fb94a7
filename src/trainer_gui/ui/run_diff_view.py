"""Compare two runs: a dialog with Spec, Hyperparameters, Environment and Code tabs.

The comparison (core/run_diff.py) reads manifests and code objects, so it runs off the GUI
thread; the dialog shows "Comparing…" until it is back. Diff colours follow the palette (light
or dark): they are picked from the base colour's lightness whenever the palette changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, Qt, Slot
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QPalette,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.run_diff import FieldChange, RunDiff, diff_runs, format_value
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import JobRecord
from trainer_gui.ui.tasks import TaskGroup, error_text

KIND_MARK = {"added": "+", "removed": "−", "changed": "~"}


def diff_colors(palette: QPalette) -> dict[str, tuple[QColor, QColor]]:
    """(text, background) for added, removed and hunk lines, readable on this palette."""
    if palette.color(QPalette.ColorRole.Base).lightness() < 128:  # dark
        return {
            "added": (QColor("#7ee787"), QColor("#0f3d1f")),
            "removed": (QColor("#ffa198"), QColor("#4a1515")),
            "hunk": (QColor("#79c0ff"), QColor(0, 0, 0, 0)),
        }
    return {
        "added": (QColor("#116329"), QColor("#dafbe1")),
        "removed": (QColor("#a40e26"), QColor("#ffebe9")),
        "hunk": (QColor("#0550ae"), QColor(0, 0, 0, 0)),
    }


class DiffHighlighter(QSyntaxHighlighter):
    """Colours a unified diff: added lines green, removed lines red, hunk headers blue."""

    def __init__(self, document: QTextDocument, palette: QPalette) -> None:
        super().__init__(document)
        self.formats: dict[str, QTextCharFormat] = {}
        self.set_palette(palette)

    def set_palette(self, palette: QPalette) -> None:
        self.formats = {}
        for kind, (fg, bg) in diff_colors(palette).items():
            fmt = QTextCharFormat()
            fmt.setForeground(fg)
            if bg.alpha():
                fmt.setBackground(bg)
            self.formats[kind] = fmt
        self.rehighlight()

    @staticmethod
    def kind_of(line: str) -> str | None:
        if line.startswith(("+++", "---")):
            return None
        if line.startswith("+"):
            return "added"
        if line.startswith("-"):
            return "removed"
        if line.startswith("@@"):
            return "hunk"
        return None

    def highlightBlock(self, text: str) -> None:
        kind = self.kind_of(text)
        if kind is not None:
            self.setFormat(0, len(text), self.formats[kind])


class RunDiffDialog(QDialog):
    """What differs between two runs (`left` → `right`)."""

    def __init__(
        self,
        left: JobRecord,
        right: JobRecord,
        spec_of: Callable[[JobRecord], JobSpec],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.left, self.right = left, right
        self.diff: RunDiff | None = None
        self.setWindowTitle(f"Compare {left.name} and {right.name}")
        self.resize(960, 640)
        self.status = QLabel(f"Comparing {left.id} → {right.id}…", self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tabs = QTabWidget(self)
        self.spec_table = self._table()
        self.hyper_table = self._table()
        self.env_table = self._table()
        self.tabs.addTab(self.spec_table, "Spec")
        self.tabs.addTab(self.hyper_table, "Hyperparameters")
        self.tabs.addTab(self.env_table, "Environment")
        code = QWidget(self)
        self.code_note = QLabel(code)
        self.code_note.setWordWrap(True)
        self.code_note.hide()
        self.files = QListWidget(code)
        self.files.currentRowChanged.connect(self._show_file)
        self.diff_text = QPlainTextEdit(code)
        self.diff_text.setReadOnly(True)
        self.diff_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.diff_text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.highlighter = DiffHighlighter(self.diff_text.document(), self.palette())
        splitter = QSplitter(Qt.Orientation.Horizontal, code)
        splitter.addWidget(self.files)
        splitter.addWidget(self.diff_text)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([240, 720])
        code_layout = QVBoxLayout(code)
        code_layout.setContentsMargins(0, 0, 0, 0)
        code_layout.addWidget(self.code_note)
        code_layout.addWidget(splitter, 1)
        self.tabs.addTab(code, "Code")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(buttons)
        self._tasks = TaskGroup(self)
        self._tasks.run(lambda: diff_runs(left, right, spec_of), self.show_diff, self._failed)

    def _table(self) -> QTableWidget:
        table = QTableWidget(0, 3, self)
        table.setHorizontalHeaderLabels(
            ["Field", f"{self.left.name} ({self.left.id})", f"{self.right.name} ({self.right.id})"]
        )
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setWordWrap(False)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.resizeSection(0, 240)
        header.resizeSection(1, 320)
        return table

    @staticmethod
    def _fill(table: QTableWidget, changes: list[FieldChange], none: str) -> None:
        table.setRowCount(max(1, len(changes)))
        if not changes:
            item = QTableWidgetItem(none)
            item.setForeground(table.palette().color(QPalette.ColorRole.PlaceholderText))
            table.setItem(0, 0, item)
            for column in (1, 2):
                table.setItem(0, column, QTableWidgetItem(""))
            return
        for row, change in enumerate(changes):
            for column, text in enumerate(
                (change.key, format_value(change.left), format_value(change.right))
            ):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(row, column, item)

    @Slot(object)
    def show_diff(self, result: RunDiff) -> None:
        self.diff = result
        spec = ([result.image] if result.image else []) + result.spec
        self._fill(self.spec_table, spec, "No spec field differs")
        self._fill(self.hyper_table, result.hyperparameters, "Same hyperparameters")
        self._fill(self.env_table, result.environment, "Same environment variables")
        self.files.clear()
        for change in result.code:
            item = QListWidgetItem(f"{KIND_MARK.get(change.kind, '~')} {change.path}")
            item.setData(Qt.ItemDataRole.UserRole, change)
            item.setToolTip(f"{change.kind}{': ' + change.note if change.note else ''}")
            self.files.addItem(item)
        if result.code_note:
            self.code_note.setText(result.code_note)
        elif not result.code:
            self.code_note.setText("The code is the same.")
        self.code_note.setVisible(bool(result.code_note) or not result.code)
        counts = (
            f"{len(spec)} spec field(s), {len(result.hyperparameters)} hyperparameter(s), "
            f"{len(result.environment)} environment variable(s), {len(result.code)} file(s)"
        )
        self.status.setText(
            f"{self.left.name} ({self.left.id}) → {self.right.name} ({self.right.id}): "
            + ("nothing differs" if result.same else f"{counts} differ")
        )
        for index, count in enumerate(
            (len(spec), len(result.hyperparameters), len(result.environment), len(result.code))
        ):
            name = ("Spec", "Hyperparameters", "Environment", "Code")[index]
            self.tabs.setTabText(index, f"{name} ({count})" if count else name)
        if result.code:
            self.files.setCurrentRow(0)

    @Slot(int)
    def _show_file(self, row: int) -> None:
        item = self.files.item(row)
        if item is None:
            self.diff_text.clear()
            return
        change: Any = item.data(Qt.ItemDataRole.UserRole)
        text = change.diff
        if change.note:
            text = f"{change.path}: {change.note}\n" + text
        self.diff_text.setPlainText(text or f"{change.path}: {change.kind}")

    def _failed(self, exc: BaseException, _tb: str) -> None:
        self.status.setText(f"Could not compare the runs: {error_text(exc)}")

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched
            self.highlighter.set_palette(self.palette())

    def done(self, result: int) -> None:
        self._tasks.cancel_all()
        super().done(result)


def compare_selected(window: Any) -> RunDiffDialog | None:
    """Job > Compare two runs: the two selected runs, older on the left, in a new window."""
    records = window.selected_records()
    if len(records) != 2:
        window.statusBar().showMessage("Select exactly two runs to compare", 5000)
        return None
    left, right = sorted(records, key=lambda r: (r.created_at, r.id))
    dialog = RunDiffDialog(left, right, window.service.spec_of, window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


__all__ = ["DiffHighlighter", "RunDiffDialog", "compare_selected", "diff_colors"]
