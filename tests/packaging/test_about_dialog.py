"""Help > About: the one version string, the data folder, Qt/Python versions, the licence."""

from __future__ import annotations

import platform
from pathlib import Path

from pytestqt.qtbot import QtBot

import trainer_gui
from trainer_gui.ui.about import about_info, about_text, build_about_dialog, show_about


def test_about_info(app_home: Path) -> None:
    from PySide6.QtCore import qVersion

    info = about_info()
    assert info["Version"].startswith(trainer_gui.__version__ + " ")
    assert info["Data folder"].startswith(str(app_home))  # TRAINER_GUI_HOME, from the fixture
    assert "TRAINER_GUI_HOME" in info["Data folder"]
    assert qVersion() in info["Qt"]
    assert platform.python_version() in info["Python"]
    assert info["Licence"] == "Apache-2.0"
    assert Path(info["Resources"], "icons", "trainer-gui.svg").is_file()


def test_about_text_lists_everything() -> None:
    text = about_text()
    assert text.startswith("Trainer GUI\n")
    for label in about_info():
        assert f"\n{label}: " in text


def test_dialog_shows_the_version_and_copies_the_details(qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QApplication, QLabel, QPushButton

    dialog = build_about_dialog()
    qtbot.addWidget(dialog)
    version = dialog.findChild(QLabel, "aboutVersion")
    assert version is not None and trainer_gui.__version__ in version.text()
    copy = next(b for b in dialog.findChildren(QPushButton) if b.text() == "Copy")
    copy.click()
    assert QApplication.clipboard().text() == about_text()


def test_show_about_opens_without_blocking(qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    dialog = show_about(parent)
    qtbot.waitExposed(dialog)
    assert dialog.isVisible() and dialog.parent() is parent
    assert dialog.windowTitle() == "About Trainer GUI"
    dialog.reject()
    assert not dialog.isVisible()
