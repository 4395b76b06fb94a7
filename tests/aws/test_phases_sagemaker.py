"""A SageMaker run's phases: uploads, the cloud's secondary statuses, the first line, the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moto_support import Script
from sm_helpers import make_spec, service

from trainer_gui.core.runners.events import Phase


def test_phases_follow_uploads_secondary_statuses_and_the_model_download(
    aws: Any, project: Path
) -> None:
    aws.sim.script("mnist", Script(lines=lambda host: [f"epoch={i} loss=0.5" for i in range(3)]))
    svc = service()
    spec = make_spec(project, metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}])
    handle = svc.submit(spec)
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    stored = svc.store.phases(record.id)
    assert [(e.phase, e.text) for e in stored] == [
        (Phase.QUEUED, "queued"),
        (Phase.PREPARING, "checking AWS credentials and settings"),
        (Phase.PREPARING, "uploading the code to S3"),
        (Phase.PREPARING, "uploading channel 'train' to S3"),
        (Phase.STARTING, "creating the training job"),
        (Phase.STARTING, "starting the training job"),
        (Phase.STARTING, "downloading the input data"),
        (Phase.STARTING, "starting the training container"),
        (Phase.RUNNING, "running: first log line"),
        (Phase.FIRST_METRIC, "first metric"),
        (Phase.UPLOADING, "uploading the model to S3"),
        (Phase.DOWNLOADING, "downloading the artifacts"),
        (Phase.DONE, "done"),
    ]
    by_phase = {e.phase: e for e in stored}
    # The cloud's own clocks: a secondary status starts when SageMaker says it started, the
    # first line when CloudWatch stamped it.
    assert by_phase[Phase.RUNNING].at >= by_phase[Phase.STARTING].at
    assert by_phase[Phase.DONE].at == record.ended_at
