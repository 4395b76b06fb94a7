"""The interface every backend implements. Qt-free: results go out through a callback."""

from __future__ import annotations

import abc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from trainer_gui.core.runners.events import (
    JobEvent,
    JobStatus,
    LogBatch,
    LogLine,
    Phase,
    PhaseChanged,
    StatusChanged,
)
from trainer_gui.core.spec.model import JobSpec

log = logging.getLogger(__name__)

EventSink = Callable[[JobEvent], None]

#: The most lines in one LogBatch: the service stores and parses a batch in one go.
BATCH_LINES = 2000


def stop_grace_seconds() -> float:
    """SIGTERM-to-SIGKILL grace. SageMaker waits 120 s; a desktop user rarely wants that."""
    try:
        return float(os.environ.get("TRAINER_GUI_STOP_GRACE", "30"))
    except ValueError:
        return 30.0


@dataclass
class JobContext:
    """What a runner needs to start or re-attach to one job."""

    job_id: str
    spec: JobSpec
    run_dir: Path
    python: str | None = None
    offsets: dict[tuple[str, str], str] = field(default_factory=dict)
    backend_ids: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None

    @property
    def stop_marker(self) -> Path:
        return self.run_dir / "stop-requested"

    @property
    def artifacts_dir(self) -> Path:
        return self.run_dir / "artifacts"

    def stop_requested(self) -> bool:
        return self.stop_marker.exists()

    def request_stop(self, reason: str = "Stopped by the user") -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.stop_marker.exists():
            self.stop_marker.write_text(reason, encoding="utf-8")

    def stop_reason(self) -> str:
        try:
            return self.stop_marker.read_text(encoding="utf-8").strip() or "Stopped by the user"
        except OSError as exc:
            log.debug("reading %s: %s", self.stop_marker, exc)
            return "Stopped by the user"


class JobHandle:
    """A job being followed in this process: wait for it, or ask it to stop."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._done = threading.Event()
        self._started = threading.Event()
        self._status: JobStatus | None = None
        self._cancel_cb: Callable[[], None] | None = None
        self._done_lock = threading.Lock()
        self._finished = False
        self._done_cbs: list[Callable[[JobHandle], None]] = []

    def _finish(self, status: JobStatus) -> None:
        self._status = status
        self._started.set()
        with self._done_lock:
            self._finished = True
            callbacks, self._done_cbs = self._done_cbs, []
        for callback in callbacks:
            callback(self)
        # Waiters wake after the callbacks: the service has let go of the job by then.
        self._done.set()

    def on_done(self, callback: Callable[[JobHandle], None]) -> None:
        """Call `callback(handle)` once following ends, whatever the status (at once if it has)."""
        with self._done_lock:
            if not self._finished:
                self._done_cbs.append(callback)
                return
        callback(self)

    def mark_started(self) -> None:
        """The job now runs on its own: this process may exit without harming it."""
        self._started.set()

    def wait_started(self, timeout: float | None = None) -> bool:
        return self._started.wait(timeout)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._cancel_cb = callback

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def status(self) -> JobStatus | None:
        return self._status

    def wait(self, timeout: float | None = None) -> JobStatus | None:
        self._done.wait(timeout)
        return self._status

    def cancel(self) -> None:
        if self._cancel_cb is not None and not self.done:
            self._cancel_cb()


def start_in_thread(
    ctx: JobContext,
    sink: EventSink,
    work: Callable[[JobContext, EventSink, JobHandle], None],
    stop: Callable[[JobContext], None],
) -> JobHandle:
    """Run `work` (start and follow a job) on a daemon thread; the handle cancels via `stop`."""
    handle = JobHandle(ctx.job_id)
    handle.on_cancel(lambda: stop(ctx))
    threading.Thread(
        target=work, args=(ctx, sink, handle), name=f"job-{ctx.job_id}", daemon=True
    ).start()
    return handle


def follow_in_thread(
    ctx: JobContext,
    sink: EventSink,
    follow: Callable[[JobContext, EventSink, JobHandle], None],
    stop: Callable[[JobContext], None],
) -> JobHandle:
    """Re-attach: `follow` a job that already runs on its own, on a daemon thread."""
    handle = JobHandle(ctx.job_id)
    handle.on_cancel(lambda: stop(ctx))
    handle.mark_started()
    threading.Thread(
        target=follow, args=(ctx, sink, handle), name=f"job-{ctx.job_id}", daemon=True
    ).start()
    return handle


class Runner(abc.ABC):
    """One backend. `submit` starts a job; `attach` resumes following one started earlier."""

    backend: ClassVar[str]

    def check(self, spec: JobSpec, python: str | None = None) -> None:  # noqa: B027
        """Raise a UserError before anything starts if this backend cannot run `spec`."""

    @abc.abstractmethod
    def submit(self, ctx: JobContext, sink: EventSink) -> JobHandle: ...

    @abc.abstractmethod
    def attach(self, ctx: JobContext, sink: EventSink) -> JobHandle:
        """Follow a job started by an earlier process; finalise it if it ended meanwhile."""

    @abc.abstractmethod
    def stop(self, ctx: JobContext) -> None:
        """Ask the job to stop (from any process); the follower records the final status."""

    def cleanup_orphans(self, active_job_ids: set[str]) -> list[str]:
        """Remove what this backend left running for jobs the store no longer tracks."""
        del active_job_ids
        return []


def max_runtime_reason(spec: JobSpec) -> str:
    """SageMaker's secondary status for a job it stopped at MaxRuntimeInSeconds."""
    return f"MaxRuntimeExceeded: the job ran longer than {spec.max_runtime_seconds} s"


def emit_status(sink: EventSink, job_id: str, status: JobStatus, message: str = "") -> None:
    sink(StatusChanged(job_id, status, message, time.time()))


def emit_phase(sink: EventSink, job_id: str, phase: Phase, detail: str = "") -> None:
    """Say what the run does now, so nobody stares at an empty log while it starts."""
    sink(PhaseChanged(job_id, phase, time.time(), detail))


def emit_logs(
    sink: EventSink,
    job_id: str,
    lines: list[LogLine],
    offsets: dict[tuple[str, str], str],
    marks: list[str] | None = None,
) -> None:
    """Send `lines` so that every batch carries the offsets of exactly the lines in it.

    `marks[i]` is where line i's own (host, stream) can resume just past it; with marks, lines
    go out in batches of at most BATCH_LINES, each with the marks of its last line per stream
    (the last batch also with `offsets`, which may reach past trailing blank lines). The
    service commits a batch's lines, samples and offsets in one transaction, so a process that
    dies between batches leaves offsets that match what was stored: the next follower neither
    skips nor repeats a line. A source without per-line marks can only resume at the end of a
    read, so its read goes out as one batch."""
    if marks is None:
        sink(LogBatch(job_id, lines, offsets))
        return
    if len(marks) != len(lines):
        raise ValueError(f"{len(lines)} lines but {len(marks)} offsets")
    total = len(lines)
    for start in range(0, max(total, 1), BATCH_LINES):
        stop = min(start + BATCH_LINES, total)
        batch = lines[start:stop]
        covered = {
            (ln.host, ln.stream): mark for ln, mark in zip(batch, marks[start:stop], strict=True)
        }
        if stop >= total:
            covered.update(offsets)
        sink(LogBatch(job_id, batch, covered))
