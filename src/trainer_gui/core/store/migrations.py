"""Numbered schema steps; `PRAGMA user_version` records how many have been applied.

Rules for new steps: append only, never edit a released step, keep each step runnable inside one
transaction (no `executescript`, which commits on its own), and bump nothing else: the newest
version is simply the last step's number.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from trainer_gui.core.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One step from `version - 1` to `version`: SQL statements, then optional Python."""

    version: int
    description: str
    sql: tuple[str, ...] = ()
    python: Callable[[sqlite3.Connection], None] | None = None

    def apply(self, conn: sqlite3.Connection) -> None:
        for statement in self.sql:
            conn.execute(statement)
        if self.python is not None:
            self.python(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "projects, jobs, status history, log offsets, metric samples",
        (
            """
            CREATE TABLE projects (
                id             INTEGER PRIMARY KEY AUTOINCREMENT,
                name           TEXT NOT NULL,
                path           TEXT NOT NULL UNIQUE,
                settings       TEXT NOT NULL DEFAULT '{}',
                created_at     REAL NOT NULL,
                last_opened_at REAL
            )
            """,
            """
            CREATE TABLE jobs (
                id             TEXT PRIMARY KEY,
                project_id     INTEGER REFERENCES projects(id) ON DELETE SET NULL,
                name           TEXT NOT NULL,
                backend        TEXT NOT NULL,
                spec_yaml      TEXT NOT NULL,
                status         TEXT NOT NULL,
                created_at     REAL NOT NULL,
                started_at     REAL,
                ended_at       REAL,
                failure_reason TEXT,
                backend_ids    TEXT NOT NULL DEFAULT '{}',
                run_dir        TEXT NOT NULL
            )
            """,
            "CREATE INDEX jobs_created ON jobs(created_at)",
            "CREATE INDEX jobs_name ON jobs(name, created_at)",
            """
            CREATE TABLE job_status (
                id      INTEGER PRIMARY KEY,
                job_id  TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                status  TEXT NOT NULL,
                message TEXT NOT NULL DEFAULT '',
                at      REAL NOT NULL
            )
            """,
            "CREATE INDEX job_status_job ON job_status(job_id)",
            """
            CREATE TABLE log_offsets (
                job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                host       TEXT NOT NULL,
                stream     TEXT NOT NULL,
                "offset"   TEXT NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (job_id, host, stream)
            ) WITHOUT ROWID
            """,
            # No AUTOINCREMENT (it costs ~20% on bulk inserts): a new rowid is max(rowid) + 1,
            # and a job's own rows are never deleted while it is polled, so ids a reader of that
            # job has seen stay below new ones, which is all `after_id` polling needs.
            # A NULL value stands for NaN (SQLite cannot store NaN): diverging losses are kept.
            """
            CREATE TABLE metric_samples (
                id        INTEGER PRIMARY KEY,
                job_id    TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                host      TEXT NOT NULL,
                name      TEXT NOT NULL,
                step      INTEGER,
                epoch     REAL,
                value     REAL,
                wall_time REAL NOT NULL
            )
            """,
            "CREATE INDEX metric_samples_job_name ON metric_samples(job_id, name)",
        ),
    ),
    Migration(
        2,
        "index jobs by project so per-project lists and project removal stay fast",
        ("CREATE INDEX jobs_project_created ON jobs(project_id, created_at)",),
    ),
    # Jobs from before have no phases: nothing was measured, and none are made up.
    Migration(
        3,
        "job phases: what a run does before its first log line and after its last",
        (
            """
            CREATE TABLE job_phases (
                id      INTEGER PRIMARY KEY,
                job_id  TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                phase   TEXT NOT NULL,
                detail  TEXT NOT NULL DEFAULT '',
                at      REAL NOT NULL
            )
            """,
            "CREATE INDEX job_phases_job ON job_phases(job_id, at)",
        ),
    ),
    # The local job queue: a job waits here (status Queued) until the resources it needs are
    # free; a scheduler claims it (claimed_at) and the row goes once the job runs on its own.
    Migration(
        4,
        "the job queue, and app-wide state the job host and the CLI share",
        (
            """
            CREATE TABLE job_queue (
                job_id      TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
                priority    INTEGER NOT NULL DEFAULT 0,
                position    REAL NOT NULL,
                gpus        INTEGER NOT NULL DEFAULT 0,
                slots       INTEGER NOT NULL DEFAULT 1,
                enqueued_at REAL NOT NULL,
                claimed_at  REAL
            )
            """,
            "CREATE INDEX job_queue_order ON job_queue(priority DESC, position)",
            """
            CREATE TABLE app_state (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID
            """,
        ),
    ),
    # Local sweeps: the sweep file and its state, and one row per trial. A trial row is written
    # (with the job id it will get) before its job is submitted, so a crash in between leaves a
    # row to submit again, never a job nobody counts; no foreign key to jobs for that reason.
    Migration(
        5,
        "local sweeps and their trials",
        (
            """
            CREATE TABLE sweeps (
                id         TEXT PRIMARY KEY,
                name       TEXT NOT NULL,
                project_id INTEGER REFERENCES projects(id) ON DELETE SET NULL,
                backend    TEXT NOT NULL,
                sweep_yaml TEXT NOT NULL,
                base_dir   TEXT,
                source     TEXT,
                status     TEXT NOT NULL,
                objective  TEXT NOT NULL,
                goal       TEXT NOT NULL,
                message    TEXT NOT NULL DEFAULT '',
                created_at REAL NOT NULL,
                ended_at   REAL
            )
            """,
            "CREATE INDEX sweeps_status ON sweeps(status)",
            """
            CREATE TABLE sweep_trials (
                sweep_id   TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
                number     INTEGER NOT NULL,
                job_id     TEXT NOT NULL UNIQUE,
                params     TEXT NOT NULL,
                state      TEXT NOT NULL,
                value      REAL,
                created_at REAL NOT NULL,
                ended_at   REAL,
                PRIMARY KEY (sweep_id, number)
            )
            """,
        ),
    ),
    # What the user says about a run in the runs table: tags (a JSON list) and a free note.
    Migration(
        6,
        "run annotations: tags and a note per run",
        (
            """
            CREATE TABLE run_annotations (
                job_id     TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
                tags       TEXT NOT NULL DEFAULT '[]',
                note       TEXT NOT NULL DEFAULT '',
                updated_at REAL NOT NULL
            ) WITHOUT ROWID
            """,
        ),
    ),
)

SCHEMA_VERSION: int = MIGRATIONS[-1].version


class NewerSchemaError(UserError):
    """The database was written by a newer trainer-gui; we refuse to touch it."""


def _check_sequence() -> None:
    expected = list(range(1, len(MIGRATIONS) + 1))
    actual = [m.version for m in MIGRATIONS]
    if actual != expected:  # pragma: no cover - guards against a bad edit of this file
        raise RuntimeError(f"migration versions must be 1..N in order, got {actual}")


_check_sequence()


def schema_version(conn: sqlite3.Connection) -> int:
    """The version stored in the file (0 for a new, empty database)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def newer_schema_error(found: int, where: str) -> NewerSchemaError:
    return NewerSchemaError(
        f"{where} was written by a newer version of trainer-gui (database schema v{found}; "
        f"this version understands up to v{SCHEMA_VERSION}). Update trainer-gui, or point "
        "TRAINER_GUI_HOME at another folder. The file was left untouched."
    )


def migrate(
    conn: sqlite3.Connection, target: int | None = None, where: str = "The database"
) -> int:
    """Bring the schema up to `target` (default: newest) in one write transaction.

    The version is re-read after taking the write lock, so two processes opening a fresh file at
    the same time cannot both apply a step. `conn` must be in autocommit mode
    (`isolation_level=None`). Returns the version the file ends at.
    """
    goal = SCHEMA_VERSION if target is None else target
    if not 0 <= goal <= SCHEMA_VERSION:
        raise ValueError(f"target must be between 0 and {SCHEMA_VERSION}, got {goal}")
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise newer_schema_error(found, where)
    if found >= goal:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise newer_schema_error(current, where)
        for step in MIGRATIONS[current:goal]:
            log.info("%s: schema v%d -> v%d", where, current, step.version)
            step.apply(conn)
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some SQLite errors already rolled back
            conn.execute("ROLLBACK")
        raise
    return max(current, goal)
