"""Run a preflight: the SageMaker spec as a short local probe job, judged as it runs.

The probe is an ordinary job (submitted through the jobs interface, so it waits in the local
queue like any other and shows in the jobs list); it is stopped as soon as it has shown what a
cloud job needs to show early: a first metric and a checkpoint write. See core/preflight.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from trainer_gui.core.errors import UserError
from trainer_gui.core.preflight import (
    PREFLIGHT_KEY,
    PREFLIGHT_OF_KEY,
    PreflightLimits,
    PreflightResult,
    checkpoint_written,
    discard_slices,
    preflight_spec,
    wanted_metrics,
)
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec.model import JobSpec
from trainer_gui.core.store import Store
from trainer_gui.services.api import Jobs

log = logging.getLogger(__name__)

#: Seconds between looks at the probe's record, metrics and checkpoint folder.
POLL = 0.25
#: How long a probe may take to stop once it has shown enough (or ran out of time).
STOP_WAIT = 30.0
#: How many of the script's last log lines a failure's reason carries.
LAST_LINES = 5

Progress = Callable[[str], None]


def run_preflight(
    jobs: Jobs,
    spec: JobSpec,
    project_id: int | None = None,
    *,
    python: str | None = None,
    limits: PreflightLimits | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    submitted: Callable[[str], None] | None = None,
) -> PreflightResult:
    """Probe `spec` locally and say whether its cloud launch should go ahead (blocks).

    `submitted` hears the probe's job id as soon as it exists (the window stops it on close)."""
    limits = limits or PreflightLimits()
    say = progress or (lambda _text: None)
    began = time.monotonic()
    say("preflight: slicing the channels…")
    try:
        probe, slices, notes = preflight_spec(spec, limits)
    except UserError as exc:
        return PreflightResult(False, str(exc), seconds=time.monotonic() - began)
    try:
        try:
            handle = jobs.submit(probe, project_id=project_id, python=python)
        except UserError as exc:
            return PreflightResult(
                False,
                f"the probe could not start: {exc}",
                seconds=time.monotonic() - began,
                backend=probe.compute.backend.value,
                notes=notes,
            )
        job_id = handle.job_id
        jobs.store.update_backend_ids(job_id, {PREFLIGHT_OF_KEY: spec.name})
        if submitted is not None:
            submitted(job_id)
        try:
            result = _watch(jobs, probe, job_id, limits, say, cancel)
        except KeyboardInterrupt:  # Ctrl+C in the CLI: the probe must not run on
            _stop(jobs, job_id)
            raise
        result.job_id = job_id
        result.backend = probe.compute.backend.value
        result.seconds = time.monotonic() - began
        result.notes = notes + result.notes
        say(f"preflight: {'passed' if result.ok else 'failed'}")
        return result
    finally:
        discard_slices(slices)  # the job made its own copies; a queued one that never ran is over


def _watch(
    jobs: Jobs,
    probe: JobSpec,
    job_id: str,
    limits: PreflightLimits,
    say: Progress,
    cancel: threading.Event | None,
) -> PreflightResult:
    wanted = wanted_metrics(probe)
    store = jobs.store
    started: float | None = None
    first_metric_at: float | None = None
    metric: str | None = None
    while True:
        record = jobs.get(job_id)
        status = JobStatus(record.status)
        now = time.monotonic()
        if metric is None:
            metric = _first_metric(store, job_id, wanted)
            if metric is not None:
                first_metric_at = now
        checkpoint = checkpoint_written(Path(record.run_dir))
        if status.is_terminal:
            failure = record.failure_reason
            if status is JobStatus.FAILED:
                failure = _with_last_lines(failure, Path(record.run_dir))
            return _ended(record.status, failure, metric, checkpoint, limits)
        if cancel is not None and cancel.is_set():
            _stop(jobs, job_id)
            return PreflightResult(False, "the preflight was cancelled", metric=metric)
        if status in (JobStatus.QUEUED, JobStatus.PENDING):
            say("preflight: waiting in the local queue…")
            time.sleep(POLL)
            continue
        if started is None:
            started = now
        elapsed = now - started
        if metric is not None and checkpoint is not None:
            _stop(jobs, job_id)
            return PreflightResult(
                True,
                f"first metric {metric!r} and a checkpoint write ({checkpoint})",
                metric=metric,
                checkpoint=checkpoint,
            )
        if first_metric_at is not None and now - first_metric_at >= limits.checkpoint_grace:
            _stop(jobs, job_id)
            return _metric_only(metric, limits.checkpoint_grace, "after its first metric")
        if elapsed >= limits.time_limit:
            _stop(jobs, job_id)
            if metric is not None:
                return _metric_only(metric, limits.time_limit, "")
            return PreflightResult(
                False,
                f"no metric within the time limit ({limits.time_limit:g} s)" + _metric_hint(wanted),
            )
        if metric is None:
            say(f"preflight: waiting for the first metric… {elapsed:.0f} s")
        else:
            say(f"preflight: first metric {metric!r}; waiting for a checkpoint… {elapsed:.0f} s")
        time.sleep(POLL)


def _with_last_lines(reason: str | None, run_dir: Path, wait: float = 3.0) -> str | None:
    """A bare "exited with code N" gets the script's last lines from job.log, which the
    follower may still be writing when the status lands (so it is given a moment)."""
    if reason and "last lines" in reason:
        return reason
    from trainer_gui.core.joblog import JOB_LOG, parse_log_line

    path = run_dir / "logs" / JOB_LOG
    deadline = time.monotonic() + wait
    lines: list[str] = []
    while True:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        lines = [p[3] for p in map(parse_log_line, text.splitlines()[-200:]) if p is not None]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    tail = [line for line in lines if line.strip()][-LAST_LINES:]
    if not tail or (reason and all(line in reason for line in tail)):
        return reason
    head = reason or "the job failed"
    return head + "; last lines:\n" + "\n".join(tail)


def _first_metric(store: Store, job_id: str, wanted: set[str] | None) -> str | None:
    from trainer_gui.core.runners.sysmetrics import is_system_metric

    for name in store.metric_names(job_id):
        if is_system_metric(name):
            continue  # CPU and memory samples come from any process; they show no training
        if wanted is None or name in wanted:
            return name
    return None


def _metric_hint(wanted: set[str] | None) -> str:
    if wanted is None:
        return "; the script printed nothing that looks like a metric"
    return f"; none of {', '.join(sorted(wanted))} matched a log line"


def _metric_only(metric: str | None, seconds: float, when: str) -> PreflightResult:
    after = f" {when}" if when else ""
    return PreflightResult(
        True,
        f"first metric {metric!r}",
        metric=metric,
        notes=[
            f"no checkpoint was written within {seconds:g} s{after} "
            "(fine if the script does not write to /opt/ml/checkpoints)"
        ],
    )


def _ended(
    status: str,
    failure: str | None,
    metric: str | None,
    checkpoint: str | None,
    limits: PreflightLimits,
) -> PreflightResult:
    """The probe ended on its own before the verdict."""
    if status == JobStatus.COMPLETED.value:
        if metric is None:
            return PreflightResult(False, "the job completed without printing a metric")
        if checkpoint is None:
            result = _metric_only(metric, limits.time_limit, "")
            result.notes = ["the job completed without writing a checkpoint"]
            return result
        return PreflightResult(
            True,
            f"first metric {metric!r} and a checkpoint write ({checkpoint})",
            metric=metric,
            checkpoint=checkpoint,
        )
    why = (failure or "").strip() or f"the job ended {status}"
    if status == JobStatus.STOPPED.value:  # someone stopped it (or cancelled it in the queue)
        return PreflightResult(False, f"the probe was stopped before a verdict: {why}")
    return PreflightResult(False, f"the job failed on the slice: {why}", metric=metric)


def _stop(jobs: Jobs, job_id: str) -> None:
    try:
        jobs.stop(job_id, wait=STOP_WAIT)
    except UserError as exc:
        log.warning("could not stop preflight %s: %s", job_id, exc)


def link_preflight(store: Store, cloud_job_id: str, result: PreflightResult | None) -> None:
    """Record on the cloud job which preflight checked it (the plot overlays the two)."""
    if result is not None and result.job_id:
        store.update_backend_ids(cloud_job_id, {PREFLIGHT_KEY: result.job_id})


__all__ = ["PreflightLimits", "PreflightResult", "link_preflight", "run_preflight"]
