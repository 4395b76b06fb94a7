"""AWS Batch training queues: the CreateTrainingJob request submitted as a Batch service job.

A spec with `sagemaker.batch_queue` is not created on SageMaker directly: the very request the
app would send to CreateTrainingJob goes to Batch's SubmitServiceJob (serviceJobType
SAGEMAKER_TRAINING) as `serviceRequestPayload`, and Batch creates the training job once the
queue lets it run. As the SageMaker Python SDK V3 does (`sagemaker.train.aws_batch`:
`TrainingQueue.submit`), the payload's Tags move to the service job's tags, the job name is the
training job name, the retry strategy and the attempt timeout have the SDK's defaults (the
spec may set the attempts and its own `evaluateOnExit` rules).

While the service job waits (SUBMITTED, PENDING, RUNNABLE) there is no training job; from
SCHEDULED on, `latestAttempt.serviceResourceId` holds the training job's ARN (the SDK reads the
training job's name from it), and the job is followed like any training job.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from trainer_gui.core.aws.errors import aws_errors
from trainer_gui.core.spec.model import BatchRetryRule, JobSpec

SERVICE_JOB_TYPE = "SAGEMAKER_TRAINING"
#: The SDK's attempt timeout (one day), raised for jobs that may run longer.
DEFAULT_ATTEMPT_SECONDS = 86400
#: The SDK's retry strategy: one attempt, retried only on SageMaker's internal errors.
DEFAULT_RETRY_STRATEGY: dict[str, Any] = {
    "attempts": 1,
    "evaluateOnExit": [
        {
            "action": "RETRY",
            "onStatusReason": "Received status from SageMaker:InternalServerError: "
            "We encountered an internal error. Please try again.",
        },
        {"action": "EXIT", "onStatusReason": "*"},
    ],
}
#: Batch states without a training job yet (the SDK's `_no_training_job_status`, plus PENDING).
WAITING = frozenset({"SUBMITTED", "PENDING", "RUNNABLE"})
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
SUBMIT_FILE = "submit-service-job.json"


def attempt_seconds(request: dict[str, Any]) -> int:
    """Batch's attempt timeout: the SDK's day, or the training job's own limits if longer
    (Batch must not end an attempt SageMaker would still let run)."""
    stopping = request.get("StoppingCondition") or {}
    longest = max(
        int(stopping.get("MaxRuntimeInSeconds") or 0),
        int(stopping.get("MaxWaitTimeInSeconds") or 0),
    )
    return max(DEFAULT_ATTEMPT_SECONDS, longest + 3600 if longest else 0)


def retry_strategy(
    attempts: int | None = None, rules: Sequence[BatchRetryRule] | None = None
) -> dict[str, Any]:
    """The SDK's retry strategy, with `attempts` when the spec sets them and its own
    `evaluateOnExit` rules, in their order, in place of the SDK's when it gives any."""
    strategy = copy.deepcopy(DEFAULT_RETRY_STRATEGY)
    if attempts is not None:
        strategy["attempts"] = int(attempts)
    if rules:
        strategy["evaluateOnExit"] = [
            {"action": rule.action, "onStatusReason": rule.on_status_reason} for rule in rules
        ]
    return strategy


def spec_retry_strategy(spec: JobSpec) -> dict[str, Any]:
    """The retry strategy a spec's Batch settings ask for."""
    settings = spec.sagemaker
    return retry_strategy(settings.batch_retry_attempts, settings.batch_retry_rules)


def submit_request(
    training_request: dict[str, Any],
    queue: str,
    priority: int | None = None,
    share_identifier: str | None = None,
    *,
    quota_share: str | None = None,
    attempts: int | None = None,
    preemption_retries: int | None = None,
    rules: Sequence[BatchRetryRule] | None = None,
) -> dict[str, Any]:
    """The SubmitServiceJob request carrying `training_request` (a CreateTrainingJob request)."""
    payload = dict(training_request)
    tags = payload.pop("Tags", None)
    request: dict[str, Any] = {
        "jobName": str(payload["TrainingJobName"]),
        "jobQueue": queue,
        "retryStrategy": retry_strategy(attempts, rules),
        "serviceJobType": SERVICE_JOB_TYPE,
        "serviceRequestPayload": json.dumps(payload),
        "timeoutConfig": {"attemptDurationSeconds": attempt_seconds(payload)},
    }
    if priority is not None:
        request["schedulingPriority"] = int(priority)
    if share_identifier:
        request["shareIdentifier"] = share_identifier
    if quota_share:
        request["quotaShareName"] = quota_share
    if preemption_retries is not None:
        request["preemptionConfiguration"] = {
            "preemptionRetriesBeforeTermination": int(preemption_retries)
        }
    if tags:
        request["tags"] = {str(t["Key"]): str(t["Value"]) for t in tags}
    return request


def spec_submit_request(spec: JobSpec, training_request: dict[str, Any]) -> dict[str, Any]:
    """`submit_request` with the spec's queue and Batch settings."""
    settings = spec.sagemaker
    if not settings.batch_queue:
        raise ValueError("the spec names no AWS Batch queue")
    return submit_request(
        training_request,
        settings.batch_queue,
        settings.batch_priority,
        settings.batch_share_identifier,
        quota_share=settings.batch_quota_share,
        attempts=settings.batch_retry_attempts,
        preemption_retries=settings.batch_preemption_retries,
        rules=settings.batch_retry_rules,
    )


def queue_region(queue: str) -> str | None:
    """The region of a queue ARN; None for a queue name (it lives in the job's region)."""
    if queue.startswith("arn:"):
        parts = queue.split(":")
        return parts[3] if len(parts) > 5 else None
    return None


def training_job_of(desc: dict[str, Any]) -> tuple[str, str] | None:
    """(name, ARN) of the training job a DescribeServiceJob answer names, if it has one."""
    attempt = desc.get("latestAttempt") or {}
    arn = str((attempt.get("serviceResourceId") or {}).get("value") or "")
    if not arn:
        return None
    name = arn.split("training-job/", 1)[1] if "training-job/" in arn else arn.rsplit("/", 1)[-1]
    return name, arn


def failure_reason(desc: dict[str, Any]) -> str:
    """Why a FAILED service job failed: its statusReason, else its last attempt's."""
    reason = desc.get("statusReason")
    if not reason:
        attempts = desc.get("attempts") or []
        reason = next(
            (a.get("statusReason") for a in reversed(attempts) if a.get("statusReason")), None
        )
    queue = desc.get("jobQueue") or "the queue"
    return f"AWS Batch: {reason}" if reason else f"the AWS Batch job failed in {queue}"


def submit(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    with aws_errors(
        f"submitting {request['jobName']} to the AWS Batch queue {request['jobQueue']}"
    ):
        return dict(client.submit_service_job(**request))


def describe(client: Any, job_id: str) -> dict[str, Any]:
    return dict(client.describe_service_job(jobId=job_id))


def terminate(client: Any, job_id: str, reason: str) -> None:
    with aws_errors(f"terminating the AWS Batch job {job_id}"):
        client.terminate_service_job(jobId=job_id, reason=reason[:1024] or "Stopped by the user")
