"""The SageMaker jobs dialog: the account's recent training jobs, to follow here or import.

    dialog = RemoteJobsDialog(service, project_dir, project_id, parent)
    dialog.sig_followed.connect(...)   # the job id (the training job name) now in the store
    dialog.sig_imported.connect(...)   # the path of the spec just written
    dialog.show()

What it does:

* a profile picker ("(default credential chain)" and the AWS config's profiles), an editable
  region picker (empty: the profile's own region) and a "Show" limit; it starts with the app's
  AWS settings and lists at once; changing any of them, "Refresh" or F5 lists again;
* a sortable, filterable table of the most recent training jobs (newest first); jobs already in
  this app's store say "following" in the Here column;
* "Follow here" (or a double click) records the job in the store and follows it like one started
  here (the jobs service's `adopt`, in the job host); for a job already there it re-attaches;
* "Import as spec…" asks where to save and writes a spec that re-creates the job
  (`import_training_job`), with the job's code unpacked next to it when "Download the code" is
  checked, so it also runs locally.

Every boto3 call (listing profiles and regions included) runs on `QThreadPool.globalInstance()`
through `run_task`; the slots run on the GUI thread. AWS problems (no credentials, access denied,
no network) show as one red line in the dialog, which stays usable.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.aws.defaults import load_aws_defaults
from trainer_gui.core.aws.remote_jobs import (
    RemoteJob,
    import_training_job,
    list_training_jobs,
)
from trainer_gui.core.aws.session import AwsSession, list_profiles, list_regions
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.ui.aws_settings import fill_profiles, new_profile_combo
from trainer_gui.ui.icons import status_color, status_icon
from trainer_gui.ui.jobs_table import format_duration, format_started
from trainer_gui.ui.tasks import Outcome, run_tagged

if TYPE_CHECKING:  # pragma: no cover
    from trainer_gui.core.spec.model import JobSpec
    from trainer_gui.core.store import Store
    from trainer_gui.services.api import Jobs

log = logging.getLogger(__name__)

__all__ = ["LIMITS", "RemoteJobsDialog", "RemoteJobsModel"]

LIMITS = (20, 50, 100)
COLUMNS = ("Name", "Status", "Created", "Duration", "Here")
COL_NAME, COL_STATUS, COL_CREATED, COL_DURATION, COL_HERE = range(len(COLUMNS))
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
NAME_ROLE = Qt.ItemDataRole.UserRole + 2
FOLLOWING = "following"
# SageMaker's primary statuses in the app's vocabulary (for the colour and the icon).
_AS_LOCAL_STATUS = {"InProgress": JobStatus.TRAINING.value, "Stopping": JobStatus.STOPPING.value}
_STATUS_TEXT = {"InProgress": "In progress"}
_RUNNING = ("InProgress", "Stopping")
_STATUS_ORDER = {"InProgress": 0, "Stopping": 1, "Completed": 2, "Failed": 3, "Stopped": 4}

IndexLike = QModelIndex | QPersistentModelIndex


def local_status(status: str) -> str:
    """The app's status word for a SageMaker one, which `status_icon` and `status_color` know."""
    return _AS_LOCAL_STATUS.get(status, status)


def followed_here(store: Store, name: str) -> bool:
    """Is this training job already one of the store's jobs (submitted or adopted here)?"""
    record = store.get_job(name)
    if record is None:  # get_job also matches names and id prefixes: check it is this job
        return False
    return record.id == name or record.backend_ids.get("training_job_name") == name


# -- the model ------------------------------------------------------------------------------------


class RemoteJobsModel(QAbstractTableModel):
    """The listed training jobs, and which of them the store already has."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[RemoteJob] = []
        self._followed: set[str] = set()
        self._listed_at = time.time()

    def rowCount(self, parent: IndexLike = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._jobs)

    def columnCount(self, parent: IndexLike = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section == COL_HERE:
            return "Jobs already in this app's jobs list"
        return None

    def data(self, index: IndexLike, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        job = self._jobs[index.row()]
        col = index.column()
        if role == NAME_ROLE:
            return job.name
        if col == COL_NAME:
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
                return job.name
            if role == SORT_ROLE:
                return job.name.lower()
        elif col == COL_STATUS:
            if role == Qt.ItemDataRole.DisplayRole:
                return _STATUS_TEXT.get(job.status, job.status)
            if role == Qt.ItemDataRole.DecorationRole:
                return status_icon(local_status(job.status))
            if role == Qt.ItemDataRole.ForegroundRole:
                return status_color(local_status(job.status))
            if role == Qt.ItemDataRole.ToolTipRole:
                return job.status
            if role == SORT_ROLE:
                return _STATUS_ORDER.get(job.status, 99)
        elif col == COL_CREATED:
            if role == Qt.ItemDataRole.DisplayRole:
                return format_started(job.created)
            if role == Qt.ItemDataRole.ToolTipRole:
                return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created))
            if role == SORT_ROLE:
                return job.created
        elif col == COL_DURATION:
            took = self.duration(job)
            if role == Qt.ItemDataRole.DisplayRole:
                return format_duration(took)
            if role == Qt.ItemDataRole.ToolTipRole and job.ended is None and took is not None:
                return "So far (still running when listed)"
            if role == SORT_ROLE:
                return -1.0 if took is None else took
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif col == COL_HERE:
            here = job.name in self._followed
            if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
                return FOLLOWING if here else ""
            if role == Qt.ItemDataRole.ToolTipRole and here:
                return "Already in this app's jobs list; Follow here re-attaches to it"
        return None

    def duration(self, job: RemoteJob) -> float | None:
        """End minus creation; for a job still running, up to when the list was loaded."""
        if job.ended is not None:
            return max(0.0, job.ended - job.created)
        if job.status in _RUNNING:
            return max(0.0, self._listed_at - job.created)
        return None

    # -- updates -----------------------------------------------------------------------------

    def set_jobs(self, jobs: Sequence[RemoteJob], followed: set[str] | frozenset[str]) -> None:
        self.beginResetModel()
        self._jobs = list(jobs)
        self._followed = set(followed)
        self._listed_at = time.time()
        self.endResetModel()

    def clear(self) -> None:
        self.set_jobs([], set())

    def mark_followed(self, name: str) -> None:
        row = self.row_of(name)
        self._followed.add(name)
        if row is not None:
            index = self.index(row, COL_HERE)
            self.dataChanged.emit(index, index)

    # -- queries -----------------------------------------------------------------------------

    def job_at(self, row: int) -> RemoteJob:
        return self._jobs[row]

    def row_of(self, name: str) -> int | None:
        return next((i for i, job in enumerate(self._jobs) if job.name == name), None)

    def names(self) -> list[str]:
        """In the order listed (newest first), whatever the view's sorting."""
        return [job.name for job in self._jobs]

    def is_followed(self, name: str) -> bool:
        return name in self._followed


# -- off the GUI thread ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Listing:
    session: AwsSession
    region: str
    jobs: list[RemoteJob]
    followed: frozenset[str]


def _list_jobs(session: AwsSession, limit: int, store: Store) -> _Listing:
    jobs = list_training_jobs(session, limit=limit)
    followed = frozenset(job.name for job in jobs if followed_here(store, job.name))
    return _Listing(session, session.region, jobs, followed)


def _aws_config() -> tuple[list[str], list[str]]:
    return list_profiles(), list_regions()


# -- the dialog -----------------------------------------------------------------------------------


class RemoteJobsDialog(QDialog):
    """List the account's training jobs; follow one here or import it as a spec (module doc)."""

    sig_followed = Signal(str)
    """The store id of a job now followed here (the training job name)."""
    sig_imported = Signal(str)
    """The path of a spec written by "Import as spec…"."""

    def __init__(
        self,
        service: Jobs,
        project_dir: Path | None = None,
        project_id: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("RemoteJobsDialog")
        self.setWindowTitle("SageMaker training jobs")
        self.service = service
        self.project_dir = project_dir
        self.project_id = project_id
        self._tokens = itertools.count(1)
        self._list_token = 0
        self._requested: tuple[str | None, str | None, int] | None = None
        self._loading = False
        self._action: str | None = None  # "follow" or "import" while one runs
        self._session_key: tuple[str | None, str | None] | None = None
        self._session: AwsSession | None = None
        self._listed: _Listing | None = None  # the rows' account and region: actions use it
        saved = load_aws_defaults()
        self._build(saved.profile, saved.region)
        self._update_buttons()
        self.refresh()
        run_tagged(("config", 0), _aws_config, self._on_outcome)

    # -- layout ------------------------------------------------------------------------------

    def _build(self, profile: str | None, region: str | None) -> None:
        self.profile_combo = new_profile_combo(profile, self)
        self.profile_combo.setToolTip("The AWS profile whose credentials list the jobs")
        self.profile_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.region_combo = QComboBox(self)
        self.region_combo.setEditable(True)
        self.region_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.region_combo.setMinimumContentsLength(14)
        self.region_combo.setEditText(region or "")
        line = self.region_combo.lineEdit()
        if line is not None:
            line.setPlaceholderText("the profile's region")
            line.editingFinished.connect(self._maybe_refresh)
        self.region_combo.activated.connect(self._maybe_refresh)
        self.limit_combo = QComboBox(self)
        for limit in LIMITS:
            self.limit_combo.addItem(str(limit), limit)
        self.limit_combo.setToolTip("How many of the most recent jobs to list")
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.setShortcut(QKeySequence(Qt.Key.Key_F5))
        self.refresh_button.setToolTip("List the jobs again (F5)")
        self.refresh_button.clicked.connect(self.refresh)
        self.profile_combo.currentIndexChanged.connect(self._maybe_refresh)
        self.limit_combo.currentIndexChanged.connect(self._maybe_refresh)

        top = QHBoxLayout()
        top.addWidget(QLabel("Profile", self))
        top.addWidget(self.profile_combo, 1)
        top.addWidget(QLabel("Region", self))
        top.addWidget(self.region_combo)
        top.addWidget(QLabel("Show", self))
        top.addWidget(self.limit_combo)
        top.addWidget(self.refresh_button)

        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by name or status")
        self.filter_edit.setClearButtonEnabled(True)

        self.model = RemoteJobsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)

        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_CREATED, Qt.SortOrder.DescendingOrder)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        for col in (COL_STATUS, COL_CREATED, COL_DURATION, COL_HERE):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.doubleClicked.connect(self._on_double_clicked)
        selection = self.table.selectionModel()
        selection.selectionChanged.connect(self._update_buttons)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)  # indeterminate
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(90)
        self.progress.setMaximumHeight(12)
        self.progress.setVisible(False)
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        status_row = QHBoxLayout()
        status_row.addWidget(self.progress)
        status_row.addWidget(self.status_label, 1)

        self.download_code_check = QCheckBox("Download the code", self)
        self.download_code_check.setChecked(True)
        self.download_code_check.setToolTip(
            "Unpack the job's code next to the imported spec, so it runs locally too; "
            "unchecked, the spec reuses the code in S3 (SageMaker runs only)"
        )
        self.follow_button = QPushButton("Follow here", self)
        self.follow_button.setToolTip(
            "Add the job to this app's jobs and follow its status, logs and metrics (double click)"
        )
        self.follow_button.clicked.connect(self.follow_selected)
        self.import_button = QPushButton("Import as spec…", self)
        self.import_button.setToolTip("Write a job spec that re-creates this job, to run or clone")
        self.import_button.clicked.connect(self.import_selected)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.reject)
        for button in (
            self.refresh_button,
            self.follow_button,
            self.import_button,
            self.close_button,
        ):
            button.setAutoDefault(False)  # Enter in the region box must not follow a job
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_code_check)
        buttons.addStretch(1)
        buttons.addWidget(self.follow_button)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.table, 1)
        layout.addLayout(status_row)
        layout.addLayout(buttons)
        self.resize(820, 480)

    # -- what the pickers say ----------------------------------------------------------------

    def profile(self) -> str | None:
        value = self.profile_combo.currentData()
        return str(value) if value else None

    def region(self) -> str | None:
        return self.region_combo.currentText().strip() or None

    def limit(self) -> int:
        return int(self.limit_combo.currentData() or LIMITS[0])

    def _session_for(self, profile: str | None, region: str | None) -> AwsSession:
        """One session per profile and region: its clients are reused across refreshes."""
        if self._session is None or self._session_key != (profile, region):
            self._session = AwsSession(profile, region)
            self._session_key = (profile, region)
        return self._session

    # -- listing -----------------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """List the jobs for the current profile, region and limit (a newer call supersedes)."""
        profile, region, limit = self.profile(), self.region(), self.limit()
        self._requested = (profile, region, limit)
        session = self._session_for(profile, region)
        self._list_token = next(self._tokens)
        self._loading = True
        where = region or "the profile's region"
        self._show_info(f"Loading training jobs in {where}…")
        self._update_buttons()
        store = self.service.store
        run_tagged(
            ("list", self._list_token), lambda: _list_jobs(session, limit, store), self._on_outcome
        )

    @Slot()
    def _maybe_refresh(self) -> None:
        if (self.profile(), self.region(), self.limit()) != self._requested:
            self.refresh()

    def _on_listed(self, outcome: Outcome) -> None:
        if outcome.tag[1] != self._list_token:
            return  # an older request answered after a newer one was made
        self._loading = False
        if outcome.error is not None:
            self._listed = None
            self._session = None  # fresh credentials next time (after `aws sso login`, say)
            self.model.clear()
            self._show_error(outcome.message)
            self._update_buttons()
            return
        listing: _Listing = outcome.value
        keep = self.selected_name()
        self._listed = listing
        self.model.set_jobs(listing.jobs, listing.followed)
        if keep is not None:
            self.select_job(keep)
        if listing.jobs:
            count = len(listing.jobs)
            plural = "" if count == 1 else "s"
            self._show_info(f"{count} most recent training job{plural} in {listing.region}.")
        else:
            self._show_info(f"No training jobs in {listing.region}.")
        self._update_buttons()

    def _on_config(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            if not self._loading:  # a listing error says more; keep it
                self._show_error(outcome.message)
            return
        profiles, regions = outcome.value
        fill_profiles(self.profile_combo, list(profiles))
        region_text = self.region_combo.currentText()
        self.region_combo.blockSignals(True)
        try:
            self.region_combo.clear()
            self.region_combo.addItems(list(regions))
            self.region_combo.setEditText(region_text)
        finally:
            self.region_combo.blockSignals(False)

    # -- selection ---------------------------------------------------------------------------

    def selected_job(self) -> RemoteJob | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        source = self.proxy.mapToSource(rows[0])
        return self.model.job_at(source.row()) if source.isValid() else None

    def selected_name(self) -> str | None:
        job = self.selected_job()
        return job.name if job is not None else None

    def select_job(self, name: str) -> bool:
        """Select the row of this training job; False when it is not listed (or filtered out)."""
        row = self.model.row_of(name)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, COL_NAME))
        if not index.isValid():
            return False
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)
        return True

    def is_busy(self) -> bool:
        return self._loading or self._action is not None

    @Slot()
    def _update_buttons(self) -> None:
        usable = self.selected_job() is not None and self._listed is not None and not self.is_busy()
        self.follow_button.setEnabled(usable)
        self.import_button.setEnabled(usable)
        self.refresh_button.setEnabled(not self._loading)
        self.progress.setVisible(self.is_busy())

    @Slot(QModelIndex)
    def _on_double_clicked(self, _index: QModelIndex) -> None:
        self.follow_selected()

    # -- actions -----------------------------------------------------------------------------

    @Slot()
    def follow_selected(self) -> None:
        """Record the selected job in the store and follow it here (off the GUI thread)."""
        job = self.selected_job()
        if job is None or self._listed is None or self.is_busy():
            return
        service, session, project_id, name = (
            self.service,
            self._listed.session,
            self.project_id,
            job.name,
        )
        self._start_action(
            "follow",
            lambda: service.adopt(name, session.profile, session.region, project_id),
            f"Attaching to {name}…",
        )

    def ask_spec_path(self, default: Path) -> Path | None:
        """Where to save the imported spec (a file dialog; tests replace this method)."""
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Save the imported job spec",
            str(default),
            "Job specs (*.yaml *.yml);;All files (*)",
        )
        if not path:
            return None
        chosen = Path(path)
        if chosen.suffix.lower() not in (".yaml", ".yml"):
            chosen = chosen.with_name(chosen.name + ".yaml")
        return chosen

    @Slot()
    def import_selected(self) -> None:
        """Ask where, then write a spec for the selected job (and its code) off the GUI thread."""
        job = self.selected_job()
        if job is None or self._listed is None or self.is_busy():
            return
        folder = self.project_dir if self.project_dir is not None else Path.home()
        path = self.ask_spec_path(folder / f"{job.name}.yaml")
        if path is None:
            return
        session, name = self._listed.session, job.name
        download = self.download_code_check.isChecked()

        def work() -> tuple[Path, JobSpec]:
            return path, import_training_job(session, name, path, download_code=download)

        self._start_action("import", work, f"Importing {name}…")

    def _start_action(self, kind: str, fn: Callable[[], Any], message: str) -> None:
        self._action = kind
        self._show_info(message)
        self._update_buttons()
        run_tagged((kind, next(self._tokens)), fn, self._on_outcome)

    def _on_followed(self, outcome: Outcome) -> None:
        self._action = None
        self._update_buttons()
        if outcome.error is not None:
            self._show_error(outcome.message)
            return
        job_id = str(outcome.value)
        self.model.mark_followed(job_id)
        self._show_info(f"Following {job_id} here: its status, logs and metrics are in the jobs.")
        self.sig_followed.emit(job_id)

    def _on_imported(self, outcome: Outcome) -> None:
        self._action = None
        self._update_buttons()
        if outcome.error is not None:
            self._show_error(outcome.message)
            return
        path, spec = outcome.value
        source_dir = spec.source.source_dir
        if source_dir and not source_dir.startswith("s3://"):
            where = f"; its code is in {spec.resolve(source_dir)}"
        else:
            where = ""
        self._show_info(f"Wrote {path}{where}.")
        self.sig_imported.emit(str(path))

    # -- results -----------------------------------------------------------------------------

    @Slot(object)
    def _on_outcome(self, outcome: Outcome) -> None:
        handlers: dict[str, Callable[[Outcome], None]] = {
            "list": self._on_listed,
            "config": self._on_config,
            "follow": self._on_followed,
            "import": self._on_imported,
        }
        handlers[outcome.tag[0]](outcome)

    def _show_info(self, text: str) -> None:
        self.status_label.setStyleSheet("")
        self.status_label.setText(text)

    def _show_error(self, text: str) -> None:
        color = status_color(JobStatus.FAILED.value).name()
        self.status_label.setStyleSheet(f"color: {color}")
        self.status_label.setText(text)

    def status_is_error(self) -> bool:
        """Whether the status line shows an error (for tests and callers)."""
        return bool(self.status_label.styleSheet())
