"""A GPU per host (issues 14 and 17): the queue gives each local job, and each host of it,
distinct devices; the runners pass them on; a request the machine can never meet is refused."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.errors import UserError
from trainer_gui.core.resources import GPU_IDS_KEY, assign_gpus, too_many_gpus
from trainer_gui.core.spec import spec_from_dict
from trainer_gui.core.store import Store
from trainer_gui.core.store.queue import ALL_GPUS
from trainer_gui.services.jobs import JobService

TERMINAL = ("Completed", "Failed", "Stopped")


def test_hosts_get_distinct_devices_lowest_free_first() -> None:
    assert assign_gpus(1, 2, machine=2, taken=()) == [[0], [1]]
    assert assign_gpus(2, 1, machine=4, taken=[0]) == [[1, 2]]
    assert assign_gpus(1, 2, machine=2, taken=[1]) is None  # not enough free
    assert assign_gpus(ALL_GPUS, 2, machine=2, taken=[0]) == [[0, 1], [0, 1]]
    assert assign_gpus(0, 3, machine=8, taken=()) == [[], [], []]


def _spec(gpus: Any, hosts: int = 1, backend: str = "docker") -> Any:
    return spec_from_dict(
        {
            "name": "g",
            "source": {"command": ["true"]},
            "compute": {"backend": backend, "gpus": gpus, "instance_count": hosts},
        }
    )


def test_a_request_beyond_the_machine_names_both_numbers() -> None:
    message = too_many_gpus(_spec(2, hosts=2), machine=2)
    assert message is not None and "asks for 4 GPUs (2 hosts x 2 GPUs); this machine has 2" in (
        message
    )
    assert too_many_gpus(_spec(1, hosts=2), machine=2) is None
    assert too_many_gpus(_spec("all", hosts=2), machine=2) is None
    assert too_many_gpus(_spec(1), machine=0) is None  # no GPU: the backend says what to do


@pytest.fixture
def service(app_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobService]:
    monkeypatch.setenv("TRAINER_GUI_GPUS", "2")
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "4")
    from trainer_gui.core.runners.local_process import LocalProcessRunner

    monkeypatch.setattr(LocalProcessRunner, "check", lambda self, spec, python=None: None)
    store = Store()
    svc = JobService(store)
    yield svc
    for record in store.list_jobs(active_only=True):
        svc.stop(record.id, wait=15)
    svc.shutdown()
    store.close()


def test_local_jobs_see_only_their_own_gpu_and_a_third_waits_for_one(
    service: JobService, tmp_path: Path
) -> None:
    script = tmp_path / "show.py"
    script.write_text(
        "import os, time\nprint('visible=' + os.environ.get('CUDA_VISIBLE_DEVICES', '-'),"
        " flush=True)\ntime.sleep(1.5)\n"
    )
    spec = spec_from_dict(
        {
            "name": "gpu",
            "source": {"command": [sys.executable, str(script)]},
            "compute": {"backend": "local-process", "gpus": 1},
        }
    )
    ids = [service.submit(spec).job_id for _ in range(3)]
    assert service.get(ids[2]).status == "Queued"  # both GPUs are taken
    deadline = time.monotonic() + 60
    while any(service.get(i).status not in TERMINAL for i in ids):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    given = [service.get(i).backend_ids[GPU_IDS_KEY] for i in ids]
    assert given[:2] == [[[0]], [[1]]]
    logs = [(Path(service.get(i).run_dir) / "logs" / "job.log").read_text() for i in ids]
    assert "visible=0" in logs[0] and "visible=1" in logs[1]
    assert "visible=" in logs[2]  # the third ran once a GPU was free


def test_a_job_asking_for_more_gpus_than_the_machine_has_is_refused_at_submit(
    service: JobService,
) -> None:
    with pytest.raises(UserError, match="asks for 3 GPUs; this machine has 2"):
        service.submit(_spec(3, backend="local-process"))
