"""`trainer-gui run` says what a run does before its first line; `show` prints the timeline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from trainer_gui.core.store import Store

QUIET_START = """\
import time
time.sleep(1.5)
print("hello", flush=True)
print("epoch=0 step=0 loss=0.5", flush=True)
"""


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer_gui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )


def _spec(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(QUIET_START)
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "name: quiet\nsource: {source_dir: ., entry_point: train.py}\n"
        "metric_definitions: [{name: loss, regex: 'loss=([0-9.]+)'}]\n"
    )
    return spec


def _seconds(text: str) -> float:
    """'0.4 s' -> 0.4, '12 s' -> 12, '3 min 05 s' -> 185."""
    found = re.fullmatch(r"(?:(\d+) min )?([0-9.]+) s", text.strip())
    assert found, text
    return int(found[1] or 0) * 60 + float(found[2])


def test_run_prints_each_phase_as_it_happens_with_the_time_since_queued(
    app_home: Path, tmp_path: Path
) -> None:
    result = cli("run", str(_spec(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    phases = {m[1]: _seconds(m[2]) for ln in lines if (m := re.fullmatch(r"· (.+) \((.+)\)", ln))}
    assert list(phases) == [
        "preparing the environment",
        "starting the interpreter",
        "running: first log line",
        "first metric",
        "packing the artifacts",
    ]
    # Counted from the queueing: the quiet second and a half shows before the first line.
    assert phases["running: first log line"] - phases["starting the interpreter"] >= 1.4
    assert sorted(phases.values()) == list(phases.values())
    running = next(i for i, ln in enumerate(lines) if ln.startswith("· running: first log line"))
    assert running < lines.index("[algo-1] hello")


def test_quiet_run_prints_no_phase_lines(app_home: Path, tmp_path: Path) -> None:
    result = cli("run", "--quiet", str(_spec(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "· " not in result.stdout
    assert "==> Completed" in result.stdout


def test_show_prints_the_phase_timeline(app_home: Path, tmp_path: Path) -> None:
    assert cli("run", "--quiet", str(_spec(tmp_path))).returncode == 0
    show = cli("show", "quiet")
    assert show.returncode == 0, show.stdout + show.stderr
    out = show.stdout.splitlines()
    start = out.index("Phases:")
    rows = []
    for line in out[start + 1 :]:
        found = re.fullmatch(r"\s+(\S.*? s)  (\S.*?)\s{2,}(\S.*? s)", line)
        if not found:
            break
        rows.append((found[2], _seconds(found[1]), _seconds(found[3])))
    assert [label for label, _, _ in rows] == [
        "Queued",
        "Preparing",
        "Starting the interpreter",
        "Running",
        "First metric",
        "Packing",
    ]
    assert rows[0][1] == 0.0
    assert dict((label, took) for label, _, took in rows)["Starting the interpreter"] >= 1.4
    assert "(now)" not in show.stdout


def test_show_of_a_job_from_before_phases_prints_no_timeline(app_home: Path) -> None:
    with Store() as store:
        store.create_job("old-job", "old", "local-process", "name: old\n", str(app_home))
        store.set_status("old-job", "Completed", "")
        with store._write() as conn:  # as a database migrated from before phases has it
            conn.execute("DELETE FROM job_phases")
    show = cli("show", "old-job")
    assert show.returncode == 0, show.stdout + show.stderr
    assert "Phases:" not in show.stdout and "Completed" in show.stdout
