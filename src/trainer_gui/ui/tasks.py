"""The one way the window works off the GUI thread.

`BackgroundTask` runs one plain function on `QThreadPool.globalInstance()` and reports back through
signals of a QObject that lives on the GUI thread, so the slots run there (style-anchors section 8:
connect on the GUI thread, to bound methods or callables created there, never from the worker).
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal, Slot

log = logging.getLogger(__name__)


class BackgroundTask(QObject):
    """One function run on the global thread pool; the result comes back as a signal.

    The task keeps itself alive (a class-level set) until its result has been delivered on the
    GUI thread, so callers may fire and forget.
    """

    sig_done = Signal(object)
    """The function's return value."""
    sig_failed = Signal(object, str)
    """The exception it raised, and its formatted traceback."""

    _live: ClassVar[set[BackgroundTask]] = set()

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn

    def start(self, pool: QThreadPool | None = None) -> BackgroundTask:
        # Connected last so the callers' slots run first: releasing the last reference deletes
        # this QObject, and Qt drops queued calls still addressed to a deleted object.
        self.sig_done.connect(self._release)
        self.sig_failed.connect(self._release)
        BackgroundTask._live.add(self)
        (pool or QThreadPool.globalInstance()).start(self._run)
        return self

    def _run(self) -> None:  # worker thread
        try:
            result = self._fn()
        except Exception as exc:
            self.sig_failed.emit(exc, traceback.format_exc())
        else:
            self.sig_done.emit(result)

    @Slot()
    def _release(self) -> None:
        # Let go from the event loop, not from inside this object's own slot call.
        QTimer.singleShot(0, functools.partial(BackgroundTask._live.discard, self))


def run_task(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_failed: Callable[[BaseException, str], None] | None = None,
    pool: QThreadPool | None = None,
) -> BackgroundTask:
    """Run `fn` on the pool; `on_done(result)` / `on_failed(exc, tb)` run on the GUI thread.

    Call this on the GUI thread only (the connections are made here).
    """
    task = BackgroundTask(fn)
    if on_done is not None:
        task.sig_done.connect(on_done)
    if on_failed is not None:
        task.sig_failed.connect(on_failed)
    else:
        task.sig_failed.connect(_log_failure)
    return task.start(pool)


_writes: QThreadPool | None = None


def store_writes() -> QThreadPool:
    """A one-thread pool for the window's own writes to the store: they run in the order they
    were asked for (the global pool runs tasks side by side, in any order)."""
    global _writes
    if _writes is None:
        _writes = QThreadPool()
        _writes.setMaxThreadCount(1)
    return _writes


def _log_failure(exc: BaseException, tb: str) -> None:
    log.error("background task failed: %s\n%s", exc, tb)


def error_text(exc: BaseException) -> str:
    """What a dialog shows for an error: a user error's own sentence; anything else one short
    line naming its type, never a traceback."""
    from trainer_gui.core.errors import UserError

    if isinstance(exc, UserError):
        return str(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    if len(first) > 200:
        first = first[:199] + "…"
    return f"Unexpected error ({type(exc).__name__}){': ' + first if first else ''}"


@dataclass(frozen=True)
class Outcome:
    """What a tagged background call returned or raised. The tag says which request it answers,
    so a dialog drops answers to questions it has asked again since."""

    tag: Any
    value: Any = None
    error: BaseException | None = None

    @property
    def message(self) -> str:
        return "" if self.error is None else error_text(self.error)


def run_tagged(tag: Any, fn: Callable[[], Any], on_outcome: Callable[[Outcome], None]) -> None:
    """`run_task` for dialogs: value and error reach one slot (a bound method, which Qt drops
    if the dialog is gone first) as an `Outcome`; unexpected errors are logged with their
    traceback."""
    from trainer_gui.core.errors import UserError

    def run() -> Outcome:
        try:
            return Outcome(tag, value=fn())
        except Exception as exc:
            if not isinstance(exc, UserError):
                log.exception("background task %r failed", tag)
            return Outcome(tag, error=exc)

    run_task(run, on_outcome)
