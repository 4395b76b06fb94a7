"""A moto server on 127.0.0.1 for S3, CloudWatch Logs, STS, IAM and SageMaker, plus what moto lacks.

moto's SageMaker records CreateTrainingJob but the job is "Completed" at once, never writes logs,
has no StopTrainingJob, and overwrites MetricDefinitions. The `aws` fixture extends the *server*
(the product code talks to it over HTTP exactly as it would to AWS):

* every CreateTrainingJob request body is captured as sent (`aws.requests`);
* a simulator thread drives each job through InProgress -> Starting, Downloading, Training,
  Uploading -> Completed / Failed / Stopped with secondary-status transitions, writes each
  host's log lines to CloudWatch streams `<job>/algo-N-<ts>`, puts model.tar.gz and
  output.tar.gz at the output path, and sets FinalMetricDataList;
* StopTrainingJob is added to moto's SageMaker responses;
* tuning jobs start and drive their trials (moto_tuning.py: `aws.tuning`);
* AWS Batch service jobs of SageMaker training queues (moto_batch.py: `aws.batch`);
* the Price List API's GetProducts answers from a small SageMaker catalogue (moto_pricing.py:
  `aws.pricing`);
* `aws.faults` answers chosen requests with an AWS error or a dropped connection, below
  botocore's retry logic (a patched `Endpoint._send`), and records every request sent.

Credentials are fake values from the environment; boto3's parameter validation stays on.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import moto_batch
import moto_pricing
import moto_tuning
import pytest
from moto_support import FAKE_CREDENTIALS, Script, _op_of

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


# -- the job simulator ------------------------------------------------------------------------------


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _SimJob:
    def __init__(self, name: str, request: dict[str, Any], script: Script) -> None:
        self.name = name
        self.request = request
        self.script = script
        resources = request["ResourceConfig"]
        groups = resources.get("InstanceGroups") or []  # a heterogeneous cluster: no count
        self.hosts = sum(int(g["InstanceCount"]) for g in groups) or int(resources["InstanceCount"])
        self.phase = 0
        self.written = dict.fromkeys(range(1, self.hosts + 1), 0)
        self.stop_requested = False
        self.done = False
        self.started = int(time.time())


class Simulator:
    """Advances captured jobs in moto's backends (runs in-process with the server)."""

    def __init__(self) -> None:
        from moto.backends import get_backend

        self.sm = get_backend("sagemaker")[ACCOUNT][REGION]
        self.logs = get_backend("logs")[ACCOUNT][REGION]
        self.s3 = get_backend("s3")[ACCOUNT]["aws"]
        self.jobs: dict[str, _SimJob] = {}
        self.scripts: list[tuple[str, Script]] = []
        self.default = Script()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.tick = 0.02

    def script(self, name_prefix: str, script: Script) -> Script:
        self.scripts.append((name_prefix, script))
        return script

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def created(self, name: str, request: dict[str, Any]) -> None:
        script = next((s for p, s in self.scripts if name.startswith(p)), self.default)
        job = self.sm.training_jobs[name]
        job.training_job_status = "InProgress"
        job.secondary_status = "Starting"
        job.final_metric_data_list = []
        spec = dict(request["AlgorithmSpecification"])
        job.algorithm_specification = spec  # moto replaces MetricDefinitions; keep the request's
        # moto drops these fields; its describe response lists every attribute set
        setattr(job, "environment", request.get("Environment"))  # noqa: B010
        setattr(job, "training_end_time", None)  # noqa: B010
        job.secondary_status_transitions = [
            self._transition("Starting", "Launching requested ML instances")
        ]
        with self._lock:
            self.jobs[name] = _SimJob(name, request, script)

    @staticmethod
    def _transition(status: str, message: str) -> dict[str, Any]:
        from moto.core.utils import utcnow

        return {"Status": status, "StartTime": utcnow(), "StatusMessage": message}

    def _add(self, name: str, status: str, message: str) -> None:
        job = self.sm.training_jobs[name]
        transitions = job.secondary_status_transitions
        if transitions and "EndTime" not in transitions[-1]:
            from moto.core.utils import utcnow

            transitions[-1]["EndTime"] = utcnow()
        transitions.append(self._transition(status, message))
        job.secondary_status = status

    def stop_job(self, name: str) -> None:
        with self._lock:
            sim = self.jobs.get(name)
            job = self.sm.training_jobs.get(name)
            if sim is None or job is None or job.training_job_status != "InProgress":
                from moto.sagemaker.exceptions import ValidationError

                raise ValidationError(message=f"The job {name} is not in progress")
            sim.stop_requested = True
            job.training_job_status = "Stopping"
            self._add(name, "Stopping", "Stopping the training job")

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            with self._lock:
                for sim in list(self.jobs.values()):
                    if not sim.done:
                        try:
                            self._step(sim)
                        except Exception as exc:  # keep the simulator alive; tests see no progress
                            print("simulator:", repr(exc))

    def _write_logs(self, sim: _SimJob) -> bool:
        """Write the next lines of every host; True when all are written."""
        if LOG_GROUP not in self.logs.groups:
            self.logs.create_log_group(LOG_GROUP, {})
        complete = True
        for host in range(1, self.hosts_of(sim) + 1):
            stream = f"{sim.name}/algo-{host}-{sim.started}"
            group = self.logs.groups[LOG_GROUP]
            if stream not in group.streams:
                self.logs.create_log_stream(LOG_GROUP, stream)
            lines = sim.script.lines(host)
            start = sim.written[host]
            chunk = lines[start : start + sim.script.lines_per_tick]
            if chunk:
                now = int(time.time() * 1000)
                events = [{"timestamp": now + i, "message": text} for i, text in enumerate(chunk)]
                self.logs.put_log_events(LOG_GROUP, stream, events)
                sim.written[host] = start + len(chunk)
            if sim.written[host] < len(lines):
                complete = False
        return complete

    @staticmethod
    def hosts_of(sim: _SimJob) -> int:
        return sim.hosts

    def _upload_artifacts(self, sim: _SimJob) -> None:
        out = sim.request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        bucket, _, prefix = out[5:].partition("/")
        base = "/".join(p for p in (prefix, sim.name, "output") if p)
        self.s3.put_object(bucket, f"{base}/model.tar.gz", _tar(sim.script.model_files))
        self.s3.put_object(bucket, f"{base}/output.tar.gz", _tar(sim.script.output_files))

    def _finish(self, sim: _SimJob, status: str, secondary: str, message: str) -> None:
        from moto.core.utils import utcnow

        job = self.sm.training_jobs[sim.name]
        self._add(sim.name, secondary, message)
        job.training_job_status = status
        job.training_end_time = utcnow()
        setattr(job, "billable_time_in_seconds", 42)  # noqa: B010
        job.final_metric_data_list = [
            {"MetricName": k, "Value": v, "Timestamp": utcnow()}
            for k, v in sim.script.final_metrics.items()
        ]
        if status == "Failed":
            setattr(job, "failure_reason", sim.script.failure_reason)  # noqa: B010
        sim.done = True

    def _step(self, sim: _SimJob) -> None:
        name = sim.name
        if sim.stop_requested:
            self._write_logs(sim)
            self._upload_artifacts(sim)
            self._finish(sim, "Stopped", "Stopped", "The job was stopped")
            return
        if sim.phase == 0:
            self._add(name, "Downloading", "Downloading input data")
            sim.phase = 1
        elif sim.phase == 1:
            self._add(name, "Training", "Training image download completed. Training in progress.")
            sim.phase = 2
        elif sim.phase == 2:
            if sim.script.hold is not None and not sim.script.hold.is_set():
                self._write_logs(sim)
                return
            if self._write_logs(sim) and sim.script.outcome != "hang":
                sim.phase = 3
        elif sim.phase == 3:
            self._add(name, "Uploading", "Uploading generated training model")
            self._upload_artifacts(sim)
            sim.phase = 4
        elif sim.phase == 4:
            if sim.script.outcome == "Failed":
                self._finish(sim, "Failed", "Failed", "Training job failed")
            else:
                self._finish(sim, "Completed", "Completed", "Training job completed")


# -- faults below botocore's retries ---------------------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@dataclass
class _Fault:
    op: str
    answer: Any  # (status, code, message) or an exception factory
    times: int


class Faults:
    def __init__(self) -> None:
        self.faults: list[_Fault] = []
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def error(self, op: str, status: int, code: str, message: str, times: int = 1) -> None:
        """Answer the next `times` calls of op ('sagemaker:CreateTrainingJob') with an error."""
        with self._lock:
            self.faults.append(_Fault(op, (status, code, message), times))

    def drop(self, op: str, times: int = 1) -> None:
        """Drop the connection on the next `times` calls of op."""
        with self._lock:
            self.faults.append(_Fault(op, "drop", times))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def count(self, op: str) -> int:
        with self._lock:
            return sum(1 for sent in self.sent if sent == op)

    def intercept(self, request: Any) -> Any:
        op = _op_of(request)
        with self._lock:
            self.sent.append(op)
            fault = next((f for f in self.faults if f.op == op and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
        if fault is None:
            return None
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ConnectionClosedError

        if fault.answer == "drop":
            raise ConnectionClosedError(endpoint_url=request.url)
        status, code, message = fault.answer
        service = op.split(":")[0]
        if service in ("sagemaker", "logs", "pricing"):
            headers = {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.1"}
            body = json.dumps({"__type": code, "message": message}).encode()
        elif service in ("sts", "iam"):
            headers = {"Content-Type": "text/xml"}
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{message}</Message></Error><RequestId>x</RequestId></ErrorResponse>"
            ).encode()
        else:
            headers = {"Content-Type": "application/xml"}
            body = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error>"
            ).encode()
        return AWSResponse(request.url, status, headers, _Raw(body))


# -- the fixture -----------------------------------------------------------------------------------


@dataclass
class FakeAws:
    url: str
    sim: Simulator
    faults: Faults
    requests: dict[str, dict[str, Any]]
    home: Path
    tuning: Any = None  # moto_tuning.TuningSimulator: tuning jobs and their trials
    batch: Any = None  # moto_batch.BatchSimulator: service jobs of training queues
    pricing: Any = None  # moto_pricing.PriceList: the Price List API, which moto lacks

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        s3 = self.client("s3")
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return out


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeAws]:
    import requests
    from botocore.endpoint import Endpoint
    from moto.sagemaker.responses import SageMakerResponse

    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "awshome"
    home.mkdir()
    (home / "config").write_text(
        "[default]\nregion = us-east-1\n\n[profile research]\nregion = eu-west-1\n"
        "\n[profile sso-dev]\nsso_session = corp\nsso_account_id = 123456789012\n"
        "sso_role_name = Dev\nregion = us-west-2\n\n[sso-session corp]\n"
        "sso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\n"
    )
    (home / "credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("TRAINER_GUI_AWS_MAX_ATTEMPTS", "4")

    sim = Simulator()
    captured: dict[str, dict[str, Any]] = {}
    original_create = SageMakerResponse.create_training_job

    def create_training_job(self: Any) -> Any:
        body = json.loads(self.body)
        result = original_create(self)
        captured[body["TrainingJobName"]] = body
        sim.created(body["TrainingJobName"], body)
        return result

    def stop_training_job(self: Any) -> str:
        sim.stop_job(self._get_param("TrainingJobName"))
        return "{}"

    monkeypatch.setattr(SageMakerResponse, "create_training_job", create_training_job)
    monkeypatch.setattr(SageMakerResponse, "stop_training_job", stop_training_job, raising=False)

    faults = Faults()
    original_send = Endpoint._send
    pricing = moto_pricing.PriceList()

    def send(self: Any, request: Any) -> Any:
        answer = faults.intercept(request)
        if answer is not None:
            return answer
        if _op_of(request).startswith("pricing:"):
            return pricing.answer(request)
        return original_send(self, request)

    monkeypatch.setattr(Endpoint, "_send", send)
    sim.start()
    tuning = moto_tuning.install(monkeypatch, sim)
    batch = moto_batch.install(monkeypatch, sim, moto_url)
    try:
        yield FakeAws(moto_url, sim, faults, captured, home, tuning, batch, pricing)
    finally:
        batch.close()
        tuning.close()
        sim.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project: code/train.py + helper, a requirements file, a data folder."""
    root = tmp_path / "proj"
    (root / "code" / "pkg").mkdir(parents=True)
    (root / "code" / "train.py").write_text("print('loss=0.1')\n")
    (root / "code" / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "code" / "__pycache__").mkdir()
    (root / "code" / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "rows.csv").write_text("a,b\n1,2\n")
    (root / "data" / "sub" / "more.csv").write_text("a,b\n3,4\n")
    (root / "requirements.txt").write_text("numpy\n")
    return root
