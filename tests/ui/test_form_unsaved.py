"""The job form does not drop unsaved edits unasked: Esc, Close and the window's × ask Save /
Discard / Cancel when the form differs from what was opened or saved, and close at once when
it does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WindowFactory, window_factory
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from trainer_gui.core.spec import load_spec
from trainer_gui.ui.form.spec_form import SpecEditorDialog

Button = QMessageBox.StandardButton


@pytest.fixture
def project(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('epoch=1 loss=0.5')\n")
    return tmp_path


@pytest.fixture
def dialog(qtbot: Any, project: Path) -> Iterator[SpecEditorDialog]:
    data = {"name": "my-job", "source": {"source_dir": "code", "entry_point": "train.py"}}
    widget = SpecEditorDialog(project, data=data)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    # Not qtbot.addWidget: its close comes first and would ask about edits a test kept.
    if widget.isVisible():
        answer_question(widget, Button.Discard)
        widget.close()
    widget.deleteLater()


def answer_question(dialog: SpecEditorDialog, button: Button) -> list[str]:
    """Click `button` in the "Save changes?" box once it shows; returns the questions seen."""
    asked: list[str] = []
    tries = [0]

    def answer() -> None:
        box = dialog.unsaved_box
        if box is None or not box.isVisible():
            tries[0] += 1
            if tries[0] < 300:
                QTimer.singleShot(10, answer)
            return
        asked.append(box.text())
        box.button(button).click()

    QTimer.singleShot(0, answer)
    return asked


def type_name(qtbot: Any, dialog: SpecEditorDialog, text: str) -> None:
    edit = dialog.form.editor("name").edit
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)


def test_esc_on_an_untouched_form_closes_without_a_question(
    qtbot: Any, dialog: SpecEditorDialog
) -> None:
    asked = answer_question(dialog, Button.Cancel)

    qtbot.keyClick(dialog.form.editor("name").edit, Qt.Key.Key_Escape)

    assert not dialog.isVisible()
    assert asked == []


def test_an_edit_typed_and_undone_is_no_change(qtbot: Any, dialog: SpecEditorDialog) -> None:
    type_name(qtbot, dialog, "other-job")
    type_name(qtbot, dialog, "my-job")
    asked = answer_question(dialog, Button.Cancel)

    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)

    assert not dialog.isVisible()
    assert asked == []


def test_esc_with_unsaved_edits_asks_and_cancel_keeps_them(
    qtbot: Any, dialog: SpecEditorDialog
) -> None:
    type_name(qtbot, dialog, "renamed")
    assert dialog.windowTitle().endswith("*")
    asked = answer_question(dialog, Button.Cancel)

    qtbot.keyClick(dialog.form.editor("name").edit, Qt.Key.Key_Escape)

    assert len(asked) == 1 and "unsaved changes" in asked[0]
    assert dialog.isVisible()
    assert dialog.form.editor("name").value() == "renamed"


def test_close_with_unsaved_edits_and_discard_closes_without_writing(
    qtbot: Any, dialog: SpecEditorDialog, project: Path
) -> None:
    type_name(qtbot, dialog, "renamed")
    asked = answer_question(dialog, Button.Discard)

    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)

    assert len(asked) == 1
    assert not dialog.isVisible()
    assert list(project.glob("*.yaml")) == []


def test_the_window_x_with_unsaved_edits_and_save_writes_then_closes(
    qtbot: Any, dialog: SpecEditorDialog, project: Path
) -> None:
    type_name(qtbot, dialog, "renamed")
    asked = answer_question(dialog, Button.Save)

    dialog.close()  # what the title bar's × does

    assert len(asked) == 1
    assert not dialog.isVisible()
    assert load_spec(project / "renamed.yaml").name == "renamed"


def test_save_that_is_refused_keeps_the_form_open(
    qtbot: Any, dialog: SpecEditorDialog, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a: refused.append(text))
    type_name(qtbot, dialog, "bad name!")
    asked = answer_question(dialog, Button.Save)

    dialog.close()

    assert len(asked) == 1
    assert refused and "job name 'bad name!'" in refused[0]
    assert dialog.isVisible()
    assert list(project.glob("*.yaml")) == []


def test_after_saving_esc_closes_without_a_question(
    qtbot: Any, dialog: SpecEditorDialog, project: Path
) -> None:
    type_name(qtbot, dialog, "saved-job")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert (project / "saved-job.yaml").is_file()
    assert not dialog.windowTitle().endswith("*")
    asked = answer_question(dialog, Button.Cancel)

    qtbot.keyClick(dialog.form.editor("name").edit, Qt.Key.Key_Escape)

    assert not dialog.isVisible()
    assert asked == []


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot)


def test_quitting_with_an_unsaved_form_asks_and_cancel_keeps_the_app_open(
    qtbot: Any, make_window: WindowFactory, project: Path
) -> None:
    window = make_window()
    window.show()
    data = {"name": "my-job", "source": {"source_dir": "code", "entry_point": "train.py"}}
    editor = window.open_editor(project, data=data)
    qtbot.waitExposed(editor)
    type_name(qtbot, editor, "renamed")
    asked = answer_question(editor, Button.Cancel)

    assert not window.close()

    assert len(asked) == 1
    assert window.isVisible() and editor.isVisible()
    assert not window._closing
    asked = answer_question(editor, Button.Discard)
    assert window.close()
    assert len(asked) == 1
