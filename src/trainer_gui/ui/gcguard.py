"""Python's cyclic garbage collector runs on the GUI thread only.

A collection frees the cycles it finds on whichever thread happens to allocate past the
threshold. When a cycle holds a Qt wrapper that owns its C++ object (a closed dialog, a task
object, a timer, a lambda's widget), that object is destroyed right there: on a pool thread
this crashes Qt (seen in a test run: a segfault inside the collector, triggered by botocore
allocating on a `run_task` worker). So automatic collection is switched off and the GUI thread
collects, on a timer, whatever generation Python itself would have collected by now.

A full (generation 2) collection scans every object that is not frozen: 19-31 ms on the GUI
thread of a window streaming a job's metrics, a visible stutter. So while live data arrives
(`note_activity()`, called for every batch) a due full collection waits until nothing has
arrived for `QUIET_S`; it is forced anyway once it has waited `MAX_DEFER_S`, or once
generation 2's count is `MAX_DEFER_FACTOR` times its threshold, so memory stays bounded under
a flood that never stops. Young collections (generations 0 and 1, ~1 ms) are never deferred.
"""

from __future__ import annotations

import gc
import logging
import time

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)
CHECK_MS = 250
QUIET_S = 1.0  # a due full collection waits until no live data arrived for this long
MAX_DEFER_S = 20.0  # ... but at most this long
MAX_DEFER_FACTOR = 4  # ... or until generation 2's count is this multiple of its threshold

_last_activity = -float("inf")  # time.monotonic() of the last live-data batch
_full_due_since: float | None = None  # when a deferred full collection first became due
_refreeze = False  # `refreeze()` freezes only once the app asked for it (`enable_refreeze`)
_refreeze_pending = False  # freeze after the next full collection


def note_activity(now: float | None = None) -> None:
    """A batch of live data arrived: a full collection now would stall what shows it."""
    global _last_activity
    _last_activity = time.monotonic() if now is None else now


def collect_due(now: float | None = None) -> int:
    """Collect the oldest generation whose count passed its threshold, as Python would have
    done automatically, except a full collection while live data arrives (see the module
    doc); -1 when none is due or collected. Call it on the GUI thread."""
    global _full_due_since
    counts = gc.get_count()
    thresholds = gc.get_threshold()
    now = time.monotonic() if now is None else now
    full_due = bool(thresholds[2]) and counts[2] > thresholds[2]
    if full_due:
        if _full_due_since is None:
            _full_due_since = now
        if (
            now - _last_activity >= QUIET_S
            or now - _full_due_since >= MAX_DEFER_S
            or counts[2] > MAX_DEFER_FACTOR * thresholds[2]
        ):
            gc.collect(2)
            _full_due_since = None
            _freeze_if_asked()
            return 2
    else:
        _full_due_since = None
    for generation in (1, 0):
        if thresholds[generation] and counts[generation] > thresholds[generation]:
            gc.collect(generation)
            return generation
    return -1


def _freeze_if_asked() -> None:
    global _refreeze_pending
    if _refreeze_pending:
        _refreeze_pending = False
        gc.freeze()


def enable_refreeze() -> None:
    """Let `refreeze()` freeze: the app calls this with its own `gc.freeze()` (tests and
    other embedders that never froze keep their objects collectable)."""
    global _refreeze
    _refreeze = True


def refreeze() -> None:
    """Ask for the objects alive now (long-lived ones just built: spare plots, pyqtgraph
    items) to be moved out of the collector's reach, as the app's start-up freeze did, so full
    collections do not scan them again and again. Done right after the next full collection
    (so no garbage cycle is frozen, and no extra full pass stalls the window: measured
    147-172 ms under a flood). A no-op until `enable_refreeze()`."""
    global _refreeze_pending
    _refreeze_pending = _refreeze


class GuiThreadCollector(QObject):
    """Owns the policy while it lives: automatic collection off, a `CHECK_MS` timer on the
    thread that made it (the GUI thread) collecting what is due. `stop()` gives the
    collector back to Python."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = CHECK_MS) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._collect)
        self._timer.start(interval_ms)

    def _collect(self) -> None:
        collect_due()

    def stop(self) -> None:
        self._timer.stop()
        if self._was_enabled:
            gc.enable()
