"""The embedded SQLite store (projects, jobs, status history, log offsets, metric samples)."""

from trainer_gui.core.store.db import (
    BUSY_TIMEOUT_S,
    DB_FILENAME,
    DuplicateJob,
    ProjectNotFound,
    Store,
    default_db_path,
)
from trainer_gui.core.store.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    NewerSchemaError,
    migrate,
)
from trainer_gui.core.store.models import (
    TERMINAL_STATUSES,
    JobRecord,
    PhaseEntry,
    Project,
    StatusEntry,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "DB_FILENAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TERMINAL_STATUSES",
    "DuplicateJob",
    "JobRecord",
    "Migration",
    "NewerSchemaError",
    "PhaseEntry",
    "Project",
    "ProjectNotFound",
    "StatusEntry",
    "Store",
    "default_db_path",
    "migrate",
]
