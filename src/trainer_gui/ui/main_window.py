"""The main window: projects on the left, the project's jobs on top, the selected job below.

The window keeps the layout and the wiring: its actions, menus and toolbar are built by
`WindowActions` (ui/actions.py), and what acts on jobs (run, stop, re-run, clone, delete, ...) is
`JobCommands` (ui/job_commands.py). Everything slow (submitting, which checks the interpreter;
stopping; deleting run folders; re-attaching; reading job lists and metric values) runs on the
thread pool through `ui.tasks`, and closing the window cancels what is still pending; the
bridge delivers runner events on the GUI thread in batches. Jobs outlive the window: closing it
lets go of them (`Jobs.shutdown`), and the next start re-attaches (`Jobs.recover`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QSystemTrayIcon,
    QWidget,
)

from trainer_gui import __version__
from trainer_gui.core.aws.defaults import AwsDefaults
from trainer_gui.core.errors import UserError
from trainer_gui.core.paths import data_home
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.serving.launcher import EndpointLauncher
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.spec.io import read_spec_data
from trainer_gui.core.spec.model import JOB_NAME_RE
from trainer_gui.core.store import JobRecord, Project, Store
from trainer_gui.services.api import Jobs
from trainer_gui.services.live_data import MetricChunk
from trainer_gui.ui.about import show_about
from trainer_gui.ui.actions import WindowActions
from trainer_gui.ui.app import apply_theme, env_theme
from trainer_gui.ui.bridge import JobEventBridge
from trainer_gui.ui.form.spec_form import SpecEditorDialog
from trainer_gui.ui.icons import app_icon
from trainer_gui.ui.job_commands import JobCommands
from trainer_gui.ui.job_detail import JobDetail
from trainer_gui.ui.jobs_table import JobsView, RunsSnapshot, load_runs
from trainer_gui.ui.predict_panel import PredictPanel
from trainer_gui.ui.projects import SPEC_SUFFIXES, ProjectsPanel
from trainer_gui.ui.queue_view import QueueSnapshot, QueueView
from trainer_gui.ui.settings import WindowSettings
from trainer_gui.ui.status import BackendStatus, ProbeResult
from trainer_gui.ui.tasks import TaskGroup
from trainer_gui.ui.transfers import TransferProgressBar

log = logging.getLogger(__name__)
CRASH_LOG = "crash.log"
ALL_PROJECTS = -1
RECOVER_EVERY = 10.0  # seconds between re-attach passes


def log_crash(text: str) -> Path:
    """Append a traceback to data_home()/crash.log; returns the file's path."""
    path = data_home() / CRASH_LOG
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} trainer-gui {__version__}\n")
            fh.write(text.rstrip() + "\n")
    except OSError:
        log.exception("cannot write %s", path)
    return path


def _remove_endpoints(launcher: EndpointLauncher) -> None:
    try:
        launcher.shutdown_all()
    except Exception:  # at exit: logged, and the next start removes what is left
        log.exception("removing the local endpoints failed")


def job_name_for(text: str) -> str:
    """A valid job name made from any text (a project name, say)."""
    import re

    name = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:50].strip("-")
    name = name or "job"
    return name if JOB_NAME_RE.match(name) else "job"


class MainWindow(QMainWindow):
    """Projects, jobs and the selected job; owns the bridge and the status probes."""

    def __init__(
        self,
        store: Store,
        service: Jobs,
        *,
        probes: dict[str, Callable[[], ProbeResult]] | None = None,
        settings: WindowSettings | None = None,
        recover: bool = True,
        recover_every: float = RECOVER_EVERY,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.service = service
        self.settings = settings or WindowSettings()
        # The theme chosen in View > Theme (TRAINER_GUI_THEME, when set, for this start only).
        self.theme = env_theme() or self.settings.theme
        self._apply_theme()
        self.editors: list[SpecEditorDialog] = []
        self.aws_settings_dialog: QDialog | None = None
        self.remote_jobs_dialog: QDialog | None = None
        self.export_dialogs: list[QDialog] = []
        self.last_notification: tuple[str, str, str] | None = None
        self.recovered: list[str] | None = None
        self._jobs_generation = 0
        self._jobs_loading = False
        self._jobs_reload = False
        self._select_after_load: str | None = None
        self._known_marker: int | None = None
        self._polling = False
        self._recovering = False
        self._closing = False
        self._tasks = TaskGroup(self)

        self.setObjectName("main_window")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
        )

        self.bridge = JobEventBridge(service, self)
        self.projects = ProjectsPanel(store, self)
        self.projects_dock = QDockWidget("Projects", self)
        self.projects_dock.setObjectName("projects_dock")
        self.projects_dock.setWidget(self.projects)
        self.projects_dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.projects_dock)
        # Local inference endpoints: the launcher talks to Docker only when first used.
        self.launcher = EndpointLauncher()
        self.predict = PredictPanel(self.launcher, self)
        self.predict_dock = QDockWidget("Predict", self)
        self.predict_dock.setObjectName("predict_dock")
        self.predict_dock.setWidget(self.predict)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.predict_dock)
        self.predict_dock.hide()
        self.queue = QueueView(service, self)
        self.queue_dock = QDockWidget("Queue", self)
        self.queue_dock.setObjectName("queue_dock")
        self.queue_dock.setWidget(self.queue)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.queue_dock)
        self.queue_dock.hide()
        self.jobs = JobsView(self, store=store)
        self.detail = JobDetail(store, self)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setObjectName("main_splitter")
        self.splitter.addWidget(self.jobs)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.backend_status = BackendStatus(probes, self)
        self.transfers = TransferProgressBar(name_of=self._job_name, parent=self)
        self.statusBar().addPermanentWidget(self.transfers)
        self.statusBar().addPermanentWidget(self.backend_status)
        aws_label = self.backend_status.labels.get("aws")
        if aws_label is not None:  # the AWS status opens the AWS settings
            aws_label.setCursor(Qt.CursorShape.PointingHandCursor)
            aws_label.sig_clicked.connect(self.show_aws_settings)
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(app_icon(), self)
            self.tray.setToolTip("Trainer GUI")
            self.tray.activated.connect(self._on_tray_activated)
            self.tray.show()

        self.commands = JobCommands(self)
        self.window_actions = WindowActions(self, self.commands)
        self.detail.log_view.find_shortcut.setEnabled(False)  # the window's Search logs has it

        self.bridge.sig_status.connect(self._on_status)
        self.bridge.sig_status.connect(self.queue.on_status)
        self.queue.sig_snapshot.connect(self._on_queue)
        self.bridge.sig_logs.connect(self.detail.on_logs)
        self.bridge.sig_metrics.connect(self._on_metrics)
        self.bridge.sig_artifact.connect(self._on_artifact)
        self.bridge.sig_transfer.connect(self.transfers.on_transfer)
        self.bridge.sig_transfer.connect(self.detail.transfer.on_transfer)
        self.projects.sig_project_changed.connect(self._on_project_changed)
        self.projects.sig_spec_activated.connect(self.open_spec)
        self.projects.sig_new_job_requested.connect(self.new_job)
        self.projects.tree.currentItemChanged.connect(self.update_actions)
        self.jobs.sig_selection_changed.connect(self._on_jobs_selected)
        self.jobs.sig_activated.connect(self._on_job_activated)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(250)
        self._refresh_timer.timeout.connect(self.refresh_jobs)
        self._marker_timer = QTimer(self)
        self._marker_timer.setInterval(2000)
        self._marker_timer.timeout.connect(self._poll_store)
        self._marker_timer.start()

        self._size_for_screen()
        self._restore_settings()
        self._update_title()
        self.update_actions()
        self.refresh_jobs()
        # Re-attach to the jobs nobody follows: now, and every `recover_every` seconds, so a
        # job whose follower went away while the window is open (a CLI run that was
        # detached or killed) is picked up too.
        self._recover_timer = QTimer(self)
        self._recover_timer.setInterval(max(1, round(recover_every * 1000)))
        self._recover_timer.timeout.connect(self.recover_jobs)
        if recover:
            self._recovering = True
            self._tasks.run(service.recover, self._on_recovered, self._on_recover_failed)
            self._recover_timer.start()

    # -- building ----------------------------------------------------------------------------

    def _size_for_screen(self) -> None:
        """A comfortable default that still fits a 1366x768 laptop screen."""
        self.setMinimumSize(880, 540)
        width, height = 1280, 760
        screen = self.screen()
        if screen is not None:
            avail = screen.availableGeometry()
            width = min(width, int(avail.width() * 0.96))
            height = min(height, int(avail.height() * 0.94))
        self.resize(max(width, 880), max(height, 540))
        self.projects_dock.setMinimumWidth(180)
        self.resizeDocks([self.projects_dock], [230], Qt.Orientation.Horizontal)
        self.splitter.setSizes([220, 480])

    # -- settings ----------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.get_bytes("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.get_bytes("window/state")
        if state is not None:
            self.restoreState(state)
        splitter = s.get_bytes("window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        live = s.get_bytes("window/live_splitter")
        if live is not None:
            self.detail.live.restoreState(live)
        header = s.get_bytes("jobs/header")
        if header is not None:
            self.jobs.table.horizontalHeader().restoreState(header)
        project_id = s.get_int("project/current", ALL_PROJECTS)
        if project_id != ALL_PROJECTS and self.projects.select_project(project_id):
            return
        projects = self.projects.projects()
        if projects and project_id != ALL_PROJECTS:
            self.projects.select_project(projects[0].id)

    def save_settings(self) -> None:
        s = self.settings
        s.set_bytes("window/geometry", self.saveGeometry())
        s.set_bytes("window/state", self.saveState())
        s.set_bytes("window/splitter", self.splitter.saveState())
        s.set_bytes("window/live_splitter", self.detail.live.saveState())
        s.set_bytes("jobs/header", self.jobs.table.horizontalHeader().saveState())
        project = self.projects.current_project()
        s.set_int("project/current", project.id if project else ALL_PROJECTS)
        s.sync()

    # -- messages ----------------------------------------------------------------------------

    def show_message(self, level: str, title: str, text: str) -> None:
        """A message dialog ("info", "warning" or "error"); tests replace this."""
        if level == "error":
            QMessageBox.critical(self, title, text)
        elif level == "warning":
            QMessageBox.warning(self, title, text)
        else:
            QMessageBox.information(self, title, text)

    def report_error(self, title: str, exc: BaseException, tb: str = "") -> None:
        """A problem the user can fix gets its message; anything else is logged, not shown."""
        if isinstance(exc, UserError):
            self.show_message("warning", title, str(exc))
            return
        path = log_crash(tb or "".join(traceback.format_exception(exc)))
        self.show_message(
            "error",
            title,
            f"Something unexpected went wrong: {type(exc).__name__}: {exc}\n\n"
            f"The details were written to {path}.",
        )

    @property
    def closing(self) -> bool:
        """The window is closing: results that come back now are not shown."""
        return self._closing

    def report_task_failure(self, title: str, exc: BaseException, tb: str) -> None:
        """A background command failed: a line in the status bar and the error's dialog."""
        if self._closing:
            return
        self.statusBar().showMessage(f"{title}: {exc}", 8000)
        self.report_error(title, exc, tb)

    # -- projects ----------------------------------------------------------------------------

    def current_project(self) -> Project | None:
        return self.projects.current_project()

    def project_for_folder(self, folder: Path) -> Project | None:
        try:
            folder = folder.resolve()
        except OSError:
            log.debug("cannot resolve %s", folder, exc_info=True)
            return None
        for project in self.projects.projects():
            if Path(project.path) == folder:
                return project
        return None

    @Slot(object)
    def _on_project_changed(self, project: Project | None) -> None:
        self._update_title()
        self.jobs.model.set_jobs([])
        self.detail.show_jobs([])
        self.refresh_jobs()
        self.update_actions()

    def _update_title(self) -> None:
        project = self.current_project()
        where = project.name if project else "All jobs"
        self.setWindowTitle(f"{where} — Trainer GUI")

    # -- the jobs list -----------------------------------------------------------------------

    @Slot()
    def refresh_jobs(self) -> None:
        """Reload the current project's jobs (and their last metric values) off the GUI thread."""
        if self._jobs_loading:
            self._jobs_reload = True
            return
        self._jobs_loading = True
        self._jobs_generation += 1
        project = self.current_project()
        project_id = project.id if project else None
        generation = self._jobs_generation
        store = self.store

        def load() -> tuple[int, int | None, RunsSnapshot]:
            return generation, project_id, load_runs(store, project_id)

        self._tasks.run(load, self._on_jobs_loaded, self._on_jobs_failed)

    @Slot(object)
    def _on_jobs_loaded(self, result: tuple[int, int | None, RunsSnapshot]) -> None:
        self._jobs_loading = False
        if self._closing:
            return
        _generation, project_id, rows = result
        project = self.current_project()
        if project_id == (project.id if project else None) and not self._jobs_reload:
            self.jobs.set_runs(rows)
            self.detail.update_records(self.jobs.selected_records())
            if self._select_after_load and self.jobs.select_job(self._select_after_load):
                self._select_after_load = None
            self.update_actions()
        if self._jobs_reload:
            self._jobs_reload = False
            self.refresh_jobs()

    def _on_jobs_failed(self, exc: BaseException, tb: str) -> None:
        self._jobs_loading = False
        log.error("cannot load the jobs: %s\n%s", exc, tb)
        if not self._closing:
            self.statusBar().showMessage(f"Cannot load the jobs: {exc}", 8000)

    @Slot()
    def _poll_store(self) -> None:
        """Did another process (the CLI, another window) change the store? Asked off-thread:
        the store's lock may be held by a runner thread waiting on another process's write."""
        if self._polling or self._closing:
            return
        self._polling = True
        self._tasks.run(self.store.change_marker, self._on_marker, self._on_marker_failed)

    @Slot(object)
    def _on_marker(self, marker: tuple[int, int]) -> None:
        self._polling = False
        if self._closing:
            return
        if self._known_marker is not None and marker[0] != self._known_marker:
            self.refresh_jobs()
        self._known_marker = marker[0]

    def _on_marker_failed(self, exc: BaseException, tb: str) -> None:
        self._polling = False  # a closed or busy store: try again next tick

    @Slot(list)
    def _on_jobs_selected(self, job_ids: list[str]) -> None:
        self.detail.show_jobs(self.jobs.selected_records())
        self.update_actions()

    @Slot(str)
    def _on_job_activated(self, job_id: str) -> None:
        self.detail.tabs.setCurrentIndex(0)

    def selected_records(self) -> list[JobRecord]:
        return self.jobs.selected_records()

    @Slot()
    def update_actions(self, *_args: Any) -> None:
        """Enable the actions that apply to the selection (and to a submit in flight)."""
        self.window_actions.update_enabled(
            self.selected_records(),
            self.current_project() is not None,
            self.projects.current_spec_path(),
        )

    def refresh_soon(self) -> None:
        """Reload the jobs list shortly (many changes in a row make one reload)."""
        self._refresh_timer.start()

    def select_when_loaded(self, job_id: str) -> None:
        """Reload the jobs list and select `job_id` once it is in it."""
        self._select_after_load = job_id
        self.refresh_jobs()

    # -- bridge events -----------------------------------------------------------------------

    @Slot(str, str, str)
    def _on_status(self, job_id: str, status: str, message: str) -> None:
        known = self.jobs.model.update_status(job_id, status, message)
        self._refresh_timer.start()
        if known:
            self.detail.update_records(self.jobs.selected_records())
            self.update_actions()
        try:
            terminal = JobStatus(status).is_terminal
        except ValueError:
            terminal = False
        if terminal:
            self.transfers.forget_job(job_id)
            self.detail.transfer.forget_job(job_id)
            record = self.jobs.model.record_by_id(job_id)
            self.notify_job_end(record.name if record else job_id, status, message)

    @Slot(object)
    def _on_queue(self, snapshot: QueueSnapshot) -> None:
        self.jobs.model.set_queue_positions(snapshot.positions)
        self.detail.set_queue(snapshot.positions, snapshot.paused)

    @Slot(str, object)
    def _on_metrics(self, job_id: str, samples: MetricChunk) -> None:
        self.jobs.model.update_metrics(job_id, samples)
        self.detail.on_metrics(job_id, samples)

    @Slot(str, str, str)
    def _on_artifact(self, job_id: str, kind: str, path: str) -> None:
        self.statusBar().showMessage(f"{kind.capitalize()} artifact ready: {path}", 6000)
        self._refresh_timer.start()

    def notify_job_end(self, name: str, status: str, message: str) -> None:
        """Tell the user a job ended; a tray message when the window is in the background."""
        title = f"Job {status.lower()}: {name}"
        text = message or f"{name} is {status.lower()}."
        self.statusBar().showMessage(f"{title} — {text}", 15000)
        if self.isActiveWindow():
            self.last_notification = (title, text, "statusbar")
            return
        if self.tray is not None and QSystemTrayIcon.supportsMessages():
            icon = (
                QSystemTrayIcon.MessageIcon.Information
                if status == JobStatus.COMPLETED.value
                else QSystemTrayIcon.MessageIcon.Warning
            )
            self.tray.showMessage(title, text, icon, 8000)
            self.last_notification = (title, text, "tray")
        else:
            QApplication.alert(self)
            self.last_notification = (title, text, "alert")

    @Slot(QSystemTrayIcon.ActivationReason)
    def _on_tray_activated(self, _reason: QSystemTrayIcon.ActivationReason) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    @Slot()
    def recover_jobs(self) -> None:
        """Re-attach (off the GUI thread) to unfinished jobs that no process follows."""
        if self._recovering or self._closing:
            return
        self._recovering = True
        self._tasks.run(self.service.recover, self._on_recovered, self._on_recover_failed)

    def _on_recover_failed(self, exc: BaseException, tb: str) -> None:
        first = self.recovered is None
        self._recovering = False
        self.recovered = self.recovered or []
        if first:
            self.report_task_failure("Cannot re-attach to jobs", exc, tb)
        else:  # the periodic one: tried again in a few seconds, no dialog
            log.warning("re-attaching to jobs failed: %s\n%s", exc, tb)

    @Slot(object)
    def _on_recovered(self, job_ids: list[str]) -> None:
        self._recovering = False
        self.recovered = [*(self.recovered or []), *job_ids]
        if job_ids and not self._closing:
            count = len(job_ids)
            self.statusBar().showMessage(
                f"Re-attached to {count} running job{'s' if count != 1 else ''}", 8000
            )
            self.refresh_jobs()

    # -- job specs ---------------------------------------------------------------------------

    def require_project(self) -> Project | None:
        """The current project, or None after telling the user to pick one."""
        project = self.current_project()
        if project is None:
            self.show_message(
                "info",
                "Pick a project first",
                "Job specs are saved in a project folder. Create a project (File > New project) "
                "or open a folder (Ctrl+O), then select it on the left.",
            )
        return project

    def open_editor(
        self, project_dir: Path, path: Path | None = None, data: dict[str, Any] | None = None
    ) -> SpecEditorDialog:
        """Show the job form (non-modal); saving refreshes the sidebar, running submits."""
        dialog = SpecEditorDialog(project_dir, path=path, data=data, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.sig_saved.connect(self._on_spec_saved)
        dialog.sig_run_requested.connect(self._on_editor_run)
        dialog.sig_preflight_requested.connect(self._on_editor_preflight)
        dialog.finished.connect(functools.partial(self._forget_editor, dialog))
        self.editors.append(dialog)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _forget_editor(self, dialog: SpecEditorDialog, _result: int = 0) -> None:
        if dialog in self.editors:
            self.editors.remove(dialog)

    @Slot()
    def new_job(self) -> SpecEditorDialog | None:
        project = self.require_project()
        if project is None:
            return None
        folder = Path(project.path)
        data: dict[str, Any] = {"name": job_name_for(project.name)}
        if (folder / "code").is_dir():
            data["source"] = {"source_dir": "code"}
            if (folder / "code" / "train.py").is_file():
                data["source"]["entry_point"] = "train.py"
        return self.open_editor(folder, data=data)

    @Slot()
    def ask_open_spec(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        project = self.current_project()
        start = project.path if project else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a job spec", start, "Job specs (*.yaml *.yml);;All files (*)"
        )
        if path:
            self.open_spec(path)

    @Slot(str)
    def open_spec(self, path: str | Path) -> SpecEditorDialog | None:
        """Open a spec file in the form; problems in it are shown inline, not refused."""
        path = Path(path)
        try:  # bounded: a hostile file (alias bomb, deep nesting) is refused, not expanded
            data = read_spec_data(path)
        except UserError as exc:
            self.show_message("warning", "Cannot open the spec", str(exc))
            return None
        if not isinstance(data, dict):
            self.show_message(
                "warning",
                "Cannot open the spec",
                f"{path} is not a job spec (it should be a mapping with name:, source:, ...)",
            )
            return None
        editor = self._editor_for(path)
        if editor is not None:
            editor.raise_()
            editor.activateWindow()
            return editor
        return self.open_editor(path.resolve().parent, path=path.resolve(), data=data)

    @Slot()
    def save_spec(self) -> SpecEditorDialog | None:
        """Ctrl+S: save the job form the user worked in last; with none open, open the spec
        selected in the sidebar (or the selected job's, as Clone and edit does) in the form,
        where Ctrl+S saves it."""
        spec_path = self.projects.current_spec_path()
        editor = self._editor_for(spec_path) if spec_path is not None else None
        if editor is None and self.editors:
            editor = self.editors[-1]
        if editor is not None:
            editor.raise_()
            editor.activateWindow()
            editor.save()
            return editor
        if spec_path is not None:
            return self.open_spec(spec_path)
        if len(self.selected_records()) == 1:
            return self.commands.clone_selected()
        self.statusBar().showMessage(
            "Nothing to save: select a job spec on the left, or a job to save its spec", 6000
        )
        return None

    def _editor_for(self, path: Path) -> SpecEditorDialog | None:
        target = path.resolve()
        for editor in self.editors:
            if editor.path is not None and editor.path.resolve() == target:
                return editor
        return None

    @Slot(str)
    def _on_spec_saved(self, path: str) -> None:
        self.projects.refresh_specs()
        self.statusBar().showMessage(f"Saved {path}", 5000)

    @Slot(object, str)
    def _on_editor_preflight(self, spec: JobSpec, folder: str) -> None:
        self.commands.preflight.check(spec, self.project_for_folder(Path(folder)))

    def _on_editor_run(self, spec: JobSpec, path: str) -> None:
        project = self.project_for_folder(Path(path).parent)
        self.commands.submit(spec, project)

    # -- run and control ---------------------------------------------------------------------

    def confirm_cloud_run(self, spec: JobSpec, region: str | None) -> bool:
        """Ask before a SageMaker job starts (tests replace this)."""
        from trainer_gui.ui.form.cost import confirm_cloud_run

        return confirm_cloud_run(self, spec, region)

    def ask_delete(self, records: list[JobRecord]) -> bool | None:
        """Confirm; returns whether to remove the run folders too, or None to cancel."""
        names = "\n".join(f"• {r.name} ({r.id})" for r in records[:8])
        more = f"\n… and {len(records) - 8} more" if len(records) > 8 else ""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Delete jobs?")
        box.setText(
            f"Delete {len(records)} job{'s' if len(records) != 1 else ''} from the list?\n\n"
            f"{names}{more}"
        )
        remove = QCheckBox("Also delete the run folders (logs, model and output archives)", box)
        remove.setChecked(False)
        box.setCheckBox(remove)
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        if box.exec() != QMessageBox.StandardButton.Yes:
            return None
        return remove.isChecked()

    def set_theme(self, theme: str) -> None:
        """View > Theme: "system", "light" or "dark", applied at once and remembered."""
        self.settings.theme = theme  # refuses anything else
        self.settings.sync()
        self.theme = theme
        self._apply_theme()
        self.window_actions.show_theme(theme)
        self.statusBar().showMessage(f"Theme: {theme}", 3000)

    def _apply_theme(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, self.theme)

    @Slot()
    def refresh_all(self) -> None:
        self.projects.refresh()
        self.refresh_jobs()
        self.backend_status.probe()

    @Slot()
    def search_logs(self) -> None:
        self.detail.tabs.setCurrentIndex(0)
        self.detail.log_view.focus_search()

    def _about(self) -> None:
        show_about(self)

    # -- the cloud ---------------------------------------------------------------------------

    @Slot()
    def show_aws_settings(self) -> QDialog:
        """The AWS settings page (one at a time); saving re-checks the AWS status."""
        from trainer_gui.ui.aws_settings import AwsSettingsDialog

        if self.aws_settings_dialog is None:
            dialog = AwsSettingsDialog(self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.sig_saved.connect(self._on_aws_settings_saved)
            dialog.destroyed.connect(self._forget_aws_settings)
            self.aws_settings_dialog = dialog
        self.aws_settings_dialog.show()
        self.aws_settings_dialog.raise_()
        self.aws_settings_dialog.activateWindow()
        return self.aws_settings_dialog

    @Slot()
    def _forget_aws_settings(self) -> None:
        self.aws_settings_dialog = None

    @Slot(object)
    def _on_aws_settings_saved(self, defaults: AwsDefaults) -> None:
        """Open forms show the new defaults and re-estimate the cost in the new region."""
        self.statusBar().showMessage("AWS settings saved", 5000)
        self.backend_status.probe()
        for editor in self.editors:
            editor.show_aws_defaults(defaults)
            editor.cost_label.refresh_settings()

    @Slot()
    def show_remote_jobs(self) -> QDialog:
        """The account's training jobs: follow one here, or import one as a spec."""
        from trainer_gui.ui.remote_jobs import RemoteJobsDialog

        if self.remote_jobs_dialog is None:
            project = self.current_project()
            dialog = RemoteJobsDialog(
                self.service,
                Path(project.path) if project else None,
                project.id if project else None,
                self,
            )
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.sig_followed.connect(self._on_remote_followed)
            dialog.sig_imported.connect(self._on_remote_imported)
            dialog.destroyed.connect(self._forget_remote_jobs)
            self.remote_jobs_dialog = dialog
        self.remote_jobs_dialog.show()
        self.remote_jobs_dialog.raise_()
        self.remote_jobs_dialog.activateWindow()
        return self.remote_jobs_dialog

    @Slot()
    def _forget_remote_jobs(self) -> None:
        self.remote_jobs_dialog = None

    @Slot(str)
    def _on_remote_followed(self, job_id: str) -> None:
        self.statusBar().showMessage(f"Following the SageMaker job {job_id}", 6000)
        self.select_when_loaded(job_id)

    @Slot(str)
    def _on_remote_imported(self, path: str) -> None:
        self.projects.refresh_specs()
        self.statusBar().showMessage(f"Imported {path}", 6000)
        self.open_spec(path)

    def open_export(self, spec: JobSpec) -> QDialog:
        from trainer_gui.ui.form.export_dialog import ExportDialog

        dialog = ExportDialog(spec, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.export_dialogs.append(dialog)
        dialog.destroyed.connect(functools.partial(self._forget_export, dialog))
        dialog.show()
        return dialog

    def _forget_export(self, dialog: QDialog, *_args: object) -> None:
        if dialog in self.export_dialogs:
            self.export_dialogs.remove(dialog)

    def _job_name(self, job_id: str) -> str:
        record = self.jobs.model.record_by_id(job_id)
        return record.name if record else job_id

    # -- window events -----------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.backend_status.start()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_paths(event.mimeData().urls() if event.mimeData().hasUrls() else []):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_paths(event.mimeData().urls() if event.mimeData().hasUrls() else [])
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        for path in paths:
            self.open_dropped(path)

    @staticmethod
    def _dropped_paths(urls: list[QUrl]) -> list[Path]:
        out = []
        for url in urls:
            if not url.isLocalFile():
                continue
            path = Path(url.toLocalFile())
            if path.is_dir() or path.suffix.lower() in SPEC_SUFFIXES:
                out.append(path)
        return out

    def open_dropped(self, path: Path) -> None:
        """A spec YAML opens in the form; a folder opens as a project."""
        if path.is_dir():
            self.projects.open_folder_later(path)
        else:
            self.open_spec(path)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Remember the layout and let go of jobs; they keep running and re-attach next time."""
        for editor in list(self.editors):
            if not editor.close():  # unsaved edits the user chose to keep: the app stays
                event.ignore()
                return
        self._closing = True
        self.save_settings()
        self._marker_timer.stop()
        self._refresh_timer.stop()
        self._recover_timer.stop()
        self._tasks.cancel_all()  # no pending load, poll or command reports to a closed window
        self.commands.cancel_pending()
        self.backend_status.stop()
        self.bridge.close()
        self.service.shutdown()
        self.predict.shutdown()
        self.queue.shutdown()
        # Endpoints go with the app (jobs do not); a non-daemon thread finishes the removal
        # after the window is gone, and anything missed is removed at the next start. Not a
        # `ui.tasks` task: nothing comes back to the GUI, and it must outlive the window and
        # the app's wait for the thread pool at exit.
        if getattr(self.launcher, "_client_obj", None) is not None:  # only if Docker was used
            threading.Thread(
                target=_remove_endpoints, args=(self.launcher,), name="endpoints-down"
            ).start()
        if self.tray is not None:
            self.tray.hide()
        event.accept()
