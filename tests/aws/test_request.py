"""The exact CreateTrainingJob request the SageMaker backend sends, captured by the moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sm_helpers import BUCKET, ROLE_ARN, make_spec, service

from trainer_gui.core import contract
from trainer_gui.core.aws.bootstrap import START_PY
from trainer_gui.core.aws.errors import AwsError
from trainer_gui.core.aws.images import (
    is_toolkit_image,
    pytorch_training_image,
    versions_from_image,
)
from trainer_gui.core.aws.s3 import channel_manifest

DLC = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training"


def _train_uri(project: Path) -> str:
    """Local channel data goes to a content-addressed prefix (the digest of its files)."""
    return f"s3://{BUCKET}/data/{channel_manifest(project / 'data').digest}/"


def _run(aws: Any, spec: Any) -> tuple[str, dict[str, Any]]:
    svc = service()
    handle = svc.submit(spec)
    assert handle.wait(30) is not None
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    return handle.job_id, aws.requests[handle.job_id]


def test_single_instance_request_is_exactly_the_v2_sdk_shape(aws: Any, project: Path) -> None:
    job, request = _run(aws, make_spec(project))
    code = f"s3://{BUCKET}/{job}/source/sourcedir.tar.gz"
    assert request == {
        "TrainingJobName": job,
        "RoleArn": ROLE_ARN,
        "AlgorithmSpecification": {
            "TrainingImage": f"{DLC}:2.5.1-cpu-py311",
            "TrainingInputMode": "File",
        },
        "HyperParameters": {
            "epochs": "3",
            "lr": "0.01",
            "arch": '"resnet"',
            "use-amp": "true",
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(code),
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": json.dumps(job),
            "sagemaker_region": '"us-east-1"',
        },
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": _train_uri(project),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "text/csv",
            }
        ],
    }


def test_torchrun_on_two_gpu_instances_sets_the_distribution_hyperparameters(
    aws: Any, project: Path
) -> None:
    spec = make_spec(
        project,
        compute={"instance_type": "ml.g5.xlarge", "instance_count": 2},
        distribution={"kind": "torchrun", "processes_per_host": 4},
        hyperparameters={"epochs": 1},
    )
    job, request = _run(aws, spec)
    assert request["AlgorithmSpecification"]["TrainingImage"] == f"{DLC}:2.5.1-gpu-py311"
    assert "ContainerEntrypoint" not in request["AlgorithmSpecification"]
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.g5.xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 30,
    }
    hps = request["HyperParameters"]
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    assert hps["sagemaker_instance_type"] == '"ml.g5.xlarge"'
    assert hps["sagemaker_mpi_num_of_processes_per_host"] == "4"
    assert hps["epochs"] == "1"
    assert hps == contract.sagemaker_hyperparameters(
        spec, job, json.loads(hps["sagemaker_submit_directory"]), "us-east-1"
    )


def test_metric_definitions_environment_tags_checkpoint_and_output_path(
    aws: Any, project: Path
) -> None:
    spec = make_spec(
        project,
        metric_definitions=[
            {"name": "train:loss", "regex": r"loss=([0-9.]+)"},
            {"name": "val:acc", "regex": r"acc=([0-9.]+)"},
        ],
        environment={"OMP_NUM_THREADS": "2", "MODE": "fast"},
        checkpoint_s3_uri="s3://ckpt-bucket/mnist/",
        output_path="s3://sagemaker-us-east-1-123456789012/models",
        max_runtime_seconds=7200,
        compute={"volume_size_gb": 100},
        sagemaker={"tags": {"team": "vision", "cost-center": "42"}},
    )
    _, request = _run(aws, spec)
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "train:loss", "Regex": r"loss=([0-9.]+)"},
        {"Name": "val:acc", "Regex": r"acc=([0-9.]+)"},
    ]
    assert request["Environment"] == {"OMP_NUM_THREADS": "2", "MODE": "fast"}
    assert request["Tags"] == [
        {"Key": "team", "Value": "vision"},
        {"Key": "cost-center", "Value": "42"},
    ]
    assert request["CheckpointConfig"] == {
        "S3Uri": "s3://ckpt-bucket/mnist/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert request["OutputDataConfig"] == {
        "S3OutputPath": "s3://sagemaker-us-east-1-123456789012/models"
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert request["ResourceConfig"]["VolumeSizeInGB"] == 100


CUSTOM = "111122223333.dkr.ecr.us-east-1.amazonaws.com/my-train:1"


def test_custom_image_runs_the_driver_from_an_extra_channel(aws: Any, project: Path) -> None:
    job, request = _run(aws, make_spec(project, image=CUSTOM))
    algo = request["AlgorithmSpecification"]
    assert algo["TrainingImage"] == CUSTOM
    assert algo["ContainerEntrypoint"] == [
        "/bin/sh",
        "-c",
        'exec "$(command -v python3 || command -v python)" '
        '/opt/ml/input/data/tg-driver/start.py "$@"',
        "trainer-gui-driver",
    ]
    assert "ContainerArguments" not in algo
    code = f"s3://{BUCKET}/{job}/source/sourcedir.tar.gz"
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request["InputDataConfig"]
    }
    assert channels == {
        "train": _train_uri(project),
        "code": code,
        "tg-driver": f"s3://{BUCKET}/{job}/tg-driver/",
    }
    assert json.loads(request["HyperParameters"]["sagemaker_submit_directory"]) == code
    driver = aws.objects(BUCKET, f"{job}/tg-driver/")
    assert driver[f"{job}/tg-driver/toolkit.py"] == contract.driver_path().read_bytes()
    assert driver[f"{job}/tg-driver/start.py"] == START_PY.encode()


def test_a_command_job_passes_the_command_to_the_driver(aws: Any, project: Path) -> None:
    spec = make_spec(
        project, source={"source_dir": "code", "command": ["python", "train.py", "--fast"]}
    )
    _, request = _run(aws, spec)
    algo = request["AlgorithmSpecification"]
    assert algo["ContainerArguments"] == ["--", "python", "train.py", "--fast"]
    assert "sagemaker_program" not in request["HyperParameters"]


def test_the_cloud_bootstrap_unpacks_the_code_channel_and_runs_the_script(
    aws: Any, project: Path, tmp_path: Path
) -> None:
    """Launch mode (b) as the container sees it: /opt/ml filled from S3 and the request."""
    (project / "code" / "train.py").write_text(
        "import os, sys\n"
        "print('args', sys.argv[1:])\n"
        "print('channel', sorted(os.listdir(os.environ['SM_CHANNEL_TRAIN'])))\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'model.pt'), 'w').write('w')\n"
    )
    _, request = _run(aws, make_spec(project, image=CUSTOM, hyperparameters={"epochs": 2}))
    base = tmp_path / "opt_ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(request["HyperParameters"]))
    (config / "resourceconfig.json").write_text(
        json.dumps(contract.toolkit.resource_config("algo-1", ["algo-1"], "ml.m5.xlarge"))
    )
    names = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    (config / "inputdataconfig.json").write_text(
        json.dumps(contract.toolkit.input_data_config({n: None for n in names}))
    )
    for name, channel in names.items():  # what SageMaker downloads for File mode
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, _, prefix = uri[5:].partition("/")
        folder = prefix if prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/"
        for key, data in aws.objects(bucket, prefix).items():
            target = base / "input" / "data" / name / key[len(folder) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    start = base / "input" / "data" / "tg-driver" / "start.py"
    out = subprocess.run(
        [sys.executable, str(start), "--host-mode"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert (
        "args ['--arch', 'resnet', '--epochs', '2', '--lr', '0.01', '--use-amp', 'True']"
        in out.stdout
    )
    assert "channel ['rows.csv', 'sub']" in out.stdout
    assert (base / "code" / "pkg" / "__init__.py").is_file()
    assert (base / "model" / "model.pt").read_text() == "w"
    assert (base / "output" / "success").exists()


def test_dlc_uri_follows_the_sdk_for_region_processor_and_version() -> None:
    assert pytorch_training_image("2.5", "py311", "us-east-1", "ml.p3.2xlarge") == (
        f"{DLC}:2.5.1-gpu-py311"
    )
    assert pytorch_training_image("2.8.0", "py312", "af-south-1", "ml.c5.xlarge") == (
        "626614931356.dkr.ecr.af-south-1.amazonaws.com/pytorch-training:2.8.0-cpu-py312"
    )
    assert pytorch_training_image("2.3", "py311", "cn-north-1", "ml.g4dn.xlarge") == (
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/pytorch-training:2.3.0-gpu-py311"
    )
    with pytest.raises(AwsError, match="py312"):
        pytorch_training_image("2.6", "py311", "us-east-1", "ml.m5.xlarge")
    with pytest.raises(AwsError, match=r"no SageMaker PyTorch training image for PyTorch 9\.9"):
        pytorch_training_image("9.9", "py311", "us-east-1", "ml.m5.xlarge")
    assert is_toolkit_image(f"{DLC}:2.5.1-gpu-py311")
    assert not is_toolkit_image(CUSTOM)
    assert versions_from_image(f"{DLC}:2.5.1-gpu-py311") == ("2.5.1", "py311")
