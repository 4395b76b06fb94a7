"""A sweep file on SageMaker: the CreateHyperParameterTuningJob request, and following its trials.

The training part of the request is the CreateTrainingJob request the app sends for the sweep's
spec (`request.build_request`, after the same uploads, `SageMakerRunner.prepare`), turned into a
TrainingJobDefinition: the swept hyperparameters leave StaticHyperParameters, the job name and
tags move up. So a trial runs exactly as a single job of that spec would, with the tuned values.

Ranges are encoded as the SDK V2 tuner encodes them for a framework estimator (every range type
listed, ScalingType always given, categorical values JSON-encoded as the app's hyperparameters
are), and the request is checked with botocore's own parameter validation before it is sent.

Trials are adopted into the store like any account job (`Jobs.adopt`); the relation to the
sweep is kept in each trial's backend ids (`TUNING_KEY`, `SWEEP_KEY`, `PARAMETERS_KEY`), so the
store's schema does not change.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from trainer_gui.core.aws.errors import AwsNetworkError, AwsThrottled, aws_errors
from trainer_gui.core.aws.request import Plan, build_request
from trainer_gui.core.errors import UserError
from trainer_gui.core.spec.sweep import (
    EARLY_STOPPING,
    GOALS,
    SCALING_TYPES,
    STRATEGIES,
    CategoricalValues,
    ContinuousRange,
    IntegerRange,
    SweepSpec,
    value_text,
)

if TYPE_CHECKING:
    from trainer_gui.core.aws.session import AwsSession
    from trainer_gui.core.runners.sagemaker import SageMakerRunner
    from trainer_gui.core.store import Store

log = logging.getLogger(__name__)

#: Backend-id keys on a trial's record: the tuning job, the sweep it belongs to (the tuning job's
#: name on SageMaker) and the tuned values as SageMaker reports them.
TUNING_KEY = "tuning_job_name"
SWEEP_KEY = "sweep_id"
GROUP_KEY = "sweep"
PARAMETERS_KEY = "sweep_parameters"
#: {"metric": name, "goal": "minimize" | "maximize"}: what `sweep show` ranks the trials by.
OBJECTIVE_KEY = "sweep_objective"
REQUEST_FILE = "tuning-request.json"

TUNING_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
MAX_TUNING_NAME = 32
TERMINAL = frozenset({"Completed", "Failed", "Stopped", "Deleted"})
#: What the operation takes besides the tuning config (SDK V2 puts tags here, not per trial).
_DEFINITION_FIELDS = (
    "RoleArn",
    "AlgorithmSpecification",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "CheckpointConfig",
    "Environment",
    "VpcConfig",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "RetryStrategy",
)


# -- names ------------------------------------------------------------------------------------


def tuning_job_name(spec_name: str, now: float | None = None) -> str:
    """`<spec name>-<yymmdd-hhmmss>` in SageMaker's 32 characters (trials add `-NNN-xxxxxxxx`)."""
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    head = spec_name[: MAX_TUNING_NAME - len(stamp) - 1].rstrip("-") or "sweep"
    return f"{head}-{stamp}"


def check_tuning_name(name: str) -> str:
    if not TUNING_NAME_RE.match(name):
        raise UserError(
            f"{name!r} is not a tuning job name: 1-32 letters, digits and hyphens, starting and "
            "ending with a letter or digit"
        )
    return name


# -- the request ------------------------------------------------------------------------------


def parameter_ranges(sweep: SweepSpec) -> dict[str, list[dict[str, Any]]]:
    """ParameterRanges, every kind listed (empty when unused), as the SDK V2 tuner sends them."""
    continuous: list[dict[str, Any]] = []
    integer: list[dict[str, Any]] = []
    categorical: list[dict[str, Any]] = []
    for name, p in sweep.sweep.parameters.items():
        if isinstance(p, ContinuousRange):
            continuous.append(_range(name, value_text(p.min), value_text(p.max), p.scale))
        elif isinstance(p, IntegerRange):
            integer.append(_range(name, str(p.min), str(p.max), p.scale))
        elif isinstance(p, CategoricalValues):
            # JSON, as the app sends every hyperparameter (the toolkit and the driver decode it)
            categorical.append({"Name": name, "Values": [json.dumps(v) for v in p.values]})
    return {
        "IntegerParameterRanges": integer,
        "ContinuousParameterRanges": continuous,
        "CategoricalParameterRanges": categorical,
    }


def _range(name: str, low: str, high: str, scale: str) -> dict[str, Any]:
    return {"Name": name, "MinValue": low, "MaxValue": high, "ScalingType": SCALING_TYPES[scale]}


def tuning_job_config(sweep: SweepSpec) -> dict[str, Any]:
    """HyperParameterTuningJobConfig for the sweep's strategy, objective, limits and ranges."""
    s = sweep.sweep
    limits: dict[str, Any] = {"MaxParallelTrainingJobs": s.max_parallel}
    if s.max_trials is not None:  # a grid without it runs every point (SageMaker counts them)
        limits["MaxNumberOfTrainingJobs"] = s.max_trials
    if s.max_runtime_seconds is not None:
        limits["MaxRuntimeInSeconds"] = s.max_runtime_seconds
    config: dict[str, Any] = {
        "Strategy": STRATEGIES[s.strategy],
        "ResourceLimits": limits,
        "TrainingJobEarlyStoppingType": EARLY_STOPPING[s.early_stopping],
        "HyperParameterTuningJobObjective": {
            "Type": GOALS[s.objective.goal],
            "MetricName": s.objective.metric,
        },
        "ParameterRanges": parameter_ranges(sweep),
    }
    if s.seed is not None:
        config["RandomSeed"] = s.seed
    if s.strategy == "hyperband":
        hyperband: dict[str, int] = {}
        if s.hyperband.min_resource is not None:
            hyperband["MinResource"] = s.hyperband.min_resource
        if s.hyperband.max_resource is not None:
            hyperband["MaxResource"] = s.hyperband.max_resource
        if hyperband:
            config["StrategyConfig"] = {"HyperbandStrategyConfig": hyperband}
    return config


def training_job_definition(sweep: SweepSpec, training_request: dict[str, Any]) -> dict[str, Any]:
    """The CreateTrainingJob request of the sweep's spec as a TrainingJobDefinition."""
    swept = set(sweep.sweep.parameters)
    static = {
        k: v for k, v in training_request.get("HyperParameters", {}).items() if k not in swept
    }
    definition: dict[str, Any] = {"StaticHyperParameters": static}
    for key in _DEFINITION_FIELDS:
        if key in training_request:
            definition[key] = training_request[key]
    return definition


def build_tuning_request(
    sweep: SweepSpec, training_request: dict[str, Any], name: str
) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob request (boto3 keyword arguments), checked."""
    check_tuning_name(name)
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": tuning_job_config(sweep),
        "TrainingJobDefinition": training_job_definition(sweep, training_request),
    }
    if training_request.get("Tags"):
        request["Tags"] = training_request["Tags"]
    validate_request(request)
    return request


def tuning_request_for_plan(sweep: SweepSpec, plan: Plan, name: str) -> dict[str, Any]:
    """The request for a plan made under the tuning job's name (pure: what export shows)."""
    return build_tuning_request(sweep, build_request(sweep.job, plan), name)


def validate_request(request: dict[str, Any]) -> None:
    """botocore's own parameter validation of the request, as boto3 would run it on send."""
    from botocore.validate import ParamValidator

    from trainer_gui.core.spec.sweep import _service_model

    shape = _service_model().operation_model("CreateHyperParameterTuningJob").input_shape
    report = ParamValidator().validate(request, shape)
    if report.has_errors():
        raise UserError(
            "the tuning job request is not valid for SageMaker:\n" + report.generate_report()
        )


# -- creating ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuningStart:
    name: str
    arn: str
    region: str
    profile: str | None
    request: dict[str, Any]


def create_tuning_job(
    runner: SageMakerRunner,
    sweep: SweepSpec,
    run_dir: Path,
    name: str | None = None,
    on_status: Callable[[str], None] | None = None,
) -> TuningStart:
    """Upload what the sweep's spec needs (as for one job of it), then create the tuning job.

    `run_dir` holds the packed code and the request sent (`tuning-request.json`).
    """
    from trainer_gui.core.runners.base import JobContext

    spec = sweep.job
    name = check_tuning_name(name or tuning_job_name(spec.name))
    runner.check(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = JobContext(job_id=name, spec=spec, run_dir=run_dir)

    def sink(event: Any) -> None:
        message = getattr(event, "message", None)
        if on_status is not None and isinstance(message, str) and message:
            on_status(message)

    training = runner.prepare(ctx, sink)
    request = build_tuning_request(sweep, training, name)
    (run_dir / REQUEST_FILE).write_text(json.dumps(request, indent=2), encoding="utf-8")
    session = runner.session(spec.sagemaker.profile, spec.sagemaker.region)
    if on_status is not None:
        on_status(f"Creating the tuning job {name}")
    with aws_errors(f"creating the tuning job {name}"):
        out = session.client("sagemaker").create_hyper_parameter_tuning_job(**request)
    return TuningStart(
        name=name,
        arn=str(out.get("HyperParameterTuningJobArn", "")),
        region=session.region,
        profile=session.profile,
        request=request,
    )


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One training job of a tuning job, as ListTrainingJobsForHyperParameterTuningJob says."""

    name: str
    status: str
    parameters: dict[str, str]
    objective: float | None = None
    created_at: float | None = None


@dataclass(frozen=True)
class TuningState:
    name: str
    status: str
    strategy: str = ""
    objective_metric: str = ""
    goal: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    best: str | None = None
    failure_reason: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


def describe_tuning_job(session: AwsSession, name: str) -> TuningState:
    check_tuning_name(name)
    with aws_errors(f"reading the tuning job {name}"):
        desc = session.client("sagemaker").describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name
        )
    config = desc.get("HyperParameterTuningJobConfig") or {}
    objective = config.get("HyperParameterTuningJobObjective") or {}
    best = desc.get("BestTrainingJob") or {}
    return TuningState(
        name=name,
        status=str(desc.get("HyperParameterTuningJobStatus", "")),
        strategy=str(config.get("Strategy", "")),
        objective_metric=str(objective.get("MetricName", "")),
        goal=str(objective.get("Type", "")),
        counters={k: int(v) for k, v in (desc.get("TrainingJobStatusCounters") or {}).items()},
        best=best.get("TrainingJobName") or None,
        failure_reason=desc.get("FailureReason") or None,
    )


def list_trials(session: AwsSession, name: str) -> list[Trial]:
    """Every training job the tuning job has started so far, oldest first."""
    check_tuning_name(name)
    client = session.client("sagemaker")
    trials: list[Trial] = []
    with aws_errors(f"listing the trials of the tuning job {name}"):
        pages = client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
        for page in pages.paginate(HyperParameterTuningJobName=name):
            for item in page.get("TrainingJobSummaries", []):
                final = item.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
                created = item.get("CreationTime")
                trials.append(
                    Trial(
                        name=str(item["TrainingJobName"]),
                        status=str(item.get("TrainingJobStatus", "")),
                        parameters={
                            str(k): str(v)
                            for k, v in (item.get("TunedHyperParameters") or {}).items()
                        },
                        objective=float(final["Value"]) if "Value" in final else None,
                        created_at=created.timestamp() if isinstance(created, datetime) else None,
                    )
                )
    trials.sort(key=lambda t: (t.created_at or 0.0, t.name))
    return trials


def stop_tuning_job(session: AwsSession, name: str) -> None:
    """Ask SageMaker to stop the tuning job (it stops its running trials)."""
    check_tuning_name(name)
    with aws_errors(f"stopping the tuning job {name}"):
        session.client("sagemaker").stop_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name
        )


# -- following --------------------------------------------------------------------------------


class TrialAdopter(Protocol):
    """What following needs of the job service (`services.api.Jobs`)."""

    @property
    def store(self) -> Store: ...

    def adopt(
        self,
        name: str,
        profile: str | None = None,
        region: str | None = None,
        project_id: int | None = None,
    ) -> str: ...


def adopt_trials(
    jobs: TrialAdopter,
    session: AwsSession,
    name: str,
    project_id: int | None = None,
    known: set[str] | None = None,
    state: TuningState | None = None,
) -> list[Trial]:
    """Adopt every trial of the tuning job not in `known` (updated); returns the new ones.

    Each one is recorded and followed like any job (logs, metrics), with the sweep in its
    backend ids. A trial already in the store is only tagged, never recorded twice.
    """
    known = set() if known is None else known
    new: list[Trial] = []
    for trial in list_trials(session, name):
        if trial.name in known:
            continue
        if state is None:
            state = describe_tuning_job(session, name)
        jobs.adopt(trial.name, session.profile, session.region, project_id)
        ids: dict[str, Any] = {
            TUNING_KEY: name,
            SWEEP_KEY: name,
            GROUP_KEY: name,  # what the runs table groups by, for local sweeps' trials too
            PARAMETERS_KEY: decoded(trial.parameters),
        }
        if state.objective_metric:
            ids[OBJECTIVE_KEY] = {"metric": state.objective_metric, "goal": state.goal.lower()}
        jobs.store.update_backend_ids(trial.name, ids)
        known.add(trial.name)
        new.append(trial)
    return new


def decoded(parameters: dict[str, str]) -> dict[str, Any]:
    """Tuned values as the script reads them: JSON-decoded where they are JSON."""
    out: dict[str, Any] = {}
    for key, text in parameters.items():
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def follow_tuning_job(
    jobs: TrialAdopter,
    session: AwsSession,
    name: str,
    project_id: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    on_state: Callable[[TuningState], None] | None = None,
    stop: threading.Event | None = None,
    poll: float = 10.0,
) -> TuningState:
    """Adopt the tuning job's trials as they appear until it ends (or `stop` is set)."""
    stop = stop or threading.Event()
    known = {r.id for r in jobs.store.list_jobs() if r.backend_ids.get(TUNING_KEY) == name}
    last: TuningState | None = None
    while True:
        try:
            state = describe_tuning_job(session, name)
            for trial in adopt_trials(jobs, session, name, project_id, known, state):
                if on_trial is not None:
                    on_trial(trial)
        except (AwsThrottled, AwsNetworkError) as exc:  # passing: the tuning job runs on
            log.warning("following the tuning job %s: %s; trying again", name, exc)
            if stop.wait(poll):
                return last or TuningState(name=name, status="Unknown")
            continue
        if on_state is not None and state != last:
            on_state(state)
        last = state
        if state.is_terminal:
            # one more listing: trials started just before the end
            for trial in adopt_trials(jobs, session, name, project_id, known, state):
                if on_trial is not None:
                    on_trial(trial)
            return state
        if stop.wait(poll):
            return state


def trials_in_store(store: Store, name: str) -> list[Any]:
    """The stored records of the tuning job's trials (adopted by `adopt_trials`)."""
    return [r for r in store.list_jobs() if r.backend_ids.get(TUNING_KEY) == name]
