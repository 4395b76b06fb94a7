"""The Queue dock (issue 14): local jobs waiting for the machine, reordered, paused, resumed and
cancelled from the window, with the job host scheduling them as the app runs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WindowFactory
from PySide6.QtCore import Qt

from trainer_gui.core.spec import spec_from_dict

# Waits until its release file exists (at most two minutes), so a test decides when it ends.
HOLD = (
    "import os, sys, time\n"
    "deadline = time.time() + 120\n"
    "while not os.path.exists(sys.argv[1]) and time.time() < deadline:\n"
    "    time.sleep(0.05)\n"
    "print('loss=0.5', flush=True)\n"
)
CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def make_window(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[WindowFactory]:
    """One job at a time (the job host reads this when it starts); held jobs let go at the end."""
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "1")
    factory = WindowFactory(qtbot)
    yield factory
    release_all(tmp_path)  # they end by themselves; whatever is left is stopped
    factory.close()


class Held:
    """Submits jobs that run until released."""

    def __init__(self, factory: WindowFactory, tmp_path: Path) -> None:
        self.service = factory.service
        self.store = factory.store
        self.folder = tmp_path
        self.script = tmp_path / "hold.py"
        self.script.write_text(HOLD, encoding="utf-8")

    def spec(self, name: str) -> Any:
        release = self.folder / f"release-{name}"
        command = [sys.executable, str(self.script), str(release)]
        return spec_from_dict({"name": name, "source": {"command": command}})

    def submit(self, name: str) -> str:
        return self.service.submit(self.spec(name)).job_id

    def release(self, name: str) -> None:
        (self.folder / f"release-{name}").write_text("", encoding="utf-8")

    def status(self, job_id: str) -> str:
        record = self.store.get_job(job_id)
        assert record is not None
        return record.status

    def waiting(self) -> list[str]:
        return [e.job_id for e in self.store.queue_entries(claimed=False)]


def release_all(folder: Path) -> None:
    for name in ("a", "b", "c", "d"):
        (folder / f"release-{name}").write_text("", encoding="utf-8")


def shown_ids(view: Any) -> list[str]:
    """The job ids of the queue table's rows, top to bottom."""
    from trainer_gui.ui.queue_view import JOB_ID_ROLE

    return [view.table.item(r, 0).data(JOB_ID_ROLE) for r in range(view.table.rowCount())]


def column(view: Any, col: int) -> list[str]:
    return [view.table.item(r, col).text() for r in range(view.table.rowCount())]


def open_queue(qtbot: Any, factory: WindowFactory) -> Any:
    window = factory()
    window.show()
    window.window_actions.queue_action.trigger()
    qtbot.waitUntil(window.queue.isVisible, timeout=2000)
    return window


def select(qtbot: Any, view: Any, job_id: str) -> None:
    qtbot.waitUntil(lambda: job_id in shown_ids(view), timeout=10_000)
    view.table.selectRow(shown_ids(view).index(job_id))
    assert view.selected_job_id() == job_id


def wait_listed(qtbot: Any, view: Any, held: Held, ids: list[str]) -> None:
    """Until the queue view lists `ids`; a timeout says where every job stands."""
    try:
        qtbot.waitUntil(lambda: shown_ids(view) == ids, timeout=20_000)
    except Exception as exc:
        jobs = [(r.name, r.status, r.failure_reason) for r in held.store.list_jobs()]
        raise AssertionError(f"queue view shows {shown_ids(view)}; jobs: {jobs}") from exc


def settled(view: Any) -> bool:
    return not view.busy


def test_the_queue_is_in_view_menu_on_ctrl_shift_q_and_says_when_it_is_empty(
    qtbot: Any, make_window: WindowFactory
) -> None:
    window = make_window()
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    assert window.window_actions.queue_action in view_menu.actions()
    assert not window.queue_dock.isVisible()

    qtbot.keyClick(window, Qt.Key.Key_Q, CTRL | Qt.KeyboardModifier.ShiftModifier)

    qtbot.waitUntil(window.queue_dock.isVisible, timeout=2000)
    assert window.queue_dock.windowTitle() == "Queue"
    view = window.queue
    qtbot.waitUntil(lambda: view.snapshot is not None, timeout=10_000)
    assert view.stack.currentWidget() is view.empty
    assert view.empty.text() == (
        "No queued jobs. Local runs wait here while others use the machine."
    )
    assert view.parallel_spin.text() == "default (1)"


def test_waiting_jobs_are_listed_in_order_and_moved_from_the_buttons_and_keys(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    held = Held(make_window, tmp_path)
    window = open_queue(qtbot, make_window)
    view = window.queue
    a, b, c = (held.submit(n) for n in "abc")

    wait_listed(qtbot, view, held, [b, c])
    assert held.status(a) in ("Starting", "Training")
    assert column(view, 0) == ["1", "2"]
    assert column(view, 1) == ["b", "c"]
    assert column(view, 2) == ["local-process", "local-process"]
    assert column(view, 4) == ["1 slot", "1 slot"]
    assert "2 waiting" in view.state_label.text()

    select(qtbot, view, c)
    assert not view.down_button.isEnabled() and view.up_button.isEnabled()
    qtbot.mouseClick(view.up_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: held.waiting() == [c, b], timeout=10_000)
    qtbot.waitUntil(lambda: shown_ids(view) == [c, b], timeout=10_000)

    select(qtbot, view, b)
    qtbot.mouseClick(view.top_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: held.waiting() == [b, c], timeout=10_000)

    qtbot.waitUntil(lambda: shown_ids(view) == [b, c] and settled(view), timeout=10_000)
    select(qtbot, view, b)
    qtbot.keyClick(view.table, Qt.Key.Key_Down, CTRL)
    qtbot.waitUntil(lambda: held.waiting() == [c, b], timeout=10_000)
    qtbot.waitUntil(lambda: shown_ids(view) == [c, b] and settled(view), timeout=10_000)
    select(qtbot, view, b)
    qtbot.keyClick(view.table, Qt.Key.Key_Up, CTRL)
    qtbot.waitUntil(lambda: held.waiting() == [b, c], timeout=10_000)
    qtbot.waitUntil(lambda: shown_ids(view) == [b, c] and settled(view), timeout=10_000)
    select(qtbot, view, c)
    qtbot.keyClick(view.table, Qt.Key.Key_Home, CTRL)  # to the top
    qtbot.waitUntil(lambda: held.waiting() == [c, b], timeout=10_000)
    qtbot.waitUntil(lambda: shown_ids(view) == [c, b] and settled(view), timeout=10_000)
    assert view.selected_job_id() == c and not view.top_button.isEnabled()
    select(qtbot, view, b)
    qtbot.keyClick(view.table, Qt.Key.Key_Home, CTRL)
    qtbot.waitUntil(lambda: held.waiting() == [b, c], timeout=10_000)

    # The order the queue view shows is the order they start.
    held.release("a")
    qtbot.waitUntil(lambda: held.status(b) == "Training", timeout=30_000)
    assert held.status(c) == "Queued"
    qtbot.waitUntil(lambda: shown_ids(view) == [c], timeout=10_000)


def test_a_raised_priority_starts_first(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    held = Held(make_window, tmp_path)
    window = open_queue(qtbot, make_window)
    view = window.queue
    _a, b, c = (held.submit(n) for n in "abc")
    wait_listed(qtbot, view, held, [b, c])

    select(qtbot, view, c)
    view.priority_spin.setFocus()
    view.priority_spin.selectAll()
    qtbot.keyClicks(view.priority_spin, "5")
    qtbot.keyClick(view.priority_spin, Qt.Key.Key_Return)

    qtbot.waitUntil(lambda: held.waiting() == [c, b], timeout=10_000)
    entry = held.store.queue_entry(c)
    assert entry is not None and entry.priority == 5
    qtbot.waitUntil(lambda: column(view, 3) == ["5", "0"], timeout=10_000)


def test_pause_keeps_queued_jobs_waiting_and_resume_starts_the_next(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    held = Held(make_window, tmp_path)
    window = open_queue(qtbot, make_window)
    view = window.queue
    a, b = (held.submit(n) for n in "ab")
    wait_listed(qtbot, view, held, [b])

    qtbot.mouseClick(view.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: held.store.app_state("queue.paused") is True, timeout=10_000)
    qtbot.waitUntil(lambda: "Paused" in view.state_label.text(), timeout=10_000)
    assert view.pause_button.text() == "Resume queue" and view.pause_button.isChecked()

    held.release("a")
    qtbot.waitUntil(lambda: held.status(a) == "Completed", timeout=30_000)
    qtbot.wait(2000)  # four ticks of the job host's scheduler
    assert held.status(b) == "Queued"
    assert shown_ids(view) == [b]

    qtbot.mouseClick(view.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: held.status(b) == "Training", timeout=30_000)
    assert view.pause_button.text() == "Pause queue" and not view.pause_button.isChecked()
    qtbot.waitUntil(lambda: "Paused" not in view.state_label.text(), timeout=10_000)


def test_delete_cancels_a_queued_job_after_asking(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    held = Held(make_window, tmp_path)
    window = open_queue(qtbot, make_window)
    view = window.queue
    a, b, c = (held.submit(n) for n in "abc")
    wait_listed(qtbot, view, held, [b, c])
    asked: list[str] = []
    answers = iter([False, True])

    def confirm(title: str, text: str) -> bool:
        asked.append(text)
        return next(answers)

    view.confirm = confirm  # type: ignore[method-assign]
    select(qtbot, view, b)

    qtbot.keyClick(view.table, Qt.Key.Key_Delete)  # "No": nothing happens
    assert len(asked) == 1 and "b" in asked[0]
    qtbot.waitUntil(lambda: settled(view), timeout=10_000)
    assert held.status(b) == "Queued"

    qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: held.status(b) == "Stopped", timeout=15_000)
    qtbot.waitUntil(lambda: shown_ids(view) == [c], timeout=10_000)
    assert held.status(a) in ("Starting", "Training")

    held.release("a")  # the cancelled job never starts: the next one does
    qtbot.waitUntil(lambda: held.status(c) == "Training", timeout=30_000)
    assert held.status(b) == "Stopped"


def test_at_once_two_runs_two_queued_jobs_side_by_side(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    held = Held(make_window, tmp_path)
    window = open_queue(qtbot, make_window)
    view = window.queue
    a, b, c = (held.submit(n) for n in "abc")
    wait_listed(qtbot, view, held, [b, c])

    view.parallel_spin.setFocus()
    view.parallel_spin.selectAll()
    qtbot.keyClicks(view.parallel_spin, "2")
    qtbot.keyClick(view.parallel_spin, Qt.Key.Key_Return)

    qtbot.waitUntil(lambda: held.status(b) == "Training", timeout=30_000)
    assert held.status(a) == "Training" and held.status(c) == "Queued"
    assert held.store.app_state("queue.max_parallel") == 2
    qtbot.waitUntil(lambda: "of 2 at once" in view.state_label.text(), timeout=10_000)

    view.parallel_spin.selectAll()
    qtbot.keyClick(view.parallel_spin, Qt.Key.Key_PageDown)  # down to "default"
    qtbot.keyClick(view.parallel_spin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: held.store.app_state("queue.max_parallel") is None, timeout=10_000)
    qtbot.waitUntil(lambda: view.parallel_spin.text() == "default (1)", timeout=10_000)


def test_a_queued_job_shows_its_place_in_the_jobs_table_and_the_detail(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    from trainer_gui.ui.jobs_table import COL_STATUS

    held = Held(make_window, tmp_path)
    window = make_window()
    window.show()
    held.submit("a")
    spec_b, spec_c = held.spec("b"), held.spec("c")

    window.commands.submit(spec_b, None)  # the window's Run, while the machine is busy
    qtbot.waitUntil(
        lambda: (
            window.statusBar().currentMessage() == "Queued (#1): starts when a running job ends"
        ),
        timeout=20_000,
    )
    window.commands.submit(spec_c, None)
    qtbot.waitUntil(
        lambda: (
            window.statusBar().currentMessage()
            == "Queued (#2): starts after the 1 job ahead of it (View > Queue)"
        ),
        timeout=20_000,
    )
    model = window.jobs.model
    qtbot.waitUntil(lambda: len(model.job_ids()) == 3, timeout=10_000)
    c = next(r.id for r in window.store.list_jobs() if r.name == "c")

    def status_cell(role: Qt.ItemDataRole) -> Any:
        return model.data(model.index(model.job_ids().index(c), COL_STATUS), role)

    try:
        qtbot.waitUntil(
            lambda: (
                status_cell(Qt.ItemDataRole.ToolTipRole) == "Queued: #2 in the queue (View > Queue)"
            ),
            timeout=10_000,
        )
    except Exception as exc:
        jobs = [(r.name, r.status) for r in window.store.list_jobs()]
        tip = status_cell(Qt.ItemDataRole.ToolTipRole)
        raise AssertionError(f"tooltip {tip!r}; jobs {jobs}") from exc
    assert status_cell(Qt.ItemDataRole.DisplayRole) == "Queued"

    assert window.jobs.select_job(c)
    qtbot.waitUntil(lambda: window.detail.queue_notice.isVisible(), timeout=5000)
    assert window.detail.queue_notice.text() == "Waiting in the queue (#2; 1 job ahead)"
    assert not window.detail.log_view.isVisible()

    held.release("a")
    qtbot.waitUntil(
        lambda: window.detail.queue_notice.text() == "Waiting in the queue (#1; 0 jobs ahead)",
        timeout=30_000,
    )
    held.release("b")
    qtbot.waitUntil(lambda: window.jobs.status_text(c) == "Training", timeout=30_000)
    qtbot.waitUntil(lambda: window.detail.log_view.isVisible(), timeout=5000)
    assert not window.detail.queue_notice.isVisible()
