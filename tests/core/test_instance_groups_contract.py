"""The contract of a heterogeneous cluster, without Docker: host numbering, resourceconfig.json,
the toolkit's distribution hosts and master, and the command each host runs.

tests/docker/test_instance_groups.py holds these to the real toolkit's `Environment`; the rules
here are the toolkit's (`environment.py` `get_distribution_hosts`, `get_master_hostname`, and
the PyTorch toolkit's `training.main`, which launches the distribution only in a distribution
group)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer_gui.core import contract
from trainer_gui.core.contract import toolkit
from trainer_gui.core.spec import JobSpec, spec_from_dict

GROUPS = [
    {"name": "loaders", "instance_type": "ml.c5.xlarge", "instance_count": 1},
    {"name": "trainers", "instance_type": "ml.g5.xlarge", "instance_count": 2},
]


def _spec(tmp_path: Path, **distribution: Any) -> JobSpec:
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "train.py").write_text("")
    return spec_from_dict(
        {
            "name": "hetero",
            "source": {"source_dir": "code", "entry_point": "train.py"},
            "compute": {"backend": "docker", "instance_groups": GROUPS},
            "distribution": distribution or {"kind": "none"},
            "hyperparameters": {"epochs": 2},
        },
        base_dir=tmp_path,
    )


def test_hosts_are_numbered_across_the_groups_in_order(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    assert contract.host_names(spec) == ["algo-1", "algo-2", "algo-3"]
    assert contract.host_groups(spec) == [
        ("loaders", "ml.c5.xlarge", ["algo-1"]),
        ("trainers", "ml.g5.xlarge", ["algo-2", "algo-3"]),
    ]
    assert contract.host_instance_type(spec, "algo-3") == "ml.g5.xlarge"
    config = contract.resource_config(spec, "algo-3")
    assert config["current_group_name"] == "trainers"
    assert config["current_instance_type"] == "ml.g5.xlarge"
    assert config["hosts"] == ["algo-1", "algo-2", "algo-3"]
    assert [g["hosts"] for g in config["instance_groups"]] == [["algo-1"], ["algo-2", "algo-3"]]


def test_torchrun_spans_the_distribution_groups_hosts_only(tmp_path: Path) -> None:
    spec = _spec(tmp_path, kind="torchrun", processes_per_host=1, instance_groups=["trainers"])
    hps = contract.sagemaker_hyperparameters(spec, "j")
    commands = {}
    for host in contract.host_names(spec):
        config = contract.resource_config(spec, host)
        commands[host] = toolkit.plan_command(toolkit.Paths(), hps, config, 0, "python")
        env = contract.sm_environment(spec, "j", host, num_cpus=1)
        training = json.loads(env["SM_TRAINING_ENV"])
        # The master is the distribution group's first host, not algo-1.
        assert env["MASTER_ADDR"] == training["master_hostname"] == "algo-2"
        assert training["distribution_hosts"] == ["algo-2", "algo-3"]
        assert training["is_master"] == (host == "algo-2")
        assert json.loads(env["SM_DISTRIBUTION_INSTANCE_GROUPS"]) == ["trainers"]
    # The loaders' host runs the script itself; the trainers run torchrun between the two.
    assert commands["algo-1"] == ["python", "train.py", "--epochs", "2"]
    for rank, host in enumerate(("algo-2", "algo-3")):
        assert commands[host] == toolkit.torchrun_command(
            ["algo-2", "algo-3"],
            host,
            1,
            "train.py",
            ["--epochs", "2"],
            torchrun=("python", "-m", "torch.distributed.run"),
        )
        assert commands[host][commands[host].index("--node_rank") + 1] == str(rank)
        assert commands[host][commands[host].index("--master_addr") + 1] == "algo-2"


def test_without_a_distribution_every_host_runs_the_script_and_algo_1_is_master(
    tmp_path: Path,
) -> None:
    spec = _spec(tmp_path)
    for host in contract.host_names(spec):
        env = contract.sm_environment(spec, "j", host, num_cpus=1)
        training = json.loads(env["SM_TRAINING_ENV"])
        assert training["distribution_hosts"] == []
        assert training["master_hostname"] == "algo-1"
        assert env["SM_DISTRIBUTION_INSTANCE_GROUPS"] == "[]"
        assert env["SM_IS_HETERO"] == "true"


def test_a_homogeneous_cluster_keeps_the_one_default_group(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("")
    spec = spec_from_dict(
        {
            "name": "plain",
            "source": {"source_dir": "code", "entry_point": "train.py"},
            "compute": {"backend": "docker", "instance_count": 2},
            "distribution": {"kind": "torchrun"},
        },
        base_dir=tmp_path,
    )
    config = contract.resource_config(spec, "algo-2")
    assert config["current_group_name"] == "homogeneousCluster"
    env = contract.sm_environment(spec, "j", "algo-2", num_cpus=1)
    training = json.loads(env["SM_TRAINING_ENV"])
    assert training["distribution_hosts"] == ["algo-1", "algo-2"]
    assert env["SM_IS_HETERO"] == "false"


def test_gpus_are_counted_over_every_groups_hosts(tmp_path: Path) -> None:
    from trainer_gui.core.resources import needs_of, too_many_gpus

    spec = _spec(tmp_path).model_copy(deep=True)
    spec.compute.gpus = 1
    assert needs_of(spec).gpus == 3 and needs_of(spec).slots == 3
    reason = too_many_gpus(spec, machine=2)
    assert reason is not None and "3 GPUs (3 hosts x 1 GPU)" in reason
