"""A run's phases: emitted by the runner, derived by the follower, stored, read back in order."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.events import (
    JobStatus,
    LogBatch,
    LogLine,
    MetricBatch,
    Phase,
    PhaseChanged,
    StatusChanged,
)
from trainer_gui.core.runners.local_process import LocalProcessRunner
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import SCHEMA_VERSION, Store, migrate
from trainer_gui.core.store.models import PhaseEntry
from trainer_gui.core.store.phases import PhaseRecorder, format_span, timeline
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]

TIMEOUT = 120

#: Quiet for a while (as a script importing torch is), then a line, then a metric.
SLOW_START = """
    import time
    time.sleep(0.6)
    print("hello", flush=True)
    time.sleep(0.3)
    print("epoch=0 step=0 loss=0.5", flush=True)
"""


class Events:
    """A service listener keeping the events of one job, in the order they arrived."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self._lock = threading.Lock()

    def __call__(self, event: object) -> None:
        with self._lock:
            self.events.append(event)

    def phases(self) -> list[PhaseChanged]:
        with self._lock:
            return [e for e in self.events if isinstance(e, PhaseChanged)]


def test_a_local_process_run_passes_its_phases_in_order_and_they_are_stored(
    service: JobService, job_spec: SpecFactory
) -> None:
    events = Events()
    service.subscribe(events)
    handle = service.submit(job_spec(SLOW_START))
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason

    heard = events.phases()
    assert [(e.phase, e.text) for e in heard] == [
        (Phase.PREPARING, "preparing the environment"),
        (Phase.STARTING, "starting the interpreter"),
        (Phase.RUNNING, "running: first log line"),
        (Phase.FIRST_METRIC, "first metric"),
        (Phase.PACKING, "packing the artifacts"),
    ]
    stored = service.store.phases(record.id)
    assert [e.phase for e in stored] == [
        Phase.QUEUED,
        Phase.PREPARING,
        Phase.STARTING,
        Phase.RUNNING,
        Phase.FIRST_METRIC,
        Phase.PACKING,
        Phase.DONE,
    ]
    at = {e.phase: e.at for e in stored}
    # The quiet start is the interpreter's phase, not the job's: the first line came later.
    assert at[Phase.RUNNING] - at[Phase.STARTING] >= 0.5
    assert at[Phase.FIRST_METRIC] >= at[Phase.RUNNING]
    assert at[Phase.DONE] == record.ended_at
    assert at[Phase.QUEUED] == record.created_at
    # The first log line's event is heard before the batch that carried it.
    first_batch = next(
        i for i, e in enumerate(events.events) if isinstance(e, LogBatch) and e.lines
    )
    running = next(
        i
        for i, e in enumerate(events.events)
        if isinstance(e, PhaseChanged) and e.phase is Phase.RUNNING
    )
    assert running < first_batch


def test_requirements_show_as_their_own_preparing_step(
    service: JobService, job_spec: SpecFactory, tmp_path: Path
) -> None:
    (tmp_path / "reqs.txt").write_text("# nothing to install\n")
    spec = job_spec(
        'print("hi")',
        source={
            "source_dir": "code",
            "entry_point": "train.py",
            "requirements": "reqs.txt",
        },
    )
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    texts = [(e.phase, e.text) for e in service.store.phases(record.id)]
    assert texts[1:4] == [
        (Phase.PREPARING, "preparing the environment"),
        (Phase.PREPARING, "installing requirements.txt"),
        (Phase.STARTING, "starting the interpreter"),
    ]


def test_a_run_that_cannot_start_ends_its_timeline_without_a_first_line(
    service: JobService, job_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_interpreter(*_args: object) -> None:
        raise OSError("exec format error")

    monkeypatch.setattr(LocalProcessRunner, "_spawn", no_interpreter)
    handle = service.submit(job_spec('print("hi")'))
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Failed"
    phases = [e.phase for e in service.store.phases(record.id)]
    assert phases == [Phase.QUEUED, Phase.PREPARING, Phase.STARTING, Phase.DONE]


# -- the store --------------------------------------------------------------------------------


def _job(store: Store, job_id: str = "j1") -> str:
    store.create_job(job_id, "j", "local-process", "name: j\n", "/tmp/none", created_at=100.0)
    return job_id


def test_store_round_trip_keeps_order_detail_and_time(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite3") as store:
        job = _job(store)
        assert store.add_phase(job, Phase.PREPARING, "", 100.5)
        assert store.add_phase(job, "starting", "starting 2 containers", 101.0)
        assert store.add_phase(job, Phase.WAITING_FOR_PEERS, "waiting for 2 hosts", 102.0)
    with Store(tmp_path / "db.sqlite3") as again:  # another process reads the same timeline
        assert again.phases(job) == [
            PhaseEntry(Phase.QUEUED, "", 100.0),
            PhaseEntry(Phase.PREPARING, "", 100.5),
            PhaseEntry(Phase.STARTING, "starting 2 containers", 101.0),
            PhaseEntry(Phase.WAITING_FOR_PEERS, "waiting for 2 hosts", 102.0),
        ]
        assert [e.label for e in again.phases(job)] == [
            "Queued",
            "Preparing",
            "Starting 2 containers",
            "Waiting for 2 hosts",
        ]


def test_store_skips_repeats_second_firsts_and_phases_after_the_end(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite3") as store:
        job = _job(store)
        assert store.add_phase(job, Phase.STARTING, "starting the container", 101.0)
        assert not store.add_phase(job, Phase.STARTING, "starting the container", 101.2)
        assert store.add_phase(job, Phase.RUNNING, "", 102.0)
        assert store.add_phase(job, Phase.FIRST_METRIC, "", 103.0)
        assert not store.add_phase(job, Phase.RUNNING, "", 104.0)
        store.set_status(job, "Completed", "", 105.0)
        assert not store.add_phase(job, Phase.PACKING, "", 106.0)
        store.set_status(job, "Failed", "late", 107.0)  # ignored, as statuses after the end are
        phases = [(e.phase, e.at) for e in store.phases(job)]
        assert phases == [
            (Phase.QUEUED, 100.0),
            (Phase.STARTING, 101.0),
            (Phase.RUNNING, 102.0),
            (Phase.FIRST_METRIC, 103.0),
            (Phase.DONE, 105.0),
        ]
        with pytest.raises(ValueError):
            store.add_phase(job, "teleporting")


def test_a_deleted_job_takes_its_phases_with_it(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite3") as store:
        job = _job(store)
        store.add_phase(job, Phase.PREPARING)
        store.delete_job(job)
        assert store.phases(job) == []


def test_a_v2_database_is_migrated_and_its_old_jobs_have_no_phases(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=2) == 2
    conn.execute(
        "INSERT INTO jobs (id, name, backend, spec_yaml, status, created_at, ended_at, run_dir)"
        " VALUES ('old', 'old', 'local-process', 'name: old', 'Completed', 1.0, 9.0, '/x')"
    )
    conn.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 3
        assert store.get_job("old") is not None
        assert store.phases("old") == []  # nothing was measured, and nothing is made up
        assert timeline(store.phases("old"), 9.0, 10.0) == []
        _job(store, "new")
        assert [e.phase for e in store.phases("new")] == [Phase.QUEUED]


# -- the follower's part ------------------------------------------------------------------------


def test_the_recorder_derives_the_first_line_and_metric_once_and_skips_system_lines(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "db.sqlite3") as store:
        job = _job(store)
        recorder = PhaseRecorder(store, job)
        setup = LogLine("algo-1", "system", "Collecting numpy", 101.0)
        assert recorder.record(LogBatch(job, [setup])) == []
        out = LogLine("algo-1", "stdout", "hello", 102.5)
        err = LogLine("algo-1", "stderr", "warn", 102.0)
        derived = recorder.record(LogBatch(job, [out, err]))
        assert derived == [PhaseChanged(job, Phase.RUNNING, 102.0)]
        assert recorder.record(LogBatch(job, [out])) == []
        sample = MetricSample("loss", 0.5, "algo-1", 103.0, 0, None)
        assert recorder.record(MetricBatch(job, [sample])) == [
            PhaseChanged(job, Phase.FIRST_METRIC, 103.0)
        ]
        assert recorder.record(LogBatch(job, [out]), [sample]) == []
        # A follower that takes over knows what the earlier one stored.
        assert PhaseRecorder(store, job).record(LogBatch(job, [out]), [sample]) == []
        assert [e.phase for e in store.phases(job)] == [
            Phase.QUEUED,
            Phase.RUNNING,
            Phase.FIRST_METRIC,
        ]


def test_the_recorder_stores_runner_phases_and_never_breaks_ingest(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite3") as store:
        job = _job(store)
        recorder = PhaseRecorder(store, job)
        assert recorder.record(PhaseChanged(job, Phase.PACKING, 104.0, "packing")) == []
        assert recorder.record(StatusChanged(job, JobStatus.TRAINING)) == []
        assert store.phases(job)[-1] == PhaseEntry(Phase.PACKING, "packing", 104.0)
        gone = PhaseRecorder(store, "no-such-job")  # a job deleted while followed
        line = LogLine("algo-1", "stdout", "x", 1.0)
        assert gone.record(LogBatch("no-such-job", [line])) == []


def test_events_pickle_for_the_job_host() -> None:
    import pickle

    event = PhaseChanged("j", Phase.WAITING_FOR_PEERS, 1.5, "waiting for 2 hosts")
    assert pickle.loads(pickle.dumps(event)) == event


# -- the timeline ---------------------------------------------------------------------------------


def test_timeline_durations_run_to_the_next_phase_and_the_last_one_ticks() -> None:
    entries = [
        PhaseEntry(Phase.QUEUED, "", 100.0),
        PhaseEntry(Phase.PREPARING, "", 100.1),
        PhaseEntry(Phase.STARTING, "starting the interpreter", 100.5),
    ]
    steps = timeline(entries, None, 103.0)
    assert [(s.label, round(s.seconds, 2), s.current) for s in steps] == [
        ("Queued", 0.1, False),
        ("Preparing", 0.4, False),
        ("Starting the interpreter", 2.5, True),
    ]
    done = timeline([*entries, PhaseEntry(Phase.DONE, "", 104.0)], 104.0, 500.0)
    assert [s.label for s in done][-1] == "Starting the interpreter"
    assert done[-1].seconds == pytest.approx(3.5) and not done[-1].current


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.42, "0.4 s"), (9.97, "10 s"), (12.7, "13 s"), (59.7, "1 min 00 s"), (7800, "2 h 10 min")],
)
def test_format_span(seconds: float, text: str) -> None:
    assert format_span(seconds) == text
