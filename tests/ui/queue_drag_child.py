"""Drag and drop in the Queue dock with a real drag (run by test_queue_view_drag.py).

Not collected by the suite (no test_ prefix): Qt's offscreen platform, the suite's, refuses every
drag (its QPlatformDrag returns at once), so test_queue_view_drag.py runs this file in a child
pytest under the `minimal` platform, whose drag is Qt's own QSimpleDrag: `QDrag.exec` runs its
nested loop, and the mouse events below, sent through the window system as a desktop sends
them, become the drag's enter, move and drop on the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WindowFactory
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QDrag
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from test_queue_view import Held, open_queue, release_all, select, settled, shown_ids, wait_listed

NO_KEYS = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def make_window(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[WindowFactory]:
    assert QApplication.platformName() == "minimal", "run by test_queue_view_drag.py"
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "1")
    factory = WindowFactory(qtbot)
    yield factory
    release_all(tmp_path)
    factory.close()


def drag_row(qtbot: Any, view: Any, job_id: str, to_row: int, lower_half: bool = False) -> None:
    """Press on `job_id`'s row, drag it and let go over row `to_row` (its upper or lower half;
    -1: under the last row), as a user does with the mouse."""
    table = view.table
    viewport = table.viewport()
    window = table.window()
    handle = window.windowHandle()
    row = shown_ids(view).index(job_id)
    start = table.visualRect(table.model().index(row, 1)).center()
    if to_row >= 0:
        rect = table.visualRect(table.model().index(to_row, 1))
        end = rect.center() + QPoint(0, rect.height() // 4 if lower_half else -rect.height() // 4)
    else:
        last = table.visualRect(table.model().index(table.rowCount() - 1, 1))
        end = QPoint(last.center().x(), min(last.bottom() + 8, viewport.height() - 2))

    def at(point: QPoint) -> QPoint:
        return viewport.mapTo(window, point)

    dragged: list[bool] = []
    timer = QTimer(table)
    timer.setInterval(20)

    def in_the_drag() -> None:  # runs inside QDrag.exec's loop, once the drag has begun
        if dragged or table.findChild(QDrag) is None:
            return
        dragged.append(True)
        timer.stop()
        for step in range(1, 9):
            QTest.mouseMove(handle, at(start + (end - start) * (step / 8)))
        QTest.mouseRelease(handle, LEFT, NO_KEYS, at(end))

    timer.timeout.connect(in_the_drag)
    timer.start()
    try:
        QTest.mousePress(handle, LEFT, NO_KEYS, at(start))
        QTest.mouseMove(handle, at(start + QPoint(0, 2)))
        # Past the drag distance: the table starts the drag, and returns once it was dropped.
        away = QApplication.startDragDistance() + 6
        QTest.mouseMove(handle, at(start + QPoint(0, away if end.y() > start.y() else -away)))
        qtbot.waitUntil(lambda: bool(dragged), timeout=5000)
    finally:
        timer.stop()


def test_dragging_waiting_jobs_reorders_the_queue_in_the_store(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    held = Held(make_window, tmp_path)
    window = open_queue(qtbot, make_window)
    view = window.queue
    a, b, c, d = (held.submit(n) for n in "abcd")
    wait_listed(qtbot, view, held, [b, c, d])
    assert held.status(a) in ("Starting", "Training")

    # d (not the selected row: the press selects it) onto the upper half of b's row: it goes
    # before b, starts next, and stays selected in its new place.
    qtbot.waitUntil(lambda: settled(view), timeout=10_000)
    select(qtbot, view, b)
    drag_row(qtbot, view, d, 0)
    qtbot.waitUntil(lambda: held.waiting() == [d, b, c], timeout=10_000)
    qtbot.waitUntil(lambda: shown_ids(view) == [d, b, c] and settled(view), timeout=10_000)
    assert view.selected_job_id() == d
    assert view.table.state() == view.table.State.NoState

    # d onto the lower half of b's row: after b.
    select(qtbot, view, d)
    drag_row(qtbot, view, d, 1, lower_half=True)
    qtbot.waitUntil(lambda: held.waiting() == [b, d, c], timeout=10_000)
    qtbot.waitUntil(lambda: shown_ids(view) == [b, d, c] and settled(view), timeout=10_000)

    # b under the last row: last.
    select(qtbot, view, b)
    drag_row(qtbot, view, b, -1)
    qtbot.waitUntil(lambda: held.waiting() == [d, c, b], timeout=10_000)
    qtbot.waitUntil(lambda: shown_ids(view) == [d, c, b] and settled(view), timeout=10_000)

    # A row dropped where it already is changes nothing.
    select(qtbot, view, c)
    drag_row(qtbot, view, c, 1)
    qtbot.wait(300)
    qtbot.waitUntil(lambda: settled(view), timeout=10_000)
    assert held.waiting() == [d, c, b]

    # The order the view shows is the order they start.
    held.release("a")
    qtbot.waitUntil(lambda: held.status(d) == "Training", timeout=30_000)
    assert held.status(c) == "Queued" and held.status(b) == "Queued"
