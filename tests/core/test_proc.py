"""Process liveness and tree-kill (core/runners/proc.py) against real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from trainer_gui.core.runners import proc

WaitUntil = Callable[..., None]  # the wait_until fixture

# A job's process that starts a grandchild in a session of its own (killpg misses it), as a
# training script's data loader or a launched server may.
PARENT = """
    import subprocess, sys, time
    child = subprocess.Popen(
        [sys.executable, "-c", {child!r}], start_new_session=True
    )
    open(sys.argv[1], "w").write(str(child.pid))
    time.sleep(600)
"""
SLEEPER = "import time; time.sleep(600)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """Pids a test started; whatever is still running at the end is killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for child in process.children(recursive=True):
                child.kill()
            process.kill()
        except psutil.Error:
            pass


def _start_job(
    tmp_path: Path, child: str, spawned: list[int], wait_until: WaitUntil
) -> tuple[subprocess.Popen[bytes], int]:
    pid_file = tmp_path / "grandchild.pid"
    script = textwrap.dedent(PARENT).format(child=child)
    kwargs: dict[str, object] = {}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        kwargs["start_new_session"] = True
    job = subprocess.Popen([sys.executable, "-c", script, str(pid_file)], **kwargs)  # type: ignore[call-overload]
    spawned.append(job.pid)
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", timeout=30)
    grandchild = int(pid_file.read_text())
    spawned.append(grandchild)
    return job, grandchild


def test_stop_ends_a_grandchild_in_its_own_session(
    tmp_path: Path, spawned: list[int], wait_until: WaitUntil
) -> None:
    job, grandchild = _start_job(tmp_path, SLEEPER, spawned, wait_until)
    marker = proc.start_marker(job.pid)
    assert proc.pid_alive(grandchild)
    proc.terminate_tree(job.pid, grace=5, marker=marker, pgid=job.pid)
    wait_until(lambda: not proc.pid_alive(grandchild), timeout=10)
    job.wait(timeout=10)
    assert not proc.pid_alive(job.pid, marker)


@pytest.mark.skipif(sys.platform == "win32", reason="Windows' terminate is already a hard kill")
def test_a_grandchild_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, spawned: list[int], wait_until: WaitUntil
) -> None:
    job, grandchild = _start_job(tmp_path, STUBBORN, spawned, wait_until)
    proc.terminate_tree(job.pid, grace=0.5, marker=proc.start_marker(job.pid), pgid=job.pid)
    wait_until(lambda: not proc.pid_alive(grandchild), timeout=10)
    job.wait(timeout=10)


def test_a_pid_whose_start_time_differs_from_the_marker_is_not_alive() -> None:
    me = psutil.Process()
    assert proc.pid_alive(me.pid, proc.start_marker(me.pid))
    reused = repr(me.create_time() - 3600.0)  # the job that had this pid started earlier
    assert not proc.pid_alive(me.pid, reused)


def test_a_pid_that_is_no_longer_the_job_is_not_signalled(
    tmp_path: Path, spawned: list[int], wait_until: WaitUntil
) -> None:
    job, grandchild = _start_job(tmp_path, SLEEPER, spawned, wait_until)
    reused = repr(psutil.Process(job.pid).create_time() - 3600.0)
    proc.terminate_tree(job.pid, grace=0.5, marker=reused, pgid=0)
    assert job.poll() is None and proc.pid_alive(grandchild)


@pytest.mark.parametrize("old", ["123456789", "not-a-number", ""])
def test_a_marker_from_an_older_store_is_ignored_not_an_error(old: str) -> None:
    assert proc.pid_alive(os.getpid(), old)


def test_a_stopped_job_found_by_an_old_marker_still_stops(
    tmp_path: Path, spawned: list[int], wait_until: WaitUntil
) -> None:
    job, grandchild = _start_job(tmp_path, SLEEPER, spawned, wait_until)
    proc.terminate_tree(job.pid, grace=5, marker="123456789", pgid=job.pid)
    wait_until(lambda: not proc.pid_alive(grandchild), timeout=10)
    job.wait(timeout=10)


@pytest.mark.skipif(sys.platform == "win32", reason="zombies are a POSIX thing")
def test_a_zombie_counts_as_dead(wait_until: WaitUntil) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    marker = proc.start_marker(child.pid)
    try:
        # Not reaped yet: the process table still has it, as a zombie.
        wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE)
        assert not proc.pid_alive(child.pid, marker)
    finally:
        child.wait()


def test_an_ended_and_reaped_job_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    marker = proc.start_marker(child.pid)
    assert marker is not None and proc.pid_alive(child.pid, marker)
    child.kill()
    child.wait()
    assert not proc.pid_alive(child.pid, marker)
    assert not proc.pid_alive(0)
