"""sagemaker.batch_retry_rules (AWS Batch's evaluateOnExit) as a table: action, status reason.

The columns are `BatchRetryRule`'s fields, with its titles and descriptions; the action is
picked from RETRY and EXIT, and each row is checked by `BatchRetryRule` itself, so the table
says what the spec would say. Rows go to Batch in their order (the first match wins); empty
rows are left out of the value. No rows: the SDK's rules.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QHeaderView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QWidget,
)

from trainer_gui.core.spec.io import format_validation_error
from trainer_gui.core.spec.model import BATCH_RULES_MAX, BatchRetryRule
from trainer_gui.ui.row_table import RowTable

COLUMNS = ("action", "on_status_reason")
ACTIONS: tuple[str, ...] = get_args(BatchRetryRule.model_fields["action"].annotation)
EMPTY_HINT = (
    "No rules: AWS Batch retries only on SageMaker's internal errors, as the SDK's "
    "TrainingQueue does."
)


class _ActionDelegate(QStyledItemDelegate):
    """The action column's editor: RETRY or EXIT, nothing else to type."""

    def createEditor(
        self,
        parent: QWidget,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> QWidget:
        combo = QComboBox(parent)
        combo.addItems(list(ACTIONS))
        return combo

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QComboBox)
        found = editor.findText(str(index.data() or "").upper())
        editor.setCurrentIndex(max(found, 0))

    def setModelData(
        self,
        editor: QWidget,
        model: QAbstractItemModel,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentText())


class BatchRetryRulesTable(RowTable):
    """list[BatchRetryRule] as rows: an action and the status reason it matches."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.set_table(QTableWidget(0, len(COLUMNS), self), checked_columns=len(COLUMNS))
        self.set_model_columns(BatchRetryRule, COLUMNS)
        self.table.setItemDelegateForColumn(0, _ActionDelegate(self.table))
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 90)
        self.lay_out_compact(
            EMPTY_HINT,
            ("Add rule", f"Add a rule (at most {BATCH_RULES_MAX}; the first match wins)"),
            "Remove the selected rules (Del)",
            BATCH_RULES_MAX,
            self._on_add_clicked,
        )

    # -- values ------------------------------------------------------------------------------

    def rows(self) -> list[dict[str, str]]:
        """Each row's cells as typed (the action stripped; the reason exactly as typed)."""
        out = []
        for row in range(self.table.rowCount()):
            action = self.table.item(row, 0)
            reason = self.table.item(row, 1)
            out.append(
                {
                    "action": action.text().strip() if action is not None else "",
                    "on_status_reason": reason.text() if reason is not None else "",
                }
            )
        return out

    def value(self) -> list[dict[str, Any]]:
        """The rules in their order; rows with no reason typed are left out."""
        return [r for r in self.rows() if r["on_status_reason"]]

    def set_value(self, rules: list[Any] | None) -> None:
        with self.quietly():
            self.table.setRowCount(0)
            for rule in rules or []:
                data = rule.model_dump() if isinstance(rule, BaseModel) else dict(rule)
                reason = data.get("on_status_reason", data.get("onStatusReason", ""))
                self.append_text_row(str(data.get("action", "")), str(reason))
        self.changed()

    def add_rule(self, action: str = "RETRY", reason: str = "") -> int:
        return self.add_text_row(action, reason)

    # -- checks ------------------------------------------------------------------------------

    def check_rows(self) -> dict[int, str]:
        """Each typed rule checked by BatchRetryRule itself."""
        problems: dict[int, str] = {}
        for row, data in enumerate(self.rows()):
            if not data["on_status_reason"]:
                continue
            try:
                BatchRetryRule.model_validate(data)
            except ValidationError as exc:
                problems[row] = "; ".join(format_validation_error(exc))
        return problems

    @Slot()
    def _on_add_clicked(self) -> None:
        self.edit_row(self.add_rule(), 1)
