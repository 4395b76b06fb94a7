"""Following a SageMaker job: statuses, every host's logs into metrics, artifacts, stop, re-attach."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from moto_support import Script
from sm_helpers import make_spec, service, wait_for

from trainer_gui.core.joblog import JOB_LOG, parse_log_line
from trainer_gui.core.runners.events import ArtifactReady
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService


def _lines(host: int, n: int = 30) -> list[str]:
    return [f"epoch={i} loss={1.0 / (i + host):.4f}" for i in range(n)]


def _log(record: Any) -> list[tuple[str, str]]:
    path = Path(record.run_dir) / "logs" / JOB_LOG
    out = []
    for line in path.read_text().splitlines():
        parsed = parse_log_line(line)
        assert parsed is not None
        out.append((parsed[1], parsed[3]))
    return out


def test_logs_of_every_host_become_metrics_in_the_store(aws: Any, project: Path) -> None:
    aws.sim.script("mnist", Script(lines=_lines, final_metrics={"loss": 0.031}, lines_per_tick=7))
    svc = service()
    spec = make_spec(
        project,
        compute={"instance_count": 2},
        distribution={"kind": "torchrun"},
        metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}],
    )
    handle = svc.submit(spec)
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    lines = _log(record)
    assert sorted(lines) == sorted(
        [("algo-1", t) for t in _lines(1)] + [("algo-2", t) for t in _lines(2)]
    )
    samples = svc.store.metric_samples(record.id, "loss")
    by_host: dict[str, list[float]] = {}
    for _, sample in samples:
        by_host.setdefault(sample.host, []).append(sample.value)
    assert sorted(by_host) == ["algo-1", "algo-2"]
    assert by_host["algo-1"] == [float(f"{1.0 / (i + 1):.4f}") for i in range(30)]
    assert len(by_host["algo-2"]) == 30
    offsets = svc.store.get_offsets(record.id)
    assert {host for host, _ in offsets} == {"algo-1", "algo-2"}
    assert record.backend_ids["final_metrics"] == {"loss": 0.031}
    history = [(e.status, e.message) for e in svc.store.status_history(record.id)]
    assert ("Starting", "Downloading: Downloading input data") in history
    assert (
        "Training",
        "Training: Training image download completed. Training in progress.",
    ) in history
    assert history[-1] == ("Completed", "Training job completed (42 billable seconds)")


def test_model_and_output_archives_are_downloaded_and_unpacked(aws: Any, project: Path) -> None:
    aws.sim.script(
        "mnist",
        Script(
            model_files={"model.pt": b"W" * 100, "code/inference.py": b"def f(): pass\n"},
            output_files={"metrics.json": b"{}"},
        ),
    )
    svc = service()
    ready: list[ArtifactReady] = []
    svc.subscribe(lambda e: ready.append(e) if isinstance(e, ArtifactReady) else None)
    handle = svc.submit(make_spec(project))
    handle.wait(30)
    record = svc.get(handle.job_id)
    run = Path(record.run_dir)
    assert (run / "artifacts" / "model" / "model.pt").read_bytes() == b"W" * 100
    assert (run / "artifacts" / "model" / "code" / "inference.py").is_file()
    assert (run / "artifacts" / "output" / "metrics.json").read_bytes() == b"{}"
    assert record.backend_ids["artifacts"] == {
        "model": str(run / "artifacts" / "model.tar.gz"),
        "output": str(run / "artifacts" / "output.tar.gz"),
    }
    assert {e.kind for e in ready} == {"model", "output"}


def test_a_failed_job_reports_sagemakers_failure_reason(aws: Any, project: Path) -> None:
    aws.sim.script("mnist", Script(outcome="Failed", failure_reason="AlgorithmError: boom"))
    svc = service()
    handle = svc.submit(make_spec(project))
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Failed"
    assert record.failure_reason == "AlgorithmError: boom"


def test_stop_stops_the_cloud_job(aws: Any, project: Path) -> None:
    aws.sim.script("mnist", Script(outcome="hang"))
    svc = service()
    handle = svc.submit(make_spec(project))
    wait_for(lambda: svc.get(handle.job_id).status == "Training")
    record = svc.stop(handle.job_id, wait=30)
    assert record.status == "Stopped"
    assert record.failure_reason == "Stopped by the user"
    assert aws.faults.count("sagemaker:StopTrainingJob") == 1
    statuses = [e.status for e in svc.store.status_history(record.id)]
    assert "Stopping" in statuses
    assert (Path(record.run_dir) / "artifacts" / "model" / "model.pt").is_file()


def test_after_a_restart_the_app_reattaches_and_resumes_logs_without_duplicates(
    aws: Any, project: Path
) -> None:
    hold = threading.Event()
    lines = [f"step={i} loss={i / 100:.2f}" for i in range(40)]
    script = aws.sim.script("mnist", Script(lines=lambda host: lines, hold=hold, lines_per_tick=4))
    first = service()
    handle = first.submit(make_spec(project))
    job = handle.job_id
    wait_for(lambda: first.store.metric_count(job) >= 8)
    first.shutdown()  # the app closes; the job runs on in the cloud
    first.store.close()
    script.lines_per_tick = 10
    hold.set()
    wait_for(lambda: aws.sim.jobs[job].done)  # it finishes while nobody follows
    second = JobService(Store(), runners={"sagemaker": service().runner("sagemaker")})
    assert job in second.recover()
    handle2 = second.handle(job)
    assert handle2 is not None
    handle2.wait(30)
    record = second.get(job)
    assert record.status == "Completed", record.failure_reason
    assert _log(record) == [("algo-1", text) for text in lines]
    assert second.store.metric_count(record.id) == 40
    transitions = [e.message for e in second.store.status_history(job) if ":" in e.message]
    assert len(transitions) == len(set(transitions))  # no secondary status twice
