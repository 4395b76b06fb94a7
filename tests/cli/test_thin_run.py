"""`trainer-gui run` of a local job as a thin client of the job host (cli/thin_run.py): what it
imports, that it prints what the full client prints, its errors, --detach, --quiet, Ctrl+C."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from multiprocessing import Pipe
from pathlib import Path

import pytest

from trainer_gui.cli import thin_run
from trainer_gui.core.errors import UserError
from trainer_gui.core.store.db import DB_FILENAME
from trainer_gui.core.store.phases import format_span
from trainer_gui.services import host_link
from trainer_gui.services.thin_peer import load_for_run

HEAVY = ("pydantic", "numpy", "yaml", "docker", "boto3", "botocore", "PySide6")
TINY = """\
print("hello", flush=True)
for i in range(3):
    print(f"step={i} loss={1.0 / (i + 1)}", flush=True)
"""
SLOW = """\
import time
print("started", flush=True)
time.sleep(60)
"""
# `run` in a new interpreter; then what of the heavy libraries and the app it imported.
THIN = (
    "import sys\n"
    "from trainer_gui.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
    "app = sorted(m for m in sys.modules if m.startswith(('trainer_gui.services.jobs',"
    " 'trainer_gui.core.spec', 'trainer_gui.core.store')))\n"
    "print('IMPORTED', heavy, app, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ.copy(),
        cwd=cwd,
        check=False,
    )


def _full(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The same command the full way (the job host's full client, the spec loaded here), in
    this process: pydantic and the rest are loaded already."""
    from trainer_gui.cli.main import main

    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(thin_run, "applies", lambda args: False)
        code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def _project(tmp_path: Path, script: str = TINY, name: str = "tiny") -> Path:
    (tmp_path / "train.py").write_text(script)
    (tmp_path / "job.yaml").write_text(
        f"name: {name}\nsource: {{source_dir: ., entry_point: train.py}}\n"
    )
    return tmp_path


def _normal(text: str) -> list[str]:
    """The lines with job ids and times taken out."""
    text = re.sub(r"\b[a-z0-9-]+-\d{8}-\d{6}-[0-9a-f]{4}\b", "JOB", text)
    text = re.sub(r" in \w+$", " in T", text, flags=re.MULTILINE)
    return re.sub(r" \([0-9.]+ (s|min)[^)]*\)$", "", text, flags=re.MULTILINE).splitlines()


def test_thin_run_prints_what_the_full_run_prints_and_imports_no_heavy_library(
    app_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _project(tmp_path)
    thin = _run(THIN, "run", "job.yaml", cwd=folder)
    assert thin.returncode == 0, thin.stdout + thin.stderr
    assert thin.stderr.strip() == "IMPORTED [] []"
    full = _full(monkeypatch, capsys, folder, "run", "job.yaml")
    assert full.returncode == 0, full.stdout + full.stderr
    assert full.stderr == ""
    ours, theirs = _normal(thin.stdout), _normal(full.stdout)
    assert ours[0] == theirs[0] == "Started JOB on local-process"
    # Log, metric and summary lines, and the phases, the same and in the same order. Status
    # lines the full client printed the thin one prints too (the full one subscribes a moment
    # after the submit, so under load it may miss the first).
    for kind in (r"\[algo-1\]", "  \u25b8", "\u00b7"):
        assert [ln for ln in ours if re.match(kind, ln)] == [
            ln for ln in theirs if re.match(kind, ln)
        ], kind
    assert [ln for ln in ours if ln.startswith("==>")][
        -1
    ] == "==> Completed: Training job completed"
    statuses = iter([ln for ln in ours if ln.startswith("==>")])
    assert all(ln in statuses for ln in theirs if ln.startswith("==>"))
    summary = ours.index("Job JOB: Completed in T")
    assert ours[summary:] == theirs[theirs.index("Job JOB: Completed in T") :]
    assert ours[summary + 1] == "Final metrics: loss=0.333333"
    assert "[algo-1] hello" in ours and "  \u25b8 algo-1 loss=0.5 (step 1)" in ours


BAD = [
    (["job.yaml", "--set", "epochs"], "key=value"),
    (["bad.yaml"], "bad.yaml: "),
]


def test_a_bad_spec_gets_the_full_runs_message_and_exit_code(
    app_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _project(tmp_path)
    (folder / "bad.yaml").write_text(
        "name: bad\nsource: {source_dir: ., entry_point: x.py}\nx: 1\n"
    )
    for args, message in BAD:
        thin = _run(THIN, "run", *args, cwd=folder)
        full = _full(monkeypatch, capsys, folder, "run", *args)
        assert thin.returncode == full.returncode == 2, args
        assert message in full.stderr and "Traceback" not in thin.stderr
        assert thin.stderr.splitlines()[:-1] == full.stderr.splitlines()
        assert thin.stdout == full.stdout == ""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_detach_ctrl_c_and_quiet(
    app_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _project(tmp_path, SLOW, "slow")
    detached = _run(THIN, "run", "job.yaml", "--detach", cwd=folder)
    assert detached.returncode == 0, detached.stdout + detached.stderr
    lines = _normal(detached.stdout)
    assert lines == [
        "Started JOB on local-process",
        "Follow it with: trainer-gui logs JOB --follow",
    ]
    stopped = _full(monkeypatch, capsys, folder, "stop", detached.stdout.split()[1])
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout

    # Ctrl+C: the command detaches, the job keeps running.
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer_gui", "run", "job.yaml"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
        cwd=folder,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # until the job's own first line: it runs
        seen.append(line)
        if line.startswith("[algo-1] started"):
            break
    job_id = seen[0].split()[1]
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == thin_run.EXIT_DETACHED
    assert f"Detached; the job keeps running.\n  follow: trainer-gui logs {job_id}" in rest
    stopped = _full(monkeypatch, capsys, folder, "stop", job_id)
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout  # it was still running

    _project(tmp_path)
    quiet = _run(THIN, "run", "--quiet", "job.yaml", cwd=folder)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert not any(ln.startswith(("[algo-1]", "\u00b7")) for ln in quiet.stdout.splitlines())
    assert "  \u25b8 algo-1 loss=1 (step 0)" in quiet.stdout


def test_a_sagemaker_spec_goes_the_full_way(tmp_path: Path) -> None:
    """The host hands a SageMaker spec back: the full client preflights it."""
    _project(tmp_path)
    spec, _python = load_for_run("job.yaml", str(tmp_path), backend="local-process")
    assert spec is not None and spec.name == "tiny"
    spec, _python = load_for_run("job.yaml", str(tmp_path), backend="sagemaker")
    assert spec is None


def test_the_thin_client_copies_agree_with_the_store() -> None:
    assert host_link.DB_FILENAME == DB_FILENAME
    for seconds in (-1.0, 0.0, 0.04, 0.45, 9.94, 9.96, 59.4, 59.6, 185.0, 3599.6, 7800.0):
        assert thin_run.format_span(seconds) == format_span(seconds)


def test_the_thin_client_reads_plain_data_only_and_knows_an_older_host() -> None:
    here, there = Pipe()
    there.send(("events", [Path("/x")]))  # a class: refused, nothing is imported for it
    assert thin_run.recv_plain(here) is None
    host = object.__new__(thin_run._Host)
    host.conn, host._next_id, host.job, host.events = here, 0, None, []
    # A host from before the thin client answers `run_spec` with a RuntimeError.
    there.send(("reply", 1, False, RuntimeError("the job host has no method 'run_spec'"), ""))
    with pytest.raises(thin_run._OldHost):
        host.call("run_spec", "job.yaml", "/")
    there.send(("reply", 2, False, UserError("no job 'x'"), ""))
    with pytest.raises(UserError, match="no job 'x'"):
        host.call("job_summary", "x")
    here.close()
    there.close()


def test_the_job_host_keeper_starts_without_the_hosts_imports() -> None:
    """A cold `run` waits for the keeper to start the host: it loads none of the host's code."""
    code = (
        "import sys\n"
        "import trainer_gui.services.host_keeper\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}"
        " or m.startswith(('trainer_gui.services.job', 'trainer_gui.core.store'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_relative_python_path_names_the_file_from_where_run_was_typed(
    app_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job host keeps the folder it started in; `--python venv/bin/python` typed in another
    folder must not be looked up there."""
    from trainer_gui.cli import main as cli

    seen: list[str] = []

    def applies(args: object) -> bool:
        seen.append(getattr(args, "python", ""))
        return False

    def no_service() -> None:
        raise UserError("stop here")  # printed as an error: the test needs no job host

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(thin_run, "applies", applies)
    monkeypatch.setattr(cli, "_service", no_service)
    cli.main(["run", "job.yaml", "--python", "venv/bin/python"])
    cli.main(["run", "job.yaml", "--python", "python3.11"])  # a name: looked up on PATH
    assert seen == [str(tmp_path / "venv" / "bin" / "python"), "python3.11"]


def test_the_summary_that_comes_with_the_final_status_ends_run_without_another_call() -> None:
    """The host sends the job's summary with its final status: `run` asks for nothing more;
    without it (an older host) `run` asks."""
    here, there = Pipe()
    host = object.__new__(thin_run._Host)
    host.conn, host._next_id, host.job = here, 0, "job-1"
    summary = {"id": "job-1", "status": "Completed", "duration": 1.0}
    end = ("status", "job-1", "Completed", "Training job completed", True)
    host.events = [("log", "job-1", [("algo-1", "hi")]), end, ("summary", "job-1", summary)]
    out = io.StringIO()
    assert thin_run._follow(host, "job-1", [], False, out) == summary
    assert out.getvalue() == "[algo-1] hi\n==> Completed: Training job completed\n"
    assert not there.poll(0)  # no call went out
    host.events = [end]
    assert thin_run._follow(host, "job-1", [], True, io.StringIO()) is None
    here.close()
    there.close()
