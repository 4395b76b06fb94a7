"""The job images and the engine CI runs them on.

These tests build nothing: `scripts/ci/build-test-images.sh` builds `trainer-gui/train-cpu:latest`
and `trainer-gui/inference:latest` first. They prove what the Docker runner relies on: `python`
with torch and numpy in the image, nothing from SageMaker, and two containers on a user-defined
bridge network that find each other by the aliases `algo-1`/`algo-2` and run a torch.distributed
gloo all_reduce.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core import docker_util
from trainer_gui.core.errors import BackendUnavailable
from trainer_gui.core.images import IMAGE_KINDS, dockerfile_path, image_exists

CPU_IMAGE = IMAGE_KINDS["train-cpu"].tag
BUILD_HINT = "build it with scripts/ci/build-test-images.sh"

PROBE = r"""
import importlib.util, json, os, shutil, sys
import numpy, torch
names = ("sagemaker", "sagemaker_training", "sagemaker_inference", "sagemaker_pytorch_container")
print(json.dumps({
    "python": list(sys.version_info[:2]),
    "python_exe": shutil.which("python"),
    "torch": torch.__version__,
    "numpy": numpy.__version__,
    "matmul": float((torch.ones(2, 3) @ torch.ones(3, 2)).sum()),
    "cwd": os.getcwd(),
    "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
    "sagemaker": [n for n in names if importlib.util.find_spec(n) is not None],
}))
"""

ALL_REDUCE = r"""
import datetime, os, socket
import torch
import torch.distributed as dist
rank = int(os.environ["RANK"])
dist.init_process_group(
    "gloo", init_method="tcp://algo-1:29500", rank=rank, world_size=2,
    timeout=datetime.timedelta(seconds=90),
)
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print(f"host={socket.gethostname()} rank={rank} sum={t.item()}", flush=True)
dist.barrier()
dist.destroy_process_group()
"""


def _require_image(client: Any, tag: str) -> None:
    assert image_exists(tag, client), f"image {tag} is missing: {BUILD_HINT}"


@pytest.mark.docker
@pytest.mark.parametrize("kind", ["train-cpu", "inference"])
def test_image_has_python_torch_numpy_and_no_sagemaker(
    docker_client: Any, docker_labels: dict[str, str], kind: str
) -> None:
    tag = IMAGE_KINDS[kind].tag
    _require_image(docker_client, tag)
    config = docker_client.images.get(tag).attrs["Config"]
    assert not config.get("Entrypoint"), "the runner passes the full command: no ENTRYPOINT"
    assert config.get("WorkingDir") == "/opt/ml/code"

    out = docker_client.containers.run(
        tag, ["python", "-c", PROBE], remove=True, labels=docker_labels, network_disabled=True
    )
    facts = json.loads(out.decode().strip().splitlines()[-1])
    assert facts["python"][0] == 3 and facts["python"][1] >= 10
    assert facts["python_exe"], "`python` must resolve in the image"
    assert facts["torch"].startswith("2.")
    assert facts["numpy"]
    assert facts["matmul"] == 12.0
    assert facts["cwd"] == "/opt/ml/code"
    assert facts["unbuffered"] == "1"
    assert facts["sagemaker"] == []


@pytest.mark.docker
def test_gloo_all_reduce_between_two_containers_by_alias(
    docker_client: Any, docker_labels: dict[str, str]
) -> None:
    _require_image(docker_client, CPU_IMAGE)
    network = docker_client.networks.create(
        f"trainer-gui-test-{uuid.uuid4().hex[:8]}", driver="bridge", labels=docker_labels
    )
    containers = []
    for rank, host in enumerate(["algo-1", "algo-2"]):  # algo-1 (the store) starts first
        container = docker_client.containers.run(
            CPU_IMAGE,
            ["python", "-c", ALL_REDUCE],
            detach=True,
            name=f"{network.name}-{host}",
            hostname=host,
            network=network.name,
            networking_config={
                network.name: docker_client.api.create_endpoint_config(aliases=[host])
            },
            environment={"RANK": str(rank), "GLOO_SOCKET_IFNAME": "eth0"},
            labels=docker_labels,
        )
        containers.append(container)

    results = []
    for container in containers:
        status = container.wait(timeout=180)
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
        results.append((status.get("StatusCode"), logs))
    for code, logs in results:
        assert code == 0, f"container failed (exit {code}):\n{logs}"
    for rank, (_code, logs) in enumerate(results):
        assert f"host=algo-{rank + 1} rank={rank} sum=3.0" in logs, logs


# --- static checks: no engine needed -----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
def test_dockerfile_follows_the_image_rules(kind: str) -> None:
    """What every Dockerfile promises; the GPU one is built only by users, so check it here too."""
    text = dockerfile_path(kind).read_text("utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"^ARG BASE_IMAGE=\S+", code, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", code, re.M)
    assert re.search(r"^WORKDIR /opt/ml/code$", code, re.M)
    assert "PYTHONUNBUFFERED=1" in code
    assert "ENTRYPOINT" not in code
    assert "sagemaker" not in code.lower()
    # The classic builder (docker SDK, Debian's docker.io without buildx) must accept it.
    assert "--mount" not in code and "<<" not in code
    assert not text.lstrip().startswith("# syntax=")
    # Offline builds install only from the wheelhouse.
    assert "--no-index --find-links /tmp/wheels" in code


def test_wheels_readme_is_identical_in_every_image_folder() -> None:
    """It is part of the build cache key: identical files let train-cpu and inference share layers."""
    readmes = {
        kind: (dockerfile_path(kind).parent / "wheels" / "README.md") for kind in IMAGE_KINDS
    }
    texts = {kind: path.read_bytes() for kind, path in readmes.items()}
    assert len(set(texts.values())) == 1, readmes


# --- docker_util messages: no engine needed -----------------------------------------------------


def _wrapped(inner: BaseException) -> Exception:
    """Shaped like docker-py's error: DockerException from requests' ConnectionError from inner."""
    try:
        try:
            raise inner
        except BaseException as low:
            raise ConnectionError(("Connection aborted.", low)) from low
    except ConnectionError as mid:
        return RuntimeError(f"Error while fetching server API version: {mid}")


def test_docker_errors_name_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_util, "_docker_installed", lambda: True)
    message = docker_util.describe_docker_error(_wrapped(PermissionError(13, "Permission denied")))
    assert "permission denied on the Docker socket (add your user to the docker group" in message

    not_running = docker_util.describe_docker_error(_wrapped(FileNotFoundError(2, "No such file")))
    assert "Docker is not running (start Docker Desktop / `sudo systemctl start docker`)" in (
        not_running
    )
    refused = docker_util.describe_docker_error(_wrapped(ConnectionRefusedError(111, "refused")))
    assert "Docker is not running" in refused

    monkeypatch.setattr(docker_util, "_docker_installed", lambda: False)
    missing = docker_util.describe_docker_error(_wrapped(FileNotFoundError(2, "No such file")))
    assert "Docker is not installed" in missing

    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    elsewhere = docker_util.describe_docker_error(_wrapped(ConnectionRefusedError(111, "refused")))
    assert "DOCKER_HOST=tcp://127.0.0.1:9" in elsewhere


def test_docker_client_raises_backend_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    with pytest.raises(BackendUnavailable, match="DOCKER_HOST"):
        docker_util.docker_client(timeout=5)
    assert docker_util.docker_available() is False


def _mpi_block(kind: str) -> str:
    """The RUN instruction that installs Open MPI (continuation lines joined)."""
    text = dockerfile_path(kind).read_text("utf-8")
    runs = re.findall(r"^RUN (?:.*\\\n)*.*$", text, re.M)
    (block,) = [run for run in runs if "openmpi-bin" in run]
    return block


def test_the_gpu_image_has_open_mpi_as_the_cpu_image_does() -> None:
    """MPI jobs on the GPU image (issue 17): the same Debian packages by the same RUN block, so
    distribution kind mpi, sshd between hosts and mpi4py work there as on train-cpu."""
    gpu = _mpi_block("train-gpu")
    assert gpu == _mpi_block("train-cpu")
    for package in ("openmpi-bin", "openssh-server", "openssh-client", "python3-mpi4py"):
        assert package in gpu
    text = dockerfile_path("train-gpu").read_text("utf-8")
    final = text[text.rindex("\nFROM ") :]  # in the final stage, not the discarded build one
    assert "openmpi-bin" in final and "ln -s /usr/lib/python3/dist-packages/mpi4py" in final
    assert "ARG " not in final  # no new build argument: BASE_IMAGE and WHEELHOUSE as before
