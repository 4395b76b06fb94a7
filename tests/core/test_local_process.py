"""The host-process backend end to end: real subprocesses, a real store, real files."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from trainer_gui.core.errors import BackendUnavailable
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.runners.local_process import LocalProcessRunner
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)
WaitUntil = Callable[..., None]  # the wait_until fixture

TIMEOUT = 120


TRAIN = """
    import argparse, json, os, sys
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--name", default="")
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if k.startswith("SM_") or k in ("MASTER_ADDR", "MASTER_PORT", "TRAINING_JOB_NAME")}
    model = os.environ["SM_MODEL_DIR"]
    json.dump({"env": env, "argv": sys.argv[1:], "cwd": os.getcwd(),
               "train": sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"]))},
              open(os.path.join(model, "seen.json"), "w"))
    open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt"), "w").write("ok")
    for e in range(args.epochs):
        print(f"epoch={e} step={e * 10} loss={1 / (e + 1):.4f}", flush=True)
    print("a warning", file=sys.stderr)
"""


def test_a_job_completes_with_artifacts_metrics_and_history(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec(TRAIN, hyperparameters={"epochs": 3, "name": "resnet"})
    handle = service.submit(spec)
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    statuses = [e.status for e in service.store.status_history(record.id)]
    assert statuses == ["Pending", "Queued", "Starting", "Training", "Uploading", "Completed"]
    samples = [s for _, s in service.store.metric_samples(record.id, name="loss")]
    assert [(s.step, s.value) for s in samples] == [(0, 1.0), (10, 0.5), (20, 0.3333)]
    assert all(s.host == "algo-1" for s in samples)
    artifacts = record.backend_ids["artifacts"]
    with tarfile.open(artifacts["model"]) as tar:
        assert sorted(tar.getnames()) == ["seen.json"]
    with tarfile.open(artifacts["output"]) as tar:
        assert tar.getnames() == ["report.txt"]
    log_text = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "\talgo-1\tstderr\ta warning" in log_text


def test_the_script_sees_the_sagemaker_contract(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec(TRAIN, hyperparameters={"epochs": 1, "name": "resnet"})
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    root = Path(record.run_dir) / "hosts" / "algo-1"
    seen = json.loads((root / "model" / "seen.json").read_text())
    env = seen["env"]
    assert seen["argv"] == ["--epochs", "1", "--name", "resnet"]
    assert seen["train"] == ["rows.csv"]
    assert Path(seen["cwd"]) == root / "code"
    assert env["SM_MODEL_DIR"] == str(root / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input" / "data" / "train")
    assert env["SM_HPS"] == '{"epochs":1,"name":"resnet"}'
    assert env["SM_HP_NAME"] == "resnet"
    assert env["SM_CURRENT_HOST"] == "algo-1" and env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["TRAINING_JOB_NAME"] == record.id
    assert env["MASTER_PORT"] == "7777"
    config = json.loads((root / "input" / "config" / "resourceconfig.json").read_text())
    assert config["current_group_name"] == "homogeneousCluster"


def test_a_crashing_script_fails_with_its_traceback_as_the_reason(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec("print('starting')\nraise ValueError('bad learning rate')\n")
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Failed"
    assert record.failure_reason is not None
    assert "ExitCode 1" in record.failure_reason
    assert "ValueError: bad learning rate" in record.failure_reason
    assert Path(record.backend_ids["artifacts"]["model"]).exists()  # packed on failure too


def test_a_failure_file_written_by_the_script_is_kept(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    script = """
        import os, sys
        open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w").write("out of data")
        sys.exit(3)
    """
    handle = service.submit(job_spec(script))
    handle.wait(TIMEOUT)
    assert service.get(handle.job_id).failure_reason == "out of data"


LONG = """
    import subprocess, sys, time, os
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(os.path.join(os.environ["SM_MODEL_DIR"], "child.pid"), "w").write(str(child.pid))
    for i in range(100000):
        print(f"step={i} loss=0.5", flush=True)
        time.sleep(0.05)
"""


def _child_pid(service: JobService, job_id: str, wait_until: WaitUntil) -> int:
    path = Path(service.get(job_id).run_dir) / "hosts" / "algo-1" / "model" / "child.pid"
    wait_until(lambda: path.exists() and path.read_text().strip() != "")
    return int(path.read_text())


def _gone(pid: int) -> bool:
    """Ended (a zombie waiting for its parent counts): psutil, so it holds on every OS."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_cancel_stops_the_whole_process_group(
    service: JobService, tmp_path: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    handle = service.submit(job_spec(LONG))
    child = _child_pid(service, handle.job_id, wait_until)
    handle.cancel()
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Stopped"
    assert record.failure_reason == "Stopped by the user"
    wait_until(lambda: _gone(child), timeout=10)


ESCAPING = """
    import os, subprocess, sys, time
    # A grandchild in a session of its own: no signal to the job's process group reaches it.
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    open(os.path.join(os.environ["SM_MODEL_DIR"], "child.pid"), "w").write(str(child.pid))
    while True:
        time.sleep(0.05)
"""


def test_cancel_ends_a_grandchild_in_a_session_of_its_own(
    service: JobService, tmp_path: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    handle = service.submit(job_spec(ESCAPING))
    child = _child_pid(service, handle.job_id, wait_until)
    try:
        handle.cancel()
        assert handle.wait(TIMEOUT) is JobStatus.STOPPED
        wait_until(lambda: _gone(child), timeout=10)
    finally:
        with contextlib.suppress(psutil.Error):
            psutil.Process(child).kill()


def test_max_runtime_stops_the_job(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    handle = service.submit(job_spec(LONG, max_runtime_seconds=2))
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Stopped"
    assert record.failure_reason is not None and "MaxRuntimeExceeded" in record.failure_reason
    assert record.duration is not None and record.duration < 30


SLOW_COUNT = """
    import time
    for i in range(60):
        print(f"step={i} loss={i}", flush=True)
        time.sleep(0.05)
"""


def test_a_new_process_re_attaches_without_gaps_or_duplicates(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    store = Store(app_home / "db.sqlite3")
    first = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    handle = first.submit(job_spec(SLOW_COUNT))
    wait_until(lambda: store.metric_count(handle.job_id) >= 5)
    first.shutdown()  # as if the app quit: the job keeps running, nobody ingests
    assert not handle.done

    second_store = Store(app_home / "db.sqlite3")
    second = JobService(second_store, {"local-process": LocalProcessRunner(grace=3)})
    assert second.recover() == [handle.job_id]
    record = second.wait(handle.job_id, timeout=TIMEOUT)
    assert record.status == "Completed"
    steps = [s.step for _, s in second_store.metric_samples(handle.job_id, name="loss")]
    assert steps == list(range(60))
    log_lines = (Path(record.run_dir) / "logs" / "job.log").read_text().splitlines()
    assert len(log_lines) == 60
    second.shutdown()
    store.close()
    second_store.close()


def test_a_job_that_ended_while_nobody_watched_is_finalised(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    store = Store(app_home / "db.sqlite3")
    first = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    handle = first.submit(job_spec("print('loss=0.25')\n"))
    handle.wait_started(TIMEOUT)
    first.shutdown()
    pid = int(store.get_job(handle.job_id).backend_ids["pid"])  # type: ignore[union-attr]
    wait_until(lambda: _gone(pid))
    second = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    second.recover()
    record = second.wait(handle.job_id, timeout=TIMEOUT)
    assert record.status == "Completed"
    assert store.last_metrics(handle.job_id)["loss"] == 0.25
    second.shutdown()
    store.close()


def test_only_one_process_ingests_a_job(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory
) -> None:
    store = Store(app_home / "db.sqlite3")
    first = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    handle = first.submit(job_spec(SLOW_COUNT))
    other = JobService(Store(app_home / "db.sqlite3"), {"local-process": LocalProcessRunner()})
    assert other.recover() == []  # the first service holds the follower lock
    handle.wait(TIMEOUT)
    assert len(store.metric_samples(handle.job_id, name="loss")) == 60  # (and sys/ ones)
    first.shutdown()
    store.close()


def test_stop_from_another_service_records_stopped(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    store = Store(app_home / "db.sqlite3")
    first = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    handle = first.submit(job_spec(LONG))
    _child_pid(first, handle.job_id, wait_until)
    other = JobService(
        Store(app_home / "db.sqlite3"), {"local-process": LocalProcessRunner(grace=3)}
    )
    other.stop(handle.job_id, wait=0)
    assert handle.wait(TIMEOUT) is not None
    assert store.get_job(handle.job_id).status == "Stopped"  # type: ignore[union-attr]
    first.shutdown()
    store.close()


def test_torchrun_runs_several_processes_on_one_host(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    script = """
        import os, torch, torch.distributed as dist
        dist.init_process_group("gloo")
        t = torch.tensor([dist.get_rank() + 1.0])
        dist.all_reduce(t)
        print(f"rank={dist.get_rank()} world={dist.get_world_size()} total={t.item()}", flush=True)
        dist.destroy_process_group()
    """
    spec = job_spec(script, distribution={"kind": "torchrun", "processes_per_host": 2})
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    log_text = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "rank=0 world=2 total=3.0" in log_text
    assert "rank=1 world=2 total=3.0" in log_text


def test_a_plain_command_runs_with_the_contract_environment(
    service: JobService, job_spec: SpecFactory
) -> None:
    spec = job_spec(
        "",
        source={
            "command": [
                sys.executable,
                "-c",
                "import os; print('loss=' + os.environ['SM_NUM_GPUS'])",
            ]
        },
        environment={"EXTRA": "1"},
    )
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    assert service.get(handle.job_id).status == "Completed"
    assert service.store.last_metrics(handle.job_id)["loss"] == 0.0


def _tiny_wheel(folder: Path) -> Path:
    wheel = folder / "tinypkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tinypkg.py", "VALUE = 42\n")
        zf.writestr(
            "tinypkg-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n"
        )
        zf.writestr(
            "tinypkg-0.1.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr("tinypkg-0.1.dist-info/RECORD", "")
    return wheel


def test_requirements_go_into_a_per_job_venv(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    wheel = _tiny_wheel(tmp_path)
    (tmp_path / "requirements.txt").write_text(f"{wheel}\n")
    spec = job_spec(
        "import tinypkg, torch\nprint(f'loss={tinypkg.VALUE}')\n",
        source={
            "source_dir": "code",
            "entry_point": "train.py",
            "requirements": "requirements.txt",
        },
    )
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    last = service.store.last_metrics(record.id)
    assert {k: v for k, v in last.items() if not k.startswith("sys/")} == {"loss": 42.0}
    assert (Path(record.run_dir) / "venv").is_dir()
    probe = subprocess.run(
        [sys.executable, "-c", "import tinypkg"], capture_output=True, check=False
    )
    assert probe.returncode != 0  # the app's own interpreter stayed clean


def test_an_interpreter_without_torch_is_refused_before_start(
    tmp_path: Path, job_spec: SpecFactory
) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    spec = job_spec(TRAIN)
    with pytest.raises(BackendUnavailable, match="PyTorch is not installed"):
        LocalProcessRunner().check(spec, str(venv / "bin" / "python"))


def test_a_missing_interpreter_is_refused_before_start(
    tmp_path: Path, job_spec: SpecFactory
) -> None:
    with pytest.raises(BackendUnavailable, match="not found"):
        LocalProcessRunner().check(job_spec(TRAIN), "/no/such/python")


def test_sigterm_reaches_the_script(
    service: JobService, tmp_path: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    script = """
        import signal, sys, time, os
        def bye(*_):
            print("caught SIGTERM, saving", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        open(os.path.join(os.environ["SM_MODEL_DIR"], "child.pid"), "w").write(str(os.getpid()))
        while True:
            time.sleep(0.05)
    """
    handle = service.submit(job_spec(script))
    _child_pid(service, handle.job_id, wait_until)
    handle.cancel()
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Stopped"
    assert "caught SIGTERM, saving" in (Path(record.run_dir) / "logs" / "job.log").read_text()
