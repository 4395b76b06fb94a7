"""What moto's SageMaker lacks for tuning jobs, added to the *server* by the `aws` fixture.

moto records CreateHyperParameterTuningJob but marks it Completed at once, starts no training
job, and has no ListTrainingJobsForHyperParameterTuningJob or StopHyperParameterTuningJob. Here:

* every CreateHyperParameterTuningJob body is captured as sent (`aws.tuning_requests`);
* the tuning job is InProgress and starts trials named `<tuning>-NNN-xxxxxxxx` (SageMaker's
  form), at most MaxParallelTrainingJobs at a time, up to MaxNumberOfTrainingJobs (or every
  point of a Grid), each a real moto training job driven by the job simulator (logs, metrics,
  artifacts), with the static hyperparameters and its tuned values;
* a finished trial's objective is `objective(index)` (a test may replace it); the tuning job's
  counters and BestTrainingJob follow; it ends Completed, or Stopped after a stop request;
* ListTrainingJobsForHyperParameterTuningJob and StopHyperParameterTuningJob are answered.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass
class _Tuning:
    name: str
    request: dict[str, Any]
    points: list[dict[str, str]]
    trials: list[str] = field(default_factory=list)
    tuned: dict[str, dict[str, str]] = field(default_factory=dict)
    objective: dict[str, float] = field(default_factory=dict)
    stop_requested: bool = False
    done: bool = False


def _points(config: dict[str, Any], count: int) -> list[dict[str, str]]:
    """Deterministic trial values: a grid's every point, else spread over the ranges."""
    ranges = config.get("ParameterRanges", {})
    if config["Strategy"] == "Grid":
        axes = [
            [(r["Name"], v) for v in r["Values"]]
            for r in ranges.get("CategoricalParameterRanges", [])
        ]
        return [dict(point) for point in itertools.product(*axes)]
    out = []
    for i in range(count):
        frac = ((i * 7) % 11) / 10.0
        point: dict[str, str] = {}
        for r in ranges.get("ContinuousParameterRanges", []):
            low, high = float(r["MinValue"]), float(r["MaxValue"])
            point[r["Name"]] = str(low + (high - low) * min(frac, 1.0))
        for r in ranges.get("IntegerParameterRanges", []):
            low, high = int(r["MinValue"]), int(r["MaxValue"])
            point[r["Name"]] = str(low + i % (high - low + 1))
        for r in ranges.get("CategoricalParameterRanges", []):
            point[r["Name"]] = r["Values"][i % len(r["Values"])]
        out.append(point)
    return out


class TuningSimulator:
    """Starts and watches the trials of captured tuning jobs (in-process with the server)."""

    def __init__(self, sim: Any) -> None:
        from moto.backends import get_backend

        self.sim = sim
        self.sm: Any = get_backend("sagemaker")[ACCOUNT][REGION]
        self.jobs: dict[str, _Tuning] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.objective: Callable[[int], float] = lambda index: 1.0 / (index + 1)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.tick = 0.02

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # -- the server's new and changed operations ----------------------------------------------

    def created(self, name: str, request: dict[str, Any]) -> None:
        config = request["HyperParameterTuningJobConfig"]
        limits = config["ResourceLimits"]
        count = int(limits.get("MaxNumberOfTrainingJobs", 0))
        points = _points(config, count)
        if config["Strategy"] != "Grid" or count:
            points = points[: count or len(points)]
        job = self.sm.hyper_parameter_tuning_jobs[name]
        job.hyper_parameter_tuning_job_status = "InProgress"
        job.hyper_parameter_tuning_end_time = None
        job.best_training_job = None
        job.OverallBestTrainingJob = None
        job.tuning_job_completion_details = None
        self._counters(job, {})
        with self._lock:
            self.requests[name] = request
            self.jobs[name] = _Tuning(name, request, points)

    def list_trials(self, name: str) -> dict[str, Any]:
        from moto.sagemaker.exceptions import ValidationError

        with self._lock:
            tuning = self.jobs.get(name)
            if tuning is None:
                raise ValidationError(message=f"No tuning job named {name}")
            summaries = []
            for trial in tuning.trials:
                job = self.sm.training_jobs[trial]
                item: dict[str, Any] = {
                    "TrainingJobName": trial,
                    "TrainingJobArn": job.arn,
                    "TuningJobName": name,
                    "CreationTime": job.creation_time.timestamp()
                    if hasattr(job.creation_time, "timestamp")
                    else job.creation_time,
                    "TrainingJobStatus": job.training_job_status,
                    "TunedHyperParameters": tuning.tuned[trial],
                }
                if trial in tuning.objective:
                    objective = tuning.request["HyperParameterTuningJobConfig"].get(
                        "HyperParameterTuningJobObjective", {}
                    )
                    item["FinalHyperParameterTuningJobObjectiveMetric"] = {
                        "Type": objective.get("Type", "Minimize"),
                        "MetricName": objective.get("MetricName", ""),
                        "Value": tuning.objective[trial],
                    }
                    item["ObjectiveStatus"] = "Succeeded"
                summaries.append(item)
        return {"TrainingJobSummaries": summaries}

    def stop(self, name: str) -> None:
        from moto.sagemaker.exceptions import ValidationError

        with self._lock:
            tuning = self.jobs.get(name)
            job = self.sm.hyper_parameter_tuning_jobs.get(name)
            if (
                tuning is None
                or job is None
                or job.hyper_parameter_tuning_job_status != "InProgress"
            ):
                raise ValidationError(message=f"The tuning job {name} is not in progress")
            tuning.stop_requested = True
            job.hyper_parameter_tuning_job_status = "Stopping"

    # -- the simulation ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            with self._lock:
                for tuning in list(self.jobs.values()):
                    if not tuning.done:
                        try:
                            self._step(tuning)
                        except Exception as exc:  # keep going; the test sees no progress
                            print("tuning simulator:", repr(exc))

    def _status(self, trial: str) -> str:
        return str(self.sm.training_jobs[trial].training_job_status)

    def _step(self, tuning: _Tuning) -> None:
        job = self.sm.hyper_parameter_tuning_jobs[tuning.name]
        config = tuning.request["HyperParameterTuningJobConfig"]
        for index, trial in enumerate(tuning.trials):
            if trial not in tuning.objective and self._status(trial) == "Completed":
                tuning.objective[trial] = self.objective(index)
        running = [t for t in tuning.trials if self._status(t) in ("InProgress", "Stopping")]
        if tuning.stop_requested:
            for trial in running:
                if self._status(trial) == "InProgress":
                    self.sim.stop_job(trial)
            if not running:
                self._end(tuning, job, "Stopped")
            return
        parallel = int(config["ResourceLimits"]["MaxParallelTrainingJobs"])
        while len(running) < parallel and len(tuning.trials) < len(tuning.points):
            running.append(self._start_trial(tuning, len(tuning.trials)))
        self._counters(job, {t: self._status(t) for t in tuning.trials})
        if not running and len(tuning.trials) == len(tuning.points):
            self._end(tuning, job, "Completed")

    def _start_trial(self, tuning: _Tuning, index: int) -> str:
        # a copy: moto's CreateTrainingJob rewrites the MetricDefinitions it is given
        definition = copy.deepcopy(tuning.request["TrainingJobDefinition"])
        tuned = tuning.points[index]
        digest = hashlib.sha1(f"{tuning.name}{index}".encode()).hexdigest()[:8]
        name = f"{tuning.name}-{index + 1:03d}-{digest}"
        hyperparameters = {**definition.get("StaticHyperParameters", {}), **tuned}
        # the SDKs send HyperParameterTuningResourceConfig (the same fields, or instance lists)
        resources = definition.get("ResourceConfig") or {
            k: v
            for k, v in definition["HyperParameterTuningResourceConfig"].items()
            if k in ("InstanceType", "InstanceCount", "VolumeSizeInGB")
        }
        request = {
            "TrainingJobName": name,
            "HyperParameters": hyperparameters,
            **{k: v for k, v in definition.items() if k != "StaticHyperParameters"},
            "ResourceConfig": resources,
        }
        self.sm.create_training_job(
            training_job_name=name,
            hyper_parameters=hyperparameters,
            algorithm_specification=definition["AlgorithmSpecification"],
            role_arn=definition["RoleArn"],
            input_data_config=definition.get("InputDataConfig"),
            output_data_config=definition["OutputDataConfig"],
            resource_config=resources,
            vpc_config=definition.get("VpcConfig"),
            stopping_condition=definition["StoppingCondition"],
            tags=tuning.request.get("Tags", []),
            enable_network_isolation=False,
            enable_inter_container_traffic_encryption=False,
            enable_managed_spot_training=False,
            checkpoint_config=definition.get("CheckpointConfig"),
            debug_hook_config=None,
            debug_rule_configurations=None,
            tensor_board_output_config=None,
            experiment_config=None,
        )
        setattr(  # noqa: B010
            self.sm.training_jobs[name],
            "tuning_job_arn",
            self.sm.hyper_parameter_tuning_jobs[tuning.name].arn,
        )
        self.sim.created(name, request)
        tuning.trials.append(name)
        tuning.tuned[name] = tuned
        return name

    @staticmethod
    def _counters(job: Any, statuses: dict[str, str]) -> None:
        values = list(statuses.values())
        job.training_job_status_counters = {
            "Completed": values.count("Completed"),
            "InProgress": values.count("InProgress") + values.count("Stopping"),
            "RetryableError": 0,
            "NonRetryableError": values.count("Failed"),
            "Stopped": values.count("Stopped"),
        }

    def _end(self, tuning: _Tuning, job: Any, status: str) -> None:
        from moto.core.utils import utcnow

        job.hyper_parameter_tuning_job_status = status
        job.hyper_parameter_tuning_end_time = utcnow()
        if tuning.objective:
            goal = tuning.request["HyperParameterTuningJobConfig"].get(
                "HyperParameterTuningJobObjective", {}
            )
            pick = max if goal.get("Type") == "Maximize" else min
            best = pick(tuning.objective, key=lambda t: tuning.objective[t])
            job.best_training_job = {
                "TrainingJobName": best,
                "TrainingJobArn": self.sm.training_jobs[best].arn,
                "CreationTime": utcnow(),
                "TrainingJobStatus": "Completed",
                "TunedHyperParameters": tuning.tuned[best],
            }
        tuning.done = True


def install(monkeypatch: Any, sim: Any) -> TuningSimulator:
    """Patch moto's SageMaker responses for tuning jobs; returns the started simulator."""
    from moto.sagemaker.responses import SageMakerResponse

    tuning = TuningSimulator(sim)
    original_create = SageMakerResponse.create_hyper_parameter_tuning_job

    def create_hyper_parameter_tuning_job(self: Any) -> Any:
        body = json.loads(self.body)
        result = original_create(self)
        tuning.created(body["HyperParameterTuningJobName"], body)
        return result

    def list_training_jobs_for_hyper_parameter_tuning_job(self: Any) -> str:
        return json.dumps(tuning.list_trials(self._get_param("HyperParameterTuningJobName")))

    def stop_hyper_parameter_tuning_job(self: Any) -> str:
        tuning.stop(self._get_param("HyperParameterTuningJobName"))
        return "{}"

    monkeypatch.setattr(
        SageMakerResponse, "create_hyper_parameter_tuning_job", create_hyper_parameter_tuning_job
    )
    monkeypatch.setattr(
        SageMakerResponse,
        "list_training_jobs_for_hyper_parameter_tuning_job",
        list_training_jobs_for_hyper_parameter_tuning_job,
        raising=False,
    )
    monkeypatch.setattr(
        SageMakerResponse,
        "stop_hyper_parameter_tuning_job",
        stop_hyper_parameter_tuning_job,
        raising=False,
    )
    tuning.start()
    return tuning
