"""The export dialog against the moto server: the default bucket comes from STS, as in the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtGui import QGuiApplication
from sm_helpers import BUCKET, ROLE_ARN, make_spec

from trainer_gui.ui.form.export_dialog import ExportDialog


@pytest.fixture
def dialog(aws: Any, qtbot: Any, project: Path) -> Any:
    widget = ExportDialog(make_spec(project))
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitUntil(lambda: widget.ready or not widget.error_label.isHidden(), timeout=30_000)
    # Nothing left on the pool when the widget goes.
    assert QThreadPool.globalInstance().waitForDone(10_000)
    return widget


def test_all_three_formats_are_shown(dialog: ExportDialog) -> None:
    assert dialog.ready and dialog.error_label.isHidden()
    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())] == [
        "SageMaker SDK v3 (ModelTrainer)",
        "SDK v2 (PyTorch estimator)",
        "CreateTrainingJob request (JSON)",
    ]
    assert all(editor.isReadOnly() for editor in dialog.editors.values())

    request = json.loads(dialog.text("request"))
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert request["RoleArn"] == ROLE_ARN
    assert request["OutputDataConfig"]["S3OutputPath"].startswith(f"s3://{BUCKET}")
    assert request["TrainingJobName"].startswith("mnist-")

    for fmt in ("v3", "v2"):
        code = dialog.text(fmt)
        compile(code, f"export_{fmt}.py", "exec")
        assert "ml.m5.xlarge" in code and ROLE_ARN in code
    assert "ModelTrainer" in dialog.text("v3")
    assert "PyTorch(" in dialog.text("v2")
    # role, region and bucket are all known: the only notes say what the request JSON needs
    # uploaded (the code archive and the local channel data), and where
    notes = dialog.notes_label.text()
    code_uri = json.loads(request["HyperParameters"]["sagemaker_submit_directory"])
    assert "placeholder" not in notes and "unknown" not in notes
    assert f"to {code_uri} before sending it" in notes


def test_save_as_writes_the_shown_tab(
    dialog: ExportDialog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    target = tmp_path / "out" / "job"
    target.parent.mkdir()

    def ask(default: str) -> str:
        asked.append(default)
        return str(target)

    monkeypatch.setattr(dialog, "ask_save_path", ask)
    dialog.tabs.setCurrentIndex(2)

    dialog.save_button.click()

    assert Path(asked[0]).name == "mnist_sagemaker_request.json"
    saved = target.with_suffix(".json")
    assert saved.read_text(encoding="utf-8") == dialog.text("request")
    assert str(saved) in dialog.status_label.text()

    dialog.tabs.setCurrentIndex(0)
    monkeypatch.setattr(dialog, "ask_save_path", lambda default: asked.append(default))
    dialog.save_button.click()  # cancelled: nothing written
    assert Path(asked[1]).name == "mnist_sagemaker_v3.py"
    assert sorted(p.name for p in target.parent.iterdir()) == ["job.json"]


def test_copy_puts_the_shown_tab_on_the_clipboard(dialog: ExportDialog) -> None:
    dialog.tabs.setCurrentIndex(1)

    dialog.copy_button.click()

    assert QGuiApplication.clipboard().text() == dialog.text("v2")
    assert dialog.text("v2")


def test_without_sts_the_bucket_is_a_placeholder_with_a_note(
    aws: Any, qtbot: Any, project: Path
) -> None:
    aws.faults.error("sts:GetCallerIdentity", 403, "AccessDenied", "not allowed", times=10)
    widget = ExportDialog(make_spec(project))
    qtbot.addWidget(widget)

    qtbot.waitUntil(lambda: widget.ready or not widget.error_label.isHidden(), timeout=30_000)
    assert QThreadPool.globalInstance().waitForDone(10_000)

    assert widget.ready and widget.error_label.isHidden()
    assert not widget.notes_label.isHidden()
    assert "default bucket unknown" in widget.notes_label.text()
    assert "<account-id>" in widget.text("request")
