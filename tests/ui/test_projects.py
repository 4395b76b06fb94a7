"""The project sidebar: create, open, rename, remove, recent first, specs, interpreter setting."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox, QTreeWidgetItem
from pytestqt.qtbot import QtBot

from trainer_gui.core.errors import UserError
from trainer_gui.core.store import Project, Store
from trainer_gui.ui.projects import (
    ALL_JOBS,
    KIND_ROLE,
    PROJECT,
    SPEC,
    NewProjectDialog,
    ProjectSettingsDialog,
    ProjectsPanel,
    check_python,
    project_python,
    spec_files,
)


@pytest.fixture
def store() -> Iterator[Store]:
    with Store() as s:
        yield s


@pytest.fixture
def panel(qtbot: Any, store: Store) -> ProjectsPanel:
    widget = ProjectsPanel(store)
    qtbot.addWidget(widget)
    widget.resize(260, 500)
    widget.show()
    return widget


def top_names(panel: ProjectsPanel) -> list[str]:
    tree = panel.tree
    return [top(panel, i).text(0) for i in range(tree.topLevelItemCount())]


def top(panel: ProjectsPanel, index: int) -> QTreeWidgetItem:
    item = panel.tree.topLevelItem(index)
    assert item is not None
    return item


def child(item: QTreeWidgetItem, index: int) -> QTreeWidgetItem:
    found = item.child(index)
    assert found is not None
    return found


def test_starts_with_all_jobs_only(panel: ProjectsPanel) -> None:
    assert top_names(panel) == ["All jobs"]
    assert top(panel, 0).data(0, KIND_ROLE) == ALL_JOBS
    assert panel.current_project() is None


def test_creating_a_project_makes_the_folder_and_selects_it(
    qtbot: Any, panel: ProjectsPanel, tmp_path: Path
) -> None:
    folder = tmp_path / "new" / "experiments"

    with qtbot.waitSignal(panel.sig_project_changed) as changed:
        project = panel.create_project(folder, "Experiments")

    assert folder.is_dir()
    assert project.name == "Experiments" and Path(project.path) == folder.resolve()
    assert isinstance(changed.args[0], Project) and changed.args[0].id == project.id
    assert panel.current_project() is not None
    assert panel.current_project().id == project.id  # type: ignore[union-attr]
    assert top_names(panel) == ["All jobs", "Experiments"]


def test_opening_an_existing_folder_lists_its_specs(panel: ProjectsPanel, tmp_path: Path) -> None:
    (tmp_path / "b-job.yaml").write_text("name: b\n")
    (tmp_path / "a-job.yml").write_text("name: a\n")
    (tmp_path / "notes.txt").write_text("x")

    project = panel.open_folder(tmp_path)

    assert project.name == tmp_path.name
    item = panel.item_for(project.id)
    assert item is not None and item.isExpanded()
    children = [child(item, i) for i in range(item.childCount())]
    assert [c.text(0) for c in children] == ["a-job.yml", "b-job.yaml"]
    assert all(c.data(0, KIND_ROLE) == SPEC for c in children)
    assert spec_files(tmp_path) == [tmp_path / "a-job.yml", tmp_path / "b-job.yaml"]


def test_double_clicking_a_spec_asks_to_open_it(
    qtbot: Any, panel: ProjectsPanel, tmp_path: Path
) -> None:
    (tmp_path / "job.yaml").write_text("name: j\n")
    project = panel.open_folder(tmp_path)
    item = panel.item_for(project.id)
    assert item is not None
    spec_item = child(item, 0)

    with qtbot.waitSignal(panel.sig_spec_activated) as activated:
        panel.tree.itemDoubleClicked.emit(spec_item, 0)

    assert activated.args == [str(tmp_path / "job.yaml")]
    panel.tree.setCurrentItem(spec_item)
    assert panel.current_spec_path() == tmp_path / "job.yaml"
    assert panel.current_project() is not None  # a spec selects its project


def test_opening_a_missing_folder_is_refused(panel: ProjectsPanel, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not a folder"):
        panel.open_folder(tmp_path / "missing")


def test_opening_the_same_folder_twice_keeps_one_project(
    panel: ProjectsPanel, tmp_path: Path
) -> None:
    first = panel.open_folder(tmp_path)
    second = panel.open_folder(str(tmp_path) + "/")

    assert first.id == second.id
    assert top_names(panel).count(tmp_path.name) == 1


def test_recent_projects_come_first(
    qtbot: Any, panel: ProjectsPanel, store: Store, tmp_path: Path
) -> None:
    panel.create_project(tmp_path / "one", "one")
    two = panel.create_project(tmp_path / "two", "two")
    panel.create_project(tmp_path / "three", "three")

    panel.select_project(two.id)  # marks it opened, off the GUI thread
    qtbot.waitUntil(lambda: store.list_projects()[0].id == two.id, timeout=5000)
    panel.refresh()

    assert top_names(panel) == ["All jobs", "two", "three", "one"]


def test_a_new_project_is_marked_opened_once_not_again_later(
    panel: ProjectsPanel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding marks it opened; its selection must not queue a second write, which could land
    after the next project is added and rank this one above it (seen under load)."""
    import trainer_gui.ui.projects as projects

    queued: list[Any] = []
    monkeypatch.setattr(projects, "run_task", lambda work, **_: queued.append(work))
    one = panel.create_project(tmp_path / "one", "one")
    panel.create_project(tmp_path / "two", "two")
    assert queued == []
    panel.select_project(one.id)  # a person's click: that one is written, off the GUI thread
    assert len(queued) == 1


def test_renaming_a_project(panel: ProjectsPanel, store: Store, tmp_path: Path) -> None:
    project = panel.create_project(tmp_path / "p", "old name")

    panel.rename_project(project.id, "  new name ")

    assert store.get_project(project.id).name == "new name"  # type: ignore[union-attr]
    assert "new name" in top_names(panel)
    with pytest.raises(UserError, match="cannot be empty"):
        panel.rename_project(project.id, "   ")


def test_renaming_in_place_edits_the_store(
    qtbot: Any, panel: ProjectsPanel, store: Store, tmp_path: Path
) -> None:
    project = panel.create_project(tmp_path / "p", "before")
    item = panel.item_for(project.id)
    assert item is not None

    with qtbot.waitSignal(panel.sig_changed, timeout=5000):
        item.setText(0, "after")

    assert store.get_project(project.id).name == "after"  # type: ignore[union-attr]


def test_removing_a_project_keeps_its_folder(
    qtbot: Any, panel: ProjectsPanel, store: Store, tmp_path: Path
) -> None:
    project = panel.create_project(tmp_path / "keep-me", "keep")

    with qtbot.waitSignal(panel.sig_project_changed) as changed:
        panel.remove_project(project.id)

    assert changed.args == [None]
    assert store.list_projects() == []
    assert (tmp_path / "keep-me").is_dir()
    assert top_names(panel) == ["All jobs"]


def test_python_interpreter_setting(panel: ProjectsPanel, tmp_path: Path) -> None:
    project = panel.create_project(tmp_path / "p", "p")
    assert project_python(project) is None

    updated = panel.set_python(project.id, sys.executable)
    assert project_python(updated) == sys.executable
    assert project_python(panel.current_project()) == sys.executable

    with pytest.raises(UserError, match="does not exist"):
        panel.set_python(project.id, str(tmp_path / "no-python"))

    cleared = panel.set_python(project.id, "")
    assert project_python(cleared) is None


def test_a_venv_folder_resolves_to_its_interpreter(tmp_path: Path) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)

    assert check_python(str(tmp_path / "venv")) == str(python)
    with pytest.raises(UserError, match="not executable"):
        (tmp_path / "plain").write_text("")
        check_python(str(tmp_path / "plain"))


def test_a_project_whose_folder_vanished_is_marked(panel: ProjectsPanel, tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    project = panel.create_project(folder, "gone")
    folder.rmdir()

    panel.refresh()

    item = panel.item_for(project.id)
    assert item is not None and item.data(0, KIND_ROLE) == PROJECT
    assert "missing" in item.toolTip(0)


def test_changes_from_the_dialogs_write_to_the_store_off_the_gui_thread(
    qtbot: QtBot, panel: ProjectsPanel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write waits for the store's lock, which the job host holds while it stores a batch
    of lines: the dialogs' changes go through the pool, never the GUI thread."""
    writers: list[str] = []
    store = panel.store
    for name in ("add_project", "rename_project", "remove_project", "update_project_settings"):
        original = getattr(store, name)

        def recorded(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            writers.append(threading.current_thread().name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, recorded)

    with qtbot.waitSignal(panel.sig_changed, timeout=5000):
        panel.create_project_later(tmp_path / "made", "made")
    project = panel.current_project()
    assert project is not None and project.name == "made"
    with qtbot.waitSignal(panel.sig_changed, timeout=5000):
        panel.change_settings_later(project.id, "renamed", sys.executable)
    assert panel.projects()[0].name == "renamed"
    assert project_python(panel.projects()[0]) == sys.executable
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text: warnings.append(text))
    with qtbot.waitSignal(panel.sig_changed, timeout=5000):
        panel.rename_project_later(project.id, "   ")  # refused, with the reason shown
    assert warnings == ["a project name cannot be empty"]
    with qtbot.waitSignal(panel.sig_changed, timeout=5000):
        panel.remove_project_later(project.id)
    assert panel.projects() == []
    assert len(writers) == 4
    assert threading.main_thread().name not in writers


# -- the new-project dialog and where file dialogs start ------------------------------------------


@pytest.fixture
def new_dialog(qtbot: Any, tmp_path: Path) -> NewProjectDialog:
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.location_edit.setText(str(tmp_path))
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("a/b", "cannot contain “/”"),
        ("a\\b", "cannot contain “/” or “\\”"),
        ("..", "are not folder names"),
    ],
)
def test_a_name_that_cannot_be_a_folder_greys_ok_and_says_why(
    qtbot: Any, new_dialog: NewProjectDialog, typed: str, reason: str
) -> None:
    qtbot.keyClicks(new_dialog.name_edit, typed)

    assert not new_dialog.ok_button.isEnabled()
    assert new_dialog.name_error.isVisible()
    assert reason in new_dialog.name_error.text()


def test_fixing_the_name_clears_the_reason_and_enables_ok(
    qtbot: Any, new_dialog: NewProjectDialog, tmp_path: Path
) -> None:
    qtbot.keyClicks(new_dialog.name_edit, "mnist/")
    assert new_dialog.name_error.isVisible()

    qtbot.keyClick(new_dialog.name_edit, Qt.Key.Key_Backspace)

    assert not new_dialog.name_error.isVisible()
    assert new_dialog.ok_button.isEnabled()
    assert new_dialog.preview.text() == f"Folder: {tmp_path / 'mnist'}"


def test_an_empty_location_greys_ok_and_says_so(qtbot: Any, new_dialog: NewProjectDialog) -> None:
    qtbot.keyClicks(new_dialog.name_edit, "mnist")
    new_dialog.location_edit.clear()

    assert not new_dialog.ok_button.isEnabled()
    assert "Choose where" in new_dialog.preview.text()


def record_dialog_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the (blocking) file dialogs; each call notes the folder it would start in."""
    starts: list[str] = []

    def folder(_parent: Any, _title: str, start: str = "", *_a: Any) -> str:
        starts.append(start)
        return ""

    def file(_parent: Any, _title: str, start: str = "", *_a: Any) -> tuple[str, str]:
        starts.append(start)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", folder)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", file)
    return starts


def test_browsing_for_a_location_starts_at_the_typed_one(
    qtbot: Any, new_dialog: NewProjectDialog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = record_dialog_starts(monkeypatch)
    new_dialog.location_edit.setText(str(tmp_path / "not-yet" / "deeper"))

    qtbot.mouseClick(new_dialog.browse_button, Qt.MouseButton.LeftButton)

    assert starts == [str(tmp_path)]  # the nearest folder that exists


def test_open_folder_starts_beside_the_current_project(
    qtbot: Any,
    panel: ProjectsPanel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = panel.create_project(tmp_path / "projects" / "first", "first")
    panel.select_project(project.id)
    starts = record_dialog_starts(monkeypatch)

    panel.open_action.trigger()

    assert starts == [str(tmp_path / "projects")]


def test_choosing_an_interpreter_starts_in_the_project_folder(
    qtbot: Any, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj").mkdir()
    project = store.add_project("proj", str(tmp_path / "proj"))
    dialog = ProjectSettingsDialog(project)
    qtbot.addWidget(dialog)
    starts = record_dialog_starts(monkeypatch)

    qtbot.mouseClick(dialog.browse_button, Qt.MouseButton.LeftButton)

    assert starts == [str(tmp_path / "proj")]


def test_the_settings_dialog_turns_warm_starts_off_for_the_project(
    qtbot: Any, panel: ProjectsPanel, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_gui.core.runners import warm

    project = panel.create_project(tmp_path / "p", "p")
    panel.select_project(project.id)

    def untick(dialog: ProjectSettingsDialog) -> QDialog.DialogCode:
        assert dialog.warm_check.isChecked()  # on by default
        qtbot.mouseClick(dialog.warm_check, Qt.MouseButton.LeftButton)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ProjectSettingsDialog, "exec", untick)
    with qtbot.waitSignal(panel.sig_changed, timeout=5000):
        panel.ask_settings()
    settings = store.get_project(project.id).settings  # type: ignore[union-attr]
    assert settings.get(warm.SETTING) is False and not warm.project_allows(settings)
    reopened = ProjectSettingsDialog(panel.projects()[0])
    qtbot.addWidget(reopened)
    assert not reopened.warm_check.isChecked()
