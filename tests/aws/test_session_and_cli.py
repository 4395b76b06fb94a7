"""Settings the GUI lists, endpoints, cost, and the `trainer-gui sagemaker` commands."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sm_helpers import BUCKET, ROLE_ARN, make_spec, service

from trainer_gui.cli.main import main
from trainer_gui.core.aws import (
    AwsSession,
    default_region,
    estimate,
    estimate_cost,
    list_execution_roles,
    list_profiles,
    list_regions,
    price_table,
)
from trainer_gui.core.aws.request import build_request
from trainer_gui.core.spec import load_spec, save_spec


def test_profiles_regions_and_default_region_come_from_the_aws_config(aws: Any) -> None:
    assert list_profiles() == ["default", "research", "sso-dev"]
    assert {"us-east-1", "eu-west-1", "ap-southeast-2"} <= set(list_regions())
    assert default_region("research") == "us-east-1"  # AWS_DEFAULT_REGION wins, as in boto3
    session = AwsSession()
    assert session.identity().account == "123456789012"
    assert session.default_bucket() == BUCKET


def test_endpoint_settings_are_botocores_not_ours(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    session = AwsSession()
    assert session.client("s3").meta.endpoint_url == "http://127.0.0.1:9"
    assert session.client("sagemaker").meta.endpoint_url == aws.url
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert "amazonaws.com" in AwsSession().client("logs").meta.endpoint_url


def test_execution_roles_are_listed_when_allowed(aws: Any) -> None:
    iam = aws.client("iam")
    trust: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    other = {
        **trust,
        "Statement": [{**trust["Statement"][0], "Principal": {"Service": "ec2.amazonaws.com"}}],
    }
    iam.create_role(RoleName="SageMakerExecution", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_role(RoleName="Ec2Role", AssumeRolePolicyDocument=json.dumps(other))
    assert list_execution_roles() == [ROLE_ARN]
    aws.faults.error("iam:ListRoles", 403, "AccessDenied", "not allowed")
    assert list_execution_roles() is None


def test_cost_is_price_times_instances_and_for_the_max_runtime(project: Path) -> None:
    table = price_table()
    assert table.as_of and table.price("us-east-1", "ml.g5.xlarge") == 1.408
    spec = make_spec(
        project,
        compute={"instance_type": "ml.g5.xlarge", "instance_count": 2},
        max_runtime_seconds=5400,
    )
    cost = estimate_cost(spec)
    assert cost.per_hour == pytest.approx(2.816)
    assert cost.for_max_runtime == pytest.approx(4.224)
    assert cost.region == "us-east-1"
    assert (
        "$2.82/h" in cost.summary() and "$4.22" in cost.summary() and table.as_of in cost.summary()
    )
    unknown = estimate("ml.g5.xlarge", 1, 3600, "ap-south-2")
    assert not unknown.known and "no price" in unknown.summary()


def test_cli_cost_prints_the_estimate(project: Path, tmp_path: Path, capsys: Any) -> None:
    path = save_spec(make_spec(project, max_runtime_seconds=7200), project / "job.yaml")
    assert main(["sagemaker", "cost", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 x ml.m5.xlarge in us-east-1: about $0.23/h, at most $0.46" in out


def test_cli_export_request_equals_what_submit_builds(aws: Any, project: Path, capsys: Any) -> None:
    path = save_spec(
        make_spec(project, distribution={"kind": "torchrun"}, compute={"instance_count": 2}),
        project / "job.yaml",
    )
    assert main(["sagemaker", "export", str(path), "--format", "request"]) == 0
    request = json.loads(capsys.readouterr().out)
    from trainer_gui.core.aws.remote_jobs import plan_for_export

    plan, notes = plan_for_export(load_spec(path), request["TrainingJobName"])
    assert notes == []
    assert request == build_request(load_spec(path), plan)
    assert request["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"


@pytest.mark.parametrize("fmt", ["v2", "v3"])
def test_cli_export_sdk_code_is_python_with_the_jobs_settings(
    aws: Any, project: Path, capsys: Any, fmt: str
) -> None:
    spec = make_spec(
        project,
        distribution={"kind": "torchrun", "processes_per_host": 2},
        metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        sagemaker={"tags": {"team": "vision"}},
    )
    path = save_spec(spec, project / "job.yaml")
    assert main(["sagemaker", "export", str(path), "--format", fmt]) == 0
    code = capsys.readouterr().out
    ast.parse(code)
    assert ROLE_ARN in code and "ml.m5.xlarge" in code and "loss=([0-9.]+)" in code
    assert str(project / "code") in code and str(project / "data") in code
    if fmt == "v2":
        assert "from sagemaker.pytorch import PyTorch" in code
        assert "distribution={'torch_distributed': {'enabled': True}}" in code
        assert "framework_version='2.5.1'" in code  # the image the app resolves
        assert (
            "hyperparameters={'epochs': 3, 'lr': 0.01, 'arch': 'resnet', 'use-amp': True, "
            "'sagemaker_mpi_num_of_processes_per_host': 2}" in code
        )
    else:
        assert "from sagemaker.train import ModelTrainer" in code
        assert "distributed=Torchrun(process_count_per_node=2)" in code
        assert "pytorch-training:2.5.1-cpu-py311" in code
        assert "with_metric_definitions" in code


def test_cli_jobs_lists_the_accounts_training_jobs(aws: Any, project: Path, capsys: Any) -> None:
    svc = service()
    handle = svc.submit(make_spec(project))
    handle.wait(30)
    assert main(["sagemaker", "jobs"]) == 0
    out = capsys.readouterr().out
    assert handle.job_id in out and "Completed" in out


def _external_job(aws: Any, name: str) -> None:
    """A job started by someone else (boto3 directly), with code in S3."""
    import io
    import tarfile

    s3 = aws.client("s3")
    s3.create_bucket(Bucket="team-bucket")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"print('loss=0.2')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket="team-bucket", Key=f"{name}/source/sourcedir.tar.gz", Body=buf.getvalue())
    aws.client("sagemaker").create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE_ARN,
        AlgorithmSpecification={
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-gpu-py311",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
        },
        HyperParameters={
            "epochs": "5",
            "name": '"resnet"',
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(
                f"s3://team-bucket/{name}/source/sourcedir.tar.gz"
            ),
            "sagemaker_torch_distributed_enabled": "true",
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://team-bucket/data/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://team-bucket/out"},
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        Environment={"MODE": "x"},
        Tags=[{"Key": "team", "Value": "vision"}],
    )


def test_cli_import_writes_a_spec_that_reruns_locally(
    aws: Any, tmp_path: Path, capsys: Any
) -> None:
    _external_job(aws, "team-run-1")
    target = tmp_path / "specs" / "imported.yaml"
    assert main(["sagemaker", "import", "team-run-1", "-o", str(target)]) == 0
    spec = load_spec(target)
    assert spec.name == "team-run-1"
    assert spec.source.entry_point == "train.py"
    code = spec.resolve(spec.source.source_dir or "missing")
    assert (code / "train.py").read_text() == "print('loss=0.2')\n"
    assert spec.hyperparameters == {"epochs": 5, "name": "resnet"}
    assert spec.distribution.kind == "torchrun"
    assert spec.compute.instance_count == 2 and spec.compute.instance_type == "ml.g5.xlarge"
    assert spec.sagemaker.framework_version == "2.5.1" and spec.sagemaker.py_version == "py311"
    assert spec.channels[0].source == "s3://team-bucket/data/"
    assert spec.environment == {"MODE": "x"}
    assert spec.metric_definitions[0].regex == "loss=([0-9.]+)"
    assert spec.max_runtime_seconds == 600 and spec.output_path == "s3://team-bucket/out"
    assert spec.sagemaker.tags == {"team": "vision"}
    assert main(["sagemaker", "import", "team-run-1", "--no-code"]) == 0
    assert (
        "source_dir: s3://team-bucket/team-run-1/source/sourcedir.tar.gz" in capsys.readouterr().out
    )


def test_cli_attach_follows_any_account_job_into_the_store(aws: Any, capsys: Any) -> None:
    from moto_support import Script

    aws.sim.script(
        "team-run-2", Script(lines=lambda h: [f"loss={0.5 / (i + 1):.3f}" for i in range(10)])
    )
    _external_job(aws, "team-run-2")
    time.sleep(0.1)
    assert main(["sagemaker", "attach", "team-run-2", "--quiet"]) == 0
    svc = service()
    record = svc.get("team-run-2")
    assert record.status == "Completed" and record.backend == "sagemaker"
    assert svc.store.metric_count("team-run-2") == 20  # 10 lines on each of the 2 hosts
    assert (Path(record.run_dir) / "artifacts" / "model" / "model.pt").is_file()


def test_boto3_is_not_imported_until_aws_is_used() -> None:
    code = (
        "import sys\n"
        "import trainer_gui.core.aws, trainer_gui.core.aws.export, trainer_gui.core.aws.remote_jobs\n"
        "import trainer_gui.core.runners.sagemaker, trainer_gui.cli.main\n"
        "from trainer_gui.services.jobs import create_runner\n"
        "create_runner('sagemaker')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_named_profile_without_keys_says_the_environment_is_not_used(aws: Any) -> None:
    from trainer_gui.core.aws.errors import AwsCredentialsError
    from trainer_gui.core.aws.session import AwsSession

    with pytest.raises(AwsCredentialsError, match="keys in the environment are only used"):
        AwsSession("research", "eu-west-1").identity()
    assert AwsSession(None, "us-east-1").identity().account == "123456789012"
