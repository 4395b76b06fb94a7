"""The window preflights a SageMaker Run: a failure shows its reason with "Launch anyway" and
launches nothing unless asked; Job > Preflight shows the verdict; a cloud job's plot overlays
the preflight that checked it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import WindowFactory, add_job, window_factory
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from trainer_gui.core.preflight import PREFLIGHT_KEY, PREFLIGHT_OF_KEY
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec import JobSpec
from trainer_gui.ui.preflight import LAUNCH_ANYWAY, SETTING_KEY

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
CRASHES = "raise SystemExit('the slice has no header row')\n"


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot)


def _project_with_spec(window: Any, tmp_path: Path, script: str) -> Path:
    folder = tmp_path / "proj"
    window.projects.create_project(folder, "proj")
    (folder / "code").mkdir()
    (folder / "code" / "train.py").write_text(script)
    (folder / "data").mkdir()
    (folder / "data" / "rows.csv").write_text("1,2\n")
    spec = {
        "name": "cloudy",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": "sagemaker", "instance_type": "ml.m5.xlarge"},
        "channels": [{"name": "train", "source": "data"}],
        "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        "sagemaker": {"role_arn": ROLE, "region": "us-east-1"},
    }
    path = folder / "cloudy.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    window.projects.refresh_specs()
    assert window.projects.select_spec(path)
    return path


def test_a_sagemaker_run_whose_preflight_fails_shows_the_reason_and_launches_nothing(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    _project_with_spec(window, tmp_path, CRASHES)
    asked: list[JobSpec] = []
    monkeypatch.setattr(
        window, "confirm_cloud_run", lambda spec, region: asked.append(spec) or True
    )
    launched: list[JobSpec] = []
    submit = window.service.submit

    def watching_submit(spec: JobSpec, *args: Any, **kwargs: Any) -> Any:
        launched.append(spec)
        return submit(spec, *args, **kwargs)

    monkeypatch.setattr(window.service, "submit", watching_submit)

    window.window_actions.run_action.trigger()

    preflight = window.commands.preflight
    qtbot.waitUntil(lambda: preflight.box is not None and preflight.box.isVisible(), timeout=60_000)
    box = preflight.box
    assert box is not None
    assert "the slice has no header row" in box.text()
    texts = [b.text() for b in box.buttons()]
    assert LAUNCH_ANYWAY in texts
    assert [s.compute.backend.value for s in launched] == ["local-process"]  # the probe only
    (probe,) = window.store.list_jobs()
    assert (
        probe.status == JobStatus.FAILED.value and probe.backend_ids[PREFLIGHT_OF_KEY] == "cloudy"
    )
    assert window.commands.starting  # Run stays off while the question is open

    box.button(QMessageBox.StandardButton.Cancel).click()

    qtbot.waitUntil(lambda: not window.commands.starting, timeout=5000)
    assert [s.compute.backend.value for s in launched] == ["local-process"]
    assert "cloudy was not started" in window.statusBar().currentMessage()
    assert len(asked) == 1


def test_the_preflight_setting_is_a_checkable_job_menu_item_that_is_remembered(
    make_window: WindowFactory,
) -> None:
    window = make_window()
    action = window.window_actions.preflight_setting_action
    assert action.isCheckable() and action.isChecked()
    action.trigger()
    assert window.settings.get_int(SETTING_KEY, 1) == 0
    assert not window.commands.preflight.enabled
    job_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Job")
    texts = [a.text() for a in job_menu.actions()]
    assert "Preflight" in texts and "Preflight before SageMaker runs" in texts


def test_job_preflight_on_a_selected_spec_shows_the_verdict_and_launches_nothing(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    script = (
        "import os, time\n"
        "print('loss=0.25', flush=True)\n"
        "ckpt = os.path.join(os.path.dirname(os.environ['SM_MODEL_DIR']), 'checkpoints')\n"
        "open(os.path.join(ckpt, 'c.pt'), 'w').write('c')\n"
        "time.sleep(600)\n"
    )
    _project_with_spec(window, tmp_path, script)
    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(window, "show_message", lambda *a: shown.append(a))
    status: list[str] = []
    window.statusBar().messageChanged.connect(status.append)
    assert window.window_actions.preflight_action.isEnabled()

    window.window_actions.preflight_action.trigger()

    qtbot.waitUntil(lambda: bool(shown), timeout=60_000)
    assert any(m.startswith("cloudy: preflight: ") for m in status), status
    level, title, text = shown[0]
    assert (level, title) == ("info", "Preflight of cloudy")
    assert "Preflight passed" in text and "'loss'" in text and "checkpoint" in text
    (probe,) = window.store.list_jobs()
    assert probe.backend == "local-process" and probe.status == JobStatus.STOPPED.value


def test_a_cloud_jobs_plot_overlays_its_preflight(qtbot: Any, make_window: WindowFactory) -> None:
    window = make_window()
    store = make_window.store
    probe = add_job(store, "cloudy-preflight", metrics={"loss": 0.9})
    cloud = add_job(store, "cloudy", metrics={"loss": 0.4})
    store.update_backend_ids(cloud.id, {PREFLIGHT_KEY: probe.id})
    record = store.get_job(cloud.id)
    assert record is not None

    window.detail.show_jobs([record])

    assert window.detail.metrics.jobs == [cloud.id, probe.id]
    panel = window.detail.metrics
    qtbot.waitUntil(lambda: len(panel.legend_entries()) == 2, timeout=5000)
    names = [name for name, _ in panel.legend_entries()]
    assert names == ["cloudy · algo-1", "preflight · algo-1"]
    assert panel.series(probe.id, "algo-1", "loss") is not None  # one "loss" plot, both runs
    assert panel.metric_names == ["loss"]


def test_the_job_forms_preflight_button_runs_a_sagemaker_spec_here(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    path = _project_with_spec(window, tmp_path, CRASHES)
    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(window, "show_message", lambda *a: shown.append(a))
    dialog = window.open_spec(path)
    qtbot.waitUntil(dialog.preflight_button.isEnabled, timeout=10_000)

    qtbot.mouseClick(dialog.preflight_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: bool(shown), timeout=60_000)
    level, title, text = shown[0]
    assert (level, title) == ("warning", "Preflight of cloudy")
    assert "Preflight failed" in text and "the slice has no header row" in text, text
    assert [r.backend for r in window.store.list_jobs()] == ["local-process"]


def test_the_forms_preflight_button_is_off_for_a_local_spec(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    path = _project_with_spec(window, tmp_path, CRASHES)
    text = path.read_text().replace("backend: sagemaker", "backend: local-process")
    path.write_text(text)
    dialog = window.open_spec(path)
    qtbot.waitUntil(dialog.run_button.isEnabled, timeout=10_000)
    qtbot.waitUntil(lambda: "valid" in dialog.status.text(), timeout=10_000)
    assert not dialog.preflight_button.isEnabled()


def test_closing_the_window_stops_a_preflight_in_flight(
    qtbot: Any, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    _project_with_spec(
        window, tmp_path, "import time\nprint('busy', flush=True)\ntime.sleep(600)\n"
    )
    window.window_actions.preflight_action.trigger()
    store = make_window.store
    qtbot.waitUntil(
        lambda: any(r.status == JobStatus.TRAINING.value for r in store.list_jobs()),
        timeout=30_000,
    )

    window.close()

    (probe,) = store.list_jobs()
    qtbot.waitUntil(
        lambda: store.get_job(probe.id).status == JobStatus.STOPPED.value,  # type: ignore[union-attr]
        timeout=30_000,
    )
