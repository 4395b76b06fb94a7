"""Helper children (a venv, a pip install) die with the process that started them (issue 13):
a job host killed mid-install must not leave a pip beside the one its successor starts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl")

PARENT = """
    import subprocess, sys, time
    from trainer_gui.core.runners import proc
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=proc.helper_preexec()
    )
    print(child.pid, flush=True)
    time.sleep(60)
"""


def test_a_helper_child_is_killed_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PARENT)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the helper child outlived its parent"
            time.sleep(0.05)
    finally:
        if child.is_running():
            child.kill()
