"""A GPU per host on docker (issue 17): each host's container is created with its own device
ids, the queue's pick (checked at the Docker boundary: this machine has no GPU)."""

from __future__ import annotations

from typing import Any

import pytest

from trainer_gui.core.resources import GPU_IDS_KEY
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker


def test_docker_hosts_get_their_own_device_ids(
    service: JobService, monkeypatch: pytest.MonkeyPatch, job_spec: Any
) -> None:
    monkeypatch.setenv("TRAINER_GUI_GPUS", "2")
    """At the Docker boundary (no GPU here): what each host's container is created with."""
    from docker.models.containers import ContainerCollection

    from trainer_gui.core.runners.docker import DockerRunner

    created: list[dict[str, Any]] = []

    def create(self: Any, image: str, **kwargs: Any) -> Any:
        if kwargs.get("device_requests"):
            created.append(kwargs)
        if len(created) == 2:
            raise RuntimeError("enough seen")
        raise RuntimeError("not a training container")

    monkeypatch.setattr(DockerRunner, "check", lambda self, spec, python=None: None)
    monkeypatch.setattr(ContainerCollection, "create", create)
    # torchrun: no network holders, so the first container created is algo-1's training one
    torchrun = job_spec(
        "print('hi')",
        backend="docker",
        compute={"backend": "docker", "gpus": 1, "instance_count": 2},
        distribution={"kind": "torchrun"},
        image="trainer-gui/train-cpu:latest",  # no GPU image on this machine
    )
    job = service.submit(torchrun)
    job.wait(60)
    record = service.get(job.job_id)
    assert record.backend_ids.get(GPU_IDS_KEY) == [[0], [1]], (record.status, record.failure_reason)
    assert created, (record.status, record.failure_reason)
    request = created[0]["device_requests"][0]
    assert request["DeviceIDs"] == ["0"] and request["Count"] in (None, 0)
