"""The sweep file: a job spec plus `sweep:`, checked field by field against SageMaker's limits."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer_gui.core.errors import SpecError, UserError
from trainer_gui.core.spec import Backend
from trainer_gui.core.spec.sweep import (
    MAX_GRID_POINTS,
    CategoricalValues,
    ContinuousRange,
    IntegerRange,
    SweepSpec,
    dump_sweep,
    grid_points,
    load_sweep,
    max_categorical_values,
    sweep_from_dict,
    sweep_from_text,
    trial_spec,
)


def _sweep_data(**sweep_over: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "parameters": {
            "lr": {"type": "continuous", "min": 1e-4, "max": 1e-1, "scale": "log"},
            "batch_size": {"type": "integer", "min": 16, "max": 128},
            "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
        },
        "strategy": "random",
        "objective": {"metric": "val_loss", "goal": "minimize"},
        "max_trials": 12,
        "max_parallel": 2,
    }
    section.update(sweep_over)
    return {
        "name": "mnist-sweep",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "hyperparameters": {"lr": 0.01, "batch_size": 32, "optimizer": "adam", "epochs": 3},
        "metric_definitions": [
            {"name": "val_loss", "regex": "val_loss=([0-9.]+)"},
            {"name": "accuracy", "regex": "acc=([0-9.]+)"},
        ],
        "sweep": section,
    }


def _problems(data: Any, base: Path | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        sweep_from_dict(data, base_dir=base)
    return info.value.problems


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('hi')\n")
    return tmp_path


def test_a_sweep_file_loads_with_its_spec_and_section(project: Path) -> None:
    path = project / "sweep.yaml"
    path.write_text(yaml.safe_dump(_sweep_data()))
    sweep = load_sweep(path)
    assert isinstance(sweep, SweepSpec)
    assert sweep.job.name == "mnist-sweep"
    assert sweep.base_dir == project
    params = sweep.sweep.parameters
    assert isinstance(params["lr"], ContinuousRange) and params["lr"].scale == "log"
    assert isinstance(params["batch_size"], IntegerRange) and params["batch_size"].scale == "auto"
    assert isinstance(params["optimizer"], CategoricalValues)
    assert sweep.sweep.strategy == "random"
    assert sweep.sweep.objective.goal == "minimize"
    assert (sweep.sweep.max_trials, sweep.sweep.max_parallel) == (12, 2)
    assert sweep.sweep.early_stopping == "off"


def test_sagemaker_names_and_short_forms_are_accepted() -> None:
    sweep = sweep_from_dict(
        _sweep_data(
            parameters={
                "lr": {"type": "float", "min": 0.001, "max": 0.1, "scale": "Logarithmic"},
                "batch_size": {"type": "int", "min": 16, "max": 64, "scale": "Linear"},
                "optimizer": ["adam", "sgd"],
            },
            strategy="Bayesian",
            objective={"metric": "accuracy", "goal": "Maximize"},
        )
    )
    params = sweep.sweep.parameters
    assert params["lr"].scale == "log"  # type: ignore[union-attr]
    assert params["batch_size"].scale == "linear"  # type: ignore[union-attr]
    assert params["optimizer"].values == ["adam", "sgd"]  # type: ignore[union-attr]
    assert sweep.sweep.strategy == "bayesian"
    assert sweep.sweep.objective.goal == "maximize"


def test_the_kind_of_a_range_follows_its_bounds_when_type_is_left_out() -> None:
    sweep = sweep_from_dict(
        _sweep_data(parameters={"lr": {"min": 0.1, "max": 1}, "batch_size": {"min": 1, "max": 8}})
    )
    assert isinstance(sweep.sweep.parameters["lr"], ContinuousRange)
    assert isinstance(sweep.sweep.parameters["batch_size"], IntegerRange)
    [problem] = _problems(_sweep_data(parameters={"lr": {"scale": "log"}}))
    assert problem.startswith("sweep.parameters.lr: give type: continuous, integer or categorical")


def test_yaml_off_and_on_mean_early_stopping_off_and_auto() -> None:
    text = yaml.safe_dump(_sweep_data()).replace(
        "max_parallel: 2", "max_parallel: 2\n  early_stopping: on"
    )
    assert "early_stopping: on" in text
    assert sweep_from_text(text).sweep.early_stopping == "auto"
    text = text.replace("early_stopping: on", "early_stopping: off")
    assert sweep_from_text(text).sweep.early_stopping == "off"


@pytest.mark.parametrize(
    ("parameters", "field", "words"),
    [
        (
            {"lr": {"type": "continuous", "min": 0.5, "max": 0.1}},
            "sweep.parameters.lr",
            "less than max",
        ),
        (
            {"batch_size": {"type": "integer", "min": 64, "max": 16}},
            "sweep.parameters.batch_size",
            "greater than max",
        ),
        (
            {"lr": {"type": "continuous", "min": 0, "max": 0.1, "scale": "log"}},
            "sweep.parameters.lr",
            "min > 0",
        ),
        (
            {"batch_size": {"type": "integer", "min": -1, "max": 8, "scale": "log"}},
            "sweep.parameters.batch_size",
            "min > 0",
        ),
        (
            {"lr": {"type": "continuous", "min": 0.5, "max": 2, "scale": "reverse_log"}},
            "sweep.parameters.lr",
            "< 1",
        ),
        (
            {"batch_size": {"type": "integer", "min": 1, "max": 8, "scale": "reverse_log"}},
            "sweep.parameters.batch_size",
            "continuous",
        ),
        (
            {"lr": {"type": "continuous", "min": 0.1, "max": 0.2, "scale": "cubic"}},
            "sweep.parameters.lr",
            "not one of",
        ),
        (
            {"optimizer": {"type": "categorical", "values": []}},
            "sweep.parameters.optimizer",
            "at least one",
        ),
        (
            {"optimizer": {"type": "categorical", "values": ["a", "a"]}},
            "sweep.parameters.optimizer",
            "twice",
        ),
        (
            {"optimizer": {"type": "categorical", "values": [str(i) for i in range(31)]}},
            "sweep.parameters.optimizer",
            "at most 30",
        ),
        (
            {"optimizer": {"type": "categorical", "values": [None]}},
            "sweep.parameters.optimizer",
            "plain value",
        ),
        (
            {"lr": {"type": "continuous", "min": True, "max": 2}},
            "sweep.parameters.lr",
            "not a number",
        ),
        (
            {"lr": {"type": "continuous", "min": float("nan"), "max": 2}},
            "sweep.parameters.lr",
            "finite",
        ),
        ({"lr": {"type": "normal", "min": 0, "max": 2}}, "sweep.parameters.lr", "continuous"),
        ({}, "sweep.parameters", "at least one"),
    ],
)
def test_a_bad_parameter_is_named_with_the_reason(parameters: Any, field: str, words: str) -> None:
    problems = _problems(_sweep_data(parameters=parameters))
    assert any(p.startswith(field) and words in p for p in problems), problems


def test_the_categorical_limit_is_the_service_models() -> None:
    assert max_categorical_values() == 30


def test_a_parameter_that_is_no_hyperparameter_of_the_spec_is_refused() -> None:
    data = _sweep_data(parameters={"learning_rate": {"type": "continuous", "min": 0.1, "max": 1}})
    [problem] = _problems(data)
    assert problem.startswith("sweep.parameters.learning_rate: not a hyperparameter")
    assert "batch_size" in problem  # says which ones the spec has


def test_a_parameter_in_the_hyperparameters_file_may_be_swept(project: Path) -> None:
    (project / "hp.yaml").write_text("dropout: 0.1\n")
    data = _sweep_data(parameters={"dropout": {"type": "continuous", "min": 0.0, "max": 0.5}})
    data["hyperparameters_file"] = "hp.yaml"
    assert "dropout" in sweep_from_dict(data, base_dir=project).sweep.parameters


def test_an_objective_that_is_no_metric_of_the_spec_is_refused() -> None:
    [problem] = _problems(_sweep_data(objective={"metric": "loss", "goal": "minimize"}))
    assert problem.startswith("sweep.objective.metric: 'loss' is not one of the spec's metrics")
    assert "val_loss" in problem
    data = _sweep_data()
    data["metric_definitions"] = []
    [problem] = _problems(data)
    assert "no metric_definitions" in problem


def test_a_bad_goal_and_a_missing_objective_are_named() -> None:
    problems = _problems(_sweep_data(objective={"metric": "val_loss", "goal": "lowest"}))
    assert any(p.startswith("sweep.objective.goal") for p in problems), problems
    data = _sweep_data()
    del data["sweep"]["objective"]
    assert any(p.startswith("sweep.objective: required") for p in _problems(data))


def test_a_grid_too_large_for_max_trials_or_at_all_is_refused() -> None:
    values = {"type": "categorical", "values": list(range(30))}
    grid = {"optimizer": values, "batch_size": values, "lr": values}  # 27,000 points
    problems = _problems(_sweep_data(strategy="grid", parameters=grid, max_trials=None))
    assert any("27,000 points" in p and f"{MAX_GRID_POINTS:,}" in p for p in problems), problems
    small = {"optimizer": {"type": "categorical", "values": ["adam", "sgd", "rmsprop"]}}
    [problem] = _problems(_sweep_data(strategy="grid", parameters=small, max_trials=2))
    assert problem.startswith("sweep.max_trials: the grid has 3 points but max_trials is 2")


def test_a_grid_sweep_counts_its_points_and_lists_them() -> None:
    sweep = sweep_from_dict(
        _sweep_data(
            strategy="grid",
            max_trials=None,
            parameters={
                "optimizer": {"values": ["adam", "sgd"]},
                "batch_size": {"type": "integer", "min": 16, "max": 18},
            },
        )
    )
    points = grid_points(sweep)
    assert sweep.sweep.trial_count == 6 == len(points)
    assert points[0] == {"optimizer": "adam", "batch_size": 16}
    assert points[-1] == {"optimizer": "sgd", "batch_size": 18}


def test_a_grid_cannot_cover_a_continuous_range() -> None:
    [problem] = _problems(_sweep_data(strategy="grid", max_trials=None))
    assert problem.startswith("sweep.parameters.lr: a grid cannot cover a continuous range")


def test_sagemakers_grid_takes_categorical_parameters_only() -> None:
    data = _sweep_data(
        strategy="grid",
        max_trials=None,
        parameters={"batch_size": {"type": "integer", "min": 1, "max": 4}},
    )
    assert sweep_from_dict(data).sweep.trial_count == 4  # locally an integer grid is fine
    data["compute"] = {"backend": "sagemaker", "instance_type": "ml.m5.xlarge"}
    [problem] = _problems(data)
    assert problem.startswith(
        "sweep.parameters.batch_size: SageMaker's grid search takes categorical"
    )


def test_trial_and_parallel_limits_follow_sagemakers_tuning_limits() -> None:
    problems = _problems(_sweep_data(max_trials=751, strategy="bayesian"))
    assert any(p.startswith("sweep.max_trials") and "750" in p for p in problems), problems
    assert sweep_from_dict(_sweep_data(max_trials=751)).sweep.max_trials == 751  # random: 10,000
    problems = _problems(_sweep_data(max_parallel=101))
    assert any(p.startswith("sweep.max_parallel") and "100" in p for p in problems), problems
    problems = _problems(_sweep_data(max_trials=None))
    assert any(p.startswith("sweep.max_trials: required for the random strategy") for p in problems)
    problems = _problems(_sweep_data(max_trials=0))
    assert any(p.startswith("sweep.max_trials") for p in problems), problems


def test_more_than_thirty_parameters_are_refused() -> None:
    data = _sweep_data(parameters={f"p{i}": {"values": [1, 2]} for i in range(31)})
    data["hyperparameters"] = {f"p{i}": 1 for i in range(31)}
    assert any("at most 30" in p for p in _problems(data))


def test_hyperband_stops_trials_itself_so_early_stopping_must_be_off() -> None:
    [problem] = _problems(_sweep_data(strategy="hyperband", early_stopping="auto"))
    assert problem.startswith("sweep.early_stopping:")
    sweep = sweep_from_dict(
        _sweep_data(strategy="hyperband", hyperband={"min_resource": 1, "max_resource": 9})
    )
    assert sweep.sweep.hyperband.max_resource == 9
    [problem] = _problems(_sweep_data(hyperband={"min_resource": 1}))
    assert problem.startswith("sweep.hyperband: only applies to strategy: hyperband")


def test_the_local_pruner_has_sensible_defaults_and_checks() -> None:
    sweep = sweep_from_dict(_sweep_data(early_stopping="auto"))
    assert sweep.sweep.pruner.kind == "median"
    assert sweep.sweep.pruner.startup_trials == 5
    problems = _problems(_sweep_data(pruner={"kind": "percentile"}))
    assert any(p.startswith("sweep.pruner.kind") for p in problems), problems


def test_a_sweep_of_a_command_is_refused() -> None:
    data = _sweep_data()
    data["source"] = {"command": ["python", "-c", "pass"]}
    assert any("runs a command" in p for p in _problems(data))


def test_spec_problems_and_sweep_problems_come_together() -> None:
    data = _sweep_data(max_parallel=0)
    data["name"] = "bad name!"
    problems = _problems(data)
    assert any(p.startswith("name:") for p in problems)
    assert any(p.startswith("sweep.max_parallel") for p in problems)


def test_a_file_without_a_sweep_section_is_refused_by_name() -> None:
    data = _sweep_data()
    del data["sweep"]
    assert _problems(data) == [
        "sweep: required; add a sweep: section (parameters, strategy, objective, ...)"
    ]
    assert _problems({**data, "sweep": [1]})[0].startswith("sweep: must be a mapping")
    assert _problems([1, 2])[0].startswith("a sweep file is a job spec")


def test_unknown_sweep_fields_are_named() -> None:
    problems = _problems(_sweep_data(max_trails=3))
    assert any(p.startswith("sweep.max_trails: unknown field") for p in problems), problems


def test_trial_spec_sets_the_values_and_names_the_trial() -> None:
    sweep = sweep_from_dict(_sweep_data())
    spec = trial_spec(sweep, {"lr": 0.003, "batch_size": 64.0, "optimizer": "sgd"}, 7)
    assert spec.name == "mnist-sweep-t7"
    assert spec.hyperparameters == {"lr": 0.003, "batch_size": 64, "optimizer": "sgd", "epochs": 3}
    assert isinstance(spec.hyperparameters["batch_size"], int)
    assert sweep.job.hyperparameters["lr"] == 0.01  # the sweep's spec is unchanged
    again = trial_spec(sweep, {"lr": 0.003})
    assert (
        again.name == trial_spec(sweep, {"lr": 0.003}).name != trial_spec(sweep, {"lr": 0.004}).name
    )


def test_trial_spec_keeps_the_name_valid_when_long() -> None:
    data = _sweep_data()
    data["name"] = "a" * 63
    spec = trial_spec(sweep_from_dict(data), {"lr": 0.01}, 123)
    assert spec.name.endswith("-t123") and len(spec.name) == 63


@pytest.mark.parametrize(
    "params",
    [{"lr": 5.0}, {"batch_size": 16.5}, {"optimizer": "adagrad"}, {"momentum": 0.9}, {"lr": "x"}],
)
def test_trial_spec_refuses_values_outside_the_sweep(params: dict[str, Any]) -> None:
    with pytest.raises(UserError):
        trial_spec(sweep_from_dict(_sweep_data()), params, 1)


def test_a_sweep_round_trips_through_yaml() -> None:
    sweep = sweep_from_dict(_sweep_data(early_stopping="auto"))
    again = sweep_from_text(dump_sweep(sweep))
    assert again.sweep == sweep.sweep
    assert again.job == sweep.job


def test_the_backend_is_the_specs() -> None:
    data = _sweep_data()
    data["compute"] = {"backend": "docker"}
    assert sweep_from_dict(data).backend == Backend.DOCKER


# -- hostile input: every one a SpecError with lines, never another exception ---------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "parameters",
        "strategy",
        "objective",
        "max_trials",
        "max_parallel",
        "early_stopping",
        "pruner",
        "hyperband",
        "seed",
        "max_runtime_seconds",
        "extra",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=6))
def test_any_sweep_section_gives_a_sweep_or_named_problems(section: dict[str, Any]) -> None:
    data = _sweep_data()
    data["sweep"] = section
    try:
        sweep_from_dict(data)
    except SpecError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["lr", "batch_size", "optimizer"]),
    st.dictionaries(
        st.sampled_from(["type", "min", "max", "scale", "values"]), _values, max_size=5
    ),
)
def test_any_parameter_gives_a_sweep_or_a_line_naming_it(name: str, param: dict[str, Any]) -> None:
    data = _sweep_data()
    data["sweep"]["parameters"] = {name: copy.deepcopy(param)}
    try:
        sweep_from_dict(data)
    except SpecError as exc:
        assert any(p.startswith(f"sweep.parameters.{name}") for p in exc.problems), exc.problems


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_sweep_or_a_spec_error(text: str) -> None:
    try:
        sweep_from_text(text)
    except SpecError as exc:
        assert exc.problems
