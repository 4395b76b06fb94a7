"""compute.instance_groups (a heterogeneous cluster) as a table: name, instance type, count.

The columns are `InstanceGroupSpec`'s fields, with its titles and descriptions; each row is
checked by `InstanceGroupSpec` itself (plus names used twice), so the table says what the spec
would say. Empty rows are left out of the value.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QHeaderView,
    QTableWidget,
    QWidget,
)

from trainer_gui.core.spec.io import format_validation_error
from trainer_gui.core.spec.model import InstanceGroupSpec
from trainer_gui.ui.row_table import RowTable

COLUMNS = tuple(InstanceGroupSpec.model_fields)
"""("name", "instance_type", "instance_count"): the model's fields, in its order."""


EMPTY_HINT = "No instance groups: every host is of the instance type above."
MAX_ROWS_SHOWN = 5  # more rows scroll


class InstanceGroupsTable(RowTable):
    """list[InstanceGroupSpec] as rows the user types into, checked row by row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.set_table(QTableWidget(0, len(COLUMNS), self), checked_columns=len(COLUMNS))
        self.set_model_columns(InstanceGroupSpec, COLUMNS)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 160)
        self.table.setColumnWidth(2, 110)
        self.table.setToolTip(
            "A heterogeneous cluster: each group its own instance type and count (leave empty "
            "for one instance type, compute.instance_type and instance_count)"
        )
        # As tall as its rows (up to MAX_ROWS_SHOWN), not a big empty box on the Compute tab.
        self.lay_out_compact(
            EMPTY_HINT,
            ("Add group", "Add an instance group"),
            "Remove the selected groups (Del)",
            MAX_ROWS_SHOWN,
            self._on_add_clicked,
        )

    # -- values ------------------------------------------------------------------------------

    def rows(self) -> list[dict[str, str]]:
        """Each row's cells as typed (names and types stripped)."""
        out = []
        for row in range(self.table.rowCount()):
            data = {}
            for col, field in enumerate(COLUMNS):
                item = self.table.item(row, col)
                data[field] = item.text().strip() if item is not None else ""
            out.append(data)
        return out

    def value(self) -> list[dict[str, Any]]:
        """The groups, counts as numbers where they are; empty rows left out."""
        out = []
        for data in self.rows():
            if not any(data.values()):
                continue
            group: dict[str, Any] = dict(data)
            count = data["instance_count"]
            group["instance_count"] = int(count) if count.isdigit() else (count or 1)
            out.append(group)
        return out

    def set_value(self, groups: list[Any] | None) -> None:
        with self.quietly():
            self.table.setRowCount(0)
            for group in groups or []:
                data = group.model_dump() if isinstance(group, BaseModel) else dict(group)
                self.append_text_row(*(str(data.get(f, "")) for f in COLUMNS))
        self.changed()

    def add_group(self, name: str = "", instance_type: str = "", count: int = 1) -> int:
        return self.add_text_row(name, instance_type, str(count))

    # -- checks ------------------------------------------------------------------------------

    def check_rows(self) -> dict[int, str]:
        """Each group checked by InstanceGroupSpec itself, plus names used twice."""
        problems: dict[int, str] = {}
        seen: set[str] = set()
        for row, data in enumerate(self.rows()):
            if not any(data.values()):
                continue
            try:
                InstanceGroupSpec.model_validate(
                    {**data, "instance_count": data["instance_count"] or 1}
                )
            except ValidationError as exc:
                problems[row] = "; ".join(format_validation_error(exc))
                continue
            if data["name"] in seen:
                problems[row] = f"instance group name {data['name']!r} is used twice; rename one"
            seen.add(data["name"])
        return problems

    @Slot()
    def _on_add_clicked(self) -> None:
        self.edit_row(self.add_group(f"group-{self.table.rowCount() + 1}", "ml.m5.xlarge"), 1)
