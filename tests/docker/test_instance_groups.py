"""A heterogeneous cluster in local Docker: a container per host of each instance group.

Two groups of one host each; torchrun runs in the group `distribution.instance_groups` names, the
other group runs the script once. Run twice: through the real SageMaker training toolkit
(trainer-gui/toolkit-test, which reads resourceconfig.json's groups and picks the launcher
itself) and through the app's driver in a plain image. Each container must see its own group
(SM_CURRENT_INSTANCE_GROUP, its instance type, its group's hosts), the resourceconfig.json
SageMaker writes for a heterogeneous cluster, and every SM_* variable as the toolkit computes
it: `contract.sm_environment` is held to the toolkit here.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core import contract
from trainer_gui.core.runners.docker import CPU_IMAGE
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.core.store import JobRecord
from trainer_gui.services.jobs import JobService

TOOLKIT_IMAGE = "trainer-gui/toolkit-test:latest"
TIMEOUT = 300
# The distribution group second: its host, algo-2, is the master, not algo-1.
GROUPS = [
    {"name": "data-loaders", "instance_type": "ml.c5.xlarge", "instance_count": 1},
    {"name": "trainers", "instance_type": "ml.m5.large", "instance_count": 1},
]
# The toolkit-only and image-dependent names (see test_launch_modes.py).
SKIPPED = {"SM_DLC_TORCH_VERSION", "SM_FRAMEWORK_MODULE", "SM_TRAINING_ENV"}

DUMP = """
    import json, os
    seen = {
        "env": dict(os.environ),
        "resourceconfig": json.load(open("/opt/ml/input/config/resourceconfig.json")),
    }
    with open(f"/opt/ml/model/{os.environ['SM_CURRENT_HOST']}.json", "w") as fh:
        json.dump(seen, fh)
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


def _spec(tmp_path: Path, image: str) -> JobSpec:
    code = tmp_path / "code"
    code.mkdir(parents=True)
    (code / "train.py").write_text(textwrap.dedent(DUMP))
    data = {
        "name": "hetero",
        "image": image,
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": "docker", "instance_groups": GROUPS},
        "distribution": {
            "kind": "torchrun",
            "processes_per_host": 1,
            "instance_groups": ["trainers"],
        },
        "hyperparameters": {"epochs": 1},
    }
    return spec_from_dict(data, base_dir=tmp_path)


def _run(service: JobService, spec: JobSpec) -> JobRecord:
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    return record


@pytest.mark.parametrize("mode", ["toolkit", "driver"])
def test_each_container_sees_its_own_instance_group(
    service: JobService, docker_client: Any, toolkit_image: str, tmp_path: Path, mode: str
) -> None:
    spec = _spec(tmp_path, toolkit_image if mode == "toolkit" else CPU_IMAGE)
    record = _run(service, spec)
    cpus = int(docker_client.info()["NCPU"])
    assert contract.host_names(spec) == ["algo-1", "algo-2"]
    for host, group in zip(("algo-1", "algo-2"), GROUPS, strict=True):
        path = Path(record.run_dir) / "hosts" / host / "model" / f"{host}.json"
        seen = json.loads(path.read_text())
        env = seen["env"]
        assert env["SM_CURRENT_HOST"] == host
        assert env["SM_CURRENT_INSTANCE_GROUP"] == group["name"]
        assert env["SM_CURRENT_INSTANCE_TYPE"] == group["instance_type"]
        assert json.loads(env["SM_CURRENT_INSTANCE_GROUP_HOSTS"]) == [host]
        assert json.loads(env["SM_INSTANCE_GROUPS"]) == ["data-loaders", "trainers"]
        assert env["SM_IS_HETERO"] == "true"
        assert json.loads(env["SM_DISTRIBUTION_INSTANCE_GROUPS"]) == ["trainers"]
        assert seen["resourceconfig"] == {
            "current_host": host,
            "current_instance_type": group["instance_type"],
            "current_group_name": group["name"],
            "hosts": ["algo-1", "algo-2"],
            "instance_groups": [
                {"instance_group_name": "data-loaders", "instance_type": "ml.c5.xlarge",
                 "hosts": ["algo-1"]},
                {"instance_group_name": "trainers", "instance_type": "ml.m5.large",
                 "hosts": ["algo-2"]},
            ],
            "network_interface_name": "eth0",
        }  # fmt: skip
        # torchrun in the distribution group only; the other group runs the script itself.
        assert ("RANK" in env) == (group["name"] == "trainers"), (mode, host)
        # Every SM_* name and value the contract gives, which the toolkit computed itself in
        # the toolkit image.
        expected = contract.sm_environment(spec, record.id, host, num_gpus=0, num_cpus=cpus)
        for key, value in expected.items():
            if key not in SKIPPED and (key.startswith("SM_") or key == "MASTER_ADDR"):
                assert env.get(key) == value, (mode, host, key)
        training_env = json.loads(env["SM_TRAINING_ENV"])
        ours = json.loads(expected["SM_TRAINING_ENV"])
        for key in set(training_env) | set(ours):
            if key != "framework_module":  # the image's, empty in a plain one
                assert training_env.get(key) == ours.get(key), (mode, host, key)
        assert training_env["distribution_hosts"] == ["algo-2"]
        assert training_env["master_hostname"] == env["MASTER_ADDR"] == "algo-2"
        assert training_env["is_master"] == (host == "algo-2")


RANKS = """
    import json, os
    keys = ("RANK", "WORLD_SIZE", "SM_FRAMEWORK_PARAMS", "SM_DISTRIBUTION_INSTANCE_GROUPS")
    with open(f"/opt/ml/model/{os.environ['SM_CURRENT_HOST']}.json", "w") as fh:
        json.dump({k: os.environ.get(k) for k in keys}, fh)
"""


def test_smddp_runs_as_torchrun_through_the_toolkit_and_says_so(
    service: JobService, toolkit_image: str, tmp_path: Path
) -> None:
    """The toolkit would start smddprun for SageMaker's library, which no local image has: a local
    smddp job hands it torchrun's keys instead, and its status history says so in one line."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(textwrap.dedent(RANKS))
    spec = spec_from_dict(
        {
            "name": "smddp-local",
            "image": toolkit_image,
            "source": {"source_dir": "code", "entry_point": "train.py"},
            "compute": {
                "backend": "docker",
                "instance_type": "ml.p4d.24xlarge",
                "instance_count": 2,
            },
            "distribution": {"kind": "smddp", "processes_per_host": 1},
        },
        base_dir=tmp_path,
    )
    record = _run(service, spec)
    for rank, host in enumerate(("algo-1", "algo-2")):
        path = Path(record.run_dir) / "hosts" / host / "model" / f"{host}.json"
        seen = json.loads(path.read_text())
        assert (seen["RANK"], seen["WORLD_SIZE"]) == (str(rank), "2")
        params = json.loads(seen["SM_FRAMEWORK_PARAMS"])
        assert params["sagemaker_torch_distributed_enabled"] is True
        assert "sagemaker_distributed_dataparallel_enabled" not in params
    notes = [e.message for e in service.store.status_history(record.id)]
    assert contract.SMDDP_LOCAL_NOTE in notes
