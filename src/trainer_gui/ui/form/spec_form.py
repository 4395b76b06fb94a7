"""The job form, generated from the pydantic `JobSpec` (not a second copy of it).

Every field of the spec gets an editor chosen from its annotation (enums and Literals become combo
boxes, ints spin boxes with the model's bounds, lists of channels / metric definitions / mappings
get their tables), its title as the label and its description as the tooltip. The form's data is
validated by the model itself (`spec_from_dict`), debounced as the user types, and each problem line
(`field.path: message`) is shown under the field it names.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import shlex
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QIcon, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.aws.defaults import AwsDefaults, load_aws_defaults
from trainer_gui.core.errors import SpecError
from trainer_gui.core.spec import JobSpec, save_spec, spec_from_dict, spec_to_dict
from trainer_gui.core.spec.model import (
    BatchRetryRule,
    ChannelSpec,
    InstanceGroupSpec,
    MetricDefinition,
    is_remote,
)
from trainer_gui.ui.form.batch_rules import BatchRetryRulesTable
from trainer_gui.ui.form.channels import ChannelsTable
from trainer_gui.ui.form.cost import CostLabel
from trainer_gui.ui.form.export_dialog import ExportDialog
from trainer_gui.ui.form.hyperparams import HyperparamsTable, KeyValueTable
from trainer_gui.ui.form.instance_groups import InstanceGroupsTable
from trainer_gui.ui.form.metric_defs import MetricDefsEditor
from trainer_gui.ui.icons import ERROR_COLOR, app_icon, status_icon
from trainer_gui.ui.row_table import RowTable

log = logging.getLogger(__name__)

# Which top-level spec fields go on which tab. Sub-models are expanded field by field; any field
# added to the spec later and not listed here still shows up, on an "Other" tab.
GROUPS: list[tuple[str, list[str]]] = [
    ("Source", ["name", "description", "source", "image"]),
    ("Compute", ["compute", "max_runtime_seconds", "environment"]),
    ("Distribution", ["distribution"]),
    ("Data", ["channels"]),
    ("Hyperparameters", ["hyperparameters", "hyperparameters_file"]),
    ("Metrics", ["metric_definitions", "tensorboard"]),
    ("Output", ["output_path", "checkpoint_dir", "checkpoint_s3_uri"]),
    ("SageMaker", ["sagemaker"]),
]
VALIDATE_DELAY_MS = 300
_PROBLEM_RE = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*): (.*)$", re.S
)


# -- annotations -> editors --------------------------------------------------------------------


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) == 1:
            return rest[0], optional
        return Union[tuple(rest)], optional  # noqa: UP007 - built at runtime from a tuple
    return annotation, False


def _literal_choices(annotation: Any) -> list[str] | None:
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(m.value) for m in annotation]
    return None


def _bounds(info: FieldInfo) -> tuple[int | None, int | None]:
    low = high = None
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            low = int(meta.ge)  # type: ignore[call-overload]
        elif isinstance(meta, annotated_types.Gt):
            low = int(meta.gt) + 1  # type: ignore[call-overload]
        elif isinstance(meta, annotated_types.Le):
            high = int(meta.le)  # type: ignore[call-overload]
        elif isinstance(meta, annotated_types.Lt):
            high = int(meta.lt) - 1  # type: ignore[call-overload]
    return low, high


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _path_kind(name: str) -> str | None:
    """Which browse button a text field gets: a folder, a file, or none."""
    if name.endswith("_dir") or name in ("output_path",):
        return "dir"
    if name.endswith("_file") or name == "requirements":
        return "file"
    return None


def field_default(info: FieldInfo) -> Any:
    value = info.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    return value


def humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


class LineField(QWidget):
    """Text; empty means None for optional fields. Path fields get a Browse button."""

    sig_changed = Signal()

    def __init__(
        self,
        optional: bool,
        browse: str | None = None,
        base_dir: Callable[[], Path | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.optional = optional
        self._browse_kind = browse
        self._base_dir = base_dir or (lambda: None)
        self.edit = QLineEdit(self)
        self.edit.textChanged.connect(self.sig_changed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit)
        if browse:
            self.browse_button = QToolButton(self)
            self.browse_button.setText("…")
            self.browse_button.setToolTip("Choose a folder" if browse == "dir" else "Choose a file")
            self.browse_button.clicked.connect(self._on_browse)
            layout.addWidget(self.browse_button)
        if optional:
            self.edit.setPlaceholderText("(not set)")

    def value(self) -> Any:
        text = self.edit.text().strip()
        if not text and self.optional:
            return None
        return text

    def set_value(self, value: Any) -> None:
        self.edit.setText("" if value is None else str(value))

    @Slot()
    def _on_browse(self) -> None:
        base = self._base_dir()
        start = str(base) if base else os.path.expanduser("~")
        if self._browse_kind == "dir":
            path = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a file", start)
        if path:
            self.edit.setText(relative_to(path, base))


class ListField(LineField):
    """A list of strings typed as a command line (quotes group words with spaces)."""

    def __init__(self, optional: bool, parent: QWidget | None = None) -> None:
        super().__init__(optional, parent=parent)
        self.edit.setPlaceholderText("space-separated; quote items with spaces")

    def value(self) -> Any:
        text = self.edit.text().strip()
        if not text:
            return None if self.optional else []
        try:
            return shlex.split(text)
        except ValueError:
            return text  # an unclosed quote: let the model say the type is wrong

    def set_value(self, value: Any) -> None:
        if isinstance(value, list):
            self.edit.setText(shlex.join(str(v) for v in value))
        else:
            super().set_value(value)


class SpinField(QWidget):
    """An integer within the model's bounds; optional ones show '(default)' below the minimum."""

    sig_changed = Signal()

    def __init__(
        self, low: int | None, high: int | None, optional: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.optional = optional
        self.spin = QSpinBox(self)
        low = 0 if low is None else low
        high = 2_147_483_647 if high is None else high
        if optional:
            low -= 1
            self.spin.setSpecialValueText("(default)")
        self.spin.setRange(low, high)
        self.spin.setAccelerated(True)
        self.spin.valueChanged.connect(self.sig_changed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.spin)
        layout.addStretch(1)

    def value(self) -> Any:
        if self.optional and self.spin.value() == self.spin.minimum():
            return None
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        if value is None:
            self.spin.setValue(self.spin.minimum())
        else:
            try:
                self.spin.setValue(int(value))
            except (TypeError, ValueError):
                self.spin.setValue(self.spin.minimum())


class ComboField(QWidget):
    """Choices from an enum or Literal; `editable` for unions like `int | Literal['all']`."""

    sig_changed = Signal()

    def __init__(
        self,
        choices: list[str],
        optional: bool,
        editable: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.optional = optional
        self.editable = editable
        self.combo = QComboBox(self)
        self.combo.setEditable(editable)
        if optional and not editable:
            self.combo.addItem("")
        self.combo.addItems(choices)
        self.combo.currentTextChanged.connect(self.sig_changed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addStretch(1)

    def value(self) -> Any:
        text = self.combo.currentText().strip()
        if not text and self.optional:
            return None
        if self.editable and re.fullmatch(r"-?\d+", text):
            return int(text)
        return text

    def set_value(self, value: Any) -> None:
        if isinstance(value, enum.Enum):
            value = value.value
        text = "" if value is None else str(value)
        index = self.combo.findText(text)
        if index >= 0:
            self.combo.setCurrentIndex(index)
        elif self.editable:
            self.combo.setEditText(text)
        elif self.combo.count():
            self.combo.setCurrentIndex(0)


class CheckField(QWidget):
    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.check = QCheckBox(self)
        self.check.toggled.connect(self.sig_changed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.check)

    def value(self) -> Any:
        return self.check.isChecked()

    def set_value(self, value: Any) -> None:
        self.check.setChecked(bool(value))


class TextField(QWidget):
    """Free text over a few lines (descriptions)."""

    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QPlainTextEdit(self)
        self.edit.setTabChangesFocus(True)
        lines = 3
        self.edit.setFixedHeight(
            self.edit.fontMetrics().lineSpacing() * lines
            + int(self.edit.document().documentMargin() * 2)
            + 6
        )
        self.edit.textChanged.connect(self.sig_changed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit)

    def value(self) -> Any:
        return self.edit.toPlainText().strip()

    def set_value(self, value: Any) -> None:
        self.edit.setPlainText("" if value is None else str(value))


class YamlField(LineField):
    """Anything else, typed as a YAML value."""

    def value(self) -> Any:
        from trainer_gui.core.errors import UserError
        from trainer_gui.core.spec.io import parse_spec_yaml

        text = self.edit.text().strip()
        if not text:
            return None
        try:  # bounded: `[[[...` or 5,000 digits stay text instead of raising
            return parse_spec_yaml(text)
        except UserError:
            return text

    def set_value(self, value: Any) -> None:
        import json

        self.edit.setText("" if value is None else json.dumps(value))


def make_editor(
    name: str, info: FieldInfo, base_dir: Callable[[], Path | None], parent: QWidget
) -> Any:
    """The editor for one field, chosen from its annotation."""
    annotation, optional = _unwrap_optional(info.annotation)
    origin = get_origin(annotation)
    args = get_args(annotation)
    choices = _literal_choices(annotation)
    if choices is not None:
        return ComboField(choices, optional, parent=parent)
    if origin in (Union, types.UnionType):  # e.g. int | Literal["all"]
        options: list[str] = []
        for arg in args:
            options += _literal_choices(arg) or []
        if int in args:
            options = ["0", "1", "2", "4", "8", *options]
        return ComboField(options, optional, editable=True, parent=parent)
    if origin is list and args:
        item = args[0]
        if item is ChannelSpec:
            return ChannelsTable(parent)
        if item is MetricDefinition:
            return MetricDefsEditor(parent)
        if item is InstanceGroupSpec:
            return InstanceGroupsTable(parent)
        if item is BatchRetryRule:
            return BatchRetryRulesTable(parent)
        if item is str:
            return ListField(optional, parent=parent)
        return YamlField(optional, parent=parent)
    if origin is dict:
        value_type = args[1] if len(args) == 2 else Any
        if value_type is str:
            return KeyValueTable(typed=False, parent=parent)
        return HyperparamsTable(parent)
    if annotation is bool:
        return CheckField(parent)
    if annotation is int:
        low, high = _bounds(info)
        return SpinField(low, high, optional, parent=parent)
    if annotation is str and name == "description" and not optional:
        return TextField(parent)
    if annotation is str:
        return LineField(optional, _path_kind(name), base_dir, parent=parent)
    return YamlField(optional, parent=parent)


def relative_to(path: str, base: Path | None) -> str:
    """`path` relative to `base` when it lies inside it (specs stay portable), else absolute."""
    if base is None or is_remote(path):
        return path
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix() or "."
    except (ValueError, OSError):
        return path


# -- the form ----------------------------------------------------------------------------------


class FieldRow:
    """One field: its label, its editor and the line under it that shows the model's message."""

    def __init__(self, path: str, info: FieldInfo, editor: Any, parent: QWidget) -> None:
        self.path = path
        self.info = info
        self.editor = editor
        self.label = QLabel(info.title or humanize(path.rsplit(".", 1)[-1]), parent)
        if info.is_required():
            font = self.label.font()
            font.setBold(True)
            self.label.setFont(font)
        tip = info.description or ""
        self.label.setToolTip(tip)
        editor.setToolTip(tip)
        self.error = QLabel(parent)
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        self.container = QWidget(parent)
        box = QVBoxLayout(self.container)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(editor)
        box.addWidget(self.error)

    def value(self) -> Any:
        return self.editor.value()

    def set_value(self, value: Any) -> None:
        self.editor.set_value(value)

    def show_problems(self, problems: list[tuple[str, str]]) -> list[str]:
        shower = getattr(self.editor, "show_problems", None)
        lines = shower(problems) if shower else [msg for _, msg in problems]
        self.error.setText("\n".join(lines))
        self.error.setVisible(bool(lines))
        return lines


class SpecForm(QWidget):
    """All of JobSpec as tabs of fields; `data()` is the mapping, `spec` the last valid spec."""

    sig_changed = Signal()
    sig_validated = Signal(bool)
    """After each validation: whether the spec is valid now."""

    def __init__(self, base_dir: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.base_dir = base_dir
        self.rows: dict[str, FieldRow] = {}
        self.group_errors: dict[str, QLabel] = {}
        self.tab_of: dict[str, int] = {}
        self.spec: JobSpec | None = None
        self.problems: list[str] = []
        self._loading = False

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.general_error = QLabel(self)
        self.general_error.setWordWrap(True)
        self.general_error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.general_error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.general_error)

        listed = {name for _, names in GROUPS for name in names}
        groups = list(GROUPS)
        others = [n for n in JobSpec.model_fields if n not in listed]
        if others:
            groups.append(("Other", others))
        for title, names in groups:
            self._build_tab(title, [n for n in names if n in JobSpec.model_fields])

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self.validate)
        self.set_data({})

    # -- building ----------------------------------------------------------------------------

    def _build_tab(self, title: str, names: list[str]) -> None:
        page = QWidget()
        form = QFormLayout(page)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        index = self.tabs.count()
        group_error = QLabel(page)
        group_error.setWordWrap(True)
        group_error.setStyleSheet(f"color: {ERROR_COLOR};")
        group_error.hide()
        form.addRow(group_error)
        for name in names:
            info = JobSpec.model_fields[name]
            annotation, _ = _unwrap_optional(info.annotation)
            if _is_model(annotation):
                doc = (annotation.__doc__ or "").strip().splitlines()
                if doc and len(names) > 1:
                    heading = QLabel(f"<b>{info.title or humanize(name)}</b> — {doc[0]}", page)
                    heading.setWordWrap(True)
                    form.addRow(heading)
                elif doc:
                    hint = QLabel(doc[0], page)
                    hint.setWordWrap(True)
                    hint.setEnabled(False)
                    form.addRow(hint)
                self.group_errors[name] = group_error
                self.tab_of[name] = index
                for sub, sub_info in annotation.model_fields.items():
                    self._add_row(form, page, f"{name}.{sub}", sub, sub_info, index)
            else:
                self._add_row(form, page, name, name, info, index)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(page)
        self.tabs.addTab(scroll, title)

    def _add_row(
        self, form: QFormLayout, page: QWidget, path: str, name: str, info: FieldInfo, tab: int
    ) -> None:
        editor = make_editor(name, info, lambda: self.base_dir, page)
        row = FieldRow(path, info, editor, page)
        editor.sig_changed.connect(self._on_changed)
        if isinstance(
            editor,
            (
                ChannelsTable,
                MetricDefsEditor,
                KeyValueTable,
                InstanceGroupsTable,
                BatchRetryRulesTable,
            ),
        ):
            form.addRow(row.label)
            form.addRow(row.container)
        else:
            form.addRow(row.label, row.container)
        self.rows[path] = row
        self.tab_of[path] = tab

    # -- data --------------------------------------------------------------------------------

    def editor(self, path: str) -> Any:
        """The editor widget of a field, e.g. `form.editor("source.entry_point")`."""
        return self.rows[path].editor

    def set_base_dir(self, base_dir: Path | None) -> None:
        self.base_dir = base_dir
        for row in self.rows.values():
            if isinstance(row.editor, (ChannelsTable, KeyValueTable)):
                row.editor.base_dir = base_dir
        self.schedule_validation()

    def set_data(self, data: dict[str, Any]) -> None:
        """Show this mapping; fields it leaves out show their defaults."""
        self._loading = True
        try:
            for path, row in self.rows.items():
                value: Any = data
                found = True
                for part in path.split("."):
                    if isinstance(value, dict) and part in value:
                        value = value[part]
                    else:
                        found = False
                        break
                row.set_value(value if found else field_default(row.info))
            for row in self.rows.values():
                if isinstance(row.editor, (ChannelsTable, KeyValueTable)):
                    row.editor.base_dir = self.base_dir
        finally:
            self._loading = False
        self.validate()

    def set_spec(self, spec: JobSpec) -> None:
        data = spec_to_dict(spec)
        if spec.base_dir is not None and self.base_dir is not None:
            data = rebase_paths(data, spec.base_dir, self.base_dir)
        self.set_data(data)

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, row in self.rows.items():
            node = out
            parts = path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = row.value()
        return out

    # -- validation --------------------------------------------------------------------------

    @Slot()
    def _on_changed(self) -> None:
        if self._loading:
            return
        self.sig_changed.emit()
        self.schedule_validation()

    def schedule_validation(self) -> None:
        self._timer.start()

    @Slot()
    def validate(self) -> JobSpec | None:
        """Check the form with the model now; show each problem under its field."""
        self._timer.stop()
        try:
            spec: JobSpec | None = spec_from_dict(self.data(), base_dir=self.base_dir)
        except SpecError as exc:
            spec = None
            model_problems = list(exc.problems)
        else:
            model_problems = []
        # A row a table flags (a value without a name, a name used twice) never reaches the
        # model, which would call the spec valid and then save it without that row.
        table_problems = self._table_problems(model_problems)
        self.spec = None if table_problems else spec
        self.problems = model_problems + table_problems
        self._show_problems(model_problems)
        self.sig_validated.emit(self.spec is not None)
        return self.spec

    def _table_problems(self, model_problems: list[str]) -> list[str]:
        """`path: row N: message` for each row a table flags that the model did not."""
        out: list[str] = []
        for path, row in self.rows.items():
            if not isinstance(row.editor, RowTable):
                continue
            told = {
                int(m.group(1))
                for line in model_problems
                if (m := re.match(re.escape(path) + r"\[(\d+)\]", line))
            }
            for index, msg in sorted(row.editor.check_rows().items()):
                if index not in told:
                    out.append(f"{path}: row {index + 1}: {msg}")
        return out

    def _show_problems(self, lines: list[str]) -> None:
        per_row: dict[str, list[tuple[str, str]]] = {path: [] for path in self.rows}
        per_group: dict[str, list[str]] = {}
        general: list[str] = []
        keys = sorted(self.rows, key=len, reverse=True)
        for line in lines:
            match = _PROBLEM_RE.match(line)
            if not match:
                general.append(line)
                continue
            where, msg = match.group(1), match.group(2)
            for key in keys:
                if where == key or where.startswith((key + ".", key + "[")):
                    per_row[key].append((where[len(key) :], msg))
                    break
            else:
                top = re.split(r"[.\[]", where, maxsplit=1)[0]
                field = self.field_for_message(top, msg) if where == top else None
                if field is not None:
                    per_row[field].append(("", msg))
                elif top in self.group_errors:
                    per_group.setdefault(top, []).append(msg)
                else:
                    general.append(line)
        bad_tabs: set[int] = set()
        for path, problems in per_row.items():
            shown = self.rows[path].show_problems(problems)
            if shown:
                bad_tabs.add(self.tab_of[path])
        by_label: dict[int, tuple[QLabel, list[str]]] = {}
        for name, label in self.group_errors.items():
            entry = by_label.setdefault(id(label), (label, []))
            entry[1].extend(per_group.get(name, []))
            if per_group.get(name):
                bad_tabs.add(self.tab_of[name])
        for label, msgs in by_label.values():
            label.setText("\n".join(msgs))
            label.setVisible(bool(msgs))
        self.general_error.setText("\n".join(general))
        self.general_error.setVisible(bool(general))
        for index in range(self.tabs.count()):
            self.tabs.setTabIcon(index, status_icon("Failed") if index in bad_tabs else QIcon())

    def field_for_message(self, group: str, msg: str) -> str | None:
        """The field of `group` (e.g. "source") a rule about the whole group is about.

        Such a rule (a model validator) is reported for the group, not a field; it names the
        fields it is about, by name or by title ("entry script 'x' is not in the source
        folder"). Of the fields it names, an empty one is the likely fix ("give source_dir and
        entry_point"), else the first named; a rule that names none goes to the group's first
        field, so every message sits at a field rather than at the top of the tab.
        """
        fields = [p for p in self.rows if p.startswith(group + ".")]
        if not fields:
            return None
        text = msg.lower()
        named: list[tuple[int, str]] = []
        for path in fields:
            sub = path[len(group) + 1 :]
            title = (self.rows[path].info.title or humanize(sub)).lower()
            hits = [
                m.start()
                for word in (sub.lower(), title)
                if (m := re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text))
            ]
            if hits:
                named.append((min(hits), path))
        named.sort()
        for _, path in named:
            if self.rows[path].value() in (None, "", [], {}):
                return path
        return named[0][1] if named else fields[0]

    def problem_text(self, path: str) -> str:
        """What is shown under a field right now ('' when it is fine)."""
        row = self.rows[path]
        return "" if row.error.isHidden() else row.error.text()


def rebase_paths(data: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """Rewrite relative local paths in a spec mapping from folder `old` to folder `new`."""
    if old.resolve() == new.resolve():
        return data

    def move(value: Any) -> Any:
        if not isinstance(value, str) or not value or is_remote(value):
            return value
        path = Path(value).expanduser()
        if path.is_absolute():
            return value
        return relative_to(str((old / path).resolve()), new)

    out = dict(data)
    for group, fields in (
        ("source", ("source_dir", "requirements")),
        ("distribution", ("driver_dir",)),
    ):
        if isinstance(out.get(group), dict):
            sub = dict(out[group])
            for field in fields:
                if field in sub:
                    sub[field] = move(sub[field])
            if isinstance(sub.get("dependencies"), list):
                sub["dependencies"] = [move(d) for d in sub["dependencies"]]
            out[group] = sub
    for field in ("hyperparameters_file", "checkpoint_dir", "output_path"):
        if field in out:
            out[field] = move(out[field])
    if isinstance(out.get("channels"), list):
        out["channels"] = [
            {**ch, "source": move(ch.get("source"))} if isinstance(ch, dict) else ch
            for ch in out["channels"]
        ]
    return out


# -- the editor window -------------------------------------------------------------------------


class SpecEditorDialog(QDialog):
    """The job form in its own window: save the spec as YAML in the project, or save and run it."""

    sig_saved = Signal(str)
    """The path the spec was written to."""
    sig_run_requested = Signal(object, str)
    """(JobSpec, the saved path): the main window submits it."""
    sig_preflight_requested = Signal(object, str)
    """(spec, project folder): run a SageMaker spec here on a slice of its data first."""

    def __init__(
        self,
        project_dir: Path,
        path: Path | None = None,
        data: dict[str, Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.project_dir = project_dir
        self.path = path
        self.setWindowIcon(app_icon())
        self.setSizeGripEnabled(True)
        self.form = SpecForm(project_dir, self)
        self.export_dialog: ExportDialog | None = None
        self.cost_label = CostLabel(self)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.save_button = self.buttons.addButton("Save", QDialogButtonBox.ButtonRole.ActionRole)
        self.save_button.setShortcut(QKeySequence(QKeySequence.StandardKey.Save))
        self.save_button.setToolTip("Save the spec as YAML in the project (Ctrl+S)")
        self.save_as_button = self.buttons.addButton(
            "Save As…", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.run_button: QPushButton = self.buttons.addButton(
            "Save and Run", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.run_button.setShortcut(QKeySequence("Ctrl+R"))
        self.run_button.setToolTip("Save the spec and start the job (Ctrl+R)")
        self.preflight_button = self.buttons.addButton(
            "Preflight", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.preflight_button.setToolTip(
            "SageMaker: run the job here on a slice of its data until its first metric and "
            "checkpoint; nothing is launched"
        )
        self.preflight_button.setEnabled(False)
        self.preflight_button.clicked.connect(self._on_preflight_clicked)
        self.export_button: QPushButton = self.buttons.addButton(
            "Export for SageMaker…", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.export_button.setToolTip(
            "Show the spec as SageMaker Python SDK code (V3 and V2) and as a CreateTrainingJob "
            "request, to copy or save"
        )
        self.export_button.setEnabled(False)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.save_as_button.clicked.connect(self._on_save_as_clicked)
        self.run_button.clicked.connect(self._on_run_clicked)
        self.close_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form, 1)
        layout.addWidget(self.cost_label)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.form.sig_validated.connect(self._on_validated)
        self.form.sig_changed.connect(self._on_changed)
        if data is not None:
            self.form.set_data(data)
        self.show_aws_defaults()
        self._complete_instance_types()
        self._saved_data = self.form.data()
        self.unsaved_box: QMessageBox | None = None
        """The "Save changes?" question while it is open (tests answer it)."""
        self._update_title()
        self.resize(860, 640)

    def _complete_instance_types(self) -> None:
        """Suggest the instance types the price table knows while typing (any other is fine)."""
        from trainer_gui.core.aws.pricing import price_table

        row = self.form.rows.get("compute.instance_type")
        edit = getattr(row.editor, "edit", None) if row is not None else None
        if not isinstance(edit, QLineEdit):
            return
        try:
            table = price_table()
        except (OSError, ValueError, KeyError):  # a damaged table costs the hints, nothing else
            log.warning("cannot read the price table for instance hints", exc_info=True)
            return
        names = sorted({t for region in table.regions for t in table.instance_types(region)})
        completer = QCompleter(names, edit)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        edit.setCompleter(completer)

    def show_aws_defaults(self, defaults: AwsDefaults | None = None) -> None:
        """Empty SageMaker fields say what the AWS settings will put there at run time."""
        defaults = load_aws_defaults() if defaults is None else defaults
        empty = {
            "profile": "(not set: boto3's default credential chain)",
            "region": "(not set: the profile's region)",
            "role_arn": "(not set: pick a role in Cloud > AWS settings)",
            "s3_prefix": "(not set: s3://sagemaker-<region>-<account>)",
        }
        for key, fallback in empty.items():
            row = self.form.rows.get(f"sagemaker.{key}")
            edit = getattr(row.editor, "edit", None) if row is not None else None
            if isinstance(edit, QLineEdit):
                value = getattr(defaults, key)
                edit.setPlaceholderText(f"{value} (from the AWS settings)" if value else fallback)

    def _update_title(self) -> None:
        where = self.path.name if self.path else "new job"
        self.setWindowTitle(f"Job spec — {where}{' *' if self.has_unsaved_changes() else ''}")

    def has_unsaved_changes(self) -> bool:
        """Whether the form differs from what was opened or last saved (typing a change and
        then undoing it is no change)."""
        return self.form.data() != self._saved_data

    @Slot()
    def _on_changed(self) -> None:
        self._update_title()

    def reject(self) -> None:
        """Esc, Close and the window's × all end here: unsaved edits are not dropped unasked."""
        if self.has_unsaved_changes() and not self._resolve_unsaved():
            return
        super().reject()

    def _resolve_unsaved(self) -> bool:
        """Ask Save / Discard / Cancel; True when the window may close."""
        buttons = QMessageBox.StandardButton
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Save changes?",
            f"The job spec {self.path.name if self.path else '(new job)'} has unsaved changes.",
            buttons.Save | buttons.Discard | buttons.Cancel,
            self,
        )
        box.setInformativeText("Save them before closing the form?")
        box.setDefaultButton(buttons.Save)
        box.setEscapeButton(buttons.Cancel)
        self.unsaved_box = box
        try:
            box.exec()
            answer = box.standardButton(box.clickedButton())
        finally:
            self.unsaved_box = None
            box.deleteLater()
        if answer == buttons.Save:
            return self.save() is not None  # refused (problems, a cancelled overwrite): stay
        return answer == buttons.Discard

    @Slot(bool)
    def _on_validated(self, valid: bool) -> None:
        self.cost_label.set_spec(self.form.spec)
        self.export_button.setEnabled(valid)
        spec = self.form.spec
        cloud = valid and spec is not None and spec.compute.backend.value == "sagemaker"
        self.preflight_button.setEnabled(cloud)
        if valid:
            self.status.setText("The spec is valid.")
            self.status.setStyleSheet("")
        else:
            count = len(self.form.problems)
            self.status.setText(
                f"{count} problem{'s' if count != 1 else ''} to fix before saving or running "
                "(marked in red; hover a field for its description)."
            )
            self.status.setStyleSheet(f"color: {ERROR_COLOR};")

    def default_path(self, spec: JobSpec) -> Path:
        return self.path or self.project_dir / f"{spec.name}.yaml"

    def _valid_spec(self, action: str) -> JobSpec | None:
        spec = self.form.validate()
        if spec is None:
            QMessageBox.warning(
                self,
                f"Cannot {action}",
                "The spec has problems:\n\n" + "\n".join(f"• {p}" for p in self.form.problems),
            )
        return spec

    def confirm_overwrite(self, path: Path) -> bool:
        answer = QMessageBox.question(
            self,
            "Replace the file?",
            f"{path} already exists. Replace it with this spec?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def save(self, path: Path | None = None) -> Path | None:
        """Validate and write the YAML file; returns where, or None if it was not saved."""
        spec = self._valid_spec("save")
        if spec is None:
            return None
        target = path or self.default_path(spec)
        if target != self.path and target.exists() and not self.confirm_overwrite(target):
            return None
        try:
            save_spec(spec, target)
        except OSError as exc:
            QMessageBox.warning(self, "Cannot save", f"Cannot write {target}: {exc}")
            return None
        self.path = target
        self._saved_data = self.form.data()
        self._update_title()
        self.status.setText(f"Saved {target}")
        self.sig_saved.emit(str(target))
        return target

    @Slot()
    def _on_save_clicked(self) -> None:
        self.save()

    @Slot()
    def _on_save_as_clicked(self) -> None:
        spec = self._valid_spec("save")
        if spec is None:
            return
        start = str(self.default_path(spec))
        path, _ = QFileDialog.getSaveFileName(self, "Save job spec", start, "YAML (*.yaml *.yml)")
        if path:
            target = Path(path)
            if target.suffix.lower() not in (".yaml", ".yml"):
                target = target.with_suffix(".yaml")
            self.path = None  # a new file: ask before replacing it
            self.save(target)

    @Slot()
    def _on_preflight_clicked(self) -> None:
        spec = self._valid_spec("preflight")
        if spec is not None:
            self.sig_preflight_requested.emit(spec, str(self.project_dir))

    def _on_export_clicked(self) -> None:
        self.export()

    def export(self) -> ExportDialog | None:
        """Open the SageMaker export of the current spec (non-modal; replaces an open one)."""
        spec = self._valid_spec("export")
        if spec is None:
            return None
        if self.export_dialog is not None:
            self.export_dialog.close()
            self.export_dialog.deleteLater()
        self.export_dialog = ExportDialog(spec, self)
        self.export_dialog.show()
        return self.export_dialog

    @Slot()
    def _on_run_clicked(self) -> None:
        self.run()

    def run(self) -> bool:
        path = self.save()
        if path is None or self.form.spec is None:
            return False
        self.sig_run_requested.emit(self.form.spec, str(path))
        self.accept()
        return True
