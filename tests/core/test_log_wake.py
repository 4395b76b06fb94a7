"""A local-process job's new log lines are read as soon as the driver writes them, not on the
follower's next 100 ms poll (issue 18): the first metric of a warm run shows at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trainer_gui.core.runners import local_process
from trainer_gui.core.runners.base import JobContext
from trainer_gui.core.runners.events import JobEvent, LogBatch
from trainer_gui.core.runners.follow import POLL_SECONDS
from trainer_gui.core.runners.local_process import HOST, QUICK_LOOKS, _ProcessWatch
from trainer_gui.core.runners.tail import FolderChanges
from trainer_gui.core.spec import JobSpec

SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="inotify: elsewhere the follower polls"
)


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


@linux_only
def test_folder_changes_name_only_the_files_asked_for(tmp_path: Path) -> None:
    changes = FolderChanges(tmp_path, ["algo-1.stdout"])
    try:
        assert changes.fileno() is not None
        assert not changes.relevant()  # nothing yet, and it never blocks
        append(tmp_path / "job.log", "the follower's own file\n")
        assert not changes.relevant()
        append(tmp_path / "algo-1.stdout", "epoch=0\n")
        assert changes.relevant()
        assert not changes.relevant()  # read once
    finally:
        changes.close()
    assert changes.fileno() is None
    assert not changes.relevant()


def test_folder_changes_of_a_missing_folder_leave_the_follower_polling(tmp_path: Path) -> None:
    changes = FolderChanges(tmp_path / "gone", ["algo-1.stdout"])
    assert changes.fileno() is None
    assert not changes.relevant()
    changes.close()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield popen
    popen.kill()
    popen.wait()


def watch_of(
    popen: subprocess.Popen[bytes], spec: JobSpec, run_dir: Path, events: list[JobEvent]
) -> _ProcessWatch:
    (run_dir / "logs").mkdir(parents=True)
    ctx = JobContext(job_id="t-wake", spec=spec, run_dir=run_dir)
    return _ProcessWatch(ctx, events.append, popen)


def lines_of(events: list[JobEvent]) -> list[str]:
    return [ln.text for e in events if isinstance(e, LogBatch) for ln in e.lines]


@linux_only
def test_a_pause_ends_when_the_driver_writes_a_log_line(
    job_spec: SpecFactory, tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    events: list[JobEvent] = []
    watch = watch_of(sleeper, job_spec("print(1)\n"), tmp_path / "run", events)
    stdout = tmp_path / "run" / "logs" / f"{HOST}.stdout"
    try:
        watch.pump(final=False)  # the follower's first look: nothing yet
        writer = threading.Timer(0.2, append, (stdout, "epoch=0 train_loss=1.0\n"))
        writer.start()
        started = time.monotonic()
        watch.pause(30.0)  # the poll's interval is 0.1 s; a long one shows the wake-up
        writer.join()
        assert time.monotonic() - started < 10
        watch.pump(final=False)
        assert lines_of(events) == ["epoch=0 train_loss=1.0"]
        assert watch.running()
    finally:
        watch.release()


def test_a_pause_waits_its_time_when_only_other_files_change(
    job_spec: SpecFactory, tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    events: list[JobEvent] = []
    watch = watch_of(sleeper, job_spec("print(1)\n"), tmp_path / "run", events)
    try:
        watch.pump(final=False)
        append(tmp_path / "run" / "logs" / "job.log", "what the follower itself writes\n")
        started = time.monotonic()
        watch.pause(0.3)
        assert time.monotonic() - started >= 0.25
    finally:
        watch.release()


@linux_only
def test_the_first_lines_after_a_quiet_spell_are_each_read_at_once(
    job_spec: SpecFactory, tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    events: list[JobEvent] = []
    watch = watch_of(sleeper, job_spec("print(1)\n"), tmp_path / "run", events)
    stdout = tmp_path / "run" / "logs" / f"{HOST}.stdout"
    try:
        for i in range(QUICK_LOOKS - 1):  # e.g. a warning, then the first metric
            append(stdout, f"line {i}\n")
            watch.pump(final=False)
        append(stdout, "epoch=0 train_loss=1.0\n")
        started = time.monotonic()
        watch.pause(30.0)
        assert time.monotonic() - started < 10
        watch.pump(final=False)
        assert lines_of(events)[-1] == "epoch=0 train_loss=1.0"
    finally:
        watch.release()


@linux_only
def test_a_steady_stream_is_read_no_more_often_than_the_poll(
    job_spec: SpecFactory,
    tmp_path: Path,
    sleeper: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # However long a loaded machine stalls between the looks below, they are one stream.
    monkeypatch.setattr(local_process, "QUIET_SPELL", 3600.0)
    events: list[JobEvent] = []
    watch = watch_of(sleeper, job_spec("print(1)\n"), tmp_path / "run", events)
    stdout = tmp_path / "run" / "logs" / f"{HOST}.stdout"
    try:
        for i in range(QUICK_LOOKS):
            append(stdout, f"step {i}\n")
            started = time.monotonic()
            watch.pump(final=False)  # the last of the quick looks: then the poll's pace
        append(stdout, "step next\n")
        watch.pause(30.0)
        assert time.monotonic() - started >= POLL_SECONDS * 0.99
        assert time.monotonic() - started < 10
        watch.pump(final=False)
        assert lines_of(events) == [*(f"step {i}" for i in range(QUICK_LOOKS)), "step next"]
    finally:
        watch.release()
