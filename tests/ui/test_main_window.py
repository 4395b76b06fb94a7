"""The main window: layout memory, status probes, shortcuts, drops, job actions, notifications,
closing without stopping jobs, and the last-resort error handler."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import EXAMPLE, WindowFactory, add_job, drop, fake_probes, mime_for, window_factory
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QMessageBox, QToolBar, QWidget

from trainer_gui.core.errors import UserError
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec import spec_from_dict
from trainer_gui.core.store import JobRecord, Project
from trainer_gui.ui.form.spec_form import SpecEditorDialog
from trainer_gui.ui.job_commands import LocationDialog
from trainer_gui.ui.job_detail import JobDetail
from trainer_gui.ui.jobs_table import COL_NAME, COL_STATUS, STARTING


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot)


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Every message dialog the window would show, instead of showing it."""
    from trainer_gui.ui.main_window import MainWindow

    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        MainWindow,
        "show_message",
        lambda self, level, title, text: shown.append((level, title, text)),
    )
    return shown


def project_with_jobs(
    make_window: WindowFactory, tmp_path: Path, *jobs: tuple[str, JobStatus]
) -> tuple[Any, Project, list[JobRecord]]:
    window = make_window()
    project = window.projects.create_project(tmp_path / "proj", "proj")
    records = [
        add_job(make_window.store, name, status, project.id, metrics={"loss": 0.5})
        for name, status in jobs
    ]
    window.refresh_jobs()
    return window, project, records


def wait_rows(qtbot: Any, window: Any, count: int) -> None:
    qtbot.waitUntil(lambda: window.jobs.proxy.rowCount() == count, timeout=5000)


def wait_jobs(qtbot: Any, window: Any, count: int, timeout: int = 10_000) -> None:
    """Until `count` jobs are listed (rows still starting are no jobs yet)."""
    qtbot.waitUntil(lambda: len(window.jobs.model.job_ids()) == count, timeout=timeout)


# -- looks and layout ----------------------------------------------------------------------------


def test_the_window_fits_a_1366x768_screen(make_window: WindowFactory) -> None:
    window = make_window()

    assert window.minimumWidth() <= 1366 and window.minimumHeight() <= 700
    assert window.width() <= 1366 and window.height() <= 768
    assert not window.windowIcon().isNull()


def test_layout_is_remembered_between_runs(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    first = make_window()
    first.show()
    project = first.projects.create_project(tmp_path / "p", "p")
    first.projects_dock.hide()
    first.splitter.setSizes([100, 500])
    sizes = first.splitter.sizes()
    first.close()

    second = make_window()
    second.show()

    assert second.projects_dock.isHidden()
    assert second.splitter.sizes() == sizes
    assert second.current_project() is not None
    assert second.current_project().id == project.id


def test_status_bar_shows_docker_and_aws_probed_off_the_gui_thread(
    qtbot: Any, make_window: WindowFactory
) -> None:
    threads: list[str] = []
    window = make_window(probes=fake_probes(threads))
    window.show()

    status = window.backend_status
    qtbot.waitUntil(lambda: status.labels["aws"].state == "bad", timeout=5000)
    qtbot.waitUntil(lambda: status.labels["docker"].state == "ok", timeout=5000)
    assert "Docker 99.0" in status.labels["docker"].text()
    assert "AWS: no credentials" in status.labels["aws"].text()
    assert threads and threading.main_thread().name not in threads


def test_a_probe_that_raises_shows_as_unusable(qtbot: Any, make_window: WindowFactory) -> None:
    def broken() -> Any:
        raise RuntimeError("socket on fire")

    window = make_window(probes={"docker": broken})
    window.show()

    label = window.backend_status.labels["docker"]
    qtbot.waitUntil(lambda: label.state == "bad", timeout=5000)
    assert "socket on fire" in label.toolTip()


def test_common_actions_have_keyboard_shortcuts(make_window: WindowFactory) -> None:
    window = make_window()

    def keys(action: Any) -> str:
        return action.shortcut().toString()

    assert (
        keys(window.window_actions.new_job_action)
        == QKeySequence(QKeySequence.StandardKey.New).toString()
    )
    assert (
        keys(window.window_actions.open_project_action)
        == QKeySequence(QKeySequence.StandardKey.Open).toString()
    )
    assert keys(window.window_actions.run_action) == "Ctrl+R"
    assert keys(window.window_actions.stop_action) == "Ctrl+."
    assert keys(window.window_actions.delete_action) == "Del"
    assert keys(window.window_actions.refresh_action) == "F5"
    assert keys(window.window_actions.search_logs_action) == "Ctrl+F"
    assert (
        keys(window.window_actions.save_spec_action)
        == QKeySequence(QKeySequence.StandardKey.Save).toString()
    )


def test_no_two_shortcuts_of_the_window_share_a_key(make_window: WindowFactory) -> None:
    """Two enabled shortcuts on one key are ambiguous: Qt triggers neither (Ctrl+R on GNOME,
    where the platform's Refresh key is Ctrl+R too)."""
    window = make_window()
    owners: dict[str, list[str]] = {}
    for action in window.findChildren(QAction):
        for keys in action.shortcuts():
            owners.setdefault(keys.toString(), []).append(action.text())
    for shortcut in window.findChildren(QShortcut):
        if shortcut.isEnabled():
            for keys in shortcut.keys():  # noqa: SIM118 - a QShortcut, not a dict
                owners.setdefault(keys.toString(), []).append(type(shortcut.parent()).__name__)

    assert {keys: who for keys, who in owners.items() if len(who) > 1} == {}
    assert [k.toString() for k in window.window_actions.refresh_action.shortcuts()] == ["F5"]
    assert "Ctrl+R" in owners and "F5" in owners


def test_ctrl_r_on_the_window_runs_the_selected_spec(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    folder = tmp_path / "proj"
    window.projects.create_project(folder, "proj")
    path = spec_file(folder, "keyed", "print('hi')")
    window.projects.refresh_specs()
    assert window.projects.select_spec(path)

    with qtbot.waitSignal(window.window_actions.run_action.triggered, timeout=2000):
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)

    wait_jobs(qtbot, window, 1)
    job = window.jobs.model.job_ids()[0]
    qtbot.waitUntil(lambda: window.jobs.status_text(job) == "Completed", timeout=30_000)


def test_ctrl_f_in_the_log_view_focuses_its_search(qtbot: Any, make_window: WindowFactory) -> None:
    window = make_window()
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    table = window.detail.log_view.table
    table.setFocus()
    qtbot.waitUntil(table.hasFocus, timeout=2000)

    qtbot.keyClick(table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)

    qtbot.waitUntil(lambda: window.detail.log_view.search_edit.hasFocus(), timeout=2000)


def test_ctrl_f_focuses_the_log_search(qtbot: Any, make_window: WindowFactory) -> None:
    window = make_window()
    window.show()
    window.activateWindow()

    window.window_actions.search_logs_action.trigger()

    qtbot.waitUntil(lambda: window.detail.log_view.search_edit.hasFocus(), timeout=2000)


# -- projects and specs --------------------------------------------------------------------------


def test_new_job_without_a_project_says_what_to_do(
    make_window: WindowFactory, messages: list[tuple[str, str, str]]
) -> None:
    window = make_window()

    assert window.new_job() is None

    assert messages and messages[0][1] == "Pick a project first"


def test_new_job_opens_a_form_for_the_project(make_window: WindowFactory, tmp_path: Path) -> None:
    window = make_window()
    window.projects.create_project(tmp_path / "My Project", "My Project")

    dialog = window.new_job()

    assert isinstance(dialog, SpecEditorDialog)
    assert dialog.form.base_dir == (tmp_path / "My Project").resolve()
    assert dialog.form.editor("name").value() == "My-Project"


def test_new_job_from_the_example_copies_it_into_the_project(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    folder = tmp_path / "proj"
    window.projects.create_project(folder, "proj")

    window.commands.new_job_from_example()

    qtbot.waitUntil(lambda: bool(window.editors), timeout=5000)
    form = window.editors[0].form
    assert (folder / "code" / "train.py").is_file()
    assert (folder / "data" / "train").is_dir()
    assert form.editor("name").value() == "quickstart"
    assert form.validate() is not None, form.problems


def test_ctrl_s_opens_the_selected_spec_then_saves_the_form(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    project = window.projects.create_project(tmp_path / "proj", "proj")
    spec = tmp_path / "proj" / "first.yaml"
    spec.write_text("name: first\nsource:\n  command: [echo, hi]\n")
    window.projects.refresh_specs()
    window.projects.select_project(project.id)
    qtbot.waitUntil(lambda: window.projects.select_spec(spec.resolve()), timeout=5000)

    editor = window.save_spec()  # nothing open yet: the selected spec opens in the form

    assert isinstance(editor, SpecEditorDialog) and editor.path == spec.resolve()
    editor.form.editor("name").set_value("renamed")
    saved: list[str] = []
    editor.sig_saved.connect(saved.append)

    assert window.save_spec() is editor  # now Ctrl+S saves that form
    assert saved == [str(spec.resolve())]
    assert "name: renamed" in spec.read_text()
    assert len(window.editors) == 1


def test_dropping_a_spec_yaml_on_the_window_opens_it(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    spec = tmp_path / "drop.yaml"
    spec.write_text("name: dropped\nsource:\n  command: [echo, hi]\n")

    entered, dropped = drop(window, mime_for([spec]))

    assert entered and dropped
    assert len(window.editors) == 1
    editor = window.editors[0]
    assert editor.path == spec.resolve()
    assert editor.form.editor("name").value() == "dropped"
    assert editor.form.validate() is not None


def test_a_broken_spec_still_opens_with_its_problems_shown(
    make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: 'no spaces allowed'\nsource:\n  command: [echo]\n")

    editor = window.open_spec(spec)

    assert editor is not None
    assert "must be 1-63 letters" in editor.form.problem_text("name")


def test_a_file_that_is_not_yaml_gets_a_clear_message(
    make_window: WindowFactory, tmp_path: Path, messages: list[tuple[str, str, str]]
) -> None:
    window = make_window()
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: [unclosed\n")

    assert window.open_spec(spec) is None

    assert messages[0][1] == "Cannot open the spec" and "not valid YAML" in messages[0][2]


def test_dropping_a_folder_on_the_window_opens_it_as_a_project(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()

    drop(window, mime_for([tmp_path]))

    qtbot.waitUntil(lambda: window.current_project() is not None, timeout=5000)
    project = window.current_project()
    assert project is not None and Path(project.path) == tmp_path.resolve()
    assert window.windowTitle().startswith(tmp_path.name)


# -- jobs ----------------------------------------------------------------------------------------


def test_the_projects_jobs_are_listed_with_their_metrics(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window, _project, _records = project_with_jobs(
        make_window, tmp_path, ("first", JobStatus.COMPLETED), ("second", JobStatus.FAILED)
    )
    add_job(make_window.store, "elsewhere", JobStatus.COMPLETED)  # another project's job

    wait_rows(qtbot, window, 2)

    assert sorted(r.name for r in window.jobs.model._records) == ["first", "second"]
    assert window.jobs.model.metric_names == ["loss"]
    window.projects.select_project(None)  # "All jobs"
    wait_rows(qtbot, window, 3)


def test_jobs_started_by_another_process_show_up(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    from trainer_gui.core.store import Store

    window = make_window()
    project = window.projects.create_project(tmp_path / "p", "p")
    make_window.wait_idle(window)
    window._poll_store()  # what the 2 s timer does
    qtbot.waitUntil(lambda: window._known_marker is not None and not window._polling, timeout=5000)
    with Store() as other:  # like the CLI, in its own connection
        add_job(other, "from-cli", JobStatus.COMPLETED, project.id)

    window._poll_store()

    wait_rows(qtbot, window, 1)


def test_selecting_a_job_shows_its_detail(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("only", JobStatus.COMPLETED))
    wait_rows(qtbot, window, 1)

    window.jobs.select_job(records[0].id)

    detail: JobDetail = window.detail
    assert detail.job_ids == [records[0].id]
    assert "only" in detail.header.text() and "Completed" in detail.header.text()
    assert "command" in detail.spec_text.toPlainText()
    assert (
        window.window_actions.clone_action.isEnabled()
        and window.window_actions.delete_action.isEnabled()
    )
    assert not window.window_actions.stop_action.isEnabled()
    qtbot.waitUntil(lambda: "Training" in detail.history.toPlainText(), timeout=3000)


def test_selecting_several_jobs_overlays_their_metrics(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window, _, records = project_with_jobs(
        make_window, tmp_path, ("a", JobStatus.COMPLETED), ("b", JobStatus.COMPLETED)
    )
    wait_rows(qtbot, window, 2)

    window.jobs.table.selectAll()

    assert sorted(window.detail.metrics.jobs) == sorted(r.id for r in records)
    assert "2 jobs" in window.detail.header.text()


def test_delete_asks_and_keeps_artifacts_when_told(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("keep", JobStatus.COMPLETED))
    wait_rows(qtbot, window, 1)
    window.jobs.select_job(records[0].id)
    asked: list[list[str]] = []

    def ask(recs: list[JobRecord]) -> bool:
        asked.append([r.id for r in recs])
        return False

    monkeypatch.setattr(window, "ask_delete", ask)

    window.window_actions.delete_action.trigger()

    wait_rows(qtbot, window, 0)
    assert asked == [[records[0].id]]
    assert make_window.store.get_job(records[0].id) is None
    assert Path(records[0].run_dir).is_dir()


def test_delete_can_remove_the_run_folder(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("gone", JobStatus.FAILED))
    wait_rows(qtbot, window, 1)
    window.jobs.select_job(records[0].id)
    monkeypatch.setattr(window, "ask_delete", lambda recs: True)

    window.commands.delete_selected()

    wait_rows(qtbot, window, 0)
    assert not Path(records[0].run_dir).exists()


def test_cancelling_delete_keeps_the_job(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("stay", JobStatus.COMPLETED))
    wait_rows(qtbot, window, 1)
    window.jobs.select_job(records[0].id)
    monkeypatch.setattr(window, "ask_delete", lambda recs: None)

    window.commands.delete_selected()

    assert make_window.store.get_job(records[0].id) is not None


def test_the_delete_dialog_has_a_remove_artifacts_checkbox(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("x", JobStatus.COMPLETED))
    seen: dict[str, Any] = {}

    def fake_exec(box: QMessageBox) -> QMessageBox.StandardButton:
        seen["text"] = box.text()
        seen["checkbox"] = box.checkBox().text()
        box.checkBox().setChecked(True)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)

    assert window.ask_delete(records) is True
    assert "Delete 1 job" in seen["text"] and "run folders" in seen["checkbox"]


def test_a_running_job_cannot_be_deleted(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, messages: list[tuple[str, str, str]]
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("busy", JobStatus.TRAINING))
    wait_rows(qtbot, window, 1)
    window.jobs.select_job(records[0].id)
    assert window.window_actions.stop_action.isEnabled()

    window.commands.delete_selected()

    assert messages and messages[0][1] == "Stop the jobs first"
    assert make_window.store.get_job(records[0].id) is not None


def test_clone_and_edit_opens_the_jobs_spec_under_a_new_name(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("orig", JobStatus.COMPLETED))
    wait_rows(qtbot, window, 1)
    window.jobs.select_job(records[0].id)

    window.window_actions.clone_action.trigger()

    dialog = window.editors[-1]
    assert dialog.path is None
    assert dialog.form.editor("name").value() == "orig-2"
    assert dialog.form.editor("source.command").value() == ["python", "-c", "print(1)"]


def test_metric_columns_are_the_current_projects_own(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window, first, _ = project_with_jobs(make_window, tmp_path, ("lossy", JobStatus.COMPLETED))
    other = window.projects.create_project(tmp_path / "other", "other")
    add_job(make_window.store, "accurate", JobStatus.COMPLETED, other.id, metrics={"acc": 0.9})
    window.projects.select_project(first.id)
    qtbot.waitUntil(lambda: window.jobs.model.metric_names == ["loss"], timeout=5000)

    window.projects.select_project(other.id)

    qtbot.waitUntil(lambda: len(window.jobs.model.job_ids()) == 1, timeout=5000)
    qtbot.waitUntil(lambda: not window._jobs_loading, timeout=5000)
    model = window.jobs.model
    assert [model.record(0).name] == ["accurate"]
    assert model.metric_names == ["acc"]
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert "loss" not in headers and "acc" in headers
    window.projects.select_project(first.id)
    qtbot.waitUntil(lambda: window.jobs.model.metric_names == ["loss"], timeout=5000)


def test_open_run_folder_without_a_file_manager_shows_the_path_to_copy(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("files", JobStatus.COMPLETED))
    window.show()
    wait_rows(qtbot, window, 1)
    window.jobs.select_job(records[0].id)
    asked: list[str] = []

    def no_handler(url: QUrl) -> bool:  # what Qt answers where no program opens folders
        asked.append(url.toLocalFile())
        return False

    monkeypatch.setattr(QDesktopServices, "openUrl", no_handler)
    toolbar = window.findChild(QToolBar, "main_toolbar")
    button = toolbar.widgetForAction(window.window_actions.open_run_folder_action)

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    assert asked == [records[0].run_dir]
    dialog = window.findChild(LocationDialog)
    assert dialog is not None and dialog.isVisible()
    assert dialog.location.text() == records[0].run_dir
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == records[0].run_dir
    dialog.close()


def test_open_run_folder_with_a_file_manager_shows_no_dialog(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("files", JobStatus.COMPLETED))
    wait_rows(qtbot, window, 1)
    window.jobs.select_job(records[0].id)
    asked: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: asked.append(url) or True)

    window.window_actions.open_run_folder_action.trigger()

    assert len(asked) == 1
    assert window.findChild(LocationDialog) is None


def test_a_search_that_matches_moves_neither_the_log_nor_the_plots(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    from trainer_gui.core.runners.events import LogLine

    window, _, records = project_with_jobs(make_window, tmp_path, ("logged", JobStatus.COMPLETED))
    window.show()
    wait_rows(qtbot, window, 1)
    window.jobs.select_job(records[0].id)
    log_view = window.detail.log_view
    qtbot.waitUntil(lambda: not log_view.loading, timeout=5000)
    log_view.append_lines(
        records[0].id, [LogLine("algo-1", "stdout", f"epoch {i} loss 0.{i}", i) for i in range(500)]
    )
    parts = (log_view, log_view.search_edit, log_view.follow_button, window.detail.metrics)

    def geometries() -> list[Any]:
        QApplication.sendPostedEvents()
        QApplication.processEvents()
        return [p.geometry().getRect() for p in parts] + [window.detail.live.sizes()]

    before = geometries()
    log_view.search_edit.setFocus()
    for text in ("e", "poch 4", "9"):
        qtbot.keyClicks(log_view.search_edit, text)
        assert log_view.match_label.text()
        assert geometries() == before, log_view.match_label.text()
    assert log_view.match_label.text() == "11 matches"


def test_a_download_at_the_end_of_a_job_moves_neither_the_plots_nor_the_log(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    from trainer_gui.core.runners.events import TransferProgress

    window, _, records = project_with_jobs(make_window, tmp_path, ("cloudy", JobStatus.TRAINING))
    window.show()
    wait_rows(qtbot, window, 1)
    job = records[0].id
    window.jobs.select_job(job)
    detail = window.detail
    parts = (detail.tabs, detail.live, detail.metrics, detail.log_view)

    def geometries() -> list[Any]:
        QApplication.sendPostedEvents()
        QApplication.processEvents()
        return [p.geometry().getRect() for p in parts]

    before = geometries()
    model = TransferProgress(job, "download", "model.tar.gz", 3 << 20, 10 << 20, 0, "")
    window.bridge.sig_transfer.emit(job, model)
    qtbot.waitUntil(detail.transfer.isVisible, timeout=2000)
    assert geometries() == before
    window._on_status(job, JobStatus.COMPLETED.value, "")  # the job ends: the bar goes
    qtbot.waitUntil(lambda: not detail.transfer.isVisible(), timeout=2000)
    assert geometries() == before


def test_a_job_ending_in_the_background_notifies(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window, _, records = project_with_jobs(make_window, tmp_path, ("bg", JobStatus.TRAINING))
    wait_rows(qtbot, window, 1)
    assert not window.isActiveWindow()

    window._on_status(records[0].id, JobStatus.COMPLETED.value, "")

    assert window.last_notification is not None
    title, _text, via = window.last_notification
    assert title == "Job completed: bg"
    assert via in ("tray", "alert")
    assert "Job completed: bg" in window.statusBar().currentMessage()
    assert window.jobs.status_text(records[0].id) == "Completed"


def test_an_unknown_error_in_a_task_is_logged_not_shown_as_a_traceback(
    make_window: WindowFactory, messages: list[tuple[str, str, str]], app_home: Path
) -> None:
    window = make_window()

    try:
        raise KeyError("boom")
    except KeyError as exc:
        import traceback

        window.report_error("Cannot do it", exc, traceback.format_exc())

    level, title, text = messages[0]
    assert level == "error" and title == "Cannot do it"
    assert "Traceback" not in text and "crash.log" in text
    assert "KeyError" in (app_home / "crash.log").read_text()


def test_a_user_error_shows_just_its_message(
    make_window: WindowFactory, messages: list[tuple[str, str, str]]
) -> None:
    window = make_window()

    window.report_error("Cannot start", UserError("Python interpreter 'x' not found"))

    assert messages == [("warning", "Cannot start", "Python interpreter 'x' not found")]


def test_closing_the_window_lets_go_of_jobs_without_stopping_them(
    make_window: WindowFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    calls: list[str] = []
    monkeypatch.setattr(make_window.service, "shutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(make_window.service, "stop", lambda *a, **k: calls.append("stop"))

    window.close()

    assert calls == ["shutdown"]


def test_a_submit_that_returns_after_the_window_closed_reports_nothing(
    qtbot: Any, make_window: WindowFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    window = make_window()
    release, started = threading.Event(), threading.Event()

    class Submitted:
        job_id = "late-job"

    def submit(*args: Any, **kwargs: Any) -> Submitted:
        started.set()
        assert release.wait(10)
        return Submitted()

    monkeypatch.setattr(make_window.service, "submit", submit)
    monkeypatch.setattr(make_window.service, "shutdown", lambda: None)
    spec = spec_from_dict(
        {"name": "late", "source": {"command": ["python", "-c", "1"]}}, base_dir=tmp_path
    )
    window.commands.submit(spec, None)
    assert started.wait(5)
    pending = list(window.commands._tasks._callbacks)
    window.close()
    release.set()
    qtbot.waitUntil(lambda: all(task.finished for task in pending), timeout=5000)
    assert all(task.cancelled for task in pending)
    assert "Started" not in window.statusBar().currentMessage()
    assert window._select_after_load is None


def test_start_re_attaches_to_running_jobs_off_the_gui_thread(
    qtbot: Any, make_window: WindowFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []

    def recover() -> list[str]:
        threads.append(threading.current_thread().name)
        return ["job-1"]

    monkeypatch.setattr(make_window.service, "recover", recover)

    window = make_window(recover=True)

    qtbot.waitUntil(lambda: window.recovered == ["job-1"], timeout=5000)
    assert threads and threads[0] != threading.main_thread().name
    assert "Re-attached to 1 running job" in window.statusBar().currentMessage()


def test_jobs_left_unfollowed_are_picked_up_while_the_window_is_open(
    qtbot: Any, make_window: WindowFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI run that was detached: nobody follows its job until the next re-attach pass."""
    orphans: list[list[str]] = [[], [], ["detached-job"]]
    threads: list[str] = []

    def recover() -> list[str]:
        threads.append(threading.current_thread().name)
        return orphans.pop(0) if orphans else []

    monkeypatch.setattr(make_window.service, "recover", recover)

    window = make_window(recover=True, recover_every=0.05)

    qtbot.waitUntil(lambda: window.recovered == ["detached-job"], timeout=5000)
    assert len(threads) >= 3
    assert threading.main_thread().name not in threads
    assert "Re-attached to 1 running job" in window.statusBar().currentMessage()


def test_a_failing_start_shows_the_reason(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, messages: list[tuple[str, str, str]]
) -> None:
    window = make_window()
    project = window.projects.create_project(tmp_path / "p", "p")
    window.projects.set_python(project.id, sys.executable)
    spec_file = tmp_path / "p" / "bad.yaml"
    spec_file.write_text("name: x\nsource:\n  command: [python, -c, '1']\n")
    make_window.store.update_project_settings(project.id, {"python": str(tmp_path / "nope")})
    window.projects.refresh()

    window.commands.run_spec_file(spec_file)

    qtbot.waitUntil(lambda: bool(messages), timeout=10_000)
    assert messages[0][0] == "warning"
    assert "not found" in messages[0][2]


def test_the_excepthook_writes_the_crash_log_and_shows_a_short_dialog(
    monkeypatch: pytest.MonkeyPatch, app_home: Path, qapp: Any
) -> None:
    from trainer_gui.ui import app as app_module

    shown: list[str] = []
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(QMessageBox, "critical", lambda _p, _t, text, *a: shown.append(text))
    app_module.install_excepthook()

    try:
        raise ValueError("unexpected")
    except ValueError:
        sys.excepthook(*sys.exc_info())

    assert "Traceback" in (app_home / "crash.log").read_text()
    assert shown and "ValueError: unexpected" in shown[0] and "Traceback" not in shown[0]


def test_dark_mode_follows_the_system(qapp: Any) -> None:
    from trainer_gui.ui.app import apply_color_scheme

    before_style = qapp.style().name()
    try:
        assert apply_color_scheme(qapp, Qt.ColorScheme.Dark) is True
        window = qapp.palette().color(qapp.palette().ColorRole.Window)
        assert window.lightness() < 128
        assert apply_color_scheme(qapp, Qt.ColorScheme.Light) is False
    finally:
        apply_color_scheme(qapp, Qt.ColorScheme.Light)
    assert qapp.style().name() == before_style


def test_view_theme_switches_light_and_dark_live_and_is_remembered(
    qtbot: Any, make_window: WindowFactory, qapp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_gui.ui.app import apply_theme

    monkeypatch.delenv("TRAINER_GUI_THEME", raising=False)
    window = make_window()
    window.show()
    view_menu = next(
        a.menu() for a in window.menuBar().actions() if a.text() == "&View" and a.menu()
    )
    theme_menu = next(a.menu() for a in view_menu.actions() if a.text() == "Theme")
    themes = {a.text(): a for a in theme_menu.actions()}
    assert sorted(themes) == ["Dark", "Light", "System"] and themes["System"].isChecked()
    style = qapp.style().name()

    def dark(widget: Any) -> bool:
        return bool(widget.palette().color(widget.palette().ColorRole.Window).lightness() < 128)

    log_view = window.detail.log_view
    light_stderr = log_view.stream_color("stderr")
    try:
        themes["Dark"].trigger()

        assert dark(qapp) and themes["Dark"].isChecked()
        qtbot.waitUntil(lambda: dark(window) and dark(log_view.table), timeout=2000)
        qtbot.waitUntil(lambda: log_view.stream_color("stderr") != light_stderr, timeout=2000)
        assert window.settings.theme == "dark"
        again = make_window()  # the next start reads the same settings
        assert again.theme == "dark" and again.window_actions.theme_actions["dark"].isChecked()
        assert dark(qapp)

        window.window_actions.theme_actions["light"].trigger()
        assert not dark(qapp) and window.settings.theme == "light"
        qtbot.waitUntil(lambda: log_view.stream_color("stderr") == light_stderr, timeout=2000)
        window.window_actions.theme_actions["system"].trigger()
        assert not dark(qapp) and window.settings.theme == "system"
        assert qapp.style().name() == style
    finally:
        apply_theme(qapp, "system")


def test_the_theme_variable_wins_for_one_start(
    make_window: WindowFactory, qapp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_gui.ui.app import apply_theme

    monkeypatch.setenv("TRAINER_GUI_THEME", "dark")
    try:
        window = make_window()
        assert window.theme == "dark" and window.window_actions.theme_actions["dark"].isChecked()
        assert qapp.palette().color(qapp.palette().ColorRole.Window).lightness() < 128
        assert window.settings.theme == "system"  # not saved: the menu's choice is
    finally:
        apply_theme(qapp, "system")


def test_the_example_project_is_where_the_window_expects_it() -> None:
    assert (EXAMPLE / "job.yaml").is_file()


# -- real jobs on the host backend (small commands, so they are quick) -----------------------------


def spec_file(folder: Path, name: str, code: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nsource:\n  command: [{sys.executable!r}, -u, -c, {code!r}]\n",
        encoding="utf-8",
    )
    return path


def test_ctrl_r_runs_the_selected_spec_and_rerun_runs_the_job_again(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    folder = tmp_path / "proj"
    window.projects.create_project(folder, "proj")
    path = spec_file(folder, "hello", "print('step=1 loss=0.5')")
    window.projects.refresh_specs()
    assert window.projects.select_spec(path)
    assert window.window_actions.run_action.isEnabled()

    window.window_actions.run_action.trigger()

    wait_jobs(qtbot, window, 1)
    first = window.jobs.model.job_ids()[0]
    qtbot.waitUntil(lambda: window.jobs.status_text(first) == "Completed", timeout=30_000)
    assert window.jobs.selected_ids() == [first]
    qtbot.waitUntil(lambda: window.jobs.model.last_metrics(first).get("loss") == 0.5, timeout=5000)

    project = window.current_project()
    assert project is not None
    window.projects.select_project(project.id)  # the project, not its spec: Ctrl+R re-runs
    window.jobs.select_job(first)
    assert window.window_actions.rerun_action.isEnabled()
    window.window_actions.run_action.trigger()

    wait_jobs(qtbot, window, 2)
    second = next(j for j in window.jobs.model.job_ids() if j != first)
    qtbot.waitUntil(lambda: window.jobs.status_text(second) == "Completed", timeout=30_000)
    record = make_window.store.get_job(second)
    assert record is not None and record.project_id == project.id


def test_a_double_click_on_run_starts_one_job_and_shows_it_starting_at_once(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    window.show()
    folder = tmp_path / "proj"
    window.projects.create_project(folder, "proj")
    path = spec_file(folder, "twice", "print('once')")
    window.projects.refresh_specs()
    assert window.projects.select_spec(path)
    run = window.window_actions.run_action
    button = window.findChild(QToolBar, "main_toolbar").widgetForAction(run)

    # What a desktop sends for a double click: press, release, double-click (a press), release.
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.mouseDClick(button, Qt.MouseButton.LeftButton)
    qtbot.mouseRelease(button, Qt.MouseButton.LeftButton)

    # At once, before the submit has come back: a selected "Starting…" row, Run off.
    assert not run.isEnabled() and not button.isEnabled()
    table = window.jobs.table
    selected = table.selectionModel().selectedRows(COL_STATUS)
    assert [i.data() for i in selected] == [STARTING]
    assert table.model().index(0, COL_NAME).data() == "twice"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # a third click: still one job

    qtbot.waitUntil(run.isEnabled, timeout=15_000)
    wait_jobs(qtbot, window, 1)
    job = window.jobs.model.job_ids()[0]
    qtbot.waitUntil(lambda: window.jobs.selected_ids() == [job], timeout=5000)
    assert window.jobs.proxy.rowCount() == 1
    assert len(make_window.store.list_jobs()) == 1
    qtbot.waitUntil(lambda: window.jobs.status_text(job) == "Completed", timeout=30_000)


def test_a_failed_submit_gives_run_back_and_drops_the_starting_row(
    qtbot: Any,
    make_window: WindowFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    messages: list[tuple[str, str, str]],
) -> None:
    window = make_window()
    folder = tmp_path / "proj"
    window.projects.create_project(folder, "proj")
    path = spec_file(folder, "doomed", "print('never')")
    window.projects.refresh_specs()
    assert window.projects.select_spec(path)
    release = threading.Event()

    def submit(*args: Any, **kwargs: Any) -> Any:
        assert release.wait(10)
        raise UserError("the interpreter is gone")

    monkeypatch.setattr(make_window.service, "submit", submit)
    run = window.window_actions.run_action

    run.trigger()

    assert not run.isEnabled() and window.jobs.proxy.rowCount() == 1
    release.set()
    qtbot.waitUntil(lambda: bool(messages), timeout=5000)
    assert messages[0] == ("warning", "Cannot start doomed", "the interpreter is gone")
    assert run.isEnabled()
    assert window.jobs.proxy.rowCount() == 0


def test_stop_stops_a_running_job(qtbot: Any, make_window: WindowFactory, tmp_path: Path) -> None:
    window = make_window()
    folder = tmp_path / "proj"
    window.projects.create_project(folder, "proj")
    path = spec_file(folder, "sleepy", "import time; print('started'); time.sleep(120)")

    window.commands.run_spec_file(path)

    wait_jobs(qtbot, window, 1)
    job_id = window.jobs.model.job_ids()[0]
    qtbot.waitUntil(lambda: window.jobs.status_text(job_id) == "Training", timeout=30_000)
    window.jobs.select_job(job_id)
    assert window.window_actions.stop_action.isEnabled()

    window.window_actions.stop_action.trigger()

    qtbot.waitUntil(lambda: window.jobs.status_text(job_id) == "Stopped", timeout=30_000)
    assert not window.window_actions.stop_action.isEnabled()


# -- smaller pieces: settings, background tasks, the summary ---------------------------------------


def test_window_settings_round_trip_and_reset_on_an_unknown_schema(
    qapp: Any, app_home: Path
) -> None:
    from PySide6.QtCore import QByteArray

    from trainer_gui.ui.settings import WindowSettings

    settings = WindowSettings()
    settings.set_int("project/current", 7)
    settings.set_bytes("window/state", QByteArray(b"\x01\x02"))
    settings.set_str("theme", "dark")
    settings.sync()

    again = WindowSettings()
    assert again.get_int("project/current") == 7
    assert again.get_bytes("window/state") == QByteArray(b"\x01\x02")
    assert again.get_str("theme") == "dark"
    assert again.get_bytes("missing") is None

    again.qsettings.setValue("schema", 999)
    again.sync()
    fresh = WindowSettings()
    assert fresh.get_int("project/current", -1) == -1


def test_background_tasks_report_results_and_errors_on_the_gui_thread(qtbot: Any) -> None:
    from trainer_gui.ui.tasks import run_task

    seen: list[tuple[str, Any, str]] = []

    def worker_value() -> str:
        return threading.current_thread().name

    def done(value: Any) -> None:
        seen.append(("done", value, threading.current_thread().name))

    def failed(exc: BaseException, tb: str) -> None:
        seen.append(("failed", repr(exc), threading.current_thread().name))

    def boom() -> None:
        raise RuntimeError("no")

    run_task(worker_value, done, failed)
    run_task(boom, done, failed)

    qtbot.waitUntil(lambda: len(seen) == 2, timeout=5000)
    main = threading.main_thread().name
    results = {kind: (value, thread) for kind, value, thread in seen}
    assert results["done"][0] != main and results["done"][1] == main
    assert results["failed"] == ("RuntimeError('no')", main)


def test_the_summary_says_what_ran_where_and_with_what(
    make_window: WindowFactory, tmp_path: Path
) -> None:
    from trainer_gui.core.spec import spec_from_dict
    from trainer_gui.ui.job_detail import summary_html

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("")
    spec = spec_from_dict(
        {
            "name": "summary",
            "source": {"source_dir": "code", "entry_point": "train.py"},
            "channels": {"train": "s3://bucket-a/train"},
            "hyperparameters": {"epochs": 3},
        },
        base_dir=tmp_path,
    )
    record = add_job(make_window.store, "summary", JobStatus.FAILED)

    html = summary_html(record, spec)

    for text in ("summary", "Failed", "train.py", "s3://bucket-a/train", "epochs=3", "Run folder"):
        assert text in html


def test_the_summary_lists_each_instance_group(make_window: WindowFactory, tmp_path: Path) -> None:
    from trainer_gui.core.spec import spec_from_dict
    from trainer_gui.ui.job_detail import summary_html

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("")
    groups = [
        {"name": "trainers", "instance_type": "ml.g5.xlarge", "instance_count": 2},
        {"name": "loaders", "instance_type": "ml.c5.xlarge"},
    ]
    spec = spec_from_dict(
        {
            "name": "hetero",
            "source": {"source_dir": "code", "entry_point": "train.py"},
            "compute": {"backend": "docker", "instance_groups": groups},
            "distribution": {"kind": "torchrun", "instance_groups": ["trainers"]},
        },
        base_dir=tmp_path,
    )
    record = add_job(make_window.store, "hetero", JobStatus.COMPLETED)

    html = summary_html(record, spec)

    assert "2 × ml.g5.xlarge (trainers) + 1 × ml.c5.xlarge (loaders)" in html
    assert "torchrun in trainers" in html


def test_the_predict_panel_and_about_dialog_are_reachable(
    make_window: WindowFactory, messages: list[tuple[str, str, str]]
) -> None:
    window = make_window()
    assert window.predict_dock.isHidden()
    window.commands.serve_selected()  # nothing selected: a message, no endpoint
    assert messages and messages[-1][1] == "Serve model"
    assert window.predict_dock.isHidden()
    window.predict_dock.toggleViewAction().trigger()
    assert not window.predict_dock.isHidden()
    assert window.window_actions.serve_action in window.jobs.table.actions()
    window._about()
    about = [w for w in window.findChildren(QWidget) if w.windowTitle().startswith("About")]
    assert about and about[0].isVisible()
    about[0].close()
