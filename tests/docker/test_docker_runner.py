"""The Docker backend against a real engine: no mocks, and nothing may be left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core import contract
from trainer_gui.core.errors import BackendUnavailable, UserError
from trainer_gui.core.paths import example_project
from trainer_gui.core.runners.docker import LABEL_JOB, DockerRunner
from trainer_gui.core.spec import JobSpec, apply_overrides, load_spec
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

TIMEOUT = 300
SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)
WaitUntil = Callable[..., None]  # the wait_until fixture


def leftovers(client: Any, job_ids: list[str]) -> list[str]:
    """Containers and networks still labelled with one of these jobs (other runs may share the
    engine, so only this test's jobs count)."""
    names = []
    for job in job_ids:
        selector = {"label": f"{LABEL_JOB}={job}"}
        names += [c.name for c in client.containers.list(all=True, filters=selector)]
        names += [n.name for n in client.networks.list(filters=selector)]
    return names


@pytest.fixture
def runner(docker_client: Any, app_home: Path) -> Iterator[DockerRunner]:
    yield DockerRunner(client=docker_client, grace=3)
    # Whatever happened in the test, its jobs' containers and networks must be gone.
    store = Store(app_home / "db.sqlite3")
    job_ids = [r.id for r in store.list_jobs()] + [r.id for r in Store().list_jobs()]
    store.close()
    assert leftovers(docker_client, job_ids) == []


@pytest.fixture
def service(app_home: Path, runner: DockerRunner) -> Iterator[JobService]:
    store = Store(app_home / "db.sqlite3")
    svc = JobService(store, {"docker": runner})
    yield svc
    svc.shutdown()
    store.close()


def test_the_example_runs_in_one_container(service: JobService) -> None:
    spec = apply_overrides(
        load_spec(example_project() / "job.yaml"), ["compute.backend=docker", "epochs=2"]
    )
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    assert [e.status for e in service.store.status_history(record.id)] == [
        "Pending", "Queued", "Starting", "Training", "Uploading", "Completed",
    ]  # fmt: skip
    assert [s.step for _, s in service.store.metric_samples(record.id, name="test_acc")] == [29, 58]
    with tarfile.open(record.backend_ids["artifacts"]["model"]) as tar:
        assert {"model.pth", "model_config.json", "code/inference.py"} <= set(tar.getnames())
    with tarfile.open(record.backend_ids["artifacts"]["output"]) as tar:
        assert "metrics.json" in tar.getnames()


RANKS = """
    import json, os, torch, torch.distributed as dist
    dist.init_process_group("gloo")
    total = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(total)
    keys = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "SM_CURRENT_HOST", "SM_HOSTS", "MASTER_ADDR"]
    seen = {k: os.environ.get(k) for k in keys}
    seen["total"] = total.item()
    path = os.path.join(os.environ["SM_MODEL_DIR"], f"rank-{dist.get_rank()}.json")
    json.dump(seen, open(path, "w"))
    print(f"rank={dist.get_rank()} loss={total.item()}", flush=True)
    dist.destroy_process_group()
"""


@pytest.mark.parametrize(("hosts", "per_host"), [(2, 1), (2, 2)])
def test_torchrun_all_reduces_across_containers(
    service: JobService, tmp_path: Path, hosts: int, per_host: int, job_spec: SpecFactory
) -> None:
    spec = job_spec(
        RANKS,
        compute={"backend": "docker", "instance_count": hosts},
        distribution={"kind": "torchrun", "processes_per_host": per_host},
    )
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    world = hosts * per_host
    expected_total = world * (world + 1) / 2
    ranks = {}
    for host in contract.host_names(spec):
        for path in (Path(record.run_dir) / "hosts" / host / "model").glob("rank-*.json"):
            seen = json.loads(path.read_text())
            ranks[int(seen["RANK"])] = (host, seen)
    assert sorted(ranks) == list(range(world))
    for rank, (host, seen) in ranks.items():
        assert seen["WORLD_SIZE"] == str(world)
        assert seen["SM_CURRENT_HOST"] == host == f"algo-{rank // per_host + 1}"
        assert seen["SM_HOSTS"] == json.dumps(
            [f"algo-{i + 1}" for i in range(hosts)], separators=(",", ":")
        )
        assert seen["total"] == expected_total
    with tarfile.open(record.backend_ids["artifacts"]["model"]) as tar:
        assert sorted(tar.getnames()) == [f"rank-{r}.json" for r in range(world)]


DUMP = """
    import json, os, sys
    out = {
        "env": {k: v for k, v in os.environ.items() if k.startswith("SM_") or k in (
            "MASTER_ADDR", "MASTER_PORT", "TRAINING_JOB_NAME", "NCCL_SOCKET_IFNAME")},
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "config": {name: json.load(open(f"/opt/ml/input/config/{name}.json"))
                   for name in ("hyperparameters", "resourceconfig", "inputdataconfig")},
        "train": sorted(os.listdir("/opt/ml/input/data/train")),
    }
    json.dump(out, open(f"/opt/ml/model/{os.environ['SM_CURRENT_HOST']}.json", "w"), indent=1)
"""


def test_the_environment_matches_the_contract(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec(
        DUMP,
        compute={"backend": "docker", "instance_count": 2, "instance_type": "ml.g5.xlarge"},
        hyperparameters={"epochs": 3, "batch-size": 64, "opt": {"name": "adam"}, "flag": True},
    )
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    for host in ("algo-1", "algo-2"):
        seen = json.loads(
            (Path(record.run_dir) / "hosts" / host / "model" / f"{host}.json").read_text()
        )
        expected = contract.sm_environment(spec, record.id, host, num_gpus=0)
        env = seen["env"]
        host_specific = {"SM_NUM_CPUS", "SM_TRAINING_ENV"}
        for key, value in expected.items():
            if key.startswith("SM_") and key not in host_specific:
                assert env.get(key) == value, key
        assert env["MASTER_ADDR"] == "algo-1" and env["MASTER_PORT"] == "7777"
        assert env["NCCL_SOCKET_IFNAME"] == "eth0"
        assert json.loads(env["SM_TRAINING_ENV"])["current_host"] == host
        assert seen["argv"] == [
            "--batch-size",
            "64",
            "--epochs",
            "3",
            "--flag",
            "True",
            "--opt",
            "name=adam",
        ]
        assert seen["cwd"] == "/opt/ml/code"
        assert seen["train"] == ["rows.csv"]
        assert seen["config"]["resourceconfig"] == contract.resource_config(spec, host)
        assert seen["config"]["inputdataconfig"] == contract.input_data_config(spec)
        assert seen["config"]["hyperparameters"]["epochs"] == "3"


CRASH = """
    import os, sys, time
    if os.environ["SM_CURRENT_HOST"] == "algo-2":
        print("algo-2 is out of memory", file=sys.stderr, flush=True)
        sys.exit(7)
    while True:
        time.sleep(0.1)
"""


def test_one_host_crashing_fails_the_job_and_stops_the_others(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec(CRASH, compute={"backend": "docker", "instance_count": 2})
    started = time.monotonic()
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Failed"
    assert record.failure_reason is not None
    assert record.failure_reason.startswith("algo-2:")
    assert "ExitCode 7" in record.failure_reason and "out of memory" in record.failure_reason
    assert time.monotonic() - started < 90


LONG = """
    import time
    for i in range(100000):
        print(f"step={i} loss=0.5", flush=True)
        time.sleep(0.05)
"""


def test_cancel_stops_every_container(
    service: JobService, tmp_path: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    handle = service.submit(job_spec(LONG, compute={"backend": "docker", "instance_count": 2}))
    wait_until(lambda: service.store.metric_count(handle.job_id) >= 3)
    handle.cancel()
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Stopped" and record.failure_reason == "Stopped by the user"


def test_max_runtime_stops_the_job(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    handle = service.submit(job_spec(LONG, "docker", max_runtime_seconds=3))
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Stopped"
    assert "MaxRuntimeExceeded" in (record.failure_reason or "")


COUNT = """
    import time
    for i in range(60):
        print(f"step={i} loss={i}", flush=True)
        time.sleep(0.05)
"""


def test_a_new_process_re_attaches_to_running_containers(
    app_home: Path,
    tmp_path: Path,
    runner: DockerRunner,
    job_spec: SpecFactory,
    wait_until: WaitUntil,
) -> None:
    store = Store(app_home / "db.sqlite3")
    first = JobService(store, {"docker": runner})
    handle = first.submit(job_spec(COUNT, "docker"))
    wait_until(lambda: store.metric_count(handle.job_id) >= 5)
    first.shutdown()
    second = JobService(Store(app_home / "db.sqlite3"), {"docker": runner})
    assert second.recover() == [handle.job_id]
    record = second.wait(handle.job_id, timeout=TIMEOUT)
    assert record.status == "Completed", record.failure_reason
    assert [s.step for _, s in store.metric_samples(handle.job_id, name="loss")] == list(range(60))
    lines = (Path(record.run_dir) / "logs" / "job.log").read_text().splitlines()
    assert len(lines) == 60
    second.shutdown()
    store.close()


def test_orphans_are_removed_on_the_next_start(
    service: JobService, docker_client: Any, docker_labels: dict[str, str]
) -> None:
    labels = {**docker_labels, LABEL_JOB: "ghost-job"}
    docker_client.networks.create("tg-ghost-job", labels=labels)
    docker_client.containers.create("trainer-gui/train-cpu:latest", ["true"], labels=labels)
    service.runner("docker")
    service.recover()
    assert leftovers(docker_client, ["ghost-job"]) == []


def test_a_missing_image_is_one_clear_error(
    runner: DockerRunner, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec("print(1)\n", "docker", image="trainer-gui/nope:latest")
    with pytest.raises(
        UserError, match=r"'trainer-gui/nope:latest' is not on this machine; pull it"
    ):
        runner.check(spec)


def test_gpus_without_a_gpu_runtime_are_refused_before_start(
    runner: DockerRunner, docker_client: Any, tmp_path: Path, job_spec: SpecFactory
) -> None:
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this engine has a GPU runtime")
    spec = job_spec(
        "print(1)\n",
        image="trainer-gui/train-cpu:latest",
        compute={"backend": "docker", "gpus": 1},
    )
    with pytest.raises(BackendUnavailable, match="no GPU runtime"):
        runner.check(spec)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_the_cli_killed_mid_job_re_attaches_with_complete_metrics(
    app_home: Path,
    tmp_path: Path,
    runner: DockerRunner,
    job_spec: SpecFactory,
    wait_until: WaitUntil,
) -> None:
    spec = tmp_path / "job.yaml"
    job_spec(COUNT.replace("range(60)", "range(80)").replace("0.05", "0.1"))
    spec.write_text(
        "name: killed\nsource: {source_dir: code, entry_point: train.py}\n"
        "compute: {backend: docker}\n"
    )
    env = os.environ.copy()
    cmd = [sys.executable, "-m", "trainer_gui"]
    proc = subprocess.Popen(
        [*cmd, "run", str(spec)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    store = Store()
    wait_until(lambda: store.list_jobs() and store.metric_count(store.list_jobs()[0].id) >= 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    job_id = store.list_jobs()[0].id
    follow = subprocess.run(
        [*cmd, "logs", job_id, "--follow"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    assert follow.stdout.strip().endswith("==> Completed"), follow.stdout[-2000:] + follow.stderr
    assert [s.step for _, s in store.metric_samples(job_id, name="loss")] == list(range(80))
    store.close()
