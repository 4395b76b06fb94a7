"""File dialogs start where the user's files are (the project, the run's folder), never in the
process's working folder: each dialog is opened from its real button or menu entry, with the
blocking dialog itself replaced by one that notes where it would start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog

from trainer_gui.core.spec import JobSpec
from trainer_gui.ui.form import export_dialog as export_module
from trainer_gui.ui.form.export_dialog import ExportDialog
from trainer_gui.ui.form.spec_form import SpecForm
from trainer_gui.ui.plots.panel import MetricsPanel


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The start path of every file dialog asked for (each answers "cancelled")."""
    seen: list[str] = []

    def ask(_parent: Any, _title: str, start: str = "", *_a: Any, **_k: Any) -> tuple[str, str]:
        seen.append(start)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", ask)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", ask)
    return seen


@pytest.fixture(autouse=True)
def _away_from_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A working folder that is neither the project nor a run's: starting there is the bug."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


def menu_action(panel: MetricsPanel, text: str) -> QAction:
    panel.export_menu.fill()
    return next(a for a in panel.export_menu.actions() if a.text() == text)


def test_plot_exports_start_in_the_runs_folder(
    qtbot: Any, trainer_home: Path, starts: list[str]
) -> None:
    run_dir = trainer_home / "runs" / "job-1"
    run_dir.mkdir(parents=True)
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.set_jobs(["job-1"])

    menu_action(panel, "PNG of all plots…").trigger()
    menu_action(panel, "CSV of every point…").trigger()

    assert starts == [str(run_dir / "job-1-all.png"), str(run_dir / "job-1.csv")]


def test_plot_exports_of_several_runs_start_in_the_runs_folder(
    qtbot: Any, trainer_home: Path, starts: list[str]
) -> None:
    for job in ("job-1", "job-2"):
        (trainer_home / "runs" / job).mkdir(parents=True)
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.set_jobs(["job-1", "job-2"])

    menu_action(panel, "CSV of every point…").trigger()

    assert starts == [str(trainer_home / "runs" / "job-1.csv")]


def test_a_plot_owner_can_say_where_exports_start(
    qtbot: Any, trainer_home: Path, tmp_path: Path, starts: list[str]
) -> None:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.set_jobs(["job-1"])
    panel.export_menu.start_dir = lambda: tmp_path

    menu_action(panel, "PNG of all plots…").trigger()

    assert starts == [str(tmp_path / "job-1-all.png")]


def make_spec(project: Path) -> JobSpec:
    code = project / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text("print(1)\n")
    spec = JobSpec.model_validate(
        {"name": "exp", "source": {"source_dir": "code", "entry_point": "train.py"}}
    )
    return spec.with_base_dir(project)


def test_saving_a_sagemaker_export_starts_in_the_project(
    qtbot: Any, tmp_path: Path, starts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = {"v3": "# v3\n", "v2": "# v2\n", "request": "{}\n"}
    monkeypatch.setattr(export_module, "export_texts", lambda _spec: (texts, []))
    project = tmp_path / "proj"
    project.mkdir()
    dialog = ExportDialog(make_spec(project))
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.ready, timeout=5000)

    dialog.save_button.click()

    assert starts == [str(project / "exp_sagemaker_v3.py")]
    assert QThreadPool.globalInstance().waitForDone(10_000)


def test_importing_hyperparameters_starts_in_the_project(
    qtbot: Any, tmp_path: Path, starts: list[str]
) -> None:
    form = SpecForm(tmp_path)
    qtbot.addWidget(form)

    form.editor("hyperparameters").import_button.click()

    assert starts == [str(tmp_path)]


def test_an_export_of_a_spec_with_no_folder_starts_at_home_not_here(
    qtbot: Any, tmp_path: Path, starts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = {"v3": "# v3\n", "v2": "# v2\n", "request": "{}\n"}
    monkeypatch.setattr(export_module, "export_texts", lambda _spec: (texts, []))
    spec = JobSpec.model_validate({"name": "exp", "source": {"command": ["python", "x.py"]}})
    dialog = ExportDialog(spec)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.ready, timeout=5000)

    dialog.save_button.click()

    assert starts == [str(Path.home() / "exp_sagemaker_v3.py")]
    assert QThreadPool.globalInstance().waitForDone(10_000)


def test_save_log_as_starts_in_the_runs_folder(
    qtbot: Any, tmp_path: Path, starts: list[str]
) -> None:
    from trainer_gui.ui.log_view import LogView

    run_dir = tmp_path / "runs" / "job-1"
    (run_dir / "logs").mkdir(parents=True)
    view = LogView()
    qtbot.addWidget(view)
    view.set_job("job-1", str(run_dir))

    view.save_action.trigger()

    assert starts == [str(run_dir / "job-1.log")]
