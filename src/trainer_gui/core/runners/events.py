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


JobEvent = StatusChanged | LogBatch | ArtifactReady | BackendInfo


@dataclass(frozen=True)
class MetricBatch:
    """Samples parsed from a LogBatch; emitted by the job service, not by runners."""

    job_id: str
    samples: list[MetricSample]


AnyEvent = JobEvent | MetricBatch
