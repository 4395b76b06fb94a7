"""File > New from template…: the gallery dialog, driven by clicks and typing as a user would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WindowFactory, window_factory
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLineEdit, QMenu

from trainer_gui.core.spec import load_spec
from trainer_gui.ui.template_gallery import NAME_ROLE, TemplateCard, TemplateGalleryDialog


@pytest.fixture
def gallery(qtbot: Any, tmp_path: Path) -> TemplateGalleryDialog:
    dialog = TemplateGalleryDialog(location=tmp_path)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def click_card(qtbot: Any, dialog: TemplateGalleryDialog, name: str) -> None:
    cards = dialog.cards
    item = next(
        cards.item(i) for i in range(cards.count()) if cards.item(i).data(NAME_ROLE) == name
    )
    cards.scrollToItem(item)
    qtbot.mouseClick(
        cards.viewport(), Qt.MouseButton.LeftButton, pos=cards.visualItemRect(item).center()
    )
    assert dialog.current_template() is not None
    assert dialog.current_template().name == name  # type: ignore[union-attr]


def retype(qtbot: Any, edit: QLineEdit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(edit, text)


def test_every_template_is_a_card_with_title_and_backend_badge(
    gallery: TemplateGalleryDialog,
) -> None:
    names = [gallery.cards.item(i).data(NAME_ROLE) for i in range(gallery.cards.count())]
    assert {"image-classification", "ddp-torchrun", "bring-your-script"} <= set(names)
    card = gallery.cards.itemWidget(gallery.cards.item(names.index("ddp-torchrun")))
    assert isinstance(card, TemplateCard) and card.badge.text() == "docker"
    assert card.isVisible()


def test_pick_a_card_name_the_folder_and_create(
    qtbot: Any, gallery: TemplateGalleryDialog, tmp_path: Path
) -> None:
    click_card(qtbot, gallery, "tabular-classification")
    assert gallery.name_edit.text() == "tabular-classification"  # suggested from the card
    assert not gallery.source_edit.isVisible()
    retype(qtbot, gallery.name_edit, "fruit")
    assert gallery.status.text() == f"Creates {tmp_path / 'fruit'}"
    assert gallery.create_button.isEnabled()

    with qtbot.waitSignal(gallery.sig_created, timeout=20_000) as signal:
        qtbot.mouseClick(gallery.create_button, Qt.MouseButton.LeftButton)
    created = signal.args[0]
    assert created.folder == tmp_path / "fruit"
    assert load_spec(tmp_path / "fruit" / "job.yaml").name == "fruit"
    assert gallery.result() == QDialog.DialogCode.Accepted


def test_what_stops_create_is_said_beside_it(
    qtbot: Any, gallery: TemplateGalleryDialog, tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    click_card(qtbot, gallery, "image-classification")
    retype(qtbot, gallery.name_edit, "taken")
    assert not gallery.create_button.isEnabled()
    assert "already holds files" in gallery.status.text()
    retype(qtbot, gallery.name_edit, "a/b")
    assert not gallery.create_button.isEnabled()
    assert "no '/'" in gallery.status.text()
    retype(qtbot, gallery.name_edit, "fine")
    assert gallery.create_button.isEnabled()
    click_card(qtbot, gallery, "custom-driver")
    assert gallery.name_edit.text() == "fine"  # a name the user typed is kept


def test_the_suggested_name_never_points_at_a_folder_with_files(
    qtbot: Any, gallery: TemplateGalleryDialog, tmp_path: Path
) -> None:
    (tmp_path / "custom-driver").mkdir()
    (tmp_path / "custom-driver" / "x").write_text("")
    click_card(qtbot, gallery, "custom-driver")
    assert gallery.name_edit.text() == "custom-driver-2"
    assert gallery.create_button.isEnabled()


def test_bring_your_script_asks_for_the_folder_and_wraps_it(
    qtbot: Any, gallery: TemplateGalleryDialog, tmp_path: Path
) -> None:
    script = tmp_path / "my-code"
    script.mkdir()
    (script / "entry.py").write_text("print('loss=1')\n")
    click_card(qtbot, gallery, "bring-your-script")
    assert gallery.source_edit.isVisible() and gallery.entry_edit.isVisible()
    assert not gallery.create_button.isEnabled()
    assert gallery.status.text() == "Choose the folder with your training script."

    retype(qtbot, gallery.source_edit, str(tmp_path / "nowhere"))
    qtbot.mouseClick(gallery.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Cannot create the project" in gallery.status.text(), timeout=10_000)
    assert "is not a folder" in gallery.status.text() and gallery.isVisible()
    assert not (tmp_path / "bring-your-script").exists()

    retype(qtbot, gallery.source_edit, str(script))
    with qtbot.waitSignal(gallery.sig_created, timeout=20_000):
        qtbot.mouseClick(gallery.create_button, Qt.MouseButton.LeftButton)
    spec = load_spec(tmp_path / "bring-your-script" / "job.yaml")
    assert spec.source.source_dir == str(script) and spec.source.entry_point == "entry.py"
    assert sorted(p.name for p in script.iterdir()) == ["entry.py"]


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot)


def test_file_menu_new_from_template_opens_the_new_project(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    window.show()
    file_menu = next(
        a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "File"
    )
    assert isinstance(file_menu, QMenu)
    action = next(a for a in file_menu.actions() if a.text() == "New from template…")
    action.trigger()
    qtbot.waitUntil(lambda: window.findChild(TemplateGalleryDialog) is not None, timeout=5000)
    dialog = window.findChild(TemplateGalleryDialog)
    assert dialog.isVisible()
    retype(qtbot, dialog.location_edit, str(tmp_path))
    click_card(qtbot, dialog, "custom-driver")
    retype(qtbot, dialog.name_edit, "launcher")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    folder = (tmp_path / "launcher").resolve()

    def opened() -> bool:
        project = window.projects.current_project()
        return project is not None and Path(project.path) == folder

    qtbot.waitUntil(opened, timeout=20_000)
    assert (folder / "job.yaml").is_file()
    assert "Created" in window.statusBar().currentMessage()
