"""The window runs a job on SageMaker (a moto server with the job simulator): confirm with the
cost, the AWS settings filling the spec's gaps, upload and download progress, live logs and
metrics, the cloud badge and the console link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto_support import Script
from PySide6.QtCore import Qt, QThreadPool
from pytestqt.qtbot import QtBot
from sm_helpers import ROLE_ARN, make_spec, runner

from trainer_gui.core.aws.defaults import AwsDefaults, save_aws_defaults
from trainer_gui.core.runners.sagemaker import TransferProgress
from trainer_gui.core.spec import JobSpec, spec_from_text
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService
from trainer_gui.ui.jobs_table import COL_BACKEND
from trainer_gui.ui.status import ProbeResult
from trainer_gui.ui.tasks import store_writes


def _probes() -> dict[str, Any]:
    return {
        "docker": lambda: ProbeResult("docker", "ok", "Docker", "fake"),
        "aws": lambda: ProbeResult("aws", "ok", "AWS", "fake"),
    }


@pytest.fixture
def window(qtbot: QtBot, aws: Any) -> Iterator[Any]:
    from trainer_gui.ui.main_window import MainWindow

    store = Store()
    # In-process: the fast-polling runner (test timing) cannot be handed to a job host child;
    # the two tests below run the job host as the app does.
    service = JobService(store, runners={"sagemaker": runner()})
    win = MainWindow(store, service, probes=_probes(), recover=False)
    qtbot.addWidget(win)
    # The cloud path itself; the preflight before it: tests/aws/test_preflight_launch.py.
    win.commands.preflight.setting_action.setChecked(False)
    yield win
    if not win._closing:
        win.close()
    store_writes().waitForDone(10_000)
    QThreadPool.globalInstance().waitForDone(10_000)
    service.shutdown()
    store.close()


def test_a_cloud_run_from_the_window_confirms_uploads_follows_and_brings_the_model_home(
    window: Any, qtbot: QtBot, aws: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.sim.script(
        "mnist",
        Script(lines=lambda host, n=20: [f"step={i} loss={1 / (i + 1):.3f}" for i in range(20)]),
    )
    save_aws_defaults(AwsDefaults(role_arn=ROLE_ARN, region="us-east-1"))
    asked: list[tuple[JobSpec, str | None]] = []

    def confirm(spec: JobSpec, region: str | None) -> bool:
        asked.append((spec, region))
        return True

    monkeypatch.setattr(window, "confirm_cloud_run", confirm)
    transfers: list[TransferProgress] = []
    window.bridge.sig_transfer.connect(lambda job_id, p: transfers.append(p))
    statuses: list[str] = []
    window.bridge.sig_status.connect(lambda job_id, status, message: statuses.append(status))
    # The spec names neither role nor region: the AWS settings fill them in.
    spec = make_spec(
        project,
        sagemaker={"role_arn": None, "region": None},
        metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}],
    )
    window.commands.submit(spec, None)

    qtbot.waitUntil(lambda: bool(asked), timeout=15_000)
    confirmed, region = asked[0]
    assert region == "us-east-1" and confirmed.sagemaker.role_arn == ROLE_ARN
    qtbot.waitUntil(lambda: "Completed" in statuses, timeout=60_000)

    uploads = {p.what for p in transfers if p.direction == "upload"}
    assert {"code", "channel train"} <= uploads
    downloads = [p for p in transfers if p.direction == "download"]
    assert any(p.what == "model.tar.gz" and p.fraction == 1.0 for p in downloads)
    assert window.transfers.isHidden()  # the job ended: nothing left to show

    records = window.store.list_jobs()
    assert len(records) == 1
    record = records[0]
    stored = spec_from_text(record.spec_yaml)
    assert stored.sagemaker.role_arn == ROLE_ARN and stored.sagemaker.region == "us-east-1"
    assert aws.requests[record.id]["RoleArn"] == ROLE_ARN

    qtbot.waitUntil(lambda: window.jobs.model.rowCount() == 1, timeout=10_000)
    assert window.jobs.select_job(record.id)
    index = window.jobs.model.index(0, COL_BACKEND)
    assert window.jobs.model.data(index, Qt.ItemDataRole.DecorationRole) is not None
    qtbot.waitUntil(lambda: window.window_actions.console_action.isEnabled(), timeout=5000)
    qtbot.waitUntil(
        lambda: "console.aws.amazon.com" in window.detail.summary.toHtml(), timeout=5000
    )
    assert window.store.last_metrics(record.id)["loss"] == pytest.approx(0.05)
    artifacts = record.backend_ids["artifacts"]
    assert Path(artifacts["model"]).exists()


def test_progress_reaches_the_window_from_the_job_host_process(
    qtbot: QtBot, aws: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the app runs: jobs are followed in a child process, which forwards the progress."""
    from trainer_gui.services.job_host import JobHostClient
    from trainer_gui.ui.main_window import MainWindow

    store = Store()
    service = JobHostClient(store)
    win = MainWindow(store, service, probes=_probes(), recover=False)
    qtbot.addWidget(win)
    try:
        monkeypatch.setattr(win, "confirm_cloud_run", lambda spec, region: True)
        win.commands.preflight.setting_action.setChecked(False)  # only the cloud job's progress
        transfers: list[TransferProgress] = []
        win.bridge.sig_transfer.connect(lambda job_id, p: transfers.append(p))
        win.commands.submit(make_spec(project), None)
        qtbot.waitUntil(
            lambda: any(p.what == "code" and p.fraction == 1.0 for p in transfers),
            timeout=60_000,
        )
        job_id = transfers[0].job_id
        assert {p.job_id for p in transfers} == {job_id}
        qtbot.waitUntil(lambda: job_id in aws.requests, timeout=30_000)
    finally:
        win.close()
        store_writes().waitForDone(10_000)
        QThreadPool.globalInstance().waitForDone(10_000)
        service.shutdown()
        store.close()


def test_following_an_account_job_from_the_cloud_menu_selects_it_in_the_table(
    window: Any, qtbot: QtBot, aws: Any
) -> None:
    from sm_helpers import create_job

    aws.sim.script("outside", Script(lines=lambda host, n=5: [f"loss={i}" for i in range(5)]))
    create_job(aws, "outside-job")
    dialog = window.show_remote_jobs()
    assert window.show_remote_jobs() is dialog  # one at a time
    qtbot.waitUntil(lambda: dialog.select_job("outside-job"), timeout=15_000)
    dialog.follow_selected()
    qtbot.waitUntil(lambda: window.selected_records() != [], timeout=15_000)
    record = window.selected_records()[0]
    assert record.id == "outside-job" and record.backend == "sagemaker"
    assert record.backend_ids.get("adopted") is True
    qtbot.waitUntil(
        lambda: (window.store.get_job("outside-job") or record).status == "Completed",
        timeout=30_000,
    )
    dialog.close()
    QThreadPool.globalInstance().waitForDone(10_000)


def test_aws_settings_saved_from_the_cloud_menu_reach_open_forms(
    window: Any, qtbot: QtBot, aws: Any, project: Path
) -> None:
    from trainer_gui.core.spec import spec_to_dict

    spec = make_spec(project, sagemaker={"role_arn": None, "region": None})
    form = window.open_editor(project, data=spec_to_dict(spec))
    qtbot.waitUntil(lambda: "us-east-1" in form.cost_label.text(), timeout=15_000)
    settings = window.show_aws_settings()
    assert window.show_aws_settings() is settings
    settings.role_combo.setEditText(ROLE_ARN)
    settings.region_combo.setEditText("eu-west-1")
    qtbot.waitUntil(settings.is_valid, timeout=5000)
    settings.accept()
    qtbot.waitUntil(lambda: window.aws_settings_dialog is None, timeout=5000)
    role_edit = form.form.editor("sagemaker.role_arn").edit
    assert role_edit.placeholderText() == f"{ROLE_ARN} (from the AWS settings)"
    qtbot.waitUntil(lambda: "eu-west-1" in form.cost_label.text(), timeout=15_000)
    QThreadPool.globalInstance().waitForDone(10_000)


def test_export_of_the_selected_spec_opens_the_sdk_code(
    window: Any, qtbot: QtBot, aws: Any, project: Path
) -> None:
    dialog = window.open_export(make_spec(project))
    qtbot.waitUntil(lambda: dialog.ready, timeout=15_000)
    assert "ModelTrainer" in dialog.text("v3") and '"RoleArn"' in dialog.text("request")
    dialog.close()
    QThreadPool.globalInstance().waitForDone(10_000)


def test_a_job_followed_from_the_account_is_ingested_by_the_job_host(
    qtbot: QtBot, aws: Any
) -> None:
    """As the app runs: the dialog records the job, the child process follows it."""
    from sm_helpers import create_job

    from trainer_gui.services.job_host import JobHostClient
    from trainer_gui.ui.remote_jobs import RemoteJobsDialog

    aws.sim.script("hosted", Script(lines=lambda host, n=5: [f"loss=0.{i}" for i in range(5)]))
    create_job(aws, "hosted-job")
    store = Store()
    service = JobHostClient(store)
    dialog = RemoteJobsDialog(service)
    qtbot.addWidget(dialog)
    try:
        qtbot.waitUntil(lambda: dialog.select_job("hosted-job"), timeout=15_000)
        followed: list[str] = []
        dialog.sig_followed.connect(followed.append)
        dialog.follow_selected()
        qtbot.waitUntil(lambda: followed == ["hosted-job"], timeout=15_000)

        def completed() -> bool:
            record = store.get_job("hosted-job")
            return record is not None and record.status == "Completed"

        qtbot.waitUntil(completed, timeout=60_000)
        assert [s.value for _, s in store.metric_samples("hosted-job", "loss")] == [
            0.0,
            0.1,
            0.2,
            0.3,
            0.4,
        ]
    finally:
        dialog.close()
        QThreadPool.globalInstance().waitForDone(10_000)
        service.shutdown()
        store.close()
