"""A process killed early in a job's life (issue 13, item 3): the job gets a true status and
stays reachable by `stop`.

The service runs in a child process that SIGKILLs itself at a chosen point of the start; the
test then re-attaches from a fresh service, as the app or CLI would.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from trainer_gui.core.spec import JobSpec, dump_spec
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL of the service")

SpecFactory = Callable[..., JobSpec]
WaitUntil = Callable[..., None]

JOB = "early-crash"

# Runs until stopped, writing a line now and then.
FOREVER = """
    import time
    step = 0
    while True:
        print(f"step={step} loss=1.0", flush=True)
        step += 1
        time.sleep(0.2)
"""

# The service, killed by SIGKILL at `point` (argv[2]) of starting the job in argv[1].
CHILD = """
    import os, signal, sys
    from pathlib import Path
    from trainer_gui.core.runners import local_process
    from trainer_gui.core.runners.local_process import LocalProcessRunner
    from trainer_gui.core.spec import load_spec
    from trainer_gui.core.store import Store
    from trainer_gui.services.jobs import JobService

    point = sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    spawn = LocalProcessRunner._spawn

    def spawn_and_maybe_die(self, *args, **kwargs):
        if point == "before-spawn":
            die()
        popen = spawn(self, *args, **kwargs)
        if point == "after-spawn":  # Popen returned; nothing recorded yet
            die()
        return popen

    write_marker = local_process.write_start_marker

    def write_marker_and_maybe_die(*args, **kwargs):
        write_marker(*args, **kwargs)
        if point == "after-marker":  # the marker is there, the store has no pid
            die()

    LocalProcessRunner._spawn = spawn_and_maybe_die
    LocalProcessRunner.check = lambda self, spec, python=None: None  # no torch probe
    local_process.write_start_marker = write_marker_and_maybe_die
    store = Store(Path(os.environ["TRAINER_GUI_HOME"]) / "db.sqlite3")
    service = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    service.submit(load_spec(sys.argv[1]), job_id=sys.argv[3]).wait(120)
"""


@pytest.fixture
def job_processes() -> Iterator[list[psutil.Process]]:
    """Processes of a job a test found; any still running at the end are killed."""
    found: list[psutil.Process] = []
    yield found
    for process in found:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _crash_while_starting(tmp_path: Path, spec: JobSpec, point: str) -> None:
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text(dump_spec(spec), encoding="utf-8")
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(spec_path), point, JOB],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr


def _tree_of(run_dir: Path) -> list[psutil.Process]:
    """Every running process of the job: the driver (its pid file) and its descendants."""
    pid = int((run_dir / "driver.pid").read_text().split()[0])
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


@pytest.mark.parametrize("point", ["after-spawn", "after-marker"])
def test_a_job_whose_pid_was_not_stored_is_followed_again_and_stop_reaches_it(
    service: JobService,
    tmp_path: Path,
    job_spec: SpecFactory,
    wait_until: WaitUntil,
    job_processes: list[psutil.Process],
    point: str,
) -> None:
    _crash_while_starting(tmp_path, job_spec(FOREVER), point)
    record = service.get(JOB)
    assert record.status == "Starting"
    assert "pid" not in record.backend_ids  # the point of the test: the store never got it
    run_dir = Path(record.run_dir)
    wait_until(lambda: (run_dir / "driver.pid").exists(), timeout=30)
    wait_until(lambda: len(_tree_of(run_dir)) >= 2, timeout=30)  # driver and script
    job_processes.extend(_tree_of(run_dir))

    assert service.recover([JOB]) == [JOB]
    wait_until(lambda: service.get(JOB).status == "Training", timeout=30)
    assert service.get(JOB).backend_ids["pid"] == job_processes[0].pid

    final = service.stop(JOB, wait=60)
    assert final.status == "Stopped", final.failure_reason
    assert not [p for p in job_processes if p.is_running() and p.status() != "zombie"]


def test_a_queued_job_killed_before_its_process_started_goes_back_to_the_queue_and_runs(
    service: JobService, tmp_path: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    _crash_while_starting(tmp_path, job_spec(FOREVER), "before-spawn")
    assert service.get(JOB).status == "Starting"

    assert service.recover([JOB]) == [JOB]

    # Nothing of it ran ("start it again"): the queue does, instead of recording a failure.
    wait_until(lambda: service.get(JOB).status == "Training", timeout=60)
    history = [e.status for e in service.store.status_history(JOB)]
    assert history[:3] == ["Pending", "Queued", "Starting"] and "Failed" not in history
    assert history.count("Queued") == 2
    assert service.stop(JOB, wait=60).status == "Stopped"


def test_stop_reaches_a_job_whose_pid_was_not_stored_without_a_re_attach_first(
    service: JobService,
    tmp_path: Path,
    job_spec: SpecFactory,
    wait_until: WaitUntil,
    job_processes: list[psutil.Process],
) -> None:
    _crash_while_starting(tmp_path, job_spec(FOREVER), "after-spawn")
    run_dir = Path(service.get(JOB).run_dir)
    wait_until(lambda: (run_dir / "driver.pid").exists(), timeout=30)
    wait_until(lambda: len(_tree_of(run_dir)) >= 2, timeout=30)
    job_processes.extend(_tree_of(run_dir))

    final = service.stop(JOB, wait=60)

    assert final.status == "Stopped", final.failure_reason
    assert not [p for p in job_processes if p.is_running() and p.status() != "zombie"]
