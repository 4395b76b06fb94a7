"""Warm containers for docker runs (issue 18) against a real engine: a warm run is a cold run
to the script, to the run folder and to the app; a changed spec, a stale spare and the job
host's exit leave no container behind."""

from __future__ import annotations

import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.runners import docker_warm
from trainer_gui.core.runners.docker import LABEL_JOB, DockerRunner
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker
SpecFactory = Callable[..., JobSpec]
TIMEOUT = 120

# What the script can see of its world, kept in the model folder (and so in model.tar.gz).
LOOK = """
    import json, os, signal, sys, time
    print("step=1 loss=0.5", flush=True)
    tree = sorted(os.path.join(d, f) for d, _, fs in os.walk("/opt/ml") for f in fs)
    seen = {
        "argv": sys.argv, "cwd": os.getcwd(), "path": sys.path, "file": __file__,
        "name": __name__, "env": dict(os.environ), "tree": tree, "uid": os.getuid(),
        "sigterm": str(signal.getsignal(signal.SIGTERM)), "main": sorted(vars(sys.modules["__main__"])),
    }
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as fh:
        json.dump(seen, fh)
    print("an error line", file=sys.stderr, flush=True)
    model = os.environ["SM_MODEL_DIR"]
    left_open = open(os.path.join(model, "left-open.txt"), "w")
    left_open.write("unflushed")  # a normal exit flushes it
    import atexit, threading
    atexit.register(lambda: open(os.path.join(model, "atexit.txt"), "w").write("ran"))
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread done", flush=True))).start()
    sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""

STOPPABLE = """
    import signal, sys, time
    def term(*_):
        print("got TERM", flush=True)
        sys.exit(5)
    signal.signal(signal.SIGTERM, term)
    print("step=1 loss=0.5", flush=True)
    time.sleep(120)
"""

PER_RUN = {"TRAINING_JOB_NAME", "SAGEMAKER_JOB_NAME", "SM_TRAINING_ENV"}


def warm_containers(client: Any, home: Path) -> list[Any]:
    labels = [f"trainer-gui.role={docker_warm.ROLE_WARM}", f"{docker_warm.LABEL_HOME}={home}"]
    return list(client.containers.list(all=True, filters={"label": labels}))


@pytest.fixture
def warm_on(monkeypatch: pytest.MonkeyPatch, app_home: Path, docker_client: Any) -> Iterator[None]:
    monkeypatch.setenv("TRAINER_GUI_WARM", "1")
    # The spare imports nothing heavy here (bench/loop.py times the torch-imported one).
    monkeypatch.setattr(docker_warm, "PREIMPORT", ("json",))
    yield
    docker_warm.POOL.refused.clear()
    docker_warm.POOL.unusable = None
    docker_warm.POOL.close(docker_client)
    slots = docker_warm.warm_root()
    deadline = time.monotonic() + 30  # a replaced spare is removed in the background
    while warm_containers(docker_client, app_home) or (slots.exists() and any(slots.iterdir())):
        assert time.monotonic() < deadline, "a warm container or slot was left behind"
        time.sleep(0.05)


@pytest.fixture
def service(docker_client: Any, app_home: Path, warm_on: None) -> Iterator[JobService]:
    store = Store(app_home / "db.sqlite3")
    svc = JobService(store, {"docker": DockerRunner(client=docker_client, grace=3)})
    yield svc
    svc.shutdown()
    job_ids = [record.id for record in store.list_jobs()]
    store.close()
    for job in job_ids:
        assert (
            docker_client.containers.list(all=True, filters={"label": f"{LABEL_JOB}={job}"}) == []
        )
        assert docker_client.containers.list(all=True, filters={"name": f"{job}-algo-"}) == []


def named(job_id: str) -> dict[str, str]:
    """A job's containers by name (a warm one is labelled as a spare, named as the job's)."""
    return {"name": f"{job_id}-algo-"}


def run(service: JobService, spec: JobSpec) -> Any:
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    return service.get(handle.job_id)


def ready_spare() -> docker_warm.Spare:
    assert docker_warm.POOL.wait_ready(TIMEOUT)
    spare = docker_warm.POOL.spare()
    assert spare is not None and spare.container_id
    return spare


def log_texts(record: Any) -> list[tuple[str, ...]]:
    lines = (Path(record.run_dir) / "logs" / "job.log").read_text().splitlines()
    return [tuple(line.split("\t")[2:4]) for line in lines]  # (stream, text)


def test_a_warm_run_is_a_cold_run_to_the_script_the_run_folder_and_the_app(
    service: JobService, job_spec: SpecFactory
) -> None:
    spec = job_spec(LOOK, "docker", environment={"EXIT_WITH": "3", "OMP_NUM_THREADS": "1"})
    cold = run(service, spec)
    spare = ready_spare()
    warm = run(service, spec)

    assert "warm_container" not in cold.backend_ids and warm.backend_ids["warm_container"]
    assert docker_warm.POOL.spare() is not spare  # a new spare waits for the next run
    assert cold.status == warm.status == "Failed"
    assert cold.failure_reason == warm.failure_reason  # exit code 3, the command, the tail
    assert 'Command "python3 train.py' in (warm.failure_reason or "")
    assert sorted(log_texts(cold)) == sorted(log_texts(warm))  # two streams: any order
    seen = []
    for record in (cold, warm):
        model = record.backend_ids["artifacts"]["model"]
        with tarfile.open(model) as tar:
            member = tar.extractfile("seen.json")
            assert member is not None
            seen.append(json.load(member))
            for name, text in (("left-open.txt", b"unflushed"), ("atexit.txt", b"ran")):
                extra = tar.extractfile(name)
                assert extra is not None and extra.read() == text
    for one in seen:
        for name in PER_RUN:
            one["env"].pop(name)
    assert seen[0] == seen[1]
    assert seen[1]["argv"] == ["train.py"] and seen[1]["cwd"] == "/opt/ml/code"
    assert "/opt/ml/input/config/hyperparameters.json" in seen[1]["tree"]
    assert "/opt/ml/input/data/train/rows.csv" in seen[1]["tree"]
    run_dir = Path(warm.run_dir)
    assert (run_dir / "hosts/algo-1/output/failure").read_text() == (
        Path(cold.run_dir) / "hosts/algo-1/output/failure"
    ).read_text()
    assert (run_dir / "code" / "train.py").is_file()


def test_a_warm_run_is_stopped_as_a_cold_one(
    service: JobService,
    job_spec: SpecFactory,
    docker_client: Any,
    wait_until: Callable[..., None],
) -> None:
    run(service, job_spec(LOOK, "docker"))  # cold: makes the spare
    ready_spare()
    spec = job_spec(STOPPABLE, "docker")  # the script edited, the spec the same
    handle = service.submit(spec)
    while not service.store.metric_samples(handle.job_id):
        assert handle.wait(0.05) is None, service.get(handle.job_id).failure_reason
    service.stop(handle.job_id)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.backend_ids.get("warm_container") is True
    assert record.status == "Stopped"
    assert ("stdout", "got TERM") in log_texts(record)  # SIGTERM reached the script
    # removed while the artifacts are packed, or just after the final status
    wait_until(lambda: not docker_client.containers.list(all=True, filters=named(handle.job_id)))


def test_a_changed_spec_replaces_the_spare_and_a_stale_spare_is_swept(
    service: JobService,
    job_spec: SpecFactory,
    docker_client: Any,
    app_home: Path,
    wait_until: Callable[..., None],
) -> None:
    run(service, job_spec(LOOK, "docker"))
    first = ready_spare()
    changed = run(service, job_spec(LOOK, "docker", environment={"SEED": "2"}))
    assert "warm_container" not in changed.backend_ids  # the spare had the old environment
    second = ready_spare()
    assert second.key != first.key
    # The old spare goes in the background: the next run does not wait for its removal.
    ids = lambda: [c.id for c in warm_containers(docker_client, app_home)]  # noqa: E731
    wait_until(lambda: first.container_id not in ids() and not first.slot.exists())
    assert ids() == [second.container_id]

    # The process holding `second` is killed: nobody beats its heart any more.
    docker_warm.POOL._spare = None
    old = time.time() - docker_warm.STALE_AFTER - 5
    os.utime(second.control / "heartbeat", (old, old))
    DockerRunner(client=docker_client).cleanup_orphans(set())
    assert warm_containers(docker_client, app_home) == []
    assert not second.slot.exists()


def test_no_warm_container_outlives_the_job_host(
    docker_client: Any, app_home: Path, job_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_gui.core.store.db import default_db_path
    from trainer_gui.services.job_host import JobHostClient, stop_host

    monkeypatch.setenv("TRAINER_GUI_WARM", "1")  # the host inherits it
    store = Store()
    client = JobHostClient(store)
    try:
        handle = client.submit(job_spec(LOOK, "docker"))
        handle.wait(TIMEOUT)
        assert client.get(handle.job_id).status == "Completed"
        deadline = time.monotonic() + 60
        while not warm_containers(docker_client, app_home):  # the host's spare
            assert time.monotonic() < deadline, "the job host made no spare"
            time.sleep(0.1)
    finally:
        client.shutdown()
    assert stop_host(default_db_path())
    assert warm_containers(docker_client, app_home) == []
    store.close()


COUNT = """
    import time
    for step in range(40):
        print(f"step={step} loss={1 / (step + 1):.4f}", flush=True)
        time.sleep(0.05)
"""


def test_a_new_process_re_attaches_to_a_warm_run(
    app_home: Path,
    docker_client: Any,
    job_spec: SpecFactory,
    wait_until: Callable[..., None],
    warm_on: None,
) -> None:
    store = Store(app_home / "db.sqlite3")
    runner = DockerRunner(client=docker_client, grace=3)
    first = JobService(store, {"docker": runner})
    first.submit(job_spec(LOOK, "docker")).wait(TIMEOUT)
    ready_spare()
    handle = first.submit(job_spec(COUNT, "docker"))
    wait_until(lambda: store.metric_count(handle.job_id) >= 3)
    first.shutdown()  # lets go of the job; its container runs on
    second = JobService(Store(app_home / "db.sqlite3"), {"docker": runner})
    assert second.recover() == [handle.job_id]
    record = second.wait(handle.job_id, timeout=TIMEOUT)
    assert record.backend_ids.get("warm_container") is True
    assert record.status == "Completed", record.failure_reason
    assert [s.step for _, s in store.metric_samples(handle.job_id, name="loss")] == list(range(40))
    wait_until(lambda: not docker_client.containers.list(all=True, filters=named(handle.job_id)))
    second.shutdown()
    store.close()


def test_warm_starts_off_make_no_spare(
    service: JobService,
    job_spec: SpecFactory,
    docker_client: Any,
    app_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINER_GUI_WARM", "0")
    record = run(service, job_spec(LOOK, "docker"))
    assert record.status == "Completed"
    assert docker_warm.POOL.spare() is None
    assert warm_containers(docker_client, app_home) == []


@pytest.mark.parametrize(
    ("source", "waits"),
    [
        ("import torch\n", True),
        ("from torch.utils import data\n", True),
        ("import os, torch.nn as nn\n", True),
        ("import torchvision\n", False),
        ("x = 1  # import torch\n", False),
        ("print('no imports')\n", False),
    ],
)
def test_a_run_waits_for_a_spare_still_importing_only_if_its_script_imports_that(
    tmp_path: Path, source: str, waits: bool
) -> None:
    script = tmp_path / "train.py"
    script.write_text(source)
    assert docker_warm.imports_preimported(script) is waits


def test_a_spare_that_is_not_ready_is_kept_for_a_later_run(
    docker_client: Any, app_home: Path
) -> None:
    pool = docker_warm.DockerWarmPool()
    plan = docker_warm.Plan("img", "sha256:x", {}, None, (), {})
    spare = docker_warm.Spare(plan.key, docker_warm.warm_root() / "t", "tg-warm-t", plan)
    pool._spare = spare  # being created: no container yet
    assert pool.take(docker_client, plan.key, wait=False) is None
    assert pool.spare() is spare


def test_a_refused_hand_off_runs_the_job_cold_with_the_same_result(
    service: JobService,
    job_spec: SpecFactory,
    docker_client: Any,
    app_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(docker_warm, "PREIMPORT", ("json", "colorsys"))
    run(service, job_spec(LOOK, "docker"))
    spare = ready_spare()
    spec = job_spec(LOOK, "docker")
    # A module of the code folder that the spare imported ahead from the image: it refuses.
    (Path(str(spec.base_dir)) / "code" / "colorsys.py").write_text("SHADOW = True\n")
    record = run(service, spec)
    assert record.status == "Completed", record.failure_reason
    assert "warm_container" not in record.backend_ids
    with tarfile.open(record.backend_ids["artifacts"]["model"]) as tar:
        assert {"seen.json", "left-open.txt", "atexit.txt"} <= set(tar.getnames())
    assert spare.container_id not in [c.id for c in warm_containers(docker_client, app_home)]
    assert docker_warm.POOL.spare() is None  # no new spare that would refuse it again
