"""The Qt bridge: job events from runner threads, re-emitted as batched signals on the GUI thread.

The jobs service (`services.api.Jobs`) calls its listeners on runner threads, many times a
second (one `LogBatch` per poll, one `MetricBatch` per batch with metrics). The bridge's
listener turns lines and samples into columns right there (`LogChunk`, `MetricChunk`: the
per-line work stays off the GUI thread) and appends them to a lock-protected list; the job
host process delivers them already in columns (`LogData`, `MetricData`). A `QTimer` on the GUI
thread drains that list at a fixed rate and emits one signal per job and kind. Widgets connect
to the signals on the GUI thread, so no widget is ever touched from another thread
(style-anchors section 8).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from trainer_gui.core.runners.events import ArtifactReady, StatusChanged, TransferProgress
from trainer_gui.services.live_data import LogChunk, LogData, MetricChunk, MetricData, in_columns

if TYPE_CHECKING:
    from trainer_gui.core.runners.events import AnyEvent

T = TypeVar("T")


class EventSource(Protocol):
    """What the bridge listens to: the subscribe half of `services.api.Jobs`."""

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]: ...


class JobEventBridge(QObject):
    """Batches a jobs service's events onto the GUI thread at `hz` flushes per second.

    Per flush and per job, log lines and metric samples are coalesced into one `sig_logs` and
    one `sig_metrics` emission. Order is kept where it matters: every status change and artifact
    is emitted in the order it happened, and a job's logs and metrics that arrived before one of
    its status changes are emitted before that status (so "Completed" never overtakes the last
    lines). `BackendInfo` events are not forwarded (the store already holds them).
    """

    sig_status = Signal(str, str, str)
    """(job_id, status value such as "Training", message): once per status change, in order."""

    sig_logs = Signal(str, object)
    """(job_id, LogChunk): every line that arrived for the job since the last flush."""

    sig_metrics = Signal(str, object)
    """(job_id, MetricChunk): every sample parsed for the job since the last flush."""

    sig_artifact = Signal(str, str, str)
    """(job_id, kind "model" | "output", path): an artifact file is ready on disk."""

    sig_transfer = Signal(str, object)
    """(job_id, TransferProgress): where an upload/download of a SageMaker job stands; only
    the newest report per job, direction and item of each flush."""

    def __init__(self, service: EventSource, parent: QObject | None = None, hz: float = 15.0):
        super().__init__(parent)
        if hz <= 0:
            raise ValueError(f"hz must be positive, got {hz}")
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, round(1000.0 / hz)))
        self._timer.timeout.connect(self.flush)
        self._timer.start()
        self._unsubscribe: Callable[[], None] | None = service.subscribe(self._on_event)

    # -- runner threads ---------------------------------------------------------------------

    def _on_event(self, event: AnyEvent | LogData | MetricData) -> None:
        """The service listener: on a runner thread, so it puts lines and samples in columns
        (the per-line work, here rather than on the GUI thread) and queues the event."""
        queued = in_columns(event)
        if queued is None:
            return
        with self._lock:
            self._pending.append(queued)

    # -- GUI thread -------------------------------------------------------------------------

    def pending_count(self) -> int:
        """Events queued and not yet emitted (for tests and the benchmark)."""
        with self._lock:
            return len(self._pending)

    @Slot()
    def flush(self) -> None:
        """Emit everything queued so far; the timer calls this, and callers may too."""
        with self._lock:
            events, self._pending = self._pending, []
        if not events:
            return
        logs: dict[str, list[LogChunk]] = {}
        metrics: dict[str, list[MetricChunk]] = {}
        transfers: dict[tuple[str, str, str], TransferProgress] = {}

        def emit_data(job_id: str) -> None:
            chunks = logs.pop(job_id, None)
            if chunks:
                self.sig_logs.emit(job_id, LogChunk.merge(chunks))
            parts = metrics.pop(job_id, None)
            if parts:
                self.sig_metrics.emit(job_id, MetricChunk.merge(parts))
            for key in [k for k in transfers if k[0] == job_id]:
                self.sig_transfer.emit(job_id, transfers.pop(key))

        for event in events:
            if isinstance(event, LogData):
                if event.chunk.rows:
                    logs.setdefault(event.job_id, []).append(event.chunk)
            elif isinstance(event, MetricData):
                if event.chunk.columns:
                    metrics.setdefault(event.job_id, []).append(event.chunk)
            elif isinstance(event, StatusChanged):
                emit_data(event.job_id)
                self.sig_status.emit(event.job_id, event.status.value, event.message)
            elif isinstance(event, ArtifactReady):
                emit_data(event.job_id)
                self.sig_artifact.emit(event.job_id, event.kind, event.path)
            elif isinstance(event, TransferProgress):
                transfers[(event.job_id, event.direction, event.what)] = event
        # Whatever is left, job by job in the order the jobs first showed up.
        for job_id in list(dict.fromkeys([*logs, *metrics, *(k[0] for k in transfers)])):
            emit_data(job_id)

    def close(self) -> None:
        """Stop listening and stop the timer; events still queued are dropped."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._timer.stop()
        with self._lock:
            self._pending.clear()


def drop_overlap(
    loaded: Sequence[Any],
    pending: list[T],
    key: Callable[[T], Hashable],
    loaded_key: Callable[[Any], Hashable] | None = None,
) -> list[T]:
    """`pending` minus its head that repeats the tail of `loaded`.

    A view that loads a job's history in the background (log tail, stored metrics) holds the
    live items that arrive meanwhile. Both come from the same ordered stream, so the live items
    may begin with some that the load already read: the longest prefix of `pending` equal to a
    suffix of `loaded` is dropped, the rest is new. Items compare by `key` (`loaded_key` for
    the loaded ones, when they have another type).
    """
    lkey = key if loaded_key is None else loaded_key
    if not loaded or not pending:
        return pending
    keys_p = [key(item) for item in pending]
    first = keys_p[0]
    n = len(loaded)
    for start in range(max(0, n - len(pending)), n):
        if lkey(loaded[start]) != first:
            continue
        k = n - start
        if all(lkey(loaded[start + i]) == keys_p[i] for i in range(1, k)):
            return pending[k:]
    return pending
