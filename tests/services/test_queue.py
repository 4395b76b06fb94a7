"""The local job queue (issue 14): jobs wait for free resources, in order, and none is lost or
started twice whoever dies; people reorder, prioritise, pause, resume and cancel."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.resources import Needs, fits, needs_of
from trainer_gui.core.spec import spec_from_dict
from trainer_gui.core.store import Store
from trainer_gui.core.store.queue import ALL_GPUS
from trainer_gui.services import job_host
from trainer_gui.services.job_host import JobHostClient
from trainer_gui.services.jobs import JobService
from trainer_gui.services.queue import QueueControl

WaitUntil = Callable[..., None]
TERMINAL = ("Completed", "Failed", "Stopped")


def spec(tmp_path: Path, name: str, seconds: float = 0.6, **compute: Any) -> Any:
    script = tmp_path / "sleep.py"
    script.write_text(
        "import sys, time\ntime.sleep(float(sys.argv[1]))\nprint('loss=0.5', flush=True)\n"
    )
    return spec_from_dict(
        {
            "name": name,
            "source": {"command": [sys.executable, str(script), str(seconds)]},
            "compute": {"backend": "local-process", **compute},
        }
    )


@pytest.fixture
def one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "1")


@pytest.fixture
def service(app_home: Path, one_at_a_time: None) -> Iterator[JobService]:
    store = Store()
    svc = JobService(store)
    yield svc
    for record in store.list_jobs(active_only=True):
        svc.stop(record.id, wait=15)
    svc.shutdown()
    store.close()


def _ended(store: Store, ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(store.get_job(i).status not in TERMINAL for i in ids):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, [store.get_job(i).status for i in ids]  # type: ignore[union-attr]
        time.sleep(0.05)


def _spans(store: Store, ids: list[str]) -> list[tuple[float, float]]:
    """When each job was running: its Starting/Training entry to its end."""
    spans = []
    for job_id in ids:
        history = store.status_history(job_id)
        start = next(e.at for e in history if e.status in ("Starting", "Training"))
        end = next(e.at for e in history if e.status in TERMINAL)
        spans.append((start, end))
    return spans


def test_one_job_at_a_time_on_a_cpu_machine_in_the_order_submitted(
    service: JobService, tmp_path: Path
) -> None:
    ids = [service.submit(spec(tmp_path, f"q{i}")).job_id for i in range(3)]

    statuses = [service.get(i).status for i in ids]
    assert statuses[1:] == ["Queued", "Queued"] and statuses[0] != "Queued"
    _ended(service.store, ids)

    assert [service.get(i).status for i in ids] == ["Completed"] * 3
    spans = _spans(service.store, ids)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 0.05  # never two at once, in submission order


def test_max_parallel_two_runs_two_at_once_and_never_three(
    service: JobService, tmp_path: Path
) -> None:
    QueueControl(service).set_max_parallel(2)
    ids = [service.submit(spec(tmp_path, f"p{i}", seconds=1.0)).job_id for i in range(4)]
    _ended(service.store, ids)

    spans = _spans(service.store, ids)
    for t in [s for s, _ in spans]:
        assert sum(1 for s, e in spans if s <= t + 0.01 < e) <= 2
    assert spans[1][0] < spans[0][1]  # the first two overlapped


def test_priority_and_position_decide_who_starts_next(service: JobService, tmp_path: Path) -> None:
    control = QueueControl(service)
    first = service.submit(spec(tmp_path, "running", seconds=1.0)).job_id
    a, b, c = (service.submit(spec(tmp_path, n)).job_id for n in "abc")
    assert [q.job_id for q in control.entries() if q.position] == [a, b, c]

    control.move(c, 1)
    assert [q.job_id for q in control.entries() if q.position] == [c, a, b]
    control.set_priority(b, 5)
    assert [q.job_id for q in control.entries() if q.position] == [b, c, a]
    _ended(service.store, [first, a, b, c])

    starts = dict(zip([b, c, a], [s for s, _ in _spans(service.store, [b, c, a])], strict=True))
    assert starts[b] < starts[c] < starts[a]


def test_a_paused_queue_starts_nothing_until_resumed(service: JobService, tmp_path: Path) -> None:
    control = QueueControl(service)
    control.pause()
    job = service.submit(spec(tmp_path, "waits")).job_id
    time.sleep(0.5)
    assert service.get(job).status == "Queued" and control.paused

    control.resume()

    _ended(service.store, [job])
    assert service.get(job).status == "Completed"


def test_cancelling_a_queued_job_stops_it_before_anything_runs(
    service: JobService, tmp_path: Path
) -> None:
    control = QueueControl(service)
    running = service.submit(spec(tmp_path, "running", seconds=1.0)).job_id
    waiting = service.submit(spec(tmp_path, "cancelled"))

    assert control.cancel(waiting.job_id) == "Stopped"

    assert waiting.wait(5) is not None  # the submitter's handle ends too
    record = service.get(waiting.job_id)
    assert record.status == "Stopped" and record.failure_reason == "Cancelled while queued"
    assert not service.store.metric_samples(record.id)
    assert service.store.queue_entry(record.id) is None
    _ended(service.store, [running])


def test_queue_operations_on_a_job_that_is_not_waiting_say_so(
    service: JobService, tmp_path: Path
) -> None:
    from trainer_gui.core.errors import JobNotFound, UserError

    control = QueueControl(service)
    job = service.submit(spec(tmp_path, "now")).job_id
    with pytest.raises(UserError, match="is not waiting in the queue"):
        control.move(job, 1)
    with pytest.raises(JobNotFound, match="no job 'nope'"):
        control.set_priority("nope", 1)
    with pytest.raises(UserError, match="between 1 and 256"):
        control.set_max_parallel(0)
    _ended(service.store, [job])


def test_queued_jobs_survive_the_job_host_being_killed_and_start_exactly_once(
    app_home: Path, one_at_a_time: None, tmp_path: Path, wait_until: WaitUntil
) -> None:
    store = Store()
    client = JobHostClient(store)
    ids = [client.submit(spec(tmp_path, f"k{i}", seconds=1.0)).job_id for i in range(3)]
    host = client.ping()
    client.shutdown()  # nobody is watching: the host alone owns the queue

    os.kill(host, signal.SIGKILL)

    _ended(store, ids, timeout=90)  # the keeper's new host starts the rest
    assert [store.get_job(i).status for i in ids] == ["Completed"] * 3  # type: ignore[union-attr]
    for job_id in ids:
        assert len(store.metric_samples(job_id)) == 1  # each ran once
    assert store.queue_entries() == []
    assert job_host.stop_host(store.path)
    store.close()


def test_a_job_larger_than_the_machine_runs_alone_instead_of_waiting_for_ever() -> None:
    big = Needs(gpus=0, slots=4)
    assert fits(big, [], slots=1, gpus=0)
    assert not fits(big, [Needs(0, 1)], slots=1, gpus=0)
    assert fits(Needs(1, 1), [Needs(1, 1)], slots=4, gpus=2)
    assert not fits(Needs(1, 1), [Needs(2, 1)], slots=4, gpus=2)
    assert not fits(Needs(ALL_GPUS, 1), [Needs(1, 1)], slots=4, gpus=2)
    assert not fits(Needs(0, 1), [Needs(0, 1)], slots=1, gpus=0)


def test_what_a_spec_needs_counts_every_host(tmp_path: Path) -> None:
    two = spec(tmp_path, "two").model_copy(
        update={"compute": spec(tmp_path, "two").compute.model_copy(update={"gpus": 2})}
    )
    assert needs_of(two) == Needs(2, 1)
    every = spec(tmp_path, "all").model_copy(
        update={"compute": spec(tmp_path, "all").compute.model_copy(update={"gpus": "all"})}
    )
    assert needs_of(every).gpus == ALL_GPUS


def test_a_row_left_by_a_starter_that_died_neither_blocks_the_queue_nor_lingers(
    service: JobService, tmp_path: Path
) -> None:
    done = service.submit(spec(tmp_path, "done")).job_id
    _ended(service.store, [done])
    # As if its starter had died after the start, before taking the row out: a claimed row
    # of a job that has ended since (one slot on this machine).
    service.store.enqueue(done, 0, 1)
    service.store.set_status(done, "Completed")
    with service.store._write() as conn:
        conn.execute("UPDATE job_queue SET claimed_at = 1 WHERE job_id = ?", (done,))

    nxt = service.submit(spec(tmp_path, "next")).job_id

    _ended(service.store, [nxt])
    assert service.get(nxt).status == "Completed"
    assert service.store.queue_entries() == []
