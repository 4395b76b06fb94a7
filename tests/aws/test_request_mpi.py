"""MPI jobs on SageMaker: the CreateTrainingJob request, captured by the moto server, carries
the MPI hyperparameters exactly as the SageMaker Python SDK V2 sends them for
`distribution={"mpi": {...}}` (computed by the real SDK in .venv-sdk2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sdk_envs import sdk_python
from sm_helpers import make_spec, service

from trainer_gui.core import contract
from trainer_gui.core.aws.request import plan_locations
from trainer_gui.core.errors import UserError

SDK_HYPERPARAMETERS = """
import json, sys, boto3
from sagemaker.session import Session
from sagemaker.pytorch import PyTorch
args = json.loads(sys.argv[1])
session = Session(boto_session=boto3.Session(region_name="us-east-1"), default_bucket="b")
estimator = PyTorch(
    entry_point="train.py", source_dir=args["source_dir"],
    role="arn:aws:iam::123456789012:role/r", instance_count=2, instance_type="ml.m5.xlarge",
    framework_version="2.5.1", py_version="py311", sagemaker_session=session,
    distribution={"mpi": args["mpi"]}, hyperparameters=args["hyperparameters"],
)
print(json.dumps(estimator.hyperparameters()))
"""


def _run(spec: Any, aws: Any) -> tuple[str, dict[str, Any]]:
    svc = service()
    handle = svc.submit(spec)
    assert handle.wait(30) is not None
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    return handle.job_id, aws.requests[handle.job_id]


def _sdk_v2(project: Path, mpi: dict[str, Any], hyperparameters: dict[str, Any]) -> dict[str, str]:
    import os
    import subprocess

    python = sdk_python(2)
    args = {"source_dir": str(project / "code"), "mpi": mpi, "hyperparameters": hyperparameters}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    env.update(
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    out = subprocess.run(
        [python, "-c", SDK_HYPERPARAMETERS, json.dumps(args)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    sent: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return sent


@pytest.mark.parametrize(
    ("distribution", "mpi"),
    [
        (
            {"processes_per_host": 4, "mpi_options": "-x NCCL_DEBUG=WARN --verbose"},
            {"enabled": True, "processes_per_host": 4,
             "custom_mpi_options": "-x NCCL_DEBUG=WARN --verbose"},
        ),
        ({}, {"enabled": True}),
    ],
)  # fmt: skip
def test_mpi_request_carries_the_v2_sdks_hyperparameters_field_by_field(
    aws: Any, project: Path, distribution: dict[str, Any], mpi: dict[str, Any]
) -> None:
    spec = make_spec(
        project,
        compute={"instance_type": "ml.m5.xlarge", "instance_count": 2},
        distribution={"kind": "mpi", **distribution},
        hyperparameters={"epochs": 3, "arch": "resnet"},
    )
    job, request = _run(spec, aws)
    hps = request["HyperParameters"]
    sdk = _sdk_v2(project, mpi, {"epochs": 3, "arch": "resnet"})
    # Every key the SDK puts in the estimator's hyperparameters, with the same encoded value;
    # the rest (sagemaker_program, ..._submit_directory, ...) are what fit() adds.
    assert {k: hps.get(k) for k in sdk} == sdk
    assert {k for k in hps if k.startswith("sagemaker_mpi")} == {
        k for k in sdk if k.startswith("sagemaker_mpi")
    }
    assert "sagemaker_torch_distributed_enabled" not in hps
    assert "ContainerEntrypoint" not in request["AlgorithmSpecification"]  # the toolkit runs it
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert hps == contract.sagemaker_hyperparameters(
        spec, job, json.loads(hps["sagemaker_submit_directory"]), "us-east-1"
    )


def test_mpi_over_several_instances_of_a_plain_image_is_refused_before_any_upload(
    aws: Any, project: Path
) -> None:
    spec = make_spec(
        project,
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:latest",
        compute={"instance_type": "ml.m5.xlarge", "instance_count": 2},
        distribution={"kind": "mpi"},
    )
    message = "needs an image with the SageMaker training toolkit"
    with pytest.raises(UserError, match=message):
        plan_locations(spec, "j", "us-east-1", "r", spec.image or "", False, "s3://b")
    svc = service()
    handle = svc.submit(spec)
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Failed" and message in (record.failure_reason or "")
    assert aws.requests == {}
