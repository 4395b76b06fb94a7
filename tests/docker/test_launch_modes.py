"""The two Docker launch modes give a training script the same world.

Mode (a): an image that carries the real SageMaker training toolkit (trainer-gui/toolkit-test,
built by scripts/ci/build-toolkit-image.sh: train-cpu + `sagemaker-training` +
`sagemaker-pytorch-training` from PyPI, wired like the PyTorch DLC). The runner starts `train`
and the toolkit reads /opt/ml, exports SM_*, and runs the script or torchrun itself.
Mode (b): a plain image (trainer-gui/train-cpu), where the project's stdlib driver does that.

The same script runs both ways through the real JobService + DockerRunner, and what it sees must
match, variable by variable, and match `contract.sm_environment`: the toolkit is the reference
the driver is held to.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core import contract
from trainer_gui.core.runners.docker import CPU_IMAGE, LABEL_JOB, DockerRunner
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.core.store import JobRecord
from trainer_gui.services.jobs import JobService

TOOLKIT_IMAGE = "trainer-gui/toolkit-test:latest"
TIMEOUT = 420

# Variables that legitimately differ between the modes; every other SM_* variable, and the
# toolkit's MASTER_*/NCCL_*/job-name/region variables, must be equal.
ONLY_WITH_THE_TOOLKIT = {
    # sagemaker_pytorch_container.training._set_torch_version_environment imports torch to
    # export the DLC's torch version; the driver does not import torch, and it is no part of
    # the toolkit's Environment.
    "SM_DLC_TORCH_VERSION",
}
DIFFERENT = {
    # SAGEMAKER_TRAINING_MODULE from the image's environment: what makes an image a toolkit
    # image, so empty in a plain one.
    "SM_FRAMEWORK_MODULE",
    # The same JSON as SM_* holds; compared field by field, less framework_module (above).
    "SM_TRAINING_ENV",
}
TRAINING_ENV_DIFFERENT = {"framework_module"}
TOOLKIT_OTHER_VARIABLES = (
    "TRAINING_JOB_NAME",
    "SAGEMAKER_JOB_NAME",
    "CURRENT_HOST",
    "SAGEMAKER_REGION",
    "MASTER_ADDR",
    "MASTER_PORT",
    "NCCL_SOCKET_IFNAME",
    "NCCL_IB_DISABLE",
    "NCCL_DEBUG",
)
TORCHRUN_VARIABLES = (
    "NCCL_PROTO",
    "RANK",
    "LOCAL_RANK",
    "GROUP_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "ROLE_WORLD_SIZE",
)

HYPERPARAMETERS = {
    "epochs": 3,
    "batch-size": 64,
    "lr": 0.01,
    "opt": {"name": "adam", "beta1": 0.9},
    "flag": True,
    "name": "resnet",
    "layers": [64, 32],
    "b": 4,
}
ARGV = [
    "-b", "4", "--batch-size", "64", "--epochs", "3", "--flag", "True", "--layers", "[64, 32]",
    "--lr", "0.01", "--name", "resnet", "--opt", "beta1=0.9,name=adam",
]  # fmt: skip

DUMP = """
    import json, os, socket, sys
    seen = {
        "env": dict(os.environ),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "hostname": socket.gethostname(),
        "config": {name: json.load(open(f"/opt/ml/input/config/{name}.json"))
                   for name in ("hyperparameters", "resourceconfig", "inputdataconfig")},
        "channels": {name: sorted(os.listdir(f"/opt/ml/input/data/{name}"))
                     for name in sorted(os.listdir("/opt/ml/input/data"))},
    }
    if "RANK" in os.environ:
        import torch, torch.distributed as dist
        dist.init_process_group("gloo")
        total = torch.tensor([float(dist.get_rank() + 1)])
        dist.all_reduce(total)
        seen["total"] = total.item()
        dist.destroy_process_group()
    with open(f"/opt/ml/model/{os.environ['SM_CURRENT_HOST']}.json", "w") as fh:
        json.dump(seen, fh, indent=1)
    print(f"dumped {os.environ['SM_CURRENT_HOST']}", flush=True)
"""


def _required() -> bool:
    return os.environ.get("TRAINER_REQUIRE_DOCKER", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
def toolkit_image(docker_client: Any) -> str:
    import docker.errors

    try:
        docker_client.images.get(TOOLKIT_IMAGE)
    except docker.errors.ImageNotFound:
        message = f"{TOOLKIT_IMAGE} is not built: run scripts/ci/build-toolkit-image.sh"
        if _required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return TOOLKIT_IMAGE


def _spec(tmp_path: Path, image: str, script: str, **over: Any) -> JobSpec:
    code = tmp_path / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text(textwrap.dedent(script))
    for channel, rows in (("train", "a,b\n1,2\n"), ("test", "a,b\n3,4\n")):
        (tmp_path / channel).mkdir(exist_ok=True)
        (tmp_path / channel / f"{channel}.csv").write_text(rows)
    data: dict[str, Any] = {
        "name": "modes",
        "image": image,
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": "docker", "instance_type": "ml.m5.large"},
        "channels": [
            {"name": "train", "source": "train", "content_type": "text/csv"},
            {"name": "test", "source": "test"},
        ],
        "hyperparameters": HYPERPARAMETERS,
    }
    data.update(over)
    return spec_from_dict(data, base_dir=tmp_path)


def _run(service: JobService, spec: JobSpec) -> JobRecord:
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    return service.get(handle.job_id)


def _seen(record: JobRecord, host: str) -> dict[str, Any]:
    path = Path(record.run_dir) / "hosts" / host / "model" / f"{host}.json"
    seen: dict[str, Any] = json.loads(path.read_text())
    return seen


def _normalised(env: dict[str, str], job_id: str) -> dict[str, str]:
    """The two runs are two jobs: their names are the only thing allowed to differ."""
    return {key: value.replace(job_id, "<job>") for key, value in env.items()}


def _training_env(env: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(env["SM_TRAINING_ENV"])
    return {k: v for k, v in decoded.items() if k not in TRAINING_ENV_DIFFERENT}


def _compared(env: dict[str, str], extra: tuple[str, ...] = ()) -> dict[str, str]:
    keys = {k for k in env if k.startswith("SM_")} - ONLY_WITH_THE_TOOLKIT - DIFFERENT
    keys |= {k for k in (*TOOLKIT_OTHER_VARIABLES, *extra) if k in env}
    return {k: env[k] for k in sorted(keys)}


def _engine_cpus(docker_client: Any) -> int:
    return int(docker_client.info()["NCPU"])


def _both(
    service: JobService, tmp_path: Path, toolkit_image: str, **over: Any
) -> tuple[JobSpec, dict[str, JobRecord]]:
    records = {}
    spec = None
    for mode, image in (("a", toolkit_image), ("b", CPU_IMAGE)):
        spec = _spec(tmp_path / mode, image, DUMP, **over)
        records[mode] = _run(service, spec)
        assert records[mode].status == "Completed", (mode, records[mode].failure_reason)
    assert spec is not None
    return spec, records


def _check_same_world(
    spec: JobSpec,
    records: dict[str, JobRecord],
    cpus: int,
    extra: tuple[str, ...] = (),
) -> dict[str, dict[str, Any]]:
    seen_by_host = {}
    for host in contract.host_names(spec):
        a, b = (_seen(records[m], host) for m in ("a", "b"))
        env_a = _normalised(a["env"], records["a"].id)
        env_b = _normalised(b["env"], records["b"].id)
        # The same SM_* names (less the toolkit-only ones) with the same values.
        assert set(_compared(env_a)) == set(_compared(env_b))
        assert _compared(env_a, extra) == _compared(env_b, extra)
        assert _training_env(env_a) == _training_env(env_b)
        assert env_a["SM_FRAMEWORK_MODULE"] == "sagemaker_pytorch_container.training:main"
        assert env_b["SM_FRAMEWORK_MODULE"] == ""
        assert json.loads(env_a["SM_TRAINING_ENV"])["framework_module"] == (
            "sagemaker_pytorch_container.training:main"
        )
        assert json.loads(env_b["SM_TRAINING_ENV"])["framework_module"] is None
        assert env_a["SM_DLC_TORCH_VERSION"].startswith("2.")
        # Both the code folder first on the import path (the toolkit appends its own sys.path).
        assert env_a["PYTHONPATH"].split(":")[0] == env_b["PYTHONPATH"].split(":")[0]
        assert env_b["PYTHONPATH"].split(":")[0] == "/opt/ml/code"
        # ... and both what the contract says.
        expected = _normalised(
            contract.sm_environment(spec, records["b"].id, host, num_gpus=0, num_cpus=cpus),
            records["b"].id,
        )
        for key, value in expected.items():
            if key in DIFFERENT:
                continue
            assert env_a.get(key) == value, ("a", host, key)
            assert env_b.get(key) == value, ("b", host, key)
        assert _training_env(env_b) == _training_env(expected)
        # The same command line, working folder, hostname, config files and channels.
        for seen in (a, b):
            assert seen["argv"] == ["train.py", *ARGV]
            assert seen["cwd"] == "/opt/ml/code"
            assert seen["hostname"] == host
            assert seen["config"]["resourceconfig"] == contract.resource_config(spec, host)
            assert seen["config"]["inputdataconfig"] == contract.input_data_config(spec)
            assert seen["channels"] == {"test": ["test.csv"], "train": ["train.csv"]}
        assert a["config"]["hyperparameters"] == {
            **b["config"]["hyperparameters"],
            "sagemaker_job_name": json.dumps(records["a"].id),
        }
        seen_by_host[host] = {"a": a, "b": b}
    return seen_by_host


@pytest.mark.parametrize("hosts", [1, 2])
def test_both_modes_give_the_script_the_same_environment(
    service: JobService, docker_client: Any, toolkit_image: str, tmp_path: Path, hosts: int
) -> None:
    spec, records = _both(
        service,
        tmp_path,
        toolkit_image,
        compute={"backend": "docker", "instance_type": "ml.m5.large", "instance_count": hosts},
    )
    _check_same_world(spec, records, _engine_cpus(docker_client))
    for record in records.values():
        assert [e.status for e in service.store.status_history(record.id)][-1] == "Completed"
        # The toolkit and the driver both report success where SageMaker looks for it.
        for host in contract.host_names(spec):
            assert (Path(record.run_dir) / "hosts" / host / "output" / "success").is_file()


def test_torchrun_runs_through_the_toolkit_on_two_hosts(
    service: JobService, docker_client: Any, toolkit_image: str, tmp_path: Path
) -> None:
    """The toolkit's TorchDistributedRunner, driven by our hyperparameters
    (sagemaker_torch_distributed_enabled, sagemaker_instance_type,
    sagemaker_mpi_num_of_processes_per_host), launches the same torchrun as the driver."""
    spec, records = _both(
        service,
        tmp_path,
        toolkit_image,
        compute={"backend": "docker", "instance_type": "ml.m5.large", "instance_count": 2},
        distribution={"kind": "torchrun", "processes_per_host": 1},
    )
    hps = contract.sagemaker_hyperparameters(spec, records["a"].id)
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    assert hps["sagemaker_instance_type"] == '"ml.m5.large"'
    assert hps["sagemaker_mpi_num_of_processes_per_host"] == "1"
    seen = _check_same_world(spec, records, _engine_cpus(docker_client), extra=TORCHRUN_VARIABLES)
    for rank, host in enumerate(contract.host_names(spec)):
        for mode in ("a", "b"):
            env = seen[host][mode]["env"]
            assert env["RANK"] == str(rank) and env["WORLD_SIZE"] == "2", (mode, host)
            assert env["NCCL_PROTO"] == "simple"
            assert seen[host][mode]["total"] == 3.0
    # The toolkit logs the command it runs: exactly the contract's torchrun line.
    log = (Path(records["a"].run_dir) / "logs" / "job.log").read_text()
    for host in contract.host_names(spec):
        line = contract.torchrun_command(
            contract.host_names(spec), host, 1, "train.py", ARGV, torchrun=("torchrun",)
        )
        assert " ".join(line) in log


RESOLVE_LATE = """
    import os, socket, sys, time
    if os.environ["SM_CURRENT_HOST"] == "algo-2":
        time.sleep(4)  # algo-1 has long finished: on SageMaker its name still resolves
    print("resolved", [socket.gethostbyname(h) for h in ("algo-1", "algo-2")], flush=True)
"""


@pytest.mark.parametrize("mode", ["a", "b"])
def test_every_host_resolves_until_the_job_ends(
    service: JobService, toolkit_image: str, tmp_path: Path, mode: str
) -> None:
    """Independent hosts finish at different times. The toolkit blocks (up to 15 minutes) until
    every host resolves, and scripts may look peers up at any time: a finished host's name must
    not vanish, as Docker's DNS makes it do when its container exits."""
    image = toolkit_image if mode == "a" else CPU_IMAGE
    spec = _spec(
        tmp_path,
        image,
        RESOLVE_LATE,
        compute={"backend": "docker", "instance_count": 2},
        hyperparameters={},
    )
    record = _run(service, spec)
    assert record.status == "Completed", record.failure_reason
    log = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert log.count("resolved") == 2


FAIL = """
    raise FloatingPointError("the loss went to nan")
"""


@pytest.mark.parametrize("mode", ["a", "b"])
def test_a_failing_script_fails_the_job_with_the_toolkits_reason(
    service: JobService, toolkit_image: str, tmp_path: Path, mode: str
) -> None:
    image = toolkit_image if mode == "a" else CPU_IMAGE
    record = _run(service, _spec(tmp_path, image, FAIL, hyperparameters={}))
    assert record.status == "Failed"
    failure = (Path(record.run_dir) / "hosts" / "algo-1" / "output" / "failure").read_text()
    for text in (failure, record.failure_reason or ""):
        assert "ExecuteUserScriptError" in text
        assert "ExitCode 1" in text
        # The toolkit words the traceback differently from run to run; both parts must be there.
        assert "FloatingPointError" in text and "the loss went to nan" in text


LONG = """
    import time
    for step in range(100000):
        print(f"step={step} loss=0.5", flush=True)
        time.sleep(0.1)
"""


def test_a_toolkit_job_stops_when_cancelled(
    service: JobService, toolkit_image: str, tmp_path: Path
) -> None:
    """`train` under the DLC entrypoint (bash -m, no exec) on two independent hosts, each with
    its network holder: cancelling stops the job and leaves nothing (the fixture checks)."""
    spec = _spec(
        tmp_path,
        toolkit_image,
        LONG,
        compute={"backend": "docker", "instance_count": 2},
        hyperparameters={},
    )
    handle = service.submit(spec)
    log = Path(service.get(handle.job_id).run_dir) / "logs" / "job.log"

    def both_training() -> bool:
        text = log.read_text() if log.exists() else ""
        return all(f"algo-{i}\tstdout\tstep=" in text for i in (1, 2))

    deadline = time.monotonic() + TIMEOUT
    while not both_training():
        assert time.monotonic() < deadline, "the toolkit never started the script"
        time.sleep(0.2)
    started = time.monotonic()
    handle.cancel()
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Stopped" and record.failure_reason == "Stopped by the user"
    assert time.monotonic() - started < 60


def test_orphan_cleanup_leaves_other_app_homes_jobs_alone(
    docker_client: Any, docker_labels: dict[str, str], tmp_path: Path
) -> None:
    """Two app homes on one engine (two users, or test sessions side by side): each removes
    only its own orphans, never the other's running jobs."""
    from trainer_gui.core.paths import runs_home
    from trainer_gui.core.runners.docker import LABEL_RUN_DIR

    elsewhere = tmp_path / "other-home" / "runs" / "theirs-1"
    elsewhere.mkdir(parents=True)
    jobs = {
        "theirs-1": str(elsewhere),  # another home's live job: left alone
        "mine-gone": str(runs_home() / "mine-gone"),  # this home's, not followed: removed
        "vanished-1": str(tmp_path / "deleted" / "runs" / "vanished-1"),  # folder gone: removed
    }
    for job, run_dir in jobs.items():
        labels = {**docker_labels, LABEL_JOB: job, LABEL_RUN_DIR: run_dir}
        docker_client.containers.create(CPU_IMAGE, ["true"], labels=labels)
    runner = DockerRunner(client=docker_client)
    removed = runner.cleanup_orphans(set())
    assert {"mine-gone", "vanished-1"} <= set(removed) and "theirs-1" not in removed
    left = {c.labels[LABEL_JOB] for c in docker_client.containers.list(all=True)
            if c.labels.get(LABEL_JOB) in jobs}  # fmt: skip
    assert left == {"theirs-1"}


def test_an_image_with_only_python_falls_back_to_the_driver(
    service: JobService, docker_client: Any, tmp_path: Path
) -> None:
    """The direct launch execs `python3`; an image that has only `python` on its PATH still
    runs (through the driver, whose launcher tries both), and keeps every variable."""
    import io

    tag = f"trainer-gui/python-only:test-{os.getpid()}"
    dockerfile = (
        f"FROM {CPU_IMAGE}\n"
        # No python3 on the PATH (the venv's python3 is relinked past /usr/bin/python3).
        "RUN rm /usr/bin/python3 && ln -sf /usr/bin/python3.11 /opt/venv/bin/python3"
        " && mkdir /opt/only && ln -s /opt/venv/bin/python /opt/only/python\n"
        "ENV PATH=/opt/only:/usr/local/bin:/usr/bin:/bin\n"
    )
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        spec = _spec(tmp_path, tag, DUMP)
        record = _run(service, spec)
        assert record.status == "Completed", record.failure_reason
        assert record.backend_ids["launch"] == "driver"
        env = _seen(record, "algo-1")["env"]
        assert env["SM_HP_BATCH-SIZE"] == "64" and env["SM_CURRENT_HOST"] == "algo-1"
        direct = _run(service, _spec(tmp_path / "again", CPU_IMAGE, DUMP))
        assert direct.backend_ids["launch"] == "direct"
        assert _seen(direct, "algo-1")["env"]["SM_HP_BATCH-SIZE"] == "64"
    finally:
        docker_client.images.remove(tag, force=True)
