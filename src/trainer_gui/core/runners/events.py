"""Events every runner emits, whatever the backend. Plain dataclasses: no Qt, no I/O."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from trainer_gui.core.metrics.types import MetricSample


class JobStatus(str, enum.Enum):
    """SageMaker's primary statuses plus the local phases people want to see."""

    PENDING = "Pending"
    QUEUED = "Queued"  # local jobs waiting in the queue for free resources
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
    """Lines read since the last batch, plus where each source now stands (for exact resume).

    `samples`: metrics read without a log line (TensorBoard event files, system metrics),
    stored in the same transaction as the offsets, so they too land exactly once."""

    job_id: str
    lines: list[LogLine]
    offsets: dict[tuple[str, str], str] = field(default_factory=dict)
    samples: list[MetricSample] = field(default_factory=list)


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
    direction: str  # "upload" | "download" | "copy" (a run's private copy of a channel)
    what: str  # "code", "channel train", "model.tar.gz", ...
    done_bytes: int
    total_bytes: int
    skipped_bytes: int
    current: str

    @property
    def fraction(self) -> float:
        return 1.0 if self.total_bytes <= 0 else min(1.0, self.done_bytes / self.total_bytes)


class Phase(str, enum.Enum):
    """What a run is doing, finer than its status: where the seconds before the first log line
    (and after the last) go. In the order a run passes through them; a phase may be skipped."""

    QUEUED = "queued"
    PREPARING = "preparing"  # run folder, code staging, requirements, S3 uploads of inputs
    STARTING = "starting"  # the interpreter, containers or SageMaker instances start
    WAITING_FOR_PEERS = "waiting_for_peers"  # several hosts meet before any of them prints
    RUNNING = "running"  # the first line of the job's own output arrived
    FIRST_METRIC = "first_metric"  # the first metric sample was parsed
    PACKING = "packing"  # model.tar.gz and output.tar.gz
    UPLOADING = "uploading"  # SageMaker uploads the model to S3
    DOWNLOADING = "downloading"  # the model comes back from S3
    DONE = "done"  # the final status is recorded

    @property
    def description(self) -> str:
        """What happened when the run entered this phase, for a line of its own (the CLI)."""
        return _PHASE_TEXT[self][0]

    @property
    def label(self) -> str:
        """The phase as one step of a timeline ("Running 8.2 s")."""
        return _PHASE_TEXT[self][1]


_PHASE_TEXT = {
    Phase.QUEUED: ("queued", "Queued"),
    Phase.PREPARING: ("preparing the environment", "Preparing"),
    Phase.STARTING: ("starting", "Starting"),
    Phase.WAITING_FOR_PEERS: ("waiting for peers", "Waiting for peers"),
    Phase.RUNNING: ("running: first log line", "Running"),
    Phase.FIRST_METRIC: ("first metric", "First metric"),
    Phase.PACKING: ("packing the artifacts", "Packing"),
    Phase.UPLOADING: ("uploading", "Uploading"),
    Phase.DOWNLOADING: ("downloading the artifacts", "Downloading"),
    Phase.DONE: ("done", "Done"),
}


@dataclass(frozen=True)
class PhaseChanged:
    """The run entered `phase` at `at`; `detail` says precisely what it does, in a few
    lowercase words ("starting the interpreter", "installing requirements.txt")."""

    job_id: str
    phase: Phase
    at: float = field(default_factory=time.time)
    detail: str = ""

    @property
    def text(self) -> str:
        return self.detail or self.phase.description


JobEvent = StatusChanged | LogBatch | ArtifactReady | BackendInfo | TransferProgress | PhaseChanged


@dataclass(frozen=True)
class MetricBatch:
    """Samples parsed from a LogBatch; emitted by the job service, not by runners."""

    job_id: str
    samples: list[MetricSample]


AnyEvent = JobEvent | MetricBatch
