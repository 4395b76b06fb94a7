"""The runs (jobs) table: a QAbstractTableModel over job records, a filter proxy, and the view.

Rows are updated in place (records reloaded on a worker thread, statuses and metric values from
the bridge's signals), so sorting, selection and scroll position survive every refresh. A job
being submitted shows as a "Starting…" row at once, before the store knows it; the real row
replaces it once the submit has returned and the list is reloaded.

Besides the fixed columns, a run shows its hyperparameters (parsed once per job, off the GUI
thread, and cached), each metric's last and best value (one store query per refresh), and the
user's tags and note (editable in place). Which columns show, the grouping and each metric's
"best" direction are remembered per project (the project's settings in the store).

Sorting and grouping are done by the model itself, with a key list computed once per sort (a
QSortFilterProxyModel sort would call back into Python for every comparison): rows are reordered
as a layout change, so selections follow their rows. The proxy only filters.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRegularExpression,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.errors import UserError
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.runners.sysmetrics import is_system_metric
from trainer_gui.core.runs_filter import CompiledFilter, FilterError, filter_name, parse_filter
from trainer_gui.core.spec.model import Backend
from trainer_gui.core.store import JobRecord, Store
from trainer_gui.core.store.annotations import MetricSummary, RunAnnotation, clean_tags
from trainer_gui.services.live_data import MetricChunk, as_metric_chunk
from trainer_gui.ui.icons import cloud_icon, status_color, status_icon
from trainer_gui.ui.tasks import TaskGroup

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 2
FIXED_COLUMNS = ("Name", "Status", "Backend", "Started", "Duration")
COL_NAME, COL_STATUS, COL_BACKEND, COL_STARTED, COL_DURATION = range(len(FIXED_COLUMNS))
FIXED_KEYS = ("name", "status", "backend", "started", "duration")
MAX_METRIC_COLUMNS = 6
MAX_DEFAULT_HP_COLUMNS = 10
_STATUS_ORDER = {s.value: i for i, s in enumerate(JobStatus)}
_KEY_WORDS = ("loss", "acc", "f1", "auc", "error", "score", "perplexity")
# Metric names whose best value is the lowest; the highest for _MAXIMIZE; checked in this order.
_MINIMIZE = ("loss", "error", "err", "mse", "mae", "rmse", "nll", "perplexity", "ppl", "wer")
_MAXIMIZE = ("acc", "f1", "auc", "precision", "recall", "score", "iou", "bleu", "map", "r2")
ACTIVE_FILTER = "Active"
STARTING = "Starting…"
_PLACEHOLDER_PREFIX = "starting:"
CLOUD_BACKEND = Backend.SAGEMAKER.value
SETTINGS_KEY = "runs_table"
"""The project setting holding the table's columns, grouping and metric directions."""
GROUPS = {"spec": "Spec", "sweep": "Sweep", "tag": "Tag"}
NO_GROUP = {"spec": "(no spec)", "sweep": "(no sweep)", "tag": "(no tag)"}
_LABELS = {
    "name": "Name",
    "status": "Status",
    "backend": "Backend",
    "started": "Started",
    "duration": "Duration",
    "tags": "Tags",
    "note": "Note",
}
EDITABLE = ("tags", "note")

IndexLike = QModelIndex | QPersistentModelIndex


def metric_priority(name: str) -> tuple[int, str]:
    """Key metrics first (losses, accuracies, ...), then alphabetical."""
    lowered = name.lower()
    for rank, word in enumerate(_KEY_WORDS):
        if word in lowered:
            return rank, lowered
    return len(_KEY_WORDS), lowered


def metric_goal(name: str) -> str:
    """ "min" or "max": which end of a metric is its best, guessed from its name."""
    lowered = name.lower()
    if any(word in lowered for word in _MINIMIZE):
        return "min"
    if any(word in lowered for word in _MAXIMIZE):
        return "max"
    return "min"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_started(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    now = time.time()
    local = time.localtime(timestamp)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d", time.localtime(now)):
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


def format_metric(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g}"


def format_value(value: Any) -> str:
    """A hyperparameter as a cell shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def cloud_tooltip(record: JobRecord) -> str:
    """Where a SageMaker job runs: its training job name, region and whether it was attached."""
    ids = record.backend_ids
    name = ids.get("training_job_name") or record.id
    lines = [f"Amazon SageMaker training job {name}"]
    if ids.get("region"):
        lines.append(f"Region: {ids['region']}")
    if ids.get("profile"):
        lines.append(f"AWS profile: {ids['profile']}")
    if ids.get("adopted"):
        lines.append("Attached from the account (started outside this app)")
    lines.append("Runs in the cloud: it keeps running (and billing) when the app closes.")
    return "\n".join(lines)


# -- loading (worker thread) --------------------------------------------------------------------

_HP_CACHE: dict[str, dict[str, Any]] = {}
_HP_LOCK = threading.Lock()
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def spec_hyperparameters(record: JobRecord) -> dict[str, Any]:
    """The hyperparameters written in a job's stored spec; parsed once per job (cached)."""
    with _HP_LOCK:
        cached = _HP_CACHE.get(record.id)
    if cached is not None:
        return cached
    found: dict[str, Any] = {}
    try:
        spec = yaml.load(record.spec_yaml, Loader=_YamlLoader) if record.spec_yaml else None
    except yaml.YAMLError:
        spec = None
    if isinstance(spec, dict) and isinstance(spec.get("hyperparameters"), dict):
        found = {str(k): v for k, v in spec["hyperparameters"].items()}
    with _HP_LOCK:
        _HP_CACHE[record.id] = found
    return found


@dataclass
class RunsSnapshot:
    """Everything the table shows of a project, read in one go off the GUI thread."""

    project_id: int | None
    project_path: str | None
    records: list[JobRecord]
    summaries: dict[str, dict[str, MetricSummary]] = field(default_factory=dict)
    annotations: dict[str, RunAnnotation] = field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)


def load_runs(store: Store, project_id: int | None) -> RunsSnapshot:
    """The project's jobs, metric summaries (one query), tags and notes, hyperparameters."""
    project = store.get_project(project_id) if project_id is not None else None
    records = store.list_jobs(project_id=project_id)
    return RunsSnapshot(
        project_id=project_id,
        project_path=project.path if project else None,
        records=records,
        summaries=store.metric_summaries(project_id),
        annotations=store.run_annotations(project_id),
        hyperparameters={r.id: spec_hyperparameters(r) for r in records},
        settings=dict(project.settings.get(SETTINGS_KEY) or {}) if project else {},
    )


# -- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column: `key` is "name", "hp:lr", "last:loss", "best:loss", "tags", "group", ..."""

    key: str
    kind: str = field(init=False, compare=False)
    name: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        kind, sep, name = self.key.partition(":")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "name", name if sep else kind)


_MISSING = object()
_NO_ANNOTATION = RunAnnotation()
_ROLES = frozenset(
    {
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.EditRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.DecorationRole,
        Qt.ItemDataRole.ForegroundRole,
        Qt.ItemDataRole.TextAlignmentRole,
        Qt.ItemDataRole.FontRole,
        SORT_ROLE,
        JOB_ID_ROLE,
    }
)


def _sort_value(value: Any) -> tuple[int, Any]:
    """(0, number) | (1, text); a missing value is (2, 0) and goes last either way."""
    if value is None or value == "" or value == []:
        return (2, 0)
    if isinstance(value, bool):
        return (0, float(value))
    if isinstance(value, (int, float)):
        return (2, 0) if value != value else (0, value)
    if isinstance(value, list):
        return (1, ", ".join(str(v) for v in value).lower())
    return (1, str(value).lower())


class JobsTableModel(QAbstractTableModel):
    """Job records, their hyperparameters, metric summaries, tags and notes, as columns."""

    sig_edited = Signal(str, str, object)
    """A cell was edited: job id, "tags" or "note", the new value (tags as a tuple)."""
    sig_edit_refused = Signal(str)
    """An edit could not be taken (a tag too long, ...): the reason."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._records: list[JobRecord] = []
        self._metrics: list[dict[str, float]] = []
        self._low: list[dict[str, float]] = []
        self._high: list[dict[str, float]] = []
        self._hps: list[dict[str, Any]] = []
        self._tags: list[tuple[str, ...]] = []
        self._notes: list[str] = []
        self._row_of: dict[str, int] = {}
        self._columns: list[Column] = [Column(k) for k in FIXED_KEYS]
        self.all_metric_names: list[str] = []
        self.all_hp_names: list[str] = []
        self.chosen: list[str] | None = None  # the user's column keys; None: the default set
        self.goals: dict[str, str] = {}  # metric -> "min" / "max" where the user flipped it
        self.group_by: str | None = None
        self._group_labels: list[str] = []
        self._group_counts: dict[str, int] = {}
        self._sort: tuple[str, Qt.SortOrder] = ("started", Qt.SortOrder.DescendingOrder)
        self._placeholder_numbers = itertools.count(1)
        self._resolved: set[str] = set()  # placeholders whose submit returned
        self._queue: dict[str, int] = {}  # queued job id -> place (1 = next; 0 starting)
        self._version = 0  # bumped by every change of a value: sorts and filters redo then
        self._sorted_state: object = None
        self._seen: dict[str, tuple[JobRecord, dict[str, MetricSummary], RunAnnotation]] = {}
        self._quiet = False
        self._expression: CompiledFilter | None = None
        self._expression_names: dict[str, str] = {}
        self._expression_ok: dict[str, bool] | None = None
        self._expression_version = -1
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start()

    # -- columns -----------------------------------------------------------------------------

    @property
    def metric_names(self) -> list[str]:
        """The metrics whose last value has a column, in column order."""
        return [c.name for c in self._columns if c.kind == "last"]

    @property
    def column_keys(self) -> list[str]:
        return [c.key for c in self._columns]

    def column_of(self, key: str) -> int | None:
        for i, column in enumerate(self._columns):
            if column.key == key:
                return i
        return None

    def goal(self, metric: str) -> str:
        return self.goals.get(metric) or metric_goal(metric)

    def available_keys(self) -> list[str]:
        """Every column this project's runs can show (the chooser's entries)."""
        keys = [*FIXED_KEYS]
        keys += [f"hp:{n}" for n in self.all_hp_names]
        keys += [f"last:{m}" for m in self.all_metric_names]
        keys += [f"best:{m}" for m in self.all_metric_names]
        keys += ["tags", "note"]
        return keys

    def _varies(self, hp: str) -> bool:
        first: Any = _MISSING
        for hps in self._hps:
            value = hps.get(hp)
            if first is _MISSING:
                first = value
            elif value != first:
                return True
        return False

    def default_keys(self) -> list[str]:
        """Fixed columns, hyperparameters that differ between runs, key metrics, tags, note."""
        varying = [n for n in self.all_hp_names if self._varies(n)][:MAX_DEFAULT_HP_COLUMNS]
        metrics = sorted(self.all_metric_names, key=metric_priority)[:MAX_METRIC_COLUMNS]
        return [
            *FIXED_KEYS,
            *(f"hp:{n}" for n in varying),
            *(f"last:{m}" for m in metrics),
            "tags",
            "note",
        ]

    def label(self, key: str) -> str:
        column = Column(key)
        if column.kind == "hp":
            return column.name
        if column.kind == "last":
            return column.name
        if column.kind == "best":
            arrow = "↓" if self.goal(column.name) == "min" else "↑"
            return f"{column.name} (best {arrow})"
        if column.kind == "group":
            return GROUPS.get(self.group_by or "", "Group")
        return _LABELS.get(key, key)

    def _wanted_columns(self) -> list[Column]:
        available = set(self.available_keys())
        keys = self.chosen if self.chosen is not None else self.default_keys()
        keys = [k for k in keys if k in available or k in ("tags", "note")]
        if "name" not in keys:
            keys.insert(0, "name")
        if self.group_by:
            keys = ["group", *keys]
        seen: set[str] = set()
        return [Column(k) for k in keys if not (k in seen or seen.add(k))]  # type: ignore[func-returns-value]

    def _apply_columns(self) -> None:
        """Insert and remove columns to reach the wanted set (rows and selection stay)."""
        target = self._wanted_columns()
        for pos in range(len(self._columns) - 1, -1, -1):
            if self._columns[pos] not in target:
                self.beginRemoveColumns(QModelIndex(), pos, pos)
                del self._columns[pos]
                self.endRemoveColumns()
        for pos, column in enumerate(target):
            if pos < len(self._columns) and self._columns[pos] == column:
                continue
            if column in self._columns:
                old = self._columns.index(column)
                self.beginRemoveColumns(QModelIndex(), old, old)
                del self._columns[old]
                self.endRemoveColumns()
            self.beginInsertColumns(QModelIndex(), pos, pos)
            self._columns.insert(pos, column)
            self.endInsertColumns()
        if self._columns:
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, len(self._columns) - 1)

    def set_chosen(self, keys: list[str] | None) -> None:
        self.chosen = None if keys is None else list(keys)
        self._apply_columns()

    def set_goal(self, metric: str, goal: str) -> None:
        """Which end of `metric` is its best ("min" / "max")."""
        if goal == metric_goal(metric):
            self.goals.pop(metric, None)
        else:
            self.goals[metric] = goal
        self._version += 1
        col = self.column_of(f"best:{metric}")
        if col is not None and self._records:
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, col, col)
            self.dataChanged.emit(self.index(0, col), self.index(self.rowCount() - 1, col))
        if self._sort[0] == f"best:{metric}":
            self.resort()

    def set_group_by(self, group: str | None) -> None:
        self.group_by = group if group in GROUPS else None
        self._regroup()
        self._apply_columns()
        self.resort()

    # -- Qt model API ------------------------------------------------------------------------

    def rowCount(self, parent: IndexLike = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: IndexLike = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self._columns):
            return None
        column = self._columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.label(column.key)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column.kind == "last":
                name = self.filter_names()[0].get(column.key, "")
                return f"Last value of {column.name} (in filters: {name})"
            if column.kind == "best":
                end = "lowest" if self.goal(column.name) == "min" else "highest"
                return f"Best ({end}) value of {column.name}; right-click the header to flip it"
            if column.kind == "hp":
                return f"Hyperparameter {column.name}"
            if column.key in EDITABLE:
                return f"{self.label(column.key)}: double-click a cell to edit"
        return None

    def flags(self, index: IndexLike) -> Qt.ItemFlag:
        base = super().flags(index)
        if (
            index.isValid()
            and self._columns[index.column()].key in EDITABLE
            and not self.is_placeholder(self._records[index.row()].id)
        ):
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: IndexLike, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in _ROLES or not index.isValid():  # painting asks many roles: most are None
            return None
        row = index.row()
        record = self._records[row]
        if role == JOB_ID_ROLE:
            return record.id
        column = self._columns[index.column()]
        kind = column.kind
        if kind == "name":
            if role == Qt.ItemDataRole.DisplayRole:
                return record.name
            if role == Qt.ItemDataRole.ToolTipRole:
                return record.id
        elif kind == "status":
            if role == Qt.ItemDataRole.DisplayRole:
                return record.status
            if role == Qt.ItemDataRole.DecorationRole:
                return status_icon(record.status)
            if role == Qt.ItemDataRole.ForegroundRole:
                return status_color(record.status)
            if role == Qt.ItemDataRole.ToolTipRole:
                if record.status == JobStatus.QUEUED.value and record.id in self._queue:
                    place = self._queue[record.id]
                    return (
                        f"Queued: #{place} in the queue (View > Queue)"
                        if place
                        else "Queued: being started"
                    )
                return record.failure_reason or record.status
        elif kind == "backend":
            if role == Qt.ItemDataRole.DisplayRole:
                return record.backend
            if record.backend == CLOUD_BACKEND:
                if role == Qt.ItemDataRole.DecorationRole:
                    return cloud_icon()
                if role == Qt.ItemDataRole.ToolTipRole:
                    return cloud_tooltip(record)
        elif kind == "started":
            started = record.started_at or record.created_at
            waiting = record.status == JobStatus.QUEUED.value  # not started: no start time
            if role == Qt.ItemDataRole.DisplayRole:
                return "–" if waiting else format_started(started)
            if role == Qt.ItemDataRole.ToolTipRole:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
                return f"Queued at {stamp}" if waiting else stamp
        elif kind == "duration":
            if role == Qt.ItemDataRole.DisplayRole:
                return format_duration(record.duration)
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif kind in ("last", "best", "hp"):
            value = self.raw_value(row, column.key)
            if role == Qt.ItemDataRole.DisplayRole:
                return format_value(value) if kind == "hp" else format_metric(value)
            if role == Qt.ItemDataRole.ToolTipRole and value is not None:
                return f"{column.name} = {value!r}"
            if role == Qt.ItemDataRole.TextAlignmentRole and not isinstance(value, str):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif kind == "tags":
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
                return ", ".join(self._tags[row])
        elif kind == "note":
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
                text = self._notes[row]
                return text if role == Qt.ItemDataRole.EditRole else text.replace("\n", " ")
            if role == Qt.ItemDataRole.ToolTipRole and self._notes[row]:
                return self._notes[row]
        elif kind == "group":
            label = self._group_labels[row] if row < len(self._group_labels) else ""
            if role == Qt.ItemDataRole.DisplayRole:
                return label
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"{self._group_counts.get(label, 0)} runs in {label}"
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setBold(True)
                return font
        if role == SORT_ROLE:
            return self._sort_key(row, column.key)
        return None

    def setData(
        self,
        index: IndexLike,
        value: Any,
        role: int = Qt.ItemDataRole.EditRole,
    ) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        key = self._columns[index.column()].key
        row = index.row()
        job_id = self._records[row].id
        if key not in EDITABLE or self.is_placeholder(job_id):
            return False
        text = "" if value is None else str(value)
        if key == "tags":
            try:
                tags = clean_tags(text)
            except UserError as exc:
                self.sig_edit_refused.emit(str(exc))
                return False
            if tags == self._tags[row]:
                return False
            self._tags[row] = tags
            self.sig_edited.emit(job_id, "tags", tags)
            if self.group_by == "tag":
                self._regroup()
                self.resort()
        else:
            if text == self._notes[row]:
                return False
            self._notes[row] = text
            self.sig_edited.emit(job_id, "note", text)
        self._version += 1
        self.dataChanged.emit(index, index)
        return True

    # -- values --------------------------------------------------------------------------------

    def raw_value(self, row: int, key: str) -> Any:
        """The value behind a cell: numbers stay numbers, a missing one is None."""
        record = self._records[row]
        kind, _, name = key.partition(":")
        if kind == "last":
            value = self._metrics[row].get(name)
            return None if value is None or math.isnan(value) else value
        if kind == "best":
            side = self._low if self.goal(name) == "min" else self._high
            return side[row].get(name)
        if kind == "hp":
            return self._hps[row].get(name)
        if key == "name":
            return record.name
        if key == "status":
            return record.status
        if key == "backend":
            return record.backend
        if key == "started":
            return record.started_at or record.created_at
        if key == "duration":
            return record.duration
        if key == "tags":
            return list(self._tags[row])
        if key == "note":
            return self._notes[row]
        if key == "group":
            return self._group_labels[row] if row < len(self._group_labels) else ""
        if key == "id":
            return record.id
        if key == "sweep":
            return record.backend_ids.get("sweep")
        return None

    def _sort_key(self, row: int, key: str) -> tuple[int, Any]:
        if key == "status":
            return (0, _STATUS_ORDER.get(self._records[row].status, 99))
        return _sort_value(self.raw_value(row, key))

    def column_values(self, key: str) -> list[Any]:
        """Every row's value of one column, in row order (as `raw_value`, in one pass)."""
        kind, _, name = key.partition(":")
        records = self._records
        if kind == "last":
            return [None if (v := d.get(name)) is None or v != v else v for d in self._metrics]
        if kind == "best":
            side = self._low if self.goal(name) == "min" else self._high
            return [d.get(name) for d in side]
        if kind == "hp":
            return [h.get(name) for h in self._hps]
        if key == "name":
            return [r.name for r in records]
        if key == "status":
            return [r.status for r in records]
        if key == "backend":
            return [r.backend for r in records]
        if key == "started":
            return [r.started_at or r.created_at for r in records]
        if key == "duration":
            return [r.duration for r in records]
        if key == "tags":
            return [list(t) for t in self._tags]
        if key == "note":
            return list(self._notes)
        if key == "group":
            return list(self._group_labels) if self._group_labels else [""] * len(records)
        if key == "id":
            return [r.id for r in records]
        if key == "sweep":
            return [r.backend_ids.get("sweep") for r in records]
        return [None] * len(records)

    # -- the filter expression -----------------------------------------------------------------

    def set_expression(self, expression: CompiledFilter | None, by_name: dict[str, str]) -> None:
        self._expression = expression
        self._expression_names = dict(by_name)
        self._expression_ok = None

    def expression_accepts(self, row: int) -> bool:
        """Whether the row passes the filter expression; all rows are checked in one go, over
        column lists, the first time after a change."""
        expression = self._expression
        if expression is None:
            return True
        ok = self._expression_ok
        if ok is None or self._expression_version != self._version:
            by_name = self._expression_names
            columns = {n: self.column_values(by_name[n]) for n in expression.names}
            passed = expression.rows(columns, len(self._records))
            ok = {record.id: bool(p) for record, p in zip(self._records, passed, strict=True)}
            self._expression_ok = ok
            self._expression_version = self._version
        return ok.get(self._records[row].id, True)

    def filter_names(self) -> tuple[dict[str, str], dict[str, str]]:
        """(column key -> filter name, filter name -> column key) over every column a run has."""
        by_name: dict[str, str] = {}
        fixed = ["name", "status", "backend", "started", "duration", "note", "id", "sweep"]
        for key in fixed:
            by_name[key] = key
        by_name["tag"] = "tags"
        by_name["tags"] = "tags"
        for hp in self.all_hp_names:
            name = filter_name(hp)
            by_name.setdefault(name if name not in by_name else f"hp_{name}", f"hp:{hp}")
        for metric in self.all_metric_names:
            name = filter_name(metric)
            by_name.setdefault(name if name not in by_name else f"metric_{name}", f"last:{metric}")
            by_name.setdefault(f"{name}_best", f"best:{metric}")
        if self.group_by:
            by_name.setdefault("group", "group")
        of_key: dict[str, str] = {}
        for name, key in by_name.items():
            of_key.setdefault(key, name)
        return of_key, by_name

    # -- sorting and grouping ------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self._columns):
            return
        self._sort = (self._columns[column].key, order)
        self.resort()

    @property
    def sort_key(self) -> tuple[str, Qt.SortOrder]:
        return self._sort

    def resort(self) -> None:
        """Put the rows in the sort's order (by group first): keys computed once, one pass."""
        n = len(self._records)
        state = (self._sort, self._version, self.group_by, n)
        if n < 2 or state == self._sorted_state:
            return
        key, order = self._sort
        if key not in self.available_keys() and key not in ("group", "tags", "note"):
            key, order = "started", Qt.SortOrder.DescendingOrder
        self._sorted_state = state
        keys: list[Any]
        absent: Any = _MISSING  # the key of a row without a value: it goes last either way
        if key == "status":
            keys = [_STATUS_ORDER.get(r.status, 99) for r in self._records]
        elif key == "name":
            keys = [r.name.lower() for r in self._records]
        elif key.startswith(("last:", "best:")):  # numbers or None: no key tuples needed
            keys, absent = self.column_values(key), None
        else:
            keys, absent = [_sort_value(v) for v in self.column_values(key)], (2, 0)
        present = [r for r in range(n) if keys[r] != absent]
        missing = [r for r in range(n) if keys[r] == absent] if len(present) < n else []
        present.sort(key=keys.__getitem__, reverse=order == Qt.SortOrder.DescendingOrder)
        perm = present + missing
        if self.group_by:
            labels = self._group_labels
            empty = NO_GROUP[self.group_by]
            group_keys = [(label == empty, label.lower()) for label in labels]
            perm.sort(key=group_keys.__getitem__)
        if perm == list(range(n)):
            return
        self._permute(perm)

    def _permute(self, perm: list[int]) -> None:
        """Reorder every row list by `perm` (new row -> old row) as one layout change."""
        if self._quiet:  # inside a model reset: nobody holds rows to move
            for name in ("_records", "_metrics", "_low", "_high", "_hps", "_tags", "_notes"):
                rows = getattr(self, name)
                setattr(self, name, [rows[i] for i in perm])
            if self._group_labels:
                self._group_labels = [self._group_labels[i] for i in perm]
            self._reindex()
            return
        self.layoutAboutToBeChanged.emit()
        new_of_old = [0] * len(perm)
        for new, old in enumerate(perm):
            new_of_old[old] = new
        for name in ("_records", "_metrics", "_low", "_high", "_hps", "_tags", "_notes"):
            rows = getattr(self, name)
            setattr(self, name, [rows[i] for i in perm])
        if self._group_labels:
            self._group_labels = [self._group_labels[i] for i in perm]
        old_indexes = self.persistentIndexList()
        new_indexes = [self.index(new_of_old[i.row()], i.column()) for i in old_indexes]
        self.changePersistentIndexList(old_indexes, new_indexes)
        self._reindex()
        self.layoutChanged.emit()

    def _group_label(self, row: int) -> str:
        group = self.group_by
        if group == "spec":
            return self._records[row].name or NO_GROUP["spec"]
        if group == "sweep":
            sweep = self._records[row].backend_ids.get("sweep")
            return str(sweep) if sweep else NO_GROUP["sweep"]
        if group == "tag":
            return ", ".join(self._tags[row]) or NO_GROUP["tag"]
        return ""

    def _regroup(self) -> None:
        self._version += 1
        if not self.group_by:
            self._group_labels = []
            self._group_counts = {}
            return
        empty = NO_GROUP[self.group_by]
        if self.group_by == "tag":
            labels = [", ".join(tags) or empty for tags in self._tags]
        elif self.group_by == "spec":
            labels = [r.name or empty for r in self._records]
        else:
            labels = [self._group_label(r) for r in range(len(self._records))]
        self._group_labels = labels
        self._group_counts = dict(Counter(labels))
        col = self.column_of("group")
        if col is not None and self._records:
            self.dataChanged.emit(self.index(0, col), self.index(len(self._records) - 1, col))

    # -- updates -----------------------------------------------------------------------------

    def set_jobs(self, rows: Sequence[tuple[JobRecord, dict[str, float]]] | RunsSnapshot) -> None:
        """Make the table show exactly these jobs: changed rows update, others come and go.

        Rows still starting stay until their submit returns; the metric columns are those of
        these jobs only (another project's metrics get no empty column here). `rows` is a
        `RunsSnapshot` (summaries, tags, hyperparameters) or plain (record, last values) pairs.
        """
        if isinstance(rows, RunsSnapshot):
            snap = rows
        else:
            snap = RunsSnapshot(None, None, [r for r, _ in rows])
            snap.summaries = {
                r.id: {n: MetricSummary(v, _finite(v), _finite(v)) for n, v in m.items()}
                for r, m in rows
            }
            snap.hyperparameters = {r.id: spec_hyperparameters(r) for r, _ in rows}
            snap.annotations = {}
        wanted = {record.id for record in snap.records}
        wanted.update(
            job_id
            for job_id in self._row_of
            if self.is_placeholder(job_id) and job_id not in self._resolved
        )
        gone = sorted((r for i, r in self._row_of.items() if i not in wanted), reverse=True)
        for old_row in gone:
            self.beginRemoveRows(QModelIndex(), old_row, old_row)
            self._resolved.discard(self._records[old_row].id)
            self._seen.pop(self._records[old_row].id, None)
            for name in ("_records", "_metrics", "_low", "_high", "_hps", "_tags", "_notes"):
                del getattr(self, name)[old_row]
            self.endRemoveRows()
        self._reindex()
        keep_notes = not isinstance(rows, RunsSnapshot)
        hp_names: set[str] = set()
        metric_names: set[str] = set()
        prepared = []
        for record in snap.records:
            summary = snap.summaries.get(record.id, {})
            hps = snap.hyperparameters.get(record.id) or spec_hyperparameters(record)
            hp_names.update(hps)
            metric_names.update(summary)
            note = snap.annotations.get(record.id, _NO_ANNOTATION)
            prepared.append((record, summary, hps, note))
        for metrics in self._metrics:  # placeholders' live values
            metric_names.update(metrics)
        metric_names = {n for n in metric_names if not is_system_metric(n)}  # no sys/ columns
        self.all_hp_names = sorted(hp_names, key=str.lower)
        self.all_metric_names = sorted(metric_names, key=metric_priority)
        last_col = len(self._columns) - 1
        changed = False
        new: list[
            tuple[
                JobRecord,
                dict[str, float],
                dict[str, float],
                dict[str, float],
                dict[str, Any],
                RunAnnotation,
            ]
        ] = []
        seen = self._seen
        for record, summary, hps, note in prepared:
            before = seen.get(record.id)
            if before is not None and before == (record, summary, note):
                continue  # as last loaded: nothing to compare or redraw
            seen[record.id] = (record, summary, note)
            last = {n: s.last for n, s in summary.items()}
            low = {n: s.low for n, s in summary.items() if s.low is not None}
            high = {n: s.high for n, s in summary.items() if s.high is not None}
            row = self._row_of.get(record.id)
            if row is None:
                new.append((record, last, low, high, hps, note))
            else:
                merged = {**self._metrics[row], **last}
                tags = self._tags[row] if keep_notes else note.tags
                text = self._notes[row] if keep_notes else note.note
                if (
                    self._records[row] != record
                    or self._metrics[row] != merged
                    or self._low[row] != low
                    or self._high[row] != high
                    or self._tags[row] != tags
                    or self._notes[row] != text
                ):
                    self._records[row] = record
                    self._metrics[row] = merged
                    self._low[row] = {**self._low[row], **low}
                    self._high[row] = {**self._high[row], **high}
                    self._hps[row] = hps
                    self._tags[row] = tags
                    self._notes[row] = text
                    self.dataChanged.emit(self.index(row, 0), self.index(row, last_col))
                    changed = True
        fresh = bool(new) and not self._records
        if fresh:  # a project opened: one reset, rows sorted before anyone sees them
            self.beginResetModel()
        if new:  # one insertion for all new rows: the proxy and view take it in one go
            first = len(self._records)
            if not fresh:
                self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for record, last, low, high, hps, note in new:
                self._row_of[record.id] = len(self._records)
                self._records.append(record)
                self._metrics.append(last)
                self._low.append(low)
                self._high.append(high)
                self._hps.append(hps)
                self._tags.append(note.tags)
                self._notes.append(note.note)
            if not fresh:
                self.endInsertRows()
            changed = True
        if changed or gone:
            self._version += 1
        self._regroup()
        if fresh:
            self._quiet = True
            try:
                self.resort()
            finally:
                self._quiet = False
            self.endResetModel()
        self._apply_columns()
        if changed or gone:
            self.resort()

    def set_queue_positions(self, positions: dict[str, int]) -> None:
        """Where each queued job stands (from the Queue view's reads), for the tooltips."""
        if positions == self._queue:
            return
        self._queue = dict(positions)
        col = self.column_of("status")
        if self._records and col is not None:
            last = self.rowCount() - 1
            self.dataChanged.emit(self.index(0, col), self.index(last, col))

    def update_status(self, job_id: str, status: str, message: str = "") -> bool:
        row = self._row_of.get(job_id)
        if row is None:
            return False
        record = self._records[row]
        changes: dict[str, Any] = {"status": status}
        now = time.time()
        if status == JobStatus.TRAINING.value and record.started_at is None:
            changes["started_at"] = now
        if status in {s.value for s in JobStatus if s.is_terminal}:
            changes["ended_at"] = record.ended_at or now
            if status == JobStatus.FAILED.value and message:
                changes["failure_reason"] = message
        self._records[row] = replace(record, **changes)
        self._version += 1
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
        if self._sort[0] in ("status", "started", "duration"):
            self.resort()
        return True

    def update_metrics(self, job_id: str, samples: MetricChunk | Iterable[MetricSample]) -> None:
        """The newest value of each metric in `samples` goes to the job's row (best too)."""
        row = self._row_of.get(job_id)
        if row is None:
            return
        chunk = as_metric_chunk(samples)
        last = {n: v for n, v in chunk.last.items() if not is_system_metric(n)}  # no columns
        if not last:
            return
        low, high = self._low[row], self._high[row]
        for (_host, name), (_steps, _times, values) in chunk.columns.items():
            finite = values[~np.isnan(values)]
            if not len(finite):
                continue
            lo, hi = float(finite.min()), float(finite.max())
            if name not in low or lo < low[name]:
                low[name] = lo
            if name not in high or hi > high[name]:
                high[name] = hi
        if not set(last) <= set(self.all_metric_names):
            self.all_metric_names = sorted({*self.all_metric_names, *last}, key=metric_priority)
            self._apply_columns()
        self._metrics[row].update(last)
        self._version += 1
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
        sort_key = self._sort[0]
        if sort_key.partition(":")[2] in last and sort_key.partition(":")[0] in ("last", "best"):
            self.resort()

    # -- rows still starting -------------------------------------------------------------------

    @staticmethod
    def is_placeholder(job_id: str) -> bool:
        """Whether `job_id` is a row still starting (no job in the store yet)."""
        return job_id.startswith(_PLACEHOLDER_PREFIX)

    def add_placeholder(self, name: str, backend: str, project_id: int | None) -> str:
        """A "Starting…" row for a job being submitted, dated now; returns its row id."""
        job_id = f"{_PLACEHOLDER_PREFIX}{next(self._placeholder_numbers)}"
        now = time.time()
        record = JobRecord(
            id=job_id,
            project_id=project_id,
            name=name,
            backend=backend,
            spec_yaml="",
            status=STARTING,
            created_at=now,
            started_at=None,
            ended_at=None,
            failure_reason=None,
            backend_ids={},
            run_dir="",
        )
        row = len(self._records)
        self.beginInsertRows(QModelIndex(), row, row)
        self._records.append(record)
        self._metrics.append({})
        self._low.append({})
        self._high.append({})
        self._hps.append({})
        self._tags.append(())
        self._notes.append("")
        self._row_of[job_id] = row
        if self.group_by:
            self._group_labels.append(self._group_label(row))
        self.endInsertRows()
        self._version += 1
        self.resort()
        return job_id

    def resolve_placeholder(self, job_id: str) -> None:
        """The submit returned: the next `set_jobs` replaces the row with the real job's."""
        if job_id in self._row_of:
            self._resolved.add(job_id)

    def remove_placeholder(self, job_id: str) -> None:
        """The submit failed or was called off: the row goes now."""
        row = self._row_of.get(job_id)
        if row is None or not self.is_placeholder(job_id):
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        for name in ("_records", "_metrics", "_low", "_high", "_hps", "_tags", "_notes"):
            del getattr(self, name)[row]
        if row < len(self._group_labels):
            del self._group_labels[row]
        self.endRemoveRows()
        self._resolved.discard(job_id)
        self._reindex()
        self._version += 1

    def _reindex(self) -> None:
        self._row_of = {record.id: row for row, record in enumerate(self._records)}

    @Slot()
    def _tick(self) -> None:
        """Running jobs' durations count up."""
        col = self.column_of("duration")
        if col is None:
            return
        for row, record in enumerate(self._records):
            if record.is_active and record.started_at is not None:
                index = self.index(row, col)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole])

    # -- lookups -----------------------------------------------------------------------------

    def record(self, row: int) -> JobRecord:
        return self._records[row]

    def record_by_id(self, job_id: str) -> JobRecord | None:
        row = self._row_of.get(job_id)
        return None if row is None else self._records[row]

    def row_of(self, job_id: str) -> int | None:
        return self._row_of.get(job_id)

    def last_metrics(self, job_id: str) -> dict[str, float]:
        row = self._row_of.get(job_id)
        return {} if row is None else dict(self._metrics[row])

    def annotation(self, job_id: str) -> RunAnnotation:
        row = self._row_of.get(job_id)
        return RunAnnotation() if row is None else RunAnnotation(self._tags[row], self._notes[row])

    def job_ids(self) -> list[str]:
        """The ids of the jobs listed (not the rows still starting)."""
        return [r.id for r in self._records if not self.is_placeholder(r.id)]


def _finite(value: float) -> float | None:
    return None if value != value else value


class JobsFilterProxy(QSortFilterProxyModel):
    """Text filter over name, id, status and backend, a status filter and a filter expression.

    Sorting is the source model's (see the module's docstring): `sort` hands it over.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)
        self._status: str | None = None
        self._expression: CompiledFilter | None = None
        self._active = False

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        model = self.sourceModel()
        if isinstance(model, JobsTableModel):
            model.sort(column, order)

    def set_text(self, text: str) -> None:
        self._active = True  # while the proxy re-filters: the pattern is set inside the call
        self.setFilterRegularExpression(
            QRegularExpression(
                QRegularExpression.escape(text.strip()),
                QRegularExpression.PatternOption.CaseInsensitiveOption,
            )
        )
        self._update_active()

    def set_status(self, status: str | None) -> None:
        self.beginFilterChange()
        self._status = status or None
        self._update_active()
        self.endFilterChange()

    def set_expression(self, expression: CompiledFilter | None, by_name: dict[str, str]) -> None:
        model = self.sourceModel()
        self.beginFilterChange()
        self._expression = expression
        if isinstance(model, JobsTableModel):
            model.set_expression(expression, by_name)
        self._update_active()
        self.endFilterChange()

    def _update_active(self) -> None:
        self._active = bool(
            self._status or self._expression is not None or self.filterRegularExpression().pattern()
        )

    def filterAcceptsRow(self, source_row: int, source_parent: IndexLike) -> bool:
        if not self._active:  # called for every row on each layout change: be quick
            return True
        model = self.sourceModel()
        if not isinstance(model, JobsTableModel):
            return True
        record = model.record(source_row)
        if self._status == ACTIVE_FILTER:
            if record.is_terminal:
                return False
        elif self._status and record.status != self._status:
            return False
        if self._expression is not None and not model.expression_accepts(source_row):
            return False
        pattern = self.filterRegularExpression()
        if not pattern.pattern():
            return True
        haystack = " ".join((record.name, record.id, record.status, record.backend))
        return pattern.match(haystack).hasMatch()


class JobsView(QWidget):
    """Filter boxes, status filter, grouping, and the sortable, multi-select, editable table."""

    sig_selection_changed = Signal(list)
    """The selected job ids, in table order."""
    sig_activated = Signal(str)
    """A job was double-clicked (or Enter pressed on it)."""
    sig_message = Signal(str)
    """Something to tell the user in passing (an export written, an edit refused)."""

    def __init__(self, parent: QWidget | None = None, store: Store | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.project_id: int | None = None
        self.project_path: str | None = None
        self._settings_project: object = ()  # the project whose table settings are applied
        self.last_export: Path | None = None
        self._saving = False
        self._save_again = False
        self._tasks = TaskGroup(self)
        self.model = JobsTableModel(self)
        self.proxy = JobsFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter jobs by name, id, status or backend")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.expr_edit = QLineEdit(self)
        self.expr_edit.setObjectName("runs_filter_expression")
        self.expr_edit.setPlaceholderText("Filter expression: lr < 0.01 and test_acc > 0.9")
        self.expr_edit.setToolTip(
            "Compare columns with ==, !=, <, <=, >, >= or ~ (contains), combine with and, or, "
            'not: lr < 0.01 and test_acc > 0.9, tag == "baseline", name ~ "mnist". '
            "A metric's best value is <metric>_best."
        )
        self.expr_edit.setClearButtonEnabled(True)
        self._expr_timer = QTimer(self)
        self._expr_timer.setSingleShot(True)
        self._expr_timer.setInterval(300)
        self._expr_timer.timeout.connect(self.apply_expression)
        self.expr_edit.textChanged.connect(self._expr_timer.start)
        self.expr_edit.returnPressed.connect(self.apply_expression)
        self.expr_message = QLabel(self)
        self.expr_message.setObjectName("runs_filter_message")
        self.expr_message.setWordWrap(True)
        self.expr_message.setStyleSheet("color: #c0392b;")
        self.expr_message.hide()
        self.status_combo = QComboBox(self)
        self.status_combo.addItem("All statuses", "")
        self.status_combo.addItem("Active", ACTIVE_FILTER)
        for status in JobStatus:
            self.status_combo.addItem(status.value, status.value)
        self.status_combo.currentIndexChanged.connect(self._on_status_filter)
        self.group_combo = QComboBox(self)
        self.group_combo.setToolTip("Group the runs by spec (job name), sweep or tag")
        self.group_combo.addItem("No grouping", "")
        for key, text in GROUPS.items():
            self.group_combo.addItem(f"Group by {text.lower()}", key)
        self.group_combo.currentIndexChanged.connect(self._on_group_chosen)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_STARTED, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        # Rows of one height, never measured: thousands of runs cost no per-row layout work.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setSectionsMovable(True)
        header.resizeSection(COL_NAME, 200)
        header.resizeSection(COL_STATUS, 110)
        header.resizeSection(COL_BACKEND, 110)
        header.resizeSection(COL_STARTED, 130)
        header.resizeSection(COL_DURATION, 80)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._on_header_menu)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.proxy.columnsInserted.connect(self._on_columns_inserted)
        self.model.columnsInserted.connect(self._keep_sorted)
        self.model.columnsRemoved.connect(self._keep_sorted)
        self.model.sig_edited.connect(self._on_edited)
        self.model.sig_edit_refused.connect(self._show_notice)
        self.table.activated.connect(self._on_activated)
        self._make_export_actions()
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.expr_edit, 2)
        top.addWidget(self.group_combo)
        top.addWidget(self.status_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.expr_message)
        layout.addWidget(self.table, 1)
        self._last_selection: list[str] = []

    # -- loading -------------------------------------------------------------------------------

    def set_runs(self, snapshot: RunsSnapshot) -> None:
        """Show a freshly loaded project; its remembered columns apply on the first load."""
        self.project_id = snapshot.project_id
        self.project_path = snapshot.project_path
        first = self._settings_project != snapshot.project_id
        if first:
            self._settings_project = snapshot.project_id
            self._apply_settings(snapshot.settings)
        self.model.set_jobs(snapshot)
        if first or self.expr_edit.text().strip():
            self.apply_expression()

    def _apply_settings(self, settings: dict[str, Any]) -> None:
        columns = settings.get("columns")
        goals = settings.get("goals")
        group = settings.get("group")
        self.model.goals = (
            {str(k): v for k, v in (goals or {}).items() if v in ("min", "max")}
            if isinstance(goals, dict)
            else {}
        )
        chosen = [str(c) for c in columns] if isinstance(columns, list) else None
        self.model.chosen = chosen
        group = group if group in GROUPS else None
        self.group_combo.blockSignals(True)
        self.group_combo.setCurrentIndex(max(0, self.group_combo.findData(group or "")))
        self.group_combo.blockSignals(False)
        self.model.set_group_by(group)
        self.model.set_chosen(chosen)

    def table_settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.model.chosen is not None:
            out["columns"] = list(self.model.chosen)
        if self.model.goals:
            out["goals"] = dict(self.model.goals)
        if self.model.group_by:
            out["group"] = self.model.group_by
        return out

    def _save_settings(self) -> None:
        """The column set, grouping and directions go to the project's settings (off-thread)."""
        store, project_id = self.store, self.project_id
        if store is None or project_id is None:
            return
        if self._saving:  # one save at a time, so the last change is the one that stays
            self._save_again = True
            return
        self._saving = True
        value = self.table_settings() or None

        def finished(*_args: Any) -> None:
            self._saving = False
            if self._save_again:
                self._save_again = False
                self._save_settings()

        def failed(exc: BaseException, _tb: str) -> None:
            self._show_notice(f"Cannot save the table's columns: {exc}")
            finished()

        self._tasks.run(
            lambda: store.set_project_setting(project_id, SETTINGS_KEY, value), finished, failed
        )

    # -- columns, grouping, directions ---------------------------------------------------------

    def set_columns(self, keys: list[str] | None) -> None:
        """Show these columns (None: the default set) and remember them for the project."""
        self.model.set_chosen(keys)
        self._save_settings()

    def toggle_column(self, key: str, shown: bool) -> None:
        keys = [k for k in self.model.column_keys if k != "group"]
        if shown and key not in keys:
            keys.append(key)
        elif not shown:
            keys = [k for k in keys if k != key]
        self.set_columns(keys)

    def set_goal(self, metric: str, goal: str) -> None:
        self.model.set_goal(metric, goal)
        self._save_settings()

    def header_menu(self, section: int = -1) -> QMenu:
        """The header's menu: columns to show (by kind), a best column's direction, reset."""
        menu = QMenu(self)
        shown = set(self.model.column_keys)
        key = self.model.column_keys[section] if 0 <= section < self.model.columnCount() else ""
        if key.startswith("best:"):
            metric = key.partition(":")[2]
            for goal, text in (("min", "lowest"), ("max", "highest")):
                action = menu.addAction(f"Best of {metric}: the {text} value")
                action.setCheckable(True)
                action.setChecked(self.model.goal(metric) == goal)
                action.triggered.connect(lambda _c=False, m=metric, g=goal: self.set_goal(m, g))
            menu.addSeparator()
        groups: list[tuple[str, list[str]]] = [
            ("", [*FIXED_KEYS, "tags", "note"]),
            ("Hyperparameters", [f"hp:{n}" for n in self.model.all_hp_names]),
            ("Metrics (last value)", [f"last:{m}" for m in self.model.all_metric_names]),
            ("Metrics (best value)", [f"best:{m}" for m in self.model.all_metric_names]),
        ]
        for title, keys in groups:
            target = menu if not title else menu.addMenu(title)
            if title and not keys:
                target.setEnabled(False)
            for column_key in keys:
                action = target.addAction(self.model.label(column_key))
                action.setCheckable(True)
                action.setChecked(column_key in shown)
                action.setData(column_key)
                action.setEnabled(column_key != "name")
                action.toggled.connect(lambda on, k=column_key: self.toggle_column(k, bool(on)))
        menu.addSeparator()
        menu.addAction("Default columns", lambda: self.set_columns(None))
        return menu

    @Slot(QPoint)
    def _on_header_menu(self, pos: QPoint) -> None:
        header = self.table.horizontalHeader()
        menu = self.header_menu(header.logicalIndexAt(pos))
        menu.exec(header.mapToGlobal(pos))
        menu.deleteLater()

    @Slot(int)
    def _on_group_chosen(self, index: int) -> None:
        group = str(self.group_combo.itemData(index) or "") or None
        self.model.set_group_by(group)
        self._keep_sorted()
        self._save_settings()

    # -- filter expression ---------------------------------------------------------------------

    @Slot()
    def apply_expression(self) -> bool:
        """Filter by the expression box; a bad one says what is wrong under it (rows stay)."""
        self._expr_timer.stop()
        _of_key, by_name = self.model.filter_names()
        try:
            compiled = parse_filter(self.expr_edit.text(), sorted(by_name))
        except FilterError as exc:
            self.expr_message.setText(str(exc))
            self.expr_message.show()
            self.expr_edit.setStyleSheet("QLineEdit { border: 1px solid #c0392b; }")
            return False
        self.expr_message.hide()
        self.expr_message.clear()
        self.expr_edit.setStyleSheet("")
        self.proxy.set_expression(compiled, by_name)
        return True

    # -- editing -------------------------------------------------------------------------------

    @Slot(str, str, object)
    def _on_edited(self, job_id: str, what: str, value: Any) -> None:
        store = self.store
        if store is None:
            return

        def save() -> None:
            if what == "tags":
                store.set_run_tags(job_id, list(value))
            else:
                store.set_run_note(job_id, str(value))

        self._tasks.run(
            save,
            None,
            lambda exc, _tb: self._show_notice(f"Cannot save the {what}: {exc}"),
        )

    @Slot(str)
    def _show_notice(self, text: str) -> None:
        self.expr_message.setText(text)
        self.expr_message.show()
        self.sig_message.emit(text)

    # -- export ----------------------------------------------------------------------------------

    def _make_export_actions(self) -> None:
        self.export_metrics_csv_action = QAction("Export metrics as CSV…", self)
        self.export_metrics_csv_action.setToolTip(
            "Every metric sample of the selected runs, one row a sample"
        )
        self.export_metrics_csv_action.triggered.connect(lambda: self.export_metrics("csv"))
        self.export_metrics_parquet_action = QAction("Export metrics as Parquet…", self)
        self.export_metrics_parquet_action.setToolTip(
            "Every metric sample of the selected runs as a Parquet file (needs pyarrow)"
        )
        self.export_metrics_parquet_action.triggered.connect(lambda: self.export_metrics("parquet"))
        self.export_table_action = QAction("Export runs table as CSV…", self)
        self.export_table_action.setToolTip("The table as shown: visible columns, filtered rows")
        self.export_table_action.triggered.connect(self.export_table)
        self._export_separator = QAction(self)
        self._export_separator.setSeparator(True)
        self._update_export_enabled()

    def export_actions(self) -> list[QAction]:
        """The export entries, for the table's context menu and File > Export."""
        return [
            self._export_separator,
            self.export_metrics_csv_action,
            self.export_metrics_parquet_action,
            self.export_table_action,
        ]

    def _update_export_enabled(self) -> None:
        chosen = bool(self.selected_records())
        self.export_metrics_csv_action.setEnabled(chosen)
        self.export_metrics_parquet_action.setEnabled(chosen)

    def export_metrics(self, fmt: str) -> None:
        from trainer_gui.ui.runs_export import ask_export_metrics

        ask_export_metrics(self, fmt)

    def export_table(self) -> None:
        from trainer_gui.ui.runs_export import ask_export_table

        ask_export_table(self)

    def shown_table(self) -> tuple[list[str], list[list[str]]]:
        """The header labels and cell texts of the visible columns (in their on-screen order)
        and the rows the filters let through, as sorted."""
        header = self.table.horizontalHeader()
        columns = [
            header.logicalIndex(v)
            for v in range(header.count())
            if not header.isSectionHidden(header.logicalIndex(v))
        ]
        labels = [str(self.model.headerData(c, Qt.Orientation.Horizontal)) for c in columns]
        rows = []
        for row in range(self.proxy.rowCount()):
            source = self.proxy.mapToSource(self.proxy.index(row, 0)).row()
            cells = []
            for c in columns:
                key = self.model.column_keys[c]
                value = self.model.raw_value(source, key)
                if key in ("started",) and isinstance(value, (int, float)):
                    cells.append(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)))
                elif key == "duration":
                    cells.append("" if value is None else f"{value:.0f}")
                elif isinstance(value, list):
                    cells.append(", ".join(str(v) for v in value))
                elif isinstance(value, float):
                    cells.append(repr(value))
                else:
                    cells.append(format_value(value))
            rows.append(cells)
        return labels, rows

    # -- selection ------------------------------------------------------------------------------

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedIndexes()})
        out = []
        for row in rows:
            job_id = self.proxy.index(row, 0).data(JOB_ID_ROLE)
            if job_id:
                out.append(str(job_id))
        return out

    def selected_records(self) -> list[JobRecord]:
        """The selected jobs (a row still starting is no job yet: not among them)."""
        ids = [j for j in self.selected_ids() if not self.model.is_placeholder(j)]
        records = [self.model.record_by_id(j) for j in ids]
        return [r for r in records if r is not None]

    def select_job(self, job_id: str) -> bool:
        row = self.model.row_of(job_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        selection = self.table.selectionModel()
        selection.select(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        # Not view.setCurrentIndex: that applies the keyboard modifiers held right now (Ctrl
        # would toggle the row we just selected).
        selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.table.scrollTo(index)
        return True

    def visible_ids(self) -> list[str]:
        return [
            str(self.proxy.index(row, 0).data(JOB_ID_ROLE)) for row in range(self.proxy.rowCount())
        ]

    def status_text(self, job_id: str) -> str:
        record = self.model.record_by_id(job_id)
        return record.status if record else ""

    @Slot()
    def _on_columns_inserted(self) -> None:
        """A new column: extend the selected rows over it, so rows stay whole."""
        selection = self.table.selectionModel()
        rows = sorted({i.row() for i in selection.selectedIndexes()})
        for row in rows:
            selection.select(
                self.proxy.index(row, 0),
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
            )

    @Slot()
    def _keep_sorted(self) -> None:
        """Show the model's sort in the header (Started, newest first, if its column is gone)."""
        key, order = self.model.sort_key
        column = self.model.column_of(key)
        if column is None:
            column, order = (
                self.model.column_of("started") or COL_STARTED,
                (Qt.SortOrder.DescendingOrder),
            )
        header = self.table.horizontalHeader()
        if header.sortIndicatorSection() != column or header.sortIndicatorOrder() != order:
            self.table.sortByColumn(column, order)

    @Slot(int)
    def _on_status_filter(self, index: int) -> None:
        self.proxy.set_status(str(self.status_combo.itemData(index) or ""))

    @Slot()
    def _on_selection_changed(self) -> None:
        ids = self.selected_ids()
        if ids != self._last_selection:
            self._last_selection = ids
            self._update_export_enabled()
            self.sig_selection_changed.emit(ids)

    @Slot(QModelIndex)
    def _on_activated(self, index: QModelIndex) -> None:
        job_id = index.data(JOB_ID_ROLE)
        if job_id:
            self.sig_activated.emit(str(job_id))


def run_values(view: JobsView, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """job id -> column key -> value, for code that needs the table's numbers (export, tests)."""
    out: dict[str, dict[str, Any]] = {}
    for job_id in job_ids:
        row = view.model.row_of(job_id)
        if row is None:
            continue
        out[job_id] = {k: view.model.raw_value(row, k) for k in view.model.available_keys()}
    return out
