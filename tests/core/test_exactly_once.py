"""Exactly-once ingest (issue 13, item 2): a follower that dies anywhere, between the batches of
one read or between writing job.log and committing, leaves a state from which the next follower
stores every log line and every metric sample exactly once, in the store and in job.log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trainer_gui.core.joblog import JOB_LOG, format_log_line, parse_log_line
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.base import BATCH_LINES, emit_logs
from trainer_gui.core.runners.events import JobEvent, JobStatus, LogBatch, LogLine
from trainer_gui.core.runners.tail import FileTail
from trainer_gui.core.spec import JobSpec, dump_spec
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService, _Follower

SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)

LINES = 10_000


def _text(i: int) -> str:
    return f"step={i} loss={i}"


def _stdout_texts(run_dir: Path) -> list[str]:
    path = run_dir / "logs" / JOB_LOG
    if not path.exists():
        return []
    parsed = (parse_log_line(line) for line in path.read_text(encoding="utf-8").splitlines())
    return [p[3] for p in parsed if p is not None and p[2] == "stdout"]


def _assert_exactly_once(store: Store, job_id: str, run_dir: Path, count: int = LINES) -> None:
    texts = _stdout_texts(run_dir)
    assert len(texts) == count, f"{len(texts) - count:+d} lines in job.log"
    assert texts == [_text(i) for i in range(count)]
    steps = [s.step for _, s in store.metric_samples(job_id, name="loss")]
    assert len(steps) == count, f"{len(steps) - count:+d} samples"
    assert sorted(steps) == list(range(count))  # type: ignore[type-var]
    assert store.log_size(job_id) == (run_dir / "logs" / JOB_LOG).stat().st_size


# -- batches carry the offsets of exactly their lines -------------------------------------------


def test_every_batch_carries_the_offsets_of_its_own_last_lines() -> None:
    lines = [LogLine("algo-1", "stdout" if i % 3 else "stderr", str(i), 0.0) for i in range(5000)]
    marks = [str(i + 1) for i in range(5000)]
    sent: list[JobEvent] = []
    emit_logs(sent.append, "j", lines, {("algo-1", "stdout"): "9999"}, marks)
    batches = [e for e in sent if isinstance(e, LogBatch)]
    assert [len(b.lines) for b in batches] == [BATCH_LINES, BATCH_LINES, 1000]
    for batch in batches[:-1]:
        for key in {(ln.host, ln.stream) for ln in batch.lines}:
            last = max(int(ln.text) for ln in batch.lines if (ln.host, ln.stream) == key)
            assert batch.offsets[key] == str(last + 1)
    assert batches[-1].offsets[("algo-1", "stdout")] == "9999"  # the read's end, past blanks


def test_a_read_without_per_line_offsets_goes_out_as_one_batch() -> None:
    lines = [LogLine("algo-1", "stdout", str(i), 0.0) for i in range(5000)]
    sent: list[JobEvent] = []
    emit_logs(sent.append, "j", lines, {("algo-1", "cloudwatch:s"): "token"})
    assert len(sent) == 1 and isinstance(sent[0], LogBatch) and len(sent[0].lines) == 5000


def test_docker_batches_carry_the_offsets_of_their_own_last_lines(tmp_path: Path) -> None:
    from trainer_gui.core.runners.base import JobContext
    from trainer_gui.core.runners.docker import _ContainerWatch

    sent: list[JobEvent] = []
    ctx = JobContext("j", None, tmp_path)  # type: ignore[arg-type]  # no container: no spec read
    watch = _ContainerWatch(None, ctx, sent.append, [])  # type: ignore[arg-type]
    for i in range(4500):
        key = ("algo-1", "stdout" if i % 2 else "stderr")
        watch.lines.put((LogLine(*key, str(i), 0.0), key, f"1.000000000:{i}"))
    watch.pump(final=False)
    batches = [e for e in sent if isinstance(e, LogBatch)]
    assert [len(b.lines) for b in batches] == [BATCH_LINES, BATCH_LINES, 500]
    for batch in batches:
        for key in {(ln.host, ln.stream) for ln in batch.lines}:
            last = max(int(ln.text) for ln in batch.lines if (ln.host, ln.stream) == key)
            assert batch.offsets[key] == f"1.000000000:{last}"


def test_a_file_tail_resumes_exactly_after_any_line(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"one\r\ntwo\n\n  \nthree\rfour\r\nfive\npartial")
    marked = FileTail(path, "h", "stdout").read_marked(final=True)
    texts = [line.text for line, _ in marked]
    assert texts == ["one", "two", "three", "four", "five", "partial"]
    for index, (_, mark) in enumerate(marked):
        rest = FileTail(path, "h", "stdout", mark).read(final=True)
        assert [line.text for line in rest] == texts[index + 1 :]


# -- the store commits job.log's length with the batch ------------------------------------------


def test_job_log_length_commits_with_the_batch_and_is_no_offset(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite3") as store:
        store.create_job("j", "j", "local-process", "name: j\n", str(tmp_path))
        assert store.log_size("j") is None
        sample = MetricSample("loss", 1.0, "algo-1", 1.0, 0)
        store.record_batch("j", {("algo-1", "stdout"): "10"}, [sample], log_size=42)
        assert store.log_size("j") == 42
        assert store.get_offsets("j") == {("algo-1", "stdout"): "10"}
        bad = MetricSample("loss", "x", "algo-1", 1.0, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            store.record_batch("j", {("algo-1", "stdout"): "20"}, [bad], log_size=84)
        assert store.log_size("j") == 42 and store.get_offsets("j")[("algo-1", "stdout")] == "10"


# -- a follower that dies after batch k of n, then a take-over -----------------------------------


@pytest.fixture
def recorded(app_home: Path, job_spec: SpecFactory) -> Iterator[tuple[Path, str, JobSpec]]:
    """A job in the store whose driver already wrote LINES lines (nothing runs)."""
    spec = job_spec("print('unused')\n")
    run_dir = app_home / "runs" / "j"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "algo-1.stdout").write_text("".join(_text(i) + "\n" for i in range(LINES)))
    db = app_home / "db.sqlite3"
    with Store(db) as store:
        store.create_job("j", "t", "local-process", dump_spec(spec), str(run_dir))
    yield db, "j", spec


def _follow_once(db: Path, job_id: str, spec: JobSpec, die_after: int | None) -> JobService:
    """One process's follower: read the file from the stored offset, send the batches, and
    (with `die_after`) vanish after that many batches, the way a killed process does."""
    service = JobService(Store(db))
    record = service.get(job_id)
    follower = service._take(record, spec)
    assert follower is not None
    ctx = service.context(record)
    tail = FileTail(Path(record.run_dir) / "logs" / "algo-1.stdout", "algo-1", "stdout")
    tail.offset = int(ctx.offsets.get(("algo-1", "stdout"), "0"))
    marked = tail.read_marked(final=True)
    sent = 0

    def sink(event: JobEvent) -> None:
        nonlocal sent
        if die_after is not None and sent >= die_after:
            return
        sent += 1
        follower(event)

    emit_logs(
        sink,
        job_id,
        [line for line, _ in marked],
        {tail.key: str(tail.offset)},
        [str(end) for _, end in marked],
    )
    return service


@pytest.mark.parametrize("die_after", [0, 1, 2, 4])
@pytest.mark.parametrize("uncommitted_tail", [False, True])
def test_a_take_over_after_batch_k_stores_everything_once(
    recorded: tuple[Path, str, JobSpec], die_after: int, uncommitted_tail: bool
) -> None:
    db, job_id, spec = recorded
    first = _follow_once(db, job_id, spec, die_after)
    run_dir = Path(first.get(job_id).run_dir)
    assert len(_stdout_texts(run_dir)) == min(die_after * BATCH_LINES, LINES)
    if uncommitted_tail:  # it died after appending batch k+1 to job.log, before committing it
        start = die_after * BATCH_LINES
        with open(run_dir / "logs" / JOB_LOG, "a", encoding="utf-8") as fh:
            for i in range(start, start + 700):
                fh.write(format_log_line(1.0, "algo-1", "stdout", _text(i)))
    first.shutdown()  # the lock goes, as when the OS drops a dead process's lock
    second = _follow_once(db, job_id, spec, None)
    _assert_exactly_once(second.store, job_id, run_dir)
    second.shutdown()


def test_a_failed_commit_leaves_job_log_as_the_store_has_it(
    recorded: tuple[Path, str, JobSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, job_id, spec = recorded
    service = JobService(Store(db))
    follower = service._take(service.get(job_id), spec)
    assert follower is not None
    follower(
        LogBatch(job_id, [LogLine("algo-1", "stdout", _text(0), 1.0)], {("algo-1", "stdout"): "5"})
    )
    size = follower.log_path.stat().st_size

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(service.store, "record_batch", broken)
    follower(
        LogBatch(job_id, [LogLine("algo-1", "stdout", _text(1), 1.0)], {("algo-1", "stdout"): "9"})
    )
    assert follower.log_path.stat().st_size == size == service.store.log_size(job_id)
    service.shutdown()


def test_a_released_follower_drops_a_batch_it_was_handed(
    recorded: tuple[Path, str, JobSpec],
) -> None:
    db, job_id, spec = recorded
    service = JobService(Store(db))
    follower = service._take(service.get(job_id), spec)
    assert isinstance(follower, _Follower)
    service.shutdown()  # let go: another process may resume from the stored offsets now
    follower._handle(
        LogBatch(job_id, [LogLine("algo-1", "stdout", "late", 1.0)], {("algo-1", "stdout"): "5"})
    )
    assert _stdout_texts(Path(service.get(job_id).run_dir)) == []
    assert service.store.get_offsets(job_id) == {}


# -- kill -9 of a real CLI process mid-ingest, then `logs --follow` takes over ------------------

BURST = """
import sys, time
for chunk in range(4):
    lines = range(chunk * 2500, (chunk + 1) * 2500)
    sys.stdout.write("".join(f"step={i} loss={i}\\n" for i in lines))
    sys.stdout.flush()
    time.sleep(0.3)
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer_gui", *args]


def _wait(predicate: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
@pytest.mark.parametrize("kill_at", [1, 2000, 2500, 4600, 7000])
def test_kill_9_of_the_ingesting_cli_then_take_over_stores_each_line_once(
    app_home: Path, tmp_path: Path, kill_at: int
) -> None:
    """`kill_at`: samples stored when the CLI that ingests dies (reads of 2,500 lines go out as
    2,000 + 500, so some kills land between the batches of one read)."""
    (tmp_path / "train.py").write_text(BURST)
    spec = tmp_path / "job.yaml"
    spec.write_text("name: burst\nsource: {source_dir: ., entry_point: train.py}\n")
    store = Store()
    proc = subprocess.Popen(
        _cli("run", str(spec)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        _wait(store.list_jobs)
        job_id = store.list_jobs()[0].id
        _wait(lambda: store.metric_count(job_id) >= kill_at or proc.poll() is not None)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    follow = subprocess.run(
        _cli("logs", job_id, "--follow"),
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )
    assert follow.returncode == 0, follow.stdout[-2000:] + follow.stderr[-2000:]
    assert follow.stdout.strip().endswith("==> Completed")
    assert follow.stdout.count("[algo-1] step=") == LINES
    record = store.get_job(job_id)
    assert record is not None and record.status == JobStatus.COMPLETED.value
    _assert_exactly_once(store, job_id, Path(record.run_dir))
    store.close()
