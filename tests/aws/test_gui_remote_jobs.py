"""The SageMaker jobs dialog against the moto server: list, follow here, import, errors, filter."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto_support import Script
from PySide6.QtCore import QThreadPool
from pytestqt.qtbot import QtBot
from sm_helpers import TEAM_BUCKET, create_job, service

from trainer_gui.core.aws.defaults import AwsDefaults, save_aws_defaults
from trainer_gui.core.spec import load_spec
from trainer_gui.services.jobs import JobService
from trainer_gui.ui.app import binding_problem

_PROBLEM = binding_problem()
if _PROBLEM is not None:  # pragma: no cover - an environment with a broken PySide6
    pytest.skip(_PROBLEM, allow_module_level=True)

from trainer_gui.ui import remote_jobs as remote_jobs_mod  # noqa: E402
from trainer_gui.ui.remote_jobs import FOLLOWING, RemoteJobsDialog  # noqa: E402

POOL_WAIT_MS = 10_000
Factory = Callable[..., RemoteJobsDialog]


@pytest.fixture
def svc() -> Iterator[JobService]:
    """A real job service (store in the test's own TRAINER_GUI_HOME), fast SageMaker polling."""
    job_service = service()
    yield job_service
    job_service.shutdown()
    job_service.store.close()


@pytest.fixture
def make_dialog(qtbot: QtBot, svc: JobService, tmp_path: Path) -> Iterator[Factory]:
    """Dialogs that have finished listing; at the end, no pool task outlives them."""

    def make(**kwargs: Any) -> RemoteJobsDialog:
        kwargs.setdefault("project_dir", tmp_path / "project")
        dialog = RemoteJobsDialog(svc, **kwargs)
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=20_000)
        return dialog

    yield make
    assert QThreadPool.globalInstance().waitForDone(POOL_WAIT_MS), "pool tasks still running"


def view_names(dialog: RemoteJobsDialog) -> list[str]:
    proxy = dialog.table.model()
    return [proxy.index(row, 0).data() for row in range(proxy.rowCount())]


def test_lists_the_accounts_jobs_newest_first(aws: Any, make_dialog: Factory) -> None:
    for name in ("run-a", "run-b", "run-c"):
        create_job(aws, name)
    dialog = make_dialog()
    assert dialog.model.names() == ["run-c", "run-b", "run-a"]
    assert view_names(dialog) == ["run-c", "run-b", "run-a"]
    assert "3 most recent training jobs in us-east-1" in dialog.status_label.text()
    assert not dialog.status_is_error()
    assert dialog.profile_combo.currentText() == "(default credential chain)"
    status = dialog.table.model().index(0, 1).data()
    assert status in ("In progress", "Completed")
    # Nothing selected yet: nothing to follow or import.
    assert not dialog.follow_button.isEnabled() and not dialog.import_button.isEnabled()
    assert dialog.select_job("run-b")
    assert dialog.follow_button.isEnabled() and dialog.import_button.isEnabled()
    assert not dialog.select_job("no-such-job")


def test_starts_with_the_aws_settings_and_lists_off_the_gui_thread(
    aws: Any, make_dialog: Factory, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_aws_defaults(AwsDefaults(profile="research", region="eu-west-1"))
    create_job(aws, "us-only")  # in us-east-1: not listed for eu-west-1
    threads: list[threading.Thread] = []
    real = remote_jobs_mod.list_training_jobs

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(remote_jobs_mod, "list_training_jobs", spy)
    dialog = make_dialog()
    assert dialog.profile() == "research" and dialog.region() == "eu-west-1"
    # The research profile has no credentials (a named profile skips the environment's).
    assert dialog.status_is_error()
    assert "no AWS credentials found" in dialog.status_label.text()
    assert threads and all(t is not threading.main_thread() for t in threads)
    # The profiles of the AWS config arrive (off-thread) without changing the choice.
    qtbot.waitUntil(lambda: dialog.profile_combo.count() == 4, timeout=10_000)
    assert [dialog.profile_combo.itemText(i) for i in range(4)] == [
        "(default credential chain)",
        "default",
        "research",
        "sso-dev",
    ]
    assert dialog.profile() == "research" and dialog.region() == "eu-west-1"
    assert dialog.region_combo.findText("us-east-1") >= 0
    # Another profile lists again, in the same region.
    dialog.profile_combo.setCurrentIndex(0)
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=20_000)
    assert dialog.status_label.text() == "No training jobs in eu-west-1."
    assert not dialog.status_is_error() and dialog.model.rowCount() == 0
    # And another region.
    line = dialog.region_combo.lineEdit()
    assert line is not None
    line.setText("us-east-1")
    line.editingFinished.emit()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=20_000)
    assert dialog.model.names() == ["us-only"]


def test_follow_here_adopts_the_job_and_follows_it_to_the_end(
    aws: Any, make_dialog: Factory, svc: JobService, qtbot: QtBot
) -> None:
    aws.sim.script(
        "team-run", Script(lines=lambda h: [f"loss={0.5 / (i + 1):.3f}" for i in range(10)])
    )
    create_job(aws, "team-run", hosts=2)
    project = svc.store.add_project("p", str(aws.home))
    dialog = make_dialog(project_id=project.id)
    assert dialog.model.index(0, 4).data() == ""
    assert dialog.select_job("team-run")
    with qtbot.waitSignal(dialog.sig_followed, timeout=20_000) as followed:
        dialog.follow_button.click()
        assert not dialog.follow_button.isEnabled()  # busy while attaching
    assert followed.args == ["team-run"]
    assert not dialog.status_is_error()
    assert dialog.model.index(0, 4).data() == FOLLOWING
    qtbot.waitUntil(lambda: svc.get("team-run").status == "Completed", timeout=30_000)
    record = svc.get("team-run")
    assert record.backend == "sagemaker" and record.project_id == project.id
    assert svc.store.metric_count("team-run") == 20  # 10 lines on each of the 2 hosts
    log_text = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "loss=0.050" in log_text
    # Listed again, it says "following"; following it again just re-attaches.
    dialog.refresh_button.click()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=20_000)
    assert dialog.model.is_followed("team-run")
    assert dialog.select_job("team-run")
    with qtbot.waitSignal(dialog.sig_followed, timeout=20_000):
        dialog.table.doubleClicked.emit(dialog.table.currentIndex())
    assert len(svc.store.list_jobs()) == 1


def test_import_writes_a_spec_with_the_code(
    aws: Any, make_dialog: Factory, tmp_path: Path, qtbot: QtBot
) -> None:
    create_job(aws, "team-import")
    project = tmp_path / "project"
    project.mkdir()
    dialog = make_dialog(project_dir=project)
    asked: list[Path] = []
    target = project / "specs" / "imported.yaml"
    target.parent.mkdir()

    def ask(default: Path) -> Path | None:
        asked.append(default)
        return target

    dialog.ask_spec_path = ask  # type: ignore[method-assign]
    assert dialog.download_code_check.isChecked()
    assert dialog.select_job("team-import")
    with qtbot.waitSignal(dialog.sig_imported, timeout=20_000) as imported:
        dialog.import_button.click()
    assert asked == [project / "team-import.yaml"]
    assert imported.args == [str(target)]
    spec = load_spec(target)
    assert spec.name == "team-import" and spec.source.entry_point == "train.py"
    code = spec.resolve(spec.source.source_dir or "missing")
    assert (code / "train.py").read_text() == "print('loss=0.2')\n"
    assert str(target) in dialog.status_label.text() and not dialog.status_is_error()

    # Without the code the spec reuses the archive in S3; a cancelled file dialog does nothing.
    dialog.download_code_check.setChecked(False)
    with qtbot.waitSignal(dialog.sig_imported, timeout=20_000):
        dialog.import_button.click()
    source_dir = load_spec(target).source.source_dir
    assert source_dir == f"s3://{TEAM_BUCKET}/team-import/source/sourcedir.tar.gz"
    dialog.ask_spec_path = lambda default: None  # type: ignore[method-assign]
    dialog.import_button.click()
    assert not dialog.is_busy()


def test_access_denied_shows_inline_and_the_dialog_stays_usable(
    aws: Any, make_dialog: Factory, qtbot: QtBot
) -> None:
    create_job(aws, "denied-run")
    aws.faults.error(
        "sagemaker:ListTrainingJobs",
        400,
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/x is not authorized to perform: "
        "sagemaker:ListTrainingJobs",
    )
    dialog = make_dialog()
    text = dialog.status_label.text()
    assert "access denied" in text and "sagemaker:ListTrainingJobs" in text
    assert "Traceback" not in text
    assert dialog.status_is_error()
    assert dialog.model.rowCount() == 0
    assert dialog.refresh_button.isEnabled()
    dialog.refresh_button.click()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=20_000)
    assert dialog.model.names() == ["denied-run"]
    assert not dialog.status_is_error()


def test_a_failed_follow_is_shown_inline(aws: Any, make_dialog: Factory, qtbot: QtBot) -> None:
    create_job(aws, "gone-run")
    dialog = make_dialog()
    aws.faults.error("sagemaker:DescribeTrainingJob", 400, "ValidationException", "not found")
    assert dialog.select_job("gone-run")
    dialog.follow_button.click()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=20_000)
    assert dialog.status_is_error()
    assert "not found" in dialog.status_label.text()
    assert dialog.follow_button.isEnabled()


def test_the_filter_narrows_the_rows(aws: Any, make_dialog: Factory, qtbot: QtBot) -> None:
    for name in ("alpha-1", "beta-1", "alpha-2"):
        create_job(aws, name)
    dialog = make_dialog()
    assert dialog.table.model().rowCount() == 3
    qtbot.keyClicks(dialog.filter_edit, "ALPHA")
    assert sorted(view_names(dialog)) == ["alpha-1", "alpha-2"]
    assert not dialog.select_job("beta-1")
    assert dialog.select_job("alpha-2")
    dialog.filter_edit.clear()
    assert dialog.table.model().rowCount() == 3
