"""The one way the window works off the GUI thread.

`BackgroundTask` runs one plain function on `QThreadPool.globalInstance()` and reports back through
signals of a QObject that lives on the GUI thread, so the slots run there (style-anchors section 8:
connect on the GUI thread, to bound methods or callables created there, never from the worker).

A task can be cancelled (`task.cancel()`, on the GUI thread): from then on none of its result or
error slots runs, and the function, which cannot be interrupted, may look at `task.cancel_event`
(or the event it was given) to stop early. Owners cancel their tasks when they close, and an
older request when a newer one supersedes it; `TaskGroup` keeps an owner's tasks for that.
"""

from __future__ import annotations

import functools
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal, Slot

log = logging.getLogger(__name__)

_Done = Callable[[Any], None]
_Failed = Callable[[BaseException, str], None]


class BackgroundTask(QObject):
    """One function run on the global thread pool; the result comes back as a signal.

    The task keeps itself alive (a class-level set) until its result has been delivered on the
    GUI thread, so callers may fire and forget. The worker hands its outcome to `_deliver`, a
    slot of this GUI-thread object, which emits `sig_done` / `sig_failed` there unless the task
    was cancelled first: cancelling and delivering both happen on the GUI thread, so a cancelled
    task's slots never run, even when the worker had already finished.
    """

    sig_done = Signal(object)
    """The function's return value."""
    sig_failed = Signal(object, str)
    """The exception it raised, and its formatted traceback."""
    sig_finished = Signal(object)
    """(this task): it is over, cancelled or not; `result`, `error` and `traceback` are set."""
    _sig_outcome = Signal(bool, object, str)  # worker -> GUI thread: (ok, value or exc, tb)

    _live: ClassVar[set[BackgroundTask]] = set()

    def __init__(
        self,
        fn: Callable[[], Any],
        parent: QObject | None = None,
        *,
        cancel_event: threading.Event | None = None,
    ) -> None:
        super().__init__(parent)
        self._fn = fn
        self.cancel_event = cancel_event if cancel_event is not None else threading.Event()
        """Set by `cancel()`; a long function may check it (or be given it) to stop early."""
        self.result: Any = None
        self.error: BaseException | None = None
        self.traceback = ""
        self.finished = False
        self._sig_outcome.connect(self._deliver)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        """No result or error slot of this task runs after this (call on the GUI thread)."""
        self.cancel_event.set()

    def start(self, pool: QThreadPool | None = None) -> BackgroundTask:
        BackgroundTask._live.add(self)
        (pool or QThreadPool.globalInstance()).start(self._run)
        return self

    def _run(self) -> None:  # worker thread
        if self.cancelled:
            self._sig_outcome.emit(False, None, "")
            return
        try:
            result = self._fn()
        except Exception as exc:
            self._sig_outcome.emit(False, exc, traceback.format_exc())
        else:
            self._sig_outcome.emit(True, result, "")

    @Slot(bool, object, str)
    def _deliver(self, ok: bool, value: Any, tb: str) -> None:  # GUI thread
        self.finished = True
        if ok:
            self.result = value
        else:
            self.error, self.traceback = value, tb
        try:
            if self.cancelled:
                if self.error is not None:
                    log.debug("a cancelled task failed: %s\n%s", self.error, tb)
            elif ok:
                self.sig_done.emit(value)
            elif value is not None:
                self.sig_failed.emit(value, tb)
            self.sig_finished.emit(self)
        finally:
            # Let go from the event loop, not from inside this object's own slot call.
            QTimer.singleShot(0, functools.partial(BackgroundTask._live.discard, self))


def run_task(
    fn: Callable[[], Any],
    on_done: _Done | None = None,
    on_failed: _Failed | None = None,
    pool: QThreadPool | None = None,
    *,
    cancel_event: threading.Event | None = None,
) -> BackgroundTask:
    """Run `fn` on the pool; `on_done(result)` / `on_failed(exc, tb)` run on the GUI thread
    unless the returned task is cancelled first. `cancel_event`, when given, is the event
    `cancel()` sets (hand the same one to `fn`'s blocking calls).

    Call this on the GUI thread only (the connections are made here).
    """
    task = BackgroundTask(fn, cancel_event=cancel_event)
    if on_done is not None:
        task.sig_done.connect(on_done)
    task.sig_failed.connect(on_failed if on_failed is not None else _log_failure)
    return task.start(pool)


class TaskGroup(QObject):
    """The tasks of one owner (a panel, a view): `cancel_all()` when it closes.

    The callbacks are called from this object's own slot, so when the owner (its parent) is
    deleted, Qt drops the deliveries with it, closures and lambdas included.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._callbacks: dict[BackgroundTask, tuple[_Done | None, _Failed | None]] = {}

    def run(
        self,
        fn: Callable[[], Any],
        on_done: _Done | None = None,
        on_failed: _Failed | None = None,
        pool: QThreadPool | None = None,
        *,
        cancel_event: threading.Event | None = None,
    ) -> BackgroundTask:
        """Like `run_task`, and the task is kept until it is over or cancelled."""
        task = BackgroundTask(fn, cancel_event=cancel_event)
        self._callbacks[task] = (on_done, on_failed)
        task.sig_finished.connect(self._on_finished)
        return task.start(pool)

    @property
    def pending(self) -> int:
        """Tasks started and neither over nor cancelled."""
        return sum(1 for task in self._callbacks if not task.cancelled)

    def cancel_all(self) -> None:
        for task in list(self._callbacks):
            task.cancel()
        self._callbacks.clear()

    @Slot(object)
    def _on_finished(self, task: BackgroundTask) -> None:
        on_done, on_failed = self._callbacks.pop(task, (None, None))
        if task.cancelled:
            return
        if task.error is not None:
            (on_failed or _log_failure)(task.error, task.traceback)
        elif on_done is not None:
            on_done(task.result)


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


def run_tagged(
    tag: Any,
    fn: Callable[[], Any],
    on_outcome: Callable[[Outcome], None],
    group: TaskGroup | None = None,
) -> BackgroundTask:
    """`run_task` for dialogs: value and error reach one slot (a bound method, which Qt drops
    if the dialog is gone first) as an `Outcome`; unexpected errors are logged with their
    traceback. With a `group`, the task is one of the dialog's (cancelled with them)."""
    from trainer_gui.core.errors import UserError

    def run() -> Outcome:
        try:
            return Outcome(tag, value=fn())
        except Exception as exc:
            if not isinstance(exc, UserError):
                log.exception("background task %r failed", tag)
            return Outcome(tag, error=exc)

    if group is not None:
        return group.run(run, on_outcome)
    return run_task(run, on_outcome)
