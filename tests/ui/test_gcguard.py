"""Cyclic garbage is collected on the GUI thread, never on a worker that allocates."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from trainer_gui.ui.gcguard import GuiThreadCollector, collect_due


class _Cycle:
    """A reference cycle that notes the thread its finaliser runs on."""

    freed_on: list[str] = []  # noqa: RUF012 (shared on purpose: the test reads it)

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        _Cycle.freed_on.append(threading.current_thread().name)


def test_a_worker_allocating_past_the_threshold_frees_no_cycle_while_the_collector_lives(
    qtbot: Any,
) -> None:
    _Cycle.freed_on.clear()
    collector = GuiThreadCollector(interval_ms=10)
    try:
        assert not gc.isenabled()
        _Cycle()  # garbage at once: only the collector can free it

        kept: list[list[object]] = []

        def allocate() -> None:  # many young collections' worth, still alive when it ends
            kept.extend([] for _ in range(5 * gc.get_threshold()[0]))

        worker = threading.Thread(target=allocate, name="worker")
        worker.start()
        worker.join()
        assert "worker" not in _Cycle.freed_on
        qtbot.waitUntil(lambda: bool(_Cycle.freed_on), timeout=5000)
        assert _Cycle.freed_on == [threading.current_thread().name]
    finally:
        collector.stop()


def test_collect_due_collects_only_a_generation_past_its_threshold() -> None:
    gc.collect()
    assert collect_due() == -1
    junk: list[list[object]] = [[] for _ in range(gc.get_threshold()[0] + 100)]
    assert collect_due() == 0
    del junk


def _make_full_collection_due() -> None:
    """Push generation 2's count just past its threshold (young collections raise it by 1)."""
    while gc.get_count()[2] <= gc.get_threshold()[2]:
        gc.collect(1)


def test_a_due_full_collection_waits_for_the_flood_to_stop_and_runs_once_it_is_quiet(
    qtbot: Any, monkeypatch: Any
) -> None:
    from trainer_gui.ui import gcguard

    monkeypatch.setattr(gcguard, "_full_due_since", None)
    collections: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    _make_full_collection_due()
    gc.callbacks.append(on_gc)
    try:
        start = time.monotonic()
        # A flood: a batch every tick, each noted as live data, the collector checking between.
        for tick in range(40):  # 4 s of batches every 100 ms
            now = start + tick * 0.1
            gcguard.note_activity(now)
            assert gcguard.collect_due(now=now) != 2
            assert gcguard.collect_due(now=now + 0.05) != 2
        assert 2 not in collections
        # Quiet for QUIET_S: the deferred full collection runs, once.
        assert gcguard.collect_due(now=now + gcguard.QUIET_S) == 2
        assert collections.count(2) == 1
        assert gcguard.collect_due(now=now + gcguard.QUIET_S + 0.1) != 2
    finally:
        gc.callbacks.remove(on_gc)


def test_a_flood_that_never_stops_still_gets_a_full_collection_after_the_bound(
    monkeypatch: Any,
) -> None:
    from trainer_gui.ui import gcguard

    monkeypatch.setattr(gcguard, "_full_due_since", None)
    gc.collect()
    _make_full_collection_due()
    start = time.monotonic()
    for now in (start, start + gcguard.MAX_DEFER_S - 1):
        gcguard.note_activity(now)
        assert gcguard.collect_due(now=now) != 2
    gcguard.note_activity(start + gcguard.MAX_DEFER_S)
    assert gcguard.collect_due(now=start + gcguard.MAX_DEFER_S) == 2
    # And by count: far past the threshold, at once, however busy.
    gcguard.note_activity()
    while gc.get_count()[2] <= gcguard.MAX_DEFER_FACTOR * gc.get_threshold()[2]:
        gc.collect(1)
    assert gcguard.collect_due() == 2


def test_the_gui_thread_collector_defers_a_full_collection_while_batches_arrive(
    qtbot: Any, monkeypatch: Any
) -> None:
    """The real timer: batches noted every 20 ms keep the full collection off the GUI thread;
    once they stop it runs after QUIET_S (1 s: longer than any stall of a loaded machine,
    which could otherwise look like a quiet spell between two batches)."""
    from PySide6.QtCore import QTimer

    from trainer_gui.ui import gcguard

    monkeypatch.setattr(gcguard, "_full_due_since", None)
    full: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(time.monotonic())

    gc.collect()
    _make_full_collection_due()
    batches = QTimer()
    batches.timeout.connect(gcguard.note_activity)
    gcguard.note_activity()
    batches.start(20)
    collector = GuiThreadCollector(interval_ms=10)
    gc.callbacks.append(on_gc)
    try:
        qtbot.wait(500)  # ~50 checks, every one with a full collection due
        assert full == []
        batches.stop()
        stopped = time.monotonic()
        qtbot.waitUntil(lambda: bool(full), timeout=5000)
        assert full[0] - stopped >= gcguard.QUIET_S - 0.05
    finally:
        gc.callbacks.remove(on_gc)
        batches.stop()
        collector.stop()


def test_refreeze_freezes_right_after_the_next_full_collection_not_before(
    monkeypatch: Any,
) -> None:
    from trainer_gui.ui import gcguard

    monkeypatch.setattr(gcguard, "_full_due_since", None)
    monkeypatch.setattr(gcguard, "_refreeze", True)
    monkeypatch.setattr(gcguard, "_refreeze_pending", False)
    gc.collect()
    frozen = gc.get_freeze_count()
    try:
        gcguard.refreeze()
        assert gc.get_freeze_count() == frozen  # no full pass of its own
        _make_full_collection_due()
        assert gcguard.collect_due(now=time.monotonic() + gcguard.QUIET_S + 1) == 2
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
