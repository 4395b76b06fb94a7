"""Drive the real window with no one at the keyboard: open the example, run it, report.

    TRAINER_GUI_SMOKE=1 dist/pyinstaller/trainer-gui/trainer-gui gui --example    (frozen)
    python packaging/gui_smoke.py gui --example             (the Python of an installed wheel)

The installed-wheel test (tests/install/test_wheel.py) and `make package-check` use it to prove
that what users install opens its window on the bundled example and runs it. It creates the
QApplication, puts a driver on its event loop and then calls the CLI's `main(argv)`, the very
code `trainer-gui gui --example` runs. The driver works the window as a user would, one
condition at a time (polled every 100 ms, one deadline for all):

1. the main window is shown with the example project open;
2. optionally, the project's interpreter is set through the projects panel (what the Project
   settings dialog does), for a Python that has torch;
3. `job.yaml` is selected in the sidebar and the Run action is triggered;
4. the new job shows in the jobs table; while it runs, the processes under the window's are
   sampled (psutil), to tell whether the job host (its own process) followed it;
5. the jobs table says Completed; the window is closed.

Environment: TRAINER_GUI_SMOKE_REPORT (write the JSON report there), TRAINER_GUI_SMOKE_PYTHON
(the project interpreter; default: the app's own choice), TRAINER_GUI_SMOKE_TIMEOUT (seconds,
default 300), TRAINER_GUI_SMOKE_REQUIRE_HOST=0 (do not fail when the job was followed in the
window's own process). Exit code 0 only when the job completed (by the job host, unless
that requirement is off). A message box that shows up is recorded, closed and fails the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

POLL_MS = 100
RUNNING_MARKS = ("train.py", "toolkit.py")  # the example's entry point and the training driver


def _process(pid: int) -> dict[str, Any] | None:
    try:
        import psutil

        proc = psutil.Process(pid)
        return {"pid": pid, "ppid": proc.ppid(), "cmdline": proc.cmdline()}
    except Exception:  # gone already, or no psutil: the report says what is known
        return None


class Driver:
    """A state machine on a QTimer: each step waits for its condition, then acts."""

    def __init__(self, python: str | None, timeout: float, require_host: bool) -> None:
        self.python = python
        self.deadline = time.monotonic() + timeout
        self.require_host = require_host
        self.step = "window"
        self.window: Any = None
        self.job_id: str | None = None
        self.known_jobs: set[str] = set()
        self.seen: dict[int, dict[str, Any]] = {}  # pid -> {pid, ppid, cmdline}
        self.report: dict[str, Any] = {"window_pid": os.getpid(), "steps": []}
        self.failure: str | None = None
        self.done = False

    # -- plumbing ----------------------------------------------------------------------------

    def start(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def note(self, text: str) -> None:
        self.report["steps"].append(f"{time.strftime('%H:%M:%S')} {text}")
        print(f"gui-smoke: {text}", file=sys.stderr, flush=True)

    def fail(self, why: str) -> None:
        if self.failure is None:
            self.failure = why
            self.note(f"FAILED: {why}")
        self.finish()

    def finish(self) -> None:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        if self.done:
            return
        self.done = True
        self.timer.stop()
        if self.window is not None:
            self.window.close()
        QTimer.singleShot(0, QApplication.quit)  # also when a tray icon keeps the app alive

    def tick(self) -> None:
        if self.done:
            return
        try:
            if self._message_box():
                return
            if time.monotonic() > self.deadline:
                self.fail(f"timed out in step {self.step!r}")
                return
            getattr(self, f"step_{self.step}")()
        except Exception as exc:  # a driver bug or a changed window: fail with the reason
            import traceback

            self.report["traceback"] = traceback.format_exc()
            self.fail(f"step {self.step!r} raised {exc!r}")

    def _message_box(self) -> bool:
        from PySide6.QtWidgets import QApplication, QMessageBox

        modal = QApplication.activeModalWidget()
        if isinstance(modal, QMessageBox):
            text = f"{modal.windowTitle()}: {modal.text()} {modal.informativeText()}".strip()
            modal.reject()
            self.fail(f"a message box showed up: {text}")
            return True
        return False

    # -- the steps ---------------------------------------------------------------------------

    def step_window(self) -> None:
        from PySide6.QtWidgets import QApplication, QMainWindow

        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, QMainWindow) and widget.isVisible():
                project = widget.current_project()
                if project is not None:
                    self.window = widget
                    self.project = project
                    self.report["project"] = str(project.path)
                    self.report["service"] = type(widget.service).__name__
                    self.note(f"window shown on project {project.path}")
                    self.step = "python" if self.python else "select"
                    if self.python:
                        widget.projects.change_settings_later(project.id, project.name, self.python)
                    return

    def step_python(self) -> None:
        from trainer_gui.ui.projects import project_python

        if project_python(self.window.current_project()) == self.python:
            self.note(f"project interpreter set to {self.python}")
            self.step = "select"

    def step_select(self) -> None:
        self.known_jobs = set(self.window.jobs.model.job_ids())
        spec = Path(self.project.path) / "job.yaml"
        if self.window.projects.select_spec(spec):
            self.window.projects.tree.setFocus()
            self._action("Run").trigger()
            self.note(f"selected {spec.name} in the sidebar and triggered Run")
            self.step = "submitted"

    def _action(self, text: str) -> Any:
        from PySide6.QtGui import QAction

        for action in [*self.window.actions(), *self.window.findChildren(QAction)]:
            if action.text().replace("&", "") == text:
                return action
        raise LookupError(f"the window has no {text!r} action")

    def step_submitted(self) -> None:
        self._sample()
        new = [j for j in self.window.jobs.model.job_ids() if j not in self.known_jobs]
        if new:
            self.job_id = new[0]
            self.report["job_id"] = self.job_id
            self.note(f"job {self.job_id} in the jobs table")
            self.step = "completed"

    def step_completed(self) -> None:
        self._sample()
        status = self.window.jobs.status_text(self.job_id)
        self.report["status"] = status
        if status in ("Failed", "Stopped"):
            record = self.window.store.get_job(self.job_id)
            reason = getattr(record, "failure_reason", None)
            self.fail(f"the job ended {status}: {reason}")
        elif status == "Completed":
            self.note("the jobs table shows Completed")
            self._judge_processes()
            self.finish()

    # -- processes ---------------------------------------------------------------------------

    def _sample(self) -> None:
        """The processes under the window and under the job host (its own session, not a
        child of the window: it outlives it)."""
        try:
            import psutil
        except ImportError:
            return
        roots = [psutil.Process()]
        host_pid = getattr(self.window.service, "pid", None)
        if isinstance(host_pid, int):
            with contextlib.suppress(psutil.Error):
                roots.append(psutil.Process(host_pid))
        for root in roots:
            try:
                found = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in found:
                if proc.pid not in self.seen and (info := _process(proc.pid)) is not None:
                    self.seen[proc.pid] = info

    def _judge_processes(self) -> None:
        """Who followed the job: the training processes' parent is the job host (a process
        of its own), or the window's process itself (in-process service)."""
        window_pid = os.getpid()
        host_pid = getattr(self.window.service, "pid", None)
        training = [
            p for p in self.seen.values() if any(m in " ".join(p["cmdline"]) for m in RUNNING_MARKS)
        ]
        pids = {p["pid"] for p in training}
        # The job's top process (the training driver): its parent followed the job.
        followers = sorted({p["ppid"] for p in training if p["ppid"] not in pids})
        children = [p for p in self.seen.values() if p["ppid"] == window_pid]
        host = self.seen.get(host_pid) if isinstance(host_pid, int) else None
        if host is None and followers and followers[0] != window_pid:
            host = self.seen.get(followers[0]) or _process(followers[0])
        self.report["processes"] = {
            "window_children": children,
            "training": training,
            "followers": followers,
            "job_host": host,
        }
        in_host = bool(followers) and all(
            pid != window_pid and pid == host_pid for pid in followers
        )
        self.report["followed_in_job_host"] = in_host
        self.report["job_host_pid"] = host["pid"] if host else None
        if in_host:
            self.note(
                f"the job was followed by the job host (pid {host['pid'] if host else '?'}, "
                f"{' '.join(host['cmdline']) if host else '?'}), not the window (pid {window_pid})"
            )
        elif not training:
            self.note("no training process was seen (too quick to sample?)")
        else:
            self.note(f"the job was followed by the window's own process (pid {window_pid})")
        if self.require_host and not in_host:
            self.failure = "the job was not followed by the job host process"


def run(argv: list[str]) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    os.environ.pop("TRAINER_GUI_SMOKE", None)  # the job host's own process must start normally
    report_path = os.environ.pop("TRAINER_GUI_SMOKE_REPORT", "")
    driver = Driver(
        python=os.environ.pop("TRAINER_GUI_SMOKE_PYTHON", "") or None,
        timeout=float(os.environ.pop("TRAINER_GUI_SMOKE_TIMEOUT", "300")),
        require_host=os.environ.pop("TRAINER_GUI_SMOKE_REQUIRE_HOST", "1") != "0",
    )

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    import trainer_gui
    from trainer_gui.cli.main import main

    app = QApplication.instance() or QApplication(sys.argv[:1])
    QTimer.singleShot(0, driver.start)
    code = main(argv or ["gui", "--example"])
    del app
    driver.report.update(
        app_exit_code=code,
        trainer_gui=str(Path(trainer_gui.__file__).parent),
        frozen=bool(getattr(sys, "frozen", False)),
        failure=driver.failure or (None if driver.done else "the window closed before the end"),
    )
    ok = driver.done and driver.failure is None and code == 0
    driver.report["ok"] = ok
    text = json.dumps(driver.report, indent=2, default=str)
    if report_path:
        Path(report_path).write_text(text, "utf-8")
    print(f"gui-smoke: {'ok' if ok else 'FAILED'} ({driver.report['failure'] or 'Completed'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
