"""AWS Batch service jobs (SageMaker training queues), added to the moto *server* by `aws`.

moto's Batch knows container jobs only: no SubmitServiceJob, DescribeServiceJob,
ListServiceJobs or TerminateServiceJob. Here those four are routed to BatchResponse and
answered from a small simulation (`aws.batch`):

* job queues of type SAGEMAKER_TRAINING are `queues` (name -> fair-share policy or not; those
  in `quota_queues` have a quota-share policy); an unknown queue, a share identifier on a queue
  without a fair-share policy (or none on one with it), and likewise a quota share name, are
  refused with ClientException, as Batch does;
* every SubmitServiceJob body is captured as sent (`requests`);
* a service job goes SUBMITTED -> RUNNABLE, waits there while its `hold` is not set, then
  SCHEDULED: the simulation creates the training job from `serviceRequestPayload` by calling
  CreateTrainingJob on the server with boto3 (parameter validation on; the `aws` fixture's
  simulator then drives it), and `latestAttempt.serviceResourceId` names its ARN;
  STARTING -> RUNNING (once the training job trains) -> SUCCEEDED, or FAILED with SageMaker's
  failure reason;
* `fail(prefix, reason)` makes matching jobs fail while RUNNABLE (no training job);
* TerminateServiceJob ends a waiting job FAILED with the given reason; a running one stops its
  training job first;
* `lack_capacity(prefix, times)`: the first `times` training jobs of matching jobs fail for
  insufficient capacity; Batch then puts the job back to RUNNABLE (its latestAttempt still
  naming the failed training job) and creates a new one, `<name>-r<n>`, as AWS Batch retries
  capacity failures without counting an attempt.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"

CAPACITY_ERROR = (
    "CapacityError: Unable to provision requested ML compute capacity. Please retry using a "
    "different ML instance type."
)
OPERATIONS = {
    "submitservicejob": "SubmitServiceJob",
    "describeservicejob": "DescribeServiceJob",
    "listservicejobs": "ListServiceJobs",
    "terminateservicejob": "TerminateServiceJob",
}


def _ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ServiceJob:
    job_id: str
    name: str
    queue: str  # the queue's ARN
    request: dict[str, Any]
    status: str = "SUBMITTED"
    status_reason: str | None = None
    created_at: int = field(default_factory=_ms)
    started_at: int | None = None
    stopped_at: int | None = None
    training_name: str | None = None
    training_arn: str | None = None
    terminate_reason: str | None = None
    creating: bool = False
    retries: int = 0  # capacity retries so far
    history: list[str] = field(default_factory=lambda: ["SUBMITTED"])

    @property
    def arn(self) -> str:
        return f"arn:aws:batch:{REGION}:{ACCOUNT}:service-job/{self.job_id}"

    def attempt(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serviceResourceId": {"name": "TrainingJobArn", "value": self.training_arn}
        }
        if self.started_at:
            out["startedAt"] = self.started_at
        if self.stopped_at:
            out["stoppedAt"] = self.stopped_at
        if self.status_reason and self.status in ("SUCCEEDED", "FAILED"):
            out["statusReason"] = self.status_reason
        return out

    def describe(self) -> dict[str, Any]:
        body = self.request
        out: dict[str, Any] = {
            "jobId": self.job_id,
            "jobArn": self.arn,
            "jobName": self.name,
            "jobQueue": self.queue,
            "status": self.status,
            "serviceJobType": body["serviceJobType"],
            "serviceRequestPayload": body["serviceRequestPayload"],
            "createdAt": self.created_at,
            "startedAt": self.started_at or 0,
            "isTerminated": self.terminate_reason is not None,
        }
        for key in (
            "schedulingPriority",
            "shareIdentifier",
            "quotaShareName",
            "preemptionConfiguration",
            "retryStrategy",
            "timeoutConfig",
        ):
            if key in body:
                out[key] = body[key]
        if body.get("tags"):
            out["tags"] = body["tags"]
        if self.status_reason:
            out["statusReason"] = self.status_reason
        if self.stopped_at:
            out["stoppedAt"] = self.stopped_at
        if self.training_arn:
            out["latestAttempt"] = self.attempt()
            out["attempts"] = [self.attempt()]
        return out

    def summary(self) -> dict[str, Any]:
        out = {
            "jobId": self.job_id,
            "jobArn": self.arn,
            "jobName": self.name,
            "serviceJobType": self.request["serviceJobType"],
            "status": self.status,
            "createdAt": self.created_at,
            "isTerminated": self.terminate_reason is not None,
        }
        if self.request.get("shareIdentifier"):
            out["shareIdentifier"] = self.request["shareIdentifier"]
        if self.training_arn:
            out["latestAttempt"] = {
                "serviceResourceId": {"name": "TrainingJobArn", "value": self.training_arn}
            }
        if self.status_reason:
            out["statusReason"] = self.status_reason
        return out


class BatchSimulator:
    """Service jobs of SAGEMAKER_TRAINING queues, advanced on a thread (in-process with the
    server); `sim` is the training-job simulator of the `aws` fixture."""

    def __init__(self, sim: Any, url: str) -> None:
        from moto.backends import get_backend

        self.sim = sim
        self.url = url
        self.sm: Any = get_backend("sagemaker")[ACCOUNT][REGION]
        self.queues: dict[str, bool] = {"ml-training": False, "fair-share": True, "quota": False}
        self.quota_queues = {"quota"}  # queues with a quota-share scheduling policy
        self.jobs: dict[str, ServiceJob] = {}
        self.requests: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.holds: list[tuple[str, threading.Event]] = []
        self.failures: list[tuple[str, str]] = []
        self.capacity: list[tuple[str, int, threading.Event]] = []
        self._short: list[tuple[str, threading.Event]] = []  # training jobs about to fail
        self._client: Any = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.tick = 0.02

    # -- what a test sets up -----------------------------------------------------------------

    def hold(self, name_prefix: str) -> threading.Event:
        """Keep matching jobs RUNNABLE until the returned event is set."""
        event = threading.Event()
        self.holds.append((name_prefix, event))
        return event

    def fail(self, name_prefix: str, reason: str) -> None:
        """Fail matching jobs while RUNNABLE, with `reason` (no training job is created)."""
        self.failures.append((name_prefix, reason))

    def lack_capacity(self, name_prefix: str, times: int = 1) -> threading.Event:
        """The first `times` training jobs of matching jobs fail for lack of capacity, each
        staying at its Starting status until the returned event is set (set: at once)."""
        event = threading.Event()
        self.capacity.append((name_prefix, times, event))
        return event

    def by_name(self, name: str) -> ServiceJob:
        with self._lock:
            return next(j for j in self.jobs.values() if j.name == name)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # -- the operations ----------------------------------------------------------------------

    def _queue_arn(self, queue: str) -> str:
        from moto.batch.exceptions import ClientException

        name = queue.rsplit("job-queue/", 1)[-1] if queue.startswith("arn:") else queue
        if name not in self.queues or (
            queue.startswith("arn:") and f":{REGION}:{ACCOUNT}:" not in queue
        ):
            raise ClientException(f"Job queue {queue} does not exist")
        return f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{name}"

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        from moto.batch.exceptions import ClientException

        queue = self._queue_arn(str(body["jobQueue"]))
        fair = self.queues[queue.rsplit("/", 1)[-1]]
        if fair and not body.get("shareIdentifier"):
            raise ClientException(
                "The shareIdentifier is required for a job queue with a fair-share policy"
            )
        if not fair and body.get("shareIdentifier"):
            raise ClientException(
                "A shareIdentifier can't be specified for a job queue without a fair-share policy"
            )
        quota = queue.rsplit("/", 1)[-1] in self.quota_queues
        if quota and not body.get("quotaShareName"):
            raise ClientException(
                "The quotaShareName is required for a job queue with a quota share policy"
            )
        if not quota and body.get("quotaShareName"):
            raise ClientException(
                "A quotaShareName can't be specified for a job queue without a quota share policy"
            )
        payload = json.loads(body["serviceRequestPayload"])  # Batch refuses what is not JSON
        if not isinstance(payload, dict):
            raise ClientException("serviceRequestPayload is not a JSON object")
        job = ServiceJob(str(uuid.uuid4()), str(body["jobName"]), queue, body)
        with self._lock:
            self.requests.append(body)
            self.jobs[job.job_id] = job
        return {"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id}

    def _find(self, job_id: str) -> ServiceJob:
        from moto.batch.exceptions import ClientException

        job = self.jobs.get(job_id) or next(
            (j for j in self.jobs.values() if j.arn == job_id), None
        )
        if job is None:
            raise ClientException(f"Job {job_id} not found")
        return job

    def describe(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            return self._find(job_id).describe()

    def list(self, body: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue_arn(str(body["jobQueue"]))
        filters = body.get("filters") or []
        status = body.get("jobStatus") or ("RUNNING" if not filters else None)
        with self._lock:
            jobs = [j for j in self.jobs.values() if j.queue == queue]
        for f in filters:
            values = [v.lower() for v in f.get("values", [])]
            if f.get("name") == "JOB_NAME":
                jobs = [
                    j
                    for j in jobs
                    if any(
                        j.name.lower().startswith(v[:-1])
                        if v.endswith("*")
                        else j.name.lower() == v
                        for v in values
                    )
                ]
            elif f.get("name") == "SHARE_IDENTIFIER":
                jobs = [
                    j for j in jobs if (j.request.get("shareIdentifier") or "").lower() in values
                ]
        if status and (not filters or filters[0].get("name") == "SHARE_IDENTIFIER"):
            jobs = [j for j in jobs if j.status == status]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return {"jobSummaryList": [j.summary() for j in jobs]}

    def terminate(self, job_id: str, reason: str) -> None:
        with self._lock:
            job = self._find(job_id)
            if job.status in ("SUCCEEDED", "FAILED"):
                return
            job.terminate_reason = reason
            if job.training_name:
                training = self.sm.training_jobs.get(job.training_name)
                if training is not None and training.training_job_status == "InProgress":
                    self.sim.stop_job(job.training_name)

    # -- the simulation ----------------------------------------------------------------------

    def _set(self, job: ServiceJob, status: str, reason: str | None = None) -> None:
        job.status = status
        job.history.append(status)
        if reason is not None:
            job.status_reason = reason
        if status in ("SUCCEEDED", "FAILED"):
            job.stopped_at = _ms()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            create: list[ServiceJob] = []
            with self._lock:
                for job in list(self.jobs.values()):
                    if job.status in ("SUCCEEDED", "FAILED") or job.creating:
                        continue
                    try:
                        if self._step(job):
                            job.creating = True
                            create.append(job)
                    except Exception as exc:  # keep the simulation alive; tests see no progress
                        print("batch simulator:", repr(exc))
            for job in create:  # outside the lock: the server answers describes meanwhile
                self._create_training_job(job)
            for name, event in list(self._short):
                if event.is_set():
                    self._short.remove((name, event))
                    self._fail_for_capacity(name)

    def _step(self, job: ServiceJob) -> bool:
        """Advance one job; True when its training job is to be created now."""
        if job.status == "SUBMITTED":
            self._set(job, "RUNNABLE")
            return False
        if job.status == "RUNNABLE":
            if job.terminate_reason is not None:
                self._set(job, "FAILED", job.terminate_reason)
                return False
            failure = next((r for p, r in self.failures if job.name.startswith(p)), None)
            if failure is not None:
                self._set(job, "FAILED", failure)
                return False
            held = [e for p, e in self.holds if job.name.startswith(p)]
            return all(e.is_set() for e in held)
        training = self.sm.training_jobs.get(job.training_name) if job.training_name else None
        if training is None:
            return False
        primary = training.training_job_status
        secondary = training.secondary_status
        reason = getattr(training, "failure_reason", "") or ""
        if primary == "Failed" and reason.startswith(CAPACITY_ERROR):
            job.retries += 1  # Batch retries a capacity failure: a new training job
            self._set(job, "RUNNABLE")
            return False
        if job.status == "SCHEDULED":
            job.started_at = _ms()
            self._set(job, "STARTING")
        elif job.status == "STARTING" and (
            secondary in ("Training", "Uploading") or primary != "InProgress"
        ):
            self._set(job, "RUNNING")
        elif job.status == "RUNNING" and primary in ("Completed", "Failed", "Stopped"):
            if primary == "Completed":
                self._set(job, "SUCCEEDED", "Received status from SageMaker: Completed")
            elif primary == "Failed":
                reason = getattr(training, "failure_reason", "") or "Training job failed"
                self._set(job, "FAILED", f"Received status from SageMaker: {reason}")
            else:
                self._set(
                    job, "FAILED", job.terminate_reason or "Received status from SageMaker: Stopped"
                )
        return False

    def _create_training_job(self, job: ServiceJob) -> None:
        import boto3

        try:
            if self._client is None:
                self._client = boto3.client("sagemaker", region_name=REGION, endpoint_url=self.url)
            payload = json.loads(job.request["serviceRequestPayload"])
            if job.retries:
                payload["TrainingJobName"] = f"{payload['TrainingJobName'][:58]}-r{job.retries}"
            out = self._client.create_training_job(**payload)
        except Exception as exc:  # Batch fails the job with SageMaker's answer
            with self._lock:
                self._set(job, "FAILED", f"Received status from SageMaker: {exc}")
                job.creating = False
            return
        name = str(payload["TrainingJobName"])
        short = next(((n, e) for p, n, e in self.capacity if job.name.startswith(p)), None)
        if short is not None and job.retries < short[0]:
            with self.sim._lock:
                self.sim.jobs[name].done = True  # the simulator drives it no further
            self._short.append((name, short[1]))
        with self._lock:
            job.training_name = name
            job.training_arn = str(out["TrainingJobArn"])
            self._set(job, "SCHEDULED")
            job.creating = False

    def _fail_for_capacity(self, name: str) -> None:
        from moto.core.utils import utcnow

        with self.sim._lock:
            self.sim._add(name, "Failed", CAPACITY_ERROR)
            training = self.sm.training_jobs[name]
            training.training_job_status = "Failed"
            training.training_end_time = utcnow()
            setattr(training, "failure_reason", CAPACITY_ERROR)  # noqa: B010


def install(monkeypatch: Any, sim: Any, url: str) -> BatchSimulator:
    """Route the service-job operations to BatchResponse; returns the started simulation."""
    from moto.batch import urls
    from moto.batch.responses import BatchResponse

    batch = BatchSimulator(sim, url)
    for path in OPERATIONS:  # read when the server builds its Batch app (on the first call)
        urls.url_paths.setdefault("{0}/v1/" + path, BatchResponse.dispatch)

    def body_of(response: Any) -> dict[str, Any]:
        return dict(json.loads(response.body or "{}"))

    def submitservicejob(self: Any) -> str:
        batch.calls.append("SubmitServiceJob")
        return json.dumps(batch.submit(body_of(self)))

    def describeservicejob(self: Any) -> str:
        batch.calls.append("DescribeServiceJob")
        return json.dumps(batch.describe(str(body_of(self)["jobId"])))

    def listservicejobs(self: Any) -> str:
        batch.calls.append("ListServiceJobs")
        return json.dumps(batch.list(body_of(self)))

    def terminateservicejob(self: Any) -> str:
        batch.calls.append("TerminateServiceJob")
        body = body_of(self)
        batch.terminate(str(body["jobId"]), str(body["reason"]))
        return "{}"

    for name, handler in (
        ("submitservicejob", submitservicejob),
        ("describeservicejob", describeservicejob),
        ("listservicejobs", listservicejobs),
        ("terminateservicejob", terminateservicejob),
    ):
        monkeypatch.setattr(BatchResponse, name, handler, raising=False)
    batch.start()
    return batch
