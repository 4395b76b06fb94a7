"""Cost before launch (the estimate line, the confirm dialog) and the export dialog, without AWS:
every spec here names its region (and an S3 prefix where it is exported), so nothing asks AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QMessageBox

from trainer_gui.core.aws.errors import AwsError
from trainer_gui.core.aws.pricing import money, price_table
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.ui.form import cost as cost_module
from trainer_gui.ui.form import export_dialog as export_module
from trainer_gui.ui.form.cost import WARNING_COLOR, CloudRunBox, CostLabel, cloud_run_message
from trainer_gui.ui.form.export_dialog import ExportDialog
from trainer_gui.ui.form.spec_form import SpecEditorDialog

ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerExecution"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('epoch=1 loss=0.5')\n")
    return tmp_path


def make_spec(project: Path, backend: str = "sagemaker", **over: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": "cost-job",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": backend, "instance_type": "ml.m5.xlarge", "instance_count": 2},
        "max_runtime_seconds": 7200,
        "sagemaker": {"region": "us-east-1"},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return spec_from_dict(data, base_dir=project)


def test_the_shipped_table_prices_the_test_instance() -> None:
    # The figures below follow from this entry of resources/aws/prices.json.
    assert price_table().price("us-east-1", "ml.m5.xlarge") == pytest.approx(0.23)


# -- the estimate line -------------------------------------------------------------------------


def test_cost_label_shows_the_estimate_for_sagemaker_only(qtbot: Any, project: Path) -> None:
    label = CostLabel()
    qtbot.addWidget(label)

    label.set_spec(make_spec(project, backend="local-process", compute={"instance_count": 1}))
    assert label.isHidden() and label.estimate is None

    label.set_spec(make_spec(project))
    assert not label.isHidden()
    estimate = label.estimate
    assert estimate is not None and estimate.known
    assert estimate.region == "us-east-1"
    assert estimate.per_hour == pytest.approx(0.46)  # 2 x 0.23
    assert estimate.for_max_runtime == pytest.approx(0.92)  # 2 h
    assert "<b>$0.46/h</b>" in label.text()
    assert "$0.92" in label.text() and "2 x ml.m5.xlarge" in label.text()
    assert WARNING_COLOR not in label.styleSheet()
    tip = label.toolTip()
    assert price_table().as_of in tip and "list-price estimate" in tip
    assert "Source:" in tip

    label.set_spec(None)
    assert label.isHidden()


def test_an_instance_type_not_in_the_table_shows_a_warning(qtbot: Any, project: Path) -> None:
    label = CostLabel()
    qtbot.addWidget(label)

    label.set_spec(make_spec(project, compute={"instance_type": "ml.c4.xlarge"}))

    assert not label.isHidden()
    assert label.estimate is not None and not label.estimate.known
    assert "no price in the table" in label.text()
    assert WARNING_COLOR in label.styleSheet()


def test_a_spec_without_a_region_is_resolved_off_thread_once(
    qtbot: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str | None] = []

    def resolve(spec: JobSpec) -> str:
        calls.append(spec.sagemaker.profile)
        return "eu-west-1"

    monkeypatch.setattr(cost_module, "pricing_region", resolve)
    label = CostLabel()
    qtbot.addWidget(label)
    spec = make_spec(project, sagemaker={"region": None})

    label.set_spec(spec)
    assert label.estimate is None and "Estimating" in label.text()
    qtbot.waitUntil(lambda: label.estimate is not None)
    assert label.estimate is not None and label.estimate.region == "eu-west-1"
    assert label.estimate.per_hour == pytest.approx(2 * 0.257)

    label.set_spec(spec.model_copy(update={"max_runtime_seconds": 3600}))
    assert label.estimate is not None and label.estimate.max_runtime_seconds == 3600
    assert calls == [None]  # cached per (profile, region in the spec)

    label.refresh_settings()
    qtbot.waitUntil(lambda: len(calls) == 2 and label.estimate is not None)
    assert QThreadPool.globalInstance().waitForDone(10_000)


# -- the confirm dialog ------------------------------------------------------------------------


def test_cloud_run_message_names_the_job_the_hosts_and_the_cost(project: Path) -> None:
    title, text = cloud_run_message(make_spec(project), "us-east-1")

    assert title == "Run cost-job on SageMaker?"
    assert "2 x ml.m5.xlarge" in text
    assert "Region: us-east-1" in text
    assert "$0.46 per hour" in text
    assert "$0.92 for the max runtime of 2 h" in text
    assert f"list prices of {price_table().as_of}" in text
    assert "keeps running, and billing, when you close this app" in text


def test_cloud_run_message_without_a_price_says_so(project: Path) -> None:
    spec = make_spec(project, compute={"instance_type": "ml.c4.xlarge"})

    _, text = cloud_run_message(spec, "us-east-1")

    assert "unknown, no price for ml.c4.xlarge in us-east-1" in text
    assert price_table().as_of in text


def test_cloud_run_message_adds_up_the_instance_groups(project: Path) -> None:
    groups = [
        {"name": "gpu", "instance_type": "ml.g5.xlarge", "instance_count": 1},
        {"name": "cpu", "instance_type": "ml.m5.xlarge", "instance_count": 2},
    ]
    spec = make_spec(project, compute={"instance_count": 1, "instance_groups": groups})
    g5 = price_table().price("us-east-1", "ml.g5.xlarge")
    assert g5 is not None

    _, text = cloud_run_message(spec, "us-east-1")

    assert "1 x ml.g5.xlarge + 2 x ml.m5.xlarge" in text
    assert f"{money(g5 + 0.46)} per hour" in text
    spec = make_spec(
        project,
        compute={
            "instance_count": 1,
            "instance_groups": [groups[1], {**groups[0], "instance_type": "ml.c4.xlarge"}],
        },
    )
    _, text = cloud_run_message(spec, "us-east-1")
    assert "unknown, no price for ml.c4.xlarge in us-east-1" in text


def test_the_confirm_box_defaults_to_run(qtbot: Any, project: Path) -> None:
    box = CloudRunBox(None, make_spec(project), "us-east-1")
    qtbot.addWidget(box)

    assert box.run_button.text() == "Run on SageMaker"
    assert box.defaultButton() is box.run_button
    assert box.escapeButton() is box.cancel_button
    assert box.windowTitle() == "Run cost-job on SageMaker?"
    assert "$0.46 per hour" in box.text()
    assert not box.confirmed()
    box.run_button.click()
    assert box.confirmed()


# -- in the editor dialog ----------------------------------------------------------------------


def fill_sagemaker(dialog: SpecEditorDialog) -> None:
    form = dialog.form
    form.editor("name").set_value("my-job")
    form.editor("source.source_dir").set_value("code")
    form.editor("source.entry_point").set_value("train.py")
    form.editor("compute.backend").set_value("sagemaker")
    form.editor("compute.instance_type").set_value("ml.m5.xlarge")
    form.editor("compute.instance_count").set_value(2)
    form.editor("max_runtime_seconds").set_value(7200)
    form.editor("sagemaker.region").set_value("us-east-1")
    form.editor("sagemaker.role_arn").set_value(ROLE_ARN)
    form.editor("sagemaker.s3_prefix").set_value("s3://my-bucket/jobs")
    form.validate()


def test_the_editor_shows_the_cost_when_the_backend_is_sagemaker(qtbot: Any, project: Path) -> None:
    dialog = SpecEditorDialog(project)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.cost_label.isHidden()
    assert not dialog.export_button.isEnabled()

    fill_sagemaker(dialog)

    assert dialog.cost_label.isVisible()
    assert "<b>$0.46/h</b>" in dialog.cost_label.text()
    assert dialog.export_button.isEnabled()

    dialog.form.editor("compute.instance_count").set_value(1)
    dialog.form.validate()
    assert "<b>$0.23/h</b>" in dialog.cost_label.text()

    dialog.form.editor("compute.backend").set_value("local-process")
    dialog.form.validate()
    assert dialog.cost_label.isHidden()

    dialog.form.editor("name").set_value("-bad-")
    dialog.form.validate()
    assert not dialog.export_button.isEnabled()


def test_the_export_button_opens_the_export_of_the_form(qtbot: Any, project: Path) -> None:
    dialog = SpecEditorDialog(project)
    qtbot.addWidget(dialog)
    dialog.show()
    fill_sagemaker(dialog)

    dialog.export_button.click()

    export = dialog.export_dialog
    assert isinstance(export, ExportDialog) and export.isVisible() and not export.isModal()
    qtbot.waitUntil(lambda: export.ready)
    request = json.loads(export.text("request"))
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert request["RoleArn"] == ROLE_ARN
    assert request["OutputDataConfig"]["S3OutputPath"].startswith("s3://my-bucket/jobs")
    assert export.error_label.isHidden()
    # The request JSON names files nothing has uploaded yet: the dialog says which, and where.
    assert not export.notes_label.isHidden() and "upload" in export.notes_label.text().lower()
    assert QThreadPool.globalInstance().waitForDone(10_000)


def test_export_errors_show_inline_without_a_traceback(
    qtbot: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(_spec: JobSpec) -> Any:
        raise AwsError("the image is in eu-west-1 but the job runs in us-east-1")

    monkeypatch.setattr(export_module, "export_texts", fail)
    export = ExportDialog(make_spec(project))
    qtbot.addWidget(export)

    qtbot.waitUntil(lambda: not export.error_label.isHidden())
    assert QThreadPool.globalInstance().waitForDone(10_000)

    assert "the image is in eu-west-1" in export.error_label.text()
    assert "Traceback" not in export.error_label.text()
    assert not export.ready
    assert not export.copy_button.isEnabled() and not export.save_button.isEnabled()


def test_a_spec_with_problems_is_not_exported(
    qtbot: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a: shown.append(text))
    dialog = SpecEditorDialog(project)
    qtbot.addWidget(dialog)
    fill_sagemaker(dialog)
    dialog.form.editor("name").set_value("-bad-")

    assert dialog.export() is None
    assert shown and dialog.export_dialog is None


def test_the_export_of_a_spec_for_a_batch_queue_shows_the_service_job(
    qtbot: Any, project: Path
) -> None:
    """A spec naming an AWS Batch training queue is submitted as a Batch service job: the
    dialog's request tab and its how-to line say so, not create-training-job."""
    spec = make_spec(
        project,
        sagemaker={
            "role_arn": ROLE_ARN,
            "s3_prefix": "s3://my-bucket/jobs",
            "batch_queue": "ml-training-queue",
        },
    )
    export = ExportDialog(spec)
    qtbot.addWidget(export)

    qtbot.waitUntil(lambda: export.ready, timeout=30_000)

    titles = [export.tabs.tabText(i) for i in range(export.tabs.count())]
    assert "SubmitServiceJob request (JSON)" in titles
    status = export.status_label.text()
    assert "ml-training-queue" in status and "aws batch submit-service-job" in status
    assert "create-training-job" not in status
    request = json.loads(export.text("request"))
    assert request["jobQueue"] == "ml-training-queue"
    assert QThreadPool.globalInstance().waitForDone(10_000)
