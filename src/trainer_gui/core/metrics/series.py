"""One metric series of one job and host, as the plots keep it, and its CSV export. No Qt.

Every point is kept, in growable numpy arrays (the capacity doubles when full), with what a
redraw needs kept up to date as points arrive: the smoothed values, the peak pyramids, and
whether x is sorted and every value finite.

A big series moves into its next capacity a slice per `extend` while the current one fills up
(from half full on), so no single append copies the whole series: doubling a 262,144-point
series at once took 20-300 ms of the GUI thread on the development VM (five arrays of fresh
memory to fault in and copy), the longest event of a metric flood.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from trainer_gui.core.metrics.numerics import EmaState, PeakPyramid, ema_extend

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

log = logging.getLogger(__name__)

INITIAL_CAPACITY = 256
MOVE_FROM = 65_536
"""Capacity from which a series moves into the next one ahead of time, a slice per `extend`
(below it, doubling at once copies at most a millisecond's worth)."""
MOVE_SLICE = 4_096
"""Points moved per `extend` at least (and 3x the points appended, so the move is done
before the current capacity is full). Small: the first write to fresh memory is what costs
(page faults; ~10-100 us a page on a loaded VM)."""
_POINTS = ("step", "x_step", "wall", "value")
X_STEP = "step"
X_WALL = "wall"
X_RELATIVE = "relative"
CSV_HEADER = ("job", "host", "metric", "step", "wall_time", "value")

SeriesKey = tuple[str, str, str]  # (job_id, host, metric)


@dataclass
class Series:
    """All points of one (job, host, metric) series, in growable arrays (capacity doubles; a
    big series moves into the next capacity a slice per `extend`, see `MOVE_FROM`)."""

    job_id: str
    host: str
    metric: str
    n: int = 0
    step: FloatArray = field(default_factory=lambda: np.empty(0))  # NaN: the sample had none
    x_step: FloatArray = field(default_factory=lambda: np.empty(0))  # step, or the index
    wall: FloatArray = field(default_factory=lambda: np.empty(0))
    value: FloatArray = field(default_factory=lambda: np.empty(0))
    constant: bool = True
    finite: bool = True  # every x and y so far is finite: pyqtgraph may skip its own check
    x_sorted: bool = True
    wall_sorted: bool = True
    smoothed: FloatArray = field(default_factory=lambda: np.empty(0))
    ema: EmaState = field(default_factory=EmaState)
    ema_n: int = 0
    ema_weight: float = -1.0
    raw_peaks: PeakPyramid = field(default_factory=PeakPyramid)
    smooth_peaks: PeakPyramid = field(default_factory=PeakPyramid)
    _next: dict[str, FloatArray] | None = field(default=None, repr=False)
    """The next capacity's arrays while the points move into them (see `MOVE_FROM`)."""
    _moved: int = 0

    @property
    def key(self) -> SeriesKey:
        return (self.job_id, self.host, self.metric)

    @property
    def capacity(self) -> int:
        return len(self.value)

    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        moving = self._next
        if moving is not None and len(moving["value"]) >= needed:
            self._move(self.n)  # the rest (normally nothing: see `_move_ahead`)
            for name in _POINTS:
                setattr(self, name, moving[name])
            self._next = None
            return
        self._next = None
        cap = max(INITIAL_CAPACITY, self.capacity)
        while cap < needed:
            cap *= 2
        for name in _POINTS:
            old = getattr(self, name)
            new = np.empty(cap, dtype=np.float64)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def _move_ahead(self, appended: int) -> None:
        """From half full on, move a slice of the points into the next capacity."""
        cap = self.capacity
        if cap < MOVE_FROM:
            return
        if self._next is None:
            if 2 * self.n < cap:
                return
            self._next = {name: np.empty(2 * cap, dtype=np.float64) for name in _POINTS}
            self._moved = 0
        self._move(min(self.n, self._moved + max(MOVE_SLICE, 3 * appended)))

    def _move(self, stop: int) -> None:
        moving, start = self._next, self._moved
        if moving is None or stop <= start:
            return
        for name in _POINTS:
            moving[name][start:stop] = getattr(self, name)[start:stop]
        self._moved = stop

    def extend(self, steps: FloatArray, walls: FloatArray, values: FloatArray) -> None:
        """Append points; `steps` holds NaN where a sample had no step (x is then its index)."""
        m = len(values)
        if m == 0:
            return
        n0, n1 = self.n, self.n + m
        self._grow(n1)
        index = np.arange(n0, n1, dtype=np.float64)
        x = np.where(np.isnan(steps), index, steps)
        if self.x_sorted:
            prev = self.x_step[n0 - 1] if n0 else -np.inf
            self.x_sorted = bool(x[0] >= prev and np.all(np.diff(x) >= 0))
        if self.wall_sorted:
            prev = self.wall[n0 - 1] if n0 else -np.inf
            self.wall_sorted = bool(walls[0] >= prev and np.all(np.diff(walls) >= 0))
        if self.finite:
            self.finite = bool(np.isfinite(values).all() and np.isfinite(walls).all())
        if self.constant:
            first = self.value[0] if n0 else values[0]
            self.constant = bool(np.all(values == first))
        self.step[n0:n1] = steps
        self.x_step[n0:n1] = x
        self.wall[n0:n1] = walls
        self.value[n0:n1] = values
        self.n = n1
        self._move_ahead(m)

    def smoothed_values(self, weight: float) -> FloatArray:
        """EMA of the values (see `ema_extend`), extended incrementally as points arrive."""
        n = self.n
        if self.constant or weight == 0.0:
            if self.ema_n:
                self.smooth_peaks.clear()
            self.ema_n, self.ema, self.ema_weight = 0, EmaState(), -1.0
            return self.value[:n]
        if weight != self.ema_weight:
            self.ema_n, self.ema, self.ema_weight = 0, EmaState(), weight
            self.smooth_peaks.clear()
        if len(self.smoothed) < n:  # grown here: only a smoothed series needs the room
            grown = np.empty(self.capacity, dtype=np.float64)
            grown[: self.ema_n] = self.smoothed[: self.ema_n]
            self.smoothed = grown
        if self.ema_n < n:
            self.smoothed[self.ema_n : n] = ema_extend(self.value[self.ema_n : n], weight, self.ema)
            self.ema_n = n
        return self.smoothed[:n]

    def x_values(self, mode: str, t0: float) -> FloatArray:
        """x of every point: the step ("step"), the wall time ("wall"), or seconds since t0."""
        if mode == X_WALL:
            return self.wall[: self.n]
        if mode == X_RELATIVE:
            return self.wall[: self.n] - t0
        return self.x_step[: self.n]

    def is_sorted(self, mode: str) -> bool:
        return self.x_sorted if mode == X_STEP else self.wall_sorted

    def snapshot(self) -> Series:
        """A copy of the points only, for a worker thread to read while this one grows."""
        n = self.n
        return Series(
            self.job_id,
            self.host,
            self.metric,
            n=n,
            step=self.step[:n].copy(),
            x_step=self.x_step[:n].copy(),
            wall=self.wall[:n].copy(),
            value=self.value[:n].copy(),
        )


def write_csv(path: str | os.PathLike[str], series: Iterable[Series]) -> int:
    """Write every point of every series (`CSV_HEADER` columns, an empty step where a sample
    had none); returns the number of rows, header excluded."""
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for s in series:
            n = s.n
            steps = s.step[:n].tolist()
            walls = s.wall[:n].tolist()
            values = s.value[:n].tolist()
            writer.writerows(
                (s.job_id, s.host, s.metric, "" if st != st else int(st), wt, va)
                for st, wt, va in zip(steps, walls, values, strict=True)
            )
            rows += n
    log.info("wrote %d metric rows to %s", rows, path)
    return rows
