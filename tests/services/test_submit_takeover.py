"""A job being submitted is not taken over: between its record and its place in the queue
(seconds on a cold machine: the GPU count, nvidia-smi, ran there until it moved before the
record) the job host's look for unfollowed jobs used to attach to it, find no process and
fail it for good ("the app stopped while the job was starting")."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer_gui.core.resources import Needs
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.core.store import Store
from trainer_gui.services import jobs
from trainer_gui.services.jobs import JobService

TERMINAL = ("Completed", "Failed", "Stopped")


@pytest.fixture
def service(app_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobService]:
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "1")
    store = Store()
    svc = JobService(store)
    yield svc
    for record in store.list_jobs(active_only=True):
        svc.stop(record.id, wait=15)
    svc.shutdown()
    store.close()


def _spec(tmp_path: Path, backend: str = "local-process") -> object:
    script = tmp_path / "hello.py"
    script.write_text("print('loss=0.5', flush=True)\n")
    return spec_from_dict(
        {
            "name": "taken",
            "source": {"command": [sys.executable, str(script)]},
            "compute": {"backend": backend},
        }
    )


def test_the_hosts_recover_pass_leaves_a_job_that_is_being_submitted_alone(
    service: JobService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[list[str]] = []
    seen: list[str] = []
    counted = jobs.needs_of

    def slow_needs(spec: JobSpec) -> Needs:
        if seen:  # once: the one in submit
            return counted(spec)
        # The recorded job waits here, as on a cold machine: the job
        # host's pass over unfollowed jobs (every 2 s) runs now, from another process's view
        # as well (another service on the same store).
        seen.extend(r.status for r in service.store.list_jobs(active_only=True))
        taken.append(service.recover(cleanup=False))
        other = JobService(Store(service.store.path))
        try:
            taken.append(other.recover(cleanup=False))
        finally:
            other.shutdown()
        return counted(spec)

    monkeypatch.setattr(jobs, "needs_of", slow_needs)
    job_id = service.submit(_spec(tmp_path)).job_id  # type: ignore[arg-type]

    assert seen, "the needs were counted before the job was recorded: the test no longer reaches it"
    assert taken == [[], []]
    deadline = time.monotonic() + 60
    while service.get(job_id).status not in TERMINAL:
        assert time.monotonic() < deadline, service.get(job_id).status
        time.sleep(0.05)
    assert service.get(job_id).status == "Completed", service.store.status_history(job_id)
    assert "Failed" not in [e.status for e in service.store.status_history(job_id)]
