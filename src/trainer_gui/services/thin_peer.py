"""What the job host does for a thin client (cli/thin_run.py): everything in plain data.

A thin client imports neither pydantic nor numpy nor the services, so it cannot unpickle the
host's usual messages (specs, records, events in numpy columns). It hands the host a spec's
path with the `run` flags (`load_for_run`: loaded, overridden and validated here), and gets
back plain tuples and dicts: the job's events as the terminal prints them (`thin_event`), its
end summary (`summary_data`), and failures as their message and exit code (`plain_error`).

The full client prints through the same tuples, so both print the same lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_gui.core.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from trainer_gui.core.spec.model import JobSpec
    from trainer_gui.core.store import JobRecord, Store

ThinEvent = tuple[Any, ...]
"""One of:

* `("log", job_id, [(host, text), ...])`
* `("metrics", job_id, [(host, step, name, value), ...])`: training metrics only, in time order
* `("status", job_id, status, message, terminal)`
* `("phase", job_id, phase, text, at, detail)`
"""


def thin_event(event: Any) -> ThinEvent | None:
    """`event` (a runner's or the service's, lines and samples as batches) in plain data, or
    None for what the terminal does not print."""
    from trainer_gui.core.runners.events import LogBatch, MetricBatch, PhaseChanged, StatusChanged
    from trainer_gui.core.runners.sysmetrics import is_system_metric

    if isinstance(event, LogBatch):
        if not event.lines:
            return None
        return ("log", event.job_id, [(ln.host, ln.text) for ln in event.lines])
    if isinstance(event, MetricBatch):
        samples = [
            (s.host, s.step, s.name, s.value)
            for s in event.samples
            if not is_system_metric(s.name)  # CPU and memory are for the plots
        ]
        return ("metrics", event.job_id, samples) if samples else None
    if isinstance(event, StatusChanged):
        status = event.status
        return ("status", event.job_id, status.value, event.message, status.is_terminal)
    if isinstance(event, PhaseChanged):
        return ("phase", event.job_id, event.phase.value, event.text, event.at, event.detail)
    return None


def thin_events(events: Iterable[Any]) -> list[ThinEvent]:
    """The host's batch of events (lines and samples in columns) in plain data."""
    from trainer_gui.services.live_data import as_batches

    out = []
    for event in events:
        thin = thin_event(as_batches(event))
        if thin is not None:
            out.append(thin)
    return out


def load_for_run(
    path: str,
    cwd: str,
    overrides: Sequence[str] = (),
    backend: str | None = None,
    python: str | None = None,
) -> tuple[JobSpec | None, str | None]:
    """The spec at `path` (relative to the client's `cwd`) with `run`'s overrides, validated,
    and the interpreter to run it with; None for a SageMaker spec (the full client preflights
    it). Problems are raised as `UserError`s that name the file as the client typed it."""
    from trainer_gui.core.spec import apply_overrides, load_spec
    from trainer_gui.core.spec.model import Backend

    typed = Path(path)
    full = Path(cwd) / typed
    try:
        spec = load_spec(full)
        wanted = list(overrides)
        if backend:
            wanted.append(f"compute.backend={backend}")
        if wanted:
            spec = apply_overrides(spec, wanted)
    except UserError as exc:
        if typed.is_absolute():
            raise
        error = UserError(str(exc).replace(str(full), str(typed)))
        error.exit_code = exc.exit_code
        raise error from None
    if spec.compute.backend is Backend.SAGEMAKER:
        return None, python
    return spec, python


def started(store: Store, job_id: str, spec: JobSpec) -> dict[str, Any]:
    """What `run` prints on a submit, and the phases stored so far (the queueing's time)."""
    phases = [(e.phase.value, e.text, e.at, e.detail) for e in store.phases(job_id)]
    return {"job_id": job_id, "backend": spec.compute.backend.value, "phases": phases}


def summary_data(store: Store, record: JobRecord) -> dict[str, Any]:
    """What `run` prints when the job ended (cli/thin_run.py `summary_text`)."""
    from trainer_gui.core.runners.sysmetrics import is_system_metric

    last = store.last_metrics(record.id)
    artifacts = record.backend_ids.get("artifacts") or {}
    return {
        "id": record.id,
        "status": record.status,
        "duration": record.duration,
        "failure_reason": record.failure_reason,
        "metrics": {k: v for k, v in last.items() if not is_system_metric(k)},
        "artifacts": dict(artifacts) if isinstance(artifacts, dict) else {},
        "run_dir": record.run_dir,
    }


def plain_error(exc: BaseException) -> dict[str, Any]:
    """A failed call for a thin client: the message (a user's problem) or the error's type
    and message (a bug), and the exit code."""
    if isinstance(exc, UserError):
        return {"error": str(exc), "exit_code": exc.exit_code, "user": True}
    return {"error": f"{type(exc).__name__}: {exc}", "exit_code": 1, "user": False}
