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


def test_a_child_that_died_is_replaced_and_the_job_picked_up_again(
    client: JobHostClient, tmp_path: Path, wait_until: WaitUntil
) -> None:
    handle = client.submit(spec_for(tmp_path, 60, pause=0.05))
    first = client.ping()
    wait_until(lambda: client.get(handle.job_id).status == "Training", timeout=30)

    os.kill(first, signal.SIGKILL)

    wait_until(lambda: client.pid is None, timeout=10)
    second = client.ping()  # a new child
    assert second != first
    assert client.recover() == [handle.job_id]  # the job ran on; the new child follows it
    assert handle.wait(60) == JobStatus.COMPLETED


def test_closing_lets_go_of_the_jobs_which_keep_running(store: Store, tmp_path: Path) -> None:
    client = JobHostClient(store)
    handle = client.submit(spec_for(tmp_path, 40, pause=0.05))
    child = client.ping()

    client.shutdown()

    assert not psutil.pid_exists(child)
    assert store.get_job(handle.job_id).status in ("Starting", "Training")  # type: ignore[union-attr]
    # Another process takes it over and records the end.
    service = JobService(store)
    assert service.recover() == [handle.job_id]
    assert service.wait(handle.job_id, timeout=60).status == "Completed"
    service.shutdown()


def test_a_window_that_dies_leaves_its_jobs_to_the_next_one(
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

    def host_gone() -> bool:
        try:
            return psutil.Process(int(host)).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(host_gone, timeout=30)
    service = JobService(store)  # the next window takes the job over
    assert service.recover() == [job_id]
    assert service.wait(job_id, timeout=60).status == "Completed"
    service.shutdown()


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
        cmdline = psutil.Process(pid).cmdline()
        assert cmdline[-1] == "_job-host" and "trainer-gui" in " ".join(cmdline)
        key = client._child.key.hex() if client._child else "?"
        assert all(key not in arg for arg in cmdline)  # the key goes on stdin, not argv
    finally:
        client.shutdown()


def test_the_hidden_job_host_command_is_not_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    from trainer_gui.cli.main import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "_job-host" not in capsys.readouterr().out


def test_stray_prints_in_the_child_do_not_disturb_the_connection(store: Store) -> None:
    noisy = (
        "import sys; print('noise before'); from trainer_gui.services.job_host import child_main;"
        " print('noise after', flush=True); sys.exit(child_main())"
    )
    client = JobHostClient(store, command=[sys.executable, "-c", noisy])
    try:
        assert client.ping() != os.getpid()
        assert client.recover() == []
    finally:
        client.shutdown()


def test_a_child_that_never_connects_fails_the_call_at_once(store: Store) -> None:
    client = JobHostClient(store, command=[sys.executable, "-c", "raise SystemExit(3)"])
    started = time.monotonic()
    with pytest.raises(UserError, match="job host"):
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


@pytest.mark.parametrize(
    "hello", ["", "garbage", '{"address": 1}', '{"address": "x", "authkey": "zz"}', "[]"]
)
def test_job_host_started_by_hand_says_who_starts_it_not_a_traceback(hello: str) -> None:
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "_job-host"],
        input=hello + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "started by the window" in result.stderr and "Traceback" not in result.stderr
