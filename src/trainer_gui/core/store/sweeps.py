"""Local sweeps and their trials, on the store (a mixin of `Store`).

A sweep row keeps the sweep file's text (so a restarted job host can rebuild it without the
file) and its state; a trial row keeps the values Optuna chose and the id of the job that runs
them. The trial row is written before its job is submitted, with the job id already chosen: a
process that dies in between leaves a row whose job does not exist yet, which the next driver
submits, so no trial is lost and none runs twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

RUNNING = "running"
STOPPING = "stopping"
COMPLETED = "completed"
STOPPED = "stopped"
SWEEP_STATUSES = (RUNNING, STOPPING, COMPLETED, STOPPED)
ACTIVE_SWEEP = (RUNNING, STOPPING)

T_QUEUED = "queued"
T_RUNNING = "running"
T_COMPLETE = "complete"
T_PRUNED = "pruned"
T_FAILED = "failed"
T_STOPPED = "stopped"  # by a person, or with its sweep
TRIAL_STATES = (T_QUEUED, T_RUNNING, T_COMPLETE, T_PRUNED, T_FAILED, T_STOPPED)
ACTIVE_TRIAL = (T_QUEUED, T_RUNNING)


class DuplicateSweep(ValueError):
    pass


@dataclass(frozen=True)
class SweepRecord:
    id: str
    name: str
    project_id: int | None
    backend: str
    sweep_yaml: str
    base_dir: str | None
    source: str | None
    status: str
    objective: str
    goal: str
    message: str
    created_at: float
    ended_at: float | None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_SWEEP


@dataclass(frozen=True)
class TrialRecord:
    sweep_id: str
    number: int
    job_id: str
    params: dict[str, Any] = field(hash=False)
    state: str
    value: float | None
    created_at: float
    ended_at: float | None

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_TRIAL


def _sweep(row: sqlite3.Row) -> SweepRecord:
    return SweepRecord(
        id=row["id"],
        name=row["name"],
        project_id=row["project_id"],
        backend=row["backend"],
        sweep_yaml=row["sweep_yaml"],
        base_dir=row["base_dir"],
        source=row["source"],
        status=row["status"],
        objective=row["objective"],
        goal=row["goal"],
        message=row["message"],
        created_at=float(row["created_at"]),
        ended_at=None if row["ended_at"] is None else float(row["ended_at"]),
    )


def _trial(row: sqlite3.Row) -> TrialRecord:
    return TrialRecord(
        sweep_id=row["sweep_id"],
        number=int(row["number"]),
        job_id=row["job_id"],
        params=json.loads(row["params"]),
        state=row["state"],
        value=None if row["value"] is None else float(row["value"]),
        created_at=float(row["created_at"]),
        ended_at=None if row["ended_at"] is None else float(row["ended_at"]),
    )


class SweepStore:
    """Sweep methods of `Store` (which provides `_write` and `_query`)."""

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:  # pragma: no cover
        raise NotImplementedError

    # -- sweeps --------------------------------------------------------------------------------

    def create_sweep(
        self,
        sweep_id: str,
        name: str,
        backend: str,
        sweep_yaml: str,
        objective: str,
        goal: str,
        *,
        base_dir: str | None = None,
        source: str | None = None,
        project_id: int | None = None,
    ) -> SweepRecord:
        now = time.time()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone():
                raise DuplicateSweep(f"A sweep with id {sweep_id!r} already exists")
            conn.execute(
                "INSERT INTO sweeps (id, name, project_id, backend, sweep_yaml, base_dir, source,"
                " status, objective, goal, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sweep_id,
                    name,
                    project_id,
                    backend,
                    sweep_yaml,
                    base_dir,
                    source,
                    RUNNING,
                    objective,
                    goal,
                    now,
                ),
            )
        found = self.get_sweep(sweep_id)
        assert found is not None
        return found

    def get_sweep(self, key: str) -> SweepRecord | None:
        """Exact id, else the newest sweep with that name, else the one id starting with it."""
        rows = self._query("SELECT * FROM sweeps WHERE id = ?", (key,))
        if not rows:
            rows = self._query(
                "SELECT * FROM sweeps WHERE name = ? ORDER BY created_at DESC LIMIT 1", (key,)
            )
        if not rows and key:
            rows = self._query(
                "SELECT * FROM sweeps WHERE substr(id, 1, ?) = ? LIMIT 2", (len(key), key)
            )
            rows = rows if len(rows) == 1 else []
        return _sweep(rows[0]) if rows else None

    def list_sweeps(self, active_only: bool = False) -> list[SweepRecord]:
        """Newest first."""
        where = f"WHERE status IN ('{RUNNING}', '{STOPPING}')" if active_only else ""
        rows = self._query(f"SELECT * FROM sweeps {where} ORDER BY created_at DESC, rowid DESC")
        return [_sweep(r) for r in rows]

    def active_sweep_ids(self) -> list[str]:
        """The one cheap query the job host makes every pass."""
        rows = self._query(
            f"SELECT id FROM sweeps WHERE status IN ('{RUNNING}', '{STOPPING}') ORDER BY created_at"
        )
        return [r[0] for r in rows]

    def set_sweep_status(self, sweep_id: str, status: str, message: str = "") -> bool:
        """Move an active sweep on; a finished one stays as it is (False)."""
        if status not in SWEEP_STATUSES:
            raise ValueError(f"unknown sweep status {status!r}")
        ended = time.time() if status in (COMPLETED, STOPPED) else None
        with self._write() as conn:
            return bool(
                conn.execute(
                    "UPDATE sweeps SET status = ?, message = ?, ended_at = ?"
                    f" WHERE id = ? AND status IN ('{RUNNING}', '{STOPPING}')",
                    (status, message, ended, sweep_id),
                ).rowcount
            )

    # -- trials --------------------------------------------------------------------------------

    def add_trial(self, sweep_id: str, number: int, job_id: str, params: dict[str, Any]) -> None:
        """Record a trial before its job exists; a second row with that number is refused
        (sqlite3.IntegrityError), so two drivers can never both add trial N."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO sweep_trials (sweep_id, number, job_id, params, state, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (sweep_id, number, job_id, json.dumps(params), T_QUEUED, time.time()),
            )

    def trials(self, sweep_id: str) -> list[TrialRecord]:
        """By trial number."""
        rows = self._query(
            "SELECT * FROM sweep_trials WHERE sweep_id = ? ORDER BY number", (sweep_id,)
        )
        return [_trial(r) for r in rows]

    def trial_of_job(self, job_id: str) -> TrialRecord | None:
        rows = self._query("SELECT * FROM sweep_trials WHERE job_id = ?", (job_id,))
        return _trial(rows[0]) if rows else None

    def set_trial_state(
        self, sweep_id: str, number: int, state: str, value: float | None = None
    ) -> None:
        if state not in TRIAL_STATES:
            raise ValueError(f"unknown trial state {state!r}")
        ended = None if state in ACTIVE_TRIAL else time.time()
        with self._write() as conn:
            conn.execute(
                "UPDATE sweep_trials SET state = ?, value = ?, ended_at = ?"
                " WHERE sweep_id = ? AND number = ?",
                (state, value, ended, sweep_id, number),
            )

    def delete_sweep(self, sweep_id: str) -> None:
        """The sweep and its trial rows (the trial jobs stay, as jobs)."""
        with self._write() as conn:
            conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,))
