"""The AWS failures people meet, each with one clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from moto_support import Script
from sm_helpers import make_spec, service

from trainer_gui.core.aws.errors import (
    AwsAccessDenied,
    AwsCredentialsError,
    AwsError,
    ImageRegionError,
)
from trainer_gui.core.aws.session import AwsSession


def _submit(svc: Any, spec: Any) -> Any:
    handle = svc.submit(spec)
    handle.wait(30)
    return svc.get(handle.job_id)


def test_expired_credentials_are_reported_before_anything_starts(aws: Any, project: Path) -> None:
    aws.faults.error(
        "sts:GetCallerIdentity",
        400,
        "ExpiredToken",
        "The security token included in the request is expired",
    )
    svc = service()
    with pytest.raises(AwsCredentialsError, match="credentials have expired"):
        svc.submit(make_spec(project))
    assert svc.store.list_jobs() == []
    assert aws.faults.count("s3:PutObject") == 0


def test_credentials_expiring_during_submit_fail_the_job_with_that_reason(
    aws: Any, project: Path
) -> None:
    aws.faults.error(
        "sagemaker:CreateTrainingJob",
        400,
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )
    record = _submit(service(), make_spec(project))
    assert record.status == "Failed"
    assert "your AWS credentials have expired" in (record.failure_reason or "")
    assert "aws sso login" in (record.failure_reason or "")


def test_missing_credentials_say_how_to_set_them_up(
    aws: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(AwsCredentialsError, match="no AWS credentials found"):
        service().submit(make_spec(project))
    with pytest.raises(AwsCredentialsError, match="aws sso login"):
        AwsSession("sso-dev").identity()  # an SSO profile never logged in


def test_after_fixing_credentials_the_next_submit_works(
    aws: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto_support import FAKE_CREDENTIALS

    svc = service()
    for key in FAKE_CREDENTIALS:
        monkeypatch.delenv(key)
    with pytest.raises(AwsCredentialsError):
        svc.submit(make_spec(project))
    for key, value in FAKE_CREDENTIALS.items():  # the user logs in; the app keeps running
        monkeypatch.setenv(key, value)
    assert _submit(svc, make_spec(project)).status == "Completed"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's real backoff and adaptive rate limiting, minus their seconds of sleeping."""
    from botocore.retries.bucket import TokenBucket
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
    monkeypatch.setattr(TokenBucket, "acquire", lambda self, amount=1, block=True: True)


def test_clients_retry_in_adaptive_mode(aws: Any) -> None:
    retries = AwsSession().client("sagemaker").meta.config.retries
    assert retries == {"mode": "adaptive", "total_max_attempts": 4}


@pytest.mark.usefixtures("fast_retries")
def test_throttling_is_retried_adaptively_then_succeeds(aws: Any, project: Path) -> None:
    aws.faults.error(
        "sagemaker:CreateTrainingJob", 400, "ThrottlingException", "Rate exceeded", times=2
    )
    aws.faults.error(
        "sagemaker:DescribeTrainingJob", 400, "ThrottlingException", "Rate exceeded", times=3
    )
    record = _submit(service(), make_spec(project))
    assert record.status == "Completed", record.failure_reason
    assert aws.faults.count("sagemaker:CreateTrainingJob") == 3


@pytest.mark.usefixtures("fast_retries")
def test_throttling_that_never_ends_says_so(aws: Any, project: Path) -> None:
    aws.faults.error(
        "sagemaker:CreateTrainingJob", 400, "ThrottlingException", "Rate exceeded", times=99
    )
    record = _submit(service(), make_spec(project))
    assert record.status == "Failed"
    assert "throttling" in (record.failure_reason or "")
    assert aws.faults.count("sagemaker:CreateTrainingJob") == 4  # TRAINER_GUI_AWS_MAX_ATTEMPTS


def test_access_denied_names_the_refused_action(aws: Any, project: Path) -> None:
    aws.faults.error(
        "sagemaker:CreateTrainingJob",
        400,
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/Dev/me is not authorized to perform: "
        "iam:PassRole on resource: arn:aws:iam::123456789012:role/SageMakerExecution",
    )
    record = _submit(service(), make_spec(project))
    assert record.status == "Failed"
    assert "may not perform iam:PassRole" in (record.failure_reason or "")
    # S3 says only "Access Denied": the action comes from the operation
    aws.faults.error("s3:PutObject", 403, "AccessDenied", "Access Denied")
    record = _submit(service(), make_spec(project))
    assert "may not perform s3:PutObject on sagemaker-us-east-1-123456789012" in (
        record.failure_reason or ""
    )


def test_access_denied_is_a_typed_error_with_the_action(aws: Any) -> None:
    aws.faults.error("sagemaker:ListTrainingJobs", 400, "AccessDeniedException", "nope")
    from trainer_gui.core.aws.remote_jobs import list_training_jobs

    with pytest.raises(AwsAccessDenied) as info:
        list_training_jobs(AwsSession())
    assert info.value.action == "sagemaker:ListTrainingJobs"


def test_a_missing_bucket_is_named(aws: Any, project: Path) -> None:
    spec = make_spec(project, sagemaker={"s3_prefix": "s3://no-such-bucket-42/jobs"})
    record = _submit(service(), spec)
    assert record.status == "Failed"
    assert "the S3 bucket 'no-such-bucket-42' does not exist" in (record.failure_reason or "")


def test_a_used_up_quota_is_named(aws: Any, project: Path) -> None:
    aws.faults.error(
        "sagemaker:CreateTrainingJob",
        400,
        "ResourceLimitExceeded",
        "The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, "
        "with current utilization of 0 Instances and a request delta of 1 Instances.",
    )
    record = _submit(service(), make_spec(project, compute={"instance_type": "ml.p3.2xlarge"}))
    assert record.status == "Failed"
    assert "the quota 'ml.p3.2xlarge for training job usage' is used up" in (
        record.failure_reason or ""
    )
    assert "Service Quotas" in (record.failure_reason or "")


def test_an_image_in_another_region_is_refused_before_any_upload(aws: Any, project: Path) -> None:
    image = "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.5.1-gpu-py311"
    svc = service()
    with pytest.raises(ImageRegionError, match="is in eu-west-1 but the job runs in us-east-1"):
        svc.submit(make_spec(project, image=image))
    assert aws.faults.count("s3:PutObject") == 0
    with pytest.raises(AwsError, match="not an Amazon ECR image URI"):
        svc.submit(make_spec(project, image="trainer-gui/train-cpu:latest"))


def test_credentials_in_the_job_environment_are_refused(aws: Any, project: Path) -> None:
    spec = make_spec(project, environment={"AWS_SECRET_ACCESS_KEY": "x"})
    with pytest.raises(Exception, match="must not be passed to a SageMaker job"):
        service().submit(spec)


def test_a_network_loss_while_following_does_not_fail_the_job(aws: Any, project: Path) -> None:
    aws.sim.script("mnist", Script(lines=lambda h: [f"loss={i}" for i in range(5)]))
    aws.faults.drop("sagemaker:DescribeTrainingJob", times=6)
    aws.faults.drop("logs:GetLogEvents", times=5)
    record = _submit(service(), make_spec(project))
    assert record.status == "Completed", record.failure_reason


def test_a_stop_during_the_upload_cancels_before_the_job_is_created(
    aws: Any, project: Path, tmp_path: Path
) -> None:
    from sm_helpers import runner

    from trainer_gui.core.runners.base import JobContext

    ctx = JobContext("mnist-stopped", make_spec(project), tmp_path / "run")
    ctx.request_stop()
    events: list[Any] = []
    handle = runner().submit(ctx, events.append)
    assert handle.wait(30) is not None
    assert handle.status is not None and handle.status.value == "Stopped"
    assert aws.faults.count("sagemaker:CreateTrainingJob") == 0


def test_credentials_expiring_while_following_stop_following_not_the_job(
    aws: Any, project: Path
) -> None:
    from trainer_gui.core.joblog import JOB_LOG

    aws.sim.script("mnist", Script(outcome="hang"))
    aws.faults.error(
        "sagemaker:DescribeTrainingJob",
        400,
        "ExpiredTokenException",
        "The token is expired",
        times=99,
    )
    svc = service()
    handle = svc.submit(make_spec(project))
    assert handle.wait(30) is not None
    record = svc.get(handle.job_id)
    assert record.status == "Starting"  # not Failed: the job runs on in the cloud
    text = (Path(record.run_dir) / "logs" / JOB_LOG).read_text()
    assert "credentials have expired" in text and "keeps running on SageMaker" in text
    # Let go of the job, so a later recover here (or another process) can follow it again.
    assert not svc.is_followed_here(handle.job_id)
    from trainer_gui.core.locks import ProcessLock

    lock = ProcessLock(Path(record.run_dir) / ".follower.lock")
    assert lock.acquire()
    lock.release()


def test_a_full_disk_while_following_stops_following_not_the_cloud_job(
    aws: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job runs in the cloud: a full disk here stops the ingest (no endless retries), the
    job is not failed, and following resumes from the stored offsets once there is room."""
    import errno

    from trainer_gui.core.store import Store

    aws.sim.script("mnist", Script(outcome="hang"))
    real = Store.record_batch

    def full(self: Store, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    svc = service()
    monkeypatch.setattr(Store, "record_batch", full)
    handle = svc.submit(make_spec(project))
    assert handle.wait(60) is not None  # following ended by itself
    record = svc.get(handle.job_id)
    assert record.status not in ("Failed", "Completed", "Stopped")  # it runs on, in the cloud
    assert not svc.is_followed_here(handle.job_id)

    monkeypatch.setattr(Store, "record_batch", real)
    assert svc.recover([handle.job_id]) == [handle.job_id]  # room again: followed again
    svc.shutdown()
