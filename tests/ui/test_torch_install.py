"""The "Install PyTorch into this interpreter" dialog, driven by clicks, against a fake interpreter
whose pip prints progress and then succeeds, fails or hangs (until Cancel stops it)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import WindowFactory, window_factory
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from trainer_gui.core import pyenv
from trainer_gui.core.errors import TorchMissing
from trainer_gui.ui.torch_install import TorchInstallDialog, offer_torch_install

FAKE = """\
#!{python}
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
mode = open(os.path.join(here, "mode")).read().strip()
marker = os.path.join(here, "torch-installed")
args = sys.argv[1:]
if args == ["-c", "import torch"]:
    sys.exit(0 if os.path.exists(marker) else 1)
if args[:1] == ["-c"] and "torch_dist" in args[1]:
    print(json.dumps({{"system": "Linux", "tag": "cp311", "pip": "26.3", "torch_dist": None}}))
    sys.exit(0)
if args[:4] == ["-m", "pip", "config", "list"]:
    sys.exit(0)
if args[:3] == ["-m", "pip", "install"]:
    open(os.path.join(here, "pip.pid"), "w").write(str(os.getpid()))
    open(os.path.join(here, "pip.args"), "w").write(json.dumps(args))
    print("Collecting torch==2.13.0", flush=True)
    time.sleep(0.3)
    for step in range(0, 101, 10):
        print(f"Progress {{step}} of 100", flush=True)
    print("Installing collected packages: torch", flush=True)
    if mode == "hang":
        time.sleep(120)
    if mode == "fail":
        print("ERROR: No matching distribution found for torch==2.13.0", flush=True)
        sys.exit(1)
    open(marker, "w").close()
    print("Successfully installed torch-2.13.0", flush=True)
    sys.exit(0)
# Anything else (a job's driver, once "installed"): the real interpreter, which has torch.
os.execv({python!r}, [{python!r}, *args])
"""


def fake_python(folder: Path, mode: str) -> str:
    if os.name == "nt" or " " in sys.executable:
        pytest.skip("the fake interpreter is a script with a #! line")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mode").write_text(mode)
    python = folder / "python"
    python.write_text(FAKE.format(python=sys.executable))
    python.chmod(0o755)
    return str(python)


@pytest.fixture(autouse=True)
def _fresh_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pyenv.BUILD_ENV, "cpu")
    pyenv.forget_torch_probes()


def make_dialog(qtbot: Any, python: str, **kwargs: Any) -> TorchInstallDialog:
    dialog = TorchInstallDialog(python, f"PyTorch is not installed for {python}", **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def click(qtbot: Any, button: QWidget) -> None:
    assert button.isVisible() and button.isEnabled(), button
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_install_shows_pips_output_and_progress_then_offers_the_run(
    qtbot: Any, tmp_path: Path
) -> None:
    python = fake_python(tmp_path / "env", "ok")
    reruns: list[str] = []
    dialog = make_dialog(qtbot, python, rerun=lambda: reruns.append("run"), rerun_label="Run t")
    assert not dialog.progress.isVisible() and not dialog.rerun_button.isVisible()

    shown: list[int] = []
    dialog.progress.valueChanged.connect(shown.append)
    with qtbot.waitSignal(dialog.installed, timeout=30_000) as installed:
        click(qtbot, dialog.install_button)
        assert dialog.progress.isVisible() and dialog.cancel_button.isVisible()
        assert not dialog.close_button.isVisible()

    assert installed.args == [python]
    log = dialog.output.toPlainText()
    assert "Collecting torch==2.13.0" in log and "Successfully installed torch-2.13.0" in log
    assert "Progress " not in log  # progress goes to the bar, not the output
    assert "the CPU build" in log
    assert dialog.progress.maximum() == 100 and dialog.progress.value() == 100
    assert {10, 50, 90} <= set(shown)  # the download's progress reached the bar
    assert "is installed" in dialog.status.text()
    assert not dialog.error.isVisible() and not dialog.cancel_button.isVisible()
    assert pyenv.has_torch(python)  # the next Run's check sees it, no restart
    args = json.loads((tmp_path / "env" / "pip.args").read_text())
    assert f"torch=={pyenv.TORCH_VERSION}" in args and pyenv.CPU_INDEX in args

    click(qtbot, dialog.rerun_button)
    assert reruns == ["run"] and not dialog.isVisible()


def test_a_failed_install_shows_the_reason_and_offers_to_try_again(
    qtbot: Any, tmp_path: Path
) -> None:
    python = fake_python(tmp_path / "env", "fail")
    dialog = make_dialog(qtbot, python, rerun=lambda: pytest.fail("ran after a failure"))

    click(qtbot, dialog.install_button)
    qtbot.waitUntil(dialog.error.isVisible, timeout=30_000)

    assert "pip found no PyTorch" in dialog.error.text()
    assert "Traceback" not in dialog.error.text()
    assert "ERROR: No matching distribution found" in dialog.output.toPlainText()
    assert dialog.install_button.text() == "Try again" and dialog.install_button.isEnabled()
    assert not dialog.rerun_button.isVisible() and not dialog.progress.isVisible()
    assert dialog.close_button.isVisible()
    assert not pyenv.has_torch(python)

    (tmp_path / "env" / "mode").write_text("ok")
    with qtbot.waitSignal(dialog.installed, timeout=30_000):
        click(qtbot, dialog.install_button)
    assert not dialog.error.isVisible() and dialog.rerun_button.isVisible()


def test_cancel_stops_pip_and_says_so(qtbot: Any, tmp_path: Path) -> None:
    python = fake_python(tmp_path / "env", "hang")
    dialog = make_dialog(qtbot, python)

    click(qtbot, dialog.install_button)
    qtbot.waitUntil(
        lambda: "Installing collected packages" in dialog.output.toPlainText(), timeout=30_000
    )
    assert dialog.progress.maximum() == 0  # busy while pip unpacks: no size to show
    click(qtbot, dialog.cancel_button)
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Cancelled"), timeout=15_000)

    pid = int((tmp_path / "env" / "pip.pid").read_text())
    assert _gone(pid)
    assert dialog.install_button.isVisible() and not dialog.cancel_button.isVisible()
    assert not dialog.error.isVisible()
    assert dialog.isVisible()


def _gone(pid: int) -> bool:
    """Ended (or a zombie); a process that ends between two looks counts as gone."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_closing_the_dialog_while_pip_runs_stops_pip(qtbot: Any, tmp_path: Path) -> None:
    python = fake_python(tmp_path / "env", "hang")
    dialog = make_dialog(qtbot, python)
    click(qtbot, dialog.install_button)
    qtbot.waitUntil(lambda: (tmp_path / "env" / "pip.pid").exists(), timeout=30_000)
    pid = int((tmp_path / "env" / "pip.pid").read_text())

    qtbot.keyClick(dialog, Qt.Key.Key_Escape)

    assert not dialog.isVisible()
    qtbot.waitUntil(
        lambda: _gone(pid),
        timeout=15_000,
    )


def test_a_dialog_deleted_with_its_window_stops_pip(qtbot: Any, tmp_path: Path) -> None:
    parent = QWidget()
    python = fake_python(tmp_path / "env", "hang")
    dialog = TorchInstallDialog(python, parent=parent)
    dialog.show()
    click(qtbot, dialog.install_button)
    qtbot.waitUntil(lambda: (tmp_path / "env" / "pip.pid").exists(), timeout=30_000)
    pid = int((tmp_path / "env" / "pip.pid").read_text())

    gone: list[bool] = []
    dialog.destroyed.connect(lambda: gone.append(True))
    parent.deleteLater()  # the window goes, taking the dialog with it: no close event
    qtbot.waitUntil(lambda: bool(gone), timeout=5000)

    qtbot.waitUntil(
        lambda: _gone(pid),
        timeout=15_000,
    )


def test_offer_opens_the_dialog_for_the_interpreter_the_error_names(
    qtbot: Any, tmp_path: Path
) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.show()
    python = fake_python(tmp_path / "env", "ok")

    dialog = offer_torch_install(parent, TorchMissing(python))

    assert dialog.isVisible() and dialog.python == python
    assert python in dialog.intro.text()
    assert dialog.install_button.text() == "Install PyTorch into this interpreter"
    click(qtbot, dialog.close_button)
    assert not dialog.isVisible()


# -- from the window's Run ----------------------------------------------------------------------


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot)


def test_run_refused_for_want_of_torch_offers_the_install_then_runs_without_a_restart(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    folder = tmp_path / "proj"
    project = window.projects.create_project(folder, "proj")
    python = fake_python(tmp_path / "env", "ok")
    window.projects.set_python(project.id, python)
    (folder / "code").mkdir()
    (folder / "code" / "train.py").write_text("print('loss=0.25')\n")
    spec = folder / "needs-torch.yaml"
    spec.write_text(
        "name: needs-torch\n"
        "source: {source_dir: code, entry_point: train.py}\n"
        "compute: {backend: local-process, instance_type: ml.m5.large}\n"
        "metric_definitions: [{name: loss, regex: 'loss=([0-9.]+)'}]\n",
        encoding="utf-8",
    )
    window.projects.refresh_specs()
    assert window.projects.select_spec(spec)

    window.window_actions.run_action.trigger()  # the job host's check says: no torch

    def dialogs() -> list[TorchInstallDialog]:
        return [d for d in window.findChildren(TorchInstallDialog) if d.isVisible()]

    qtbot.waitUntil(lambda: bool(dialogs()), timeout=30_000)
    dialog = dialogs()[0]
    assert dialog.python == python
    assert make_window.store.list_jobs() == []
    with qtbot.waitSignal(dialog.installed, timeout=30_000):
        click(qtbot, dialog.install_button)
    assert dialog.rerun_button.text() == "Run needs-torch"

    click(qtbot, dialog.rerun_button)  # the same job host, which said "no torch" before

    qtbot.waitUntil(lambda: len(make_window.store.list_jobs()) == 1, timeout=30_000)
    job = make_window.store.list_jobs()[0]
    qtbot.waitUntil(
        lambda: make_window.store.get_job(job.id).status == "Completed",  # type: ignore[union-attr]
        timeout=60_000,
    )
