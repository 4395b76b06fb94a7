"""Shared helpers for the SageMaker tests (specs, the job service, waiting)."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer_gui.core.runners.sagemaker import SageMakerRunner
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerExecution"
BUCKET = "sagemaker-us-east-1-123456789012"
TEAM_BUCKET = "team-bucket"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-gpu-py311"


def make_spec(project: Path, **over: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": "mnist",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": "sagemaker", "instance_type": "ml.m5.xlarge"},
        "channels": [{"name": "train", "source": "data", "content_type": "text/csv"}],
        "hyperparameters": {"epochs": 3, "lr": 0.01, "arch": "resnet", "use-amp": True},
        "max_runtime_seconds": 3600,
        "sagemaker": {"role_arn": ROLE_ARN, "region": "us-east-1"},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return spec_from_dict(data, base_dir=project)


def runner(**kwargs: Any) -> SageMakerRunner:
    options: dict[str, Any] = {"poll_min": 0.02, "poll_max": 0.1, "retry_delays": (0.0,)}
    options.update(kwargs)
    return SageMakerRunner(**options)


def service(**kwargs: Any) -> JobService:
    return JobService(Store(), runners={"sagemaker": runner(**kwargs)})


def wait_for(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def create_job(aws: Any, name: str, hosts: int = 1) -> None:
    """A training job started outside the app (boto3 directly), its code in S3."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=TEAM_BUCKET)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"print('loss=0.2')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    code = f"s3://{TEAM_BUCKET}/{name}/source/sourcedir.tar.gz"
    s3.put_object(Bucket=TEAM_BUCKET, Key=f"{name}/source/sourcedir.tar.gz", Body=buf.getvalue())
    aws.client("sagemaker").create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE_ARN,
        AlgorithmSpecification={
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
        },
        HyperParameters={
            "epochs": "5",
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(code),
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{TEAM_BUCKET}/data/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{TEAM_BUCKET}/out"},
        ResourceConfig={
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": hosts,
            "VolumeSizeInGB": 30,
        },
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )


#: The trust policy of a SageMaker execution role: SDK V3 checks that the role exists and
#: that SageMaker may assume it.
SAGEMAKER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def create_sagemaker_role(aws: Any, name: str = "SageMakerExecution") -> None:
    """Create the execution role the exports and SDK programs name, trusting SageMaker."""
    aws.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(SAGEMAKER_TRUST)
    )
