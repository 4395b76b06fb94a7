"""Job spec validation, YAML round trips, and the CLI-style overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.errors import SpecError
from trainer_gui.core.spec import (
    Backend,
    JobSpec,
    apply_overrides,
    dump_spec,
    load_spec,
    save_spec,
    spec_from_dict,
    spec_from_text,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('hi')\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "hp.yaml").write_text("epochs: 5\nlr: 0.1\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    return tmp_path


def _valid(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "job-1",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "channels": [{"name": "train", "source": "data"}],
        "hyperparameters": {"epochs": 3},
    }
    data.update(over)
    return data


def _problems(data: dict[str, Any], base: Path | None) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data, base_dir=base)
    return info.value.problems


def test_a_full_spec_validates(project: Path) -> None:
    spec = spec_from_dict(
        _valid(
            image="trainer-gui/train-cpu:latest",
            compute={"backend": "docker", "instance_count": 2, "gpus": "all"},
            distribution={"kind": "torchrun", "processes_per_host": 2},
            hyperparameters_file="hp.yaml",
            environment={"MY_FLAG": "1"},
            metric_definitions=[{"name": "loss", "regex": "loss=([0-9.]+)"}],
            checkpoint_dir="ckpt",
            output_path="out",
            sagemaker={
                "role_arn": "arn:aws:iam::123456789012:role/SageMakerRole",
                "region": "eu-west-1",
                "tags": {"team": "ml"},
            },
            source={
                "source_dir": "code",
                "entry_point": "train.py",
                "requirements": "requirements.txt",
            },
        ),
        base_dir=project,
    )
    assert spec.compute.backend is Backend.DOCKER
    assert spec.uses_gpu
    assert spec.all_hyperparameters() == {"epochs": 3, "lr": 0.1}


@pytest.mark.parametrize(
    ("override", "field", "hint"),
    [
        ({"name": "-starts-with-hyphen"}, "name", "letters, digits and hyphens"),
        ({"name": "has_underscore"}, "name", "letters, digits and hyphens"),
        ({"name": "x" * 64}, "name", "1-63"),
        (
            {"source": {"source_dir": "missing", "entry_point": "train.py"}},
            "source.source_dir",
            "does not exist",
        ),
        (
            {"source": {"source_dir": "code", "entry_point": "nope.py"}},
            "source",
            "not in the source folder",
        ),
        (
            {"source": {"source_dir": "code", "entry_point": "../x.py"}},
            "source.entry_point",
            "inside the source folder",
        ),
        ({"source": {}}, "source", "give source_dir and entry_point"),
        ({"source": {"command": []}}, "source.command", "command is empty"),
        (
            {"channels": [{"name": "bad name", "source": "data"}]},
            "channels[0].name",
            "letters, digits",
        ),
        (
            {"channels": [{"name": "a", "source": "data"}, {"name": "a", "source": "data"}]},
            "channels",
            "used twice",
        ),
        (
            {"channels": [{"name": "a", "source": "nowhere"}]},
            "channels[0].source",
            "does not exist",
        ),
        (
            {"channels": [{"name": "a", "source": "s3://B_ad/x"}]},
            "channels[0].source",
            "not a valid s3",
        ),
        (
            {"channels": [{"name": "a", "source": "http://x/y"}]},
            "channels[0].source",
            "only local paths",
        ),
        (
            {"channels": [{"name": "a", "source": "data", "input_mode": "Pipe"}]},
            "",
            "File mode only",
        ),
        ({"hyperparameters": {f"k{i}": i for i in range(101)}}, "hyperparameters", "at most 100"),
        ({"hyperparameters": {"k" * 257: 1}}, "hyperparameters", "1-256"),
        ({"hyperparameters": {"k": "v" * 2500}}, "hyperparameters", "at most 2500"),
        ({"hyperparameters": {"sagemaker_program": "x"}}, "hyperparameters", "reserved"),
        (
            {"metric_definitions": [{"name": "m", "regex": "loss=(["}]},
            "metric_definitions[0].regex",
            "does not compile",
        ),
        (
            {"metric_definitions": [{"name": "m", "regex": "loss=[0-9]+"}]},
            "metric_definitions[0].regex",
            "exactly one",
        ),
        (
            {"metric_definitions": [{"name": "m", "regex": "(a)=(b)"}]},
            "metric_definitions[0].regex",
            "2 capture groups",
        ),
        (
            {"metric_definitions": [{"name": f"m{i}", "regex": "(x)"} for i in range(41)]},
            "metric_definitions",
            "at most 40",
        ),
        (
            {"metric_definitions": [{"name": "m", "regex": "(x)"}, {"name": "m", "regex": "(y)"}]},
            "metric_definitions",
            "defined twice",
        ),
        (
            {"compute": {"instance_count": 0}},
            "compute.instance_count",
            "greater than or equal to 1",
        ),
        ({"compute": {"instance_count": 2}}, "", "local-process backend runs one host"),
        ({"compute": {"gpus": -1}}, "compute.gpus", "0 or more"),
        ({"compute": {"instance_type": "m5.large"}}, "compute.instance_type", "pattern"),
        ({"compute": {"backend": "kubernetes"}}, "compute.backend", "local-process"),
        ({"max_runtime_seconds": 0}, "max_runtime_seconds", "greater than or equal to 1"),
        ({"max_runtime_seconds": 29 * 86400}, "max_runtime_seconds", "less than or equal"),
        ({"environment": {"1BAD": "x"}}, "environment", "not start with a digit"),
        ({"environment": {"OK": "v" * 513}}, "environment", "at most 512"),
        ({"distribution": {"kind": "custom"}}, "distribution", "needs driver_dir"),
        ({"distribution": {"kind": "horovod"}}, "distribution.kind", "none"),
        ({"distribution": {"mpi_options": "-x A=1"}}, "distribution", "only apply to kind: mpi"),
        ({"sagemaker": {"role_arn": "not-an-arn"}}, "sagemaker.role_arn", "IAM role ARN"),
        ({"sagemaker": {"region": "Europe"}}, "sagemaker.region", "region name"),
        ({"sagemaker": {"tags": {"aws:x": "y"}}}, "sagemaker.tags", "reserved"),
        ({"hyperparameters_file": "missing.yaml"}, "hyperparameters_file", "does not exist"),
        ({"unknown_field": 1}, "unknown_field", "unknown field"),
    ],
)
def test_bad_input_names_the_field_and_the_fix(
    project: Path, override: dict[str, Any], field: str, hint: str
) -> None:
    problems = _problems(_valid(**override), project)
    assert len(problems) >= 1
    assert any(p.startswith(field) and hint in p for p in problems), problems


def test_several_problems_are_reported_at_once(project: Path) -> None:
    problems = _problems(_valid(name="bad_name", max_runtime_seconds=-5, bogus=1), project)
    assert len(problems) == 3


def test_channels_may_be_written_as_a_mapping(project: Path) -> None:
    spec = spec_from_dict(
        _valid(channels={"train": "data", "test": {"source": "data", "content_type": "text/csv"}}),
        base_dir=project,
    )
    assert [c.name for c in spec.channels] == ["train", "test"]
    assert spec.channels[1].content_type == "text/csv"


def test_yaml_round_trips(project: Path) -> None:
    spec = spec_from_dict(
        _valid(
            hyperparameters={
                "epochs": 3,
                "lr": 1e-3,
                "layers": [64, 32],
                "opt": {"b": 0.9},
                "flag": True,
            },
            metric_definitions=[{"name": "loss", "regex": "loss=([0-9.]+)"}],
            environment={"A": "1"},
        ),
        base_dir=project,
    )
    path = save_spec(spec, project / "saved.yaml")
    again = load_spec(path)
    assert again == spec
    assert dump_spec(again) == dump_spec(spec)


def test_saved_yaml_leaves_defaults_out(project: Path) -> None:
    text = dump_spec(spec_from_dict(_valid(), base_dir=project))
    assert "max_runtime_seconds" not in text and "sagemaker" not in text


def test_bad_yaml_says_where(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"not valid YAML at line 2"):
        spec_from_text("name: x\n  bad: [\n", source="f.yaml")


def test_empty_file_and_non_mapping_are_rejected() -> None:
    with pytest.raises(SpecError, match="empty"):
        spec_from_text("")
    with pytest.raises(SpecError, match="mapping"):
        spec_from_text("- a\n- b\n")


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_paths_resolve_against_the_spec_file_folder(project: Path) -> None:
    (project / "job.yaml").write_text(
        "name: rel\nsource: {source_dir: code, entry_point: train.py}\nchannels: {train: data}\n"
    )
    spec = load_spec(project / "job.yaml")
    assert spec.resolve(spec.channels[0].source) == project / "data"


def test_overrides_reach_fields_and_hyperparameters(project: Path) -> None:
    spec = spec_from_dict(_valid(), base_dir=project)
    changed = apply_overrides(
        spec,
        ["epochs=7", "lr=1e-3", "compute.backend=docker", "compute.instance_count=2", "name=other"],
    )
    assert changed.hyperparameters == {"epochs": 7, "lr": 1e-3}
    assert changed.compute.backend is Backend.DOCKER and changed.compute.instance_count == 2
    assert changed.name == "other"


def test_override_without_equals_is_rejected(project: Path) -> None:
    spec = spec_from_dict(_valid(), base_dir=project)
    with pytest.raises(SpecError, match="key=value"):
        apply_overrides(spec, ["epochs"])


def test_override_that_breaks_validation_is_reported(project: Path) -> None:
    spec = spec_from_dict(_valid(), base_dir=project)
    with pytest.raises(SpecError, match="instance_count"):
        apply_overrides(spec, ["compute.instance_count=0"])


def test_hyperparameters_file_must_be_a_mapping(project: Path) -> None:
    """Found when the spec is validated (issue 16), not only at run time after an upload."""
    (project / "bad.json").write_text("[1, 2]")
    with pytest.raises(SpecError, match="mapping"):
        spec_from_dict(_valid(hyperparameters_file="bad.json"), base_dir=project)


def test_json_schema_carries_titles_and_descriptions_for_forms() -> None:
    schema = JobSpec.model_json_schema()
    assert schema["properties"]["name"]["title"] == "Job name"
    assert "description" in schema["properties"]["max_runtime_seconds"]
