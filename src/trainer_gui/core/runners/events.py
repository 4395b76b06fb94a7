"""Events every runner emits, whatever the backend. Plain dataclasses: no Qt, no I/O."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from trainer_gui.core.metrics.types import MetricSample


class JobStatus(str, enum.Enum):
    """SageMaker's primary statuses plus the local phases people want to see."""

    PENDING = "Pending"
    STARTING = "Starting"
    TRAINING = "Training"
    UPLOADING = "Uploading"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


@dataclass(frozen=True)
class StatusChanged:
    job_id: str
    status: JobStatus
    message: str = ""
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class LogLine:
    host: str
    stream: str  # "stdout" | "stderr" | "system"
    text: str
    time: float


@dataclass(frozen=True)
class LogBatch:
    """Lines read since the last batch, plus where each source now stands (for exact resume)."""

    job_id: str
    lines: list[LogLine]
    offsets: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactReady:
    job_id: str
    kind: str  # "model" | "output"
    path: str


@dataclass(frozen=True)
class BackendInfo:
    """Backend ids worth persisting (pid, container ids, ARN) so a later process can re-attach."""

    job_id: str
    data: dict[str, object]


@dataclass(frozen=True)
class TransferProgress:
    """Upload/download progress of a SageMaker job (not stored; for progress bars).

    Emitted through the job service's listeners like the other events, at most ~10 per second.
    """

    job_id: str
    direction: str  # "upload" | "download"
    what: str  # "code", "channel train", "model.tar.gz", ...
    done_bytes: int
    total_bytes: int
    skipped_bytes: int
    current: str

    @property
    def fraction(self) -> float:
        return 1.0 if self.total_bytes <= 0 else min(1.0, self.done_bytes / self.total_bytes)


JobEvent = StatusChanged | LogBatch | ArtifactReady | BackendInfo | TransferProgress


@dataclass(frozen=True)
class MetricBatch:
    """Samples parsed from a LogBatch; emitted by the job service, not by runners."""

    job_id: str
    samples: list[MetricSample]


AnyEvent = JobEvent | MetricBatch
