"""Python's cyclic garbage collector runs on the GUI thread only.

A collection frees the cycles it finds on whichever thread happens to allocate past the
threshold. When a cycle holds a Qt wrapper that owns its C++ object (a closed dialog, a task
object, a timer, a lambda's widget), that object is destroyed right there: on a pool thread
this crashes Qt (seen in a test run: a segfault inside the collector, triggered by botocore
allocating on a `run_task` worker). So automatic collection is switched off and the GUI thread
collects, on a timer, whatever generation Python itself would have collected by now.
"""

from __future__ import annotations

import gc
import logging

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)
CHECK_MS = 250


def collect_due() -> int:
    """Collect the oldest generation whose count passed its threshold, as Python would have
    done automatically; -1 when none is due. Call it on the GUI thread."""
    counts = gc.get_count()
    thresholds = gc.get_threshold()
    for generation in (2, 1, 0):
        if thresholds[generation] and counts[generation] > thresholds[generation]:
            gc.collect(generation)
            return generation
    return -1


class GuiThreadCollector(QObject):
    """Owns the policy while it lives: automatic collection off, a `CHECK_MS` timer on the
    thread that made it (the GUI thread) collecting what is due. `stop()` gives the
    collector back to Python."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = CHECK_MS) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(collect_due)
        self._timer.start(interval_ms)

    def stop(self) -> None:
        self._timer.stop()
        if self._was_enabled:
            gc.enable()
