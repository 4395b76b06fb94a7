"""After a SageMaker job ends, its CloudWatch streams are read until drained, so late lines count.

CloudWatch can show a job's last lines after DescribeTrainingJob already says Completed. The
moto fixture writes lines into the job's stream *after* its terminal status, at chosen reads of
the follower (DescribeLogStreams is the first call of each read), so the test does not depend on
timing: a follower that reads once more after a pause (the old behaviour) misses them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from moto_support import Script
from sm_helpers import make_spec, runner

from trainer_gui.core.joblog import JOB_LOG, parse_log_line
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = {"Completed", "Failed", "Stopped"}


def _log_texts(record: Any) -> list[str]:
    out = []
    for line in (Path(record.run_dir) / "logs" / JOB_LOG).read_text().splitlines():
        parsed = parse_log_line(line)
        assert parsed is not None
        out.append(parsed[3])
    return out


def _late_writer(aws: Any, monkeypatch: Any, at_reads: dict[int, list[str]] | None) -> list[str]:
    """Write lines into every stream of the ended job at its follower's n-th read after the end
    (`at_reads`: read number -> lines), or one new line at every read (None). Returns them."""
    written: list[str] = []
    reads = {"n": 0}
    original = aws.faults.intercept

    def intercept(request: Any) -> Any:
        from moto_support import _op_of

        if _op_of(request) == "logs:DescribeLogStreams":
            ended = [
                job
                for name, job in aws.sim.sm.training_jobs.items()
                if job.training_job_status in TERMINAL and name in aws.sim.jobs
            ]
            if ended:
                reads["n"] += 1
                lines = (
                    [f"late line {reads['n']}"]
                    if at_reads is None
                    else at_reads.get(reads["n"], [])
                )
                if lines:
                    _write(aws, ended[0].training_job_name, lines)
                    written.extend(lines)
        return original(request)

    monkeypatch.setattr(aws.faults, "intercept", intercept)
    return written


def _write(aws: Any, job: str, lines: list[str]) -> None:
    group = aws.sim.logs.groups[LOG_GROUP]
    now = int(time.time() * 1000)
    for stream in [s for s in group.streams if s.startswith(job + "/")]:
        events = [{"timestamp": now + i, "message": text} for i, text in enumerate(lines)]
        aws.sim.logs.put_log_events(LOG_GROUP, stream, events)


def test_lines_written_after_the_job_ended_reach_the_job_log(
    aws: Any, project: Path, monkeypatch: Any
) -> None:
    aws.sim.script("mnist", Script(lines=lambda host: ["epoch=1 loss=0.5"]))
    late = {
        3: ["late: Reporting training SUCCESS"],
        6: ["later: model saved", "later: loss=0.25"],
    }
    written = _late_writer(aws, monkeypatch, late)
    svc = JobService(Store(), runners={"sagemaker": runner(drain_quiet=1.0)})
    handle = svc.submit(make_spec(project))
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    assert written == [*late[3], *late[6]]
    texts = _log_texts(record)
    assert "epoch=1 loss=0.5" in texts
    for line in written:
        assert texts.count(line) == 1, line  # each late line once, none lost
    # the offsets stored are after the late lines: a re-attach reads nothing twice
    group = aws.sim.logs.groups[LOG_GROUP]
    stream = next(name for name in group.streams if name.startswith(record.id + "/"))
    last = len(group.streams[stream].events) - 1
    offsets = {k: v for k, v in svc.store.get_offsets(record.id).items() if "cloudwatch" in k[1]}
    assert list(offsets.values()) == [f"f/{last:056d}"]


def test_the_drain_stops_after_a_bounded_time_when_the_stream_never_goes_quiet(
    aws: Any, project: Path, monkeypatch: Any
) -> None:
    aws.sim.script("mnist", Script(lines=lambda host: ["epoch=1 loss=0.5"]))
    written = _late_writer(aws, monkeypatch, None)  # a new line at every read, for ever
    svc = JobService(Store(), runners={"sagemaker": runner(drain_quiet=0.5, drain_limit=1.0)})
    started = time.monotonic()
    handle = svc.submit(make_spec(project))
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    assert time.monotonic() - started < 20
    assert len(written) >= 2
    texts = _log_texts(record)
    # every line written before the last read is in the log
    assert all(line in texts for line in written[:-1])


def test_a_job_already_quiet_ends_soon_after_its_status(aws: Any, project: Path) -> None:
    svc = JobService(Store(), runners={"sagemaker": runner(drain_quiet=0.3)})
    handle = svc.submit(make_spec(project))
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    assert "epoch 1 loss=0.5 host 1" in _log_texts(record)
