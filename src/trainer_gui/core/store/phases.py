"""A job's phases: stored as the follower ingests events, read back as a timeline.

Runners say when a run prepares, starts, packs or uploads (`PhaseChanged`); two phases only the
follower can see, because it is the one that reads the lines: the first line of the job's own
output ("running") and the first metric sample. `PhaseRecorder` stores both kinds, so any
process (the window, the CLI, the job host) reads the same timeline from the store.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from trainer_gui.core.errors import UserError
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.events import LogBatch, MetricBatch, Phase, PhaseChanged
from trainer_gui.core.store.db import Store
from trainer_gui.core.store.models import PhaseEntry

log = logging.getLogger(__name__)

#: Lines of this stream are the app's or the setup's (pip), not the job's own output.
SYSTEM_STREAM = "system"


class PhaseRecorder:
    """Per followed job: stores the phases its events are or imply.

    `record` is called by the follower for every event it stored, under its ingest lock; it
    returns the phases it derived (first log line, first metric) so the follower can pass
    them to its listeners like any event."""

    def __init__(self, store: Store, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self._seen: set[Phase] | None = None  # derived phases already stored (read lazily)

    def record(self, event: object, samples: Sequence[MetricSample] = ()) -> list[PhaseChanged]:
        """Store what `event` (and the `samples` parsed from it) says of the job's phase.

        A phase that cannot be stored is logged, not raised: the event itself is stored
        already and its listeners must still get it. Only a full disk is raised, as the
        follower raises it for any write (the runner then stops the job)."""
        try:
            return self._record(event, samples)
        except (sqlite3.Error, OSError, UserError) as exc:
            from trainer_gui.core.runners.follow import disk_full

            full = disk_full(exc, self.store.path)
            if full is not None:
                raise full from None
            log.warning("job %s: could not store its phase: %s", self.job_id, exc)
            return []

    def _record(self, event: object, samples: Sequence[MetricSample]) -> list[PhaseChanged]:
        if isinstance(event, PhaseChanged):
            self.store.add_phase(self.job_id, event.phase, event.detail, event.at)
            if self._seen is not None:
                self._seen.add(event.phase)
            return []
        if isinstance(event, MetricBatch):
            samples = event.samples
        derived: list[PhaseChanged] = []
        if isinstance(event, LogBatch) and event.lines:
            times = [ln.time for ln in event.lines if ln.stream != SYSTEM_STREAM]
            if times:
                derived += self._once(Phase.RUNNING, min(times))
        if samples:
            derived += self._once(Phase.FIRST_METRIC, min(s.wall_time for s in samples))
        return derived

    def _once(self, phase: Phase, at: float) -> list[PhaseChanged]:
        if self._seen is None:  # a follower that took over: the earlier one may have stored it
            self._seen = {entry.phase for entry in self.store.phases(self.job_id)}
        if phase in self._seen:
            return []
        self._seen.add(phase)
        if not self.store.add_phase(self.job_id, phase, "", at):
            return []
        return [PhaseChanged(self.job_id, phase, at)]


@dataclass(frozen=True)
class Step:
    """One phase of a timeline, with how long it lasted (so far, when `current`)."""

    phase: Phase
    label: str
    text: str
    at: float
    seconds: float
    current: bool


def timeline(entries: Sequence[PhaseEntry], end: float | None, now: float) -> list[Step]:
    """Each phase lasts until the next one starts; the last until the job's end, or `now`
    while it runs (then it is the current one). "Done" marks the end and is no step."""
    steps: list[Step] = []
    ordered = sorted(entries, key=lambda e: e.at)
    for entry in ordered:
        if entry.phase is Phase.DONE:
            end = entry.at if end is None else min(end, entry.at)
    shown = [e for e in ordered if e.phase is not Phase.DONE]
    for i, entry in enumerate(shown):
        last = i == len(shown) - 1
        until = shown[i + 1].at if not last else (end if end is not None else now)
        steps.append(
            Step(
                phase=entry.phase,
                label=entry.label,
                text=entry.text,
                at=entry.at,
                seconds=max(0.0, until - entry.at),
                current=last and end is None,
            )
        )
    return steps


def format_span(seconds: float) -> str:
    """0.4 s, 12 s, 3 min 05 s, 2 h 10 min: tenths only where they matter."""
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {(whole % 3600) // 60:02d} min"


__all__ = ["SYSTEM_STREAM", "PhaseRecorder", "Step", "format_span", "timeline"]
