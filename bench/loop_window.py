"""The edit-run loop in the window (issue 18): from the Run action to the first metric on screen.

`bench/loop.py` times `JobService.submit` to the first metric sample in the store. This one
drives the real main window as a person does: the project open, `job.yaml` selected in the
sidebar, the **Run** action triggered; then it times, for each run, when the first metric
sample is in the store and when the job's plot has drawn it (the first `set_line` with points
of one of the job's curves after its series got its first sample). The script is `loop.py`'s:
the quickstart with a metric line right after its imports, edited (a comment) before each run.
Run 1 starts the warm interpreter and is left out of the medians (as in `loop.py`).

    QT_QPA_PLATFORM=offscreen PYTHONPATH=<snapshot>/src .venv/bin/python bench/loop_window.py [--runs 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop import edit, make_project  # the same project and edit as loop.py

POLL_MS = 2
TIMEOUT = 180.0


class Driver:
    """Works the window on its own event loop: select, Run, watch; `runs` times."""

    def __init__(self, project: Path, runs: int) -> None:
        self.project = project
        self.runs = runs
        self.results: list[tuple[float, float]] = []  # (store, screen) seconds from Run
        self.window: Any = None
        self.failure: str | None = None
        self._drawn: list[tuple[float, int]] = []
        self._reset()

    def _reset(self) -> None:
        self.step = "window"
        self.job_id: str | None = None
        self.started = 0.0
        self.stored: float | None = None
        self.known: set[str] = set()

    def start(self) -> None:
        from PySide6.QtCore import QTimer

        from trainer_gui.ui.plots import curve

        real = curve.SeriesCurve.set_line
        drawn = self._drawn

        def set_line(self: Any, x: Any, y: Any) -> None:
            real(self, x, y)
            if len(x):
                drawn.append((time.perf_counter(), id(self)))

        curve.SeriesCurve.set_line = set_line  # type: ignore[method-assign]
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(POLL_MS)
        self.deadline = time.monotonic() + TIMEOUT

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            self.finish(f"timed out at step {self.step}")
            return
        try:
            getattr(self, f"step_{self.step}")()
        except Exception as exc:  # a benchmark: report, do not hang
            self.finish(f"{type(exc).__name__}: {exc}")

    def finish(self, failure: str | None = None) -> None:
        self.failure = failure
        self.timer.stop()
        if self.window is not None:
            self.window.close()

    def step_window(self) -> None:
        from PySide6.QtWidgets import QApplication, QMainWindow

        for widget in QApplication.topLevelWidgets():
            shown = isinstance(widget, QMainWindow) and widget.isVisible()
            if shown and widget.current_project() is not None:  # type: ignore[attr-defined]
                self.window = widget
                self.step = "select"

    def _action(self, text: str) -> Any:
        from PySide6.QtGui import QAction

        for action in [*self.window.actions(), *self.window.findChildren(QAction)]:
            if action.text().replace("&", "") == text:
                return action
        raise LookupError(f"the window has no {text!r} action")

    def step_select(self) -> None:
        if self.window.projects.select_spec(self.project / "job.yaml"):
            edit(self.project, len(self.results))
            self.known = set(self.window.jobs.model.job_ids())
            self._drawn.clear()
            self.started = time.perf_counter()
            self._action("Run").trigger()
            self.step = "submitted"

    def step_submitted(self) -> None:
        new = [j for j in self.window.jobs.model.job_ids() if j not in self.known]
        if new:
            self.job_id = new[0]
            self.step = "metric"

    def step_metric(self) -> None:
        now = time.perf_counter()
        if self.stored is None and self.window.store.last_metrics(self.job_id):
            self.stored = now - self.started
        panel = self.window.detail.metrics
        series = [s for s in panel.all_series() if s.job_id == self.job_id and s.n]
        if self.stored is None or not series:
            return
        curves = {
            id(c)
            for p in map(panel.plot, panel.metric_names)
            for k, c in p.curves.items()
            if k[0] == self.job_id
        }
        shown = [t for t, who in self._drawn if who in curves]
        if not shown:
            return
        self.results.append((self.stored, shown[0] - self.started))
        print(
            f"  run {len(self.results)}: first metric stored {self.stored:.3f} s, "
            f"on screen {shown[0] - self.started:.3f} s after Run",
            flush=True,
        )
        self._action("Stop").trigger()
        self.step = "ended"

    def step_ended(self) -> None:
        status = self.window.jobs.status_text(self.job_id)
        if status not in ("Completed", "Failed", "Stopped"):
            return
        if len(self.results) >= self.runs:
            self.finish()
            return
        self._reset()
        self.step = "select"
        if len(self.results) == 1:  # the warm interpreter starts with run 1: let it get ready
            from trainer_gui.core.runners import warm

            warm.POOL.wait_ready(300)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["TRAINER_GUI_JOB_HOST"] = "0"  # the window follows the job: its warm pool is here
    root = Path(tempfile.mkdtemp(prefix="loop-window-"))
    os.environ["TRAINER_GUI_HOME"] = str(root / "home")
    project = make_project(root)
    driver = Driver(project, args.runs)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from trainer_gui.cli.main import main as cli

    app = QApplication.instance() or QApplication(sys.argv[:1])
    QTimer.singleShot(0, driver.start)
    try:
        cli(["gui", str(project)])
    finally:
        del app
        shutil.rmtree(root, ignore_errors=True)
    if driver.failure:
        print(f"failed: {driver.failure}", file=sys.stderr)
        return 1
    measured = driver.results[1:] if len(driver.results) > 1 else driver.results
    stored = statistics.median(r[0] for r in measured)
    screen = statistics.median(r[1] for r in measured)
    print(
        f"warm local-process, Run action -> first metric: stored {stored:.3f} s, on screen "
        f"{screen:.3f} s (median of runs 2-{len(driver.results)}; target <= 1 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
