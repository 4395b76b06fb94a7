"""Cyclic garbage is collected on the GUI thread, never on a worker that allocates."""

from __future__ import annotations

import gc
import threading
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
    junk = [[] for _ in range(gc.get_threshold()[0] + 100)]
    assert collect_due() == 0
    del junk
