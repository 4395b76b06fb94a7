"""A Docker run's phases against a real engine: containers start, hosts meet, the first line."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from trainer_gui.core.runners.events import Phase, PhaseChanged
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker

TIMEOUT = 300
SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)

QUIET_START = """
    import time
    time.sleep(1.5)
    print("hello", flush=True)
    print("epoch=0 step=0 loss=0.5", flush=True)
"""

RANKS = """
    import torch.distributed as dist
    dist.init_process_group("gloo")
    print(f"rank={dist.get_rank()} loss=0.25", flush=True)
    dist.destroy_process_group()
"""


def _listen(service: JobService) -> tuple[list[PhaseChanged], Callable[[], None]]:
    heard: list[PhaseChanged] = []
    lock = threading.Lock()

    def listener(event: object) -> None:
        if isinstance(event, PhaseChanged):
            with lock:
                heard.append(event)

    return heard, service.subscribe(listener)


def test_one_container_starts_then_prints_and_its_phases_are_stored_in_order(
    service: JobService, job_spec: SpecFactory
) -> None:
    heard, unsubscribe = _listen(service)
    handle = service.submit(job_spec(QUIET_START, compute={"backend": "docker"}))
    handle.wait(TIMEOUT)
    unsubscribe()
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    assert [(e.phase, e.text) for e in heard] == [
        (Phase.PREPARING, "preparing the environment"),
        (Phase.STARTING, "starting the container"),
        (Phase.RUNNING, "running: first log line"),
        (Phase.FIRST_METRIC, "first metric"),
        (Phase.PACKING, "packing the artifacts"),
    ]
    stored = service.store.phases(record.id)
    assert [e.phase for e in stored] == [
        Phase.QUEUED,
        Phase.PREPARING,
        Phase.STARTING,
        Phase.RUNNING,
        Phase.FIRST_METRIC,
        Phase.PACKING,
        Phase.DONE,
    ]
    at = {e.phase: e.at for e in stored}
    assert at[Phase.RUNNING] - at[Phase.STARTING] >= 1.4  # the container's quiet start


def test_torchrun_hosts_wait_for_each_other_before_the_first_line(
    service: JobService, job_spec: SpecFactory
) -> None:
    heard, unsubscribe = _listen(service)
    spec = job_spec(
        RANKS,
        compute={"backend": "docker", "instance_count": 2},
        distribution={"kind": "torchrun", "processes_per_host": 1},
    )
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    unsubscribe()
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    assert [(e.phase, e.text) for e in heard] == [
        (Phase.PREPARING, "preparing the environment"),
        (Phase.STARTING, "starting 2 containers"),
        (Phase.WAITING_FOR_PEERS, "waiting for 2 hosts"),
        (Phase.RUNNING, "running: first log line"),
        (Phase.FIRST_METRIC, "first metric"),
        (Phase.PACKING, "packing the artifacts"),
    ]
    labels = [e.label for e in service.store.phases(record.id)]
    assert labels[2:4] == ["Starting 2 containers", "Waiting for 2 hosts"]
