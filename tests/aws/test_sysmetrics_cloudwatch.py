"""SageMaker jobs' system metrics from CloudWatch and TensorBoard scalars from S3 (issue 15,
items 4 and 5), against the moto server: put there as SageMaker would, read while the job runs,
each stored once."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from moto_support import Script
from sm_helpers import make_spec, service, wait_for

from trainer_gui.core.metrics import tensorboard as tb
from trainer_gui.core.runners import sysmetrics

NAMESPACE = "/aws/sagemaker/TrainingJobs"


def _put(aws: Any, job: str, host: str, metric: str, value: float, at: float) -> None:
    aws.client("cloudwatch").put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "Host", "Value": f"{job}/{host}"}],
                "Timestamp": datetime.fromtimestamp(at, timezone.utc),
                "Value": value,
                "Unit": "Percent",
            }
        ],
    )


def test_cloudwatch_instance_metrics_per_host_are_read_once(aws: Any) -> None:
    now = time.time() - 600
    _put(aws, "job-a", "algo-1", "CPUUtilization", 150.0, now)
    _put(aws, "job-a", "algo-2", "CPUUtilization", 90.0, now)
    _put(aws, "job-a", "algo-1", "MemoryUtilization", 40.0, now)
    _put(aws, "job-a", "algo-1", "GPUUtilization", 70.0, now)
    _put(aws, "job-b", "algo-1", "CPUUtilization", 5.0, now)  # another job: not ours
    sampler = sysmetrics.CloudWatchSampler(aws.client("cloudwatch"), "job-a", ["algo-1", "algo-2"])
    samples, offsets = sampler.poll()
    found = sorted((s.host, s.name, s.value) for s in samples)
    assert found == [
        ("algo-1", sysmetrics.CPU_PERCENT, 150.0),
        ("algo-1", sysmetrics.GPU_UTIL, 70.0),
        ("algo-1", sysmetrics.MEMORY_PERCENT, 40.0),
        ("algo-2", sysmetrics.CPU_PERCENT, 90.0),
    ]
    assert set(offsets) == {("algo-1", "sys:cloudwatch"), ("algo-2", "sys:cloudwatch")}
    sampler.commit(offsets)
    assert sampler.poll() == ([], {})  # nothing new: nothing again
    _put(aws, "job-a", "algo-1", "CPUUtilization", 120.0, now + 60)
    samples, newer = sampler.poll()
    assert [(s.host, s.value) for s in samples] == [("algo-1", 120.0)]
    # A follower that takes over starts from the stored offsets, not from the beginning.
    again = sysmetrics.CloudWatchSampler(
        aws.client("cloudwatch"), "job-a", ["algo-1", "algo-2"], {**offsets, **newer}
    )
    assert again.poll() == ([], {})


def _events(steps: range) -> bytes:
    return b"".join(
        tb.frame_record(tb.encode_scalar_event("loss", 1.0 / (s + 1), s, 1000.0 + s)) for s in steps
    )


def test_a_sagemaker_job_with_tensorboard_gets_its_scalars_and_instance_metrics_live(
    aws: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sysmetrics.CloudWatchSampler, "interval", 0.5)  # not CloudWatch's 60 s
    hold = threading.Event()
    aws.sim.script("mnist", Script(hold=hold))
    svc = service()
    store = svc.store
    try:
        handle = svc.submit(make_spec(project, tensorboard=True))
        wait_for(lambda: handle.job_id in aws.requests, 30)
        request = aws.requests[handle.job_id]
        config = request["TensorBoardOutputConfig"]
        assert config["LocalPath"] == "/opt/ml/output/tensorboard"
        assert config["S3OutputPath"].endswith(f"/{handle.job_id}/tensorboard")
        bucket, _, prefix = config["S3OutputPath"][5:].partition("/")
        key = f"{prefix}/{handle.job_id}/tensorboard-output/events.out.tfevents.1.algo-1"
        s3 = aws.client("s3")
        # Uploaded while it runs: first with half of the third record, then grown.
        whole = _events(range(5))
        cut = len(_events(range(2))) + 9
        s3.put_object(Bucket=bucket, Key=key, Body=whole[:cut])
        _put(aws, handle.job_id, "algo-1", "CPUUtilization", 180.0, time.time())
        wait_for(lambda: len(store.metric_samples(handle.job_id, "tb/loss")) == 2, 30)
        wait_for(lambda: store.metric_samples(handle.job_id, sysmetrics.CPU_PERCENT), 30)
        assert svc.get(handle.job_id).status not in ("Completed", "Failed")  # live
        s3.put_object(Bucket=bucket, Key=key, Body=whole)
        wait_for(lambda: len(store.metric_samples(handle.job_id, "tb/loss")) == 5, 30)
        hold.set()
        handle.wait(30)
        record = svc.get(handle.job_id)
        assert record.status == "Completed", record.failure_reason
        loss = [s for _, s in store.metric_samples(record.id, "tb/loss")]
        assert [(s.step, s.wall_time, s.host) for s in loss] == [
            (i, 1000.0 + i, "algo-1") for i in range(5)
        ]
        cpu = [s for _, s in store.metric_samples(record.id, sysmetrics.CPU_PERCENT)]
        assert [(s.host, s.value) for s in cpu] == [("algo-1", 180.0)]
        # A follower that takes over the (finished) job reads nothing twice.
        offsets = store.get_offsets(record.id)
        assert ("algo-1", "sys:cloudwatch") in offsets
        assert offsets[("algo-1", "tb:events.out.tfevents.1.algo-1")] == str(len(whole))
    finally:
        hold.set()
        svc.shutdown()


def test_without_tensorboard_the_request_has_no_tensorboard_config(aws: Any, project: Path) -> None:
    svc = service()
    try:
        handle = svc.submit(make_spec(project))
        handle.wait(30)
        assert "TensorBoardOutputConfig" not in aws.requests[handle.job_id]
    finally:
        svc.shutdown()


def test_a_take_over_reads_no_cloudwatch_point_or_tensorboard_scalar_twice(
    aws: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sysmetrics.CloudWatchSampler, "interval", 0.2)
    hold = threading.Event()
    aws.sim.script("mnist", Script(hold=hold, outcome="hang"))
    first = service()
    handle = first.submit(make_spec(project, tensorboard=True))
    wait_for(lambda: handle.job_id in aws.requests, 30)
    uri = aws.requests[handle.job_id]["TensorBoardOutputConfig"]["S3OutputPath"]
    bucket, _, prefix = uri[5:].partition("/")
    key = f"{prefix}/run/events.out.tfevents.2"
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=_events(range(3)))
    _put(aws, handle.job_id, "algo-1", "MemoryUtilization", 30.0, time.time() - 120)
    store = first.store
    wait_for(lambda: len(store.metric_samples(handle.job_id, "tb/run/loss")) == 3, 30)
    wait_for(lambda: store.metric_samples(handle.job_id, sysmetrics.MEMORY_PERCENT), 30)
    first.shutdown()
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=_events(range(6)))
    _put(aws, handle.job_id, "algo-1", "MemoryUtilization", 35.0, time.time() - 60)
    second = service()
    try:
        assert second.recover([handle.job_id]) == [handle.job_id]
        other = second.store
        wait_for(lambda: len(other.metric_samples(handle.job_id, "tb/run/loss")) >= 6, 30)
        wait_for(lambda: len(other.metric_samples(handle.job_id, sysmetrics.MEMORY_PERCENT)) >= 2)
        time.sleep(1.0)  # several more polls: nothing may come twice
        steps = [s.step for _, s in other.metric_samples(handle.job_id, "tb/run/loss")]
        assert steps == list(range(6))
        memory = [s.value for _, s in other.metric_samples(handle.job_id, "sys/memory_percent")]
        assert memory == [30.0, 35.0]
    finally:
        second.stop(handle.job_id, wait=30)
        second.shutdown()


def test_without_permission_for_cloudwatch_it_is_asked_once_per_job() -> None:
    class Denied:
        calls = 0

        def get_metric_data(self, **_: Any) -> Any:
            Denied.calls += 1
            raise RuntimeError("An error occurred (AccessDenied) when calling GetMetricData")

    sent: list[Any] = []
    side = sysmetrics.CloudSideMetrics("job", sent.append, lambda _: Denied(), "j", ["algo-1"], {})
    for final in (False, False, True):
        side.poll({"TrainingJobStatus": "InProgress"}, final=final)
    assert Denied.calls == 1 and sent == []


def test_a_shared_tensorboard_path_gives_each_job_only_its_own_files(aws: Any) -> None:
    """SDK V3 gives every job of a trainer one S3OutputPath; SageMaker writes each job's files
    below `<path>/<job>/tensorboard-output/`, so a job reads its folder and no other."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="tb-shared")
    base = "team/spirals"
    for job, steps in (("job-a", range(3)), ("job-b", range(7))):
        key = f"{base}/{job}/tensorboard-output/events.out.tfevents.1.algo-1"
        s3.put_object(Bucket="tb-shared", Key=key, Body=_events(steps))

    for job, count in (("job-a", 3), ("job-b", 7)):
        source = tb.S3Source(s3, f"s3://tb-shared/{base}", job)
        follower = tb.EventFollower(source, "algo-1", {})
        samples = [s for batch in follower.poll() for s in batch.samples if s.name == "tb/loss"]
        assert [s.step for s in samples] == list(range(count)), job
