"""Benchmark: does the runs table stay responsive with 5,000 runs in a project?

A project of `--runs` stored runs (10 hyperparameters and 5 metrics each, `--samples` samples a
metric, a third of the runs tagged) is written straight through the store into a temporary
TRAINER_GUI_HOME. Then the runs table (`JobsView`, loaded the way the main window loads it: the
snapshot read on a worker thread, applied on the GUI thread) is opened offscreen, sorted by a
metric, grouped by tag and filtered with an expression. A 1 ms heartbeat timer on the GUI thread
records every gap in the event loop; each operation's longest gap is compared with the longest
gap of the same window idle.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/runs_table.py [--runs 5000 --samples 20]

Target: every operation's longest gap under 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import QApplication

TARGET_MS = 100.0
HPS = ("lr", "batch_size", "epochs", "momentum", "weight_decay", "dropout", "optimizer",
       "warmup", "seed", "hidden")  # fmt: skip
METRICS = ("train_loss", "val_loss", "test_acc", "f1", "lr_now")
TAGS = ("baseline", "ablation", "final")


class Heartbeat(QObject):
    """A 1 ms precise timer on the GUI thread; the gaps between its ticks are the stalls."""

    def __init__(self) -> None:
        super().__init__()
        self.ticks: list[float] = []
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(1)
        self.timer.timeout.connect(self._tick)

    @Slot()
    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())

    def start(self) -> None:
        self.ticks = [time.perf_counter()]
        self.timer.start()

    def stop(self) -> float:
        """The longest gap, in ms, up to now."""
        self.timer.stop()
        self.ticks.append(time.perf_counter())
        return max((b - a) * 1000.0 for a, b in itertools.pairwise(self.ticks))


def run_loop(seconds: float, until: Callable[[], bool] | None = None) -> None:
    loop = QEventLoop()
    deadline = time.perf_counter() + seconds
    check = QTimer()
    check.setInterval(5)

    def poll() -> None:
        if (until is not None and until()) or time.perf_counter() > deadline:
            loop.quit()

    check.timeout.connect(poll)
    check.start()
    loop.exec()
    check.stop()


def fill(home: Path, runs: int, samples: int) -> int:
    """The project and its runs, written straight through the store; returns the project id."""
    from trainer_gui.core.metrics.types import MetricSample
    from trainer_gui.core.store import Store

    rng = random.Random(7)
    store = Store(home / "trainer-gui.sqlite3")
    folder = home / "project"
    folder.mkdir()
    project = store.add_project("bench", str(folder)).id
    started = time.perf_counter()
    for i in range(runs):
        hps = {
            "lr": round(10 ** rng.uniform(-5, -1), 6),
            "batch_size": rng.choice([16, 32, 64, 128]),
            "epochs": rng.randint(1, 50),
            "momentum": round(rng.uniform(0.5, 0.99), 3),
            "weight_decay": round(10 ** rng.uniform(-6, -2), 7),
            "dropout": round(rng.uniform(0, 0.5), 2),
            "optimizer": rng.choice(["sgd", "adam", "adamw"]),
            "warmup": rng.randint(0, 1000),
            "seed": i,
            "hidden": rng.choice([64, 128, 256, 512]),
        }
        lines = "".join(f"  {k}: {v}\n" for k, v in hps.items())
        spec = f"name: run-{i % 50}\nhyperparameters:\n{lines}"
        job_id = f"run-{i:05d}"
        store.create_job(
            job_id, f"run-{i % 50}", "local-process", spec, str(folder), project, created_at=i
        )
        batch = [
            MetricSample(name, rng.random() * (1 + step), "algo-1", float(i) + step, step)
            for step in range(samples)
            for name in METRICS
        ]
        store.record_batch(job_id, {}, batch)
        if i % 3 == 0:
            store.set_run_tags(job_id, [TAGS[i % len(TAGS)]])
    print(f"filled {runs} runs, {runs * samples * len(METRICS)} samples "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    store.close()
    return project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=20, help="samples per metric per run")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of idle window")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="runs-table-bench-") as tmp:
        home = Path(tmp)
        os.environ["TRAINER_GUI_HOME"] = str(home)
        project = fill(home, args.runs, args.samples)

        from trainer_gui.core.store import Store
        from trainer_gui.ui.app import tune_for_responsiveness
        from trainer_gui.ui.jobs_table import JobsView, RunsSnapshot, load_runs
        from trainer_gui.ui.tasks import TaskGroup

        app = QApplication.instance() or QApplication(sys.argv)
        store = Store(home / "trainer-gui.sqlite3")
        view = JobsView(store=store)
        view.resize(1400, 800)
        view.show()
        tune_for_responsiveness()
        run_loop(0.3)
        beat = Heartbeat()
        results: dict[str, float] = {}

        beat.start()
        run_loop(args.idle)
        results["idle"] = beat.stop()

        # Open: the snapshot read on a worker (as the main window does), applied here.
        loaded: list[RunsSnapshot] = []
        tasks = TaskGroup()
        read_started = time.perf_counter()
        beat.start()
        tasks.run(lambda: load_runs(store, project), loaded.append)
        run_loop(120, lambda: bool(loaded))
        read_s = time.perf_counter() - read_started
        applied = time.perf_counter()
        view.set_runs(loaded[0])
        apply_ms = (time.perf_counter() - applied) * 1000
        run_loop(0.3)
        results["open"] = beat.stop()
        assert view.proxy.rowCount() == args.runs, view.proxy.rowCount()

        def measure(name: str, action: Callable[[], None]) -> None:
            beat.start()
            run_loop(0.1)
            started = time.perf_counter()
            action()
            took = (time.perf_counter() - started) * 1000
            run_loop(0.3)
            results[name] = beat.stop()
            print(f"  {name:<22} action {took:6.1f} ms")

        # The floor: one full repaint of the table, nothing changed (Qt's painting of the
        # visible cells and the model's data() for them).
        measure("repaint only", view.table.viewport().update)
        view.toggle_column("best:val_loss", True)
        best = view.model.column_of("best:val_loss")
        last = view.model.column_of("last:test_acc")
        assert best is not None and last is not None
        measure(
            "sort by a metric",
            lambda: view.table.sortByColumn(best, Qt.SortOrder.AscendingOrder),
        )
        measure(
            "sort by it, descending",
            lambda: view.table.sortByColumn(best, Qt.SortOrder.DescendingOrder),
        )
        measure(
            "group by tag",
            lambda: view.group_combo.setCurrentIndex(view.group_combo.findData("tag")),
        )

        def filter_runs() -> None:
            view.expr_edit.setText('lr < 0.01 and test_acc > 0.5 and tag == "baseline"')
            assert view.apply_expression()

        measure("filter expression", filter_runs)
        shown = view.proxy.rowCount()
        measure("clear the filter", lambda: (view.expr_edit.clear(), view.apply_expression()))
        view.model.set_group_by(None)
        last = view.model.column_of("last:test_acc")
        assert last is not None
        measure(
            "sort by last test_acc",
            lambda: view.table.sortByColumn(last, Qt.SortOrder.DescendingOrder),
        )
        # A refresh with nothing changed (what the 2 s store poll causes after a write).
        again: list[RunsSnapshot] = []
        tasks.run(lambda: load_runs(store, project), again.append)
        run_loop(120, lambda: bool(again))
        measure("refresh (unchanged)", lambda: view.set_runs(again[0]))

        print(f"runs {args.runs}, samples/metric {args.samples}; snapshot read on a worker "
              f"{read_s:.2f} s, applied on the GUI thread {apply_ms:.0f} ms; "
              f"filter kept {shown} runs")  # fmt: skip
        print(f"{'operation':<24} longest event-loop gap")
        failed = False
        for name, gap in results.items():
            over = name != "idle" and gap > TARGET_MS
            failed |= over
            print(f"  {name:<22} {gap:7.1f} ms{'  OVER TARGET' if over else ''}")
        view.close()
        store.close()
        del app
        return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
