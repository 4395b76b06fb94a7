"""The window's preflight: before a SageMaker launch (unless switched off), and on its own from
Job > Preflight.

The probe runs off the GUI thread (a `TaskGroup` task, cancelled with the window); its progress
reaches the status bar through a timer that reads the worker's last line. A failed preflight
before a launch asks, with the reason, whether to launch anyway (core/preflight.py, and
services/preflight.py for what runs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractButton, QMessageBox

from trainer_gui.core.errors import UserError
from trainer_gui.core.preflight import PreflightResult
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.spec.model import Backend
from trainer_gui.core.store import Project
from trainer_gui.ui.projects import project_python
from trainer_gui.ui.tasks import TaskGroup

if TYPE_CHECKING:  # pragma: no cover
    from trainer_gui.ui.main_window import MainWindow

#: Settings key: 1 (the default) preflights every SageMaker launch from the window.
log = logging.getLogger(__name__)

SETTING_KEY = "cloud/preflight"
LAUNCH_ANYWAY = "Launch anyway"


class WindowPreflight(QObject):
    """Runs preflights for one window and asks what to do about a failed one."""

    def __init__(self, window: MainWindow, tasks: TaskGroup) -> None:
        super().__init__(window)
        self.window = window
        self._tasks = tasks
        self._progress = ""  # written by the worker, read by the timer (one str: atomic)
        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self._show_progress)
        self._running = 0
        self._probes: set[str] = set()  # probe job ids in flight (a set: worker threads add)
        self.box: QMessageBox | None = None  # the last "preflight failed" question
        self.last_result: PreflightResult | None = None
        self.setting_action = QAction("Preflight before SageMaker runs", window)
        self.setting_action.setCheckable(True)
        self.setting_action.setChecked(self.enabled)
        self.setting_action.setStatusTip(
            "Run a SageMaker job here on a slice of its data first; launch only if it reaches "
            "its first metric and checkpoint"
        )
        self.setting_action.toggled.connect(self._set_enabled)

    # -- the setting -------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.window.settings.get_int(SETTING_KEY, 1))

    @Slot(bool)
    def _set_enabled(self, on: bool) -> None:
        self.window.settings.set_int(SETTING_KEY, 1 if on else 0)
        self.window.settings.sync()

    # -- running -----------------------------------------------------------------------------

    def _run(
        self, spec: JobSpec, project: Project | None, done: Callable[[PreflightResult], None]
    ) -> None:
        from trainer_gui.services.preflight import run_preflight

        service = self.window.service
        project_id = project.id if project else None
        python = project_python(project)
        cancel = threading.Event()
        self._progress = f"Preflight of {spec.name}: starting…"

        def progress(text: str) -> None:
            self._progress = f"{spec.name}: {text}"

        def work() -> PreflightResult:
            from trainer_gui.core.aws.defaults import with_aws_defaults

            filled = with_aws_defaults(spec)  # the region names the image it would run
            return run_preflight(
                service,
                filled,
                project_id,
                python=python,
                progress=progress,
                cancel=cancel,
                submitted=self._probes.add,
            )

        def finished(result: PreflightResult) -> None:
            self._stopped()
            self._probes.discard(result.job_id or "")
            self.last_result = result
            self.window.statusBar().showMessage(result.summary().splitlines()[0], 8000)
            done(result)

        def failed(exc: BaseException, tb: str) -> None:
            self._stopped()
            self.window.report_task_failure(f"Preflight of {spec.name}", exc, tb)
            done(PreflightResult(False, f"the preflight could not run: {exc}"))

        self._running += 1
        self._timer.start()
        self._show_progress()
        self._tasks.run(work, finished, failed, cancel_event=cancel)

    def stop_all(self) -> None:
        """The window closes: probes in flight are stopped (not waited for), since nobody is
        left to hear their verdict; a probe is never worth running on."""
        for job_id in list(self._probes):
            try:
                self.window.service.stop(job_id, wait=0)
            except UserError as exc:
                log.warning("could not stop preflight %s: %s", job_id, exc)
        self._probes.clear()

    def _stopped(self) -> None:
        self._running = max(0, self._running - 1)
        if not self._running:
            self._timer.stop()

    @Slot()
    def _show_progress(self) -> None:
        if self._progress:
            self.window.statusBar().showMessage(self._progress)

    def check(self, spec: JobSpec, project: Project | None) -> None:
        """Job > Preflight: run it and show the verdict."""
        if spec.compute.backend is not Backend.SAGEMAKER:
            self.window.show_message(
                "info",
                "Preflight",
                f"{spec.name} runs on {spec.compute.backend.value}; a preflight checks a "
                "SageMaker job before it is launched. Run it here instead.",
            )
            return

        def show(result: PreflightResult) -> None:
            if self.window.closing:
                return
            level = "info" if result.ok else "warning"
            self.window.show_message(level, f"Preflight of {spec.name}", result.summary())

        self._run(spec, project, show)

    def gate(
        self,
        spec: JobSpec,
        project: Project | None,
        launch: Callable[[PreflightResult | None], None],
        refused: Callable[[], None],
    ) -> None:
        """Before a SageMaker launch: `launch` (with the preflight to link) when it passed, when
        preflights are off, or when the user says to launch anyway; else `refused`."""
        if not self.enabled or spec.compute.backend is not Backend.SAGEMAKER:
            launch(None)
            return

        def judged(result: PreflightResult) -> None:
            if self.window.closing:
                return
            if result.ok:
                launch(result)
                return
            self._ask(spec, result, launch, refused)

        self._run(spec, project, judged)

    def _ask(
        self,
        spec: JobSpec,
        result: PreflightResult,
        launch: Callable[[PreflightResult | None], None],
        refused: Callable[[], None],
    ) -> None:
        """The reason, and Launch anyway / Cancel (window-modal, not a nested event loop)."""
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(f"Preflight of {spec.name} failed")
        box.setText(
            f"{spec.name} was not launched on SageMaker: its preflight failed.\n\n{result.reason}"
        )
        box.setInformativeText(
            "\n".join(result.notes)
            + ("\n\n" if result.notes else "")
            + "Fix it and run again, or launch anyway. Job > Preflight before SageMaker runs "
            "switches the check off."
        )
        anyway = box.addButton(LAUNCH_ANYWAY, QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.setObjectName("preflight_failed")

        def clicked(button: QAbstractButton) -> None:
            if button is anyway:
                launch(result)
            else:
                refused()

        box.buttonClicked.connect(clicked)
        self.box = box
        box.open()
