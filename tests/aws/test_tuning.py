"""A sweep file on SageMaker: the CreateHyperParameterTuningJob request (field by field, and
against what the SageMaker Python SDK V2 builds), creating it on the moto server, following its
trials into the store, attaching to one, stopping it, and its export."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sdk_envs import TO_MOTO, sdk_python
from sm_helpers import BUCKET, ROLE_ARN, create_sagemaker_role, runner, wait_for

from trainer_gui.core.aws import tuning
from trainer_gui.core.aws.request import plan_locations
from trainer_gui.core.errors import UserError
from trainer_gui.core.runners.sagemaker import SageMakerRunner
from trainer_gui.core.spec.sweep import SweepSpec, sweep_from_dict
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311"


def _sweep(project: Path, **sweep_over: Any) -> SweepSpec:
    section: dict[str, Any] = {
        "parameters": {
            "lr": {"type": "continuous", "min": 0.0001, "max": 0.1, "scale": "log"},
            "batch_size": {"type": "integer", "min": 16, "max": 128},
            "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
        },
        "strategy": "bayesian",
        "objective": {"metric": "val_loss", "goal": "minimize"},
        "max_trials": 4,
        "max_parallel": 2,
        "early_stopping": "auto",
    }
    section.update(sweep_over)
    data = {
        "name": "mnist",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": "sagemaker", "instance_type": "ml.m5.xlarge"},
        "channels": [{"name": "train", "source": "data"}],
        "hyperparameters": {"epochs": 3, "lr": 0.01, "batch_size": 32, "optimizer": "adam"},
        "metric_definitions": [{"name": "val_loss", "regex": "val_loss=([0-9.]+)"}],
        "max_runtime_seconds": 3600,
        "sagemaker": {"role_arn": ROLE_ARN, "region": "us-east-1", "tags": {"team": "ml"}},
        "sweep": section,
    }
    return sweep_from_dict(data, base_dir=project)


def _plan(sweep: SweepSpec, name: str) -> Any:
    return plan_locations(sweep.job, name, "us-east-1", ROLE_ARN, IMAGE, True, f"s3://{BUCKET}")


def test_the_tuning_config_carries_every_field_of_the_sweep(project: Path) -> None:
    sweep = _sweep(project, seed=7, max_runtime_seconds=7200)
    config = tuning.tuning_job_config(sweep)
    assert config == {
        "Strategy": "Bayesian",
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": 4,
            "MaxParallelTrainingJobs": 2,
            "MaxRuntimeInSeconds": 7200,
        },
        "TrainingJobEarlyStoppingType": "Auto",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "val_loss"},
        "ParameterRanges": {
            "IntegerParameterRanges": [
                {"Name": "batch_size", "MinValue": "16", "MaxValue": "128", "ScalingType": "Auto"}
            ],
            "ContinuousParameterRanges": [
                {
                    "Name": "lr",
                    "MinValue": "0.0001",
                    "MaxValue": "0.1",
                    "ScalingType": "Logarithmic",
                }
            ],
            "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ['"adam"', '"sgd"']}],
        },
        "RandomSeed": 7,
    }


def test_the_training_definition_is_the_jobs_request_without_the_swept_values(
    project: Path,
) -> None:
    from trainer_gui.core.aws.request import build_request

    sweep = _sweep(project)
    plan = _plan(sweep, "mnist-sweep")
    training = build_request(sweep.job, plan)
    request = tuning.tuning_request_for_plan(sweep, plan, "mnist-sweep")
    definition = request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert "lr" not in static and "batch_size" not in static and "optimizer" not in static
    assert (
        static == {k: v for k, v in training["HyperParameters"].items() if k in static}
        and static["epochs"] == "3"
    )
    assert static["sagemaker_program"] == '"train.py"'
    for key in ("RoleArn", "AlgorithmSpecification", "OutputDataConfig", "ResourceConfig"):
        assert definition[key] == training[key]
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "val_loss", "Regex": "val_loss=([0-9.]+)"}
    ]
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert definition["InputDataConfig"] == training["InputDataConfig"]
    assert "TrainingJobName" not in definition and "Tags" not in definition
    assert request["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_grid_without_max_trials_leaves_the_count_to_sagemaker(project: Path) -> None:
    sweep = _sweep(
        project,
        strategy="grid",
        max_trials=None,
        early_stopping="off",
        parameters={"optimizer": {"values": ["adam", "sgd", "rmsprop"]}},
    )
    config = tuning.tuning_job_config(sweep)
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2}
    assert config["Strategy"] == "Grid"


def test_hyperband_sends_its_resource_bounds(project: Path) -> None:
    sweep = _sweep(
        project,
        strategy="hyperband",
        early_stopping="off",
        hyperband={"min_resource": 1, "max_resource": 10},
    )
    config = tuning.tuning_job_config(sweep)
    assert config["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 10}
    }
    assert config["TrainingJobEarlyStoppingType"] == "Off"


def test_botocore_validation_refuses_a_bad_request_with_its_report(project: Path) -> None:
    sweep = _sweep(project)
    request = tuning.tuning_request_for_plan(sweep, _plan(sweep, "mnist-sweep"), "mnist-sweep")
    request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] = 0
    with pytest.raises(UserError, match="MaxParallelTrainingJobs"):
        tuning.validate_request(request)


@pytest.mark.parametrize("name", ["a" * 33, "-x", "has_underscore", ""])
def test_a_bad_tuning_job_name_is_refused(name: str) -> None:
    with pytest.raises(UserError, match="tuning job name"):
        tuning.check_tuning_name(name)


def test_generated_tuning_names_fit_sagemakers_32_characters() -> None:
    name = tuning.tuning_job_name("a-very-long-spec-name-for-a-sweep-of-many-things", 0)
    assert len(name) <= 32 and tuning.TUNING_NAME_RE.match(name)
    assert name.endswith("-700101-000000")


# -- the SDK V2 differential ------------------------------------------------------------------

_SDK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import boto3, sagemaker
    from sagemaker.pytorch import PyTorch
    from sagemaker.tuner import (
        CategoricalParameter, ContinuousParameter, HyperparameterTuner, IntegerParameter,
    )

    args = json.loads(sys.argv[1])
    captured = {}
    boto_session = boto3.Session(region_name="us-east-1")
    client = boto_session.client("sagemaker")
    def capture(**kwargs):
        captured.update(kwargs)
        return {"HyperParameterTuningJobArn": "arn:x"}
    client.create_hyper_parameter_tuning_job = capture
    session = sagemaker.Session(
        boto_session=boto_session, sagemaker_client=client, default_bucket=args["bucket"]
    )
    estimator = PyTorch(
        entry_point="train.py",
        source_dir=args["code_uri"],
        role=args["role"],
        image_uri=args["image"],
        instance_type="ml.m5.xlarge",
        instance_count=1,
        volume_size=30,
        max_run=3600,
        output_path=args["output"],
        hyperparameters={"epochs": 3, "lr": 0.01, "batch_size": 32, "optimizer": "adam"},
        metric_definitions=[{"Name": "val_loss", "Regex": "val_loss=([0-9.]+)"}],
        sagemaker_session=session,
        container_log_level=20,
        disable_profiler=True,
    )
    ranges = {
        "lr": ContinuousParameter(0.0001, 0.1, scaling_type="Logarithmic"),
        "batch_size": IntegerParameter(16, 128),
        "optimizer": CategoricalParameter(["adam", "sgd"]),
    }
    tuner = HyperparameterTuner(
        estimator,
        objective_metric_name="val_loss",
        hyperparameter_ranges=ranges,
        metric_definitions=[{"Name": "val_loss", "Regex": "val_loss=([0-9.]+)"}],
        strategy="Bayesian",
        objective_type="Minimize",
        max_jobs=4,
        max_parallel_jobs=2,
        early_stopping_type="Auto",
        random_seed=7,
    )
    tuner.fit(inputs={"train": args["train"]}, job_name=args["name"], wait=False)
    print(json.dumps(captured, default=str))
    """
)


def _sdk_v2_request(args: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    env.update(
        AWS_ACCESS_KEY_ID="AKIATGFAKEKEY7Q3ZP2X",
        AWS_SECRET_ACCESS_KEY="fake",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    out = subprocess.run(
        [sdk_python(2), "-c", _SDK_SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_request_matches_what_the_sdk_v2_tuner_builds(project: Path) -> None:
    name = "mnist-sweep-1"
    sweep = _sweep(project, seed=7)
    plan = _plan(sweep, name)
    ours = tuning.tuning_request_for_plan(sweep, plan, name)
    sdk = _sdk_v2_request(
        {
            "name": name,
            "bucket": BUCKET,
            "role": ROLE_ARN,
            "image": IMAGE,
            "code_uri": plan.code_uri,
            "output": plan.output_uri,
            "train": plan.channel_uris["train"],
        }
    )
    assert sdk["HyperParameterTuningJobName"] == ours["HyperParameterTuningJobName"]
    # the whole tuning config, field by field: strategy, objective, limits, ranges, scaling
    assert sdk["HyperParameterTuningJobConfig"] == ours["HyperParameterTuningJobConfig"]
    theirs, mine = sdk["TrainingJobDefinition"], ours["TrainingJobDefinition"]
    for key in ("RoleArn", "OutputDataConfig", "StoppingCondition"):
        assert theirs[key] == mine[key], key
    # the SDK names the same instances HyperParameterTuningResourceConfig (which also takes
    # instance lists); the app sends the ResourceConfig of its CreateTrainingJob request
    assert theirs["HyperParameterTuningResourceConfig"] == mine["ResourceConfig"]
    assert theirs["AlgorithmSpecification"] == mine["AlgorithmSpecification"]
    assert [c["ChannelName"] for c in theirs["InputDataConfig"]] == ["train"]
    assert theirs["InputDataConfig"][0]["DataSource"] == mine["InputDataConfig"][0]["DataSource"]
    # static hyperparameters: the same values for every key the SDK sends, except the SDK's own
    # markers for its attach() and the job name (the SDK sets it per training job)
    sdk_only = {"sagemaker_estimator_class_name", "sagemaker_estimator_module"}
    static = theirs["StaticHyperParameters"]
    assert set(static) - sdk_only == set(mine["StaticHyperParameters"])
    for key in set(static) - sdk_only - {"sagemaker_job_name", "sagemaker_region"}:
        assert static[key] == mine["StaticHyperParameters"][key], key


# -- on the moto server -----------------------------------------------------------------------


def test_a_sweep_runs_as_a_tuning_job_whose_trials_are_followed_into_the_store(
    aws: Any, project: Path
) -> None:
    svc, sm_runner = _service()
    sweep = _sweep(project)
    name = "mnist-sw-1"
    statuses: list[str] = []
    start = tuning.create_tuning_job(
        sm_runner, sweep, project / "runs" / name, name, on_status=statuses.append
    )
    assert start.name == name and start.arn.endswith(f"hyper-parameter-tuning-job/{name}")
    sent = aws.tuning.requests[name]
    assert sent == start.request  # what the app built is what went over the wire
    assert json.loads((project / "runs" / name / tuning.REQUEST_FILE).read_text()) == sent
    code = f"s3://{BUCKET}/{name}/source/sourcedir.tar.gz"
    assert f"{name}/source/sourcedir.tar.gz" in aws.objects(BUCKET)  # uploaded like a job's
    assert sent["TrainingJobDefinition"]["StaticHyperParameters"]["sagemaker_submit_directory"] == (
        json.dumps(code)
    )
    seen: list[str] = []
    state = tuning.follow_tuning_job(
        svc,
        aws_session(sm_runner),
        name,
        on_trial=lambda t: seen.append(t.name),
        poll=0.05,
    )
    assert state.status == "Completed"
    assert len(seen) == 4 and all(t.startswith(f"{name}-") for t in seen)
    records = tuning.trials_in_store(svc.store, name)
    assert sorted(r.id for r in records) == sorted(seen)
    for record in records:
        assert record.backend_ids[tuning.SWEEP_KEY] == name
        assert record.backend_ids[tuning.GROUP_KEY] == name  # the runs table groups by it
        params = record.backend_ids[tuning.PARAMETERS_KEY]
        assert set(params) == {"lr", "batch_size", "optimizer"}
        assert params["optimizer"] in ("adam", "sgd")  # decoded from the JSON sent
    for trial in seen:
        assert svc.wait(trial, 30).status == "Completed"
    assert state.best in seen
    svc.shutdown()


def _service() -> tuple[JobService, SageMakerRunner]:
    sm_runner = runner()
    return JobService(Store(), runners={"sagemaker": sm_runner}), sm_runner


def aws_session(sm_runner: Any) -> Any:
    return sm_runner.session(None, "us-east-1")


def test_following_never_adopts_a_trial_twice(aws: Any, project: Path) -> None:
    svc, sm_runner = _service()
    name = "mnist-sw-2"
    tuning.create_tuning_job(sm_runner, _sweep(project), project / "runs" / name, name)
    tuning.follow_tuning_job(svc, aws_session(sm_runner), name, poll=0.05)
    again: list[str] = []
    tuning.follow_tuning_job(
        svc, aws_session(sm_runner), name, on_trial=lambda t: again.append(t.name), poll=0.05
    )
    assert again == []
    assert len(tuning.trials_in_store(svc.store, name)) == 4
    svc.shutdown()


def test_stopping_a_tuning_job_stops_its_trials(aws: Any, project: Path) -> None:
    from moto_support import Script

    aws.sim.script("mnist-sw-3", Script(outcome="hang"))
    svc, sm_runner = _service()
    name = "mnist-sw-3"
    tuning.create_tuning_job(sm_runner, _sweep(project), project / "runs" / name, name)
    session = aws_session(sm_runner)
    wait_for(lambda: len(tuning.list_trials(session, name)) == 2)
    tuning.stop_tuning_job(session, name)
    state = tuning.follow_tuning_job(svc, session, name, poll=0.05)
    assert state.status == "Stopped"
    trials = tuning.list_trials(session, name)
    assert len(trials) == 2 and {t.status for t in trials} == {"Stopped"}
    svc.shutdown()


def test_an_unknown_tuning_job_is_a_clear_error(aws: Any) -> None:
    sm_runner = runner()
    with pytest.raises(UserError, match="nope"):
        tuning.describe_tuning_job(aws_session(sm_runner), "nope")


# -- export -----------------------------------------------------------------------------------


def test_sweep_exports_are_python_with_the_tuners_names(project: Path) -> None:
    from trainer_gui.core.aws import export

    sweep = _sweep(
        project, strategy="hyperband", early_stopping="off", hyperband={"max_resource": 9}
    )
    plan = _plan(sweep, "mnist-sweep")
    v2 = export.export_sweep_code(sweep, plan, "mnist-sweep", "v2")
    v3 = export.export_sweep_code(sweep, plan, "mnist-sweep", "v3")
    for code in (v2, v3):
        compile(code, "<export>", "exec")
        assert "ContinuousParameter(0.0001, 0.1, scaling_type='Logarithmic')" in code
        assert "IntegerParameter(16, 128, scaling_type='Auto')" in code
        assert "CategoricalParameter(['adam', 'sgd'])" in code
        assert "objective_metric_name='val_loss'" in code and "strategy='Hyperband'" in code
        assert "max_jobs=4" in code and "max_parallel_jobs=2" in code
        # the swept values are the tuner's, not the estimator's
        assert "hyperparameters={'epochs': 3}" in code
    assert "from sagemaker.tuner import" in v2 and "HyperparameterTuner(\n    estimator," in v2
    assert "StrategyConfig(hyperband_strategy_config=HyperbandStrategyConfig(max_resource=9))" in v2
    assert "from sagemaker.train.tuner import HyperparameterTuner" in v3
    assert "from sagemaker.core.parameter import (" in v3
    assert (
        "model_trainer=trainer," in v3 and "tuner.tune(inputs=inputs, job_name='mnist-sweep'" in v3
    )
    assert "HyperParameterTuningJobStrategyConfig(hyperband_strategy_config=" in v3
    request = json.loads(export.export_sweep_code(sweep, plan, "mnist-sweep", "json"))
    assert request == tuning.tuning_request_for_plan(sweep, plan, "mnist-sweep")


def test_a_local_sweep_that_sagemaker_would_refuse_is_not_exported(project: Path) -> None:
    from trainer_gui.core.aws import export
    from trainer_gui.core.spec.sweep import sweep_to_dict

    data = sweep_to_dict(_sweep(project))
    data["compute"] = {"backend": "local-process"}
    data["sweep"].update(
        strategy="grid",
        max_trials=None,
        early_stopping="off",
        parameters={"batch_size": {"type": "integer", "min": 1, "max": 3}},
    )
    sweep = sweep_from_dict(data, base_dir=project)
    with pytest.raises(UserError, match="grid search takes categorical"):
        export.export_sweep(sweep, ("json",), "mnist-sweep")


def test_the_exported_v2_code_run_by_the_sdk_sends_the_apps_tuning_config(
    aws: Any, project: Path
) -> None:
    """The exported program, run by the real SDK V2 against the moto server, creates a tuning
    job whose config is the one the app sends for the sweep."""
    from trainer_gui.core.aws import export

    name = "mnist-sdk-1"
    sweep = _sweep(project, seed=3)
    plan = _plan(sweep, name)
    code = export.export_sweep_code(sweep, plan, name, "v2")
    code = code.replace("wait=True)", "wait=False)").replace("print(tuner.best_training_job())", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    env["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
    out = subprocess.run(
        [sdk_python(2), "-c", TO_MOTO + code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
        cwd=project,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    sent = aws.tuning.requests[name]
    ours = tuning.tuning_request_for_plan(sweep, plan, name)
    assert sent["HyperParameterTuningJobConfig"] == ours["HyperParameterTuningJobConfig"]
    theirs, mine = sent["TrainingJobDefinition"], ours["TrainingJobDefinition"]
    # the export names the image the app resolves (2.5.1), not V2's framework_version alias
    assert theirs["AlgorithmSpecification"] == mine["AlgorithmSpecification"]
    assert theirs["HyperParameterTuningResourceConfig"] == mine["ResourceConfig"]
    for key in ("RoleArn", "StoppingCondition", "OutputDataConfig"):
        assert theirs[key] == mine[key], key
    static = theirs["StaticHyperParameters"]
    assert static["epochs"] == mine["StaticHyperParameters"]["epochs"]
    assert not {"lr", "batch_size", "optimizer"} & set(static)


# -- the CLI ----------------------------------------------------------------------------------


def _sweep_file(project: Path) -> Path:
    import yaml

    from trainer_gui.core.spec.sweep import sweep_to_dict

    path = project / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_to_dict(_sweep(project)), sort_keys=False))
    return path


def test_cli_sweep_run_creates_the_tuning_job_and_follows_every_trial(
    aws: Any, project: Path, capsys: Any
) -> None:
    from moto_support import Script

    from trainer_gui.cli.main import main

    for i, loss in enumerate([0.4, 0.1, 0.3, 0.2], start=1):  # trial 2 is the best
        lines = [f"val_loss={loss + 0.5}", f"val_loss={loss}"]
        aws.sim.script(f"mnist-cli-1-{i:03d}", Script(lines=lambda host, lines=lines: lines))
    path = _sweep_file(project)
    assert main(["sweep", "run", str(path), "--name", "mnist-cli-1", "--poll", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "Created tuning job mnist-cli-1 (us-east-1)" in out
    assert out.count("  trial mnist-cli-1-") == 4  # each trial printed once, as it appeared
    assert "Tuning job mnist-cli-1: Completed" in out and "Best trial (*): mnist-cli-1-" in out
    assert aws.tuning.requests["mnist-cli-1"]["HyperParameterTuningJobConfig"] == (
        tuning.tuning_job_config(_sweep(project))
    )
    store = Store()
    trials = tuning.trials_in_store(store, "mnist-cli-1")
    assert len(trials) == 4 and all(r.backend == "sagemaker" for r in trials)
    assert trials[0].backend_ids[tuning.OBJECTIVE_KEY] == {"metric": "val_loss", "goal": "minimize"}
    for trial in trials:  # the job host follows them to the end
        wait_for(lambda trial=trial: store.get_job(trial.id).status == "Completed", 30)
        wait_for(lambda trial=trial: len(store.last_metrics(trial.id)) == 1, 30)
    assert main(["sweep", "show", "mnist-cli-1"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("Sweep mnist-cli-1: 4 trials (minimize val_loss)")
    best = next(line for line in shown.splitlines() if " * " in line)
    assert best.startswith("mnist-cli-1-002-") and " 0.1 " in best
    assert "Best trial (*): mnist-cli-1-002-" in shown
    assert main(["sweep", "show", "nothing-here"]) == 2
    assert "no trials of the sweep 'nothing-here'" in capsys.readouterr().err


def test_cli_sweep_stop_stops_the_tuning_job_and_its_trials(
    aws: Any, project: Path, capsys: Any
) -> None:
    from moto_support import Script

    from trainer_gui.cli.main import main

    aws.sim.script("mnist-cli-2", Script(outcome="hang"))
    path = _sweep_file(project)
    assert main(["sweep", "run", str(path), "--name", "mnist-cli-2", "--detach"]) == 0
    session = aws_session(runner())
    wait_for(lambda: len(tuning.list_trials(session, "mnist-cli-2")) == 2)
    assert main(["sweep", "stop", "mnist-cli-2"]) == 0
    assert "Stopping the tuning job mnist-cli-2" in capsys.readouterr().out
    wait_for(lambda: tuning.describe_tuning_job(session, "mnist-cli-2").status == "Stopped")
    assert {t.status for t in tuning.list_trials(session, "mnist-cli-2")} == {"Stopped"}
    assert main(["sweep", "stop", "mnist-cli-2"]) == 2  # no longer running: a clear line
    err = capsys.readouterr().err
    assert "mnist-cli-2" in err and "Traceback" not in err


def test_cli_sweep_attach_follows_a_tuning_job_started_elsewhere(
    aws: Any, project: Path, capsys: Any
) -> None:
    from trainer_gui.cli.main import main

    svc, sm_runner = _service()
    tuning.create_tuning_job(sm_runner, _sweep(project), project / "runs" / "ext-1", "ext-1")
    svc.shutdown()
    assert main(["sweep", "attach", "ext-1", "--detach"]) == 0
    assert "Detached; the tuning job runs on" in capsys.readouterr().out
    assert main(["sweep", "attach", "ext-1", "--poll", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "Tuning job ext-1 (us-east-1): " in out
    assert "Tuning job ext-1: Completed" in out
    assert len(tuning.trials_in_store(Store(), "ext-1")) == 4
    assert main(["sweep", "attach", "missing-1"]) != 0
    err = capsys.readouterr().err
    assert "missing-1" in err and "Traceback" not in err


def test_the_exported_v3_code_run_by_the_sdk_sends_the_apps_tuning_config(
    aws: Any, project: Path
) -> None:
    """The exported V3 program (ModelTrainer + sagemaker.train.tuner.HyperparameterTuner), run
    by the real SDK V3 against the moto server, creates the tuning job the app would."""
    from trainer_gui.core.aws import export

    name = "mnist-sdk-3"
    create_sagemaker_role(aws)
    sweep = _sweep(project, seed=3)
    plan = _plan(sweep, name)
    code = export.export_sweep_code(sweep, plan, name, "v3")
    code = code.replace("wait=True)", "wait=False)").replace("print(tuner.best_training_job())", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    out = subprocess.run(
        [sdk_python(3), "-c", TO_MOTO + code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
        cwd=project,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    sent = aws.tuning.requests[name]
    ours = tuning.tuning_request_for_plan(sweep, plan, name)
    # V3 sends categorical values as they are ("adam"), as it does every hyperparameter; the
    # app and V2 send them JSON-encoded ('"adam"') for the toolkit to decode: the same values
    theirs = sent["HyperParameterTuningJobConfig"]
    mine = json.loads(json.dumps(ours["HyperParameterTuningJobConfig"]))
    for item in mine["ParameterRanges"]["CategoricalParameterRanges"]:
        item["Values"] = [json.loads(v) for v in item["Values"]]
    assert theirs == mine
    assert (
        sent["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
        == (ours["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"])
    )


def test_following_rides_out_throttling_and_dropped_connections(
    aws: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINER_GUI_AWS_MAX_ATTEMPTS", "1")  # every fault reaches the app
    svc, sm_runner = _service()
    name = "mnist-sw-4"
    tuning.create_tuning_job(sm_runner, _sweep(project), project / "runs" / name, name)
    op = "sagemaker:ListTrainingJobsForHyperParameterTuningJob"
    aws.faults.error(op, 400, "ThrottlingException", "Rate exceeded", times=3)
    aws.faults.drop("sagemaker:DescribeHyperParameterTuningJob", times=3)
    state = tuning.follow_tuning_job(svc, aws_session(sm_runner), name, poll=0.05)
    assert state.status == "Completed"
    assert aws.faults.count(op) > 3  # it went on asking after each refusal
    assert len(tuning.trials_in_store(svc.store, name)) == 4
    svc.shutdown()
