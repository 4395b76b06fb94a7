"""`trainer-gui sweep validate|export|run` on files, run the way a user runs them (main())."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainer_gui.cli.main import main

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"


def _write(tmp_path: Path, backend: str = "sagemaker", **sweep_over: Any) -> Path:
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "train.py").write_text("print('val_loss=0.1')\n")
    section: dict[str, Any] = {
        "parameters": {
            "lr": {"type": "continuous", "min": 0.001, "max": 0.1, "scale": "log"},
            "optimizer": {"values": ["adam", "sgd"]},
        },
        "strategy": "random",
        "objective": {"metric": "val_loss", "goal": "minimize"},
        "max_trials": 6,
        "max_parallel": 2,
    }
    section.update(sweep_over)
    data: dict[str, Any] = {
        "name": "mnist",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": backend},
        "hyperparameters": {"lr": 0.01, "optimizer": "adam", "epochs": 2},
        "metric_definitions": [{"name": "val_loss", "regex": "val_loss=([0-9.]+)"}],
        "sweep": section,
    }
    if backend == "sagemaker":
        data["compute"]["instance_type"] = "ml.m5.xlarge"
        data["sagemaker"] = {
            "role_arn": ROLE,
            "region": "us-east-1",
            "s3_prefix": "s3://team-bucket/sweeps",
        }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_validate_says_what_the_sweep_will_run(tmp_path: Path, capsys: Any) -> None:
    path = _write(tmp_path)
    assert main(["sweep", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: {path}")
    assert "random search, at most 6 trials, 2 at a time" in out
    assert "objective: minimize val_loss" in out
    assert "lr: real from 0.001 to 0.1 (log scale)" in out
    assert "optimizer: one of adam, sgd" in out


@pytest.mark.parametrize(
    ("over", "words"),
    [
        (
            {"parameters": {"lr": {"type": "continuous", "min": 1, "max": 0.1}}},
            "sweep.parameters.lr:",
        ),
        ({"objective": {"metric": "loss", "goal": "minimize"}}, "sweep.objective.metric:"),
        (
            {"parameters": {"momentum": {"values": [0.9]}}},
            "sweep.parameters.momentum: not a hyperparameter",
        ),
        (
            {"strategy": "grid", "max_trials": 1},
            "sweep.parameters.lr: a grid cannot cover a continuous range",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_exit_2(
    tmp_path: Path, capsys: Any, over: dict[str, Any], words: str
) -> None:
    path = _write(tmp_path, **over)
    assert main(["sweep", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_missing_file_and_a_missing_verb_are_clear(tmp_path: Path, capsys: Any) -> None:
    assert main(["sweep", "validate", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["sweep"]) == 2
    assert "sweep validate|export|run|attach" in capsys.readouterr().err


def test_export_json_is_the_tuning_request(tmp_path: Path, capsys: Any) -> None:
    path = _write(tmp_path)
    assert main(["sweep", "export", str(path), "--format", "json", "--name", "mnist-sw"]) == 0
    request = json.loads(capsys.readouterr().out)
    assert request["HyperParameterTuningJobName"] == "mnist-sw"
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Random"
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    definition = request["TrainingJobDefinition"]
    assert definition["RoleArn"] == ROLE
    assert "lr" not in definition["StaticHyperParameters"]
    assert definition["StaticHyperParameters"]["epochs"] == "2"


@pytest.mark.parametrize(
    ("fmt", "words"),
    [
        ("v2", "from sagemaker.tuner import"),
        ("v3", "from sagemaker.train.tuner import HyperparameterTuner"),
    ],
)
def test_export_code_is_python_for_the_sdk(
    tmp_path: Path, capsys: Any, fmt: str, words: str
) -> None:
    path = _write(tmp_path)
    target = tmp_path / f"sweep_{fmt}.py"
    assert main(["sweep", "export", str(path), "--format", fmt, "-o", str(target)]) == 0
    code = target.read_text()
    compile(code, str(target), "exec")
    assert words in code
