"""The contract against the worked examples in shared/docs/sagemaker-contract.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_gui.core import contract
from trainer_gui.core.contract import toolkit
from trainer_gui.core.spec import spec_from_dict

# Section 1.7: hyperparameters.json written V2-style, and what the real toolkit produced from it.
DOC_HYPERPARAMETERS = {
    "epochs": "10",
    "lr": "0.01",
    "use-amp": "true",
    "layers": "[64, 32]",
    "opt": '{"beta1": 0.9, "name": "adam"}',
    "name": '"resnet"',
    "b": "4",
}
DOC_ARGV = (
    "-b 4 --epochs 10 --layers [64, 32] --lr 0.01 --name resnet --opt beta1=0.9,name=adam "
    "--use-amp True"
)


def _spec(**over: object) -> object:
    data: dict[str, object] = {
        "name": "demo",
        "source": {"command": ["python", "-c", "pass"]},
        "channels": [{"name": "train", "source": "/tmp"}, {"name": "test", "source": "/tmp"}],
    }
    data.update(over)
    return spec_from_dict(data)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (10, "10"),
        (0.01, "0.01"),
        (True, "true"),
        ("resnet", '"resnet"'),
        ([64, 32], "[64, 32]"),
        ({"beta1": 0.9}, '{"beta1": 0.9}'),
        (None, "null"),
    ],
)
def test_hyperparameters_are_json_encoded_like_the_v2_sdk(value: object, encoded: str) -> None:
    assert toolkit.encode_hyperparameters({"k": value}) == {"k": encoded}


def test_argv_matches_the_toolkit_worked_example() -> None:
    decoded = toolkit.decode_hyperparameters(DOC_HYPERPARAMETERS)
    assert " ".join(toolkit.to_cmd_args(decoded)) == DOC_ARGV


def test_undecodable_hyperparameter_falls_back_to_the_raw_string() -> None:
    assert toolkit.decode_hyperparameters({"a": "not json", "b": "3"}) == {"a": "not json", "b": 3}


def test_sm_hp_variables_match_the_worked_example() -> None:
    env = toolkit.build_environment(
        toolkit.Paths(),
        DOC_HYPERPARAMETERS,
        toolkit.resource_config("algo-1", ["algo-1"], "ml.m5.xlarge"),
        {},
        environ={},
    )
    assert env["SM_HP_USE-AMP"] == "true"
    assert env["SM_HP_LAYERS"] == "[64,32]"
    assert env["SM_HP_OPT"] == '{"beta1":0.9,"name":"adam"}'
    assert env["SM_HP_NAME"] == "resnet"
    assert json.loads(env["SM_USER_ARGS"]) == [
        "-b", "4", "--epochs", "10", "--layers", "[64, 32]", "--lr", "0.01", "--name", "resnet",
        "--opt", "beta1=0.9,name=adam", "--use-amp", "True",
    ]  # fmt: skip


def test_resourceconfig_has_the_full_real_sagemaker_shape() -> None:
    spec = _spec(
        compute={"backend": "docker", "instance_count": 2, "instance_type": "ml.g5.xlarge"}
    )
    assert contract.resource_config(spec, "algo-2") == {
        "current_host": "algo-2",
        "current_instance_type": "ml.g5.xlarge",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1", "algo-2"],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "ml.g5.xlarge",
                "hosts": ["algo-1", "algo-2"],
            }
        ],
        "network_interface_name": "eth0",
    }


def test_inputdataconfig_lists_every_channel_in_file_mode() -> None:
    spec = _spec(
        channels=[
            {"name": "train", "source": "/tmp", "content_type": "text/csv"},
            {"name": "test", "source": "/tmp"},
        ]
    )
    assert contract.input_data_config(spec) == {
        "train": {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        },
        "test": {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        },
    }


def test_environment_has_every_documented_variable() -> None:
    spec = _spec(
        compute={"backend": "docker", "instance_count": 2},
        hyperparameters={"epochs": 3, "batch-size": 64},
    )
    env = contract.sm_environment(spec, "demo-1", "algo-2", num_gpus=0, num_cpus=4)
    documented = [
        "SM_MODEL_DIR", "SM_CHANNELS", "SM_CHANNEL_TRAIN", "SM_CHANNEL_TEST", "SM_HPS",
        "SM_HP_EPOCHS", "SM_HP_BATCH-SIZE", "SM_HOSTS", "SM_CURRENT_HOST",
        "SM_CURRENT_INSTANCE_TYPE", "SM_CURRENT_INSTANCE_GROUP", "SM_CURRENT_INSTANCE_GROUP_HOSTS",
        "SM_INSTANCE_GROUPS", "SM_INSTANCE_GROUPS_DICT", "SM_DISTRIBUTION_INSTANCE_GROUPS",
        "SM_IS_HETERO", "SM_NETWORK_INTERFACE_NAME", "SM_NUM_GPUS", "SM_NUM_CPUS",
        "SM_NUM_NEURONS", "SM_LOG_LEVEL", "SM_USER_ENTRY_POINT", "SM_MODULE_NAME", "SM_MODULE_DIR",
        "SM_FRAMEWORK_MODULE", "SM_FRAMEWORK_PARAMS", "SM_RESOURCE_CONFIG", "SM_INPUT_DATA_CONFIG",
        "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR", "SM_OUTPUT_DIR", "SM_OUTPUT_DATA_DIR",
        "SM_OUTPUT_INTERMEDIATE_DIR", "SM_USER_ARGS", "SM_TRAINING_ENV", "MASTER_ADDR",
        "MASTER_PORT", "TRAINING_JOB_NAME",
    ]  # fmt: skip
    missing = [name for name in documented if name not in env]
    assert not missing
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_CHANNELS"] == '["test","train"]'
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_HOSTS"] == '["algo-1","algo-2"]'
    assert env["SM_CURRENT_HOST"] == "algo-2"
    assert env["SM_HPS"] == '{"batch-size":64,"epochs":3}'
    assert env["SM_HP_EPOCHS"] == "3"
    assert env["SM_OUTPUT_DATA_DIR"] == "/opt/ml/output/data"
    assert env["SM_NUM_CPUS"] == "4"
    assert env["SM_LOG_LEVEL"] == "20"
    assert env["SM_FRAMEWORK_MODULE"] == ""
    assert env["MASTER_ADDR"] == "algo-1" and env["MASTER_PORT"] == "7777"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["is_master"] is False
    assert training_env["master_hostname"] == "algo-1"
    assert training_env["job_name"] == "demo-1"


def test_reserved_hyperparameters_stay_out_of_user_and_framework_params() -> None:
    spec = _spec(
        source={"source_dir": None, "entry_point": None, "command": ["x"]},
        hyperparameters={"lr": 0.1},
        distribution={"kind": "none"},
    )
    hps = contract.sagemaker_hyperparameters(spec, "demo-1", region="eu-west-1")
    env = toolkit.build_environment(
        toolkit.Paths(), hps, contract.resource_config(spec, "algo-1"), {}, environ={}
    )
    assert json.loads(env["SM_HPS"]) == {"lr": 0.1}
    assert json.loads(env["SM_FRAMEWORK_PARAMS"]) == {}
    assert env["SAGEMAKER_REGION"] == "eu-west-1"


def test_torchrun_distribution_sets_the_sdk_hyperparameters(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    spec = spec_from_dict(
        {
            "name": "dist",
            "source": {"source_dir": ".", "entry_point": "train.py"},
            "compute": {"backend": "docker", "instance_count": 2, "instance_type": "ml.g5.xlarge"},
            "distribution": {"kind": "torchrun", "processes_per_host": 2},
        },
        base_dir=tmp_path,
    )
    hps = contract.sagemaker_hyperparameters(spec, "dist-1")
    assert hps["sagemaker_program"] == '"train.py"'
    assert hps["sagemaker_submit_directory"] == '"/opt/ml/code"'
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    assert hps["sagemaker_instance_type"] == '"ml.g5.xlarge"'
    assert hps["sagemaker_mpi_num_of_processes_per_host"] == "2"
    env = toolkit.build_environment(
        toolkit.Paths(), hps, contract.resource_config(spec, "algo-1"), {}, environ={}
    )
    assert json.loads(env["SM_FRAMEWORK_PARAMS"]) == {
        "sagemaker_instance_type": "ml.g5.xlarge",
        "sagemaker_mpi_num_of_processes_per_host": 2,
        "sagemaker_torch_distributed_enabled": True,
    }
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_NAME"] == "train"


@pytest.mark.parametrize(
    ("hosts", "current", "expected"),
    [
        (["algo-1"], "algo-1", "torchrun --nnodes 1 --nproc_per_node 4 train.py --epochs 3"),
        (
            ["algo-1", "algo-2"],
            "algo-2",
            "torchrun --nnodes 2 --nproc_per_node 4 --master_addr algo-1 --master_port 7777 "
            "--node_rank 1 train.py --epochs 3",
        ),
    ],
)
def test_torchrun_command_matches_the_pytorch_toolkit(
    hosts: list[str], current: str, expected: str
) -> None:
    cmd = toolkit.torchrun_command(hosts, current, 4, "train.py", ["--epochs", "3"])
    assert " ".join(cmd) == expected


def test_processes_per_host_prefers_explicit_then_gpus_then_one() -> None:
    assert toolkit.processes_per_host({"sagemaker_mpi_num_of_processes_per_host": "3"}, 8) == 3
    assert toolkit.processes_per_host({}, 8) == 8
    assert toolkit.processes_per_host({}, 0) == 1


def test_non_python_entry_point_runs_through_sh() -> None:
    assert toolkit.script_command("run.sh", ["--a", "b c"], "python") == [
        "/bin/sh",
        "-c",
        "./run.sh --a 'b c'",
    ]


def test_materialise_host_writes_the_tree_and_config_files(tmp_path: Path) -> None:
    spec = _spec(compute={"backend": "docker", "instance_count": 2})
    layout = contract.materialise_host(spec, "demo-1", "algo-1", tmp_path / "algo-1")
    for sub in ["input/config", "input/data", "model", "output/data", "code", "checkpoints"]:
        assert (layout.root / sub).is_dir(), sub
    rc = json.loads((layout.config_dir / "resourceconfig.json").read_text())
    assert rc["current_host"] == "algo-1" and rc["hosts"] == ["algo-1", "algo-2"]
    assert set(json.loads((layout.config_dir / "inputdataconfig.json").read_text())) == {
        "train",
        "test",
    }
    hps = json.loads((layout.config_dir / "hyperparameters.json").read_text())
    assert hps["sagemaker_job_name"] == '"demo-1"'


def test_host_layout_submit_directory_points_at_the_host_tree(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    spec = spec_from_dict(
        {"name": "h", "source": {"source_dir": ".", "entry_point": "train.py"}},
        base_dir=tmp_path,
    )
    root = tmp_path / "run" / "algo-1"
    layout = contract.materialise_host(spec, "h-1", "algo-1", root, seen_as=str(root))
    hps = json.loads((layout.config_dir / "hyperparameters.json").read_text())
    assert json.loads(hps["sagemaker_submit_directory"]) == f"{root}/code"


def test_region_topology_and_cpus_as_the_toolkit_5_exports_them() -> None:
    """Checked against sagemaker-training 5.1.4 in tests/docker/test_launch_modes.py."""
    spec = spec_from_dict(
        {"name": "demo", "source": {"command": ["x"]}, "hyperparameters": {"lr": 0.1}}
    )
    hps = contract.sagemaker_hyperparameters(spec, "demo-1")
    resource = contract.resource_config(spec, "algo-1")
    env = toolkit.build_environment(toolkit.Paths(), hps, resource, {}, environ={})
    # No region anywhere: the toolkit still exports SAGEMAKER_REGION, empty.
    assert env["SAGEMAKER_REGION"] == ""
    from_boto = {"AWS_DEFAULT_REGION": "us-west-2"}
    assert (
        toolkit.build_environment(toolkit.Paths(), hps, resource, {}, environ=from_boto)[
            "SAGEMAKER_REGION"
        ]
        == "us-west-2"
    )
    # topology is an Environment property: always in SM_TRAINING_ENV, SM_TOPOLOGY only if set.
    assert json.loads(env["SM_TRAINING_ENV"])["topology"] == []
    assert "SM_TOPOLOGY" not in env
    ultra = {**resource, "topology": [{"hostName": "algo-1", "capacityUnitId": "u1"}]}
    env = toolkit.build_environment(toolkit.Paths(), hps, ultra, {}, environ={})
    assert json.loads(env["SM_TOPOLOGY"]) == ultra["topology"]
    assert json.loads(env["SM_TRAINING_ENV"])["topology"] == ultra["topology"]
    import multiprocessing

    assert env["SM_NUM_CPUS"] == str(multiprocessing.cpu_count()) == str(toolkit.cpu_count())


def test_the_driver_imports_only_what_it_runs(tmp_path: Path) -> None:
    """It starts before every job in a plain image: none of the modules it can do without."""
    import subprocess
    import sys

    driver = [sys.executable, "-X", "importtime", str(contract.driver_path())]
    out = subprocess.run(
        [*driver, "--base-dir", str(tmp_path), "--", sys.executable, "-c", "pass"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()}
    assert "json" in imported
    assert not {"typing", "argparse", "multiprocessing", "shlex", "shutil"} & imported


def test_the_driver_reads_the_runners_options_and_leaves_the_rest_to_argparse() -> None:
    opts = toolkit.parse_args(["--base-dir", "/x", "--host-mode", "--", "python", "-c", "pass"])
    assert (opts.base_dir, opts.host_mode, opts.skip_requirements) == ("/x", True, False)
    assert opts.command == ["--", "python", "-c", "pass"]
    opts = toolkit.parse_args(["--custom-driver", "/d/drv.py", "--skip-requirements"])
    assert (opts.custom_driver, opts.skip_requirements, opts.command) == ("/d/drv.py", True, [])
    assert toolkit.parse_args(["--base-dir=/y"]).base_dir == "/y"  # argparse's form
    with pytest.raises(SystemExit):
        toolkit.parse_args(["--no-such-option"])
