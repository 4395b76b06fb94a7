"""The one background-task helper: results on the GUI thread, and cancellation."""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from trainer_gui.ui.tasks import BackgroundTask, TaskGroup, run_task


def held(release: threading.Event, started: threading.Event, value: Any = "late") -> Any:
    """A function that returns `value` once the test releases it."""

    def fn() -> Any:
        started.set()
        assert release.wait(10), "never released"
        return value

    return fn


def test_a_task_cancelled_while_running_runs_neither_slot(qtbot: QtBot) -> None:
    release, started = threading.Event(), threading.Event()
    seen: list[Any] = []
    task = run_task(held(release, started), seen.append, lambda e, tb: seen.append(e))
    assert started.wait(5)
    task.cancel()
    release.set()
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert task.result == "late"  # the function ran to its end ...
    assert seen == []  # ... but nobody was told


def test_a_task_cancelled_after_its_function_returned_still_runs_no_slot(qtbot: QtBot) -> None:
    returned = threading.Event()
    seen: list[Any] = []

    def fn() -> str:
        returned.set()
        return "done"

    task = run_task(fn, seen.append)
    # The GUI thread does not spin its event loop here, so the result waits in the queue.
    assert returned.wait(5)
    assert not task.finished
    task.cancel()
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert seen == []


def test_a_failure_of_a_cancelled_task_is_not_reported(qtbot: QtBot) -> None:
    release, started = threading.Event(), threading.Event()
    seen: list[Any] = []

    def boom() -> None:
        started.set()
        release.wait(10)
        raise RuntimeError("no")

    task = run_task(boom, seen.append, lambda e, tb: seen.append(e))
    assert started.wait(5)
    task.cancel()
    release.set()
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert isinstance(task.error, RuntimeError)
    assert seen == []


def test_the_function_sees_the_cancel_event_and_can_stop_early(qtbot: QtBot) -> None:
    event = threading.Event()
    started = threading.Event()
    seen: list[Any] = []

    def long_work() -> str:
        started.set()
        return "stopped early" if event.wait(10) else "ran to the end"

    task = run_task(long_work, seen.append, cancel_event=event)
    assert task.cancel_event is event
    assert started.wait(5)
    task.cancel()
    assert task.cancelled
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert task.result == "stopped early"
    assert seen == []


def test_an_uncancelled_task_still_reports_its_result(qtbot: QtBot) -> None:
    seen: list[Any] = []
    with qtbot.waitSignal(run_task(lambda: 42, seen.append).sig_finished, timeout=5000):
        pass
    assert seen == [42]


def test_a_group_cancels_all_its_pending_tasks(qtbot: QtBot) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    group = TaskGroup(owner)
    release, started = threading.Event(), threading.Event()
    seen: list[Any] = []
    first = group.run(held(release, started, 1), seen.append)
    second = group.run(held(release, threading.Event(), 2), seen.append)
    assert started.wait(5)
    assert group.pending == 2
    group.cancel_all()
    assert group.pending == 0
    release.set()
    qtbot.waitUntil(lambda: first.finished and second.finished, timeout=5000)
    assert seen == []


def test_a_group_delivers_results_and_errors_then_forgets_the_task(qtbot: QtBot) -> None:
    group = TaskGroup()
    seen: list[Any] = []

    def boom() -> None:
        raise ValueError("bad")

    ok = group.run(lambda: "fine", seen.append)
    bad = group.run(boom, seen.append, lambda e, tb: seen.append(type(e).__name__))
    qtbot.waitUntil(lambda: ok.finished and bad.finished, timeout=5000)
    assert sorted(seen) == ["ValueError", "fine"]
    assert group.pending == 0


def test_a_deleted_owner_gets_no_result(qtbot: QtBot) -> None:
    owner = QWidget()
    group = TaskGroup(owner)
    release, started = threading.Event(), threading.Event()
    seen: list[Any] = []
    task: BackgroundTask = group.run(held(release, started), seen.append)
    assert started.wait(5)
    owner.deleteLater()
    qtbot.waitUntil(lambda: not _alive(group), timeout=5000)
    release.set()
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert seen == []


def _alive(obj: Any) -> bool:
    from shiboken6 import isValid

    return bool(isValid(obj))


def test_the_ui_has_one_background_task_helper() -> None:
    """No home-made workers next to `ui.tasks`: no QRunnable or QThread, no direct pool starts.
    The one plain thread is the window's endpoint removal at exit (it outlives the window)."""
    import re
    from pathlib import Path

    import trainer_gui.ui

    root = Path(trainer_gui.ui.__file__).parent
    pattern = re.compile(r"\bQRunnable\b|\bQThread\b|\.globalInstance\(\)\.start\(|Thread\(")
    found = {
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if path.name != "tasks.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    }
    allowed = {
        f"main_window.py:{number}"
        for number, line in enumerate(
            (root / "main_window.py").read_text(encoding="utf-8").splitlines(), 1
        )
        if "threading.Thread(" in line
    }
    assert len(allowed) == 1
    assert found == allowed
