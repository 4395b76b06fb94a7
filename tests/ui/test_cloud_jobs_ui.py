"""SageMaker jobs in the window without AWS: transfer progress, the cloud badge, the summary,
and the confirm step before a cloud job starts (the moto-backed end-to-end run is in
tests/aws/test_gui_sagemaker.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import WindowFactory, add_job, window_factory
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from trainer_gui.core.runners.events import JobStatus, StatusChanged
from trainer_gui.core.runners.sagemaker import TransferProgress
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.core.store import JobRecord, Store
from trainer_gui.ui.bridge import JobEventBridge
from trainer_gui.ui.job_detail import console_link, summary_html
from trainer_gui.ui.jobs_table import COL_BACKEND, JobsTableModel
from trainer_gui.ui.transfers import TransferProgressBar, describe, format_bytes

MB = 1024 * 1024


def progress(
    done: int, total: int, what: str = "code", skipped: int = 0, job: str = "j1", up: bool = True
) -> TransferProgress:
    return TransferProgress(job, "upload" if up else "download", what, done, total, skipped, "")


@pytest.fixture
def make_window(qtbot: QtBot) -> Iterator[WindowFactory]:
    yield from window_factory(qtbot)


def cloud_job(store: Store, name: str = "cloudy", **ids: Any) -> JobRecord:
    from trainer_gui.core.paths import runs_home

    job_id = f"{name}-20261122-101010-abcd"
    run = runs_home() / job_id
    run.mkdir(parents=True)
    store.create_job(job_id, name, "sagemaker", f"name: {name}\n", str(run), None)
    store.update_backend_ids(job_id, ids)
    record = store.get_job(job_id)
    assert record is not None
    return record


# -- the progress line -------------------------------------------------------------------------


def test_describe_says_bytes_totals_and_what_s3_already_had() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * MB) == "3.0 MB"
    line = describe(progress(12 * MB, 40 * MB, "channel train", skipped=8 * MB))
    assert (
        line == "Uploading channel train: 12.0 MB of 40.0 MB (8.0 MB already in S3, not sent again)"
    )
    assert describe(progress(5, 5, "model.tar.gz", up=False)).startswith("Downloaded model.tar.gz")


def test_a_local_channel_copy_says_copying_not_downloading() -> None:
    from trainer_gui.core.runners.events import TransferProgress

    copying = TransferProgress("j", "copy", "channel train", 1 * MB, 4 * MB, 0, "train")
    assert describe(copying) == "Copying channel train: 1.0 MB of 4.0 MB"
    done = TransferProgress("j", "copy", "channel train", 4 * MB, 4 * MB, 0, "train")
    assert describe(done).startswith("Copied channel train")


def test_bar_sums_unfinished_transfers_and_hides_after_the_last_ends(qtbot: QtBot) -> None:
    bar = TransferProgressBar(name_of=lambda job_id: f"job {job_id}")
    qtbot.addWidget(bar)
    bar._hide_timer.setInterval(50)
    bar.on_transfer("j1", progress(1 * MB, 4 * MB, "code"))
    bar.on_transfer("j1", progress(1 * MB, 4 * MB, "channel train"))
    assert not bar.isHidden()
    assert bar.bar.value() == 250
    assert bar.text() == "job j1 — Uploading 2 items: 2.0 MB of 8.0 MB"
    bar.on_transfer("j1", progress(4 * MB, 4 * MB, "code"))
    assert bar.text() == "job j1 — Uploading channel train: 1.0 MB of 4.0 MB"
    bar.on_transfer("j1", progress(4 * MB, 4 * MB, "channel train"))
    assert bar.bar.value() == 1000 and not bar.isHidden()
    qtbot.waitUntil(bar.isHidden, timeout=3000)
    assert bar.entries == {}


def test_per_job_bar_shows_only_the_selected_jobs_transfers(qtbot: QtBot) -> None:
    bar = TransferProgressBar(per_job=True)
    qtbot.addWidget(bar)
    bar.on_transfer("a", progress(1, 10, job="a"))
    bar.on_transfer("b", progress(3, 10, "model.tar.gz", job="b", up=False))
    bar.set_job("b")
    assert bar.text().startswith("Downloading model.tar.gz") and not bar.isHidden()
    bar.set_job(None)
    assert bar.isHidden()
    bar.set_job("a")
    bar.forget_job("a")
    assert bar.isHidden() and all(key[0] == "b" for key in bar.entries)


class _Source:
    def __init__(self) -> None:
        self.listeners: list[Callable[[Any], None]] = []

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def fire(self, event: Any) -> None:
        for listener in self.listeners:
            listener(event)


def test_bridge_sends_the_newest_report_per_item_before_the_jobs_next_status(
    qtbot: QtBot,
) -> None:
    source = _Source()
    bridge = JobEventBridge(source, hz=1)
    got: list[tuple[str, Any]] = []
    bridge.sig_transfer.connect(lambda job_id, p: got.append(("transfer", p.done_bytes)))
    bridge.sig_status.connect(lambda job_id, status, message: got.append(("status", status)))
    for done in (1, 2, 3):
        source.fire(progress(done, 10))
    source.fire(progress(7, 10, "channel train"))
    source.fire(StatusChanged("j1", JobStatus.STARTING, "LaunchingMLInstances"))
    source.fire(progress(1, 5, "late"))
    bridge.flush()
    assert got == [("transfer", 3), ("transfer", 7), ("status", "Starting"), ("transfer", 1)]
    bridge.close()


# -- the cloud badge and the summary -------------------------------------------------------------


def test_sagemaker_jobs_get_a_cloud_badge_with_where_they_run(qtbot: QtBot) -> None:
    store = Store()
    try:
        local = add_job(store, "local")
        cloud = cloud_job(
            store, training_job_name="cloudy-1", region="eu-west-1", profile="research"
        )
        model = JobsTableModel()
        model.set_jobs([(local, {}), (cloud, {})])
        rows = {model.data(model.index(r, 0)): r for r in range(2)}
        index = model.index(rows["cloudy"], COL_BACKEND)
        assert model.data(index) == "sagemaker"
        icon = model.data(index, Qt.ItemDataRole.DecorationRole)
        assert icon is not None and not icon.isNull()
        tip = model.data(index, Qt.ItemDataRole.ToolTipRole)
        assert "cloudy-1" in tip and "eu-west-1" in tip and "research" in tip
        local_index = model.index(rows["local"], COL_BACKEND)
        assert model.data(local_index, Qt.ItemDataRole.DecorationRole) is None
    finally:
        store.close()


def test_summary_links_the_cloud_job_to_the_aws_console() -> None:
    store = Store()
    try:
        record = cloud_job(
            store,
            training_job_name="cloudy-1",
            region="us-west-2",
            training_job_arn="arn:aws:sagemaker:us-west-2:123456789012:training-job/cloudy-1",
        )
        text = summary_html(record, None)
        url = console_link(record)
        assert url is not None and "us-west-2" in url and "cloudy-1" in url
        assert url in text and "arn:aws:sagemaker" in text
        assert console_link(add_job(store, "plain")) is None
    finally:
        store.close()


# -- confirm before a cloud job starts -----------------------------------------------------------


def sagemaker_spec(tmp_path: Path, backend: str = "sagemaker") -> JobSpec:
    (tmp_path / "train.py").write_text("print('hi')\n")
    return spec_from_dict(
        {
            "name": "to-the-cloud",
            "source": {"source_dir": ".", "entry_point": "train.py"},
            "compute": {"backend": backend, "instance_type": "ml.m5.xlarge"},
            "sagemaker": {
                "region": "us-east-1",
                "role_arn": "arn:aws:iam::123456789012:role/SageMakerExecution",
            },
        },
        base_dir=tmp_path,
    )


def test_a_declined_cloud_run_starts_nothing(
    make_window: WindowFactory, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    asked: list[tuple[str, str | None]] = []

    def decline(spec: JobSpec, region: str | None) -> bool:
        asked.append((spec.name, region))
        return False

    monkeypatch.setattr(window, "confirm_cloud_run", decline)
    submitted: list[Any] = []
    monkeypatch.setattr(make_window.service, "submit", lambda *a, **k: submitted.append(a))
    window.commands.submit(sagemaker_spec(tmp_path), None)
    qtbot.waitUntil(lambda: bool(asked), timeout=10_000)
    assert asked == [("to-the-cloud", "us-east-1")]
    assert "not started" in window.statusBar().currentMessage()
    assert submitted == []


def test_local_runs_are_not_asked_about(
    make_window: WindowFactory, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    monkeypatch.setattr(
        window, "confirm_cloud_run", lambda *a: pytest.fail("asked for a local job")
    )
    spec = sagemaker_spec(tmp_path, backend="local-process")
    started: list[str] = []
    monkeypatch.setattr(
        make_window.service,
        "submit",
        lambda spec, **kwargs: started.append(spec.name) or type("H", (), {"job_id": "x"})(),
    )
    window.commands.submit(spec, None)
    qtbot.waitUntil(lambda: started == ["to-the-cloud"], timeout=10_000)


def test_empty_sagemaker_fields_show_what_the_aws_settings_will_use(
    qtbot: QtBot, tmp_path: Path
) -> None:
    from trainer_gui.core.aws.defaults import AwsDefaults, save_aws_defaults
    from trainer_gui.ui.form.spec_form import SpecEditorDialog

    role = "arn:aws:iam::123456789012:role/Trainer"
    save_aws_defaults(AwsDefaults(region="eu-west-1", role_arn=role))
    dialog = SpecEditorDialog(tmp_path, data={"name": "x"})
    qtbot.addWidget(dialog)
    role_edit = dialog.form.editor("sagemaker.role_arn").edit
    assert role_edit.placeholderText() == f"{role} (from the AWS settings)"
    assert dialog.form.editor("sagemaker.region").edit.placeholderText().startswith("eu-west-1")
    assert (
        "default credential chain" in dialog.form.editor("sagemaker.profile").edit.placeholderText()
    )
    dialog.show_aws_defaults(AwsDefaults())
    assert "AWS settings" in role_edit.placeholderText() and role not in role_edit.placeholderText()
    assert dialog.form.data()["sagemaker"]["role_arn"] is None  # a hint, not a value


def test_instance_type_suggests_the_types_the_price_table_knows(
    qtbot: QtBot, tmp_path: Path
) -> None:
    from trainer_gui.ui.form.spec_form import SpecEditorDialog

    dialog = SpecEditorDialog(tmp_path, data={"name": "x"})
    qtbot.addWidget(dialog)
    completer = dialog.form.editor("compute.instance_type").edit.completer()
    assert completer is not None
    completer.setCompletionPrefix("g5.x")
    suggested = [
        completer.completionModel().index(i, 0).data()
        for i in range(completer.completionModel().rowCount())
    ]
    assert "ml.g5.xlarge" in suggested and all("g5.x" in name for name in suggested)


def test_clicking_the_aws_status_opens_the_aws_settings(
    make_window: WindowFactory, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtCore import QThreadPool

    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    window = make_window()
    label = window.backend_status.labels["aws"]
    qtbot.mouseClick(label, Qt.MouseButton.LeftButton)
    assert window.aws_settings_dialog is not None and window.aws_settings_dialog.isVisible()
    qtbot.mouseClick(label, Qt.MouseButton.LeftButton)  # the same dialog, raised
    settings = window.aws_settings_dialog
    QThreadPool.globalInstance().waitForDone(10_000)
    settings.close()
    qtbot.waitUntil(lambda: window.aws_settings_dialog is None, timeout=5000)


def test_a_cloud_run_with_no_region_anywhere_says_so_before_asking(
    make_window: WindowFactory, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    window = make_window()
    monkeypatch.setattr(window, "confirm_cloud_run", lambda *a: pytest.fail("asked"))
    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(window, "show_message", lambda *args: shown.append(args))
    spec = sagemaker_spec(tmp_path)
    spec = spec.model_copy(update={"sagemaker": spec.sagemaker.model_copy(update={"region": None})})
    window.commands.submit(spec, None)
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    level, title, text = shown[0]
    assert level == "warning"
    assert title == "Cannot start to-the-cloud" and "no AWS region" in text
