"""Follow a job on this machine to its end, then finish it: the same for every local backend.

A backend supplies a `Watch` (how it learns the job still runs, reads its logs and collects
the hosts' exit codes); `follow_and_finish` does the rest: the max_runtime deadline, packing
model.tar.gz and output.tar.gz the way SageMaker does, the copy to a local `output_path`, and
the final status (Completed, Stopped or Failed with a reason).
"""

from __future__ import annotations

import abc
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
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
    emit_status,
    max_runtime_reason,
)
from trainer_gui.core.runners.events import ArtifactReady, JobStatus

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1

_locks_guard = threading.Lock()
_job_locks: dict[str, threading.Lock] = {}


def job_lock(job_id: str) -> threading.Lock:
    """One finisher per job in this process: a job re-attached by a second service is also
    still followed by the first one's thread until it ends, and only one may pack it."""
    with _locks_guard:
        return _job_locks.setdefault(job_id, threading.Lock())


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
    emit_status(sink, ctx.job_id, JobStatus.TRAINING, "Training in progress")
    follow_and_finish(ctx, sink, handle, watch, stop)


def follow_and_finish(
    ctx: JobContext,
    sink: EventSink,
    handle: JobHandle,
    watch: Watch,
    stop: Callable[[JobContext], None],
) -> None:
    """Follow until the job ends, stopping it at its max runtime, then finish it."""
    deadline = (ctx.started_at or time.time()) + ctx.spec.max_runtime_seconds
    timed_out = False
    status = JobStatus.FAILED
    try:
        while watch.running():
            watch.pump(final=False)
            if not timed_out and time.time() > deadline:
                timed_out = True
                ctx.request_stop(max_runtime_reason(ctx.spec))
                threading.Thread(
                    target=stop, args=(ctx,), name=f"stop-{ctx.job_id}", daemon=True
                ).start()
            watch.pause(POLL_SECONDS)
        watch.pump(final=True)
        with job_lock(ctx.job_id):
            status = finish(ctx, sink, watch.settle())
    except Exception as exc:
        log.exception("following %s failed", ctx.job_id)
        emit_status(sink, ctx.job_id, JobStatus.FAILED, f"Internal error while following: {exc!r}")
        status = JobStatus.FAILED
    finally:
        try:
            watch.release()
        except Exception:
            log.warning("releasing what %s held failed", ctx.job_id, exc_info=True)
    handle._finish(status)


def finish(ctx: JobContext, sink: EventSink, ending: Ending) -> JobStatus:
    """Pack every host's model and output data, copy them to a local output_path, decide."""
    emit_status(sink, ctx.job_id, JobStatus.UPLOADING, "Packing model.tar.gz and output.tar.gz")
    layouts = [
        HostLayout(host, ctx.run_dir / "hosts" / host) for host in contract.host_names(ctx.spec)
    ]
    try:
        model, output = pack_job([layout.root for layout in layouts], ctx.artifacts_dir)
    except OSError as exc:
        emit_status(sink, ctx.job_id, JobStatus.FAILED, f"Packing artifacts failed: {exc}")
        return JobStatus.FAILED
    sink(ArtifactReady(ctx.job_id, "model", str(model)))
    sink(ArtifactReady(ctx.job_id, "output", str(output)))
    try:
        copy_to_output_path(ctx, model, output)
    except OSError as exc:
        emit_status(
            sink,
            ctx.job_id,
            JobStatus.FAILED,
            f"Copying the artifacts to output_path failed: {exc}",
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
    "Ending",
    "Watch",
    "copy_to_output_path",
    "final_status",
    "finish",
    "follow_and_finish",
    "job_lock",
    "start_and_follow",
]
