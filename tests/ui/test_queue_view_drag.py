"""Drag and drop in the Queue dock, with a real drag of the real widget (issue 14).

The suite's offscreen platform refuses every drag, so the test runs queue_drag_child.py in a
child pytest under Qt's `minimal` platform, whose drag is Qt's own (QSimpleDrag): the table's
`startDrag`, the nested drag loop, drag enter/move/drop through the window system, and the
moves stored in the queue (see that file).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHILD = Path(__file__).with_name("queue_drag_child.py")
REPO = Path(__file__).resolve().parents[2]


def test_dragging_waiting_jobs_in_the_queue_dock_reorders_them_in_the_store(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "minimal"}
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "child"),
            str(CHILD),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "1 passed" in output, output[-6000:]
