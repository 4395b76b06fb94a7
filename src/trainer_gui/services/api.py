"""The jobs interface the window and the CLI program against, and the store reads both
implementations share.

Two implementations: `JobService` (services/jobs.py) follows jobs in this process;
`JobHostClient` (services/job_host.py) has them followed by the job host, a child process, and
reads their state from the same store. Both hold a `JobBoard` for what needs no follower (the
store reads and the listener list), so the two never drift apart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from trainer_gui.core.errors import JobNotFound
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec import spec_from_text

if TYPE_CHECKING:
    from trainer_gui.core.runners.base import JobHandle
    from trainer_gui.core.spec.model import JobSpec
    from trainer_gui.core.store import JobRecord, Store

log = logging.getLogger(__name__)
EventListener = Callable[[Any], None]
"""A job event listener: runner events, `MetricBatch`, or (from the job host) `LogData` and
`MetricData`, on a thread that is not the GUI thread."""

POLL_INTERVAL = 0.2  # seconds between store reads while waiting for a job followed elsewhere


@runtime_checkable
class Jobs(Protocol):
    """Start, stop, re-attach, adopt and delete jobs; read their records; listen to their events.

    Calls that reach a backend or the job host block: the window runs them off the GUI thread.
    """

    @property
    def store(self) -> Store: ...

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        ...

    def get(self, key: str) -> JobRecord: ...

    def spec_of(self, record: JobRecord) -> JobSpec: ...

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """The job's record once it ended, or when `timeout` seconds passed."""
        ...

    def submit(
        self,
        spec: JobSpec,
        project_id: int | None = None,
        python: str | None = None,
        job_id: str | None = None,
    ) -> JobHandle: ...

    def stop(self, key: str, wait: float | None = None) -> JobRecord: ...

    def recover(self, job_ids: list[str] | None = None) -> list[str]:
        """Re-attach to unfinished jobs nobody follows; returns the ids taken over."""
        ...

    def delete(self, key: str, remove_files: bool = True) -> None: ...

    def adopt(
        self,
        name: str,
        profile: str | None = None,
        region: str | None = None,
        project_id: int | None = None,
    ) -> str:
        """Record any SageMaker training job of the account and follow it like one started
        here; returns its store id (the training job name)."""
        ...

    def is_followed_here(self, job_id: str) -> bool:
        """Whether this process ingests the job (False for the job host's client)."""
        ...

    def shutdown(self) -> None:
        """Let go of every job (they keep running); the window or the CLI is closing."""
        ...


class JobBoard:
    """The store reads and the listener list, shared by both `Jobs` implementations."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[EventListener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def notify(self, event: Any) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("job event listener failed")

    def get(self, key: str) -> JobRecord:
        record = self.store.get_job(key)
        if record is None:
            raise JobNotFound(f"no job {key!r}; `trainer-gui jobs` lists them")
        return record

    def spec_of(self, record: JobRecord) -> JobSpec:
        spec = spec_from_text(record.spec_yaml, source=f"job {record.id}")
        base = record.backend_ids.get("spec_base_dir")
        return spec.with_base_dir(Path(str(base)) if base else None)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Poll the store until the job ended (whoever follows it records the end)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.get(job_id)
            if JobStatus(record.status).is_terminal:
                return record
            if deadline is not None and time.monotonic() > deadline:
                return record
            time.sleep(POLL_INTERVAL)
