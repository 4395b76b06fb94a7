"""Follow a job on this machine to its end, then finish it: the same for every local backend.

A backend supplies a `Watch` (how it learns the job still runs, reads its logs and collects
the hosts' exit codes); `follow_and_finish` does the rest: the max_runtime deadline, packing
model.tar.gz and output.tar.gz the way SageMaker does, the copy to a local `output_path`, and
the final status (Completed, Stopped or Failed with a reason).
"""

from __future__ import annotations

import abc
import errno
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainer_gui.core import contract
from trainer_gui.core.contract import HostLayout
from trainer_gui.core.errors import UserError
from trainer_gui.core.runners.artifacts import pack_job
from trainer_gui.core.runners.base import (
    EventSink,
    JobContext,
    JobHandle,
    emit_phase,
    emit_status,
    max_runtime_reason,
)
from trainer_gui.core.runners.events import ArtifactReady, JobStatus, Phase
from trainer_gui.core.runners.sysmetrics import Sampler, SideMetrics

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1

#: What a runner started, written into the run folder before the job can run on its own, so a
#: process that dies at any point of the start leaves enough to find the job again.
START_MARKER = "started.json"

#: The reason a job gets when the process starting it died before it ran.
STARTING_DIED = "the app stopped while the job was starting; nothing of it runs, start it again"

_locks_guard = threading.Lock()
_job_locks: dict[str, threading.Lock] = {}


def job_lock(job_id: str) -> threading.Lock:
    """One finisher per job in this process: a job re-attached by a second service is also
    still followed by the first one's thread until it ends, and only one may pack it."""
    with _locks_guard:
        return _job_locks.setdefault(job_id, threading.Lock())


class DiskFull(UserError):
    """A write failed because the disk is full: named, so the job fails with a reason a user
    can act on instead of a traceback."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(f"the disk holding {self.path} is full (no space left on device)")


def disk_full(exc: BaseException, path: str | Path) -> DiskFull | None:
    """`exc` as a DiskFull when it says the disk is full (ENOSPC, SQLite's SQLITE_FULL); `path`
    names the disk when the error itself does not."""
    if isinstance(exc, DiskFull):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return DiskFull(exc.filename or path)
    if isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    ):
        return DiskFull(path)
    return None


def write_start_marker(run_dir: Path, data: Mapping[str, object]) -> None:
    """Atomically (temp file + rename): a reader sees the whole marker or none."""
    target = run_dir / START_MARKER
    temp = run_dir / f".{START_MARKER}.{os.getpid()}.tmp"
    with open(temp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, target)


def read_start_marker(run_dir: Path) -> dict[str, object] | None:
    """The marker `write_start_marker` left, or None when the start never got that far."""
    try:
        data = json.loads((run_dir / START_MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("reading the start marker of %s: %s", run_dir, exc)
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Ending:
    """How the hosts ended, as far as the backend saw it."""

    #: host -> exit code; a host missing here ended while nobody watched (its files tell).
    exit_codes: dict[str, int] = field(default_factory=dict)
    #: The host that failed first, when the backend saw the order.
    first_failure: str | None = None
    #: host -> its last stderr lines, for a failure reason when the host wrote none.
    last_lines: dict[str, list[str]] = field(default_factory=dict)


class Watch(abc.ABC):
    """How one backend watches one job; the only part that differs between local backends."""

    @abc.abstractmethod
    def running(self) -> bool:
        """Whether any host of the job still runs."""

    @abc.abstractmethod
    def pump(self, final: bool) -> None:
        """Emit the log lines written since the last call; `final`: the job has ended."""

    def pause(self, seconds: float) -> None:
        """Wait before the next look (a backend may wake early when something ends)."""
        time.sleep(seconds)

    @abc.abstractmethod
    def settle(self) -> Ending:
        """The job has ended and its logs are read: collect how each host ended."""

    def release(self) -> None:  # noqa: B027
        """Called last on every path: free what the job held (containers)."""

    def system_sampler(self) -> Sampler | None:
        """What samples the hosts' CPU, memory and GPUs while the job runs (none by default)."""
        return None


def start_and_follow(
    ctx: JobContext,
    sink: EventSink,
    handle: JobHandle,
    *,
    preparing: str,
    start: Callable[[], Watch],
    stop: Callable[[JobContext], None],
    undo: Callable[[], None] | None = None,
) -> None:
    """Start the job (`start` stages, spawns and says how to watch it), then follow it.

    A job that cannot start fails with the reason; `undo` removes what a failed start left.
    """
    emit_status(sink, ctx.job_id, JobStatus.STARTING, preparing)
    try:
        emit_phase(sink, ctx.job_id, Phase.PREPARING)
        watch = start()
    except Exception as exc:
        if not isinstance(exc, (UserError, OSError, subprocess.SubprocessError)):
            log.exception("starting %s failed", ctx.job_id)
        if undo is not None:
            try:
                undo()
            except Exception:
                log.warning("cleaning up after the failed start of %s", ctx.job_id, exc_info=True)
        emit_status(sink, ctx.job_id, JobStatus.FAILED, f"Could not start the job: {exc}")
        handle._finish(JobStatus.FAILED)
        return
    ctx.started_at = time.time()
    handle.mark_started()
    if ctx.stop_requested():  # asked for while starting, before anything could be signalled
        threading.Thread(target=stop, args=(ctx,), name=f"stop-{ctx.job_id}", daemon=True).start()
    try:
        emit_status(sink, ctx.job_id, JobStatus.TRAINING, "Training in progress")
    except DiskFull as exc:
        handle._finish(stop_for_disk_full(ctx, sink, stop, exc))
        watch.release()
        return
    follow_and_finish(ctx, sink, handle, watch, stop)


def stop_for_disk_full(
    ctx: JobContext, sink: EventSink, stop: Callable[[JobContext], None], exc: DiskFull
) -> JobStatus:
    """The job's logs or artifacts cannot be stored: stop it (it would only fill the disk
    further) and record Failed with the reason, if the store can still take it."""
    reason = f"{exc}; the job was stopped"
    log.error("job %s: %s", ctx.job_id, reason)
    try:
        ctx.request_stop(reason)
    except OSError as again:
        log.warning("writing the stop marker of %s: %s", ctx.job_id, again)
    try:
        stop(ctx)
    except Exception as again:
        log.warning("stopping %s after the disk filled up: %s", ctx.job_id, again)
    try:
        emit_status(sink, ctx.job_id, JobStatus.FAILED, reason)
    except Exception as again:
        log.error("job %s: could not record its failure either: %s", ctx.job_id, again)
    return JobStatus.FAILED


def follow_and_finish(
    ctx: JobContext,
    sink: EventSink,
    handle: JobHandle,
    watch: Watch,
    stop: Callable[[JobContext], None],
) -> None:
    """Follow until the job ends, stopping it at its max runtime, then finish it."""
    deadline = (ctx.started_at or time.time()) + ctx.spec.max_runtime_seconds
    stopper: threading.Thread | None = None
    status = JobStatus.FAILED
    side: SideMetrics | None = None
    try:
        roots = {h: ctx.run_dir / "hosts" / h for h in contract.host_names(ctx.spec)}
        looks = 0
        while watch.running():
            watch.pump(final=False)
            looks += 1
            if side is None and looks > 1:
                # From the second look on: a sampler's start (a walk of the process table)
                # would delay the job's first lines, which the first pause waits for (issue 18).
                side = SideMetrics(ctx.job_id, sink, watch.system_sampler(), roots, ctx.offsets)
            if side is not None:
                side.pump()
            if stopper is None and time.time() > deadline:
                ctx.request_stop(max_runtime_reason(ctx.spec))
                stopper = threading.Thread(
                    target=stop, args=(ctx,), name=f"stop-{ctx.job_id}", daemon=True
                )
                stopper.start()
            watch.pause(POLL_SECONDS)
        if stopper is not None:
            # The driver may end before the script it started (one that ignores SIGTERM):
            # the stop runs to its end (the grace, then SIGKILL) before the job counts as over.
            stopper.join()
        watch.pump(final=True)
        if side is None:  # ended before a second look: its TensorBoard files, no sampler
            side = SideMetrics(ctx.job_id, sink, None, roots, ctx.offsets)
        side.close()
        side.pump(final=True)
        with job_lock(ctx.job_id):
            status = finish(ctx, sink, watch.settle())
    except DiskFull as exc:
        status = stop_for_disk_full(ctx, sink, stop, exc)
    except Exception as exc:
        log.exception("following %s failed", ctx.job_id)
        emit_status(sink, ctx.job_id, JobStatus.FAILED, f"Internal error while following: {exc!r}")
        status = JobStatus.FAILED
    finally:
        if side is not None:
            side.close()
        try:
            watch.release()
        except Exception:
            log.warning("releasing what %s held failed", ctx.job_id, exc_info=True)
    handle._finish(status)


def finish(ctx: JobContext, sink: EventSink, ending: Ending) -> JobStatus:
    """Pack every host's model and output data, copy them to a local output_path, decide."""
    emit_status(sink, ctx.job_id, JobStatus.UPLOADING, "Packing model.tar.gz and output.tar.gz")
    emit_phase(sink, ctx.job_id, Phase.PACKING)
    layouts = [
        HostLayout(host, ctx.run_dir / "hosts" / host) for host in contract.host_names(ctx.spec)
    ]
    try:
        model, output = pack_job([layout.root for layout in layouts], ctx.artifacts_dir)
    except OSError as exc:
        full = disk_full(exc, ctx.artifacts_dir)
        if full is not None:
            log.error("packing %s: %s", ctx.job_id, full)
        reason = f"Packing artifacts failed: {full or exc}"
        emit_status(sink, ctx.job_id, JobStatus.FAILED, reason)
        return JobStatus.FAILED
    sink(ArtifactReady(ctx.job_id, "model", str(model)))
    sink(ArtifactReady(ctx.job_id, "output", str(output)))
    try:
        copy_to_output_path(ctx, model, output)
    except OSError as exc:
        full = disk_full(exc, ctx.spec.output_path or ctx.artifacts_dir)
        emit_status(
            sink,
            ctx.job_id,
            JobStatus.FAILED,
            f"Copying the artifacts to output_path failed: {full or exc}",
        )
        return JobStatus.FAILED
    status, message = final_status(ctx, layouts, ending)
    emit_status(sink, ctx.job_id, status, message)
    return status


def final_status(
    ctx: JobContext, layouts: list[HostLayout], ending: Ending
) -> tuple[JobStatus, str]:
    """Stopped when a stop was asked for; Completed when every host exited 0 (or, for a host
    that ended unwatched, wrote output/success); else Failed with the first failure's reason."""
    if ctx.stop_requested():
        return JobStatus.STOPPED, ctx.stop_reason()

    def ok(layout: HostLayout) -> bool:
        code = ending.exit_codes.get(layout.host)
        return layout.succeeded() if code is None else code == 0

    if all(ok(layout) for layout in layouts):
        return JobStatus.COMPLETED, "Training job completed"
    by_host = {layout.host: layout for layout in layouts}
    failed = by_host.get(ending.first_failure or "") or next(
        layout for layout in layouts if not ok(layout)
    )
    reason = failed.failure_reason()
    if reason:
        return JobStatus.FAILED, f"{failed.host}: {reason}" if len(layouts) > 1 else reason
    code = ending.exit_codes.get(failed.host)
    reason = (
        f"{failed.host} exited with code {code}"
        if code is not None
        else f"{failed.host} ended without writing /opt/ml/output/success"
    )
    last = ending.last_lines.get(failed.host)
    if last:
        reason += "; last lines:\n" + "\n".join(last)
    return JobStatus.FAILED, reason


def copy_to_output_path(ctx: JobContext, model: Path, output: Path) -> Path | None:
    """A local output_path gets SageMaker's `<path>/<job>/output/*.tar.gz` layout."""
    target = ctx.spec.output_path
    if not target or target.startswith("s3://"):
        return None
    dest = ctx.spec.resolve(target) / ctx.job_id / "output"
    dest.mkdir(parents=True, exist_ok=True)
    for archive in (model, output):
        shutil.copy2(archive, dest / archive.name)
    log.debug("copied the artifacts of %s to %s", ctx.job_id, dest)
    return dest


__all__ = [
    "POLL_SECONDS",
    "STARTING_DIED",
    "START_MARKER",
    "DiskFull",
    "Ending",
    "Watch",
    "copy_to_output_path",
    "disk_full",
    "final_status",
    "finish",
    "follow_and_finish",
    "job_lock",
    "read_start_marker",
    "start_and_follow",
    "stop_for_disk_full",
    "write_start_marker",
]
