"""Benchmark: does the window stay responsive while a job floods it with metric lines?

A real job (host-process backend, followed the way the app follows jobs: by the job host
process, `trainer_gui.services.job_host`) prints `--rate` metric lines per second for `--seconds`; a
window with a `LogView` and a `MetricsPanel`, fed through a `JobEventBridge`, shows them live.
The process is set up as the app sets itself up once its window is shown
(`tune_for_responsiveness`: gc.freeze, GC thresholds, 1 ms switch interval). A 1 ms `QTimer`
heartbeat on the GUI thread records every gap in the event loop; the longest gap under load is
compared with the longest gap of the same window idle. Then the redraw of a 1,000,000-point
series is timed: the panel's `redraw()` (`setData`) plus a forced repaint (`grab()`).

`--service in-process` follows the job in this process instead (what the CLI does, and the app
did before the job host). With `--source synthetic` the same event rate is fed to the bridge
from a producer thread, in columns as the job host delivers it (no subprocess, no file
tailing, no store), which isolates the UI side.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_responsiveness.py [--seconds 30 --rate 20000]
    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_responsiveness.py --loads 0,2,4 --repeat 10

`--loads 0,2,4` repeats the measurement (`--repeat` runs each) with 0, 2 and 4 extra busy-loop
processes competing for the CPUs (load = N busy loops), and prints the min, median and max of
each run's longest gap per load.

Targets: longest stall under load < 50 ms in every run; 1M-point redraw < 16 ms (median).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import numpy as np
from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import QApplication, QSplitter

from trainer_gui.core.runners.events import JobStatus, StatusChanged
from trainer_gui.services.live_data import LogChunk, LogData, MetricChunk, MetricData
from trainer_gui.ui.app import tune_for_responsiveness
from trainer_gui.ui.bridge import JobEventBridge
from trainer_gui.ui.gcguard import GuiThreadCollector
from trainer_gui.ui.log_view import LogView
from trainer_gui.ui.plots import MetricsPanel

STALL_TARGET_MS = 50.0
REDRAW_TARGET_MS = 16.0
IDLE_SECONDS = 5.0
REDRAW_POINTS = 1_000_000
REDRAW_REPEATS = 30

# The job: `rate` lines per second in 10 ms ticks, one metric per line, a stderr line now and
# then (so the log view colours some lines), the pace kept against the clock.
JOB_SCRIPT = textwrap.dedent(
    """
    import math, sys, time
    rate, seconds = int(sys.argv[1]), float(sys.argv[2])
    out, err = sys.stdout, sys.stderr
    start = time.monotonic()
    step, total = 0, int(seconds * rate)
    while step < total:  # every line, even if a busy machine made us late
        elapsed = time.monotonic() - start
        due = min(int(elapsed * rate) + rate // 100, total)
        if due > step:
            out.write("".join(
                f"step={i} loss={1.0 / (1.0 + i * 1e-4) + 0.01 * math.sin(i):.6f}\\n"
                for i in range(step, due)
            ))
            out.flush()
            if step // 10000 != due // 10000:
                err.write(f"warning: checkpoint at step {due}\\n")
                err.flush()
            step = due
        time.sleep(0.01)
    print(f"done {step} lines", flush=True)
    """
)


class TimedApp(QApplication):
    """`--events`: times every event the GUI thread's event loop dispatches (its outermost
    `notify`), CPU and wall, so a run can print the longest ones and what they were. Entering
    Python for each event costs a few microseconds and takes the GIL: measure the gaps
    without it."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        self.recording = False
        self.events: list[tuple[float, float, float, str]] = []  # (start, wall, cpu, what)
        self._depth = 0

    def notify(self, receiver: QObject, event: QEvent, /) -> bool:
        if not self.recording or self._depth:
            return super().notify(receiver, event)
        self._depth += 1
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return super().notify(receiver, event)
        finally:
            self._depth -= 1
            wall = time.perf_counter() - start
            if wall > 0.002:
                what = f"{type(receiver).__name__} {event.type().name}"
                if event.type() == QEvent.Type.Timer and receiver.parent() is not None:
                    what += f" of {type(receiver.parent()).__name__}"
                self.events.append(
                    (start, wall * 1000.0, (time.thread_time() - cpu) * 1000.0, what)
                )


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
        self.ticks = []
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        t = self.ticks
        return [(b - a) * 1000.0 for a, b in itertools.pairwise(t)]


class Counter(QObject):
    """Counts what reaches the widgets and when the last of it arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = 0
        self.samples = 0
        self.statuses: list[str] = []
        self.last_data = 0.0

    @Slot(str, object)
    def on_logs(self, _job: str, lines: LogChunk) -> None:
        self.lines += len(lines)
        self.last_data = time.perf_counter()

    @Slot(str, object)
    def on_metrics(self, _job: str, samples: MetricChunk) -> None:
        self.samples += len(samples)
        self.last_data = time.perf_counter()

    @Slot(str, str, str)
    def on_status(self, _job: str, status: str, _message: str) -> None:
        self.statuses.append(status)


class FullCollections:
    """The full (generation 2) garbage collections while it lives, and how long each took;
    `young`: the same of generations 0 and 1."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.young: list[float] = []
        self._began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        ms = (time.perf_counter() - self._began) * 1000.0
        (self.pauses if info["generation"] == 2 else self.young).append(ms)

    def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)


def run_loop(until: Callable[[], bool], timeout: float) -> None:
    """Run the GUI event loop until `until()` holds (checked every 20 ms) or `timeout` passes."""
    loop = QEventLoop()
    deadline = time.perf_counter() + timeout
    check = QTimer()
    check.setInterval(20)

    def poll() -> None:
        if until() or time.perf_counter() > deadline:
            loop.quit()

    check.timeout.connect(poll)
    check.start()
    loop.exec()
    check.stop()


def summarize(gaps: list[float]) -> dict[str, Any]:
    if not gaps:
        return {"max": 0.0, "p99": 0.0, "p50": 0.0, "over_50": 0.0, "ticks": 0.0, "worst": []}
    ordered = sorted(gaps)
    # When the five longest gaps began, in seconds from the start of the measurement.
    starts = list(itertools.accumulate(gaps, initial=0.0))
    worst = sorted(range(len(gaps)), key=gaps.__getitem__)[-5:][::-1]
    return {
        "max": ordered[-1],
        "p99": ordered[int(0.99 * (len(ordered) - 1))],
        "p50": ordered[len(ordered) // 2],
        "over_50": float(sum(g > STALL_TARGET_MS for g in gaps)),
        "ticks": float(len(gaps)),
        "worst": [(gaps[i], starts[i] / 1000.0) for i in worst],
    }


class SyntheticService:
    """Feeds lines and samples at `rate` a second from a producer thread, in columns as the
    job host delivers them (a batch of 2,000 lines every 100 ms, like the runner's polls)."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[Any], None]] = []

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def fire(self, event: Any) -> None:
        for listener in list(self.listeners):
            listener(event)

    def run(self, job_id: str, rate: int, seconds: float, done: threading.Event) -> None:
        self.fire(StatusChanged(job_id, JobStatus.TRAINING, "Training in progress"))
        batch = max(1, rate // 10)
        # One batch of log rows, made once: the window's cost does not depend on the text.
        template = [
            ("algo-1", "stdout", f"step={i} loss={1.0 / (1.0 + i * 1e-4):.6f}")
            for i in range(batch)
        ]
        start = time.monotonic()
        step = 0
        total = int(rate * seconds)
        while step < total:
            elapsed = time.monotonic() - start
            due = min(int(elapsed * rate) + batch, total)
            if due > step:
                now = time.time()
                n = due - step
                rows = template[:n] if n <= batch else template * (n // batch + 1)
                times = array("d", [now]) * n
                self.fire(LogData(job_id, LogChunk.from_rows(rows[:n], times)))
                steps = np.arange(step, due, dtype=np.float64)
                values = 1.0 / (1.0 + steps * 1e-4)
                walls = np.full(n, now)
                chunk = MetricChunk(
                    {("algo-1", "loss"): (steps, walls, values)}, {"loss": values[-1]}
                )
                self.fire(MetricData(job_id, chunk))
                step = due
            time.sleep(0.1)
        self.fire(StatusChanged(job_id, JobStatus.COMPLETED, "done"))
        done.set()


def build_window() -> tuple[QSplitter, LogView, MetricsPanel]:
    window = QSplitter(Qt.Orientation.Vertical)
    log_view = LogView()
    panel = MetricsPanel()
    window.addWidget(panel)
    window.addWidget(log_view)
    window.resize(1400, 900)
    window.show()
    return window, log_view, panel


def measure_load(args: argparse.Namespace, app: QApplication) -> dict[str, Any]:
    window, log_view, panel = build_window()
    heartbeat = Heartbeat()
    counter = Counter()
    home = Path(tempfile.mkdtemp(prefix="trainer-gui-bench-"))
    os.environ["TRAINER_GUI_HOME"] = str(home)
    service: Any
    store = None
    if args.source == "job":
        from trainer_gui.core.runners.local_process import LocalProcessRunner
        from trainer_gui.core.store import Store
        from trainer_gui.services.job_host import JobHostClient
        from trainer_gui.services.jobs import JobService

        store = Store()
        if args.service == "host":
            service = JobHostClient(store)
            service.ping()  # the child is up before anything is measured
        else:
            service = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    else:
        service = SyntheticService()
    bridge = JobEventBridge(service)
    bridge.sig_logs.connect(log_view.append_lines)
    bridge.sig_metrics.connect(panel.add_samples)
    bridge.sig_logs.connect(counter.on_logs)
    bridge.sig_metrics.connect(counter.on_metrics)
    bridge.sig_status.connect(counter.on_status)

    # Idle: the same window, nothing arriving.
    run_loop(lambda: False, 0.5)
    collector = None
    if not args.no_tuning:
        tune_for_responsiveness()  # what the app does once its window is up
        collector = GuiThreadCollector(app)  # and cyclic GC on the GUI thread only
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    heartbeat.start()
    run_loop(lambda: False, min(IDLE_SECONDS, args.seconds))
    idle = summarize(heartbeat.stop())

    expected = int(args.rate * args.seconds)
    job_id = "bench-synthetic"
    done = threading.Event()
    if args.source == "job":
        from trainer_gui.core.spec import spec_from_dict

        script = home / "flood.py"
        script.write_text(JOB_SCRIPT, encoding="utf-8")
        spec = spec_from_dict(
            {
                "name": "gui-bench",
                "source": {
                    "command": [sys.executable, str(script), str(args.rate), str(args.seconds)]
                },
            }
        )
        job_id = f"gui-bench-{int(time.time())}"
        log_view.set_job(job_id, None)
        panel.set_jobs([job_id])
        handle = service.submit(spec, job_id=job_id)

        def wait_for_job() -> None:
            handle.wait()
            done.set()

        threading.Thread(target=wait_for_job, daemon=True).start()
    else:
        log_view.set_job(job_id, None)
        panel.set_jobs([job_id])
        producer = threading.Thread(
            target=service.run, args=(job_id, args.rate, args.seconds, done), daemon=True
        )
        producer.start()

    # Loaded: from the first line on screen until the job ends and its last line is shown.
    run_loop(lambda: counter.lines > 0 or done.is_set(), 120)
    started = time.perf_counter()
    full_gcs = FullCollections()
    if isinstance(app, TimedApp):
        app.events, app.recording = [], True
    heartbeat.start()
    run_loop(lambda: done.is_set(), args.seconds * 4 + 120)
    job_done = time.perf_counter()
    run_loop(
        lambda: min(counter.lines, counter.samples) >= expected and bridge.pending_count() == 0,
        60,
    )
    run_loop(lambda: False, 0.3)  # the last redraw ticks
    loaded = summarize(heartbeat.stop())
    full_gcs.stop()
    events: list[tuple[float, float, float, str]] = []
    if isinstance(app, TimedApp):
        app.recording = False
        events = [(at - started, wall, cpu, what) for at, wall, cpu, what in app.events]
    shown = time.perf_counter()

    result = {
        "idle": idle,
        "loaded": loaded,
        "lines": counter.lines,
        "samples": counter.samples,
        "expected": expected,
        "duration": job_done - started,
        "drain": max(0.0, counter.last_data - job_done),
        "rate_seen": counter.lines / max(1e-9, counter.last_data - started),
        "statuses": counter.statuses,
        "log_lines_kept": log_view.line_count(),
        "points_kept": sum(s.n for s in panel.all_series()),
        "wall": shown - started,
        "full_gcs": full_gcs.pauses,
        "young_gcs": full_gcs.young,
        "events": sorted(events, key=lambda e: -e[1])[:10],
    }
    bridge.close()
    if collector is not None:
        collector.stop()
    if store is not None:
        service.shutdown()
        store.close()
    window.close()
    window.deleteLater()
    app.processEvents()
    return result


def measure_redraw(app: QApplication, points: int) -> dict[str, float]:

    panel = MetricsPanel()
    panel.resize(1400, 900)
    panel.show()
    app.processEvents()
    panel.set_jobs(["big"])
    rng = np.random.default_rng(0)
    steps = np.arange(points, dtype=np.float64)
    values = np.sin(steps / 5000.0) + rng.normal(0.0, 0.1, points)
    panel._extend("big", "algo-1", "loss", steps, 1e9 + steps * 0.01, values)
    plot = panel.plot_widget("loss")
    panel.redraw()
    plot.grab()  # first draw: fonts, caches
    app.processEvents()

    def timed(extra: int, paint: Callable[[], object] = plot.grab) -> tuple[float, float]:
        n = panel.series("big", "algo-1", "loss").n
        more = np.arange(n, n + extra, dtype=np.float64)
        if extra:
            panel._extend("big", "algo-1", "loss", more, 1e9 + more * 0.01, np.sin(more / 5000.0))
        else:
            panel._dirty.add(("big", "algo-1", "loss"))
        t, cpu = time.perf_counter(), time.thread_time()
        panel.redraw()  # setData on the whole series
        paint()  # a forced repaint of the plot
        return (time.perf_counter() - t) * 1000.0, (time.thread_time() - cpu) * 1000.0

    def walls(runs: list[tuple[float, float]]) -> list[float]:
        return [w for w, _ in runs]

    static = walls([timed(0) for _ in range(REDRAW_REPEATS)])
    growing_runs = [timed(1000) for _ in range(REDRAW_REPEATS)]
    growing = walls(growing_runs)
    repaint = walls([timed(1000, plot.viewport().repaint) for _ in range(REDRAW_REPEATS)])
    panel.set_smoothing(0.9)
    smoothed = walls([timed(1000) for _ in range(REDRAW_REPEATS)])
    panel.close()
    panel.deleteLater()
    app.processEvents()
    return {
        "static_median": statistics.median(static),
        "static_max": max(static),
        "growing_median": statistics.median(growing),
        "growing_max": max(growing),
        "smoothed_median": statistics.median(smoothed),
        "smoothed_max": max(smoothed),
        "repaint_median": statistics.median(repaint),
        "repaint_max": max(repaint),
        "growing_cpu": statistics.median(c for _, c in growing_runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=20_000, help="metric lines per second")
    parser.add_argument("--source", choices=["job", "synthetic"], default="job")
    parser.add_argument("--points", type=int, default=REDRAW_POINTS)
    parser.add_argument(
        "--service",
        choices=["host", "in-process"],
        default="host",
        help="follow the job in the job host process, as the app does (default), or in this "
        "process, as the app did before",
    )
    parser.add_argument(
        "--no-tuning",
        action="store_true",
        help="skip tune_for_responsiveness() (gc.freeze, GC thresholds, 1 ms switch interval)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run the load measurement N times (a fresh window and job each time)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="S",
        help="sys.setswitchinterval(S) after the tuning (the app uses 0.001, Python's default "
        "is 0.005): how long the GUI thread may wait for the GIL while another thread runs",
    )
    parser.add_argument(
        "--loads",
        default="",
        metavar="N,N,...",
        help="run --repeat runs with each number of extra busy-loop processes (e.g. 0,2,4) "
        "and print the spread of the longest gap per load",
    )
    parser.add_argument(
        "--same-session",
        action="store_true",
        help="start the busy loops in this process's session (Linux: the window's own "
        "scheduling autogroup) instead of one session each, as other programs run",
    )
    parser.add_argument(
        "--no-redraw", action="store_true", help="skip the 1M-point redraw measurement"
    )
    parser.add_argument(
        "--events",
        action="store_true",
        help="time every event of the GUI thread under the flood and print the ten longest "
        "(CPU and wall time, what it was); slows the GUI thread a little",
    )
    args = parser.parse_args(argv)

    app = QApplication.instance() or (TimedApp if args.events else QApplication)(sys.argv[:1])
    assert isinstance(app, QApplication)
    loads: list[dict[str, Any]] = []
    busy_counts = [int(v) for v in args.loads.split(",") if v.strip()] or [-1]
    spreads: list[tuple[int, list[float], list[float], list[float]]] = []
    for busy in busy_counts:
        hogs = _start_busy_loops(max(0, busy), args.same_session)
        try:
            these: list[dict[str, Any]] = []
            for run in range(max(1, args.repeat)):
                before = _load_average()
                load = measure_load(args, app)
                load["load_before"], load["load_after"] = before, _load_average()
                load["busy"] = busy
                these.append(load)
                _print_load(args, run, load)
        finally:
            _stop_busy_loops(hogs)
        loads.extend(these)
        if busy >= 0:
            spreads.append(
                (
                    busy,
                    [ld["loaded"]["max"] for ld in these],
                    [ld["idle"]["max"] for ld in these],
                    [ld["load_before"] for ld in these],
                )
            )
            _print_spread(*spreads[-1])
    for spread in spreads:
        _print_spread(*spread)
    if args.no_redraw:
        stalls = [load["loaded"]["max"] for load in loads]
        complete = all(min(ld["lines"], ld["samples"]) >= ld["expected"] for ld in loads)
        ok = max(stalls) < STALL_TARGET_MS
        print(
            f"gui_responsiveness: longest stall {statistics.median(stalls):.1f} ms median, "
            f"{max(stalls):.1f} ms worst of {len(stalls)} run(s) (target < "
            f"{STALL_TARGET_MS:.0f} ms in every run: {'PASS' if ok else 'FAIL'}); lines "
            f"{'all' if complete else 'NOT all'} delivered"
        )
        return 0 if ok and complete else 1
    before = _load_average()
    redraw = measure_redraw(app, args.points)
    after = _load_average()
    print(
        f"  redraw {args.points} points (redraw() + grab(), median of {REDRAW_REPEATS}; load "
        f"{before:.1f} -> {after:.1f}): static {redraw['static_median']:.1f} ms "
        f"(max {redraw['static_max']:.1f}), growing {redraw['growing_median']:.1f} ms "
        f"(max {redraw['growing_max']:.1f}), smoothed {redraw['smoothed_median']:.1f} ms "
        f"(max {redraw['smoothed_max']:.1f}); growing with repaint() instead of grab(): "
        f"{redraw['repaint_median']:.1f} ms (max {redraw['repaint_max']:.1f}); CPU time of the "
        f"growing redraw: {redraw['growing_cpu']:.1f} ms"
    )
    stalls = [load["loaded"]["max"] for load in loads]
    worst = max(stalls)
    stall_ok = worst < STALL_TARGET_MS
    redraw_ok = redraw["growing_median"] < REDRAW_TARGET_MS
    complete = all(min(load["lines"], load["samples"]) >= load["expected"] for load in loads)
    idle_worst = max(load["idle"]["max"] for load in loads)
    print(
        f"gui_responsiveness: longest stall {statistics.median(stalls):.1f} ms median, "
        f"{worst:.1f} ms worst of {len(stalls)} run(s) vs {idle_worst:.1f} ms idle (target < "
        f"{STALL_TARGET_MS:.0f} ms: {'PASS' if stall_ok else 'FAIL'}); 1M-point redraw "
        f"{redraw['growing_median']:.1f} ms median (target < {REDRAW_TARGET_MS:.0f} ms: "
        f"{'PASS' if redraw_ok else 'FAIL'}); lines {'all' if complete else 'NOT all'} delivered"
    )
    return 0 if stall_ok and redraw_ok and complete else 1


def _start_busy_loops(count: int, same_session: bool = False) -> list[subprocess.Popen[bytes]]:
    """`count` processes that spin on a CPU each until stopped (the "load").

    Each in a session of its own, as other programs on the machine are (Linux puts each
    session in its own scheduling autogroup, and shares the CPUs between groups first);
    `same_session`: in the benchmark's session, so they take their CPU from the window's
    own share (a harsher case than a user's machine has).
    """
    code = "while True: pass"
    return [
        subprocess.Popen([sys.executable, "-c", code], start_new_session=not same_session)
        for _ in range(count)
    ]


def _stop_busy_loops(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.kill()
    for hog in hogs:
        hog.wait()


def _print_spread(busy: int, stalls: list[float], idle: list[float], before: list[float]) -> None:
    """The spread of the runs' longest gaps at one load, and the machine's load average
    before each run (what other programs made, the busy loops' share not yet in it)."""
    held = sum(s < STALL_TARGET_MS for s in stalls)
    print(
        f"load {busy} (busy loops): longest gap under the flood min {min(stalls):.1f} / median "
        f"{statistics.median(stalls):.1f} / max {max(stalls):.1f} ms over {len(stalls)} runs, "
        f"< {STALL_TARGET_MS:.0f} ms in {held} of {len(stalls)}; idle window min "
        f"{min(idle):.1f} / median {statistics.median(idle):.1f} / max {max(idle):.1f} ms; "
        f"load average before the runs {min(before):.1f}-{max(before):.1f}"
    )
    sys.stdout.flush()


def _load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _print_load(args: argparse.Namespace, run: int, load: dict[str, Any]) -> None:
    tuning = "off" if args.no_tuning else "on"
    busy = "" if load["busy"] < 0 else f" at load {load['busy']}"
    print(
        f"run {run + 1}{busy}: source {args.source}, service {args.service}, {args.rate} lines/s for "
        f"{args.seconds:g} s; tuning {tuning}, switch interval "
        f"{sys.getswitchinterval() * 1000:g} ms; {os.cpu_count()} CPUs, load average "
        f"{load['load_before']:.1f} before, {load['load_after']:.1f} after"
    )
    print(
        f"  delivered: {load['lines']}/{load['expected']} lines, {load['samples']} samples, "
        f"{load['rate_seen']:.0f} lines/s seen, last line {load['drain']:.2f} s after the job "
        f"ended; kept: {load['log_lines_kept']} log lines, {load['points_kept']} points; "
        f"full GCs under the flood: {len(load['full_gcs'])} "
        f"({', '.join(f'{ms:.0f}' for ms in load['full_gcs']) or '-'} ms), young ones: "
        f"{len(load['young_gcs'])} (longest {max(load['young_gcs'], default=0.0):.1f} ms)"
    )
    for at, wall, cpu, what in load["events"]:
        print(f"  event at {at:5.2f} s: {wall:6.1f} ms wall, {cpu:5.1f} ms CPU: {what}")
    for name in ("idle", "loaded"):
        s = load[name]
        worst = ", ".join(f"{gap:.0f} ms at {at:.1f} s" for gap, at in s["worst"])
        print(
            f"  {name:6s} longest stall {s['max']:6.1f} ms, p99 {s['p99']:5.1f} ms, "
            f"p50 {s['p50']:4.1f} ms, ticks {int(s['ticks'])}, gaps > 50 ms: "
            f"{int(s['over_50'])}; longest: {worst}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
