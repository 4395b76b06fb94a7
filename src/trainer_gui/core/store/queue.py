"""The job queue's rows and the app-wide queue settings, on the store (a mixin of `Store`).

A local job is recorded as Queued with a row here (its priority, position and needs); a
scheduler claims it atomically (Queued -> Starting, `claimed_at` set), so two processes never
start one job, and the row goes once the job runs on its own. A scheduler that died between the
claim and the start leaves a claimed row and no start marker: the job goes back to the queue.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from trainer_gui.core.runners.events import JobStatus

QUEUED = JobStatus.QUEUED.value
STARTING = JobStatus.STARTING.value
STOPPED = JobStatus.STOPPED.value
ALL_GPUS = -1
"""`gpus` of a job that asks for every GPU of the machine."""


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    priority: int
    position: float
    gpus: int
    slots: int
    enqueued_at: float
    claimed_at: float | None


def _entry(row: sqlite3.Row) -> QueueEntry:
    return QueueEntry(
        job_id=row["job_id"],
        priority=int(row["priority"]),
        position=float(row["position"]),
        gpus=int(row["gpus"]),
        slots=int(row["slots"]),
        enqueued_at=float(row["enqueued_at"]),
        claimed_at=None if row["claimed_at"] is None else float(row["claimed_at"]),
    )


def _history(conn: sqlite3.Connection, job_id: str, status: str, message: str, at: float) -> None:
    conn.execute(
        "INSERT INTO job_status (job_id, status, message, at) VALUES (?, ?, ?, ?)",
        (job_id, status, message, at),
    )


class QueueStore:
    """Queue methods of `Store` (which provides `_write` and `_query`)."""

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:  # pragma: no cover
        raise NotImplementedError

    # -- entries -------------------------------------------------------------------------------

    def enqueue(self, job_id: str, gpus: int = 0, slots: int = 1, priority: int = 0) -> None:
        """Put a recorded job at the end of its priority's line, as Queued."""
        now = time.time()
        with self._write() as conn:
            last = conn.execute("SELECT MAX(position) FROM job_queue").fetchone()[0]
            conn.execute(
                "INSERT INTO job_queue (job_id, priority, position, gpus, slots, enqueued_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, priority, (last or 0.0) + 1.0, gpus, slots, now),
            )
            conn.execute("UPDATE jobs SET status = ? WHERE id = ?", (QUEUED, job_id))
            _history(conn, job_id, QUEUED, "", now)

    def queue_entries(self, claimed: bool | None = None) -> list[QueueEntry]:
        """In the order jobs start: priority first (highest), then position. `claimed`:
        only claimed (True) or unclaimed (False) rows; None for all."""
        where = {None: "", True: "WHERE claimed_at IS NOT NULL", False: "WHERE claimed_at IS NULL"}
        rows = self._query(
            f"SELECT * FROM job_queue {where[claimed]} ORDER BY priority DESC, position, job_id"
        )
        return [_entry(r) for r in rows]

    def queue_entry(self, job_id: str) -> QueueEntry | None:
        rows = self._query("SELECT * FROM job_queue WHERE job_id = ?", (job_id,))
        return _entry(rows[0]) if rows else None

    def claim(self, job_id: str) -> bool:
        """Queued -> Starting, atomically: True for exactly one caller."""
        now = time.time()
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE jobs SET status = ?, started_at = COALESCE(started_at, ?)"
                " WHERE id = ? AND status = ?",
                (STARTING, now, job_id, QUEUED),
            ).rowcount
            if not changed:
                return False
            # No history row: the runner records Starting as it starts the job.
            conn.execute("UPDATE job_queue SET claimed_at = ? WHERE job_id = ?", (now, job_id))
        return True

    def requeue(self, job_id: str, message: str) -> bool:
        """A claimed job that never started goes back to its place in the queue."""
        now = time.time()
        with self._write() as conn:
            if not conn.execute(
                "SELECT 1 FROM job_queue WHERE job_id = ? AND claimed_at IS NOT NULL", (job_id,)
            ).fetchone():
                return False
            conn.execute("UPDATE job_queue SET claimed_at = NULL WHERE job_id = ?", (job_id,))
            conn.execute(
                "UPDATE jobs SET status = ?, started_at = NULL WHERE id = ?", (QUEUED, job_id)
            )
            _history(conn, job_id, QUEUED, message, now)
        return True

    def dequeue(self, job_id: str) -> None:
        """The job runs on its own (or ended): its row goes."""
        with self._write() as conn:
            conn.execute("DELETE FROM job_queue WHERE job_id = ?", (job_id,))

    def cancel_queued(self, job_id: str, message: str = "Cancelled while queued") -> bool:
        """Queued -> Stopped, atomically; False when a scheduler claimed it first."""
        now = time.time()
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE jobs SET status = ?, ended_at = ?, failure_reason = ?"
                " WHERE id = ? AND status = ?",
                (STOPPED, now, message, job_id, QUEUED),
            ).rowcount
            if not changed:
                return False
            conn.execute("DELETE FROM job_queue WHERE job_id = ?", (job_id,))
            _history(conn, job_id, STOPPED, message, now)
        return True

    def move_in_queue(self, job_id: str, index: int) -> None:
        """Put the job at `index` (0 = next) among the waiting jobs of its priority."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT priority FROM job_queue WHERE job_id = ? AND claimed_at IS NULL",
                (job_id,),
            ).fetchone()
            if row is None:
                raise KeyError(job_id)
            others = [
                float(r[0])
                for r in conn.execute(
                    "SELECT position FROM job_queue WHERE priority = ? AND job_id != ?"
                    " AND claimed_at IS NULL ORDER BY position, job_id",
                    (row[0], job_id),
                )
            ]
            index = max(0, min(index, len(others)))
            before = others[index - 1] if index > 0 else (others[0] - 2.0 if others else 0.0)
            after = others[index] if index < len(others) else before + 2.0
            conn.execute(
                "UPDATE job_queue SET position = ? WHERE job_id = ?",
                ((before + after) / 2.0, job_id),
            )

    def set_queue_priority(self, job_id: str, priority: int) -> None:
        with self._write() as conn:
            if not conn.execute(
                "UPDATE job_queue SET priority = ? WHERE job_id = ?", (priority, job_id)
            ).rowcount:
                raise KeyError(job_id)

    # -- app state -----------------------------------------------------------------------------

    def app_state(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM app_state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_app_state(self, key: str, value: Any) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM app_state WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO app_state (key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)),
                )
