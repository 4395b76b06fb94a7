"""What the window does to jobs: run, re-run, stop, clone, delete, serve, export, open their
folder or console page, and start one from the example.

Everything slow runs off the GUI thread through a `TaskGroup` (cancelled when the window closes,
so no result reaches a closed window). Dialogs and messages stay the window's (`show_message`,
`ask_delete`, `confirm_cloud_run`: tests replace them there).

A submit shows at once: a selected "Starting…" row in the jobs table, and Run and Re-run are
off until it returns or fails, so a double click starts one job, not two.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from trainer_gui.core.errors import TorchMissing, UserError
from trainer_gui.core.naming import clone_name
from trainer_gui.core.paths import example_project
from trainer_gui.core.preflight import PreflightResult
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec import JobSpec, spec_to_dict
from trainer_gui.core.spec.model import Backend
from trainer_gui.core.store import JobRecord, Project
from trainer_gui.services.preflight import link_preflight
from trainer_gui.ui.form.spec_form import SpecEditorDialog, rebase_paths
from trainer_gui.ui.job_detail import console_link
from trainer_gui.ui.preflight import WindowPreflight
from trainer_gui.ui.projects import project_python
from trainer_gui.ui.queue_view import queue_note
from trainer_gui.ui.tasks import TaskGroup
from trainer_gui.ui.torch_install import offer_torch_install

if TYPE_CHECKING:  # pragma: no cover
    from trainer_gui.ui.main_window import MainWindow

log = logging.getLogger(__name__)


class LocationDialog(QDialog):
    """A path or address the desktop could not open: shown, selectable, one click to copy."""

    def __init__(
        self,
        title: str,
        text: str,
        location: str,
        parent: QWidget | None,
        copy_text: str = "Copy path",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.label = QLabel(text, self)
        self.label.setWordWrap(True)
        self.location = QLineEdit(location, self)
        self.location.setReadOnly(True)
        self.location.setCursorPosition(0)
        self.location.setMinimumWidth(
            min(640, self.location.fontMetrics().horizontalAdvance(location) + 24)
        )
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = QPushButton(copy_text, self)
        self.copy_button.setToolTip("Copy it to the clipboard")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.location)
        layout.addWidget(buttons)

    @Slot()
    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.location.text())
        self.copy_button.setText("Copied")


class JobCommands(QObject):
    """The job commands of one window (its menus, toolbar and context menu call these)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._tasks = TaskGroup(self)
        self._starting = 0  # submits not yet returned
        self.preflight = WindowPreflight(window, self._tasks)

    @property
    def starting(self) -> bool:
        """A submit is in flight (Run and Re-run wait for it)."""
        return self._starting > 0

    def cancel_pending(self) -> None:
        """The window closes: no pending command reports back (the work itself goes on)."""
        self.preflight.stop_all()  # a probe, though, has nobody left to report to
        self._tasks.cancel_all()

    def _failed(self, title: str) -> Callable[[BaseException, str], None]:
        return functools.partial(self.window.report_task_failure, title)

    def _say(self, text: str, timeout_ms: int = 0) -> None:
        self.window.statusBar().showMessage(text, timeout_ms)

    @Slot()
    def new_job_from_example(self) -> None:
        """Copy the example's code and data into the project (if absent) and open its spec."""
        project = self.window.require_project()
        if project is None:
            return
        folder = Path(project.path)
        example = example_project()

        def copy() -> dict[str, Any]:
            for sub in ("code", "data"):
                source, target = example / sub, folder / sub
                if source.is_dir() and not target.exists():
                    shutil.copytree(
                        source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                    )
            data = yaml.safe_load((example / "job.yaml").read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise UserError(f"the example spec {example / 'job.yaml'} is not a mapping")
            return data

        self._tasks.run(
            copy,
            functools.partial(self._open_example, folder),
            self._failed("Cannot copy the example"),
        )

    def _open_example(self, folder: Path, data: dict[str, Any]) -> None:
        self.window.projects.refresh_specs()
        self.window.open_editor(folder, data=data)

    def _begin(self, name: str, backend: str, project_id: int | None) -> str:
        """A submit starts: its "Starting…" row (if the list shows its project), Run off.

        Returns the row's id ("" when there is none), to hand to `_end`.
        """
        self._starting += 1
        current = self.window.current_project()
        row = ""
        if current is None or project_id == current.id:
            jobs = self.window.jobs
            row = jobs.model.add_placeholder(name, backend, project_id)
            jobs.select_job(row)
        self.window.update_actions()
        return row

    def _end(self, row: str, job_id: str | None) -> None:
        """The submit returned (`job_id`) or failed (None): its row goes, Run comes back."""
        self._starting = max(0, self._starting - 1)
        model = self.window.jobs.model
        if row and job_id:
            model.resolve_placeholder(row)  # replaced by the job's row at the next reload
        elif row:
            model.remove_placeholder(row)
        self.window.update_actions()

    def _start_failed(
        self, row: str, title: str, spec: JobSpec | None = None, project: Project | None = None
    ) -> Callable[[BaseException, str], None]:
        def failed(exc: BaseException, tb: str) -> None:
            self._end(row, None)
            if isinstance(exc, TorchMissing) and spec is not None and not self.window.closing:
                # Offer the install, then this Run again (issue 12).
                rerun = functools.partial(self.submit, spec, project)
                offer_torch_install(self.window, exc, rerun, f"Run {spec.name}")
                return
            self.window.report_task_failure(title, exc, tb)

        return failed

    def submit(self, spec: JobSpec, project: Project | None) -> None:
        """Start a job off the GUI thread (checking the interpreter can take seconds).

        A SageMaker job costs money from the moment it starts, so it is confirmed first, with
        the estimate for its region (the AWS settings and config are read off the GUI thread).
        """
        row = self._begin(spec.name, spec.compute.backend.value, project.id if project else None)
        self._submit(row, spec, project)

    def _submit(self, row: str, spec: JobSpec, project: Project | None) -> None:
        if spec.compute.backend == Backend.SAGEMAKER:
            self._say(f"Estimating the cost of {spec.name} on SageMaker…")

            def resolve() -> tuple[JobSpec, str]:
                from trainer_gui.core.aws.defaults import with_aws_defaults
                from trainer_gui.core.aws.session import AwsSession

                filled = with_aws_defaults(spec)
                # No region anywhere: the session's own error, before the user is asked.
                return filled, AwsSession(filled.sagemaker.profile, filled.sagemaker.region).region

            self._tasks.run(
                resolve,
                functools.partial(self._on_cloud_resolved, row, project),
                self._start_failed(row, f"Cannot start {spec.name}"),
            )
            return
        self._start(row, spec, project)

    def _on_cloud_resolved(
        self, row: str, project: Project | None, result: tuple[JobSpec, str]
    ) -> None:
        spec, region = result
        if self.window.closing:
            return
        if not self.window.confirm_cloud_run(spec, region):
            self._end(row, None)
            self._say(f"{spec.name} was not started", 5000)
            return
        self.preflight.gate(  # run here on a slice first; a failure asks before launching
            spec,
            project,
            lambda checked: self._start(row, spec, project, checked),
            functools.partial(self._not_started, row, spec.name),
        )

    def _not_started(self, row: str, name: str) -> None:
        self._end(row, None)
        self._say(f"{name} was not started", 5000)

    def _start(
        self,
        row: str,
        spec: JobSpec,
        project: Project | None,
        preflight: PreflightResult | None = None,
    ) -> None:
        project_id = project.id if project else None
        python = project_python(project)
        service = self.window.service
        self._say(f"Starting {spec.name}…")

        def start() -> tuple[str, str | None]:
            job_id = service.submit(spec, project_id=project_id, python=python).job_id
            link_preflight(service.store, job_id, preflight)
            try:  # a job that waits for the machine says so, and for what
                return job_id, queue_note(service, job_id)
            except Exception:
                log.exception("cannot read the queue after starting %s", job_id)
                return job_id, None

        self._tasks.run(
            start,
            functools.partial(self._on_submitted, row),
            self._start_failed(row, f"Cannot start {spec.name}", spec, project),
        )

    def _on_submitted(self, row: str, result: tuple[str, str | None]) -> None:
        job_id, queued = result
        self._end(row, job_id)
        self._say(queued or f"Started {job_id}", 10000 if queued else 6000)
        self.window.select_when_loaded(job_id)

    def _busy(self) -> bool:
        """A submit is in flight: say so instead of starting another (a double click)."""
        if self._starting:
            self._say("Still starting the last job…", 3000)
        return bool(self._starting)

    @Slot()
    def run_selected(self) -> None:
        """Ctrl+R: run the spec file selected in the sidebar, else re-run the selected jobs."""
        if self._busy():
            return
        spec_path = self.window.projects.current_spec_path()
        if spec_path is not None and (
            self.window.projects.tree.hasFocus() or not self.window.selected_records()
        ):
            self.run_spec_file(spec_path)
        elif self.window.selected_records():
            self.rerun_selected()
        elif spec_path is not None:
            self.run_spec_file(spec_path)

    def run_spec_file(self, path: Path) -> None:
        from trainer_gui.core.spec import load_spec

        try:
            spec = load_spec(path)
        except UserError as exc:
            self.window.show_message(
                "warning",
                f"Cannot run {path.name}",
                f"{exc}\n\nOpen it (double-click) to fix it in the form.",
            )
            return
        self.submit(spec, self.window.project_for_folder(path.parent))

    @Slot()
    def rerun_selected(self) -> None:
        if self._busy():
            return
        records = self.window.selected_records()
        service = self.window.service
        store = self.window.store
        for record in records:

            def load(record: JobRecord = record) -> tuple[JobSpec, Project | None]:
                project = store.get_project(record.project_id) if record.project_id else None
                return service.spec_of(record), project

            row = self._begin(record.name, record.backend, record.project_id)
            self._tasks.run(
                load,
                functools.partial(self._on_rerun_loaded, row),
                self._start_failed(row, f"Cannot re-run {record.name}"),
            )

    def _on_rerun_loaded(self, row: str, result: tuple[JobSpec, Project | None]) -> None:
        if not self.window.closing:
            self._submit(row, *result)

    @Slot()
    def stop_selected(self) -> None:
        records = [r for r in self.window.selected_records() if r.is_active]
        service = self.window.service
        for record in records:
            self._say(f"Stopping {record.name}…", 5000)
            self._tasks.run(
                functools.partial(service.stop, record.id, 0),
                self._on_stop_requested,
                self._failed(f"Cannot stop {record.name}"),
            )

    @Slot(object)
    def _on_stop_requested(self, record: JobRecord) -> None:
        self.window.refresh_soon()

    @Slot()
    def clone_selected(self) -> SpecEditorDialog | None:
        records = self.window.selected_records()
        if len(records) != 1:
            return None
        record = records[0]
        try:
            spec = self.window.service.spec_of(record)
        except UserError as exc:
            self.window.report_error("Cannot clone the job", exc)
            return None
        project = self.window.store.get_project(record.project_id) if record.project_id else None
        project = project or self.window.current_project()
        folder = Path(project.path) if project else spec.base_dir or Path.home()
        data = spec_to_dict(spec)
        if spec.base_dir is not None:
            data = rebase_paths(data, spec.base_dir, folder)
        jobs = self.window.store.list_jobs(project.id if project else None)
        data["name"] = clone_name(spec.name, folder, (r.name for r in jobs))
        return self.window.open_editor(folder, data=data)

    @Slot()
    def delete_selected(self) -> None:
        records = self.window.selected_records()
        if not records:
            return
        active = [r for r in records if r.is_active]
        if active:
            self.window.show_message(
                "warning",
                "Stop the jobs first",
                "These jobs are still running; stop them (Ctrl+.) before deleting:\n"
                + "\n".join(f"• {r.name} ({r.status})" for r in active),
            )
            return
        remove_files = self.window.ask_delete(records)
        if remove_files is None:
            return
        service = self.window.service
        ids = [r.id for r in records]

        def delete() -> int:
            for job_id in ids:
                service.delete(job_id, remove_files=remove_files)
            return len(ids)

        self.window.detail.show_jobs([])
        self._tasks.run(delete, self._on_deleted, self._failed("Cannot delete the jobs"))

    @Slot(object)
    def _on_deleted(self, count: int) -> None:
        self._say(f"Deleted {count} job{'s' if count != 1 else ''}", 5000)
        self.window.refresh_jobs()

    @Slot()
    def open_run_folder(self) -> None:
        """Show the job's folder in the file manager, or its path where there is none."""
        records = self.window.selected_records()
        if not records:
            return
        folder = records[0].run_dir
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(folder)):
            self.show_location(
                "Open run folder",
                f"No program to open folders was found. {records[0].name}'s files are in:",
                folder,
            )

    def show_location(
        self, title: str, text: str, location: str, copy_text: str = "Copy path"
    ) -> LocationDialog:
        """Where the desktop has no handler, the path itself (a silent failure told nothing)."""
        dialog = LocationDialog(title, text, location, self.window, copy_text)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    @Slot()
    def preflight_selected(self) -> None:
        """Job > Preflight: the selected job's spec, else the selected spec file, run here on
        a slice of its data (it is not launched)."""
        from trainer_gui.core.spec import load_spec

        records = self.window.selected_records()
        spec_path = self.window.projects.current_spec_path()
        try:
            if len(records) == 1 and not (
                spec_path is not None and self.window.projects.tree.hasFocus()
            ):
                record = records[0]
                spec = self.window.service.spec_of(record)
                project = (
                    self.window.store.get_project(record.project_id) if record.project_id else None
                )
            elif spec_path is not None:
                spec = load_spec(spec_path)
                project = self.window.project_for_folder(spec_path.parent)
            else:
                self._say("Select a SageMaker job or job spec to preflight", 6000)
                return
        except UserError as exc:
            self.window.report_error("Cannot preflight", exc)
            return
        self.preflight.check(spec, project)

    @Slot()
    def export_selected(self) -> QDialog | None:
        """Export the selected job's spec, else the spec file selected in the sidebar."""
        from trainer_gui.core.spec import load_spec

        records = self.window.selected_records()
        spec_path = self.window.projects.current_spec_path()
        try:
            if len(records) == 1 and not (
                spec_path is not None and self.window.projects.tree.hasFocus()
            ):
                spec = self.window.service.spec_of(records[0])
            elif spec_path is not None:
                spec = load_spec(spec_path)
            else:
                self._say("Select a job or a job spec to export", 6000)
                return None
        except UserError as exc:
            self.window.report_error("Cannot export", exc)
            return None
        return self.window.open_export(spec)

    @Slot()
    def open_console(self) -> None:
        records = self.window.selected_records()
        url = console_link(records[0]) if len(records) == 1 else None
        if url and not QDesktopServices.openUrl(QUrl(url)):
            self.show_location(
                "Open in AWS console",
                "No web browser was found. Open this address in one:",
                url,
                "Copy address",
            )

    def serve_selected(self) -> None:
        """Serve the selected finished job's model in a local container and show Predict."""
        records = self.window.selected_records()
        if len(records) != 1 or records[0].status != JobStatus.COMPLETED.value:
            self.window.show_message(
                "info", "Serve model", "Select one completed job to serve its model."
            )
            return
        self.window.predict_dock.show()
        self.window.predict_dock.raise_()
        self.window.predict.serve_model(records[0].id)
