"""The local-process runner notices its driver's exit at once, not on its next poll (issue 14):
a sweep's or the queue's next job starts as soon as a slot is free."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer_gui.core.runners.base import JobContext
from trainer_gui.core.runners.local_process import _ProcessWatch
from trainer_gui.core.spec import JobSpec

SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)


def watch_of(popen: subprocess.Popen[bytes] | None, spec: JobSpec, run_dir: Path) -> _ProcessWatch:
    (run_dir / "logs").mkdir(parents=True)
    ctx = JobContext(job_id="t-exit", spec=spec, run_dir=run_dir)
    return _ProcessWatch(ctx, lambda _event: None, popen)


def test_a_pause_ends_when_the_driver_exits_and_the_watch_lets_go_of_its_handle(
    job_spec: SpecFactory, tmp_path: Path
) -> None:
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    watch = watch_of(popen, job_spec("print(1)\n"), tmp_path / "run")
    started = time.monotonic()
    while watch.running():
        watch.pause(30.0)  # the poll's interval is 0.1 s; a long one shows the wake-up
        assert time.monotonic() - started < 20
    assert time.monotonic() - started < 10
    fd = watch._pidfd
    watch.release()
    if fd is not None and fd >= 0:  # Linux: the pidfd is closed with the watch
        with pytest.raises(OSError):
            os.fstat(fd)


def test_a_pause_waits_its_time_while_the_driver_runs_or_when_re_attached(
    job_spec: SpecFactory, tmp_path: Path
) -> None:
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        watch = watch_of(popen, job_spec("print(1)\n"), tmp_path / "run")
        started = time.monotonic()
        watch.pause(0.3)
        assert 0.25 <= time.monotonic() - started < 10
        assert watch.running()
        watch.release()
    finally:
        popen.kill()
        popen.wait()
    attached = watch_of(None, job_spec("print(1)\n"), tmp_path / "attached")
    started = time.monotonic()
    attached.pause(0.2)  # no process of ours to wait on: a plain sleep
    assert 0.15 <= time.monotonic() - started < 10
