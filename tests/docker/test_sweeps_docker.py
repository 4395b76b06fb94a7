"""A local sweep on the docker backend (issue 14): its trials are queued docker jobs, each with
the values Optuna picked, and nothing of them is left behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainer_gui.core.spec.sweep import load_sweep
from trainer_gui.services import sweeps
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker

SCRIPT = """
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
a, _ = p.parse_known_args()
for step in range(3):
    print(f"step={step} loss={a.lr / (step + 1):.5f}", flush=True)
"""


def test_a_docker_sweep_runs_its_two_trials_as_docker_jobs(
    service: JobService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "2")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(SCRIPT, encoding="utf-8")
    data: dict[str, Any] = {
        "name": "dsweep",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "image": "trainer-gui/train-cpu:latest",
        "compute": {"backend": "docker"},
        "hyperparameters": {"lr": 0.1},
        "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        "sweep": {
            "parameters": {"lr": {"values": [0.2, 0.4]}},
            "strategy": "grid",
            "objective": {"metric": "loss", "goal": "minimize"},
            "max_parallel": 2,
        },
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    record = sweeps.start_sweep(service.store, load_sweep(path))
    try:
        deadline = time.monotonic() + 240
        while service.store.get_sweep(record.id).is_active:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, service.store.trials(record.id)
            sweeps.tick(service)
            time.sleep(0.2)
    finally:
        sweeps.release(service)

    assert service.store.get_sweep(record.id).status == "completed"  # type: ignore[union-attr]
    trials = service.store.trials(record.id)
    assert sorted(t.params["lr"] for t in trials) == [0.2, 0.4]
    for t in trials:
        job = service.store.get_job(t.job_id)
        assert job is not None and job.backend == "docker" and job.status == "Completed"
        assert t.state == "complete"
        assert t.value == pytest.approx(t.params["lr"] / 3, abs=1e-4)  # the last value counts
