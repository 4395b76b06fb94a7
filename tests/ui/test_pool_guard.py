"""A UI test that fails while a pool worker still waits must not hang the test run at exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

STUCK_TEST = textwrap.dedent(
    """
    import threading

    from trainer_gui.ui.tasks import run_task

    NEVER = threading.Event()


    def test_fails_before_releasing_its_worker(qtbot):
        run_task(NEVER.wait)  # an export/cost worker blocked on a fake that is never released
        assert False, "failed before the release"


    def test_the_next_test_waits_only_for_its_own_work(qtbot):
        run_task(lambda: None)
    """
)


def test_a_failed_test_with_a_stuck_pool_worker_ends_the_run_with_its_failure(
    tmp_path: Path,
) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_stuck.py").write_text(STUCK_TEST)
    env = {**os.environ, "TRAINER_TEST_POOL_WAIT_MS": "2000", "TRAINER_GUI_HOME": str(tmp_path)}

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # without the guard this run never ends
    )

    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "failed before the release" in out
    assert "QThreadPool tasks still running" in out
    # One failure and one teardown error; the next test is not blamed for the stuck worker.
    assert "1 failed, 1 passed, 1 error" in out
    assert "exiting without waiting for them" in out
