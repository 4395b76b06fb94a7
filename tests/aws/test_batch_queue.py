"""A spec naming an AWS Batch training queue: the CreateTrainingJob request goes to Batch's
SubmitServiceJob, the job is followed through Batch's states into the training job's logs,
metrics and model, stops and fails the Batch way, and is taken over after a restart."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from moto_support import Script
from sdk_envs import TO_MOTO, sdk_python
from sm_helpers import IMAGE, create_sagemaker_role, make_spec, service, wait_for

from trainer_gui.cli.main import main
from trainer_gui.core.aws import batch
from trainer_gui.core.errors import SpecError
from trainer_gui.core.joblog import JOB_LOG, parse_log_line
from trainer_gui.core.spec import save_spec, spec_to_dict
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

QUEUE = "ml-training"
FAIR_QUEUE = "fair-share"
LOSS = [{"name": "loss", "regex": r"loss=([0-9.]+)"}]


def _lines(host: int) -> list[str]:
    return [f"epoch={i} loss={1.0 / (i + host):.4f}" for i in range(12)]


def _log(record: Any) -> list[tuple[str, str]]:
    out = []
    for line in (Path(record.run_dir) / "logs" / JOB_LOG).read_text().splitlines():
        parsed = parse_log_line(line)
        assert parsed is not None
        out.append((parsed[1], parsed[3]))
    return out


def _history(svc: JobService, job: str) -> list[tuple[str, str]]:
    return [(e.status, e.message) for e in svc.store.status_history(job)]


def _waiting(svc: JobService, job: str) -> bool:
    """The job shows Batch's RUNNABLE state (no training job yet)."""
    return ("Pending", "Batch: RUNNABLE") in _history(svc, job)


def _queued(project: Path, **sagemaker: Any) -> Any:
    settings = {"batch_queue": QUEUE, **sagemaker}
    return make_spec(project, metric_definitions=LOSS, sagemaker=settings)


def _renamed(request: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return dict(json.loads(json.dumps(request).replace(old, new)))


def test_batch_gets_the_very_create_training_job_request_with_priority_and_share(
    aws: Any, project: Path
) -> None:
    tags = {"team": "vision", "cost-center": "42"}
    svc = service()
    direct = svc.submit(make_spec(project, metric_definitions=LOSS, sagemaker={"tags": tags}))
    direct.wait(60)
    sent_directly = aws.requests[direct.job_id]  # what CreateTrainingJob got without a queue

    spec = make_spec(
        project,
        metric_definitions=LOSS,
        sagemaker={
            "tags": tags,
            "batch_queue": FAIR_QUEUE,
            "batch_priority": 7,
            "batch_share_identifier": "vision",
        },
    )
    handle = svc.submit(spec)
    handle.wait(60)
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    (sent,) = aws.batch.requests
    payload = json.loads(sent["serviceRequestPayload"])
    # the same request, with Tags moved to the Batch job as the SDK's TrainingQueue does
    expected = _renamed(sent_directly, direct.job_id, handle.job_id)
    assert expected.pop("Tags") == [{"Key": k, "Value": v} for k, v in tags.items()]
    assert payload == expected
    written = json.loads((Path(record.run_dir) / "create-training-job.json").read_text())
    assert payload == {k: v for k, v in written.items() if k != "Tags"}
    assert sent["jobName"] == handle.job_id == payload["TrainingJobName"]
    assert sent["jobQueue"] == FAIR_QUEUE
    assert sent["serviceJobType"] == "SAGEMAKER_TRAINING"
    assert sent["schedulingPriority"] == 7
    assert sent["shareIdentifier"] == "vision"
    assert sent["tags"] == tags
    assert sent["retryStrategy"] == batch.DEFAULT_RETRY_STRATEGY
    assert sent["timeoutConfig"] == {"attemptDurationSeconds": 86400}
    saved = json.loads((Path(record.run_dir) / batch.SUBMIT_FILE).read_text())
    assert saved == {k: v for k, v in sent.items() if k != "clientToken"}
    assert sent["clientToken"]  # botocore's idempotency token: its retries submit once
    # Batch created the training job from the payload: SageMaker got exactly it
    assert aws.requests[handle.job_id] == payload
    ids = record.backend_ids
    assert ids["batch_job_id"] == aws.batch.by_name(handle.job_id).job_id
    assert ids["batch_queue"] == FAIR_QUEUE
    assert ids["training_job_arn"].endswith(f":training-job/{handle.job_id}")


def test_the_job_waits_as_batch_states_then_follows_the_training_jobs_logs_and_metrics(
    aws: Any, project: Path
) -> None:
    aws.sim.script("mnist", Script(lines=_lines, final_metrics={"loss": 0.08}, lines_per_tick=5))
    gate = aws.batch.hold("mnist")
    svc = service()
    handle = svc.submit(_queued(project, batch_priority=3))
    job = handle.job_id
    wait_for(lambda: _waiting(svc, job))
    assert svc.get(job).status == "Pending"
    assert aws.requests == {}  # no training job while the queue holds the job
    gate.set()
    handle.wait(60)
    record = svc.get(job)
    assert record.status == "Completed", record.failure_reason
    history = _history(svc, job)
    batch_states = [m for _, m in history if m.startswith("Batch: ")]
    assert batch_states[0] in ("Batch: SUBMITTED", "Batch: RUNNABLE")
    assert "Batch: RUNNABLE" in batch_states
    assert batch_states[-1] in ("Batch: SCHEDULED", "Batch: STARTING", "Batch: RUNNING")
    assert len(batch_states) == len(set(batch_states))
    first_training = next(i for i, (s, _) in enumerate(history) if s == "Training")
    assert max(i for i, (_, m) in enumerate(history) if m.startswith("Batch: ")) < first_training
    assert history[-1] == ("Completed", "Training job completed (42 billable seconds)")
    assert _log(record) == [("algo-1", text) for text in _lines(1)]
    values = [s.value for _, s in svc.store.metric_samples(job, "loss")]
    assert values == [float(f"{1.0 / (i + 1):.4f}") for i in range(12)]
    assert record.backend_ids["final_metrics"] == {"loss": 0.08}
    assert (Path(record.run_dir) / "artifacts" / "model" / "model.pt").is_file()
    assert aws.batch.by_name(job).history[-1] == "SUCCEEDED"


def test_stop_while_queued_terminates_the_batch_job_and_no_training_job_starts(
    aws: Any, project: Path
) -> None:
    aws.batch.hold("mnist")
    svc = service()
    handle = svc.submit(_queued(project))
    wait_for(lambda: _waiting(svc, handle.job_id))
    record = svc.stop(handle.job_id, wait=60)
    assert record.status == "Stopped"
    assert record.failure_reason == "Stopped by the user"
    assert aws.batch.calls.count("TerminateServiceJob") == 1
    assert aws.faults.count("sagemaker:StopTrainingJob") == 0
    ended = aws.batch.by_name(handle.job_id)
    assert ended.status == "FAILED" and ended.status_reason == "Stopped by the user"
    assert ended.training_name is None and aws.requests == {}


def test_stop_after_the_training_job_exists_stops_the_training_job(aws: Any, project: Path) -> None:
    aws.sim.script("mnist", Script(outcome="hang"))
    svc = service()
    handle = svc.submit(_queued(project))
    wait_for(lambda: svc.get(handle.job_id).status == "Training")
    record = svc.stop(handle.job_id, wait=60)
    assert record.status == "Stopped"
    assert record.failure_reason == "Stopped by the user"
    assert aws.faults.count("sagemaker:StopTrainingJob") == 1
    assert aws.batch.calls.count("TerminateServiceJob") == 0
    wait_for(lambda: aws.batch.by_name(handle.job_id).status == "FAILED")


def test_a_failed_batch_job_fails_the_job_with_batchs_reason(aws: Any, project: Path) -> None:
    reason = (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - the job needs ml.m5.xlarge, which the "
        "service environment does not offer"
    )
    aws.batch.fail("mnist", reason)
    svc = service()
    handle = svc.submit(_queued(project))
    handle.wait(60)
    record = svc.get(handle.job_id)
    assert record.status == "Failed"
    assert record.failure_reason == f"AWS Batch: {reason}"
    assert aws.requests == {}


def test_a_training_job_batch_retries_for_capacity_is_not_the_end_of_the_job(
    aws: Any, project: Path
) -> None:
    aws.sim.script("mnist", Script(lines=_lines, final_metrics={"loss": 0.08}))
    short = aws.batch.lack_capacity("mnist", times=1)
    svc = service()
    handle = svc.submit(_queued(project))
    job = handle.job_id
    starting = ("Starting", "Starting: Launching requested ML instances")
    wait_for(lambda: starting in _history(svc, job))  # following the first training job
    short.set()  # which then fails for lack of capacity
    handle.wait(60)
    record = svc.get(job)
    assert record.status == "Completed", record.failure_reason
    statuses = [s for s, _ in _history(svc, job)]
    assert "Failed" not in statuses
    assert statuses.count("Training") == 1  # only the second training job trained
    first, second = f"{job}", f"{job}-r1"
    assert record.backend_ids["training_job_name"] == second
    assert record.backend_ids["batch_replaced"] == [
        f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{first}"
    ]
    lines = _log(record)
    retried = [text for host, text in lines if host == "app"]
    assert len(retried) == 1 and "CapacityError" in retried[0] and first in retried[0]
    assert [x for x in lines if x[0] == "algo-1"] == [("algo-1", t) for t in _lines(1)]
    assert record.backend_ids["final_metrics"] == {"loss": 0.08}
    assert (Path(record.run_dir) / "artifacts" / "model" / "model.pt").is_file()
    assert aws.batch.by_name(job).history[-1] == "SUCCEEDED"


def test_a_failed_training_job_of_a_batch_job_fails_with_sagemakers_reason(
    aws: Any, project: Path
) -> None:
    aws.sim.script("mnist", Script(outcome="Failed", failure_reason="AlgorithmError: boom"))
    svc = service()
    handle = svc.submit(_queued(project))
    handle.wait(60)
    record = svc.get(handle.job_id)
    assert record.status == "Failed"
    assert record.failure_reason == "AlgorithmError: boom"
    assert "batch_replaced" not in record.backend_ids  # Batch did not run it again
    by_batch = aws.batch.by_name(handle.job_id)
    assert by_batch.status == "FAILED" and "AlgorithmError: boom" in (by_batch.status_reason or "")


def test_a_queue_batch_does_not_know_fails_with_batchs_message(aws: Any, project: Path) -> None:
    svc = service()
    handle = svc.submit(_queued(project, batch_queue="no-such-queue"))
    handle.wait(60)
    record = svc.get(handle.job_id)
    assert record.status == "Failed"
    assert "no-such-queue" in (record.failure_reason or "")
    assert "does not exist" in (record.failure_reason or "")
    assert "Traceback" not in (record.failure_reason or "")


def test_a_queue_arn_of_another_region_is_refused_before_anything_is_uploaded(
    aws: Any, project: Path
) -> None:
    from trainer_gui.core.errors import UserError

    arn = "arn:aws:batch:eu-west-1:123456789012:job-queue/ml-training"
    svc = service()
    with pytest.raises(UserError, match="the queue is in eu-west-1 but the job runs in us-east-1"):
        svc.submit(_queued(project, batch_queue=arn))
    assert aws.batch.requests == []
    assert "s3:PutObject" not in aws.faults.sent


def test_a_restarted_app_takes_over_a_queued_job_once_and_follows_it_to_the_end(
    aws: Any, project: Path
) -> None:
    aws.sim.script("mnist", Script(lines=_lines, lines_per_tick=4))
    gate = aws.batch.hold("mnist")
    first = service()
    handle = first.submit(_queued(project))
    job = handle.job_id
    wait_for(lambda: _waiting(first, job))
    first.shutdown()  # the app closes while the job waits in the queue
    first.store.close()
    gate.set()
    second = JobService(Store(), runners={"sagemaker": service().runner("sagemaker")})
    assert second.recover() == [job]
    assert second.recover() == []  # followed already: not taken twice
    follower = second.handle(job)
    assert follower is not None
    follower.wait(60)
    record = second.get(job)
    assert record.status == "Completed", record.failure_reason
    assert _log(record) == [("algo-1", text) for text in _lines(1)]
    assert second.store.metric_count(job) == 12
    messages = [m for _, m in _history(second, job)]
    assert messages.count("Batch: RUNNABLE") == 1
    assert len(aws.batch.requests) == 1  # resumed, not submitted again


def test_cli_run_of_a_queued_spec_goes_through_batch(aws: Any, project: Path, capsys: Any) -> None:
    path = save_spec(_queued(project, batch_priority=5), project / "job.yaml")
    assert main(["run", str(path), "--no-preflight"]) == 0
    out = capsys.readouterr().out
    assert "Batch: RUNNABLE" in out or "Batch: SUBMITTED" in out
    (sent,) = aws.batch.requests
    assert sent["schedulingPriority"] == 5
    with Store() as store:
        (record,) = store.list_jobs()
    assert record.status == "Completed"


BAD = {
    "queue with a space": ({"batch_queue": "ml training"}, "sagemaker.batch_queue", "job queue"),
    "queue ARN of another service": (
        {"batch_queue": "arn:aws:sqs:us-east-1:123456789012:ml-training"},
        "sagemaker.batch_queue",
        "job-queue/<name>",
    ),
    "queue name too long": ({"batch_queue": "q" * 129}, "sagemaker.batch_queue", "128"),
    "priority above 9999": (
        {"batch_queue": QUEUE, "batch_priority": 10000},
        "sagemaker.batch_priority",
        "9999",
    ),
    "negative priority": (
        {"batch_queue": QUEUE, "batch_priority": -1},
        "sagemaker.batch_priority",
        "0",
    ),
    "priority as a flag": (
        {"batch_queue": QUEUE, "batch_priority": True},
        "sagemaker.batch_priority",
        "whole number",
    ),
    "share identifier with a hyphen": (
        {"batch_queue": QUEUE, "batch_share_identifier": "team-a"},
        "sagemaker.batch_share_identifier",
        "letters and digits",
    ),
    "share identifier too long": (
        {"batch_queue": QUEUE, "batch_share_identifier": "a" * 256},
        "sagemaker.batch_share_identifier",
        "255",
    ),
    "priority without a queue": (
        {"batch_priority": 3},
        "sagemaker",
        "batch_priority only applies with batch_queue",
    ),
    "quota share with a space": (
        {"batch_queue": QUEUE, "batch_quota_share": "team a"},
        "sagemaker.batch_quota_share",
        "quota share name",
    ),
    "quota share and share identifier": (
        {"batch_queue": QUEUE, "batch_quota_share": "a", "batch_share_identifier": "b"},
        "sagemaker",
        "exclude each other",
    ),
    "eleven attempts": (
        {"batch_queue": QUEUE, "batch_retry_attempts": 11},
        "sagemaker.batch_retry_attempts",
        "10",
    ),
    "no attempt": (
        {"batch_queue": QUEUE, "batch_retry_attempts": 0},
        "sagemaker.batch_retry_attempts",
        "1",
    ),
    "negative preemption retries": (
        {"batch_queue": QUEUE, "batch_preemption_retries": -1},
        "sagemaker.batch_preemption_retries",
        "0",
    ),
    "quota share without a queue": (
        {"batch_quota_share": "vision"},
        "sagemaker",
        "batch_quota_share only applies with batch_queue",
    ),
    "retry rule with an unknown action": (
        {
            "batch_queue": QUEUE,
            "batch_retry_rules": [{"action": "RESTART", "on_status_reason": "*"}],
        },
        "sagemaker.batch_retry_rules[0].action",
        "RETRY or EXIT",
    ),
    "retry rule without a reason": (
        {"batch_queue": QUEUE, "batch_retry_rules": [{"action": "EXIT", "on_status_reason": ""}]},
        "sagemaker.batch_retry_rules[0].on_status_reason",
        "* for any reason",
    ),
    "retry rule with a star inside": (
        {
            "batch_queue": QUEUE,
            "batch_retry_rules": [{"action": "EXIT", "on_status_reason": "Capacity*Error"}],
        },
        "sagemaker.batch_retry_rules[0].on_status_reason",
        "one * at the end",
    ),
    "retry rule pattern too long": (
        {
            "batch_queue": QUEUE,
            "batch_retry_rules": [{"action": "EXIT", "on_status_reason": "x" * 513}],
        },
        "sagemaker.batch_retry_rules[0].on_status_reason",
        "512",
    ),
    "retry rule with a control character": (
        {
            "batch_queue": QUEUE,
            "batch_retry_rules": [{"action": "EXIT", "on_status_reason": "a\tb"}],
        },
        "sagemaker.batch_retry_rules[0].on_status_reason",
        "printable",
    ),
    "retry rule on an exit code": (
        {"batch_queue": QUEUE, "batch_retry_rules": [{"action": "EXIT", "onExitCode": "1"}]},
        "sagemaker.batch_retry_rules[0]",
        "only on_status_reason",
    ),
    "six retry rules": (
        {
            "batch_queue": QUEUE,
            "batch_retry_rules": [
                {"action": "EXIT", "on_status_reason": f"r{i}*"} for i in range(6)
            ],
        },
        "sagemaker.batch_retry_rules",
        "at most 5",
    ),
    "retry rule with one attempt": (
        {"batch_queue": QUEUE, "batch_retry_rules": [{"action": "RETRY", "on_status_reason": "*"}]},
        "sagemaker",
        "batch_retry_attempts of 2 or more",
    ),
    "retry rules without a queue": (
        {"batch_retry_rules": [{"action": "EXIT", "on_status_reason": "*"}]},
        "sagemaker",
        "batch_retry_rules only applies with batch_queue",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_batch_settings_are_refused_naming_the_field(project: Path, case: str) -> None:
    settings, field, hint = BAD[case]
    with pytest.raises(SpecError) as info:
        make_spec(project, sagemaker=settings)
    assert any(p.startswith(field) and hint in p for p in info.value.problems), info.value.problems
    data = spec_to_dict(make_spec(project))
    data["sagemaker"] = {**data["sagemaker"], **settings}
    path = project / "job.yaml"
    path.write_text(json.dumps(data))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["spec", "validate", str(path)])
    assert rc != 0 and field in err.getvalue() and hint in err.getvalue()


def test_good_batch_settings_validate(project: Path) -> None:
    arn = "arn:aws:batch:us-east-1:123456789012:job-queue/ml-training"
    spec = make_spec(
        project,
        sagemaker={"batch_queue": arn, "batch_priority": 0, "batch_share_identifier": "vision1*"},
    )
    assert spec.sagemaker.batch_queue == arn and spec.sagemaker.batch_priority == 0


# -- the export: SDK V3's TrainingQueue, run for real against the same fixture -------------------

REPO = Path(__file__).resolve().parents[2]


def test_the_exported_v3_code_submits_to_the_queue_as_the_app_does(aws: Any, project: Path) -> None:
    from trainer_gui.core.aws.export import export_spec

    tags = {"team": "vision"}
    spec = make_spec(
        project,
        image=IMAGE,
        sagemaker={
            "tags": tags,
            "batch_queue": FAIR_QUEUE,
            "batch_priority": 9,
            "batch_share_identifier": "vision",
        },
    )
    create_sagemaker_role(aws)
    texts, _ = export_spec(spec, ("v3", "request"))
    code = texts["v3"]
    assert "from sagemaker.train.aws_batch.training_queue import TrainingQueue" in code
    assert "queue.submit(trainer, inputs, priority=9, share_identifier='vision')" in code
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    out = subprocess.run(
        [sdk_python(3), "-c", TO_MOTO + code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
        cwd=project,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert out.stdout.strip().splitlines()[-1] == "SUCCEEDED"
    (theirs,) = aws.batch.requests
    ours = json.loads(texts["request"])  # the SubmitServiceJob request the app sends
    envelope = ("jobQueue", "serviceJobType", "retryStrategy", "timeoutConfig", "tags")
    assert {k: theirs.get(k) for k in envelope} == {k: ours.get(k) for k in envelope}
    assert theirs["schedulingPriority"] == ours["schedulingPriority"] == 9
    assert theirs["shareIdentifier"] == ours["shareIdentifier"] == "vision"
    for sent in (theirs, ours):  # the payload is a CreateTrainingJob request, Tags moved out
        payload = json.loads(sent["serviceRequestPayload"])
        assert payload["TrainingJobName"] == sent["jobName"] and "Tags" not in payload
        assert sent["tags"] == tags


def test_the_form_edits_the_batch_settings_and_shows_their_problems(
    qtbot: Any, project: Path
) -> None:
    from PySide6.QtCore import Qt

    from trainer_gui.ui.form.spec_form import SpecForm, SpinField

    form = SpecForm(project)
    qtbot.addWidget(form)
    form.show()
    form.set_spec(make_spec(project))
    priority = form.editor("sagemaker.batch_priority")
    assert isinstance(priority, SpinField)
    assert (priority.spin.minimum(), priority.spin.maximum()) == (-1, 9999)  # -1: (default)
    priority.spin.setFocus()
    qtbot.keyClick(priority.spin, Qt.Key.Key_Up)
    qtbot.keyClick(priority.spin, Qt.Key.Key_Up)
    assert form.validate() is None  # a priority needs a queue: said at the empty queue field
    assert "only applies with batch_queue" in form.problem_text("sagemaker.batch_queue")
    queue = form.editor("sagemaker.batch_queue").edit
    qtbot.keyClicks(queue, "ml training")
    assert form.validate() is None
    assert "is not an AWS Batch job queue" in form.problem_text("sagemaker.batch_queue")
    queue.clear()
    qtbot.keyClicks(queue, QUEUE)
    spec = form.validate()
    assert spec is not None, form.problems
    assert (spec.sagemaker.batch_queue, spec.sagemaker.batch_priority) == (QUEUE, 1)
    assert form.problem_text("sagemaker.batch_queue") == ""


def test_the_form_edits_the_batch_retry_rules_as_a_table_of_action_and_reason(
    qtbot: Any, project: Path
) -> None:
    from PySide6.QtWidgets import QComboBox, QStyleOptionViewItem

    from trainer_gui.ui.form.batch_rules import BatchRetryRulesTable
    from trainer_gui.ui.form.spec_form import SpecForm

    form = SpecForm(project)
    qtbot.addWidget(form)
    form.show()
    form.set_spec(make_spec(project, sagemaker={**QUOTA, "batch_retry_rules": None}))
    rules = form.editor("sagemaker.batch_retry_rules")
    assert isinstance(rules, BatchRetryRulesTable)
    assert not rules.hint.isHidden()  # no rules: the SDK's, said under the empty table
    headers = [rules.table.horizontalHeaderItem(c).text() for c in range(2)]
    assert headers == ["Action", "On status reason"]  # the model's titles

    rules.add_button.click()  # a RETRY row, the cursor in its reason
    rules.table.item(0, 1).setText("Received status from SageMaker:Capacity*Error")
    assert form.validate() is None
    assert "one * at the end" in form.problem_text("sagemaker.batch_retry_rules")
    rules.table.item(0, 1).setText(CAPACITY)
    rules.add_button.click()
    rules.table.item(1, 1).setText("*")
    delegate = rules.table.itemDelegateForColumn(0)  # the action is picked, not typed
    index = rules.table.model().index(1, 0)
    combo = delegate.createEditor(rules.table, QStyleOptionViewItem(), index)
    assert isinstance(combo, QComboBox)
    assert [combo.itemText(i) for i in range(combo.count())] == ["RETRY", "EXIT"]
    combo.setCurrentText("EXIT")
    delegate.setModelData(combo, rules.table.model(), index)

    spec = form.validate()

    assert spec is not None, form.problems
    assert [r.model_dump() for r in spec.sagemaker.batch_retry_rules or []] == [
        {"action": "RETRY", "on_status_reason": CAPACITY},
        {"action": "EXIT", "on_status_reason": "*"},
    ]
    assert rules.hint.isHidden()
    form.set_spec(spec)  # and back: the rows as saved
    assert rules.value() == [r.model_dump() for r in spec.sagemaker.batch_retry_rules or []]


def test_the_exported_v2_code_sends_batch_the_apps_create_training_job_request(
    aws: Any, project: Path
) -> None:
    """SDK V2 builds the app's very CreateTrainingJob request (tests/aws/test_export_sdk.py);
    its TrainingQueue sends that to Batch as the app does: the same payload, field by field."""
    from test_export_sdk import _buckets, _plan, _v2_differences

    from trainer_gui.core.aws.export import export_code
    from trainer_gui.core.aws.request import build_request

    _buckets(aws)
    spec = make_spec(
        project,
        image=IMAGE,
        metric_definitions=LOSS,
        sagemaker={
            "tags": {"team": "vision"},
            "batch_queue": QUEUE,
            "batch_priority": 4,
            "batch_retry_attempts": 2,
            "batch_retry_rules": [{"action": "RETRY", "on_status_reason": CAPACITY}],
        },
    )
    code = export_code(spec, _plan(spec, "mnist-20260101-000000-abcd"), "v2")
    assert "from sagemaker.aws_batch.training_queue import TrainingQueue" in code
    strategy = {"attempts": 2, "evaluateOnExit": [{"action": "RETRY", "onStatusReason": CAPACITY}]}
    assert (
        f"queue.submit(estimator, inputs, job_name=job_name, retry_config={strategy!r}, "
        "priority=4)" in code
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    env["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
    out = subprocess.run(
        [sdk_python(2), "-c", TO_MOTO + code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
        cwd=project,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert out.stdout.strip().splitlines()[-1] == "SUCCEEDED"
    (sent,) = aws.batch.requests
    payload = json.loads(sent["serviceRequestPayload"])
    name = payload["TrainingJobName"]
    assert sent["jobName"] == name and name.startswith("mnist-")
    ours = build_request(spec, _plan(spec, name))
    ours_submit = batch.spec_submit_request(spec, ours)
    assert {k: v for k, v in sent.items() if k != "clientToken"} == {
        **ours_submit,
        "serviceRequestPayload": sent["serviceRequestPayload"],
    }
    ours.pop("Tags")
    payload = _v2_differences(payload, ours)
    for key in sorted(set(payload) | set(ours)):
        assert payload.get(key) == ours.get(key), (key, payload.get(key), ours.get(key))


CAPACITY = "Received status from SageMaker:CapacityError*"
QUOTA = {
    "batch_queue": "quota",
    "batch_quota_share": "vision_team",
    "batch_retry_attempts": 3,
    "batch_preemption_retries": 2,
    # As a user writes them: Batch's own key and a lower-case action are taken too.
    "batch_retry_rules": [
        {"action": "retry", "onStatusReason": CAPACITY},
        {"action": "EXIT", "on_status_reason": "*"},
    ],
}
RULES = [
    {"action": "RETRY", "onStatusReason": CAPACITY},
    {"action": "EXIT", "onStatusReason": "*"},
]


def test_a_quota_share_attempts_and_preemption_retries_reach_batch(aws: Any, project: Path) -> None:
    svc = service()
    handle = svc.submit(make_spec(project, metric_definitions=LOSS, sagemaker=QUOTA))
    handle.wait(60)
    assert svc.get(handle.job_id).status == "Completed", svc.get(handle.job_id).failure_reason
    (sent,) = aws.batch.requests  # botocore validated it against Batch's service model
    assert sent["quotaShareName"] == "vision_team"
    assert sent["preemptionConfiguration"] == {"preemptionRetriesBeforeTermination": 2}
    assert sent["retryStrategy"] == {"attempts": 3, "evaluateOnExit": RULES}
    assert "shareIdentifier" not in sent


def test_the_exported_v3_code_sends_the_quota_share_attempts_and_preemption(
    aws: Any, project: Path
) -> None:
    from trainer_gui.core.aws.export import export_spec

    spec = make_spec(project, image=IMAGE, sagemaker=QUOTA)
    create_sagemaker_role(aws)
    texts, _ = export_spec(spec, ("v3", "v2", "request"))
    assert "quota_share_name='vision_team'" in texts["v3"]
    assert "# Not set here: quota share 'vision_team' and preemption retries 2" in texts["v2"]
    strategy = {"attempts": 3, "evaluateOnExit": RULES}
    assert f"retry_config={strategy!r}" in texts["v2"]  # V2's submit takes it as V3's does
    assert json.loads(texts["request"])["retryStrategy"] == strategy
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    out = subprocess.run(
        [sdk_python(3), "-c", TO_MOTO + texts["v3"]],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
        cwd=project,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    (theirs,) = aws.batch.requests
    ours = json.loads(texts["request"])
    for key in ("jobQueue", "quotaShareName", "preemptionConfiguration", "retryStrategy"):
        assert theirs[key] == ours[key], key
