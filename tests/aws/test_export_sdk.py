"""The exported SDK programs run as exported, with the real SDKs, against the moto server, and
create the job the app would create for the same spec (issue 16).

Each case writes the V3 (`sagemaker-train`'s ModelTrainer) or V2 (`sagemaker<3` PyTorch) export
of a spec, runs it with that SDK's interpreter (tests/aws/sdk_envs.py), and compares the
CreateTrainingJob request the SDK sent (captured by the `aws` fixture) with `build_request` for
the same spec, planned under the SDK's job name, field by field. The differences allowed are
listed in `_v2_differences` / `_v3_differences`, each with why. The code archive the SDK uploaded
holds the files the app packs.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from sdk_envs import run_sdk
from sm_helpers import BUCKET, ROLE_ARN, TEAM_BUCKET, create_sagemaker_role, make_spec

from trainer_gui.core.aws import export
from trainer_gui.core.aws.request import Plan, build_request, plan_locations
from trainer_gui.core.runners.staging import code_entries
from trainer_gui.core.spec import JobSpec

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311"


def _project_extras(project: Path) -> None:
    (project / "lib" / "helpers").mkdir(parents=True, exist_ok=True)
    (project / "lib" / "helpers" / "__init__.py").write_text("Y = 2\n")
    (project / "val").mkdir(exist_ok=True)
    (project / "val" / "v.json").write_text("{}\n")


def _spec(project: Path, case: str) -> JobSpec:
    _project_extras(project)
    if case == "plain":
        return make_spec(project, channels=[])
    if case == "requirements":  # requirements beside the spec, a dependency folder
        return make_spec(
            project,
            source={"requirements": "requirements.txt", "dependencies": ["lib/helpers"]},
        )
    if case == "torchrun":  # CPU instances, processes per host
        return make_spec(
            project,
            compute={"instance_count": 2},
            distribution={"kind": "torchrun", "processes_per_host": 2},
        )
    if case == "channels":  # content types, an input mode, a channel already in S3
        return make_spec(
            project,
            channels=[
                {"name": "train", "source": "data", "content_type": "text/csv"},
                {
                    "name": "val",
                    "source": "val",
                    "content_type": "application/json",
                    "input_mode": "FastFile",
                },
                {"name": "extra", "source": f"s3://{TEAM_BUCKET}/shared/extra/"},
            ],
        )
    if case == "s3_prefix":
        return make_spec(project, sagemaker={"s3_prefix": f"s3://{TEAM_BUCKET}/ml/team"})
    if case == "tensorboard":
        return make_spec(
            project,
            tensorboard=True,
            metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}],
            sagemaker={"tags": {"team": "vision"}},
        )
    raise AssertionError(case)


CASES = ["plain", "requirements", "torchrun", "channels", "s3_prefix", "tensorboard"]


def _plan(spec: JobSpec, name: str) -> Plan:
    base = spec.sagemaker.s3_prefix or f"s3://{BUCKET}"
    return plan_locations(spec, name, "us-east-1", ROLE_ARN, IMAGE, True, base)


def _buckets(aws: Any) -> None:
    s3 = aws.client("s3")
    for bucket in (BUCKET, TEAM_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=TEAM_BUCKET, Key="shared/extra/x.txt", Body=b"x")


def _run_exports(aws: Any, project: Path, fmt: str) -> dict[str, tuple[JobSpec, dict]]:
    """Write the export of every case, run them as written (less waiting for the job) with the
    SDK, one after the other in one interpreter (the SDK imports once), and return each case's
    spec and the CreateTrainingJob request its program sent."""
    _buckets(aws)
    create_sagemaker_role(aws)
    specs: dict[str, JobSpec] = {}
    programs = []
    for case in CASES:
        spec = _spec(project, case).model_copy(update={"name": f"mnist-{case.replace('_', '-')}"})
        specs[case] = spec
        code = export.export_code(spec, _plan(spec, f"{spec.name}-20260101-000000-abcd"), fmt)
        compile(code, f"export_{case}.py", "exec")
        code = code.replace("wait=True, logs=True)", "wait=False, logs=False)")
        programs.append(f"exec(compile({code!r}, {case!r}, 'exec'), {{'__name__': '__main__'}})")
    run_sdk(2 if fmt == "v2" else 3, "\n".join(programs), cwd=project)
    out = {}
    for case, spec in specs.items():
        sent = [r for n, r in aws.requests.items() if n.startswith(f"{spec.name}-")]
        assert len(sent) == 1, (case, list(aws.requests))
        out[case] = (spec, sent[0])
    return out


def _archive_names(aws: Any, uri: str) -> list[str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return sorted(m.name.removeprefix("./") for m in tar.getmembers() if m.isfile())


def _v2_differences(sent: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The request V2 sent, less what it adds that changes nothing about the job."""
    sent = json.loads(json.dumps(sent))
    # V2 states these defaults explicitly; the app leaves them out (the same defaults)
    for key, default in (
        ("EnableNetworkIsolation", False),
        ("EnableInterContainerTrafficEncryption", False),
        ("EnableManagedSpotTraining", False),
    ):
        if key in sent and key not in ours:
            assert sent.pop(key) == default, key
    # V2 asks SageMaker to keep the metrics as time series (for its Experiments views); the
    # app reads the metrics from the logs itself and leaves SageMaker's default
    sent["AlgorithmSpecification"].pop("EnableSageMakerMetricsTimeSeries", None)
    # the export turns the Profiler off (disable_profiler=True); V2 says so, the app sends none
    if "ProfilerConfig" not in ours:
        assert sent.pop("ProfilerConfig", None) in (None, {"DisableProfiler": True})
    return sent


def _without_caches(names: list[str]) -> list[str]:
    """The SDK V2 packs the source folder as it is; the app leaves out caches and venvs
    (runners/staging.py IGNORED_NAMES): the same code."""
    from fnmatch import fnmatch

    from trainer_gui.core.runners.staging import IGNORED_NAMES

    return [
        n
        for n in names
        if not any(fnmatch(part, p) for part in n.split("/") for p in IGNORED_NAMES)
    ]


def test_the_v2_exports_run_by_sdk_v2_create_the_apps_jobs(aws: Any, project: Path) -> None:
    """Plain, requirements beside the spec + a dependency folder, torchrun on CPU instances
    with processes per host, channels with content types and an input mode, a configured S3
    prefix, TensorBoard: each exported V2 program sends the app's request."""
    for case, (spec, sent) in _run_exports(aws, project, "v2").items():
        name = sent["TrainingJobName"]
        # V2 names the job (name_from_base in the program); the app names it <spec>-<id>
        assert name.startswith(f"{spec.name}-"), case
        ours = build_request(spec, _plan(spec, name))
        sent = _v2_differences(sent, ours)
        for key in sorted(set(sent) | set(ours)):
            assert sent.get(key) == ours.get(key), (case, key, sent.get(key), ours.get(key))
        # the code archive holds the files the app packs, where the app's request says
        code_uri = json.loads(ours["HyperParameters"]["sagemaker_submit_directory"])
        names = _without_caches(_archive_names(aws, code_uri))
        assert names == sorted(n for _, n in code_entries(spec)), case


def _objects_under(aws: Any, uri: str) -> dict[str, bytes]:
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return {
        key[len(prefix) :].lstrip("/"): body
        for key, body in aws.objects(bucket, prefix.rstrip("/") + "/").items()
    }


def _v3_hyperparameter(value: Any) -> str:
    """How V3 sends a value: strings as they are, the rest as JSON (its safe_serialize); the app
    and V2 JSON-encode strings too ('"resnet"') for the toolkit to decode."""
    return value if isinstance(value, str) else json.dumps(value)


def test_the_v3_exports_run_by_sdk_v3_create_the_apps_jobs(aws: Any, project: Path) -> None:
    """The same six specs' V3 exports, run by SDK V3 (ModelTrainer): every field the app sends
    is sent the same, except where V3 works differently by design (listed below)."""
    for case, (spec, sent) in _run_exports(aws, project, "v3").items():
        name = sent["TrainingJobName"]
        assert name.startswith(f"{spec.name}-"), case  # V3 names it inside train()
        plan = _plan(spec, name)
        ours = build_request(spec, plan)
        # V3 states the service's default compression (GZIP); the app leaves it out
        assert sent["OutputDataConfig"].pop("CompressionType", "GZIP") == "GZIP", case
        for key in (
            "RoleArn",
            "ResourceConfig",
            "StoppingCondition",
            "OutputDataConfig",
            "Tags",
            "Environment",
            "CheckpointConfig",
        ):
            assert sent.get(key) == ours.get(key), (case, key, sent.get(key), ours.get(key))
        algorithm = dict(sent["AlgorithmSpecification"])
        # V3 starts its own drivers: sm_train.sh from the sm_drivers channel
        assert algorithm.pop("ContainerEntrypoint") == ["/bin/bash"], case
        assert "sm_drivers/sm_train.sh" in algorithm.pop("ContainerArguments")[-1], case
        assert algorithm == ours["AlgorithmSpecification"], case
        # the user's hyperparameters, V3-encoded; V3 passes no sagemaker_* keys (its drivers
        # read sourcecode.json and distributed.json instead)
        assert sent.get("HyperParameters", {}) == {
            k: _v3_hyperparameter(v) for k, v in spec.all_hyperparameters().items()
        }, case
        channels = {c["ChannelName"]: c for c in sent["InputDataConfig"]}
        code, drivers = channels.pop("code"), channels.pop("sm_drivers")
        for channel in channels.values():  # V3 states File mode, the default, on each channel
            if channel.get("InputMode") == "File":
                del channel["InputMode"]
        assert channels == {c["ChannelName"]: c for c in ours.get("InputDataConfig", [])}, case
        # V3 uploads the code and its drivers under the app's S3 base (s3_prefix honoured)
        for channel in (code, drivers):
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            assert uri.startswith(plan.base_uri.rstrip("/") + "/"), (case, uri)
        code_files = _objects_under(aws, code["DataSource"]["S3DataSource"]["S3Uri"])
        assert sorted(code_files) == sorted(n for _, n in code_entries(spec)), case
        driver_files = _objects_under(aws, drivers["DataSource"]["S3DataSource"]["S3Uri"])
        source = json.loads(driver_files["sourcecode.json"])
        assert source["entry_script"] == spec.source.entry_point, case
        assert source["requirements"] == ("requirements.txt" if spec.source.requirements else None)
        distributed = json.loads(driver_files["distributed.json"])
        if spec.distribution.kind == "torchrun":
            assert distributed["process_count_per_node"] == spec.distribution.processes_per_host
        else:
            assert distributed == {}, case
        if spec.tensorboard:
            # SageMaker's layout as SDK V3 documents it (TensorBoardOutputConfig):
            # <bucket>/<prefix>/<base job name>, below which the service writes
            # <job>/tensorboard-output; the SDK filled it in, under the app's S3 base
            assert sent["TensorBoardOutputConfig"] == {
                "S3OutputPath": f"{plan.base_uri.rstrip('/')}/{spec.name}",
                "LocalPath": ours["TensorBoardOutputConfig"]["LocalPath"],
            }
        else:
            assert "TensorBoardOutputConfig" not in sent, case
        extra = set(sent) - set(ours) - {"TensorBoardOutputConfig", "InputDataConfig"}
        assert extra <= {"EnableManagedSpotTraining"}, (case, extra)
        assert not sent.get("EnableManagedSpotTraining"), case


def test_the_request_export_says_which_files_to_upload_where(
    aws: Any, project: Path, capsys: Any
) -> None:
    """The request JSON reads the code archive and local channels from S3: the CLI's notes say
    what to upload where, and doing just that lets the JSON create the job as it is."""
    from trainer_gui.cli.main import main
    from trainer_gui.core.spec import save_spec

    _buckets(aws)
    spec = _spec(project, "requirements")
    path = save_spec(spec, project / "job.yaml")
    assert main(["sagemaker", "export", str(path), "--format", "request"]) == 0
    captured = capsys.readouterr()
    request = json.loads(captured.out)
    code_uri = json.loads(request["HyperParameters"]["sagemaker_submit_directory"])
    train_uri = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    notes = captured.err
    assert f"to {code_uri} before sending it" in notes
    assert str(project / "code") in notes and str(project / "lib" / "helpers") in notes
    assert "requirements.txt" in notes
    assert f"upload {project / 'data'} to {train_uri}" in notes
    # follow the notes, then send the JSON as it is
    s3 = aws.client("s3")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for file, name in code_entries(spec):
            tar.add(file, arcname=name)
    bucket, _, key = code_uri[len("s3://") :].partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    bucket, _, prefix = train_uri[len("s3://") :].partition("/")
    for file in sorted((project / "data").rglob("*.csv")):
        s3.put_object(Bucket=bucket, Key=prefix + file.relative_to(project / "data").as_posix())
    aws.client("sagemaker").create_training_job(**request)
    assert aws.requests[request["TrainingJobName"]] == request
    assert _archive_names(aws, code_uri) == sorted(n for _, n in code_entries(spec))


def test_a_request_without_local_files_needs_no_uploads(aws: Any, project: Path) -> None:
    spec = make_spec(
        project,
        source={"source_dir": f"s3://{TEAM_BUCKET}/code/sourcedir.tar.gz"},
        channels=[{"name": "train", "source": f"s3://{TEAM_BUCKET}/data/"}],
    )
    assert export.request_uploads(spec, _plan(spec, "mnist-1")) == []
