"""Compare two runs from the jobs table: the dialog shows what changed, code line included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WindowFactory, window_factory
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QPalette

from trainer_gui.core.spec import JobSpec
from trainer_gui.ui.run_diff_view import RunDiffDialog, diff_colors

SpecFactory = Callable[..., JobSpec]
SCRIPT = "print('loss=0.5', flush=True)\nLR = {lr}\n"


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot, in_process=True)


def _click_row(qtbot: Any, window: Any, job_id: str, modifier: Any = None) -> None:
    view = window.jobs
    row = view.model.row_of(job_id)
    index = view.proxy.mapFromSource(view.model.index(row, 0))
    rect = view.table.visualRect(index)
    qtbot.mouseClick(
        view.table.viewport(),
        Qt.MouseButton.LeftButton,
        modifier or Qt.KeyboardModifier.NoModifier,
        QPoint(rect.center()),
    )


def _foreground_of_line(dialog: RunDiffDialog, line: str) -> QColor:
    doc = dialog.diff_text.document()
    block = doc.begin()
    while block.isValid():
        if block.text() == line:
            formats = block.layout().formats()
            assert formats, f"{line!r} is not coloured"
            return formats[0].format.foreground().color()
        block = block.next()
    raise AssertionError(f"{line!r} not in the diff")


def test_compare_two_real_runs_shows_the_changed_code_line_in_colour(
    qtbot: Any, make_window: WindowFactory, job_spec: SpecFactory, tmp_path: Path
) -> None:
    service = make_window.service
    first = service.submit(job_spec(SCRIPT.format(lr=0.1), hyperparameters={"lr": 0.1}))
    assert service.wait(first.job_id, 120).status == "Completed"
    second = service.submit(
        job_spec(SCRIPT.format(lr=0.01), hyperparameters={"lr": 0.01}, environment={"A": "1"})
    )
    assert service.wait(second.job_id, 120).status == "Completed"
    window = make_window()
    window.show()
    qtbot.waitUntil(lambda: window.jobs.model.row_of(second.job_id) is not None, timeout=10_000)

    _click_row(qtbot, window, first.job_id)
    assert not window.window_actions.compare_action.isEnabled()  # one run: nothing to compare
    _click_row(qtbot, window, second.job_id, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(window.window_actions.compare_action.isEnabled)
    assert window.window_actions.compare_action in window.jobs.table.actions()  # context menu
    window.window_actions.compare_action.trigger()

    dialog = window.findChild(RunDiffDialog)
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.diff is not None, timeout=10_000)
    assert dialog.hyper_table.item(0, 0).text() == "lr"
    assert (dialog.hyper_table.item(0, 1).text(), dialog.hyper_table.item(0, 2).text()) == (
        "0.1",
        "0.01",
    )
    assert dialog.env_table.item(0, 0).text() == "A"
    dialog.tabs.setCurrentIndex(3)
    assert dialog.tabs.tabText(3) == "Code (1)"
    assert [dialog.files.item(i).text() for i in range(dialog.files.count())] == ["~ train.py"]
    text = dialog.diff_text.toPlainText().splitlines()
    assert "-LR = 0.1" in text and "+LR = 0.01" in text

    light = diff_colors(window.palette())
    assert _foreground_of_line(dialog, "+LR = 0.01") == light["added"][0]
    assert _foreground_of_line(dialog, "-LR = 0.1") == light["removed"][0]
    window.set_theme("dark")
    qtbot.waitUntil(lambda: dialog.palette().color(QPalette.ColorRole.Base).lightness() < 128)
    dark = diff_colors(dialog.palette())
    assert dark["added"][0] != light["added"][0]
    qtbot.waitUntil(lambda: _foreground_of_line(dialog, "+LR = 0.01") == dark["added"][0])
    dialog.close()
