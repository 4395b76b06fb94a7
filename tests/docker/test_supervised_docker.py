"""Jobs the job host owns keep their rules with no window or CLI attached (issue 13, item 5):
a 2-host job whose algo-2 fails is stopped on algo-1 too, by the host alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.runners.docker import LABEL_JOB
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import Store
from trainer_gui.services.job_host import JobHostClient

pytestmark = pytest.mark.docker
SpecFactory = Callable[..., JobSpec]

# algo-2 fails once the client is long gone; algo-1 would run for ever.
LATE_CRASH = """
    import os, sys, time
    if os.environ["SM_CURRENT_HOST"] == "algo-2":
        time.sleep(4)
        print("algo-2 is out of memory", file=sys.stderr, flush=True)
        sys.exit(7)
    while True:
        print("step=1 loss=0.5", flush=True)
        time.sleep(0.2)
"""


def test_a_detached_two_host_job_whose_host_fails_is_stopped_everywhere_by_the_job_host(
    docker_client: Any, app_home: Path, job_spec: SpecFactory
) -> None:
    store = Store()
    client = JobHostClient(store)
    spec = job_spec(LATE_CRASH, compute={"backend": "docker", "instance_count": 2})
    job_id = client.submit(spec).job_id
    client.shutdown()  # `trainer-gui run --detach`, or the window closed
    started = time.monotonic()

    deadline = time.monotonic() + 120
    while store.get_job(job_id).status not in ("Completed", "Failed", "Stopped"):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.2)

    record = store.get_job(job_id)
    assert record is not None and record.status == "Failed"
    assert (record.failure_reason or "").startswith("algo-2:")
    assert time.monotonic() - started < 60
    selector = {"label": f"{LABEL_JOB}={job_id}"}
    deadline = time.monotonic() + 30
    while _containers(docker_client, selector):
        assert time.monotonic() < deadline, "algo-1 was left running"
        time.sleep(0.2)
    store.close()


def _containers(client: Any, selector: dict[str, str]) -> list[Any]:
    """The job's containers; one removed between listing and inspecting is simply gone."""
    import docker.errors

    try:
        return list(client.containers.list(all=True, filters=selector))
    except docker.errors.NotFound:
        return [None]  # try again
