"""`sagemaker import` of a job made by SDK V3's ModelTrainer (issue 16).

The job is created by the real SDK V3 (sagemaker-train, tests/aws/sdk_envs.py) against the moto
server: its request has the `code` and `sm_drivers` channels and runs `sm_train.sh`; what to run
is in the drivers' sourcecode.json and distributed.json. The import reads those back: the
imported spec has the source folder (downloaded), entry script, requirements, torchrun with the
process count and the hyperparameters, validates, and its request asks for the same job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdk_envs import run_sdk
from sm_helpers import BUCKET, ROLE_ARN, TEAM_BUCKET, create_sagemaker_role

from trainer_gui.cli.main import main
from trainer_gui.core.aws.remote_jobs import import_training_job, is_v3_job, spec_from_description
from trainer_gui.core.aws.request import build_request, plan_locations
from trainer_gui.core.aws.session import AwsSession
from trainer_gui.core.contract import decode_hyperparameters
from trainer_gui.core.spec import load_spec

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311"

_V3_PROGRAM = """
import boto3
from sagemaker.core.helper.session_helper import Session
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import (
    Compute, InputData, MetricDefinition, OutputDataConfig, SourceCode, StoppingCondition,
)
from sagemaker.train.distributed import Torchrun

session = Session(boto_session=boto3.Session(region_name="us-east-1"), default_bucket={bucket!r})
trainer = ModelTrainer(
    training_image={image!r},
    role={role!r},
    base_job_name="v3job",
    sagemaker_session=session,
    source_code=SourceCode(
        source_dir={code!r}, entry_script="train.py", requirements="requirements.txt"
    ),
    compute=Compute(instance_type="ml.m5.xlarge", instance_count=2, volume_size_in_gb=40),
    distributed=Torchrun(process_count_per_node=2),
    hyperparameters={{"epochs": 3, "lr": 0.01, "arch": "resnet", "use-amp": True}},
    stopping_condition=StoppingCondition(max_runtime_in_seconds=7200),
    output_data_config=OutputDataConfig(s3_output_path="s3://{bucket}/out"),
    environment={{"MODE": "fast"}},
).with_metric_definitions([MetricDefinition(name="loss", regex="loss=([0-9.]+)")])
trainer.train(
    input_data_config=[
        InputData(channel_name="train", data_source="s3://{team}/data/", content_type="text/csv")
    ],
    wait=False,
    logs=False,
)
"""


def _make_v3_job(aws: Any, project: Path) -> dict[str, Any]:
    s3 = aws.client("s3")
    for bucket in (BUCKET, TEAM_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=TEAM_BUCKET, Key="data/rows.csv", Body=b"a,b\n1,2\n")
    create_sagemaker_role(aws)
    (project / "code" / "requirements.txt").write_text("numpy\n")
    program = _V3_PROGRAM.format(
        bucket=BUCKET, image=IMAGE, role=ROLE_ARN, code=str(project / "code"), team=TEAM_BUCKET
    )
    run_sdk(3, program, cwd=project)
    (sent,) = [r for n, r in aws.requests.items() if n.startswith("v3job-")]
    return sent


def test_a_v3_model_trainer_job_imports_as_a_spec_that_runs_the_same_job(
    aws: Any, project: Path, capsys: Any
) -> None:
    sent = _make_v3_job(aws, project)
    name = sent["TrainingJobName"]
    # what V3 sends: its own channels and launcher (which the import used to take as a command)
    assert {c["ChannelName"] for c in sent["InputDataConfig"]} == {"train", "code", "sm_drivers"}
    assert "sm_train.sh" in sent["AlgorithmSpecification"]["ContainerArguments"][-1]

    target = project / "imported" / "job.yaml"
    target.parent.mkdir()
    spec = import_training_job(AwsSession(None, "us-east-1"), name, target)
    spec = load_spec(target)  # what was saved validates
    folder = target.parent / spec.source.source_dir  # type: ignore[operator]
    assert spec.source.command is None and spec.source.entry_point == "train.py"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "pkg/__init__.py",
        "requirements.txt",
        "train.py",
    ]
    assert spec.source.requirements == f"{folder.name}/requirements.txt"
    assert spec.distribution.kind == "torchrun" and spec.distribution.processes_per_host == 2
    assert spec.all_hyperparameters() == {
        "epochs": 3,
        "lr": 0.01,
        "arch": "resnet",
        "use-amp": True,
    }
    assert [(c.name, c.source, c.content_type) for c in spec.channels] == [
        ("train", f"s3://{TEAM_BUCKET}/data/", "text/csv")
    ]
    assert spec.environment == {"MODE": "fast"}
    assert spec.sagemaker.framework_version == "2.5.1" and spec.sagemaker.py_version == "py311"

    # the imported spec's request (the app's way: toolkit launch, encoded hyperparameters)
    # asks for the same job: same image, resources, limits, output, data, metrics, values
    plan = plan_locations(spec, "v3job-again", "us-east-1", ROLE_ARN, IMAGE, True, f"s3://{BUCKET}")
    ours = build_request(spec, plan)
    for key in ("RoleArn", "ResourceConfig", "StoppingCondition", "Environment"):
        assert ours[key] == sent[key], key
    assert ours["OutputDataConfig"]["S3OutputPath"] == sent["OutputDataConfig"]["S3OutputPath"]
    algorithm = sent["AlgorithmSpecification"]
    assert ours["AlgorithmSpecification"]["TrainingImage"] == algorithm["TrainingImage"]
    assert ours["AlgorithmSpecification"]["MetricDefinitions"] == algorithm["MetricDefinitions"]
    theirs_train = next(c for c in sent["InputDataConfig"] if c["ChannelName"] == "train")
    ours_train = next(c for c in ours["InputDataConfig"] if c["ChannelName"] == "train")
    assert ours_train["DataSource"] == theirs_train["DataSource"]
    assert ours_train["ContentType"] == theirs_train["ContentType"]
    decoded = decode_hyperparameters(ours["HyperParameters"])
    assert {k: decoded[k] for k in sent["HyperParameters"]} == decode_hyperparameters(
        sent["HyperParameters"]
    )
    assert decoded["sagemaker_program"] == "train.py"
    assert decoded["sagemaker_torch_distributed_enabled"] is True
    assert decoded["sagemaker_mpi_num_of_processes_per_host"] == 2

    # --no-code: V3's code channel is an S3 folder, which no spec can run from (the app sends
    # an archive as sagemaker_submit_directory): refused with where the code is, no spec written
    code_uri = next(
        c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in sent["InputDataConfig"]
        if c["ChannelName"] == "code"
    )
    bare = project / "bare.yaml"
    assert main(["sagemaker", "import", name, "--no-code", "-o", str(bare)]) != 0
    err = capsys.readouterr().err
    assert code_uri in err and "without --no-code" in err and "Traceback" not in err
    assert not bare.exists()


def test_without_its_driver_configs_a_v3_job_still_imports_as_its_command() -> None:
    """A V3 job whose sm_drivers files cannot be read keeps the old import (a command)."""
    desc = {
        "TrainingJobName": "v3job-2026-01-01-00-00-00-000",
        "RoleArn": ROLE_ARN,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["/bin/bash"],
            "ContainerArguments": [
                "-c",
                "chmod +x /opt/ml/input/data/sm_drivers/sm_train.sh "
                "&& /opt/ml/input/data/sm_drivers/sm_train.sh",
            ],
        },
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://b/{name}"}
                },
            }
            for name in ("code", "sm_drivers")
        ],
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }
    assert is_v3_job(desc)
    data = spec_from_description(desc, "us-east-1")
    assert data["source"]["command"][0] == "/bin/bash"
    v3 = {"source_code": {"entry_script": "train.py"}, "distributed": {}}
    data = spec_from_description(desc, "us-east-1", v3=v3)
    assert data["source"] == {"source_dir": "s3://b/code", "entry_point": "train.py"}
    assert "distribution" not in data


def test_a_v3_job_given_an_archive_imports_without_code_as_that_archive() -> None:
    """V3 uploads a source_dir that is a .tar.gz as it is, into the code channel: that archive
    is what the app sends as sagemaker_submit_directory, so the spec reruns without an upload."""
    from trainer_gui.core.aws.remote_jobs import _v3_code_left_in_s3

    data: dict[str, Any] = {"source": {"source_dir": "s3://b/v3job/code", "entry_point": "t.py"}}
    v3 = {"source_code": {"source_dir": "/home/me/src.tar.gz", "entry_script": "t.py"}}
    _v3_code_left_in_s3(data, v3, "s3://b/v3job/code")
    assert data["source"]["source_dir"] == "s3://b/v3job/code/src.tar.gz"
    assert "description" not in data
