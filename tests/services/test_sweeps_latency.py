"""Where a local sweep's time went between its trials (issue 14, bench/sweep.py): the job host
drives a sweep as soon as it is told of it, and the first trial's torch check is under way while
Optuna loads, instead of after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_sweeps import write_sweep

from trainer_gui.core import pyenv
from trainer_gui.core.runners.local_process import default_python
from trainer_gui.core.spec.sweep import load_sweep
from trainer_gui.core.store import Store
from trainer_gui.services import job_host, sweeps
from trainer_gui.services.jobs import JobService


class _Peer:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> bool:
        self.sent.append(message)
        return True


@pytest.fixture
def host(app_home: Path) -> Iterator[job_host._Host]:
    """The job host's call handling, in this process, with no upkeep pass running."""
    store = Store()
    made = job_host._Host(store.path, keeper=None)
    made.store = store
    made.service = JobService(store)
    made.outbox = job_host._Outbox(lambda _message: None)
    yield made
    sweeps.release(made.service)
    for record in store.list_jobs(active_only=True):
        with contextlib.suppress(Exception):
            made.service.stop(record.id, wait=15)
    made.service.shutdown()
    made.outbox.close()
    store.close()


def test_a_ping_makes_the_host_drive_a_new_sweep_at_once_not_on_its_next_pass(
    host: job_host._Host, tmp_path: Path
) -> None:
    sweep = load_sweep(write_sweep(tmp_path, steps=1, pause=0.0, max_trials=2))
    record = sweeps.start_sweep(host.store, sweep)  # what `sweep run` records, then pings
    peer = _Peer()

    host._serve_call(peer, 1, "ping", (), {})  # type: ignore[arg-type]

    assert peer.sent[0][:3] == ("reply", 1, True)
    trials = host.store.trials(record.id)
    assert len(trials) == 2  # asked and queued within the call: max_parallel 2
    for trial in trials:
        job = host.store.get_job(trial.job_id)
        assert job is not None and job.status != "Queued"  # and started from the queue


def test_a_local_sweep_starts_its_first_trials_torch_check_while_optuna_loads(
    app_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ahead: list[str] = []
    real = pyenv.probe_ahead
    monkeypatch.setattr(pyenv, "probe_ahead", lambda python: (ahead.append(python), real(python)))
    store = Store()
    service = JobService(store)
    try:
        sweep = load_sweep(write_sweep(tmp_path, steps=1, pause=0.0, max_trials=1))
        sweeps.start_sweep(store, sweep)
        sweeps.tick(service)
        assert ahead == [default_python()]
        (trial,) = store.trials(store.list_sweeps()[0].id)
        assert store.get_job(trial.job_id) is not None  # its check found the answer
    finally:
        sweeps.release(service)
        for record in store.list_jobs(active_only=True):
            with contextlib.suppress(Exception):
                service.stop(record.id, wait=15)
        service.shutdown()
        store.close()
