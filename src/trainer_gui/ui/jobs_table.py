"""The jobs table: a QAbstractTableModel over job records, a filter/sort proxy, and the view.

Rows are updated in place (records reloaded on a worker thread, statuses and metric values from
the bridge's signals), so sorting, selection and scroll position survive every refresh. A job
being submitted shows as a "Starting…" row at once, before the store knows it; the real row
replaces it once the submit has returned and the list is reloaded.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRegularExpression,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec.model import Backend
from trainer_gui.core.store import JobRecord
from trainer_gui.services.live_data import MetricChunk, as_metric_chunk
from trainer_gui.ui.icons import cloud_icon, status_color, status_icon

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 2
FIXED_COLUMNS = ("Name", "Status", "Backend", "Started", "Duration")
COL_NAME, COL_STATUS, COL_BACKEND, COL_STARTED, COL_DURATION = range(len(FIXED_COLUMNS))
MAX_METRIC_COLUMNS = 6
_STATUS_ORDER = {s.value: i for i, s in enumerate(JobStatus)}
_KEY_WORDS = ("loss", "acc", "f1", "auc", "error", "score", "perplexity")
ACTIVE_FILTER = "Active"
STARTING = "Starting…"
_PLACEHOLDER_PREFIX = "starting:"
CLOUD_BACKEND = Backend.SAGEMAKER.value

IndexLike = QModelIndex | QPersistentModelIndex


def metric_priority(name: str) -> tuple[int, str]:
    """Key metrics first (losses, accuracies, ...), then alphabetical."""
    lowered = name.lower()
    for rank, word in enumerate(_KEY_WORDS):
        if word in lowered:
            return rank, lowered
    return len(_KEY_WORDS), lowered


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


class JobsTableModel(QAbstractTableModel):
    """Job records plus the last value of each key metric."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._records: list[JobRecord] = []
        self._metrics: list[dict[str, float]] = []
        self._row_of: dict[str, int] = {}
        self.metric_names: list[str] = []
        self._placeholder_numbers = itertools.count(1)
        self._resolved: set[str] = set()  # placeholders whose submit returned
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start()

    # -- Qt model API ------------------------------------------------------------------------

    def rowCount(self, parent: IndexLike = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: IndexLike = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(FIXED_COLUMNS) + len(self.metric_names)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            if section < len(FIXED_COLUMNS):
                return FIXED_COLUMNS[section]
            return self.metric_names[section - len(FIXED_COLUMNS)]
        if role == Qt.ItemDataRole.ToolTipRole and section >= len(FIXED_COLUMNS):
            return f"Last value of {self.metric_names[section - len(FIXED_COLUMNS)]}"
        return None

    def data(self, index: IndexLike, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        record = self._records[row]
        if role == JOB_ID_ROLE:
            return record.id
        if col == COL_NAME:
            if role == Qt.ItemDataRole.DisplayRole:
                return record.name
            if role == Qt.ItemDataRole.ToolTipRole:
                return record.id
            if role == SORT_ROLE:
                return record.name.lower()
        elif col == COL_STATUS:
            if role == Qt.ItemDataRole.DisplayRole:
                return record.status
            if role == Qt.ItemDataRole.DecorationRole:
                return status_icon(record.status)
            if role == Qt.ItemDataRole.ForegroundRole:
                return status_color(record.status)
            if role == Qt.ItemDataRole.ToolTipRole:
                return record.failure_reason or record.status
            if role == SORT_ROLE:
                return _STATUS_ORDER.get(record.status, 99)
        elif col == COL_BACKEND:
            if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
                return record.backend
            if record.backend == CLOUD_BACKEND:
                if role == Qt.ItemDataRole.DecorationRole:
                    return cloud_icon()
                if role == Qt.ItemDataRole.ToolTipRole:
                    return cloud_tooltip(record)
        elif col == COL_STARTED:
            started = record.started_at or record.created_at
            if role == Qt.ItemDataRole.DisplayRole:
                return format_started(started)
            if role == Qt.ItemDataRole.ToolTipRole:
                return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
            if role == SORT_ROLE:
                return started
        elif col == COL_DURATION:
            if role == Qt.ItemDataRole.DisplayRole:
                return format_duration(record.duration)
            if role == SORT_ROLE:
                return -1.0 if record.duration is None else record.duration
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        else:
            name = self.metric_names[col - len(FIXED_COLUMNS)]
            value = self._metrics[row].get(name)
            if role == Qt.ItemDataRole.DisplayRole:
                return format_metric(value)
            if role == Qt.ItemDataRole.ToolTipRole and value is not None:
                return f"{name} = {value!r}"
            if role == SORT_ROLE:
                return -math.inf if value is None or math.isnan(value) else value
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # -- updates -----------------------------------------------------------------------------

    def set_jobs(self, rows: Sequence[tuple[JobRecord, dict[str, float]]]) -> None:
        """Make the table show exactly these jobs: changed rows update, others come and go.

        Rows still starting stay until their submit returns; the metric columns are those of
        these jobs only (another project's metrics get no empty column here).
        """
        wanted = {record.id for record, _ in rows}
        wanted.update(
            job_id
            for job_id in self._row_of
            if self.is_placeholder(job_id) and job_id not in self._resolved
        )
        gone = sorted((r for i, r in self._row_of.items() if i not in wanted), reverse=True)
        for old_row in gone:
            self.beginRemoveRows(QModelIndex(), old_row, old_row)
            self._resolved.discard(self._records[old_row].id)
            del self._records[old_row]
            del self._metrics[old_row]
            self.endRemoveRows()
        self._reindex()
        names = {name for _, metrics in rows for name in metrics}
        names.update(name for metrics in self._metrics for name in metrics)
        self._set_metric_names(names)
        last_col = self.columnCount() - 1
        for record, metrics in rows:
            row = self._row_of.get(record.id)
            if row is None:
                new_row = len(self._records)
                self.beginInsertRows(QModelIndex(), new_row, new_row)
                self._records.append(record)
                self._metrics.append(dict(metrics))
                self._row_of[record.id] = new_row
                self.endInsertRows()
            elif self._records[row] != record or self._metrics[row] != metrics:
                merged = {**self._metrics[row], **metrics}
                self._records[row] = record
                self._metrics[row] = merged
                self.dataChanged.emit(self.index(row, 0), self.index(row, last_col))

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
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
        return True

    def update_metrics(self, job_id: str, samples: MetricChunk | Iterable[MetricSample]) -> None:
        """The newest value of each metric in `samples` goes to the job's row."""
        row = self._row_of.get(job_id)
        if row is None:
            return
        last = as_metric_chunk(samples).last
        if not last:
            return
        if not set(last) <= set(self.metric_names):
            self._set_metric_names({*self.metric_names, *last})
        self._metrics[row].update(last)
        self.dataChanged.emit(
            self.index(row, len(FIXED_COLUMNS)), self.index(row, self.columnCount() - 1)
        )

    def _set_metric_names(self, names: Iterable[str]) -> None:
        """Show the first `MAX_METRIC_COLUMNS` of `names` by priority: a column a name."""
        target = sorted(set(names), key=metric_priority)[:MAX_METRIC_COLUMNS]
        for name in [n for n in self.metric_names if n not in target]:
            pos = len(FIXED_COLUMNS) + self.metric_names.index(name)
            self.beginRemoveColumns(QModelIndex(), pos, pos)
            self.metric_names = [n for n in self.metric_names if n != name]
            self.endRemoveColumns()
        for name in target:
            if name in self.metric_names:
                continue
            ordered = sorted([*self.metric_names, name], key=metric_priority)
            pos = len(FIXED_COLUMNS) + ordered.index(name)
            self.beginInsertColumns(QModelIndex(), pos, pos)
            self.metric_names = ordered
            self.endInsertColumns()

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
        self._row_of[job_id] = row
        self.endInsertRows()
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
        del self._records[row]
        del self._metrics[row]
        self.endRemoveRows()
        self._resolved.discard(job_id)
        self._reindex()

    def _reindex(self) -> None:
        self._row_of = {record.id: row for row, record in enumerate(self._records)}

    @Slot()
    def _tick(self) -> None:
        """Running jobs' durations count up."""
        for row, record in enumerate(self._records):
            if record.is_active and record.started_at is not None:
                index = self.index(row, COL_DURATION)
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

    def job_ids(self) -> list[str]:
        """The ids of the jobs listed (not the rows still starting)."""
        return [r.id for r in self._records if not self.is_placeholder(r.id)]


class JobsFilterProxy(QSortFilterProxyModel):
    """Text filter over name, id, status and backend, plus a status filter."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)
        self._status: str | None = None

    def set_text(self, text: str) -> None:
        self.setFilterRegularExpression(
            QRegularExpression(
                QRegularExpression.escape(text.strip()),
                QRegularExpression.PatternOption.CaseInsensitiveOption,
            )
        )

    def set_status(self, status: str | None) -> None:
        self.beginFilterChange()
        self._status = status or None
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: IndexLike) -> bool:
        model = self.sourceModel()
        if not isinstance(model, JobsTableModel):
            return True
        record = model.record(source_row)
        if self._status == ACTIVE_FILTER:
            if record.is_terminal:
                return False
        elif self._status and record.status != self._status:
            return False
        pattern = self.filterRegularExpression()
        if not pattern.pattern():
            return True
        haystack = " ".join((record.name, record.id, record.status, record.backend))
        return pattern.match(haystack).hasMatch()


class JobsView(QWidget):
    """Filter box, status filter and the sortable, multi-select table."""

    sig_selection_changed = Signal(list)
    """The selected job ids, in table order."""
    sig_activated = Signal(str)
    """A job was double-clicked (or Enter pressed on it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = JobsTableModel(self)
        self.proxy = JobsFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter jobs by name, id, status or backend")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.status_combo = QComboBox(self)
        self.status_combo.addItem("All statuses", "")
        self.status_combo.addItem("Active", ACTIVE_FILTER)
        for status in JobStatus:
            self.status_combo.addItem(status.value, status.value)
        self.status_combo.currentIndexChanged.connect(self._on_status_filter)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_STARTED, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setSectionsMovable(True)
        header.resizeSection(COL_NAME, 200)
        header.resizeSection(COL_STATUS, 110)
        header.resizeSection(COL_BACKEND, 110)
        header.resizeSection(COL_STARTED, 130)
        header.resizeSection(COL_DURATION, 80)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.proxy.columnsInserted.connect(self._on_columns_inserted)
        # After the proxy's own handling: a column inserted into an empty model makes the
        # proxy forget its sort column, and new rows would then land at the bottom.
        self.model.columnsInserted.connect(self._keep_sorted)
        self.model.columnsRemoved.connect(self._keep_sorted)
        self.table.activated.connect(self._on_activated)
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.status_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self._last_selection: list[str] = []

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
        """A new metric column: extend the selected rows over it, so rows stay whole."""
        selection = self.table.selectionModel()
        rows = sorted({i.row() for i in selection.selectedIndexes()})
        for row in rows:
            selection.select(
                self.proxy.index(row, 0),
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
            )

    @Slot()
    def _keep_sorted(self) -> None:
        """Sort by the header's sort column again (Started, newest first, if it is gone)."""
        header = self.table.horizontalHeader()
        column, order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        if not 0 <= column < self.model.columnCount():
            column, order = COL_STARTED, Qt.SortOrder.DescendingOrder
        if self.proxy.sortColumn() != column or self.proxy.sortOrder() != order:
            self.table.sortByColumn(column, order)

    @Slot(int)
    def _on_status_filter(self, index: int) -> None:
        self.proxy.set_status(str(self.status_combo.itemData(index) or ""))

    @Slot()
    def _on_selection_changed(self) -> None:
        ids = self.selected_ids()
        if ids != self._last_selection:
            self._last_selection = ids
            self.sig_selection_changed.emit(ids)

    @Slot(QModelIndex)
    def _on_activated(self, index: QModelIndex) -> None:
        job_id = index.data(JOB_ID_ROLE)
        if job_id:
            self.sig_activated.emit(str(job_id))
