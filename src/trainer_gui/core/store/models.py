"""Immutable rows handed out by the store, so callers on any thread can keep them safely."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from trainer_gui.core.runners.events import JobStatus, Phase

TERMINAL_STATUSES: frozenset[str] = frozenset(s.value for s in JobStatus if s.is_terminal)


@dataclass(frozen=True)
class Project:
    """A project folder the user opened; `settings` is free-form JSON the UI owns."""

    id: int
    name: str
    path: str
    # Dicts are left out of the hash so records stay usable as dict keys / set members.
    settings: dict[str, Any] = field(hash=False)
    created_at: float
    last_opened_at: float | None


@dataclass(frozen=True)
class JobRecord:
    """One job as persisted: enough to list it, show its history and re-attach to it."""

    id: str
    project_id: int | None
    name: str
    backend: str
    spec_yaml: str
    status: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    failure_reason: str | None
    backend_ids: dict[str, Any] = field(hash=False)
    run_dir: str

    @property
    def job_status(self) -> JobStatus:
        """`status` as the enum, for code that switches on it."""
        return JobStatus(self.status)

    @property
    def is_terminal(self) -> bool:
        """Finished (Completed, Failed or Stopped): nothing more will happen to it."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Not finished yet, so a runner may still own it (or should re-attach to it)."""
        return not self.is_terminal

    @property
    def duration(self) -> float | None:
        """Seconds since it started, up to its end (or now while running); None if never started."""
        if self.started_at is None:
            return None
        end = self.ended_at
        if end is None:
            end = self.started_at if self.is_terminal else time.time()
        return max(0.0, end - self.started_at)


@dataclass(frozen=True)
class StatusEntry:
    """One line of a job's status history."""

    status: str
    message: str
    at: float


@dataclass(frozen=True)
class PhaseEntry:
    """One step of a job's phase timeline: entered at `at`, lasting until the next one."""

    phase: Phase
    detail: str
    at: float

    @property
    def text(self) -> str:
        """What the run did in this step, in a few lowercase words."""
        return self.detail or self.phase.description

    @property
    def label(self) -> str:
        """The step as a timeline shows it: the runner's words, else the phase's name."""
        return self.detail[:1].upper() + self.detail[1:] if self.detail else self.phase.label
