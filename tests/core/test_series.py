"""The plots' numerics without Qt: TensorBoard's smoothing, the peak pyramid and downsampling,
the series buffers and the CSV export."""

from __future__ import annotations

import csv
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainer_gui.core.metrics import numerics
from trainer_gui.core.metrics.numerics import (
    Band,
    EmaState,
    Line,
    PeakPyramid,
    ema_extend,
    ema_smooth,
    log10_or_nan,
    peak_downsample,
    snap_bounds,
    visible_window,
)
from trainer_gui.core.metrics.series import CSV_HEADER, X_RELATIVE, X_WALL, Series, write_csv

JOB = "job-1"


def tensorboard_ema(values: list[float], w: float) -> list[float]:
    """TensorBoard's loop, transcribed (finite values only)."""
    last, out = 0.0, []
    for n, v in enumerate(values, start=1):
        last = last * w + (1 - w) * v
        out.append(last / (1 - w**n))
    return out


def series_of(values: list[float] | np.ndarray, steps: list[float] | None = None) -> Series:
    values = np.asarray(values, dtype=np.float64)
    s = Series(JOB, "algo-1", "loss")
    st = np.arange(len(values), dtype=np.float64) if steps is None else np.asarray(steps, float)
    s.extend(st, 1000.0 + np.arange(len(values), dtype=np.float64), values)
    return s


# -- smoothing -------------------------------------------------------------------------------


def test_ema_matches_a_hand_computed_example() -> None:
    # w = 0.5, values 1, 2, 3:
    #   last = 0.5           debias 1 - 0.5    = 0.5   -> 1.0
    #   last = 1.25          debias 1 - 0.25   = 0.75  -> 1.666...
    #   last = 2.125         debias 1 - 0.125  = 0.875 -> 2.428571...
    np.testing.assert_allclose(ema_smooth([1.0, 2.0, 3.0], 0.5), [1.0, 5 / 3, 17 / 7])
    np.testing.assert_array_equal(ema_smooth([1.0, 2.0, 3.0], 0.0), [1.0, 2.0, 3.0])  # off
    np.testing.assert_array_equal(ema_smooth([2.0, 2.0, 2.0], 0.9), [2.0, 2.0, 2.0])  # constant


def test_ema_matches_tensorboards_loop_across_blocks_and_increments() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=5000).cumsum()
    for w in (0.6, 0.9, 0.99, 0.999):
        expected = tensorboard_ema(values.tolist(), w)
        np.testing.assert_allclose(ema_smooth(values, w), expected, rtol=1e-9, atol=1e-9)
        state = EmaState()
        pieces = [ema_extend(values[a:b], w, state) for a, b in ((0, 7), (7, 3000), (3000, 5000))]
        np.testing.assert_allclose(np.concatenate(pieces), expected, rtol=1e-9, atol=1e-9)
        assert state.count == 5000


def test_ema_passes_non_finite_values_through_without_counting_them() -> None:
    out = ema_smooth([1.0, math.nan, 3.0, math.inf, 5.0], 0.5)
    assert math.isnan(out[1]) and out[3] == math.inf
    np.testing.assert_allclose(out[[0, 2, 4]], tensorboard_ema([1.0, 3.0, 5.0], 0.5))
    state = EmaState()
    ema_extend(np.array([math.nan, math.nan]), 0.5, state)
    assert state == EmaState()  # nothing finite: the average has not started


def test_ema_refuses_a_weight_outside_zero_to_one() -> None:
    for weight in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="smoothing weight"):
            ema_smooth([1.0, 2.0], weight)


def test_series_smoothing_extends_incrementally_and_restarts_on_a_new_weight() -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(size=300)
    s = series_of(values[:100])
    np.testing.assert_allclose(s.smoothed_values(0.9), tensorboard_ema(values[:100].tolist(), 0.9))
    s.extend(np.arange(100, 300, dtype=np.float64), np.zeros(200), values[100:])
    np.testing.assert_allclose(s.smoothed_values(0.9), tensorboard_ema(values.tolist(), 0.9))
    np.testing.assert_allclose(s.smoothed_values(0.5), tensorboard_ema(values.tolist(), 0.5))
    np.testing.assert_array_equal(s.smoothed_values(0.0), values)  # off: the raw values
    assert s.ema_n == 0


# -- peak pyramid and downsampling -----------------------------------------------------------


def test_peak_pyramid_matches_brute_force_min_max_incrementally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(numerics, "LEVEL_MIN_BINS", 16)  # a second level at 65,536 points
    rng = np.random.default_rng(3)
    y = rng.normal(size=300_000)
    y[1000:1010] = np.nan
    pyramid = PeakPyramid()
    for end in (10, 5000, 100_000, 262_144, 300_000):
        pyramid.update(y, end)
    assert pyramid.bins == [64, 4096]
    assert pyramid.count == [300_000 // 64, 300_000 // 4096]
    n = len(y)
    bins = n // 64
    level0 = y[: bins * 64].reshape(-1, 64)
    np.testing.assert_array_equal(pyramid.lo[0][:bins], np.nanmin(level0, axis=1))
    np.testing.assert_array_equal(pyramid.hi[0][:bins], np.nanmax(level0, axis=1))
    level1 = y[: (n // 4096) * 4096].reshape(-1, 4096)
    np.testing.assert_array_equal(pyramid.lo[1][: n // 4096], np.nanmin(level1, axis=1))
    np.testing.assert_array_equal(pyramid.hi[1][: n // 4096], np.nanmax(level1, axis=1))
    # Columns: narrow ones from the raw points, wide ones from a level, edges on its bins.
    narrow = np.arange(0, 5000, 100)
    starts, lo, hi = pyramid.column_minmax(y, n, narrow, 5000)
    np.testing.assert_array_equal(starts, narrow)
    np.testing.assert_array_equal(lo, [np.nanmin(y[s : s + 100]) for s in narrow])
    wide = np.linspace(0, n, 21)[:-1].astype(np.intp)  # 15,000 points a column: level 0
    starts, lo, hi = pyramid.column_minmax(y, n, wide, n)
    assert np.all(starts % 64 == 0)
    assert np.all(np.abs(starts - wide) <= 32)
    bounds = [*starts.tolist(), n]
    np.testing.assert_array_equal(hi, [np.nanmax(y[a:b]) for a, b in itertools.pairwise(bounds)])
    np.testing.assert_array_equal(lo, [np.nanmin(y[a:b]) for a, b in itertools.pairwise(bounds)])
    assert lo.min() == np.nanmin(y) and hi.max() == np.nanmax(y)
    huge = np.array([0, 150_000])  # 37 bins of 4096 a column: level 1, tail from raw points
    starts, lo, hi = pyramid.column_minmax(y, n, huge, n)
    np.testing.assert_array_equal(hi, [np.nanmax(y[:147_456]), np.nanmax(y[147_456:])])


def test_the_pyramid_keeps_every_bucket_extreme_so_no_peak_is_lost() -> None:
    rng = np.random.default_rng(21)
    y = rng.normal(size=70_000)
    spikes = {5: 90.0, 4095: -80.0, 33_333: 70.0, 69_999: -60.0}  # the last in an unfinished bin
    for i, v in spikes.items():
        y[i] = v
    pyramid = PeakPyramid()
    for end in range(0, len(y) + 1, 7_001):  # grows in uneven pieces
        pyramid.update(y, end)
    starts = np.arange(0, len(y), 700)  # 100 columns, 700 points each
    starts_used, lo, hi = pyramid.column_minmax(y, len(y), starts, len(y))
    bounds = [*starts_used.tolist(), len(y)]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        assert lo[k] == y[a:b].min() and hi[k] == y[a:b].max()
    for i, v in spikes.items():
        k = int(np.searchsorted(starts_used, i, side="right")) - 1
        assert v in (lo[k], hi[k])


def test_downsampling_returns_points_while_sparse_and_min_max_columns_when_dense() -> None:
    x = np.arange(150, dtype=np.float64)
    y = np.sin(x)
    sparse = peak_downsample(PeakPyramid(), x, y, 150, (0, 150, 100), (False, False), True)
    assert isinstance(sparse, Line)
    np.testing.assert_array_equal(sparse.x, x)
    np.testing.assert_array_equal(sparse.y, y)

    n = 100_000
    x = np.arange(n, dtype=np.float64)
    y = np.random.default_rng(2).normal(size=n)
    y[54_321] = 40.0
    y[12_345] = -40.0
    dense = peak_downsample(PeakPyramid(), x, y, n, (0, n, 200), (False, False), True)
    assert isinstance(dense, Band)
    assert len(dense.edges) == len(dense.lo) + 1 == len(dense.hi) + 1
    assert len(dense.lo) <= 200
    assert dense.edges[0] == 0 and dense.edges[-1] == n - 1
    assert dense.hi.max() == 40.0 and dense.lo.min() == -40.0
    # Each column reaches at least its own points' range.
    edges = dense.edges.astype(int)
    for k in range(len(dense.lo)):
        inside = y[edges[k] : edges[k + 1]]
        assert dense.lo[k] <= inside.min() and dense.hi[k] >= inside.max()


def test_downsampling_an_unsorted_x_keeps_the_extremes_as_a_zig_zag() -> None:
    n = 10_000
    x = np.concatenate([np.arange(5000), np.arange(5000)]).astype(np.float64)  # restarted
    y = np.linspace(0.0, 1.0, n)
    y[7777] = 9.0
    shape = peak_downsample(PeakPyramid(), x, y, n, (0, n, 100), (False, False), False)
    assert isinstance(shape, Line)
    assert len(shape.x) == 200  # min and max of 100 columns of equal point counts
    assert shape.y.max() == 9.0 and shape.y.min() == 0.0


def test_downsampling_on_log_axes_drops_values_at_or_below_zero() -> None:
    x = np.arange(5, dtype=np.float64)  # 0 has no place on a log axis
    y = np.array([1.0, 10.0, -1.0, 100.0, 1000.0])
    shape = peak_downsample(PeakPyramid(), x, y, 5, (0, 5, 100), (True, True), True)
    assert isinstance(shape, Line)
    np.testing.assert_allclose(shape.x, np.log10([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(shape.y, [1.0, np.nan, 2.0, 3.0])
    np.testing.assert_array_equal(log10_or_nan(np.array([0.0, -5.0, np.nan])), [np.nan] * 3)


def test_a_zoomed_view_hands_over_the_visible_range_and_one_width_either_side() -> None:
    x = np.arange(1000, dtype=np.float64)
    i0, i1, columns = visible_window(x, 1000, (400.0, 500.0), 200, False)
    assert (i0, i1) == (299, 601)  # 300..600, and the point just outside either end
    assert columns == 602  # 200 pixels per 100 of x, over x = 299..600
    # A sparse view: the columns are capped at four times the plot's width.
    assert visible_window(x, 1000, (400.0, 401.0), 200, False) == (398, 403, 800)
    assert visible_window(x, 1000, (2000.0, 2100.0), 200, False)[:2] == (999, 1000)


def test_snap_bounds_moves_auto_range_in_round_steps() -> None:
    assert snap_bounds(0.0, 990_000.0) == (0.0, 1_000_000.0)
    assert snap_bounds(0.0, 960_000.0) == (0.0, 1_000_000.0)  # the same range
    assert snap_bounds(-0.37, 1.42) == (-0.4, 1.5)
    assert snap_bounds(2.0, 2.0) == (2.0, 2.0)
    assert snap_bounds(0.0, math.inf) == (0.0, math.inf)


# -- series ----------------------------------------------------------------------------------


def test_missing_steps_use_the_index_within_the_series() -> None:
    s = Series(JOB, "algo-1", "loss")
    s.extend(np.array([np.nan, np.nan]), np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    s.extend(np.array([10.0, np.nan]), np.array([3.0, 4.0]), np.array([5.0, 6.0]))
    np.testing.assert_array_equal(s.x_step[: s.n], [0, 1, 10, 3])
    assert np.isnan(s.step[[0, 1, 3]]).all()  # the CSV shows no step for these
    assert not s.x_sorted
    assert s.wall_sorted


def test_series_grows_keeps_every_point_and_tracks_nan_and_constancy() -> None:
    s = Series(JOB, "algo-1", "loss")
    for start in range(0, 10_000, 1000):
        steps = np.arange(start, start + 1000, dtype=np.float64)
        s.extend(steps, steps * 0.5, np.full(1000, 2.0))
    assert s.n == 10_000 and s.capacity >= 10_000
    assert s.constant and s.finite
    np.testing.assert_array_equal(s.x_values(X_WALL, 0.0), np.arange(10_000) * 0.5)
    np.testing.assert_array_equal(s.x_values(X_RELATIVE, 100.0), np.arange(10_000) * 0.5 - 100)
    s.extend(np.array([10_000.0]), np.array([5000.0]), np.array([np.nan]))
    assert s.n == 10_001
    assert math.isnan(s.value[10_000])
    assert not s.constant and not s.finite
    copy = s.snapshot()
    assert copy.n == s.n and len(copy.value) == s.n  # trimmed to the points
    np.testing.assert_array_equal(copy.wall, s.wall[: s.n])
    s.value[0] = 99.0
    assert copy.value[0] == 2.0  # a copy, not a view


def test_csv_has_one_row_per_point_with_an_empty_step_where_there_was_none(
    tmp_path: Path,
) -> None:
    a = Series(JOB, "algo-1", "loss")
    a.extend(np.array([0.0, np.nan]), np.array([1000.0, 1000.5]), np.array([1.0, np.nan]))
    b = Series("job,2", 'host "x"', "lr\nrate")  # commas, quotes and a newline get quoted
    b.extend(np.array([7.0]), np.array([2000.25]), np.array([0.1]))
    out = tmp_path / "metrics.csv"
    assert write_csv(out, [a, b]) == 3
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_HEADER == ("job", "host", "metric", "step", "wall_time", "value")
    assert rows[1:] == [
        [JOB, "algo-1", "loss", "0", "1000.0", "1.0"],
        [JOB, "algo-1", "loss", "", "1000.5", "nan"],
        ["job,2", 'host "x"', "lr\nrate", "7", "2000.25", "0.1"],
    ]


def test_csv_to_a_folder_that_does_not_exist_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_csv(tmp_path / "missing" / "metrics.csv", [series_of([1.0])])


def test_the_numerics_import_neither_qt_nor_pyqtgraph() -> None:
    code = (
        "import sys, trainer_gui.core.metrics.numerics, trainer_gui.core.metrics.series; "
        "print(sorted(m for m in ('PySide6', 'pyqtgraph', 'shiboken6') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
