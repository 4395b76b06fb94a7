"""A big series moves into its next capacity a slice per append: every point stays where it
was, whatever the sizes of the appends, and no append copies the whole series."""

from __future__ import annotations

import numpy as np
import pytest

from trainer_gui.core.metrics import series as series_module
from trainer_gui.core.metrics.series import MOVE_FROM, MOVE_SLICE, X_STEP, Series


def appended(series: Series, start: int, count: int) -> None:
    steps = np.arange(start, start + count, dtype=np.float64)
    series.extend(steps, 1000.0 + steps, steps * 0.5)


@pytest.mark.parametrize("batch", [97, 5_000, 50_000])
def test_points_survive_the_move_into_the_next_capacity(batch: int) -> None:
    series = Series("job", "algo-1", "loss")
    total = 4 * MOVE_FROM + 123
    done = 0
    while done < total:
        count = min(batch, total - done)
        appended(series, done, count)
        done += count
    n = series.n
    assert n == total
    expected = np.arange(total, dtype=np.float64)
    np.testing.assert_array_equal(series.step[:n], expected)
    np.testing.assert_array_equal(series.x_values(X_STEP, 0.0), expected)
    np.testing.assert_array_equal(series.wall[:n], 1000.0 + expected)
    np.testing.assert_array_equal(series.value[:n], expected * 0.5)
    assert series.capacity >= total and series.x_sorted and series.finite


def test_a_full_series_swaps_in_the_moved_arrays_without_copying_them_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    series = Series("job", "algo-1", "loss")
    appended(series, 0, MOVE_FROM)  # full: the next append doubles it at once (small)
    appended(series, MOVE_FROM, 1)
    assert series.capacity == 2 * MOVE_FROM
    copied: list[int] = []
    move = Series._move

    def counting(self: Series, stop: int) -> None:
        copied.append(stop - self._moved)
        move(self, stop)

    monkeypatch.setattr(Series, "_move", counting)
    done = MOVE_FROM + 1
    while done < 2 * MOVE_FROM + 10:  # through the next doubling, 100 points at a time
        appended(series, done, 100)
        done += 100
    assert series.capacity == 4 * MOVE_FROM
    # Each append moved at most a slice; together they moved each point once.
    assert max(copied) <= MOVE_SLICE
    assert sum(copied) <= series.n
    np.testing.assert_array_equal(series.step[: series.n], np.arange(series.n, dtype=np.float64))


def test_smoothing_keeps_its_values_across_the_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_module, "MOVE_FROM", 1024)
    monkeypatch.setattr(series_module, "MOVE_SLICE", 64)
    whole = Series("job", "algo-1", "loss")
    appended(whole, 0, 10_000)
    expected = whole.smoothed_values(0.6).copy()
    grown = Series("job", "algo-1", "loss")
    for start in range(0, 10_000, 250):
        appended(grown, start, 250)
        grown.smoothed_values(0.6)  # smoothed as it grows, as the live plots do
    np.testing.assert_allclose(grown.smoothed_values(0.6), expected)
