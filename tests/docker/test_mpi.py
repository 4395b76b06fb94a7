"""MPI jobs (distribution kind: mpi) on 2 real Docker hosts x 2 processes.

The reference is the SageMaker training toolkit's own MPI runner (`sagemaker_training/mpi.py`,
MasterRunner on algo-1 and WorkerRunner on the others) in trainer-gui/toolkit-test, set up for
SSH the way the PyTorch DLC images are (host keys, a root key in ~/.ssh). The same mpi4py
allreduce script runs under the toolkit and under the app's driver in trainer-gui/train-cpu;
every rank's environment must match, variable by variable. A crashing host fails the job with
its reason and leaves nothing, and the job's SSH keys are gone when it ends.
"""

from __future__ import annotations

import io
import json
import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.runners.docker import CPU_IMAGE, LABEL_HOST, LABEL_JOB
from trainer_gui.core.spec import JobSpec, load_spec, spec_from_dict
from trainer_gui.core.store import JobRecord
from trainer_gui.core.templates import create_project
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker

TOOLKIT_IMAGE = "trainer-gui/toolkit-test:latest"
TOOLKIT_MPI_IMAGE = "trainer-gui/toolkit-mpi-test:latest"
TIMEOUT = 300
HOSTS, PER_HOST = 2, 2
RANKS = HOSTS * PER_HOST

# What the DLC images bake in for the toolkit's MPI runner (its _SSH_DAEMON_NOT_FOUND message).
TOOLKIT_SSH_SETUP = """\
FROM {base}
RUN ssh-keygen -A && mkdir -p /root/.ssh /run/sshd \\
 && ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519 \\
 && cp /root/.ssh/id_ed25519.pub /root/.ssh/authorized_keys \\
 && printf 'Host *\\n  StrictHostKeyChecking no\\n' > /root/.ssh/config
"""

DUMP = """
    import json, os, socket, sys, time
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    total = comm.allreduce(rank + 1, op=MPI.SUM)
    keys = "/opt/trainer-gui/ssh"
    seen = {
        "env": dict(os.environ),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "hostname": socket.gethostname(),
        "rank": rank,
        "size": comm.Get_size(),
        "total": total,
        "authorized_key": open(keys + "/authorized_keys").read() if os.path.isdir(keys) else None,
    }
    with open(f"/opt/ml/model/rank-{rank}.json", "w") as fh:
        json.dump(seen, fh, indent=1)
    print(f"rank {rank} dumped on {socket.gethostname()}", flush=True)
    if rank == int(os.environ.get("SM_HP_FAIL_RANK", "-1")):
        raise ValueError(f"bad shard on rank {rank}")
    if os.environ.get("SM_HP_HOLD") == "1":
        time.sleep(120)  # the crash test kills a host meanwhile
"""

# Differ by construction, as in test_launch_modes.py: the toolkit image's framework module and
# the torch version the PyTorch toolkit exports. Open MPI's per-run identities (job ids,
# server URIs with ports), the SSH session's own variables and the mechanism each side uses to
# reach the hosts (the toolkit's LD_PRELOAD gethostname shim; the driver's launch agent and
# ssh options) differ per run or by design.
DIFFERENT = {
    "SM_FRAMEWORK_MODULE",
    "SM_TRAINING_ENV",
    "SM_DLC_TORCH_VERSION",
    "SAGEMAKER_TRAINING_MODULE",
    "LD_PRELOAD",
    "HOSTNAME",
    "OLDPWD",
    "PWD",
    "SHLVL",
    "_",
    # What Debian's PAM login session adds on the toolkit's workers (pam_motd, pam_mail, the
    # locale of pam_env); the driver's sshd runs no PAM.
    "MOTD_SHOWN",
    "MAIL",
    "LC_CTYPE",
}
DIFFERENT_PREFIXES = ("PMIX_", "SSH_", "OMPI_MCA_orte_", "OMPI_MCA_ess_", "OMPI_MCA_plm_")
PER_RUN_OMPI = {
    "OMPI_MCA_pmix",
    "OMPI_MCA_initial_wdir",
    "OMPI_FILE_LOCATION",
    "OMPI_UNIVERSE_SIZE",
    "OMPI_ARGV",
    "OMPI_APP_CTX_NUM_PROCS",
    "OMPI_MCA_mpi_oversubscribe",
    "OMPI_MCA_shmem_RUNTIME_QUERY_hint",
    "OMPI_NUM_APP_CTX",
    "OMPI_FIRST_RANKS",
    "OMPI_COMMAND",
    "OMPI_MCA_orte_precondition_transports",
}


def _docker_required() -> bool:
    return os.environ.get("TRAINER_REQUIRE_DOCKER", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
def toolkit_mpi_image(docker_client: Any) -> str:
    """The toolkit image with the SSH set-up a DLC has (built here; cached after the first)."""
    import docker.errors

    try:
        docker_client.images.get(TOOLKIT_IMAGE)
    except docker.errors.ImageNotFound:
        message = f"{TOOLKIT_IMAGE} is not built: run scripts/ci/build-toolkit-image.sh"
        if _docker_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    dockerfile = TOOLKIT_SSH_SETUP.format(base=TOOLKIT_IMAGE).encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=TOOLKIT_MPI_IMAGE, rm=True)
    return TOOLKIT_MPI_IMAGE


def _spec(tmp_path: Path, image: str, **hyperparameters: Any) -> JobSpec:
    code = tmp_path / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text(textwrap.dedent(DUMP))
    data: dict[str, Any] = {
        "name": "mpi",
        "image": image,
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": "docker", "instance_type": "ml.m5.large", "instance_count": HOSTS},
        "distribution": {
            "kind": "mpi",
            "processes_per_host": PER_HOST,
            "mpi_options": "--NCCL_DEBUG WARN -x MPI_TEST_EXTRA=1",
        },
        "hyperparameters": {"epochs": 2, "batch-size": 8, "name": "resnet", **hyperparameters},
    }
    return spec_from_dict(data, base_dir=tmp_path)


def _rank_files(run_dir: Path) -> dict[int, Path]:
    found = {}
    for path in run_dir.glob("hosts/algo-*/model/rank-*.json"):
        found[int(path.stem.split("-")[1])] = path
    return found


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _ranks(run_dir: Path, job_id: str) -> dict[int, dict[str, Any]]:
    out = {}
    for rank, path in sorted(_rank_files(run_dir).items()):
        text = path.read_text().replace(job_id, "<job>")
        seen: dict[str, Any] = json.loads(text)
        out[rank] = seen
    return out


def _image_env(docker_client: Any, image: str) -> set[str]:
    items = docker_client.images.get(image).attrs["Config"].get("Env") or []
    return {str(item).partition("=")[0] for item in items}


def _compared(env: dict[str, str], skip: set[str]) -> dict[str, str]:
    return {
        key: value
        for key, value in sorted(env.items())
        if key not in DIFFERENT
        and key not in PER_RUN_OMPI
        and key not in skip
        and not key.startswith(DIFFERENT_PREFIXES)
    }


def _training_env(env: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(env["SM_TRAINING_ENV"])
    decoded.pop("framework_module")
    return decoded


def _toolkit_reference(service: JobService, spec: JobSpec) -> tuple[str, dict[int, Any]]:
    """Run under the toolkit until every rank has written what it saw, then stop it: the
    toolkit's master and workers each sleep 30 s after mpirun, which the test need not wait."""
    handle = service.submit(spec)
    record = service.get(handle.job_id)
    run_dir = Path(record.run_dir)
    _wait_for(lambda: len(_rank_files(run_dir)) == RANKS, TIMEOUT, "the toolkit's ranks")
    time.sleep(0.5)  # the last file's bytes
    seen = _ranks(run_dir, handle.job_id)
    service.stop(handle.job_id, wait=60)
    return handle.job_id, seen


def _run(service: JobService, spec: JobSpec) -> JobRecord:
    handle = service.submit(spec)
    assert handle.wait(TIMEOUT) is not None
    return service.get(handle.job_id)


def test_every_rank_sees_the_environment_of_the_toolkits_mpi_runner(
    service: JobService, docker_client: Any, toolkit_mpi_image: str, tmp_path: Path
) -> None:
    # The toolkit image's own ENV lines (LC_ALL, PYTHONIOENCODING, ...) are not the runner's.
    image_only = _image_env(docker_client, toolkit_mpi_image) - _image_env(docker_client, CPU_IMAGE)
    _, toolkit = _toolkit_reference(service, _spec(tmp_path / "a", toolkit_mpi_image))
    record = _run(service, _spec(tmp_path / "b", CPU_IMAGE))
    assert record.status == "Completed", record.failure_reason
    run_dir = Path(record.run_dir)
    ours = _ranks(run_dir, record.id)
    assert sorted(toolkit) == sorted(ours) == list(range(RANKS))

    for rank in range(RANKS):
        a, b = toolkit[rank], ours[rank]
        host = f"algo-{rank // PER_HOST + 1}"
        for seen in (a, b):
            assert (seen["size"], seen["total"]) == (RANKS, RANKS * (RANKS + 1) // 2)
            assert seen["hostname"] == host
            assert seen["cwd"] == "/opt/ml/code"
            assert seen["argv"] == ["train.py", "--batch-size", "8", "--epochs", "2",
                                    "--name", "resnet"]  # fmt: skip
            env = seen["env"]
            assert env["OMPI_COMM_WORLD_RANK"] == str(rank)
            assert env["OMPI_COMM_WORLD_LOCAL_RANK"] == str(rank % PER_HOST)
            assert env["OMPI_COMM_WORLD_SIZE"] == str(RANKS)
            assert env["NCCL_DEBUG"] == "WARN" and env["MPI_TEST_EXTRA"] == "1"
            # mpirun's -x carries algo-1's values to every rank, as on SageMaker.
            assert env["SM_CURRENT_HOST"] == "algo-1"
        env_a, env_b = _compared(a["env"], image_only), _compared(b["env"], image_only)
        assert sorted(set(env_a) - set(env_b)) == [], rank
        assert sorted(set(env_b) - set(env_a)) == [], rank
        different = {k: (env_a[k], env_b[k]) for k in env_a if env_a[k] != env_b[k]}
        different.pop("PYTHONPATH", None)  # the toolkit appends its own sys.path
        assert different == {}, rank
        assert a["env"]["PYTHONPATH"].split(":")[0] == b["env"]["PYTHONPATH"].split(":")[0]
        assert _training_env(a["env"]) == _training_env(b["env"])

    # The keys were this job's, and went with it.
    assert ours[0]["authorized_key"].startswith("ssh-ed25519 ")
    assert f"trainer-gui-{record.id}" in ours[0]["authorized_key"].replace("<job>", record.id)
    assert not (run_dir / "ssh").exists()


def test_a_crashing_host_fails_the_job_with_its_reason_and_leaves_nothing(
    service: JobService, docker_client: Any, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, CPU_IMAGE, hold=1)
    handle = service.submit(spec)
    run_dir = Path(service.get(handle.job_id).run_dir)
    _wait_for(lambda: len(_rank_files(run_dir)) == RANKS, TIMEOUT, "every rank")
    keys = run_dir / "ssh"
    assert sorted(p.name for p in keys.iterdir()) == [
        "authorized_keys", "config", "host_ed25519", "id_ed25519", "known_hosts",
    ]  # fmt: skip
    assert (keys / "id_ed25519").stat().st_mode & 0o077 == 0
    first_key = (keys / "authorized_keys").read_text()

    selector = {"label": [f"{LABEL_JOB}={handle.job_id}", f"{LABEL_HOST}=algo-2"]}
    (algo2,) = docker_client.containers.list(filters=selector)
    algo2.kill()

    assert handle.wait(60) is not None
    record = service.get(handle.job_id)
    assert record.status == "Failed"
    assert "algo-2" in (record.failure_reason or ""), record.failure_reason
    assert not keys.exists()
    assert (
        docker_client.containers.list(all=True, filters={"label": f"{LABEL_JOB}={record.id}"}) == []
    )

    # A second job never gets the first one's keys.
    again = _run(service, _spec(tmp_path / "again", CPU_IMAGE))
    assert again.status == "Completed", again.failure_reason
    second = _ranks(Path(again.run_dir), again.id)[0]["authorized_key"]
    assert second and second.split()[1] != first_key.split()[1]


def test_the_mpi_template_trains_on_two_hosts_and_serves(
    service: JobService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import tarfile

    created = create_project("mpi-allreduce", tmp_path / "mpi")
    spec = load_spec(created.spec_path)
    assert (spec.compute.instance_count, spec.distribution.kind) == (2, "mpi")
    record = _run(service, spec)
    assert record.status == "Completed", record.failure_reason
    assert {m.name for m in spec.metric_definitions} <= set(service.store.metric_names(record.id))
    log_text = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "saved the model (world_size=4)" in log_text
    assert not (Path(record.run_dir) / "ssh").exists()

    from trainer_gui.core.serving.runtime import ModelService

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(record.backend_ids["artifacts"]["model"]) as tar:
        tar.extractall(model_dir, filter="data")
    monkeypatch.setattr(sys, "path", sys.path[:])
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    served = ModelService(model_dir=str(model_dir))
    served.load()
    body, media = served.invoke(b"[[0.1, 0.2, 0.3, 0.4]]", "application/json", None)
    assert media == "application/json" and len(json.loads(body)["predictions"]) == 1
    sys.modules.pop("inference", None)  # this test's handlers, not the next one's


def test_orphan_cleanup_takes_a_lost_mpi_jobs_keys_with_its_containers(
    docker_client: Any, docker_labels: dict[str, str], app_home: Path
) -> None:
    """An MPI job the app no longer follows (it crashed meanwhile): its containers go at the
    next start, and its keys with them; another home's run folder is never touched."""
    from trainer_gui.core.paths import runs_home
    from trainer_gui.core.runners import mpi_ssh
    from trainer_gui.core.runners.docker import LABEL_RUN_DIR, DockerRunner

    mine = runs_home() / "mpi-lost"
    theirs = app_home.parent / "other-home" / "runs" / "mpi-theirs"
    for run_dir in (mine, theirs):
        run_dir.mkdir(parents=True)
        mpi_ssh.write_job_keys(run_dir, run_dir.name, ["algo-1", "algo-2"])
        labels = {**docker_labels, LABEL_JOB: run_dir.name, LABEL_RUN_DIR: str(run_dir)}
        docker_client.containers.create(CPU_IMAGE, ["true"], labels=labels)
    removed = DockerRunner(client=docker_client).cleanup_orphans(set())
    assert "mpi-lost" in removed and "mpi-theirs" not in removed
    assert not (mine / "ssh").exists() and mine.is_dir()
    assert (theirs / "ssh" / "id_ed25519").is_file()


def test_an_exception_in_a_rank_on_algo_2_fails_the_job_with_that_error(
    service: JobService, tmp_path: Path
) -> None:
    record = _run(service, _spec(tmp_path, CPU_IMAGE, fail_rank=3, hold=1))
    assert record.status == "Failed"
    reason = record.failure_reason or ""
    assert reason.splitlines()[0].endswith("ValueError: bad shard on rank 3"), reason
    assert "mpirank:3,algo-2" in reason.splitlines()[0], reason
    assert not (Path(record.run_dir) / "ssh").exists()


def test_one_host_runs_mpirun_there_without_ssh(service: JobService, tmp_path: Path) -> None:
    spec = _spec(tmp_path, CPU_IMAGE)
    spec = spec.model_copy(
        update={"compute": spec.compute.model_copy(update={"instance_count": 1})}
    )
    record = _run(service, spec)
    assert record.status == "Completed", record.failure_reason
    ranks = _ranks(Path(record.run_dir), record.id)
    assert sorted(ranks) == list(range(PER_HOST))
    assert all(seen["authorized_key"] is None for seen in ranks.values())  # no keys mounted
    assert {seen["env"]["OMPI_COMM_WORLD_SIZE"] for seen in ranks.values()} == {str(PER_HOST)}


def test_a_stopped_mpi_job_ends_on_every_host_and_its_keys_go(
    service: JobService, docker_client: Any, tmp_path: Path
) -> None:
    handle = service.submit(_spec(tmp_path, CPU_IMAGE, hold=1))
    run_dir = Path(service.get(handle.job_id).run_dir)
    _wait_for(lambda: len(_rank_files(run_dir)) == RANKS, TIMEOUT, "every rank")
    started = time.monotonic()
    record = service.stop(handle.job_id, wait=60)
    assert record.status == "Stopped", record.failure_reason
    assert time.monotonic() - started < 30  # not the ranks' 120 s
    assert not (run_dir / "ssh").exists()
    selector = {"label": f"{LABEL_JOB}={handle.job_id}"}
    assert docker_client.containers.list(all=True, filters=selector) == []


def test_with_instance_groups_mpi_spans_its_group_and_the_other_runs_alone(
    service: JobService, tmp_path: Path
) -> None:
    """Groups `loaders` (algo-1) and `mpi` (algo-2, algo-3): mpirun on algo-2 spans algo-2 and
    algo-3 (2 x 2 ranks); algo-1 runs the script once by itself, as the toolkit has it."""
    spec = _spec(tmp_path, CPU_IMAGE)
    data = spec.model_dump(mode="json")
    data["compute"] = {
        "backend": "docker",
        "instance_groups": [
            {"name": "loaders", "instance_type": "ml.c5.xlarge", "instance_count": 1},
            {"name": "mpi", "instance_type": "ml.m5.large", "instance_count": 2},
        ],
    }
    data["distribution"]["instance_groups"] = ["mpi"]
    record = _run(service, spec_from_dict(data, base_dir=tmp_path))
    assert record.status == "Completed", record.failure_reason
    run_dir = Path(record.run_dir)
    # algo-1 runs alone, a singleton MPI world of its own; the group's 4 ranks fill algo-2 and
    # algo-3.
    alone = json.loads((run_dir / "hosts/algo-1/model/rank-0.json").read_text())
    assert alone["size"] == 1 and alone["env"]["SM_CURRENT_HOST"] == "algo-1"
    group = {}
    for host in ("algo-2", "algo-3"):
        for path in (run_dir / "hosts" / host / "model").glob("rank-*.json"):
            seen = json.loads(path.read_text())
            group[seen["rank"]] = seen
            assert seen["hostname"] == host
    assert sorted(group) == [0, 1, 2, 3]
    assert {seen["size"] for seen in group.values()} == {4}
    assert group[3]["hostname"] == "algo-3"
    assert group[3]["env"]["SM_CURRENT_HOST"] == "algo-2"  # the group's mpirun host
    assert not (run_dir / "ssh").exists()
