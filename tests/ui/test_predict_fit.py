"""The Predict dock in a 1280x720 and a 1366x768 window: every button whole and on screen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WindowFactory, window_factory
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QAbstractButton, QWidget


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot)


def cut_buttons(container: QWidget, visible: QRect, top: QWidget) -> list[str]:
    """The shown buttons under `container` that are narrower than their text needs or that
    stick out of `visible` (in `top`'s coordinates)."""
    bad = []
    for button in container.findChildren(QAbstractButton):
        if not button.isVisibleTo(top) or not button.text():
            continue
        where = QRect(button.mapTo(top, button.rect().topLeft()), button.size())
        if button.width() < button.sizeHint().width() or not visible.contains(where):
            bad.append(f"{button.text()!r} at {where.getRect()} of {visible.getRect()}")
    return bad


@pytest.mark.parametrize("size", [(1280, 720), (1366, 768)])
def test_the_predict_dock_fits_beside_the_jobs(
    qtbot: Any, make_window: WindowFactory, size: tuple[int, int]
) -> None:
    window = make_window()
    window.resize(*size)
    window.show()
    window.predict_dock.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.predict.isVisible() and window.predict.width() > 0)
    qtbot.wait(50)  # the dock's layout settles

    assert window.width() <= size[0]
    dock = window.predict_dock
    visible = QRect(dock.mapTo(window, dock.rect().topLeft()), dock.size()) & window.rect()
    assert visible.width() >= 320
    assert cut_buttons(window.predict, visible, window) == []
    # The metric plots' bar beside it wraps rather than eliding its buttons to "…".
    metrics = window.detail.metrics
    shown = QRect(metrics.mapTo(window, metrics.rect().topLeft()), metrics.size())
    assert cut_buttons(metrics.controls, shown & window.rect(), window) == []
    # And the toolbar keeps its buttons (none pushed into the overflow menu).
    toolbar = window.findChild(QWidget, "main_toolbar")
    assert toolbar is not None
    for action in toolbar.actions():
        if action.isSeparator():
            continue
        button = toolbar.widgetForAction(action)
        assert button is not None and button.isVisible(), action.text()
