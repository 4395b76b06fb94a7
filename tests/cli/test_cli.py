"""The `trainer-gui` command, run as a real process the way a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer_gui.core.paths import example_project
from trainer_gui.core.store import Store

EXAMPLE_SPEC = example_project() / "job.yaml"


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer_gui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainer_gui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )


def wait_for(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_the_example_runs_end_to_end(app_home: Path) -> None:
    result = cli("run", str(EXAMPLE_SPEC), "--set", "epochs=3")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "==> Training" in out and "==> Completed" in out
    assert "[algo-1] epoch=2 " in out
    assert out.count("\u25b8 algo-1 ") == 3 and "test_acc=" in out  # metrics as they come
    assert "Final metrics:" in out and "test_acc=" in out
    final = next(line for line in out.splitlines() if line.startswith("Final metrics:"))
    assert "sys/" not in final  # CPU and memory readings are for the plots
    store = Store()
    [record] = store.list_jobs()
    assert record.status == "Completed"
    assert [e.status for e in store.status_history(record.id)] == [
        "Pending", "Queued", "Starting", "Training", "Uploading", "Completed",
    ]  # fmt: skip
    assert len(store.metric_samples(record.id, name="test_acc")) == 3
    run_dir = Path(record.run_dir)
    assert (run_dir / "artifacts" / "model.tar.gz").is_file()
    assert (run_dir / "artifacts" / "output.tar.gz").is_file()
    jobs = cli("jobs")
    assert record.id in jobs.stdout and "Completed" in jobs.stdout
    logs = cli("logs", record.id)
    assert logs.stdout.count("[algo-1] epoch=") == 3
    show = cli("show", "quickstart")
    assert "Uploading" in show.stdout and show.returncode == 0


def test_a_failing_job_exits_non_zero_with_its_reason(app_home: Path, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("raise SystemExit('no data found')\n")
    (tmp_path / "job.yaml").write_text(
        "name: bad\nsource: {source_dir: ., entry_point: train.py}\n"
    )
    result = cli("run", str(tmp_path / "job.yaml"))
    assert result.returncode == 1
    assert "Failed" in result.stdout and "no data found" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.yaml"], "no such file"),
        (["spec", "validate", "missing.yaml"], "no such file"),
        (["run", str(EXAMPLE_SPEC), "--set", "epochs"], "key=value"),
        (["run", str(EXAMPLE_SPEC), "--set", "compute.instance_count=3"], "one host"),
        (["run", str(EXAMPLE_SPEC), "--backend", "k8s"], "invalid choice"),
        (["logs", "no-such-job"], "no job"),
        (["stop", "no-such-job"], "no job"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(
    app_home: Path, args: list[str], message: str
) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_spec_validate_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: has_underscore\nsource: {}\nmax_runtime_seconds: 0\n")
    result = cli("spec", "validate", str(bad))
    assert result.returncode == 2
    assert "3 problems" in result.stderr
    assert "name:" in result.stderr and "max_runtime_seconds:" in result.stderr
    good = cli("spec", "validate", str(EXAMPLE_SPEC))
    assert good.returncode == 0 and "OK" in good.stdout


def test_version_is_printed() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("trainer-gui ")


SLOW = """
import time
for i in range(80):
    print(f"step={i} loss={i}", flush=True)
    time.sleep(0.1)
"""


def _slow_spec(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(SLOW)
    spec = tmp_path / "job.yaml"
    spec.write_text("name: slow\nsource: {source_dir: ., entry_point: train.py}\n")
    return spec


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_cli_re_attaches_with_complete_metrics(app_home: Path, tmp_path: Path) -> None:
    proc = start("run", str(_slow_spec(tmp_path)))
    store = Store()
    wait_for(lambda: store.list_jobs() and store.metric_count(store.list_jobs()[0].id) >= 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    job_id = store.list_jobs()[0].id
    follow = cli("logs", job_id, "--follow")
    assert follow.returncode == 0, follow.stdout + follow.stderr
    assert follow.stdout.strip().endswith("==> Completed")
    steps = [s.step for _, s in store.metric_samples(job_id, name="loss")]
    assert steps == list(range(80))
    assert follow.stdout.count("[algo-1] step=") == 80


def test_stop_from_another_terminal(app_home: Path, tmp_path: Path) -> None:
    proc = start("run", str(_slow_spec(tmp_path)))
    store = Store()
    wait_for(lambda: store.list_jobs() and store.metric_count(store.list_jobs()[0].id) >= 3)
    result = cli("stop", "slow")
    assert result.returncode == 0 and "Stopped" in result.stdout
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert "==> Stopped" in out


def test_detach_leaves_the_job_running(app_home: Path, tmp_path: Path) -> None:
    result = cli("run", str(_slow_spec(tmp_path)), "--detach", "--set", "max_runtime_seconds=60")
    assert result.returncode == 0 and "Follow it with" in result.stdout
    active = cli("jobs", "--active")
    assert "slow-" in active.stdout
    stop = cli("stop", "slow")
    assert "Stopped" in stop.stdout


def test_the_example_opens_from_a_writable_copy(app_home: Path) -> None:
    from trainer_gui.core.paths import example_workspace

    copy = example_workspace()
    assert copy.is_relative_to(app_home)
    assert (copy / "job.yaml").is_file() and (copy / "code" / "train.py").is_file()
    (copy / "job.yaml").write_text("name: edited\n")
    assert example_workspace() == copy  # made once; the user's edits are kept
    assert (copy / "job.yaml").read_text() == "name: edited\n"
    assert (example_project() / "job.yaml").read_text() != "name: edited\n"


def test_logs_follow_ends_for_a_finished_job_that_printed_nothing(app_home: Path) -> None:
    store = Store()
    run_dir = app_home / "runs" / "quiet"
    run_dir.mkdir(parents=True)
    store.create_job("quiet", "quiet", "local-process", "name: quiet\n", str(run_dir))
    store.set_status("quiet", "Completed", "Training job completed")
    store.close()
    result = cli("logs", "quiet", "--follow", timeout=60)  # hung forever: no job.log to drain
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "==> Completed"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_logs_follow_takes_over_when_the_ingesting_process_dies(
    app_home: Path, tmp_path: Path
) -> None:
    runner = start("run", str(_slow_spec(tmp_path)))
    store = Store()
    wait_for(lambda: store.list_jobs() and store.metric_count(store.list_jobs()[0].id) >= 5)
    job_id = store.list_jobs()[0].id
    out_file = tmp_path / "follow.out"
    with open(out_file, "w") as sink:
        follow = subprocess.Popen(
            [sys.executable, "-m", "trainer_gui", "logs", job_id, "--follow"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    try:
        # It is following (and cannot ingest: the lock is held) once it printed something.
        wait_for(lambda: out_file.stat().st_size > 0)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        follow.wait(timeout=90)  # it waited forever for lines nobody stored
    finally:
        follow.kill()
        runner.kill()
    out = out_file.read_text()
    assert follow.returncode == 0, out
    assert out.strip().endswith("==> Completed")
    assert out.count("[algo-1] step=") == 80
    assert [s.step for _, s in store.metric_samples(job_id, name="loss")] == list(range(80))


def test_logs_prints_only_what_the_store_committed_and_ends_on_a_broken_last_line(
    app_home: Path,
) -> None:
    from trainer_gui.core.joblog import format_log_line

    store = Store()
    for job in ("cut", "legacy"):
        (app_home / "runs" / job / "logs").mkdir(parents=True)
        store.create_job(job, job, "local-process", f"name: {job}\n", str(app_home / "runs" / job))
        store.set_status(job, "Completed", "Training job completed")
    kept = format_log_line(1.0, "algo-1", "stdout", "kept")
    uncommitted = format_log_line(2.0, "algo-1", "stdout", "never committed")
    (app_home / "runs" / "cut" / "logs" / "job.log").write_text(kept + uncommitted)
    store.record_batch("cut", {}, [], log_size=len(kept))
    (app_home / "runs" / "legacy" / "logs" / "job.log").write_text(kept + "1.0\talgo-1\tstd")
    store.close()
    cut = cli("logs", "cut", "--follow", timeout=60)
    assert cut.stdout == "[algo-1] kept\n==> Completed\n", cut.stdout + cut.stderr
    legacy = cli("logs", "legacy", "--follow", timeout=60)
    assert legacy.stdout == "[algo-1] kept\n==> Completed\n", legacy.stdout + legacy.stderr
