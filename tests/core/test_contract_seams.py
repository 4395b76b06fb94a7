"""Issue 16, "Training contract": what a script sees on the host-process backend matches the
toolkit (null hyperparameters, SAGEMAKER_BASE_DIR), SDK V3's ModelTrainer variables are there,
and metric auto-detection keeps log noise out. The same seams against the real toolkit, in its
image, are in tests/docker/test_contract_seams_docker.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from trainer_gui.core import contract
from trainer_gui.core.metrics import MetricsParser
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]
TIMEOUT = 120

DUMP = """
    import json, os, sys
    env = dict(os.environ)
    json.dump({"argv": sys.argv[1:], "env": env},
              open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
"""


def _run(service: JobService, spec: JobSpec) -> tuple[Path, dict]:
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    root = Path(record.run_dir) / "hosts" / "algo-1"
    return root, json.loads((root / "model" / "seen.json").read_text())


# -- a null hyperparameter ------------------------------------------------------------------------


def test_a_null_hyperparameter_is_an_empty_argument_as_the_toolkit_passes_it() -> None:
    # sagemaker_training.mapping.to_cmd_args: `_decode(None)` is "" (not "None").
    assert contract.to_cmd_args({"resume": None, "epochs": 1, "opt": {"a": None}}) == [
        "--epochs",
        "1",
        "--opt",
        "a=None",  # inside a mapping the toolkit formats with %s, so None stays "None"
        "--resume",
        "",
    ]


def test_a_null_hyperparameter_reaches_the_script_empty(
    service: JobService, job_spec: SpecFactory
) -> None:
    _, seen = _run(service, job_spec(DUMP, hyperparameters={"resume": None, "epochs": 1}))
    assert seen["argv"] == ["--epochs", "1", "--resume", ""]
    assert json.loads(seen["env"]["SM_USER_ARGS"]) == ["--epochs", "1", "--resume", ""]
    assert seen["env"]["SM_HP_RESUME"] == ""


# -- SAGEMAKER_BASE_DIR ---------------------------------------------------------------------------


def test_the_host_process_job_points_sagemaker_base_dir_at_its_tree(
    service: JobService, job_spec: SpecFactory
) -> None:
    """The toolkit reads <SAGEMAKER_BASE_DIR>/input/config/... and <...>/code: the run's /opt/ml
    equivalent itself (environment.py: base_dir = os.environ.get(BASE_PATH_ENV, /opt/ml))."""
    root, seen = _run(service, job_spec(DUMP))
    base = Path(seen["env"]["SAGEMAKER_BASE_DIR"])
    assert base == root
    assert (base / "input" / "config" / "resourceconfig.json").is_file()
    assert Path(seen["env"]["SM_CHANNEL_TRAIN"]).parent == base / "input" / "data"


def test_containers_keep_the_default_base_dir() -> None:
    env = contract.sm_environment(_spec_for_env(), "job-1", "algo-1")
    assert "SAGEMAKER_BASE_DIR" not in env  # /opt/ml is where the toolkit looks anyway


# -- SDK V3 (ModelTrainer) variables --------------------------------------------------------------


def _spec_for_env(**over: object) -> JobSpec:
    from trainer_gui.core.spec import spec_from_dict

    data: dict[str, object] = {
        "name": "v3",
        "source": {"source_dir": "code", "entry_point": "train.py"},  # not looked up: no base
        "compute": {"backend": "docker", "instance_count": 3},
        "hyperparameters": {"batch-size": 64, "lr": 0.1, "layers": [64, 32], "name": "resnet"},
    }
    data.update(over)
    return spec_from_dict(data)


def test_sdk_v3_variables_are_set_beside_the_toolkits() -> None:
    """Names and formats of sagemaker-train `container_drivers/scripts/environment.py`: the rank
    among the sorted hosts, the host count, master algo-1:7777, SM_HP_<KEY> with - as _ and
    values as `safe_serialize` gives them (json.dumps, spaces kept; str as is)."""
    spec = _spec_for_env(distribution={"kind": "torchrun", "processes_per_host": 2})
    env = contract.sm_environment(spec, "job-1", "algo-2")
    assert env["SM_HOST_COUNT"] == "3"
    assert env["SM_CURRENT_HOST_RANK"] == "1"
    assert env["SM_MASTER_ADDR"] == "algo-1" and env["SM_MASTER_PORT"] == "7777"
    assert env["SM_SOURCE_DIR"] == "/opt/ml/code"
    assert env["SM_ENTRY_SCRIPT"] == "train.py"
    assert env["SM_INPUT_DATA_DIR"] == "/opt/ml/input/data"
    assert env["SM_OUTPUT_FAILURE"] == "/opt/ml/output/failure"
    assert json.loads(env["SM_DISTRIBUTED_CONFIG"]) == {"process_count_per_node": 2, "smp": None}
    assert env["SM_HP_BATCH_SIZE"] == "64"
    # The toolkit's own names keep the toolkit's values (compact JSON), never V3's.
    assert env["SM_HP_BATCH-SIZE"] == "64"
    assert env["SM_HP_LAYERS"] == "[64,32]"
    assert env["SM_HP_NAME"] == "resnet"


def test_a_toolkit_image_gets_only_the_names_its_toolkit_lacks() -> None:
    spec = _spec_for_env()
    extra = contract.v3_environment(spec, "job-1", "algo-3")
    assert extra["SM_CURRENT_HOST_RANK"] == "2" and extra["SM_HOST_COUNT"] == "3"
    assert "SM_HP_BATCH_SIZE" in extra
    assert not {"SM_HP_LR", "SM_HP_LAYERS", "SM_HP_NAME", "SM_HOSTS", "SM_HPS"} & set(extra)
    assert "SM_DISTRIBUTED_CONFIG" not in extra  # no distribution: V3 sets none


def test_a_host_process_job_sees_the_v3_variables(
    service: JobService, job_spec: SpecFactory
) -> None:
    root, seen = _run(service, job_spec(DUMP, hyperparameters={"batch-size": 8}))
    env = seen["env"]
    assert env["SM_HOST_COUNT"] == "1" and env["SM_CURRENT_HOST_RANK"] == "0"
    assert env["SM_MASTER_ADDR"] == env["MASTER_ADDR"] == "127.0.0.1"
    assert env["SM_ENTRY_SCRIPT"] == "train.py"
    assert Path(env["SM_SOURCE_DIR"]) == root / "code"
    assert env["SM_HP_BATCH_SIZE"] == env["SM_HP_BATCH-SIZE"] == "8"


# -- metric auto-detection ------------------------------------------------------------------------

# Lines from the toolkit's "Invoking user script" dump (logging_config.log_script_invocation:
# Training Env as indented JSON, then every exported variable as NAME=value) and from torch.
NOISE = [
    "SM_NUM_CPUS=2",
    "SM_NUM_GPUS=0",
    "SM_HP_EPOCHS=3",
    "SM_LOG_LEVEL=20",
    '    "num_cpus": 2,',
    '    "num_gpus": 0,',
    '        "epochs": 3,',
    '    "log_level": 20,',
    "[W1203 22:40:11.123456 12 torch/csrc/distributed/c10d/socket.cpp:467] [c10d] The server "
    "socket has failed to listen on [::]:29500 (errno: 98 - Address already in use), fd=3.",
    "DataLoader worker 3 started (pid=4003)",
    "WARNING torch.distributed: timeout=1800 world_size=8 rank=3",
    "OMP_NUM_THREADS=4",
]
PROGRESS = {
    "epoch=1 step=20 loss=0.53 acc=0.81": ["loss", "acc"],
    "loss=0.5": ["loss"],
    "val_acc: 0.9": ["val_acc"],
    "Epoch 3/10 throughput=120.5": ["throughput"],
    "top1=0.7 top5=0.9": ["top1", "top5"],
    '{"epoch": 2, "f1": 0.8}': ["f1"],
}


def _auto(lines: list[str], not_metrics: tuple[str, ...] = ()) -> list[str]:
    parser = MetricsParser([], auto_detect=True, not_metrics=not_metrics)
    return [s.name for s in parser.parse_lines((line, "algo-1", 0.0) for line in lines)]


def test_auto_detection_ignores_the_environment_dump_and_library_chatter() -> None:
    assert _auto(NOISE) == []


def test_auto_detection_keeps_training_progress() -> None:
    for line, names in PROGRESS.items():
        assert _auto([line]) == names, line


def test_auto_detection_never_reports_a_hyperparameter_or_a_variable() -> None:
    lines = ["step=3 loss=0.5 epochs=3 batch-size=64 MY_FLAG=1 SM_CURRENT_HOST_RANK=0"]
    assert _auto(lines, ("epochs", "batch_size", "MY_FLAG")) == ["loss"]
    # Case and - / _ do not matter: the toolkit prints both spellings.
    assert _auto(["step=1 Batch_Size=64 loss=1"], ("batch-size",)) == ["loss"]
