"""Fixtures for tests that need a Docker engine.

`docker_client` gives a connected Docker SDK client. Without a usable engine the test is skipped,
unless `TRAINER_REQUIRE_DOCKER=1` (CI), where it fails instead: a CI machine that silently lost its
engine must not go green.

Label everything a test creates with the `docker_labels` fixture: `trainer-gui.test=1` plus this
pytest process's `trainer-gui.test-session`. After each test, the containers and networks labelled
`trainer-gui.test=1` are removed, except those of *another* live pytest process (developers share
one engine; one person's teardown must not kill another's containers). Objects with only
`trainer-gui.test=1` count as this session's.

There is deliberately no `__init__.py` in this folder: with pytest's default import mode it would
put `tests/` on `sys.path` and make `import docker` find this folder instead of the Docker SDK.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.docker_util import docker_client as connect
from trainer_gui.core.errors import BackendUnavailable
from trainer_gui.core.runners.docker import LABEL_JOB, DockerRunner
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

REQUIRE_ENV = "TRAINER_REQUIRE_DOCKER"
TEST_LABEL = "trainer-gui.test"
SESSION_LABEL = "trainer-gui.test-session"
SESSION = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
TEST_LABELS = {TEST_LABEL: "1", SESSION_LABEL: SESSION}


def docker_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(labels: dict[str, str] | None, *, include_dead: bool) -> bool:
    session = (labels or {}).get(SESSION_LABEL)
    if not session or session == SESSION:
        return True
    if include_dead:
        pid = session.split("-", 1)[0]
        return pid.isdigit() and not _pid_alive(int(pid))
    return False


def remove_test_objects(client: Any, *, include_dead: bool = False) -> None:
    """Remove this session's labelled containers, then networks (best effort).

    `include_dead` also removes those left by pytest processes that no longer run.
    """
    selector = {"label": f"{TEST_LABEL}=1"}
    for container in client.containers.list(all=True, filters=selector):
        if _ours(container.labels, include_dead=include_dead):
            with contextlib.suppress(Exception):  # already gone, or being removed by --rm
                container.remove(force=True, v=True)
    for network in client.networks.list(filters=selector):
        if _ours(network.attrs.get("Labels"), include_dead=include_dead):
            with contextlib.suppress(Exception):
                network.remove()


@pytest.fixture(scope="session")
def _docker_session() -> Iterator[Any]:
    try:
        client = connect(timeout=120)
    except BackendUnavailable as exc:
        if docker_required():
            pytest.fail(f"{REQUIRE_ENV}=1, but: {exc}", pytrace=False)
        pytest.skip(f"{exc} (set {REQUIRE_ENV}=1 to fail instead of skipping)")
    remove_test_objects(client, include_dead=True)  # leftovers of interrupted earlier runs
    yield client
    remove_test_objects(client)
    client.close()


@pytest.fixture
def docker_client(_docker_session: Any) -> Iterator[Any]:
    """A connected `docker.DockerClient`; labelled test containers/networks are removed after."""
    yield _docker_session
    remove_test_objects(_docker_session)


@pytest.fixture
def docker_labels() -> dict[str, str]:
    """Labels to put on every container and network a test creates."""
    return dict(TEST_LABELS)


@pytest.fixture
def service(docker_client: Any, app_home: Path) -> Iterator[JobService]:
    """A job service on the Docker runner; nothing of any job may be left afterwards:
    containers, network holders, networks."""
    store = Store(app_home / "db.sqlite3")
    svc = JobService(store, {"docker": DockerRunner(client=docker_client, grace=3)})
    yield svc
    svc.shutdown()
    job_ids = [record.id for record in store.list_jobs()]
    store.close()
    for job in job_ids:
        selector = {"label": f"{LABEL_JOB}={job}"}
        assert docker_client.containers.list(all=True, filters=selector) == []
        assert docker_client.networks.list(filters=selector) == []
