"""The sweep file: a job spec plus a `sweep:` section (parameters, strategy, objective, limits).

One file serves every backend: locally its trials are jobs run by the app (Optuna picks the
values), on SageMaker it becomes a CreateHyperParameterTuningJob request
(`core.aws.tuning`). So it is checked against SageMaker's tuning limits wherever it runs: a sweep
that validates here is also one SageMaker accepts, apart from account quotas.

Limits come from botocore's SageMaker service model where it states them (ranges per type,
values per categorical, value and name lengths, strategies, scaling types) and from the
"Resource Limits for Automatic Model Tuning" page where it does not (30 parameters searched in
all, 20 metrics, 750 training jobs, 10,000 for Random search, 100 parallel, 30 days).

Decisions (docs/sweeps.md says the same):
- a swept parameter must name a hyperparameter the spec already has (inline or in its
  hyperparameters file): that value is what a single run uses, and a misspelt name is caught
  before any trial starts instead of reaching the script as an unknown --argument;
- grid search takes categorical parameters, as SageMaker's Grid strategy does; locally an integer
  range may also be part of a grid (every whole number from min to max);
- `early_stopping: auto` asks SageMaker to stop weak trials, and locally turns on the `pruner`
  (median or hyperband); the hyperband strategy stops trials itself, so it needs
  `early_stopping: off` (SageMaker's rule, kept locally too).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trainer_gui.core.errors import SpecError, UserError
from trainer_gui.core.spec import io as spec_io
from trainer_gui.core.spec.model import JOB_NAME_RE, Backend, JobSpec, WholeNumber

# -- SageMaker's tuning limits ------------------------------------------------------------------

#: "Number of hyperparameters that can be searched" (all kinds together; not in the model).
MAX_SEARCHED_PARAMETERS = 30
#: "Number of metrics defined per hyperparameter tuning job".
MAX_TUNING_METRICS = 20
#: Training jobs per tuning job: 750 for Bayesian, Hyperband and Grid; Random can go to 10,000.
MAX_TRIALS = 750
MAX_TRIALS_RANDOM = 10_000
#: Parallel training jobs per tuning job: 10 by default, raised on request up to 100.
MAX_PARALLEL = 100
DEFAULT_PARALLEL_QUOTA = 10
#: "Maximum run time for a hyperparameter tuning job": 30 days (the model allows more).
MAX_SWEEP_RUNTIME = 30 * 24 * 3600
#: A local grid larger than this is refused: a sweep of 10,000 runs is a mistake, not a plan.
MAX_GRID_POINTS = 10_000

#: Friendly scale names -> SageMaker's ScalingType (HyperParameterScalingType).
SCALING_TYPES = {
    "auto": "Auto",
    "linear": "Linear",
    "log": "Logarithmic",
    "reverse_log": "ReverseLogarithmic",
}
#: Friendly strategy names -> SageMaker's HyperParameterTuningJobStrategyType.
STRATEGIES = {"grid": "Grid", "random": "Random", "bayesian": "Bayesian", "hyperband": "Hyperband"}
GOALS = {"minimize": "Minimize", "maximize": "Maximize"}
EARLY_STOPPING = {"off": "Off", "auto": "Auto"}

_TRIAL_SUFFIX_RE = re.compile(r"^[a-zA-Z0-9]+$")


def _service_model() -> Any:
    """botocore's SageMaker model (the tuning request's own checks); the limits below come
    from core.spec.limits' cache of it, without loading it in a process that has them."""
    from trainer_gui.core.spec.limits import sagemaker_model  # one load for jobs and sweeps

    return sagemaker_model()


def _shape_meta(name: str, key: str) -> Any:
    from trainer_gui.core.spec import limits

    return limits.shape_fact(name, key)


def _shape_enum(name: str) -> list[str]:
    from trainer_gui.core.spec import limits

    return limits.shape_enum(name)


def max_ranges_per_type() -> int:
    """ContinuousParameterRanges / IntegerParameterRanges / CategoricalParameterRanges max."""
    return int(_shape_meta("ContinuousParameterRanges", "max"))


def max_categorical_values() -> int:
    return int(_shape_meta("ParameterValues", "max"))


def max_value_length() -> int:
    return int(_shape_meta("ParameterValue", "max"))


def max_parameter_name() -> int:
    return int(_shape_meta("ParameterKey", "max"))


def max_metric_name() -> int:
    return int(_shape_meta("MetricName", "max"))


def min_sweep_runtime() -> int:
    from trainer_gui.core.spec import limits

    low = limits.shape_member_fact("ResourceLimits", "MaxRuntimeInSeconds", "min")
    return int(low) if low is not None else 1


# -- helpers ------------------------------------------------------------------------------------


def _alias(table: Mapping[str, str], what: str) -> Any:
    """Accept the friendly name or SageMaker's own (any case), keep the friendly one."""

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            for friendly, service in table.items():
                if key in (friendly, service.lower(), friendly.replace("_", "")):
                    return friendly
            choices = ", ".join(table)
            raise ValueError(f"{what} {value!r} is not one of {choices}")
        return value

    return BeforeValidator(convert)


def _on_off(value: Any) -> Any:
    """YAML 1.1 reads a bare `off` as false and `on` as true; they mean off and auto here."""
    if value is False:
        return "off"
    if value is True:
        return "auto"
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


FiniteNumber = Annotated[float, BeforeValidator(_finite)]
Scale = Literal["auto", "linear", "log", "reverse_log"]
CategoricalValue = str | int | float | bool


def value_text(value: Any) -> str:
    """A value as SageMaker carries it (strings): `0.001`, `32`, `true`, `adam`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


# -- parameters ---------------------------------------------------------------------------------


class ContinuousRange(_Model):
    """A real-valued range; SageMaker's ContinuousParameterRange."""

    type: Literal["continuous"]
    min: FiniteNumber
    max: FiniteNumber
    scale: Annotated[Scale, _alias(SCALING_TYPES, "scale")] = "auto"

    @model_validator(mode="after")
    def _bounds(self) -> ContinuousRange:
        if self.min >= self.max:
            raise ValueError(
                f"min ({self.min:g}) must be less than max ({self.max:g}); swap them, or set "
                "the hyperparameter in the spec to sweep nothing"
            )
        if self.scale == "log" and self.min <= 0:
            raise ValueError(
                f"log scale needs min > 0 (min is {self.min:g}); raise min or use linear"
            )
        if self.scale == "reverse_log" and not (self.min >= 0 and self.max < 1):
            raise ValueError(
                "reverse_log scale needs 0 <= min < max < 1 (for values close to 1, e.g. a "
                "momentum); use log or linear otherwise"
            )
        for which, number in (("min", self.min), ("max", self.max)):
            if len(value_text(number)) > max_value_length():
                raise ValueError(f"{which} is too long to send to SageMaker")
        return self


class IntegerRange(_Model):
    """A whole-number range (both ends included); SageMaker's IntegerParameterRange."""

    type: Literal["integer"]
    min: WholeNumber
    max: WholeNumber
    scale: Annotated[Scale, _alias(SCALING_TYPES, "scale")] = "auto"

    @model_validator(mode="after")
    def _bounds(self) -> IntegerRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max}); swap them")
        if self.scale == "log" and self.min <= 0:
            raise ValueError(
                f"log scale needs min > 0 (min is {self.min}); raise min or use linear"
            )
        if self.scale == "reverse_log":
            raise ValueError(
                "reverse_log scale is for continuous ranges inside [0, 1); use linear or log"
            )
        for which, number in (("min", self.min), ("max", self.max)):
            if len(str(number)) > max_value_length():
                raise ValueError(f"{which} has too many digits to send to SageMaker")
        return self

    @property
    def size(self) -> int:
        return self.max - self.min + 1


class CategoricalValues(_Model):
    """A list of values to pick from; SageMaker's CategoricalParameterRange (strings there)."""

    type: Literal["categorical"]
    values: list[CategoricalValue]

    @field_validator("values", mode="before")
    @classmethod
    def _plain_values(cls, v: Any) -> Any:
        if isinstance(v, list):
            for item in v:
                if item is None or isinstance(item, (list, dict)):
                    raise ValueError(
                        f"{item!r} is not a plain value; give numbers, strings or true/false"
                    )
                if isinstance(item, float):
                    _finite(item)
        return v

    @field_validator("values")
    @classmethod
    def _values_limits(cls, v: list[CategoricalValue]) -> list[CategoricalValue]:
        most = max_categorical_values()
        if not v:
            raise ValueError("no values; give at least one")
        if len(v) > most:
            raise ValueError(f"{len(v)} values; SageMaker takes at most {most} per parameter")
        seen: set[str] = set()
        for item in v:
            text = value_text(item)
            if len(text) > max_value_length():
                raise ValueError(
                    f"the value {text[:30]!r}... is {len(text)} characters; at most "
                    f"{max_value_length()}"
                )
            if text in seen:
                raise ValueError(f"the value {text!r} is listed twice; keep one")
            seen.add(text)
        return v

    @property
    def size(self) -> int:
        return len(self.values)


Parameter = Annotated[
    ContinuousRange | IntegerRange | CategoricalValues, Field(discriminator="type")
]


def _parameter_type(value: Any) -> Any:
    """`type` may be left out where the shape says it: `values:` is categorical."""
    if isinstance(value, Mapping) and "type" not in value:
        if "values" in value:
            return {"type": "categorical", **value}
        low, high = value.get("min"), value.get("max")
        if low is not None and high is not None:
            whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
            return {"type": "integer" if whole else "continuous", **value}
        raise ValueError("give type: continuous, integer or categorical (with min/max or values)")
    if isinstance(value, list):  # lr: [0.1, 0.01]  is a categorical too
        return {"type": "categorical", "values": value}
    if isinstance(value, Mapping) and isinstance(value.get("type"), str):
        kind = value["type"].strip().lower()
        kind = {"float": "continuous", "int": "integer", "choice": "categorical"}.get(kind, kind)
        return {**value, "type": kind}
    return value


# -- the sweep section ------------------------------------------------------------------------


class Objective(_Model):
    """What the sweep optimizes: one of the spec's metric definitions."""

    metric: str = Field(..., min_length=1, title="Metric")
    goal: Annotated[Literal["minimize", "maximize"], _alias(GOALS, "goal")] = Field(
        ..., title="Goal"
    )


class Pruner(_Model):
    """Local early stopping (Optuna pruners), used when `early_stopping: auto`.

    median: stop a trial whose metric at a step is worse than the median of earlier trials at
    that step, after `startup_trials` complete trials and `warmup_steps` steps of its own.
    hyperband: successive halving from `min_resource` steps, `reduction_factor` at a time.
    """

    kind: Literal["median", "hyperband"] = "median"
    startup_trials: WholeNumber = Field(5, ge=0, le=1000)
    warmup_steps: WholeNumber = Field(0, ge=0)
    interval_steps: WholeNumber = Field(1, ge=1)
    min_resource: WholeNumber = Field(1, ge=1)
    max_resource: WholeNumber | Literal["auto"] = "auto"
    reduction_factor: WholeNumber = Field(3, ge=2, le=100)

    @field_validator("max_resource")
    @classmethod
    def _max_resource(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("max_resource must be 1 or more, or auto")
        return v


class Hyperband(_Model):
    """The hyperband strategy's resource bounds (SageMaker's HyperbandStrategyConfig): the
    fewest and most epochs (or steps the script reports) a trial gets."""

    min_resource: WholeNumber | None = Field(None, ge=1)
    max_resource: WholeNumber | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _order(self) -> Hyperband:
        if (
            self.min_resource is not None
            and self.max_resource is not None
            and self.min_resource > self.max_resource
        ):
            raise ValueError(
                f"min_resource ({self.min_resource}) is greater than max_resource "
                f"({self.max_resource}); swap them"
            )
        return self


class SweepSettings(_Model):
    """The `sweep:` section of a sweep file."""

    parameters: dict[str, Annotated[Parameter, BeforeValidator(_parameter_type)]] = Field(
        ..., title="Parameters"
    )
    strategy: Annotated[
        Literal["grid", "random", "bayesian", "hyperband"], _alias(STRATEGIES, "strategy")
    ] = Field("random", title="Strategy")
    objective: Objective
    max_trials: WholeNumber | None = Field(
        None, ge=1, title="Max trials", description="Grid: defaults to every point of the grid."
    )
    max_parallel: WholeNumber = Field(1, ge=1, title="Trials at once")
    early_stopping: Annotated[
        Literal["off", "auto"], BeforeValidator(_on_off), _alias(EARLY_STOPPING, "early_stopping")
    ] = "off"
    pruner: Pruner = Field(default_factory=Pruner)
    hyperband: Hyperband = Field(default_factory=Hyperband)
    max_runtime_seconds: WholeNumber | None = Field(None, title="Max runtime of the whole sweep")
    seed: WholeNumber | None = Field(None, ge=0, title="Random seed")

    @field_validator("parameters")
    @classmethod
    def _parameter_limits(cls, v: dict[str, Parameter]) -> dict[str, Parameter]:
        if not v:
            raise ValueError("no parameters; name at least one hyperparameter to sweep")
        if len(v) > MAX_SEARCHED_PARAMETERS:
            raise ValueError(
                f"{len(v)} parameters; SageMaker searches at most {MAX_SEARCHED_PARAMETERS}"
            )
        most = max_ranges_per_type()
        for kind in ("continuous", "integer", "categorical"):
            count = sum(1 for p in v.values() if p.type == kind)
            if count > most:
                raise ValueError(f"{count} {kind} parameters; SageMaker takes at most {most}")
        for name in v:
            if not name or len(name) > max_parameter_name():
                raise ValueError(
                    f"parameter name {name[:40]!r} must be 1-{max_parameter_name()} chars"
                )
        return v

    @field_validator("max_runtime_seconds")
    @classmethod
    def _runtime(cls, v: int | None) -> int | None:
        if v is not None and not min_sweep_runtime() <= v <= MAX_SWEEP_RUNTIME:
            raise ValueError(
                f"{v} s; SageMaker takes {min_sweep_runtime()} s to {MAX_SWEEP_RUNTIME} s (30 days)"
            )
        return v

    @model_validator(mode="after")
    def _own_checks(self) -> SweepSettings:
        problems = self.settings_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def settings_problems(self) -> list[str]:
        """What is wrong with the section on its own (the spec is checked by `SweepSpec`)."""
        problems = []
        if self.strategy == "grid":
            continuous = [n for n, p in self.parameters.items() if p.type == "continuous"]
            if continuous:
                problems.append(
                    f"sweep.parameters.{continuous[0]}: a grid cannot cover a continuous range; "
                    "list the values (values: [...]) or pick random or bayesian"
                )
            elif self.grid_size > MAX_GRID_POINTS:
                problems.append(
                    f"sweep.parameters: the grid has {self.grid_size:,} points; at most "
                    f"{MAX_GRID_POINTS:,} (fewer values, or random or bayesian with max_trials)"
                )
            elif self.max_trials is not None and self.grid_size > self.max_trials:
                problems.append(
                    f"sweep.max_trials: the grid has {self.grid_size:,} points but max_trials is "
                    f"{self.max_trials}; raise max_trials, leave it out, or list fewer values"
                )
        elif self.max_trials is None:
            problems.append(
                f"sweep.max_trials: required for the {self.strategy} strategy; how many trials "
                "to run, e.g. 20"
            )
        most = MAX_TRIALS_RANDOM if self.strategy == "random" else MAX_TRIALS
        trials = self.trial_count
        if trials > most:
            what = "the grid" if self.max_trials is None else "max_trials"
            problems.append(
                f"sweep.max_trials: {what} makes {trials:,} trials; SageMaker runs at most "
                f"{most:,} with the {self.strategy} strategy"
            )
        if self.max_parallel > MAX_PARALLEL:
            problems.append(
                f"sweep.max_parallel: {self.max_parallel}; SageMaker runs at most {MAX_PARALLEL} "
                "trials at once"
            )
        if self.strategy == "hyperband" and self.early_stopping == "auto":
            problems.append(
                "sweep.early_stopping: the hyperband strategy stops weak trials itself; set "
                "early_stopping: off"
            )
        if self.strategy != "hyperband" and (
            self.hyperband.min_resource is not None or self.hyperband.max_resource is not None
        ):
            problems.append(
                "sweep.hyperband: only applies to strategy: hyperband; remove it or set the "
                "strategy"
            )
        return problems

    @property
    def grid_size(self) -> int:
        """Points in the grid (categorical values, and integer ranges where a grid takes them)."""
        size = 1
        for p in self.parameters.values():
            if isinstance(p, (CategoricalValues, IntegerRange)):
                size *= p.size
                if size > MAX_TRIALS_RANDOM * 1000:  # enough to say it is too large
                    return size
        return size

    @property
    def trial_count(self) -> int:
        """How many trials the sweep runs at most."""
        if self.max_trials is not None:
            return self.max_trials
        return self.grid_size if self.strategy == "grid" else 0


# -- the sweep file -------------------------------------------------------------------------


class SweepSpec(_Model):
    """A sweep file: the job spec (`job`) and its `sweep:` section."""

    job: JobSpec
    sweep: SweepSettings

    @model_validator(mode="after")
    def _cross_checks(self) -> SweepSpec:
        problems = sweep_problems(self.job, self.sweep)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def backend(self) -> Backend:
        return self.job.compute.backend

    @property
    def base_dir(self) -> Path | None:
        return self.job.base_dir


def sweep_problems(job: JobSpec, sweep: SweepSettings) -> list[str]:
    """Every reason the section does not fit its spec, one line each, naming the field."""
    problems: list[str] = []
    metrics = [m.name for m in job.metric_definitions]
    metric = sweep.objective.metric
    if not metrics:
        problems.append(
            f"sweep.objective.metric: {metric!r} is not measured: the spec has no "
            "metric_definitions; add one whose regex captures it"
        )
    elif metric not in metrics:
        problems.append(
            f"sweep.objective.metric: {metric!r} is not one of the spec's metrics "
            f"({', '.join(metrics)}); use one of them or add a metric definition"
        )
    if job.compute.backend == Backend.SAGEMAKER and len(metrics) > MAX_TUNING_METRICS:
        problems.append(
            f"metric_definitions: {len(metrics)} metrics; a SageMaker tuning job takes at most "
            f"{MAX_TUNING_METRICS}"
        )
    if len(metric) > max_metric_name():
        problems.append(f"sweep.objective.metric: longer than {max_metric_name()} characters")
    if job.source.command is not None:
        problems.append(
            "sweep.parameters: the spec runs a command, which gets no hyperparameter arguments; "
            "sweep a script (source_dir and entry_point)"
        )
    known = _known_hyperparameters(job)
    for name in sweep.parameters:
        if name not in known:
            have = ", ".join(sorted(known)[:10]) or "none"
            problems.append(
                f"sweep.parameters.{name}: not a hyperparameter of the spec (it has: {have}); "
                f"add {name}: <default> under hyperparameters, or fix the name"
            )
    if job.compute.backend == Backend.SAGEMAKER and sweep.strategy == "grid":
        integers = [n for n, p in sweep.parameters.items() if p.type == "integer"]
        if integers:
            problems.append(
                f"sweep.parameters.{integers[0]}: SageMaker's grid search takes categorical "
                "parameters only; list the values (values: [...])"
            )
    return problems


def _known_hyperparameters(job: JobSpec) -> set[str]:
    names = set(job.hyperparameters)
    if job.hyperparameters_file and job.base_dir is not None:
        with contextlib.suppress(SpecError):  # the spec's own check names a bad file
            names |= set(job.all_hyperparameters())
    return names


# -- loading ----------------------------------------------------------------------------------


def sweep_from_dict(
    data: Mapping[str, Any], base_dir: Path | None = None, source: str | None = None
) -> SweepSpec:
    """Plain data (a job spec with a `sweep:` mapping) to a checked sweep, or a SpecError."""
    if not isinstance(data, Mapping):
        raise SpecError(
            ["a sweep file is a job spec (name:, source:, ...) with a sweep: section"], source
        )
    if "sweep" not in data:
        raise SpecError(
            ["sweep: required; add a sweep: section (parameters, strategy, objective, ...)"],
            source,
        )
    section = data["sweep"]
    if not isinstance(section, Mapping):
        raise SpecError(
            ["sweep: must be a mapping (parameters:, strategy:, objective:, ...)"], source
        )
    job_data = {k: v for k, v in data.items() if k != "sweep"}
    problems: list[str] = []
    job: JobSpec | None = None
    try:
        job = spec_io.spec_from_dict(job_data, base_dir=base_dir, source=source)
    except SpecError as exc:
        problems += exc.problems
    settings: SweepSettings | None = None
    plain = spec_io._check_plain_data(section)
    if plain:
        problems += [f"sweep.{p}" for p in plain]
    else:
        try:
            settings = SweepSettings.model_validate(dict(section))
        except ValidationError as exc:
            problems += _sweep_lines(exc, "sweep")
    if problems or job is None or settings is None:
        raise SpecError(problems, source)
    cross = sweep_problems(job, settings)
    if cross:
        raise SpecError(cross, source)
    sweep = SweepSpec.model_construct(job=job, sweep=settings)
    return sweep


_TAG_IN_PATH = re.compile(r"^(parameters\.[^.:]+)\.(?:continuous|integer|categorical)\b")


def _sweep_lines(exc: ValidationError, prefix: str) -> list[str]:
    """pydantic's lines under `sweep.`, with the parameter kind pydantic adds to the path
    dropped, and the section's own joined problems split back into lines."""
    lines = []
    for line in spec_io.format_validation_error(exc):
        parts = line.split("; sweep.")
        for i, part in enumerate(parts):
            if i > 0:
                lines.append("sweep." + part)
            elif part.startswith("sweep."):
                lines.append(part)
            else:
                lines.append(prefix + "." + _TAG_IN_PATH.sub(r"\1", part))
    return lines


def sweep_from_text(
    text: str, base_dir: Path | None = None, source: str | None = None
) -> SweepSpec:
    data = spec_io.parse_spec_yaml(text, source)
    if data is None:
        raise SpecError(
            ["the file is empty; a sweep file is a job spec with a sweep: section"], source
        )
    return sweep_from_dict(data, base_dir=base_dir, source=source)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; relative paths are resolved against its folder."""
    path = Path(path)
    text = spec_io._read_spec_text(path)
    try:
        base_dir = path.resolve().parent
    except (OSError, RuntimeError) as exc:
        raise SpecError([f"cannot read {path}: {exc}"]) from None
    return sweep_from_text(text, base_dir=base_dir, source=str(path))


def sweep_to_dict(sweep: SweepSpec) -> dict[str, Any]:
    """The sweep file's plain data (the spec's fields and `sweep:`), defaults left out."""
    data = spec_io.spec_to_dict(sweep.job)
    data["sweep"] = sweep.sweep.model_dump(mode="json", exclude_defaults=True)
    return data


def dump_sweep(sweep: SweepSpec) -> str:
    import yaml

    return yaml.safe_dump(sweep_to_dict(sweep), sort_keys=False, allow_unicode=True)


# -- trials -----------------------------------------------------------------------------------


def grid_points(sweep: SweepSpec | SweepSettings) -> list[dict[str, Any]]:
    """Every point of a grid sweep, in file order (the last parameter varies fastest)."""
    settings = sweep.sweep if isinstance(sweep, SweepSpec) else sweep
    axes: list[list[Any]] = []
    for name, p in settings.parameters.items():
        if isinstance(p, CategoricalValues):
            axes.append(list(p.values))
        elif isinstance(p, IntegerRange):
            axes.append(list(range(p.min, p.max + 1)))
        else:
            raise UserError(f"sweep.parameters.{name}: a grid cannot cover a continuous range")
    if settings.grid_size > MAX_GRID_POINTS:
        raise UserError(f"sweep.parameters: the grid has more than {MAX_GRID_POINTS:,} points")
    names = list(settings.parameters)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]


def check_trial_values(sweep: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's values, typed as the parameters say; a value outside its range is refused."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        p = sweep.sweep.parameters.get(name)
        if p is None:
            raise UserError(f"{name!r} is not a parameter of the sweep")
        if isinstance(p, CategoricalValues):
            match = [v for v in p.values if v == value or value_text(v) == value_text(value)]
            if not match:
                raise UserError(f"{name}: {value!r} is not one of its values")
            out[name] = match[0]
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{name}: {value!r} is not a number") from None
        if isinstance(p, IntegerRange):
            if number != int(number):
                raise UserError(f"{name}: {value!r} is not a whole number")
            number = int(number)
        if not p.min <= number <= p.max:
            raise UserError(f"{name}: {value!r} is outside {p.min}..{p.max}")
        out[name] = number
    return out


def trial_name(base: str, trial: int | str) -> str:
    """`<spec name>-t<trial>`, cut so that it stays a valid job name (63 characters)."""
    suffix = f"t{trial}" if isinstance(trial, int) else str(trial)
    if not _TRIAL_SUFFIX_RE.match(suffix):
        raise UserError(f"trial suffix {suffix!r} must be letters and digits")
    head = base[: 63 - len(suffix) - 1].rstrip("-")
    name = f"{head}-{suffix}"
    if not JOB_NAME_RE.match(name):
        raise UserError(f"trial name {name!r} is not a valid job name")
    return name


def trial_spec(
    sweep: SweepSpec, params: Mapping[str, Any], trial: int | str | None = None
) -> JobSpec:
    """The job spec of one trial: the sweep's spec with `params` set and a trial name.

    `trial` (a number or a short letters-and-digits tag) names it `<name>-t<trial>`; without it
    a short hash of the values does, so the same values always get the same name.
    """
    values = check_trial_values(sweep, params)
    if trial is None:
        digest = hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[
            :8
        ]
        trial = f"h{digest}"
    job = sweep.job
    hyperparameters = {**job.hyperparameters, **values}
    spec = job.model_copy(
        update={"name": trial_name(job.name, trial), "hyperparameters": hyperparameters},
        deep=True,
    )
    return spec.with_base_dir(job.base_dir)
