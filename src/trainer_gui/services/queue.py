"""The queue as people change it: list, reorder, prioritise, pause, resume, cancel, limit.

The queue lives in the store (core/store/queue.py); whoever schedules (the job host, or an
in-process `JobService`) reads it on every pass, so a change made here, from the window or the
CLI, takes effect within the host's next tick (half a second). Cancelling goes through the jobs
interface, so a job that a scheduler claimed meanwhile is stopped like any running job.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer_gui.core.errors import UserError
from trainer_gui.core.resources import (
    MAX_PARALLEL_KEY,
    PAUSED_KEY,
    default_max_parallel,
    machine_gpus,
)
from trainer_gui.core.store.queue import ALL_GPUS, QueueEntry
from trainer_gui.services.api import Jobs


@dataclass(frozen=True)
class QueuedJob:
    """A queue row with what a person needs to recognise it."""

    entry: QueueEntry
    position: int  # 1 = next to start; 0 while it is being started
    name: str
    backend: str

    @property
    def job_id(self) -> str:
        return self.entry.job_id

    @property
    def needs(self) -> str:
        gpus = self.entry.gpus
        gpu_text = "all GPUs" if gpus == ALL_GPUS else f"{gpus} GPU" + ("s" if gpus != 1 else "")
        slots = f"{self.entry.slots} slot" + ("s" if self.entry.slots != 1 else "")
        return slots if gpus == 0 else f"{slots}, {gpu_text}"


class QueueControl:
    """Queue operations for the window and the CLI, over a `Jobs` implementation."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.store = jobs.store

    def entries(self) -> list[QueuedJob]:
        found = []
        position = 0
        for entry in self.store.queue_entries():
            record = self.store.get_job(entry.job_id)
            if record is None:
                continue
            if entry.claimed_at is None:
                position += 1
            found.append(
                QueuedJob(
                    entry, position if entry.claimed_at is None else 0, record.name, record.backend
                )
            )
        return found

    def _waiting(self, job_id: str) -> QueueEntry:
        record = self.jobs.get(job_id)  # JobNotFound names the job
        entry = self.store.queue_entry(record.id)
        if entry is None or entry.claimed_at is not None:
            raise UserError(f"job {record.id} is not waiting in the queue ({record.status})")
        return entry

    def move(self, job_id: str, position: int) -> None:
        """To `position` (1 = next) among the waiting jobs of its priority."""
        entry = self._waiting(job_id)
        self.store.move_in_queue(entry.job_id, max(0, position - 1))
        self._nudge()

    def set_priority(self, job_id: str, priority: int) -> None:
        """Higher first; 0 is the default."""
        entry = self._waiting(job_id)
        self.store.set_queue_priority(entry.job_id, int(priority))
        self._nudge()

    def cancel(self, job_id: str) -> str:
        """Out of the queue (Stopped); a job that already started is stopped. Its status."""
        record = self.jobs.get(job_id)
        return self.jobs.stop(record.id, wait=0).status

    @property
    def paused(self) -> bool:
        return bool(self.store.app_state(PAUSED_KEY, False))

    def pause(self) -> None:
        """No queued job starts until resumed; running jobs go on."""
        self.store.set_app_state(PAUSED_KEY, True)

    def resume(self) -> None:
        self.store.set_app_state(PAUSED_KEY, None)
        self._nudge()

    @property
    def max_parallel(self) -> int:
        return int(self.store.app_state(MAX_PARALLEL_KEY) or default_max_parallel())

    @property
    def max_parallel_is_default(self) -> bool:
        return self.store.app_state(MAX_PARALLEL_KEY) is None

    def set_max_parallel(self, count: int | None) -> None:
        """Slots of this machine (None: the default, one per GPU, 1 without)."""
        if count is not None and not 1 <= count <= 256:
            raise UserError(f"max parallel must be between 1 and 256, not {count}")
        self.store.set_app_state(MAX_PARALLEL_KEY, count)
        self._nudge()

    @staticmethod
    def gpus() -> int:
        return machine_gpus()

    def _nudge(self) -> None:
        """Let the scheduler look now: in this process, or by making sure a job host runs
        (it starts one if queued jobs wait and none does)."""
        from trainer_gui.services.jobs import JobService

        if isinstance(self.jobs, JobService):
            self.jobs.schedule()
        elif self.store.queue_entries(claimed=False) and not self.paused:
            self.jobs.recover([])
