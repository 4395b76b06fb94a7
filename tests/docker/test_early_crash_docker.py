"""A service killed while a Docker job's containers are created but not started (issue 13,
item 3): the re-attach must not take `wait()`'s 0 for a finished job.

The service runs in a child process that SIGKILLs itself at the chosen point; the test then
re-attaches from a fresh service, as the app or CLI would.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.runners.docker import LABEL_JOB, DockerRunner
from trainer_gui.core.spec import JobSpec, dump_spec
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL of the service")

SpecFactory = Callable[..., JobSpec]

QUICK = """
    import os
    open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("trained")
    print("loss=0.1", flush=True)
"""

# The service, killed by SIGKILL at `point` (argv[2]) of starting the job in argv[1].
CHILD = """
    import os, signal, sys
    from pathlib import Path
    from docker.models.containers import Container, ContainerCollection
    from trainer_gui.core.runners.docker import DockerRunner
    from trainer_gui.core.spec import load_spec
    from trainer_gui.core.store import Store
    from trainer_gui.services.jobs import JobService

    point = sys.argv[2]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before-start":  # every container created, none started
        Container.start = die
    else:  # "while-creating": the second training container is never created
        create = ContainerCollection.create
        made = []

        def create_or_die(self, *args, **kwargs):
            if made:
                die()
            made.append(1)
            return create(self, *args, **kwargs)

        ContainerCollection.create = create_or_die
    store = Store(Path(os.environ["TRAINER_GUI_HOME"]) / "db.sqlite3")
    service = JobService(store, {"docker": DockerRunner(grace=3)})
    service.submit(load_spec(sys.argv[1]), job_id=sys.argv[3]).wait(300)
"""


@pytest.fixture
def job_id(docker_client: Any) -> Iterator[str]:
    job = f"early-crash-{uuid.uuid4().hex[:8]}"
    yield job
    selector = {"label": f"{LABEL_JOB}={job}"}
    for container in docker_client.containers.list(all=True, filters=selector):
        with contextlib.suppress(Exception):
            container.remove(force=True)
    for network in docker_client.networks.list(filters=selector):
        with contextlib.suppress(Exception):
            network.remove()


@pytest.fixture
def service(app_home: Path, docker_client: Any) -> Iterator[JobService]:
    store = Store(app_home / "db.sqlite3")
    svc = JobService(store, {"docker": DockerRunner(client=docker_client, grace=3)})
    yield svc
    svc.shutdown()
    store.close()


def _crash_while_starting(tmp_path: Path, spec: JobSpec, point: str, job_id: str) -> None:
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text(dump_spec(spec), encoding="utf-8")
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(spec_path), point, job_id],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr


@pytest.mark.parametrize(
    ("point", "hosts", "distribution", "detail"),
    [
        ("before-start", 1, "none", "algo-1 created but never started"),
        # torchrun: no network holders, so the first container created is algo-1's
        ("while-creating", 2, "torchrun", "algo-1 created but never started"),
        # independent hosts: the first created is algo-1's network holder
        ("while-creating", 2, "none", "0 of 2 containers were created"),
    ],
)
def test_a_queued_job_whose_containers_never_started_is_queued_again_and_completes(
    service: JobService,
    docker_client: Any,
    tmp_path: Path,
    job_spec: SpecFactory,
    job_id: str,
    point: str,
    hosts: int,
    distribution: str,
    detail: str,
) -> None:
    compute = {"backend": "docker", "instance_type": "ml.m5.large", "instance_count": hosts}
    kind = {"kind": distribution}
    spec = job_spec(QUICK, backend="docker", compute=compute, distribution=kind)
    _crash_while_starting(tmp_path, spec, point, job_id)
    selector = {"label": f"{LABEL_JOB}={job_id}"}
    left = docker_client.containers.list(all=True, filters=selector)
    assert left and all(c.status == "created" for c in left)

    assert service.recover([job_id]) == [job_id]

    # Not "Completed" with nothing in it (wait() on a container that never started answers
    # 0), and not a failure either: nothing of it ran, so the queue starts it again.
    record = service.store.get_job(job_id)
    deadline = time.monotonic() + 120
    while record is not None and record.status not in ("Completed", "Failed", "Stopped"):
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.2)
        record = service.store.get_job(job_id)
    assert record is not None and record.status == "Completed", record and record.failure_reason
    history = service.store.status_history(job_id)
    requeued = [e for e in history if e.status == "Queued"]
    assert len(requeued) == 2 and requeued[1].message.startswith("Its start was cut short")
    assert service.store.metric_samples(job_id)  # it really ran this time
    deadline = time.monotonic() + 30
    while _containers(docker_client, selector):
        assert time.monotonic() < deadline, "containers were left behind"
        time.sleep(0.2)
    del detail  # where it was cut short no longer shows: the job ran


def _containers(client: Any, selector: dict[str, str]) -> list[Any]:
    """The job's containers; one removed between listing and inspecting is simply gone."""
    import docker.errors

    try:
        return list(client.containers.list(all=True, filters=selector))
    except docker.errors.NotFound:
        return [None]  # try again
