"""The job host: jobs followed in a child process, events back in columns, calls over a
`multiprocessing.connection`, and the frozen bundle starting its own job host."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from trainer_gui.core.errors import JobNotFound, UserError
from trainer_gui.core.runners.events import JobStatus, StatusChanged
from trainer_gui.core.spec import spec_from_dict
from trainer_gui.core.store import Store
from trainer_gui.services import job_host
from trainer_gui.services.api import Jobs
from trainer_gui.services.job_host import JobHostClient, job_host_command, make_job_service
from trainer_gui.services.jobs import JobService
from trainer_gui.services.live_data import LogData, MetricData

WaitUntil = Callable[..., None]  # the wait_until fixture
CONSOLE_SCRIPT = Path(sys.executable).parent / "trainer-gui"
SCRIPT = """
import sys, time
for i in range(int(sys.argv[1])):
    print(f"step={i} loss={1.0 / (i + 1):.4f}", flush=True)
    time.sleep(float(sys.argv[2]))
print("oops", file=sys.stderr, flush=True)
"""


@pytest.fixture
def store(app_home: Path) -> Iterator[Store]:
    db = Store()
    yield db
    db.close()


@pytest.fixture
def client(store: Store) -> Iterator[JobHostClient]:
    host = JobHostClient(store)
    yield host
    for record in store.list_jobs(active_only=True):
        with contextlib.suppress(Exception):  # best effort: a failed test's job
            host.stop(record.id, wait=15)
    host.shutdown()


def spec_for(tmp_path: Path, lines: int, pause: float = 0.0) -> Any:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT, encoding="utf-8")
    command = [sys.executable, str(script), str(lines), str(pause)]
    return spec_from_dict({"name": "hosted", "source": {"command": command}})


def test_a_job_runs_in_the_child_and_its_output_arrives_in_columns(
    client: JobHostClient, tmp_path: Path, wait_until: WaitUntil
) -> None:
    events: list[Any] = []
    threads: set[str] = set()

    def listen(event: Any) -> None:
        threads.add(threading.current_thread().name)
        events.append(event)

    client.subscribe(listen)
    assert client.ping() != os.getpid()

    handle = client.submit(spec_for(tmp_path, 50))

    assert handle.wait(60) == JobStatus.COMPLETED
    wait_until(
        lambda: any(
            isinstance(e, StatusChanged) and e.status == JobStatus.COMPLETED for e in events
        ),
        timeout=5,
    )
    statuses = [e.status for e in events if isinstance(e, StatusChanged)]
    assert statuses[-1] == JobStatus.COMPLETED
    texts = [row[2] for e in events if isinstance(e, LogData) for row in e.chunk.rows]
    assert texts[:50] == [f"step={i} loss={1.0 / (i + 1):.4f}" for i in range(50)]
    streams = {row[1] for e in events if isinstance(e, LogData) for row in e.chunk.rows}
    assert "stderr" in streams
    losses = [
        value
        for e in events
        if isinstance(e, MetricData) and ("algo-1", "loss") in e.chunk.columns
        for value in e.chunk.columns[("algo-1", "loss")][2].tolist()
    ]
    assert losses == [round(1.0 / (i + 1), 4) for i in range(50)]
    assert threads == {"job-host-reader"}
    # The store, written by the child, has it all too.
    record = client.get(handle.job_id)
    assert record.status == "Completed"
    assert len(client.store.metric_samples(handle.job_id)) == 50


def test_stop_and_errors_go_through_the_child(
    client: JobHostClient, tmp_path: Path, wait_until: WaitUntil
) -> None:
    handle = client.submit(spec_for(tmp_path, 10_000, pause=0.05))
    wait_until(lambda: client.get(handle.job_id).status == "Training", timeout=30)

    client.stop(handle.job_id, wait=30)

    assert client.get(handle.job_id).status == "Stopped"
    with pytest.raises(JobNotFound, match="no job 'no-such-job'"):
        client.stop("no-such-job")


def _samples(store: Store, job_id: str) -> list[float]:
    return [s.value for _, s in store.metric_samples(job_id, "loss")]


def _poll(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _host_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_host_killed_mid_job_is_restarted_and_takes_over_exactly_once(
    client: JobHostClient, store: Store, tmp_path: Path, wait_until: WaitUntil
) -> None:
    handle = client.submit(spec_for(tmp_path, 400, pause=0.01))
    first = client.ping()
    wait_until(lambda: len(_samples(store, handle.job_id)) > 20, timeout=30)

    os.kill(first, signal.SIGKILL)

    # Nobody calls recover: the keeper starts a new host, which takes the job over itself.
    wait_until(lambda: client.pid not in (None, first), timeout=30)
    assert handle.wait(60) == JobStatus.COMPLETED
    assert _samples(store, handle.job_id) == [round(1.0 / (i + 1), 4) for i in range(400)]
    log_lines = (Path(store.get_job(handle.job_id).run_dir) / "logs" / "job.log").read_text()  # type: ignore[union-attr]
    assert log_lines.count("step=399 ") == 1 and log_lines.count("step=0 ") == 1


def test_a_job_outlives_its_client_and_the_host_enforces_its_max_runtime(
    store: Store, tmp_path: Path, wait_until: WaitUntil
) -> None:
    client = JobHostClient(store)
    spec = spec_for(tmp_path, 100_000, pause=0.01).model_copy(update={"max_runtime_seconds": 3})
    handle = client.submit(spec)
    host = client.ping()

    client.shutdown()  # the window closes, or the CLI is detached

    assert psutil.pid_exists(host)  # the host stays: it owns the job
    record = JobService(store).wait(handle.job_id, timeout=30)
    assert record.status == "Stopped" and "MaxRuntimeExceeded" in (record.failure_reason or "")
    assert record.duration is not None and record.duration < 3 + 5 + 3  # limit, grace, slack
    wait_until(lambda: _host_gone(host), timeout=20)  # then nothing is left to supervise


def test_a_window_that_dies_leaves_its_jobs_with_the_host(
    store: Store, tmp_path: Path, wait_until: WaitUntil
) -> None:
    spec = spec_for(tmp_path, 40, pause=0.05)
    window = (
        "import os, sys\n"
        "from trainer_gui.core.spec import spec_from_dict\n"
        "from trainer_gui.core.store import Store\n"
        "from trainer_gui.services.job_host import JobHostClient\n"
        "client = JobHostClient(Store())\n"
        f"handle = client.submit(spec_from_dict({{'name': 'orphan', 'source': "
        f"{{'command': {spec.source.command!r}}}}}))\n"
        "print(handle.job_id, client.ping(), flush=True)\n"
        "os._exit(0)  # no goodbye: as if the window crashed\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", window], capture_output=True, text=True, timeout=120, check=True
    )
    job_id, host = out.stdout.split()

    # Nobody takes it over: the host that followed it still does, and records the end.
    assert JobService(store).wait(job_id, timeout=60).status == "Completed"
    assert len(_samples(store, job_id)) == 40
    wait_until(lambda: _host_gone(int(host)), timeout=20)


def test_clients_started_at_once_share_one_host(store: Store) -> None:
    clients = [JobHostClient(store) for _ in range(3)]
    pids: list[int] = []
    threads = [threading.Thread(target=lambda c=c: pids.append(c.ping())) for c in clients]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(pids) == 3 and len(set(pids)) == 1
        endpoint = job_host.read_endpoint(job_host.host_dir(store.path))
        assert endpoint is not None and endpoint["pid"] == pids[0]
        mode = (job_host.host_dir(store.path) / job_host.ENDPOINT).stat().st_mode
        assert mode & 0o077 == 0  # the key is readable by this user only
    finally:
        for c in clients:
            c.shutdown()


def test_a_lost_keeper_is_replaced_and_still_restarts_the_host(
    client: JobHostClient, store: Store, tmp_path: Path, wait_until: WaitUntil
) -> None:
    handle = client.submit(spec_for(tmp_path, 300, pause=0.02))
    host = client.ping()
    keeper = psutil.Process(host).ppid()
    assert "--worker" not in psutil.Process(keeper).cmdline()

    os.kill(keeper, signal.SIGKILL)
    wait_until(
        lambda: any("--watch" in p.cmdline() for p in psutil.Process(host).children()), timeout=20
    )
    os.kill(host, signal.SIGKILL)

    wait_until(lambda: client.pid not in (None, host), timeout=30)
    assert handle.wait(60) == JobStatus.COMPLETED
    assert len(_samples(store, handle.job_id)) == 300


def test_the_host_exits_once_nothing_is_left_and_no_client_is_connected(
    store: Store, tmp_path: Path, wait_until: WaitUntil
) -> None:
    client = JobHostClient(store)
    handle = client.submit(spec_for(tmp_path, 5))
    host = client.ping()
    assert handle.wait(60) == JobStatus.COMPLETED
    time.sleep(1.5)  # TRAINER_GUI_HOST_IDLE=1 (tests/conftest.py): a client keeps it alive
    assert psutil.pid_exists(host)

    client.shutdown()

    wait_until(lambda: _host_gone(host), timeout=20)
    assert job_host.read_endpoint(job_host.host_dir(store.path)) is None


def test_both_services_are_the_jobs_interface_by_composition(client: JobHostClient) -> None:
    service = JobService(client.store)
    assert isinstance(client, Jobs) and isinstance(service, Jobs)
    assert not isinstance(client, JobService)


def test_the_app_uses_the_job_host_unless_told_not_to(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINER_GUI_JOB_HOST", "0")
    assert type(make_job_service(store)) is JobService
    monkeypatch.delenv("TRAINER_GUI_JOB_HOST")
    for frozen in (False, True):  # an installed bundle too (issue 11, defect 3)
        monkeypatch.setattr(sys, "frozen", frozen, raising=False)
        service = make_job_service(store)
        assert isinstance(service, JobHostClient)
        service.shutdown()


def test_a_frozen_bundle_starts_its_job_host_with_its_own_executable(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundle has no `python -m`: it runs itself with the hidden `_job-host` command.

    The console script stands in for the bundle's executable (same `cli.main:main`)."""
    assert job_host_command() == [sys.executable, "-m", "trainer_gui.services.job_host"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(CONSOLE_SCRIPT))
    assert job_host_command() == [str(CONSOLE_SCRIPT), "_job-host"]

    client = make_job_service(store)

    assert isinstance(client, JobHostClient)
    try:
        pid = client.ping()
        assert pid != os.getpid() and client.pid == pid
        # What the client starts is the keeper (in a real bundle it starts the host the same
        # way; here it runs unfrozen, so its host runs with `python -m`).
        cmdline = psutil.Process(psutil.Process(pid).ppid()).cmdline()
        assert "_job-host" in cmdline and "trainer-gui" in " ".join(cmdline)
        endpoint = job_host.read_endpoint(job_host.host_dir(store.path))
        assert endpoint is not None
        key = endpoint["authkey"].hex()
        assert all(key not in arg for arg in cmdline)  # the key is in a private file, not argv
    finally:
        client.shutdown()


def test_the_hidden_job_host_command_is_not_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    from trainer_gui.cli.main import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "_job-host" not in capsys.readouterr().out


def test_stray_prints_in_the_host_do_not_disturb_the_connection(store: Store) -> None:
    noisy = (
        "import sys; print('noise before'); from trainer_gui.services.job_host import host_main;"
        " print('noise after', flush=True); sys.exit(host_main(sys.argv[1:]))"
    )
    client = JobHostClient(store, command=[sys.executable, "-c", noisy])
    try:
        assert client.ping() != os.getpid()
        assert client.recover() == []
    finally:
        client.shutdown()
    log_text = (job_host.host_dir(store.path) / job_host.HOST_LOG).read_text()
    assert "noise before" in log_text


def test_a_host_that_never_starts_fails_the_call_at_once_naming_its_log(store: Store) -> None:
    client = JobHostClient(store, command=[sys.executable, "-c", "raise SystemExit(3)"])
    started = time.monotonic()
    with pytest.raises(UserError, match=r"did not start \(exit code 3\).*host\.log"):
        client.ping()
    assert time.monotonic() - started < 20  # not the full CONNECT_TIMEOUT
    client.shutdown()


def test_an_exception_that_does_not_pickle_comes_back_as_its_message() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}/{b}")

    exc = job_host._portable(Odd(1, 2))
    assert type(exc) is RuntimeError and str(exc) == "Odd: 1/2"
    assert isinstance(job_host._portable(JobNotFound("x")), JobNotFound)


def test_job_host_started_by_hand_serves_clients_and_bad_arguments_get_a_usage_line(
    store: Store,
) -> None:
    bad = subprocess.run(
        [str(CONSOLE_SCRIPT), "_job-host", "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "usage" in bad.stderr and "Traceback" not in bad.stderr

    keeper = subprocess.Popen([str(CONSOLE_SCRIPT), "_job-host", "--store", str(store.path)])
    folder = job_host.host_dir(store.path)
    _wait_until = _poll(lambda: job_host.read_endpoint(folder) is not None)
    assert _wait_until, "the hand-started host never wrote its address"
    client = JobHostClient(store)
    try:
        host = client.ping()
        assert psutil.Process(host).ppid() == keeper.pid
    finally:
        client.shutdown()
        assert job_host.stop_host(store.path)
        assert keeper.wait(30) == 0  # a host that said goodbye is not started again
