"""Local sweeps (issue 14): trials are queued jobs of a tiny script, Optuna picks the values and
prunes, at most max_parallel run at once, and a killed job host loses or repeats no trial."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainer_gui.core.errors import UserError
from trainer_gui.core.spec.sweep import SweepSpec, load_sweep
from trainer_gui.core.store import Store
from trainer_gui.services import job_host, sweeps
from trainer_gui.services.job_host import JobHostClient
from trainer_gui.services.jobs import JobService

TERMINAL = ("Completed", "Failed", "Stopped")

# Loss falls with the steps, faster for a larger lr; lr above 0.5 makes a run that never learns.
SCRIPT = """
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--layers", type=int)
p.add_argument("--steps", type=int)
p.add_argument("--pause", type=float)
a, _ = p.parse_known_args()
for step in range(a.steps):
    loss = 10.0 if a.lr > 0.5 else 1.0 / (1 + a.lr * (step + 1)) + 0.01 * a.layers
    print(f"step={step} loss={loss:.5f}", flush=True)
    time.sleep(a.pause)
"""


def write_sweep(
    folder: Path, backend: str = "local-process", steps: int = 4, pause: float = 0.2, **over: Any
) -> Path:
    code = folder / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text(SCRIPT, encoding="utf-8")
    section: dict[str, Any] = {
        "parameters": {
            "lr": {"type": "continuous", "min": 0.01, "max": 0.4},
            "layers": {"type": "integer", "min": 1, "max": 4},
        },
        "strategy": "random",
        "objective": {"metric": "loss", "goal": "minimize"},
        "max_trials": 12,
        "max_parallel": 2,
        "seed": 7,
    }
    section.update(over)
    data = {
        "name": "tiny",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "hyperparameters": {"lr": 0.1, "layers": 2, "steps": steps, "pause": pause},
        "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        "compute": {"backend": backend},
        "sweep": section,
    }
    if backend == "docker":
        data["compute"]["image"] = "trainer-gui/train-cpu:latest"
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def parallel_four(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine allows four: the sweep's own max_parallel is what holds it to two."""
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "4")


@pytest.fixture
def service(app_home: Path, parallel_four: None) -> Iterator[JobService]:
    store = Store()
    svc = JobService(store)
    yield svc
    sweeps.release(svc)
    for record in store.list_jobs(active_only=True):
        with contextlib.suppress(Exception):
            svc.stop(record.id, wait=15)
    svc.shutdown()
    store.close()


def drive(service: JobService, sweep_id: str, timeout: float = 120) -> None:
    """Tick as the job host does until the sweep is done."""
    deadline = time.monotonic() + timeout
    while service.store.get_sweep(sweep_id).is_active:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, service.store.trials(sweep_id)
        sweeps.tick(service)
        time.sleep(0.1)


def spans(store: Store, job_ids: list[str]) -> list[tuple[float, float]]:
    """When each trial's job held a slot: claimed from the queue (Starting) to its end."""
    out = []
    for job_id in job_ids:
        history = store.status_history(job_id)
        start = next(e.at for e in history if e.status in ("Starting", "Training"))
        end = next(e.at for e in history if e.status in TERMINAL)
        out.append((start, end))
    return out


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = most = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


def job_params(store: Store, job_id: str) -> dict[str, Any]:
    record = store.get_job(job_id)
    assert record is not None
    return dict(yaml.safe_load(record.spec_yaml)["hyperparameters"])


@pytest.mark.parametrize("strategy", ["random", "bayesian"])
def test_a_twelve_trial_sweep_runs_two_at_a_time_and_stores_every_trial_with_its_values(
    service: JobService, tmp_path: Path, strategy: str
) -> None:
    sweep = load_sweep(write_sweep(tmp_path, strategy=strategy, steps=3, pause=0.1))
    record = sweeps.start_sweep(service.store, sweep)

    drive(service, record.id)

    done = service.store.get_sweep(record.id)
    assert done is not None and done.status == "completed"
    trials = service.store.trials(record.id)
    assert [t.number for t in trials] == list(range(12))
    assert all(t.state == "complete" and t.value is not None for t in trials)
    for t in trials:
        job = service.store.get_job(t.job_id)
        assert job is not None and job.status == "Completed"
        stored = job_params(service.store, t.job_id)
        assert (
            stored["lr"] == pytest.approx(t.params["lr"]) and stored["layers"] == t.params["layers"]
        )
        assert 0.01 <= t.params["lr"] <= 0.4 and 1 <= t.params["layers"] <= 4
        assert t.value == pytest.approx(service.store.last_metrics(t.job_id)["loss"])
        assert job.backend_ids["sweep"] == job.backend_ids["sweep_id"] == record.id
        assert job.backend_ids["sweep_parameters"] == t.params
    assert len({(t.params["lr"], t.params["layers"]) for t in trials}) == 12
    assert most_at_once(spans(service.store, [t.job_id for t in trials])) == 2
    best = sweeps.best_trial(done, trials)
    assert best is not None and best.value == min(t.value for t in trials)  # type: ignore[type-var]
    assert f"best: trial {best.number}" in done.message


def test_a_grid_sweep_runs_every_point_once(service: JobService, tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path,
        steps=1,
        pause=0.0,
        strategy="grid",
        max_trials=None,
        parameters={"lr": {"values": [0.1, 0.2]}, "layers": {"values": [1, 3]}},
    )
    record = sweeps.start_sweep(service.store, load_sweep(path))
    drive(service, record.id)
    points = sorted((t.params["lr"], t.params["layers"]) for t in service.store.trials(record.id))
    assert points == [(0.1, 1), (0.1, 3), (0.2, 1), (0.2, 3)]


def test_pruning_stops_a_bad_trial_early_and_records_it_as_pruned(
    service: JobService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three good trials finish first (one at a time); the fourth never learns and would take
    # 40 steps: the median rule prunes it as soon as its warm-up step is past.
    path = write_sweep(
        tmp_path,
        steps=5,
        pause=0.05,
        max_trials=4,
        max_parallel=1,
        early_stopping="auto",
        pruner={"kind": "median", "startup_trials": 3, "warmup_steps": 1},
    )
    record = sweeps.start_sweep(service.store, load_sweep(path))
    bad_steps = 40
    original = sweeps.trial_spec

    def fourth_is_bad(s: SweepSpec, params: dict[str, Any], trial: Any = None) -> Any:
        spec = original(s, params, trial)
        if trial == 3:
            hp = {**spec.hyperparameters, "lr": 0.9, "steps": bad_steps, "pause": 0.2}
            spec = spec.model_copy(update={"hyperparameters": hp}).with_base_dir(s.base_dir)
        return spec

    monkeypatch.setattr(sweeps, "trial_spec", fourth_is_bad)
    drive(service, record.id)

    trials = service.store.trials(record.id)
    assert [t.state for t in trials] == ["complete", "complete", "complete", "pruned"]
    bad = trials[3]
    job = service.store.get_job(bad.job_id)
    assert job is not None and job.status == "Stopped"
    assert (job.failure_reason or "").startswith("Pruned by the median pruner at step")
    assert len(service.store.metric_samples(bad.job_id, "loss")) < bad_steps / 2  # early


def test_stopping_a_sweep_starts_no_new_trial_and_stops_the_running_ones(
    service: JobService, tmp_path: Path
) -> None:
    sweep = load_sweep(write_sweep(tmp_path, steps=100, pause=0.1, max_trials=6))
    record = sweeps.start_sweep(service.store, sweep)
    deadline = time.monotonic() + 60
    while not any(t.state == "running" for t in service.store.trials(record.id)):
        assert time.monotonic() < deadline
        sweeps.tick(service)
        time.sleep(0.1)

    stopped = sweeps.stop_sweep(service, record.id)

    assert stopped.status == "stopped"
    trials = service.store.trials(record.id)
    assert len(trials) == 2 and all(t.state == "stopped" for t in trials)
    for t in trials:
        assert service.store.get_job(t.job_id).status == "Stopped"  # type: ignore[union-attr]


def test_a_sweep_survives_the_job_host_killed_mid_sweep_with_no_trial_lost_or_run_twice(
    app_home: Path, parallel_four: None, tmp_path: Path
) -> None:
    store = Store()
    client = JobHostClient(store)
    sweep = load_sweep(write_sweep(tmp_path, steps=4, pause=0.25, max_trials=8))
    out = io.StringIO()
    assert sweeps.run_sweep(client, sweep, detach=True, out=out) == sweeps.EXIT_OK
    sweep_id = out.getvalue().split()[1].rstrip(":")
    deadline = time.monotonic() + 60
    while len(store.trials(sweep_id)) < 3:  # mid-sweep: some done, two running
        assert time.monotonic() < deadline
        time.sleep(0.1)
    endpoint = job_host.read_endpoint(job_host.host_dir(store.path))
    assert endpoint is not None
    client.shutdown()

    os.kill(endpoint["pid"], signal.SIGKILL)

    deadline = time.monotonic() + 180
    while store.get_sweep(sweep_id).is_active:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, store.trials(sweep_id)
        time.sleep(0.2)
    assert store.get_sweep(sweep_id).status == "completed"  # type: ignore[union-attr]
    trials = store.trials(sweep_id)
    assert [t.number for t in trials] == list(range(8))
    assert all(t.state == "complete" for t in trials)
    sweep_jobs = [j for j in store.list_jobs() if j.name.startswith("tiny-t")]
    assert sorted(j.id for j in sweep_jobs) == sorted(t.job_id for t in trials)  # none twice
    for t in trials:
        assert len(store.metric_samples(t.job_id, "loss")) == 4  # each ran once, whole
    assert job_host.stop_host(store.path)
    store.close()


def test_a_crash_between_storing_a_trial_and_submitting_it_submits_it_once(
    service: JobService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = load_sweep(write_sweep(tmp_path, steps=1, pause=0.0, max_trials=2, max_parallel=1))
    record = sweeps.start_sweep(service.store, sweep)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt("the process died here")

    with monkeypatch.context() as mp:
        mp.setattr(service, "submit", crash)
        with pytest.raises(KeyboardInterrupt):
            sweeps.tick(service)
    sweeps.release(service)  # what the process's death does to the lock
    (row,) = service.store.trials(record.id)
    assert service.store.get_job(row.job_id) is None

    drive(service, record.id)

    trials = service.store.trials(record.id)
    assert trials[0].job_id == row.job_id and trials[0].params == row.params
    assert [t.state for t in trials] == ["complete", "complete"]
    assert len([j for j in service.store.list_jobs() if j.name == "tiny-t0"]) == 1


def test_a_second_driver_leaves_a_driven_sweep_alone(service: JobService, tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, steps=1, pause=0.0, max_trials=2, max_parallel=1))
    record = sweeps.start_sweep(service.store, sweep)
    sweeps.tick(service)
    other = JobService(service.store)
    try:
        sweeps.driver(other).tick()
        assert record.id not in sweeps.driver(other).live
        assert len(service.store.trials(record.id)) == 1
    finally:
        sweeps.release(other)
    drive(service, record.id)


def test_a_sagemaker_sweep_or_an_unknown_sweep_id_gets_a_clear_message(
    service: JobService, tmp_path: Path
) -> None:
    data = yaml.safe_load(write_sweep(tmp_path).read_text())
    data["compute"] = {"backend": "sagemaker", "instance_type": "ml.m5.large"}
    path = tmp_path / "sm.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="SageMaker tuning job"):
        sweeps.start_sweep(service.store, load_sweep(path))
    with pytest.raises(UserError, match="No sweep with id or name 'nope'"):
        sweeps.stop_sweep(service, "nope")


def test_the_host_pass_costs_one_query_when_there_is_no_sweep(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = service.store._query

    def counting(sql: str, params: Any = ()) -> Any:
        calls.append(sql)
        return real(sql, params)

    monkeypatch.setattr(service.store, "_query", counting)
    sweeps.tick(service)
    assert len(calls) == 1 and "FROM sweeps" in calls[0]
    assert json.dumps(calls)  # plain SQL text


def test_the_cli_runs_a_local_sweep_shows_its_trials_with_the_best_marked_and_stops_one(
    app_home: Path,
    parallel_four: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    from trainer_gui.cli.main import main

    monkeypatch.setenv("TRAINER_GUI_JOB_HOST", "0")  # this process drives the sweep
    path = write_sweep(tmp_path, steps=1, pause=0.0, max_trials=3)

    assert main(["sweep", "run", str(path)]) == 0

    out = capsys.readouterr().out
    assert out.count("complete  loss=") == 3 and "completed (best: trial" in out
    with Store() as store:
        (record,) = store.list_sweeps()
        trials = store.trials(record.id)
        best = sweeps.best_trial(record, trials)
    assert record.source == str(path.resolve())
    assert main(["sweep", "show", record.name]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith(f"Sweep {record.id} (local-process): completed")
    assert best is not None
    assert [line.split()[0] for line in shown[3:6]] == ["0", "1", "2"]
    marked = [line for line in shown if line.startswith(f"{best.number} *")]
    assert len(marked) == 1 and f"{best.value:.6g}" in marked[0]

    path2 = write_sweep(tmp_path, steps=100, pause=0.1, max_trials=4)
    assert main(["sweep", "run", "--detach", str(path2)]) == 0
    sweep_id = capsys.readouterr().out.split()[1].rstrip(":")
    assert main(["sweep", "stop", sweep_id]) == 0
    assert f"Sweep {sweep_id}: stopped" in capsys.readouterr().out
    with Store() as store:
        assert store.get_sweep(sweep_id).status == "stopped"  # type: ignore[union-attr]
        assert all(t.state == "stopped" for t in store.trials(sweep_id))
    assert main(["sweep", "show", "nope-never"]) != 0
    assert "no trials of the sweep 'nope-never'" in capsys.readouterr().err


def test_a_crash_between_asking_optuna_and_storing_the_trial_keeps_that_trial(
    service: JobService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = load_sweep(write_sweep(tmp_path, steps=1, pause=0.0, max_trials=2, max_parallel=1))
    record = sweeps.start_sweep(service.store, sweep)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt("the process died here")

    with monkeypatch.context() as mp:
        mp.setattr(service.store, "add_trial", crash)
        with pytest.raises(KeyboardInterrupt):
            sweeps.tick(service)
    sweeps.release(service)
    assert service.store.trials(record.id) == []  # Optuna has trial 0; the store has nothing

    drive(service, record.id)

    trials = service.store.trials(record.id)
    assert [(t.number, t.state) for t in trials] == [(0, "complete"), (1, "complete")]
    assert len(service.store.list_jobs()) == 2


def test_a_hyperband_sweep_runs_with_optunas_hyperband_pruner(
    service: JobService, tmp_path: Path
) -> None:
    path = write_sweep(
        tmp_path,
        steps=3,
        pause=0.05,
        strategy="hyperband",
        max_trials=4,
        hyperband={"max_resource": 3},
    )
    record = sweeps.start_sweep(service.store, load_sweep(path))
    drive(service, record.id)
    states = [t.state for t in service.store.trials(record.id)]
    assert len(states) == 4 and set(states) <= {"complete", "pruned"}
    assert service.store.get_sweep(record.id).status == "completed"  # type: ignore[union-attr]


def test_the_window_and_the_cli_start_without_importing_optuna() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import trainer_gui.cli.main, trainer_gui.ui.main_window, trainer_gui.services.job_host\n"
        "import trainer_gui.services.sweeps, trainer_gui.ui.sweep_view\n"
        "print(sorted(m for m in ('optuna', 'sqlalchemy') if m in sys.modules))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]"
