"""The embedded SQLite store: projects, jobs, status history, log offsets and metric samples.

Concurrency model:

* Threads: one connection per `Store`, opened with `check_same_thread=False` and used only under
  an `RLock`, so runner threads (writers) and the GUI thread (reader) never interleave statements.
* Processes: the file is in WAL mode so one process reads while another writes; every write is a
  short `BEGIN IMMEDIATE` transaction (the write lock is taken up front, so two writers queue on
  the busy timeout instead of deadlocking on a lock upgrade).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from trainer_gui.core.errors import JobNotFound, UserError
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.paths import data_home
from trainer_gui.core.runners.events import JobStatus, Phase
from trainer_gui.core.store.annotations import AnnotationsStore
from trainer_gui.core.store.migrations import (
    SCHEMA_VERSION,
    migrate,
    newer_schema_error,
    schema_version,
)
from trainer_gui.core.store.models import (
    TERMINAL_STATUSES,
    JobRecord,
    PhaseEntry,
    Project,
    StatusEntry,
)
from trainer_gui.core.store.queue import QueueStore
from trainer_gui.core.store.sweeps import SweepStore

log = logging.getLogger(__name__)

DB_FILENAME = "trainer-gui.sqlite3"
# Long enough to ride out another process's write transaction, short enough to surface a hang.
BUSY_TIMEOUT_S = 10.0
# Bump applied by touch_project so the project opened last sorts first even on coarse clocks.
_RECENT_EPSILON_S = 0.001

# The log_offsets row that holds job.log's committed length (no host or stream is empty).
_LOG_SIZE_KEY = ("", "job.log")

_TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))

#: Phases a job enters once: a second "first log line" would only be a later line.
_ONCE_PHASES = frozenset({Phase.QUEUED, Phase.RUNNING, Phase.FIRST_METRIC, Phase.DONE})


# The distinct metric names of job `:job`, one index seek each (a "skip scan"), instead of
# reading every sample of the job as DISTINCT / GROUP BY would.
_JOB_NAMES_CTE = """
WITH RECURSIVE walk(n) AS (
    SELECT (SELECT MIN(name) FROM metric_samples WHERE job_id = :job)
    UNION ALL
    SELECT (SELECT MIN(name) FROM metric_samples WHERE job_id = :job AND name > walk.n)
    FROM walk WHERE walk.n IS NOT NULL
),
names(n) AS (SELECT n FROM walk WHERE n IS NOT NULL)
"""
_SAMPLE_COLUMNS = "m.id, m.name, m.value, m.host, m.wall_time, m.step, m.epoch"


class ProjectNotFound(UserError):
    """No project with the given id (it may have been removed in another window)."""


class DuplicateJob(UserError):
    """A job with this id already exists."""


def default_db_path() -> Path:
    """Where the app keeps its database unless told otherwise (honours TRAINER_GUI_HOME)."""
    return data_home() / DB_FILENAME


def _normalize_project_path(path: str) -> str:
    """Pure string clean-up (no filesystem access) so `/a/b/` and `/a/b` are one project."""
    if not path:
        raise ValueError("project path must not be empty")
    return os.path.normpath(path)


def _check_str(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


def _to_float(what: str, value: object) -> float:
    """float() that refuses text, so a stray string can never be stored in a numeric column."""
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    return float(value)  # type: ignore[arg-type]  # numpy/torch scalars implement __float__


def _to_int(what: str, value: object) -> int:
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    return int(value)  # type: ignore[call-overload]  # numpy ints implement __int__


def _sample_row(job_id: str, sample: MetricSample) -> tuple[Any, ...]:
    """Validate one sample into a row; raising here aborts the whole batch's transaction.

    Hot path (10,000 samples per batch): exact-type checks first, slow conversions only when the
    types are not already the plain ones.
    """
    name, host, value = sample.name, sample.host, sample.value
    step, epoch, wall_time = sample.step, sample.epoch, sample.wall_time
    if type(name) is not str:
        name = _check_str("metric name", name)
    if type(host) is not str:
        host = _check_str(f"host of metric {name!r}", host)
    if type(value) is not float:
        value = _to_float(f"value of metric {name!r}", value)
    if value != value:  # NaN: SQLite would store NULL anyway; NULL reads back as NaN
        value = None  # type: ignore[assignment]
    if step is not None and type(step) is not int:
        step = _to_int(f"step of metric {name!r}", step)
    if epoch is not None and type(epoch) is not float:
        epoch = _to_float(f"epoch of metric {name!r}", epoch)
    if type(wall_time) is not float:
        wall_time = _to_float(f"wall_time of metric {name!r}", wall_time)
    return (job_id, host, name, step, epoch, value, wall_time)


def _offset_row(job_id: str, key: tuple[str, str], offset: str, now: float) -> tuple[Any, ...]:
    host, stream = key
    return (
        job_id,
        _check_str("offset host", host),
        _check_str("offset stream", stream),
        _check_str(f"offset for {key!r}", offset),
        now,
    )


def _project(row: sqlite3.Row) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        path=row["path"],
        settings=json.loads(row["settings"]),
        created_at=row["created_at"],
        last_opened_at=row["last_opened_at"],
    )


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        backend=row["backend"],
        spec_yaml=row["spec_yaml"],
        status=row["status"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        failure_reason=row["failure_reason"],
        backend_ids=json.loads(row["backend_ids"]),
        run_dir=row["run_dir"],
    )


def _insert_phase(
    conn: sqlite3.Connection, job_id: str, phase: Phase, detail: str, at: float
) -> bool:
    """Insert one phase row inside the caller's transaction, unless it repeats (see add_phase)."""
    last = conn.execute(
        "SELECT phase, detail FROM job_phases WHERE job_id = ? ORDER BY id DESC LIMIT 1",
        (job_id,),
    ).fetchone()
    if last is not None and (last["phase"], last["detail"]) == (phase.value, detail):
        return False
    if (
        phase in _ONCE_PHASES
        and conn.execute(
            "SELECT 1 FROM job_phases WHERE job_id = ? AND phase = ? LIMIT 1", (job_id, phase.value)
        ).fetchone()
    ):
        return False
    conn.execute(
        "INSERT INTO job_phases (job_id, phase, detail, at) VALUES (?, ?, ?, ?)",
        (job_id, phase.value, detail, at),
    )
    return True


class Store(QueueStore, SweepStore, AnnotationsStore):
    """Everything the app remembers between runs, in one SQLite file shared by GUI and CLI."""

    path: Path

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._own_writes = 0
        self._closed = False
        self._conn = self._open()

    # ------------------------------------------------------------------ connection plumbing

    def _open(self) -> sqlite3.Connection:
        where = f"The database {self.path}"
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # shared across threads, serialized by self._lock
            )
        except sqlite3.Error as exc:
            raise UserError(
                f"Cannot open the database {self.path}: {exc}. Check the folder's permissions, "
                "or point TRAINER_GUI_HOME at another folder."
            ) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            # Refuse a newer file before anything (even the journal mode) is written to it.
            found = schema_version(conn)
            if found > SCHEMA_VERSION:
                raise newer_schema_error(found, where)
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            if mode != "wal":
                log.warning(
                    "%s: journal mode is %r, not WAL; concurrent access is slower", where, mode
                )
            conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; much faster commits
            migrate(conn, where=where)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise UserError(
                f"{where} cannot be used ({exc}). If it is not a trainer-gui database, move it "
                "away, or point TRAINER_GUI_HOME at another folder."
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; rolled back entirely if the body raises."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._own_writes += 1

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def close(self) -> None:
        """Close the connection (safe to call twice); SQLite checkpoints the WAL itself."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The schema version of the open file (always the newest once opened)."""
        with self._lock:
            return schema_version(self._conn)

    def change_marker(self) -> tuple[int, int]:
        """Changes whenever anything was committed, by this Store or another process.

        Cheap to poll from a GUI timer: refresh views only when the marker moved.
        """
        with self._lock:
            other = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            return other, self._own_writes

    # ------------------------------------------------------------------ projects

    def add_project(self, name: str, path: str, settings: dict[str, Any] | None = None) -> Project:
        """Register a project folder; adding a path already known returns that project as is."""
        norm = _normalize_project_path(path)
        settings_json = json.dumps(settings or {}, sort_keys=True)
        now = time.time()
        with self._write() as conn:
            row = conn.execute("SELECT * FROM projects WHERE path = ?", (norm,)).fetchone()
            if row is not None:
                return _project(row)
            cur = conn.execute(
                "INSERT INTO projects (name, path, settings, created_at) VALUES (?, ?, ?, ?)",
                (name, norm, settings_json, now),
            )
            row = conn.execute("SELECT * FROM projects WHERE id = ?", (cur.lastrowid,)).fetchone()
        return _project(row)

    def get_project(self, project_id: int) -> Project | None:
        row = self._query_one("SELECT * FROM projects WHERE id = ?", (project_id,))
        return None if row is None else _project(row)

    def project_by_path(self, path: str) -> Project | None:
        row = self._query_one(
            "SELECT * FROM projects WHERE path = ?", (_normalize_project_path(path),)
        )
        return None if row is None else _project(row)

    def list_projects(self) -> list[Project]:
        """Most recently opened first; never-opened projects rank by when they were added."""
        rows = self._query(
            "SELECT * FROM projects ORDER BY COALESCE(last_opened_at, created_at) DESC, id DESC"
        )
        return [_project(r) for r in rows]

    def _update_project(self, project_id: int, sql: str, params: Sequence[Any]) -> None:
        with self._write() as conn:
            cur = conn.execute(sql, (*params, project_id))
            if cur.rowcount == 0:
                raise ProjectNotFound(f"No project with id {project_id} (was it removed?)")

    def rename_project(self, project_id: int, name: str) -> None:
        self._update_project(project_id, "UPDATE projects SET name = ? WHERE id = ?", (name,))

    def update_project_settings(self, project_id: int, settings: dict[str, Any]) -> None:
        """Replace the project's settings (not a merge: the UI owns the whole dict)."""
        self._update_project(
            project_id,
            "UPDATE projects SET settings = ? WHERE id = ?",
            (json.dumps(settings, sort_keys=True),),
        )

    def touch_project(self, project_id: int) -> None:
        """Mark as just opened; nudged past every other project so it sorts first for sure."""
        self._update_project(
            project_id,
            """
            UPDATE projects SET last_opened_at = MAX(
                ?,
                COALESCE(
                    (SELECT MAX(COALESCE(last_opened_at, created_at)) FROM projects WHERE id != ?),
                    0
                ) + ?
            )
            WHERE id = ?
            """,
            (time.time(), project_id, _RECENT_EPSILON_S),
        )

    def remove_project(self, project_id: int) -> None:
        """Forget the project (idempotent); its jobs stay, detached (project_id NULL)."""
        with self._write() as conn:
            # The foreign key does this too; spelled out so it holds even if FKs were off.
            conn.execute("UPDATE jobs SET project_id = NULL WHERE project_id = ?", (project_id,))
            conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))

    # ------------------------------------------------------------------ jobs

    def create_job(
        self,
        job_id: str,
        name: str,
        backend: str,
        spec_yaml: str,
        run_dir: str,
        project_id: int | None = None,
        *,
        created_at: float | None = None,
    ) -> JobRecord:
        """Persist a new job as Pending, with its first history entry."""
        now = time.time() if created_at is None else created_at
        pending = JobStatus.PENDING.value
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                raise DuplicateJob(f"A job with id {job_id!r} already exists")
            if (
                project_id is not None
                and not conn.execute(
                    "SELECT 1 FROM projects WHERE id = ?", (project_id,)
                ).fetchone()
            ):
                raise ProjectNotFound(f"No project with id {project_id} (was it removed?)")
            conn.execute(
                """
                INSERT INTO jobs (id, project_id, name, backend, spec_yaml, status, created_at,
                                  backend_ids, run_dir)
                VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?)
                """,
                (job_id, project_id, name, backend, spec_yaml, pending, now, run_dir),
            )
            conn.execute(
                "INSERT INTO job_status (job_id, status, message, at) VALUES (?, ?, '', ?)",
                (job_id, pending, now),
            )
            _insert_phase(conn, job_id, Phase.QUEUED, "", now)
        return JobRecord(
            id=job_id,
            project_id=project_id,
            name=name,
            backend=backend,
            spec_yaml=spec_yaml,
            status=pending,
            created_at=now,
            started_at=None,
            ended_at=None,
            failure_reason=None,
            backend_ids={},
            run_dir=run_dir,
        )

    def get_job(self, key: str) -> JobRecord | None:
        """Exact id, else the newest job with that name, else the one id starting with `key`."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (key,)).fetchone()
            if row is None:
                row = self._conn.execute(
                    "SELECT * FROM jobs WHERE name = ? "
                    "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    (key,),
                ).fetchone()
            if row is None and key:
                rows = self._prefix_rows(key, limit=2)
                row = rows[0] if len(rows) == 1 else None
        return None if row is None else _job(row)

    def _prefix_rows(self, prefix: str, limit: int) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(
                "SELECT * FROM jobs WHERE substr(id, 1, ?) = ? "
                "ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (len(prefix), prefix, limit),
            ).fetchall()

    def require_job(self, key: str) -> JobRecord:
        """Like `get_job`, but raises `JobNotFound` with a message fit for the CLI or a dialog."""
        job = self.get_job(key)
        if job is not None:
            return job
        candidates = self._prefix_rows(key, limit=6) if key else []
        if len(candidates) > 1:
            shown = ", ".join(r["id"] for r in candidates[:5])
            more = ", …" if len(candidates) > 5 else ""
            raise JobNotFound(
                f"{key!r} matches several jobs ({shown}{more}); type more of the job id"
            )
        raise JobNotFound(f"No job with id or name {key!r}")

    def list_jobs(
        self, project_id: int | None = None, limit: int | None = None, active_only: bool = False
    ) -> list[JobRecord]:
        """Newest first; `project_id=None` means every job, whichever project."""
        where: list[str] = []
        params: list[Any] = []
        if project_id is not None:
            where.append("project_id = ?")
            params.append(project_id)
        if active_only:
            where.append(f"status NOT IN ({_TERMINAL_SQL})")
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(-1 if limit is None else limit)
        return [_job(r) for r in self._query(sql, params)]

    def set_status(
        self, job_id: str, status: str, message: str = "", at: float | None = None
    ) -> None:
        """Record a status change; once a job is finished, later changes are ignored.

        Raises `JobNotFound` for an unknown job and `ValueError` for an unknown status.
        """
        new = JobStatus(status)
        when = time.time() if at is None else at
        with self._write() as conn:
            row = conn.execute(
                "SELECT status, started_at FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise JobNotFound(f"No job with id {job_id!r}")
            if row["status"] in TERMINAL_STATUSES:
                log.debug("job %s is %s; ignoring %s", job_id, row["status"], new.value)
                return
            changes: dict[str, Any] = {"status": new.value}
            if new is JobStatus.TRAINING:
                trained_before = conn.execute(
                    "SELECT 1 FROM job_status WHERE job_id = ? AND status = ? LIMIT 1",
                    (job_id, JobStatus.TRAINING.value),
                ).fetchone()
                if trained_before is None:
                    changes["started_at"] = when  # training start wins over Starting
            elif new is JobStatus.STARTING and row["started_at"] is None:
                changes["started_at"] = when
            if new.is_terminal:
                changes["ended_at"] = when
                _insert_phase(conn, job_id, Phase.DONE, "", when)
                if new is JobStatus.FAILED:
                    changes["failure_reason"] = message or None
                elif new is JobStatus.STOPPED and message:
                    changes["failure_reason"] = message
            conn.execute(
                "INSERT INTO job_status (job_id, status, message, at) VALUES (?, ?, ?, ?)",
                (job_id, new.value, message, when),
            )
            assignments = ", ".join(f"{col} = ?" for col in changes)
            conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*changes.values(), job_id))

    def status_history(self, job_id: str) -> list[StatusEntry]:
        """Oldest first."""
        rows = self._query(
            "SELECT status, message, at FROM job_status WHERE job_id = ? ORDER BY id", (job_id,)
        )
        return [StatusEntry(status=r["status"], message=r["message"], at=r["at"]) for r in rows]

    def add_phase(
        self, job_id: str, phase: Phase | str, detail: str = "", at: float | None = None
    ) -> bool:
        """Record that the job entered `phase`; whether it was stored.

        Not stored: a repeat of the job's latest phase (same detail), a second first log line
        or first metric, and anything after the job ended. Raises `JobNotFound` for an
        unknown job and `ValueError` for an unknown phase."""
        new = Phase(phase)
        detail = _check_str("phase detail", detail)
        when = time.time() if at is None else _to_float("phase time", at)
        with self._write() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(f"No job with id {job_id!r}")
            if row["status"] in TERMINAL_STATUSES:
                return False
            return _insert_phase(conn, job_id, new, detail, when)

    def phases(self, job_id: str) -> list[PhaseEntry]:
        """The job's phase timeline, oldest first (empty for jobs from before phases)."""
        rows = self._query(
            "SELECT phase, detail, at FROM job_phases WHERE job_id = ? ORDER BY at, id", (job_id,)
        )
        entries = []
        for r in rows:
            try:
                entries.append(PhaseEntry(Phase(r["phase"]), r["detail"], r["at"]))
            except ValueError:  # written by a newer version: its phases mean nothing here
                log.debug("job %s: unknown phase %r skipped", job_id, r["phase"])
        return entries

    def update_backend_ids(self, job_id: str, data: Mapping[str, Any]) -> None:
        """Merge ids a later process needs to re-attach (pid, container id, ARN)."""
        with self._write() as conn:
            row = conn.execute("SELECT backend_ids FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(f"No job with id {job_id!r}")
            merged = json.loads(row["backend_ids"])
            merged.update(data)
            conn.execute(
                "UPDATE jobs SET backend_ids = ? WHERE id = ?",
                (json.dumps(merged, sort_keys=True), job_id),
            )

    def delete_job(self, job_id: str) -> None:
        """Delete the job and (by cascade) its history, offsets and samples; idempotent."""
        with self._write() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    # ------------------------------------------------------------------ logs and metrics

    def get_offsets(self, job_id: str) -> dict[tuple[str, str], str]:
        """Where each (host, stream) was last read up to, to resume without gaps or repeats."""
        rows = self._query(
            'SELECT host, stream, "offset" FROM log_offsets WHERE job_id = ?', (job_id,)
        )
        return {
            (r["host"], r["stream"]): r["offset"]
            for r in rows
            if (r["host"], r["stream"]) != _LOG_SIZE_KEY
        }

    def log_size(self, job_id: str) -> int | None:
        """How many bytes of the run folder's job.log the stored batches account for (None
        before the first batch): a follower that takes over cuts job.log back to this, so lines
        written by a process that died before its commit are not there twice."""
        row = self._query_one(
            'SELECT "offset" FROM log_offsets WHERE job_id = ? AND host = ? AND stream = ?',
            (job_id, *_LOG_SIZE_KEY),
        )
        if row is None:
            return None
        try:
            return int(row[0])
        except ValueError:
            log.warning("job %s: stored job.log size %r is not a number", job_id, row[0])
            return None

    def record_batch(
        self,
        job_id: str,
        offsets: Mapping[tuple[str, str], str],
        samples: Sequence[MetricSample],
        log_size: int | None = None,
    ) -> None:
        """Store new offsets, the samples parsed up to them and the length of job.log with
        their lines in it, in ONE transaction.

        Either all land or none does, so a crash or bad sample never leaves offsets pointing
        past samples that were lost (gaps) or samples whose offsets were not saved (duplicates);
        `log_size` lets the next follower drop job.log lines of a batch that never committed.
        """
        if log_size is not None:
            if type(log_size) is not int or log_size < 0:
                raise TypeError(f"log_size must be a non-negative int, got {log_size!r}")
            offsets = {**offsets, _LOG_SIZE_KEY: str(log_size)}
        if not offsets and not samples:
            return
        now = time.time()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise JobNotFound(f"No job with id {job_id!r}")
            conn.executemany(
                """
                INSERT INTO log_offsets (job_id, host, stream, "offset", updated_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (job_id, host, stream)
                DO UPDATE SET "offset" = excluded."offset", updated_at = excluded.updated_at
                """,
                (_offset_row(job_id, key, off, now) for key, off in offsets.items()),
            )
            conn.executemany(
                """
                INSERT INTO metric_samples (job_id, host, name, step, epoch, value, wall_time)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                (_sample_row(job_id, s) for s in samples),
            )

    def metric_samples(
        self,
        job_id: str,
        name: str | None = None,
        host: str | None = None,
        after_id: int = 0,
        *,
        limit: int | None = None,
    ) -> list[tuple[int, MetricSample]]:
        """Samples with row id > `after_id`, by row id; poll with the last id seen for new ones.

        Every plan walks the (job_id, name) index from `after_id` on, so a poll costs what it
        returns, not the size of the job: without a name, each of the job's names is visited.
        """
        params: dict[str, Any] = {
            "job": job_id,
            "after": after_id,
            "name": name,
            "host": host,
            "limit": -1 if limit is None else limit,
        }
        host_filter = "" if host is None else " AND m.host = :host"
        if name is not None:
            sql = f"""
                SELECT {_SAMPLE_COLUMNS} FROM metric_samples AS m
                WHERE m.job_id = :job AND m.name = :name AND m.id > :after{host_filter}
                ORDER BY m.id LIMIT :limit
            """
        else:
            sql = f"""
                {_JOB_NAMES_CTE}
                SELECT {_SAMPLE_COLUMNS} FROM names CROSS JOIN metric_samples AS m
                ON m.job_id = :job AND m.name = names.n AND m.id > :after{host_filter}
                ORDER BY m.id LIMIT :limit
            """
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.row_factory = None  # plain tuples: this can be 100,000s of rows
                rows = cur.execute(sql, params).fetchall()
            finally:
                cur.close()
        return [
            (rid, MetricSample(n, math.nan if v is None else v, h, w, st, ep))
            for rid, n, v, h, w, st, ep in rows
        ]

    def metric_names(self, job_id: str) -> list[str]:
        """Sorted; found by skipping through the index, so cheap however many samples exist."""
        rows = self._query(f"{_JOB_NAMES_CTE} SELECT n FROM names ORDER BY n", {"job": job_id})
        return [r[0] for r in rows]

    def last_metrics(self, job_id: str) -> dict[str, float]:
        """The newest value of each metric (any host): what a job list's columns show."""
        rows = self._query(
            f"""
            {_JOB_NAMES_CTE}
            SELECT n, (SELECT value FROM metric_samples
                       WHERE job_id = :job AND name = n ORDER BY id DESC LIMIT 1)
            FROM names ORDER BY n
            """,
            {"job": job_id},
        )
        return {r[0]: (math.nan if r[1] is None else r[1]) for r in rows}

    def metric_count(self, job_id: str) -> int:
        row = self._query_one("SELECT COUNT(*) FROM metric_samples WHERE job_id = ?", (job_id,))
        return 0 if row is None else int(row[0])
