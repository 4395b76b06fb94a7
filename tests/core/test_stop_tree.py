"""Stop and max runtime end the job's whole process tree with the real driver (issue 13,
item 6): a script that ignores SIGTERM, a grandchild in a session of its own, and processes
the script starts while it is being stopped."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sessions")

SpecFactory = Callable[..., JobSpec]
WaitUntil = Callable[..., None]

# Ignores SIGTERM by starting yet another process in its own session each time it gets one.
STUBBORN = """
    import os, signal, subprocess, sys, time
    out = os.environ["SM_OUTPUT_DATA_DIR"]
    IGNORE = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"

    def spawn(name):
        child = subprocess.Popen([sys.executable, "-c", IGNORE], start_new_session=True)
        open(os.path.join(out, name), "w").write(str(child.pid))

    def on_term(signum, frame):
        spawn("late-%d.pid" % time.monotonic_ns())

    signal.signal(signal.SIGTERM, on_term)
    open(os.path.join(out, "script.pid"), "w").write(str(os.getpid()))
    spawn("grandchild.pid")
    print("loss=1.0", flush=True)
    while True:
        time.sleep(0.1)
"""


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """The job's pids a test saw; whatever still runs at the end is killed."""
    seen: list[int] = []
    yield seen
    for pid in seen:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def _job_pids(service: JobService, job_id: str) -> list[int]:
    record = service.get(job_id)
    out = Path(record.run_dir) / "hosts" / "algo-1" / "output" / "data"
    found = [int(record.backend_ids["pid"])]
    found += [int(path.read_text()) for path in sorted(out.glob("*.pid")) if path.read_text()]
    return found


def _alive(pids: list[int]) -> list[int]:
    def running(pid: int) -> bool:
        try:
            process = psutil.Process(pid)
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    return [pid for pid in pids if running(pid)]


def _started(service: JobService, job_id: str) -> bool:
    record = service.get(job_id)
    out = Path(record.run_dir) / "hosts" / "algo-1" / "output" / "data"
    return (out / "grandchild.pid").exists() and (out / "script.pid").exists()


def test_stop_leaves_no_process_of_a_stubborn_script_alive(
    service: JobService, job_spec: SpecFactory, wait_until: WaitUntil, pids: list[int]
) -> None:
    handle = service.submit(job_spec(STUBBORN))
    wait_until(lambda: _started(service, handle.job_id), timeout=60)
    pids += _job_pids(service, handle.job_id)
    assert len(_alive(pids)) == 3  # driver, script, grandchild

    record = service.stop(handle.job_id, wait=60)

    assert record.status == "Stopped", record.failure_reason
    pids += _job_pids(service, handle.job_id)  # with those started while it was stopped
    assert len(pids) > 3
    assert _alive(pids) == []


def test_max_runtime_leaves_no_process_of_a_stubborn_script_alive(
    service: JobService, job_spec: SpecFactory, wait_until: WaitUntil, pids: list[int]
) -> None:
    handle = service.submit(job_spec(STUBBORN, max_runtime_seconds=3))
    wait_until(lambda: _started(service, handle.job_id), timeout=60)
    pids += _job_pids(service, handle.job_id)

    assert handle.wait(60) is not None

    record = service.get(handle.job_id)
    assert record.status == "Stopped"
    assert "MaxRuntimeExceeded" in (record.failure_reason or "")
    pids += _job_pids(service, handle.job_id)
    assert len(pids) > 3
    assert _alive(pids) == []  # at once: the job counts as over only when its tree is gone


def test_a_script_whose_driver_was_killed_is_ended_with_the_job(
    service: JobService, job_spec: SpecFactory, wait_until: WaitUntil, pids: list[int]
) -> None:
    handle = service.submit(job_spec(STUBBORN))
    wait_until(lambda: _started(service, handle.job_id), timeout=60)
    pids += _job_pids(service, handle.job_id)
    driver = psutil.Process(pids[0])

    driver.kill()  # the OOM killer's way: no signal reaches the script in its own session

    assert handle.wait(60) is not None
    assert service.get(handle.job_id).status == "Failed"
    pids += _job_pids(service, handle.job_id)
    assert _alive(pids) == []
