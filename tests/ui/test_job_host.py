"""The job host: jobs followed in a child process, events back in columns, calls over a pipe."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.errors import JobNotFound
from trainer_gui.core.runners.events import JobStatus, StatusChanged
from trainer_gui.core.spec import spec_from_dict
from trainer_gui.core.store import Store
from trainer_gui.services.job_host import JobHostClient, make_job_service
from trainer_gui.services.jobs import JobService
from trainer_gui.services.live_data import LogData, MetricData
from trainer_gui.services import job_host

SCRIPT = """
import sys, time
for i in range(int(sys.argv[1])):
    print(f"step={i} loss={1.0 / (i + 1):.4f}", flush=True)
    time.sleep(float(sys.argv[2]))
print("oops", file=sys.stderr, flush=True)
"""


@pytest.fixture
def client(trainer_home: Path) -> Iterator[JobHostClient]:
    store = Store()
    host = JobHostClient(store)
    yield host
    for record in store.list_jobs(active_only=True):
        with contextlib.suppress(Exception):  # best effort: a failed test's job
            host.stop(record.id, wait=15)
    host.shutdown()
    store.close()


def spec_for(tmp_path: Path, lines: int, pause: float = 0.0) -> Any:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT, encoding="utf-8")
    command = [sys.executable, str(script), str(lines), str(pause)]
    return spec_from_dict({"name": "hosted", "source": {"command": command}})


def test_a_job_runs_in_the_child_and_its_output_arrives_in_columns(
    client: JobHostClient, tmp_path: Path
) -> None:
    events: list[Any] = []
    threads: set[str] = set()

    def listen(event: Any) -> None:
        threads.add(threading.current_thread().name)
        events.append(event)

    client.subscribe(listen)
    assert client.ping() != os.getpid()

    handle = client.submit(spec_for(tmp_path, 50))

    assert handle.wait(60) == JobStatus.COMPLETED
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        isinstance(e, StatusChanged) and e.status == JobStatus.COMPLETED for e in events
    ):
        time.sleep(0.05)
    statuses = [e.status for e in events if isinstance(e, StatusChanged)]
    assert statuses[-1] == JobStatus.COMPLETED
    texts = [row[2] for e in events if isinstance(e, LogData) for row in e.chunk.rows]
    assert texts[:50] == [f"step={i} loss={1.0 / (i + 1):.4f}" for i in range(50)]
    streams = {row[1] for e in events if isinstance(e, LogData) for row in e.chunk.rows}
    assert "stderr" in streams
    losses = [
        value
        for e in events
        if isinstance(e, MetricData) and ("algo-1", "loss") in e.chunk.columns
        for value in e.chunk.columns[("algo-1", "loss")][2].tolist()
    ]
    assert losses == [round(1.0 / (i + 1), 4) for i in range(50)]
    assert threads == {"job-host-reader"}
    # The store, written by the child, has it all too.
    record = client.get(handle.job_id)
    assert record.status == "Completed"
    assert len(client.store.metric_samples(handle.job_id)) == 50


def test_stop_and_errors_go_through_the_child(client: JobHostClient, tmp_path: Path) -> None:
    handle = client.submit(spec_for(tmp_path, 10_000, pause=0.05))
    deadline = time.monotonic() + 30
    while client.get(handle.job_id).status != "Training" and time.monotonic() < deadline:
        time.sleep(0.05)

    client.stop(handle.job_id, wait=30)

    assert client.get(handle.job_id).status == "Stopped"
    with pytest.raises(JobNotFound, match="no job 'no-such-job'"):
        client.stop("no-such-job")


def test_a_child_that_died_is_replaced_and_the_job_picked_up_again(
    client: JobHostClient, tmp_path: Path
) -> None:
    handle = client.submit(spec_for(tmp_path, 60, pause=0.05))
    first = client.ping()
    deadline = time.monotonic() + 30
    while client.get(handle.job_id).status != "Training" and time.monotonic() < deadline:
        time.sleep(0.05)

    os.kill(first, signal.SIGKILL)

    deadline = time.monotonic() + 10
    while client._proc is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    second = client.ping()  # a new child
    assert second != first
    assert client.recover() == [handle.job_id]  # the job ran on; the new child follows it
    assert handle.wait(60) == JobStatus.COMPLETED


def test_closing_lets_go_of_the_jobs_which_keep_running(trainer_home: Path, tmp_path: Path) -> None:
    store = Store()
    client = JobHostClient(store)
    handle = client.submit(spec_for(tmp_path, 40, pause=0.05))
    child = client.ping()

    client.shutdown()

    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert store.get_job(handle.job_id).status in ("Starting", "Training")  # type: ignore[union-attr]
    # Another process takes it over and records the end.
    service = JobService(store)
    assert service.recover() == [handle.job_id]
    assert service.wait(handle.job_id, timeout=60).status == "Completed"
    service.shutdown()
    store.close()


def test_the_app_uses_the_job_host_unless_told_not_to(
    trainer_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store()
    monkeypatch.setenv("TRAINER_GUI_JOB_HOST", "0")
    assert type(make_job_service(store)) is JobService
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.delenv("TRAINER_GUI_JOB_HOST")
    assert type(make_job_service(store)) is JobService
    monkeypatch.setattr(sys, "frozen", False)
    service = make_job_service(store)
    assert isinstance(service, JobHostClient)
    service.shutdown()
    store.close()


def test_an_exception_that_does_not_pickle_comes_back_as_its_message() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}/{b}")

    exc = job_host._portable(Odd(1, 2))
    assert type(exc) is RuntimeError and str(exc) == "Odd: 1/2"
    assert isinstance(job_host._portable(JobNotFound("x")), JobNotFound)
