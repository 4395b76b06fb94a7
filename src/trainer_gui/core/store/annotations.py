"""What the runs table needs from the store (a mixin of `Store`): tags and a note per run, each
metric's last and lowest/highest value for a whole project in one query, and one project
setting changed without rewriting the others.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple

from trainer_gui.core.errors import JobNotFound, UserError

MAX_TAG_LENGTH = 64
MAX_TAGS = 32
MAX_NOTE_LENGTH = 10_000


@dataclass(frozen=True)
class RunAnnotation:
    """The user's tags (sorted, unique) and note for one run."""

    tags: tuple[str, ...] = ()
    note: str = ""


class MetricSummary(NamedTuple):
    """One metric of one run: its newest value, and its lowest and highest (NaN-free) ones.

    A tuple, so thousands of them compare at C speed when the runs table checks for changes."""

    last: float
    low: float | None
    high: float | None
    samples: int = 0


def clean_tags(tags: Sequence[str] | str) -> tuple[str, ...]:
    """Tags from a list or from text separated by commas; blanks dropped, sorted, unique."""
    items = tags.split(",") if isinstance(tags, str) else list(tags)
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise UserError(f"A tag must be text, not {type(item).__name__}.")
        tag = " ".join(item.split())
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise UserError(f"The tag '{tag[:20]}…' is too long (at most {MAX_TAG_LENGTH}).")
        out.add(tag)
    if len(out) > MAX_TAGS:
        raise UserError(f"A run can have at most {MAX_TAGS} tags, not {len(out)}.")
    return tuple(sorted(out))


# Each (job, metric): the newest sample's id and the lowest and highest value, in one pass over
# the project's samples by the (job_id, name) index; then one primary-key lookup per pair for
# the newest value.
_SUMMARY_SQL = """
WITH agg AS (
    SELECT m.job_id AS job_id, m.name AS name, MAX(m.id) AS last_id,
           MIN(m.value) AS low, MAX(m.value) AS high, COUNT(*) AS n
    FROM jobs AS j JOIN metric_samples AS m ON m.job_id = j.id
    {where}
    GROUP BY m.job_id, m.name
)
SELECT agg.job_id, agg.name, s.value, agg.low, agg.high, agg.n
FROM agg JOIN metric_samples AS s ON s.id = agg.last_id
"""


class AnnotationsStore:
    """Runs-table methods of `Store` (which provides `_write` and `_query`)."""

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def _query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[sqlite3.Row]:  # pragma: no cover
        raise NotImplementedError

    def metric_summaries(self, project_id: int | None) -> dict[str, dict[str, MetricSummary]]:
        """job id -> metric name -> last / lowest / highest, for every job of the project
        (every job when `project_id` is None), in one query."""
        params: tuple[Any, ...] = ()
        if project_id is None:
            sql = _SUMMARY_SQL.format(where="")
        else:
            sql, params = _SUMMARY_SQL.format(where="WHERE j.project_id = ?"), (project_id,)
        out: dict[str, dict[str, MetricSummary]] = {}
        for job_id, name, last, low, high, n in self._query(sql, params):
            out.setdefault(job_id, {})[name] = MetricSummary(
                math.nan if last is None else float(last),
                None if low is None else float(low),
                None if high is None else float(high),
                int(n),
            )
        return out

    def run_annotations(self, project_id: int | None) -> dict[str, RunAnnotation]:
        """job id -> its tags and note, for the project's jobs that have any."""
        sql = "SELECT a.job_id, a.tags, a.note FROM run_annotations AS a"
        params: tuple[Any, ...] = ()
        if project_id is not None:
            sql += " JOIN jobs AS j ON j.id = a.job_id WHERE j.project_id = ?"
            params = (project_id,)
        out: dict[str, RunAnnotation] = {}
        for job_id, tags, note in self._query(sql, params):
            try:
                loaded = json.loads(tags)
                tag_tuple = tuple(str(t) for t in loaded) if isinstance(loaded, list) else ()
            except ValueError:
                tag_tuple = ()
            out[job_id] = RunAnnotation(tag_tuple, note)
        return out

    def run_annotation(self, job_id: str) -> RunAnnotation:
        rows = self._query("SELECT tags, note FROM run_annotations WHERE job_id = ?", (job_id,))
        if not rows:
            return RunAnnotation()
        tags = json.loads(rows[0][0])
        return RunAnnotation(tuple(str(t) for t in tags), rows[0][1])

    def _annotate(self, job_id: str, column: str, value: str) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise JobNotFound(f"No job with id {job_id!r} (was it deleted?)")
            conn.execute(
                f"""
                INSERT INTO run_annotations (job_id, {column}, updated_at) VALUES (?, ?, ?)
                ON CONFLICT(job_id) DO UPDATE SET {column} = excluded.{column},
                    updated_at = excluded.updated_at
                """,
                (job_id, value, time.time()),
            )

    def set_run_tags(self, job_id: str, tags: Sequence[str] | str) -> tuple[str, ...]:
        """Replace the run's tags (text is split at commas); returns them as stored."""
        cleaned = clean_tags(tags)
        self._annotate(job_id, "tags", json.dumps(list(cleaned)))
        return cleaned

    def set_run_note(self, job_id: str, note: str) -> None:
        if not isinstance(note, str):
            raise UserError(f"A note must be text, not {type(note).__name__}.")
        if len(note) > MAX_NOTE_LENGTH:
            raise UserError(f"The note is too long ({len(note)} characters; at most 10,000).")
        self._annotate(job_id, "note", note)

    def set_project_setting(self, project_id: int, key: str, value: Any) -> dict[str, Any]:
        """Set (or, with None, drop) one key of the project's settings, leaving the others as
        they are in the file at that moment; returns the settings as stored."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT settings FROM projects WHERE id = ?", (project_id,)
            ).fetchone()
            if row is None:
                raise UserError(f"No project with id {project_id} (was it removed?)")
            settings = json.loads(row[0]) if row[0] else {}
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
            conn.execute(
                "UPDATE projects SET settings = ? WHERE id = ?",
                (json.dumps(settings, sort_keys=True), project_id),
            )
        return dict(settings)
