"""Plot numerics with no Qt: TensorBoard's smoothing, peak-preserving downsampling, round bounds.

Kept apart from the widgets so they can be tested (and reused by exports) without a display. A
plot hands a series to `peak_downsample` with the pixel columns it has; what comes back is either
the points themselves (`Line`) or, when there are more points than pixels, each column's min and
max (`Band`), read from a `PeakPyramid` so that no spike is lost and a million-point series costs
a few thousand operations per redraw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

LEVEL_FACTOR = 64  # raw points per bin on the first pyramid level, and bins per bin on the next
LEVEL_MIN_BINS = 4096  # a coarser level is kept once it would have this many bins
LINE_POINTS_PER_PIXEL = 2  # up to this many points per pixel column a series is drawn as a line
BINS_PER_COLUMN = 8  # a pyramid level serves pixel columns at least this many of its bins wide
NICE_STEPS = 20  # auto-range snaps to 1/20 of the span, so axes change every ~5% of growth


# -- smoothing -------------------------------------------------------------------------------


@dataclass
class EmaState:
    """Where a running EMA stands: the biased accumulator and how many finite values it saw."""

    last: float = 0.0
    count: int = 0


def ema_extend(values: FloatArray, weight: float, state: EmaState) -> FloatArray:
    """Smooth `values` continuing from `state` (updated in place), TensorBoard's way.

    TensorBoard's debiased exponential moving average, for each finite value v, with weight w
    in [0, 1) and n the number of finite values so far (including v)::

        last = last * w + (1 - w) * v          # last starts at 0
        smoothed = last / (1 - w ** n)         # debias: undo the pull towards the 0 start

    Non-finite values (NaN, inf) pass through unchanged and do not touch the average. w = 0 is
    "off" (smoothed == raw). Vectorised in blocks: inside a block of length B,
    last_i = w^(i+1) last + (1 - w) w^i cumsum(w^-k v_k), with B small enough that w^-B stays
    finite, so a million points take milliseconds rather than a Python loop.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    finite = np.isfinite(values)
    v = values[finite]
    m = len(v)
    if m == 0:
        return out
    if weight == 0.0:
        state.last = float(v[-1])
        state.count += m
        return out
    res = np.empty(m, dtype=np.float64)
    block = max(1, min(m, int(600.0 / -math.log(weight))))
    i = np.arange(block, dtype=np.float64)
    decay = np.power(weight, i)  # w^i
    grow = 1.0 / decay  # w^-i, at most e^600
    decay_next = decay * weight  # w^(i+1)
    last, count = state.last, state.count
    for start in range(0, m, block):
        chunk = v[start : start + block]
        k = len(chunk)
        acc = np.cumsum(chunk * grow[:k])
        lasts = decay_next[:k] * last + (1.0 - weight) * decay[:k] * acc
        res[start : start + k] = lasts / (1.0 - weight**count * decay_next[:k])
        last = float(lasts[-1])
        count += k
    state.last, state.count = last, count
    out[finite] = res
    return out


def ema_smooth(values: Sequence[float] | FloatArray, weight: float) -> FloatArray:
    """TensorBoard's smoothing of a whole series (see `ema_extend` for the formula).

    Like TensorBoard, a constant series is returned as is (debiasing would only add rounding).
    """
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 0 or bool(np.all(arr == arr[0])):
        return arr.copy()
    return ema_extend(arr, weight, EmaState())


# -- peak downsampling -----------------------------------------------------------------------


class PeakPyramid:
    """Min/max of every bin of a growing array, on levels of 64, 4096, ... points per bin.

    Kept up to date incrementally as points arrive, so the min/max of each pixel column of a
    million-point series (peak downsampling: every spike stays visible) costs a few thousand
    operations per redraw instead of a million. NaN is ignored inside a bin.
    """

    def __init__(self) -> None:
        self.bins: list[int] = []  # raw points per bin, per level
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.count: list[int] = []  # complete bins per level

    def clear(self) -> None:
        self.bins, self.lo, self.hi, self.count = [], [], [], []

    def update(self, y: FloatArray, n: int) -> None:
        """Bring the complete bins up to date with `y[:n]` (appends only)."""
        level = 0
        while True:
            size = LEVEL_FACTOR ** (level + 1)
            if level == len(self.bins):
                if level > 0 and n // size < LEVEL_MIN_BINS:
                    return
                self.bins.append(size)
                self.lo.append(np.empty(0))
                self.hi.append(np.empty(0))
                self.count.append(0)
            done, total = self.count[level], n // size
            if total > done:
                if total > len(self.lo[level]):
                    cap = max(1024, 2 * total)
                    for arrays in (self.lo, self.hi):
                        grown = np.empty(cap)
                        grown[:done] = arrays[level][:done]
                        arrays[level] = grown
                if level == 0:
                    block = y[done * size : total * size].reshape(-1, size)
                    lo_src = hi_src = block
                else:
                    k = LEVEL_FACTOR
                    lo_src = self.lo[level - 1][done * k : total * k].reshape(-1, k)
                    hi_src = self.hi[level - 1][done * k : total * k].reshape(-1, k)
                with np.errstate(invalid="ignore"):
                    self.lo[level][done:total] = np.fmin.reduce(lo_src, axis=1)
                    self.hi[level][done:total] = np.fmax.reduce(hi_src, axis=1)
                self.count[level] = total
            level += 1

    def column_minmax(
        self, y: FloatArray, n: int, starts: np.ndarray, end: int
    ) -> tuple[np.ndarray, FloatArray, FloatArray]:
        """Min and max of `y` per column: column k is `y[starts[k]:starts[k + 1]]`, the last
        one ends at `end`. Returns (the column starts used, mins, maxes); NaN is ignored.

        Columns many bins wide are reduced from the coarsest level that still has at least
        `BINS_PER_COLUMN` bins per column, their edges moved to the nearest bin edge (under
        1/16 of a column: less than a pixel), so the cost is O(columns + bins), not O(points).
        """
        self.update(y, n)
        widths = np.diff(starts, append=end)
        narrowest = int(widths.min()) if len(widths) else 0
        level = -1
        for index, size in enumerate(self.bins):
            if narrowest >= BINS_PER_COLUMN * size and self.count[index] >= 2:
                level = index
        with np.errstate(invalid="ignore"):
            if level >= 0:
                size, done = self.bins[level], self.count[level]
                edges = strictly_increasing(
                    np.clip((np.append(starts, end) + size // 2) // size, 0, done)
                )
                if len(edges) >= 2:
                    first, last = edges[:-1], int(edges[-1])
                    lo = np.fmin.reduceat(self.lo[level][:last], first)
                    hi = np.fmax.reduceat(self.hi[level][:last], first)
                    if end > done * size and last == done:  # the incomplete bins, from raw points
                        tail = y[done * size : end]
                        lo[-1] = np.fmin(lo[-1], np.fmin.reduce(tail))
                        hi[-1] = np.fmax(hi[-1], np.fmax.reduce(tail))
                    return first * size, lo, hi
            segment = y[:end]
            return starts, np.fmin.reduceat(segment, starts), np.fmax.reduceat(segment, starts)


@dataclass(frozen=True)
class Line:
    """Points to join with straight lines (view coordinates; NaN breaks the line)."""

    x: FloatArray
    y: FloatArray


@dataclass(frozen=True)
class Band:
    """Column k spans x from edges[k] to edges[k + 1] and y from lo[k] to hi[k]."""

    edges: FloatArray
    lo: FloatArray
    hi: FloatArray


def visible_window(
    x: FloatArray, n: int, view: tuple[float, float], pixels: int, log_x: bool
) -> tuple[int, int, int]:
    """(i0, i1, pixel columns) of a sorted `x[:n]` for a zoomed-in view `view` (in view
    coordinates, log10 on a log axis) `pixels` wide: the visible range plus one view width
    either side (so a pan redraws only when it leaves that), and its width on screen."""
    v0, v1 = view
    span = v1 - v0
    lo, hi = v0 - span, v1 + span
    if log_x:
        lo, hi = 10.0**lo, 10.0**hi
    i0, i1 = (int(i) for i in np.searchsorted(x[:n], [lo, hi]))
    i0, i1 = max(0, i0 - 1), min(n, i1 + 1)
    if i1 - i0 < 2:
        return (i0, i1, pixels)
    a, b = float(x[i0]), float(x[i1 - 1])
    if log_x:
        a, b = (math.log10(v) if v > 0 else v0 for v in (a, b))
    return (i0, i1, max(1, min(4 * pixels, math.ceil(pixels * (b - a) / max(span, 1e-300)))))


def peak_downsample(
    peaks: PeakPyramid,
    x: FloatArray,
    y: FloatArray,
    n: int,
    window: tuple[int, int, int],
    log: tuple[bool, bool],
    x_sorted: bool,
) -> Line | Band:
    """What to draw of `y[:n]` over `x` in `window` (i0, i1, pixel columns): the points where
    they are sparse, else per pixel column their min and max, so every peak stays visible.

    `peaks` is the pyramid of `y` (kept across calls); log = (log x, log y) applies log10,
    and values <= 0 on a log axis are not drawn.
    """
    i0, i1, columns = window
    log_x, log_y = log
    sorted_x = x_sorted and bool(np.isfinite(x[[i0, i1 - 1]]).all()) if i1 > i0 else True
    if log_x and sorted_x and i1 > i0 and x[i0] <= 0:  # no place for x <= 0 on a log axis
        i0 = max(i0, int(np.searchsorted(x[:i1], 0.0, side="right")))
    if i1 - i0 <= LINE_POINTS_PER_PIXEL * columns:
        xs, ys = x[i0:i1], y[i0:i1]
        return Line(log10_or_nan(xs) if log_x else xs, log10_or_nan(ys) if log_y else ys)
    if not sorted_x:
        # x goes back and forth (a step counter that restarted, say): columns of equal
        # point counts, drawn as the min/max zig-zag at each column's first x.
        starts = strictly_increasing(np.linspace(i0, i1, columns + 1)[:-1].astype(np.intp))
        starts, lo, hi = peaks.column_minmax(y, n, starts, i1)
        xs = np.repeat(x[starts], 2)
        ys = np.column_stack([lo, hi]).ravel()
        return Line(log10_or_nan(xs) if log_x else xs, log10_or_nan(ys) if log_y else ys)
    a, b = float(x[i0]), float(x[i1 - 1])
    if log_x:
        edges = 10.0 ** np.linspace(math.log10(a), math.log10(b), columns + 1)
    else:
        edges = np.linspace(a, b, columns + 1)
    # Where each column starts; on a coarse sample of x when columns are wide (the
    # pyramid moves column edges to its bin edges anyway).
    stride = LEVEL_FACTOR if i1 - i0 >= BINS_PER_COLUMN * LEVEL_FACTOR * columns else 1
    base = -(-i0 // stride) * stride
    starts = np.searchsorted(x[base:i1:stride], edges[:-1], side="left") * stride + base
    starts[0] = i0
    starts = strictly_increasing(np.minimum(starts, i1 - 1))
    starts, lo, hi = peaks.column_minmax(y, n, starts, i1)
    # Each column reaches its neighbour's range, as the line between them would.
    with np.errstate(invalid="ignore"):
        lo_j, hi_j = lo.copy(), hi.copy()
        lo_j[1:] = np.fmin(lo[1:], hi[:-1])
        hi_j[1:] = np.fmax(hi[1:], lo[:-1])
        missing = np.isnan(lo)
        lo_j[missing] = np.nan
        hi_j[missing] = np.nan
    xs = np.append(x[starts], b)
    if log_x:
        xs = log10_or_nan(xs)
    if log_y:
        hi_j = log10_or_nan(hi_j)
        lo_j = log10_or_nan(lo_j)
        lo_j = np.where(np.isnan(lo_j), hi_j, lo_j)
    return Band(xs, lo_j, hi_j)


# -- small helpers ---------------------------------------------------------------------------


def strictly_increasing(values: np.ndarray) -> np.ndarray:
    """A sorted array without its repeats (np.unique without the sort)."""
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.greater(values[1:], values[:-1], out=keep[1:])
    return values if keep.all() else values[keep]


def log10_or_nan(values: FloatArray) -> FloatArray:
    """log10 for a log axis: values <= 0 (and NaN) become NaN, which is not drawn."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(values)
    out[~np.isfinite(out)] = np.nan
    return out


def nan_bounds(values: FloatArray) -> tuple[float, float]:
    """(min, max) of the finite values; (NaN, NaN) when there are none."""
    finite = values[np.isfinite(values)] if not np.isfinite(values).all() else values
    if not len(finite):
        return math.nan, math.nan
    return float(finite.min()), float(finite.max())


def _nice_step(span: float) -> float:
    """The 1, 2 or 5 times a power of ten nearest above `span`."""
    exponent = math.floor(math.log10(span))
    for factor in (1.0, 2.0, 5.0, 10.0):
        step = factor * 10.0**exponent
        if step >= span:
            return step
    return 10.0 ** (exponent + 1)


def snap_bounds(lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) widened to multiples of a round step of about 1/20 of the span.

    Auto-range fits these instead of the exact extremes, so a growing series moves its axes
    (new ticks, new labels, a repaint of both) once per ~5% of growth, not on every redraw.
    """
    span = hi - lo
    if not (math.isfinite(lo) and math.isfinite(hi)) or span <= 0:
        return lo, hi
    step = _nice_step(span / NICE_STEPS)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step
