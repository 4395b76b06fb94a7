"""A job's live output in columns, ready for the widgets: built once, off the GUI thread.

Runners deliver one `LogLine` per line and the job service one `MetricSample` per sample. At
20,000 lines a second, touching each of them on the GUI thread costs it tens of milliseconds a
second, and every Python step it takes there competes for the GIL with the threads that read
and parse the logs. So the per-line work happens where the lines arrive (a runner thread, or
the job host process, see `trainer_gui.services.job_host`): a `LogChunk` holds the rows as the log
view keeps them, and a `MetricChunk` holds each (host, metric) series as numpy columns. The GUI
thread only merges chunks and hands them over: C-level list and array operations, no Python
loop over lines.

No Qt here: the job host process builds chunks too, and pickles them to the window.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer_gui.core.runners.events import LogBatch, MetricBatch

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from trainer_gui.core.metrics.types import MetricSample
    from trainer_gui.core.runners.events import LogLine

    FloatArray = NDArray[np.float64]

LogRow = tuple[str, str, str]
"""(host, stream, text): one line as the log view keeps it."""

Columns = tuple["FloatArray", "FloatArray", "FloatArray"]
"""(steps, NaN where a sample had none; wall times; values) of one series."""

_host, _stream, _text, _time = (attrgetter(a) for a in ("host", "stream", "text", "time"))
_first = itemgetter(0)


@dataclass(slots=True)
class LogChunk:
    """Consecutive lines of one job: rows, times, and what the log view asks of them."""

    rows: list[LogRow] = field(default_factory=list)
    times: array[float] = field(default_factory=lambda: array("d"))
    hosts: tuple[str, ...] = ()
    """The hosts of the rows, in the order they first appear."""
    widest: int = 0
    """Characters in the longest text."""
    host_of: array[int] | None = None
    """Per row, its host's index in `hosts`; None when there is only one host."""

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def from_lines(cls, lines: Sequence[LogLine]) -> LogChunk:
        """Columns of `lines` (the per-line work, for a runner thread or the job host)."""
        rows = list(zip(map(_host, lines), map(_stream, lines), map(_text, lines), strict=True))
        return cls.from_rows(rows, array("d", map(_time, lines)))

    @classmethod
    def from_rows(cls, rows: list[LogRow], times: array[float]) -> LogChunk:
        if not rows:
            return cls()
        hosts = tuple(dict.fromkeys(map(_first, rows)))
        host_of = None
        if len(hosts) > 1:
            index = {host: i for i, host in enumerate(hosts)}
            host_of = array("H", map(index.__getitem__, map(_first, rows)))
        widest = max(map(len, map(itemgetter(2), rows)))
        return cls(rows, times, hosts, widest, host_of)

    @classmethod
    def merge(cls, chunks: Sequence[LogChunk]) -> LogChunk:
        """One chunk of `chunks` in order (list and array concatenation only)."""
        chunks = [c for c in chunks if c.rows]
        if len(chunks) <= 1:
            return chunks[0] if chunks else cls()
        rows: list[LogRow] = []
        times = array("d")
        for chunk in chunks:
            rows.extend(chunk.rows)
            times.extend(chunk.times)
        hosts = tuple(dict.fromkeys(h for chunk in chunks for h in chunk.hosts))
        host_of = None
        if len(hosts) > 1:
            index = {host: i for i, host in enumerate(hosts)}
            host_of = array("H")
            for chunk in chunks:
                if chunk.host_of is None:
                    host_of.extend(repeat(index[chunk.hosts[0]], len(chunk.rows)))
                else:
                    remap = [index[h] for h in chunk.hosts]
                    host_of.extend(map(remap.__getitem__, chunk.host_of))
        return cls(rows, times, hosts, max(c.widest for c in chunks), host_of)

    def rows_of(self, host: str | None) -> list[LogRow]:
        """The rows of one host (every row for None)."""
        if host is None or self.hosts == (host,):
            return self.rows
        if host not in self.hosts or self.host_of is None:
            return []
        wanted = self.hosts.index(host)
        return list(compress(self.rows, map(wanted.__eq__, self.host_of)))

    def tail(self, count: int) -> LogChunk:
        """The last `count` rows (all of them if fewer)."""
        if count >= len(self.rows):
            return self
        start = len(self.rows) - count
        return LogChunk.from_rows(self.rows[start:], self.times[start:])


def _nan_equal(a: FloatArray, b: FloatArray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


@dataclass(slots=True)
class MetricChunk:
    """Consecutive samples of one job, as numpy columns per (host, metric)."""

    columns: dict[tuple[str, str], Columns] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    """The newest value of each metric (any host): what the jobs table shows."""

    def __len__(self) -> int:
        return sum(len(cols[2]) for cols in self.columns.values())

    @classmethod
    def from_samples(cls, samples: Sequence[MetricSample]) -> MetricChunk:
        """Columns of `samples` (the per-sample work, for a runner thread or the job host)."""
        if not samples:
            return cls()
        keys = set(zip(map(_host, samples), map(attrgetter("name"), samples), strict=True))
        groups: dict[tuple[str, str], Sequence[MetricSample]]
        if len(keys) == 1:  # the common case: one metric of one host per batch
            groups = {keys.pop(): samples}
        else:
            grouped: dict[tuple[str, str], list[MetricSample]] = {}
            for s in samples:
                grouped.setdefault((s.host, s.name), []).append(s)
            groups = dict(grouped)
        columns: dict[tuple[str, str], Columns] = {}
        for key, group in groups.items():
            n = len(group)
            columns[key] = (
                np.fromiter(map(attrgetter("step"), group), np.float64, n),
                np.fromiter(map(attrgetter("wall_time"), group), np.float64, n),
                np.fromiter(map(attrgetter("value"), group), np.float64, n),
            )
        last = {}
        for s in reversed(samples):
            if s.name not in last:
                last[s.name] = s.value
                if len(last) == len({k[1] for k in columns}):
                    break
        return cls(columns, {name: last[name] for name in reversed(list(last))})

    @classmethod
    def merge(cls, chunks: Sequence[MetricChunk]) -> MetricChunk:
        chunks = [c for c in chunks if c.columns]
        if len(chunks) <= 1:
            return chunks[0] if chunks else cls()
        parts: dict[tuple[str, str], list[Columns]] = {}
        last: dict[str, float] = {}
        for chunk in chunks:
            for key, cols in chunk.columns.items():
                parts.setdefault(key, []).append(cols)
            last.update(chunk.last)
        columns = {
            key: (
                cols[0]
                if len(cols) == 1
                else (
                    np.concatenate([c[0] for c in cols]),
                    np.concatenate([c[1] for c in cols]),
                    np.concatenate([c[2] for c in cols]),
                )
            )
            for key, cols in parts.items()
        }
        return cls(columns, last)

    def samples(self) -> list[MetricSample]:
        """Back to one `MetricSample` per point (for tests and small exports)."""
        from trainer_gui.core.metrics.types import MetricSample

        out = []
        for (host, name), (steps, walls, values) in self.columns.items():
            for st, wt, va in zip(steps.tolist(), walls.tolist(), values.tolist(), strict=True):
                out.append(MetricSample(name, va, host, wt, None if st != st else int(st)))
        return out


def as_log_chunk(lines: LogChunk | Sequence[LogLine]) -> LogChunk:
    return lines if isinstance(lines, LogChunk) else LogChunk.from_lines(lines)


def as_metric_chunk(samples: MetricChunk | Iterable[MetricSample]) -> MetricChunk:
    if isinstance(samples, MetricChunk):
        return samples
    return MetricChunk.from_samples(samples if isinstance(samples, list) else list(samples))


def overlap(stored: Columns, fresh: Columns) -> int:
    """How many points at the head of `fresh` repeat the tail of `stored` (NaN equals NaN).

    A view that loads a series from the store while live points keep arriving gets some
    points twice: the longest head of the live ones equal to a tail of the stored ones.
    """
    m = min(len(stored[2]), len(fresh[2]))
    if m == 0:
        return 0
    tails = [col[len(col) - m :] for col in stored]
    first = [float(col[0]) for col in fresh]
    hits = np.ones(m, dtype=bool)
    for col, value in zip(tails, first, strict=True):
        hits &= (col == value) | (np.isnan(col) & math.isnan(value))
    for j in np.flatnonzero(hits).tolist():  # from the longest overlap down
        k = m - j
        if all(_nan_equal(t[j:], f[:k]) for t, f in zip(tails, fresh, strict=True)):
            return k
    return 0


def in_columns(event: Any) -> Any | None:
    """A runner's `LogBatch` or the service's `MetricBatch` as `LogData` / `MetricData` (the
    per-line work, for the thread the event arrives on); None for an empty batch; any other
    event as it is."""
    if isinstance(event, LogBatch):
        return LogData(event.job_id, LogChunk.from_lines(event.lines)) if event.lines else None
    if isinstance(event, MetricBatch):
        if not event.samples:
            return None
        return MetricData(event.job_id, MetricChunk.from_samples(event.samples))
    return event


@dataclass(frozen=True, slots=True)
class LogData:
    """Event: lines of a job, already in columns (from the bridge's listener or the job host)."""

    job_id: str
    chunk: LogChunk


@dataclass(frozen=True, slots=True)
class MetricData:
    """Event: samples of a job, already in columns."""

    job_id: str
    chunk: MetricChunk


def as_batches(event: Any) -> Any:
    """The job host's `LogData` / `MetricData` back as `LogBatch` / `MetricBatch` (for the
    CLI, which prints line by line); any other event as it is."""
    from trainer_gui.core.metrics.types import MetricSample
    from trainer_gui.core.runners.events import LogLine

    if isinstance(event, LogData):
        chunk = event.chunk
        lines = [
            LogLine(host, stream, text, at)
            for (host, stream, text), at in zip(chunk.rows, chunk.times, strict=True)
        ]
        return LogBatch(event.job_id, lines)
    if isinstance(event, MetricData):
        samples: list[MetricSample] = []
        for (host, name), (steps, times, values) in event.chunk.columns.items():
            rows = zip(steps.tolist(), times.tolist(), values.tolist(), strict=True)
            for step, at, value in rows:
                samples.append(
                    MetricSample(name, value, host, at, None if step != step else int(step))
                )
        samples.sort(key=lambda s: (s.wall_time, s.host))
        return MetricBatch(event.job_id, samples)
    return event
