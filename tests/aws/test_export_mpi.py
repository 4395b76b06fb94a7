"""MPI jobs exported and imported: the V2 export (`distribution={"mpi": ...}`), run by the real
SDK V2 against the moto server, sends the app's own hyperparameters; the V3 export
(`distributed=MPI(...)`), run by SDK V3, gives V3's MPI driver the process count and the
options; and a job described by SageMaker imports back as `distribution.kind: mpi`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sdk_envs import run_sdk
from sm_helpers import BUCKET, ROLE_ARN, create_sagemaker_role, make_spec

from trainer_gui.core.aws import export
from trainer_gui.core.aws.remote_jobs import spec_from_description
from trainer_gui.core.aws.request import Plan, build_request, plan_locations
from trainer_gui.core.spec import JobSpec, spec_from_dict

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311"
OPTIONS = "--NCCL_DEBUG WARN -x MY_VAR=1"


def _spec(project: Path, name: str) -> JobSpec:
    return make_spec(
        project,
        name=name,
        channels=[],
        compute={"instance_type": "ml.m5.xlarge", "instance_count": 2},
        distribution={"kind": "mpi", "processes_per_host": 2, "mpi_options": OPTIONS},
    )


def _plan(spec: JobSpec, name: str) -> Plan:
    return plan_locations(spec, name, "us-east-1", ROLE_ARN, IMAGE, True, f"s3://{BUCKET}")


def _sent(aws: Any, project: Path, spec: JobSpec, fmt: str) -> tuple[str, dict[str, Any]]:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    if fmt == "v3":  # V3 checks the role exists and trusts SageMaker
        create_sagemaker_role(aws)
    code = export.export_code(spec, _plan(spec, f"{spec.name}-20260101-000000-abcd"), fmt)
    code = code.replace("wait=True, logs=True)", "wait=False, logs=False)")
    run_sdk(2 if fmt == "v2" else 3, code, cwd=project)
    (sent,) = [r for n, r in aws.requests.items() if n.startswith(f"{spec.name}-")]
    return code, sent


def test_the_v2_export_sends_the_apps_mpi_hyperparameters(aws: Any, project: Path) -> None:
    spec = _spec(project, "mpi-v2")
    code, sent = _sent(aws, project, spec, "v2")
    assert "distribution={'mpi': {'enabled': True, 'processes_per_host': 2, " in code
    ours = build_request(spec, _plan(spec, sent["TrainingJobName"]))
    assert sent["HyperParameters"] == ours["HyperParameters"]
    assert sent["ResourceConfig"]["InstanceCount"] == 2


def test_the_v3_export_gives_v3s_mpi_driver_the_count_and_options(aws: Any, project: Path) -> None:
    spec = _spec(project, "mpi-v3")
    code, sent = _sent(aws, project, spec, "v3")
    assert "distributed=MPI(process_count_per_node=2, mpi_additional_options=[" in code
    drivers = next(c for c in sent["InputDataConfig"] if c["ChannelName"] == "sm_drivers")
    uri = drivers["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    files = {
        key.rsplit("/", 1)[-1]: body
        for key, body in aws.objects(bucket, prefix.rstrip("/") + "/").items()
    }
    distributed = json.loads(files["distributed.json"])
    assert distributed["process_count_per_node"] == 2
    assert distributed["mpi_additional_options"] == OPTIONS.split()


def test_a_described_mpi_job_imports_as_kind_mpi(aws: Any, project: Path) -> None:
    spec = _spec(project, "mpi-import")
    request = build_request(spec, _plan(spec, "mpi-import-20260101-000000-abcd"))
    desc = {**request, "TrainingJobStatus": "Completed"}
    data = spec_from_description(desc, "us-east-1")
    assert data["distribution"] == {
        "kind": "mpi",
        "processes_per_host": 2,
        "mpi_options": OPTIONS,
    }
    data["source"] = {"source_dir": "code", "entry_point": "train.py"}
    assert spec_from_dict(data, base_dir=project).distribution == spec.distribution
