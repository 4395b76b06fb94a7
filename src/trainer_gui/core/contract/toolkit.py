"""The SageMaker training toolkit's side of the contract, standard library only.

This one file is both a library (pure functions the app uses to build environments and command
lines) and the driver that runs the user's code: the host-process runner starts it as a script,
and plain Docker images get it mounted read-only, so a script sees the same SM_* variables,
argv and torchrun line on the host, in Docker and on SageMaker. It must run on any Python >= 3.8
with nothing installed, so it imports nothing from the app.

Sources (see shared/docs/sagemaker-contract.md): sagemaker-training-toolkit `environment.py`,
`mapping.py`, `params.py`, `files.py`; sagemaker-pytorch-training-toolkit `training.py`,
`torch_distributed.py`.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

# The driver starts before every job in a plain image, so it imports only what it runs:
# `typing` (annotations only), `argparse` (see parse_args), `shlex`, `shutil` and
# `multiprocessing` (~40 ms together in a container) are not loaded at run time.
# Type checkers take any name spelt TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import types
    from typing import Any

DEFAULT_BASE_DIR = "/opt/ml"
MASTER_PORT = "7777"
DEFAULT_GROUP = "homogeneousCluster"
DEFAULT_INTERFACE = "eth0"

# params.py: keys kept out of both SM_HPS and SM_FRAMEWORK_PARAMS.
RESERVED_HYPERPARAMETERS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
)
TORCH_DISTRIBUTED_KEY = "sagemaker_torch_distributed_enabled"
SMDDP_KEY = "sagemaker_distributed_dataparallel_enabled"
SMDDP_MPI_OPTIONS_KEY = "sagemaker_distributed_dataparallel_custom_mpi_options"
DISTRIBUTION_GROUPS_KEY = "sagemaker_distribution_instance_groups"
# environment.py `get_distribution_instance_groups_from_resource_config`: any of these on puts
# the host's own group among the distribution groups when no group is named.
DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    SMDDP_KEY,
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    TORCH_DISTRIBUTED_KEY,
)
PROCESSES_PER_HOST_KEY = "sagemaker_mpi_num_of_processes_per_host"
# MPI (the toolkit's `params.py` names; `mpi.py` MasterRunner/WorkerRunner run it).
MPI_KEY = "sagemaker_mpi_enabled"
MPI_OPTIONS_KEY = "sagemaker_mpi_custom_mpi_options"
MPI_NUM_PROCESSES_KEY = "sagemaker_mpi_num_processes"


# -- hyperparameters ------------------------------------------------------------------------------


def encode_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """V2 SDK encoding: every value `json.dumps`-ed, so "resnet" travels as '"resnet"'."""
    return {str(k): json.dumps(v) for k, v in hyperparameters.items()}


def decode_hyperparameters(raw: Mapping[str, str]) -> dict[str, Any]:
    """Toolkit decoding: `json.loads` each value, the raw string where that fails."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def split_hyperparameters(decoded: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user hyperparameters, framework parameters) as the toolkit splits them."""
    user = {}
    framework = {}
    for key, value in decoded.items():
        if key in RESERVED_HYPERPARAMETERS:
            continue
        if key.startswith("sagemaker_"):
            framework[key] = value
        else:
            user[key] = value
    return user, framework


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """Toolkit `mapping.to_cmd_args`: sorted keys, `-k` for one-letter keys, dicts as k=v,..."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        args.append(("-" if len(key) == 1 else "--") + key)
        if isinstance(value, dict):
            args.append(",".join("%s=%s" % (k, value[k]) for k in sorted(value)))
        elif value is None:
            args.append("")  # the toolkit's `_decode(None)`: an empty argument, not "None"
        else:
            args.append(str(value))
    return args


def env_value(value: Any) -> str:
    """Toolkit `mapping.to_env_vars` value rule: str as is, None empty, else compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- config files ---------------------------------------------------------------------------------


def resource_config(
    current_host: str,
    hosts: Sequence[str],
    instance_type: str,
    interface: str = DEFAULT_INTERFACE,
    groups: Sequence[tuple[str, str, Sequence[str]]] = (),
) -> dict[str, Any]:
    """The full shape real SageMaker writes (not local mode's cut-down one).

    `groups` (name, instance type, hosts) for a heterogeneous cluster: the host's own group
    gives its current_group_name and current_instance_type; else one homogeneousCluster.
    """
    if not groups:
        groups = [(DEFAULT_GROUP, instance_type, list(hosts))]
    current = next((g for g in groups if current_host in g[2]), groups[0])
    return {
        "current_host": current_host,
        "current_instance_type": current[1],
        "current_group_name": current[0],
        "hosts": list(hosts),
        "instance_groups": [
            {"instance_group_name": name, "instance_type": kind, "hosts": list(members)}
            for name, kind, members in groups
        ],
        "network_interface_name": interface,
    }


def distribution_layout(
    decoded: Mapping[str, Any], resource_cfg: Mapping[str, Any]
) -> tuple[list[str], list[str], str]:
    """(distribution instance groups, distribution hosts, master host) as the toolkit's
    `Environment` works them out: the groups named by the SDK, else the host's own group when a
    distribution is on; their hosts (every host where resourceconfig.json has no groups); the
    first of those hosts, else the first host."""
    hosts = list(resource_cfg.get("hosts") or [])
    group = str(resource_cfg.get("current_group_name", DEFAULT_GROUP))
    named = decoded.get(DISTRIBUTION_GROUPS_KEY)
    if named is None:
        on = any(decoded.get(flag) for flag in DISTRIBUTION_FLAGS)
        named = [group] if on else []
    groups = list(resource_cfg.get("instance_groups") or [])
    if groups:
        dist_hosts = [h for g in groups if g["instance_group_name"] in named for h in g["hosts"]]
    else:
        dist_hosts = list(hosts)
    current_host = str(resource_cfg.get("current_host", hosts[0] if hosts else "algo-1"))
    master = dist_hosts[0] if dist_hosts else (hosts[0] if hosts else current_host)
    return list(named), dist_hosts, master


def input_data_config(channels: Mapping[str, str | None]) -> dict[str, dict[str, str]]:
    """`{channel: content type or None}` -> inputdataconfig.json as SageMaker writes it."""
    out: dict[str, dict[str, str]] = {}
    for name, content_type in channels.items():
        entry: dict[str, str] = {}
        if content_type:
            entry["ContentType"] = content_type
        entry.update(
            {
                "TrainingInputMode": "File",
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
            }
        )
        out[name] = entry
    return out


class Paths:
    """The /opt/ml tree under a base folder (SAGEMAKER_BASE_DIR overrides /opt/ml)."""

    def __init__(self, base: str = DEFAULT_BASE_DIR) -> None:
        self.base = base
        self.input_dir = _join(base, "input")
        self.input_config_dir = _join(base, "input", "config")
        self.input_data_dir = _join(base, "input", "data")
        self.model_dir = _join(base, "model")
        self.output_dir = _join(base, "output")
        self.output_data_dir = _join(base, "output", "data")
        self.output_intermediate_dir = _join(base, "output", "intermediate")
        self.code_dir = _join(base, "code")
        self.checkpoints_dir = _join(base, "checkpoints")
        self.hyperparameters_file = _join(self.input_config_dir, "hyperparameters.json")
        self.resource_config_file = _join(self.input_config_dir, "resourceconfig.json")
        self.input_data_config_file = _join(self.input_config_dir, "inputdataconfig.json")
        self.success_file = _join(self.output_dir, "success")
        self.failure_file = _join(self.output_dir, "failure")

    def channel_dir(self, name: str) -> str:
        return _join(self.input_data_dir, name)


def _join(*parts: str) -> str:
    # Always '/' so a Windows host computes the same container paths; the host runner only
    # ever passes real host paths through os.path.
    first, rest = parts[0], parts[1:]
    sep = "\\" if ("\\" in first and "/" not in first) else "/"
    return sep.join([first.rstrip("/\\"), *rest])


# -- environment ----------------------------------------------------------------------------------


def build_environment(
    paths: Paths,
    hyperparameters: Mapping[str, str],
    resource_cfg: Mapping[str, Any],
    input_data_cfg: Mapping[str, Any],
    num_gpus: int = 0,
    num_cpus: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every SM_* variable the toolkit exports (section 1.6), plus the PyTorch toolkit's."""
    environ = dict(os.environ if environ is None else environ)
    decoded = decode_hyperparameters(hyperparameters)
    user_hps, framework_params = split_hyperparameters(decoded)
    hosts = list(resource_cfg.get("hosts") or [])
    current_host = str(resource_cfg.get("current_host", hosts[0] if hosts else "algo-1"))
    instance_type = str(resource_cfg.get("current_instance_type", "local"))
    group = str(resource_cfg.get("current_group_name", DEFAULT_GROUP))
    interface = str(resource_cfg.get("network_interface_name", DEFAULT_INTERFACE))
    groups = list(resource_cfg.get("instance_groups") or [])
    groups_dict = {g["instance_group_name"]: g for g in groups}
    group_hosts = list(groups_dict.get(group, {}).get("hosts", hosts))
    distribution_groups, distribution_hosts, master = distribution_layout(decoded, resource_cfg)
    channels = sorted(input_data_cfg)
    channel_dirs = {name: paths.channel_dir(name) for name in channels}
    entry_point = str(environ.get("SAGEMAKER_PROGRAM") or decoded.get("sagemaker_program") or "")
    module_name = entry_point[:-3] if entry_point.endswith(".py") else entry_point
    module_dir = str(decoded.get("sagemaker_submit_directory") or paths.code_dir)
    log_level = decoded.get("sagemaker_container_log_level", 20)
    job_name = str(
        decoded.get("sagemaker_job_name") or environ.get("TRAINING_JOB_NAME") or "local-job"
    )
    if num_cpus is None:
        num_cpus = cpu_count()

    topology = list(resource_cfg.get("topology") or [])
    training_env: dict[str, Any] = {
        "additional_framework_parameters": framework_params,
        "channel_input_dirs": channel_dirs,
        "current_host": current_host,
        "current_instance_group": group,
        "current_instance_group_hosts": group_hosts,
        "current_instance_type": instance_type,
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": environ.get("SAGEMAKER_TRAINING_MODULE"),
        "hosts": hosts,
        "hyperparameters": user_hps,
        "input_config_dir": paths.input_config_dir,
        "input_data_config": dict(input_data_cfg),
        "input_dir": paths.input_dir,
        "instance_groups": [g["instance_group_name"] for g in groups],
        "instance_groups_dict": groups_dict,
        "is_hetero": len(groups) > 1,
        "is_master": current_host == master,
        "is_modelparallel_enabled": None,
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": job_name,
        "log_level": log_level,
        "master_hostname": master,
        "model_dir": paths.model_dir,
        "module_dir": module_dir,
        "module_name": module_name,
        "network_interface_name": interface,
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "num_neurons": 0,
        "output_data_dir": paths.output_data_dir,
        "output_dir": paths.output_dir,
        "output_intermediate_dir": paths.output_intermediate_dir,
        "resource_config": dict(resource_cfg),
        # A property of the toolkit's Environment, so always in SM_TRAINING_ENV (5.x).
        "topology": topology,
        "user_entry_point": entry_point,
    }
    exported: dict[str, Any] = {
        "model_dir": paths.model_dir,
        "channels": channels,
        "hps": user_hps,
        "hosts": hosts,
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_instance_group": group,
        "current_instance_group_hosts": group_hosts,
        "instance_groups": training_env["instance_groups"],
        "instance_groups_dict": groups_dict,
        "distribution_instance_groups": distribution_groups,
        "is_hetero": training_env["is_hetero"],
        "network_interface_name": interface,
        "num_gpus": num_gpus,
        "num_cpus": num_cpus,
        "num_neurons": 0,
        "log_level": log_level,
        "user_entry_point": entry_point,
        "module_name": module_name,
        "module_dir": module_dir,
        "framework_module": training_env["framework_module"],
        "framework_params": framework_params,
        "resource_config": dict(resource_cfg),
        "input_data_config": dict(input_data_cfg),
        "input_dir": paths.input_dir,
        "input_config_dir": paths.input_config_dir,
        "output_dir": paths.output_dir,
        "output_data_dir": paths.output_data_dir,
        "output_intermediate_dir": paths.output_intermediate_dir,
        "user_args": to_cmd_args(user_hps),
        "training_env": training_env,
    }
    if topology:  # SM_TOPOLOGY only where SageMaker wrote one (GB200 UltraServers)
        exported["topology"] = topology
    env = {"SM_" + key.upper(): env_value(value) for key, value in exported.items()}
    for name, directory in channel_dirs.items():
        env["SM_CHANNEL_" + name.upper()] = directory
    for key, value in user_hps.items():
        env["SM_HP_" + key.upper()] = env_value(value)
    env.update(
        {
            "TRAINING_JOB_NAME": job_name,
            "SAGEMAKER_JOB_NAME": job_name,
            "CURRENT_HOST": current_host,
            "MASTER_ADDR": master,
            "MASTER_PORT": MASTER_PORT,
            "NCCL_SOCKET_IFNAME": interface,
            "NCCL_IB_DISABLE": "1",
            "NCCL_DEBUG": "WARN",
        }
    )
    # The toolkit always sets it: the sagemaker_region hyperparameter, else boto3's region
    # (AWS_DEFAULT_REGION here), else "".
    region = (
        decoded.get("sagemaker_region")
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
    )
    env["SAGEMAKER_REGION"] = str(region or "")
    for key, value in v3_environment(paths, decoded, hosts, current_host, master).items():
        env.setdefault(key, value)  # the toolkit's own names and values win
    return env


def v3_value(value: Any) -> str:
    """SDK V3's `safe_serialize`: str as is, anything else `json.dumps` (spaces kept)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def v3_environment(
    paths: Paths,
    decoded: Mapping[str, Any],
    hosts: Sequence[str],
    current_host: str,
    master_addr: str,
) -> dict[str, str]:
    """The names SDK V3's `ModelTrainer` scripts read that the toolkit does not set.

    From sagemaker-train `container_drivers/scripts/environment.py`: the host's rank among the
    sorted hosts, the master (algo-1; 127.0.0.1 on the host), port 7777, the entry script, the
    code folder (V3's own code channel is /opt/ml/input/data/code; here the code is where the
    toolkit puts it), the torchrun config as V3's `Torchrun.model_dump()` JSON, and
    `SM_HP_<KEY>` with `-` mapped to `_`. Names the toolkit also sets are left to it.
    """
    ordered = sorted(hosts) or [current_host]
    rank = ordered.index(current_host) if current_host in ordered else 0
    env = {
        "SM_INPUT_DATA_DIR": paths.input_data_dir,
        "SM_OUTPUT_FAILURE": paths.failure_file,
        "SM_MASTER_ADDR": master_addr,
        "SM_MASTER_PORT": MASTER_PORT,
        "SM_SOURCE_DIR": paths.code_dir,
        "SM_ENTRY_SCRIPT": str(decoded.get("sagemaker_program") or ""),
        "SM_HOST_COUNT": str(len(ordered)),
        "SM_CURRENT_HOST_RANK": str(rank),
    }
    if decoded.get(TORCH_DISTRIBUTED_KEY) in (True, "true", "True"):
        config = {"process_count_per_node": decoded.get(PROCESSES_PER_HOST_KEY), "smp": None}
        env["SM_DISTRIBUTED_CONFIG"] = json.dumps(config)
    user_hps, _ = split_hyperparameters(decoded)
    for key, value in user_hps.items():
        env.setdefault("SM_HP_" + key.replace("-", "_").upper(), v3_value(value))
    return env


def cpu_count() -> int:
    """`multiprocessing.cpu_count()` without importing multiprocessing (its value: the CPUs this
    process may use on Python >= 3.13, all of them before)."""
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return int(count or 1)


def processes_per_host(hyperparameters: Mapping[str, str], num_gpus: int) -> int:
    """Toolkit `runner.py`: the MPI process count if set, else one per GPU, else 1."""
    decoded = decode_hyperparameters(hyperparameters)
    explicit = decoded.get(PROCESSES_PER_HOST_KEY)
    if explicit:
        return int(explicit)
    return num_gpus or 1


def torchrun_command(
    hosts: Sequence[str],
    current_host: str,
    nproc_per_node: int,
    entry_point: str,
    args: Sequence[str],
    torchrun: Sequence[str] = ("torchrun",),
    standalone: bool = False,
) -> list[str]:
    """`torch_distributed.py` `_create_command`; rendezvous flags only for several hosts.

    `standalone` (one host on a shared machine) asks torchrun for a free port instead of 29500,
    so two local jobs never collide.
    """
    cmd = [*torchrun, "--nnodes", str(len(hosts)), "--nproc_per_node", str(nproc_per_node)]
    if len(hosts) > 1:
        cmd += [
            "--master_addr",
            hosts[0],
            "--master_port",
            MASTER_PORT,
            "--node_rank",
            str(list(hosts).index(current_host)),
        ]
    elif standalone:
        cmd.append("--standalone")
    return [*cmd, entry_point, *args]


def script_command(entry_point: str, args: Sequence[str], python: str) -> list[str]:
    """`process.py` `_create_command`: .py with Python, anything else through /bin/sh."""
    if entry_point.endswith(".py"):
        return [python, entry_point, *args]
    import shlex

    return ["/bin/sh", "-c", "./" + " ".join(shlex.quote(a) for a in [entry_point, *args])]


def _which(name: str) -> str | None:
    """`shutil.which` for a bare name on POSIX, without importing shutil (and its compressors)."""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def count_gpus() -> int:
    """Toolkit rule: lines starting 'GPU ' in `nvidia-smi --list-gpus`, 0 on any error."""
    if not _which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def visible_gpus() -> int:
    """The GPUs this process may use: `count_gpus()`, narrowed by CUDA_VISIBLE_DEVICES when the
    app gave a local-process job its own devices (in a container, Docker already narrowed
    what nvidia-smi lists)."""
    found = count_gpus()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not found:
        return found
    ids = [part for part in visible.split(",") if part.strip() and part.strip() != "-1"]
    return min(found, len(ids))


# -- the driver -----------------------------------------------------------------------------------


def _read_json(path: str, default: Any) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default


#: The stderr lines the failure file quotes, and how far back the script's own error is looked
#: for behind a launcher's traceback (torchrun's ChildFailedError block is ~20 lines long).
FAILURE_LINES = 20
FAILURE_SCAN_LINES = 400

_LAUNCHER_MARKS = (
    "ChildFailedError",
    "torch.distributed.elastic",
    "mpirun detected that one or more processes exited",  # Open MPI's mpirun
    "MPI_ABORT was invoked on rank",  # ... after `python -m mpi4py` saw an exception
)


def script_error(lines: Sequence[str]) -> str | None:
    """The script's own error line (`[rank1]: ValueError: bad lr`) from stderr that ends in a
    launcher's traceback (torchrun's), whose lines say only that a child failed; None when no
    launcher failed or no such line is found.

    The rank torchrun names as the root cause (its first observed failure) decides: that rank's
    last error line where torchrun prefixes lines with `[rankN]:`, else the first error line
    (the ranks that fail later mostly fail because a peer went away)."""
    if not any(mark in line for line in lines for mark in _LAUNCHER_MARKS):
        return None
    import re  # only on a failure: the driver keeps its start-up imports minimal

    error = re.compile(
        r"^\s*(?:\[(?:rank|default)(\d+)\]:\s*"
        r"|\[\d+,(?:mpirank:)?\d+(?:,algo-\d+)?\]<std(?:err|out)>:\s*)?"
        r"[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)(?::\s.*)?$"
    )
    root = None
    after_root = False
    for line in lines:
        if "Root Cause" in line:
            after_root = True
        found = re.match(r"^\s*rank\s*:\s*(\d+)", line) if after_root else None
        if found:
            root = found.group(1)
            break
    first = None
    of_root = None
    for line in lines:
        text = line.rstrip()
        match = error.match(text)
        if not match or any(mark in text for mark in _LAUNCHER_MARKS):
            continue
        if first is None:
            first = text.strip()
        if root is not None and match.group(1) == root:
            of_root = text.strip()
    return of_root or first


def _failure_text(code: int, tail: Sequence[str], cmd: Sequence[str]) -> str:
    """The toolkit's failure text; behind a launcher's traceback (which names no cause), the
    script's own last error line comes first, so a reason's first line says what failed."""
    lines = list(tail)
    message = "\n".join(line.rstrip() for line in lines[-FAILURE_LINES:]).strip()
    command = " ".join(cmd)
    text = "AlgorithmError: ExecuteUserScriptError:\n" + (
        'ExitCode %d\nErrorMessage "%s"\nCommand "%s"' % (code, message, command)
    )
    lead = script_error(lines)
    return lead + "\n" + text if lead else text


def _write_once(path: str, text: str) -> None:
    """`files.write_failure_file`: never overwrite a reason the script wrote itself."""
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def plan_command(
    paths: Paths,
    hyperparameters: Mapping[str, str],
    resource_cfg: Mapping[str, Any],
    num_gpus: int,
    python: str,
    command: Sequence[str] = (),
    custom_driver: str | None = None,
    host_mode: bool = False,
) -> list[str]:
    """The one command the driver starts, chosen the way the PyTorch toolkit chooses it."""
    if command:
        return list(command)
    decoded = decode_hyperparameters(hyperparameters)
    user_hps, _ = split_hyperparameters(decoded)
    args = to_cmd_args(user_hps)
    if custom_driver:
        return [python, custom_driver]
    entry_point = str(decoded.get("sagemaker_program") or "")
    if not entry_point:
        raise SystemExit("trainer-gui driver: no sagemaker_program in hyperparameters.json")
    groups, dist_hosts, _ = distribution_layout(decoded, resource_cfg)
    in_distribution = str(resource_cfg.get("current_group_name", DEFAULT_GROUP)) in groups
    if in_distribution and decoded.get(TORCH_DISTRIBUTED_KEY) in (True, "true", "True"):
        # Over the distribution groups' hosts only (a heterogeneous cluster's other groups run
        # the script once per host, as the PyTorch toolkit's `training.main` has them).
        hosts = dist_hosts or ["algo-1"]
        current = str(resource_cfg.get("current_host", hosts[0]))
        nproc = processes_per_host(hyperparameters, num_gpus)
        torchrun = [python, "-m", "torch.distributed.run"]
        return torchrun_command(
            hosts, current, nproc, entry_point, args, torchrun=torchrun, standalone=host_mode
        )
    if in_distribution and mpi_enabled(decoded):
        env = build_environment(paths, hyperparameters, resource_cfg, {}, num_gpus, environ={})
        return mpirun_command(
            dist_hosts or ["algo-1"],
            processes_per_host(hyperparameters, num_gpus),
            decoded,
            str(resource_cfg.get("network_interface_name", DEFAULT_INTERFACE)),
            mpi_forwarded_names(env, decoded),
            mpi_program(entry_point, args, python),
            local=host_mode,
        )
    return script_command(entry_point, args, python)


def _install_requirements(code_dir: str, python: str) -> None:
    req = os.path.join(code_dir, "requirements.txt")
    if os.path.isfile(req):
        print("trainer-gui driver: installing %s" % req, file=sys.stderr, flush=True)
        subprocess.run([python, "-m", "pip", "install", "-r", req], check=True)


def _argument_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="trainer-gui-driver", description="Run a training job under the SageMaker contract."
    )
    parser.add_argument(
        "--base-dir", default=os.environ.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE_DIR)
    )
    parser.add_argument("--custom-driver", default=None)
    parser.add_argument("--host-mode", action="store_true", help="running on the host, not Docker")
    parser.add_argument("--skip-requirements", action="store_true")
    parser.add_argument("--pid-file", default=None, help="write this process's pid here first")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace | types.SimpleNamespace:
    """The options as the runners pass them, read without building an ArgumentParser (whose
    formatter imports shutil and gettext: ~10 ms before every job); anything else (--help,
    --opt=value, a typo) goes to argparse, for its messages."""
    import types

    opts = types.SimpleNamespace(
        base_dir=os.environ.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE_DIR),
        custom_driver=None,
        host_mode=False,
        skip_requirements=False,
        pid_file=None,
        command=[],
    )
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("--base-dir", "--custom-driver", "--pid-file") and index + 1 < len(argv):
            setattr(opts, arg[2:].replace("-", "_"), argv[index + 1])
            index += 2
        elif arg in ("--host-mode", "--skip-requirements"):
            setattr(opts, arg[2:].replace("-", "_"), True)
            index += 1
        elif arg == "--" or not arg.startswith("-"):
            opts.command = list(argv[index:])
            break
        else:
            return _argument_parser().parse_args(argv)
    return opts


def write_pid_file(path: str, script_pid: int = 0) -> None:
    """The driver's pid, first thing, atomically (temp file + rename): a runner that died
    before it stored the pid it started finds the job again from this file. Once the script
    runs, its pid follows on a second line: it runs in a session of its own, so a runner can
    still end it should the driver itself be killed."""
    temp = "%s.%d.tmp" % (path, os.getpid())
    with open(temp, "w", encoding="utf-8") as fh:
        fh.write(str(os.getpid()) + ("\n%d" % script_pid if script_pid else ""))
    os.replace(temp, path)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.pid_file:
        write_pid_file(opts.pid_file)
    command = [c for c in opts.command if c != "--"] if opts.command else []

    paths = Paths(opts.base_dir)
    hyperparameters = _read_json(paths.hyperparameters_file, {})
    resource_cfg = _read_json(paths.resource_config_file, {})
    input_cfg = _read_json(paths.input_data_config_file, {})
    num_gpus = visible_gpus()
    env = dict(os.environ)
    env.update(build_environment(paths, hyperparameters, resource_cfg, input_cfg, num_gpus))
    iface = env.get("NCCL_SOCKET_IFNAME", "")
    if iface and not os.path.exists("/sys/class/net/" + iface):
        del env["NCCL_SOCKET_IFNAME"]  # e.g. on the host: let NCCL pick
    if opts.host_mode and len(resource_cfg.get("hosts") or []) <= 1:
        env["MASTER_ADDR"] = "127.0.0.1"  # algo-1 does not resolve outside a job network
        env["SM_MASTER_ADDR"] = env["MASTER_ADDR"]
    if paths.base != DEFAULT_BASE_DIR:
        # The toolkit's own `Environment()` (a script may build one) reads this tree, instead
        # of inventing ~/sagemaker_local/jobs/<time>/opt/ml with the machine's hostname.
        env["SAGEMAKER_BASE_DIR"] = paths.base
    env["PYTHONPATH"] = os.pathsep.join(p for p in [paths.code_dir, env.get("PYTHONPATH", "")] if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if opts.custom_driver:
        # The rest of V3's names come with every job (v3_environment); a custom driver has no
        # config fields of its own here, so an empty one (json.loads still works).
        env["SM_DISTRIBUTED_DRIVER_DIR"] = os.path.dirname(opts.custom_driver)
        env["SM_DISTRIBUTED_CONFIG"] = "{}"
    hosts = list(resource_cfg.get("hosts") or [])
    decoded_hps = decode_hyperparameters(hyperparameters)
    mpi = mpi_enabled(decoded_hps) and not command and not opts.custom_driver
    distributed = (
        opts.custom_driver
        or decoded_hps.get(TORCH_DISTRIBUTED_KEY) in (True, "true", "True")
        or mpi
    )
    if distributed and not opts.host_mode and len(hosts) > 1:
        # Peers must resolve before torchrun dials them; a non-distributed job must not wait,
        # since a peer that already finished has left the network's DNS.
        _wait_for_hosts(hosts)
    python = sys.executable or "python3"
    cmd = plan_command(
        paths,
        hyperparameters,
        resource_cfg,
        num_gpus,
        python,
        command=command,
        custom_driver=opts.custom_driver,
        host_mode=opts.host_mode,
    )
    if not command and not opts.custom_driver and cmd[1:3] == ["-m", "torch.distributed.run"]:
        env["NCCL_PROTO"] = "simple"  # TorchDistributedRunner._setup sets it for every torchrun
    for directory in (paths.model_dir, paths.output_data_dir, paths.output_intermediate_dir):
        os.makedirs(directory, exist_ok=True)
    try:
        if not opts.skip_requirements and not command:
            _install_requirements(paths.code_dir, python)
    except subprocess.CalledProcessError as exc:
        _write_once(
            paths.failure_file, "InstallRequirementsError: pip exited with %d" % exc.returncode
        )
        return 1
    if mpi and opts.host_mode and cmd[:1] == ["mpirun"] and not _which("mpirun"):
        _write_once(paths.failure_file, MPI_MISSING)
        print("trainer-gui driver: " + MPI_MISSING, file=sys.stderr)
        return 127
    per_host = processes_per_host(hyperparameters, num_gpus) if mpi else 0
    if mpi and not opts.host_mode and len(hosts) > 1 and cmd[:1] == ["mpirun"]:
        # (a host outside the distribution's instance group runs the script by itself)
        return _run_mpi(cmd, paths, env, resource_cfg, decoded_hps, opts.pid_file, per_host)
    return _run(cmd, paths, env, opts.pid_file, mpi_tags=per_host if cmd[:1] == ["mpirun"] else 0)


# -- MPI (distribution kind: mpi) -----------------------------------------------------------------
#
# As the toolkit's `mpi.py` runs it: on SageMaker and in local Docker, algo-1 (MasterRunner)
# starts sshd, waits until every other host's sshd answers, and runs `mpirun --host
# algo-1:P,algo-2:P ...`, whose daemons (orted) reach the other hosts over SSH; the other hosts
# (WorkerRunner) wait for algo-1's sshd, start their own, and exit once the orted that mpirun
# started on them has finished and algo-1 has said so. The keys are the job's own
# (core/runners/mpi_ssh.py), mounted read-only at SSH_DIR; nothing is written to ~/.ssh or /etc.
# The toolkit's workers write their environment to /etc/environment for the ranks' sessions;
# here it goes to a file in /tmp that a small launch agent loads before it execs orted, so a
# rank on algo-2 sees algo-2's environment overridden by mpirun's `-x` names, as there.

SSH_DIR = "/opt/trainer-gui/ssh"
MPI_STATE_DIR = "/tmp/trainer-gui-mpi"
MPI_DONE_FILE = "/tmp/done"  # + "." + master, as mpi.py's MPI_FINISHED_STATUS_FILE
MPI_MISSING = (
    "distribution kind mpi runs mpirun, and Open MPI is not installed on this machine: install "
    "it (Debian/Ubuntu: `sudo apt install openmpi-bin`, Fedora: `sudo dnf install openmpi`, "
    "macOS: `brew install open-mpi`) and mpi4py in the job's Python (`pip install mpi4py`)"
)
SSHD_MISSING = (
    "distribution kind mpi needs sshd in the image (Debian/Ubuntu: openssh-server, with "
    "openssh-client and openmpi-bin); trainer-gui/train-cpu has them"
)
#: SDK V3 names that the toolkit does not set: not among mpirun's `-x` names.
_V3_ONLY = (
    "SM_INPUT_DATA_DIR",
    "SM_OUTPUT_FAILURE",
    "SM_MASTER_ADDR",
    "SM_MASTER_PORT",
    "SM_SOURCE_DIR",
    "SM_ENTRY_SCRIPT",
    "SM_HOST_COUNT",
    "SM_CURRENT_HOST_RANK",
    "SM_DISTRIBUTED_CONFIG",
)


def mpi_enabled(decoded: Mapping[str, Any]) -> bool:
    return decoded.get(MPI_KEY) in (True, "true", "True")


def mpi_forwarded_names(env: Mapping[str, str], decoded: Mapping[str, Any]) -> list[str]:
    """The names MasterRunner passes with `-x`: the toolkit's `to_env_vars()` (its SM_*
    names) and PYTHONPATH, which `entry_point.run` adds to them."""
    user, _ = split_hyperparameters(decoded)
    v3_only = set(_V3_ONLY)
    v3_only.update(
        "SM_HP_" + key.replace("-", "_").upper() for key in user if key.replace("-", "_") != key
    )
    names = [k for k in env if k.startswith("SM_") and k not in v3_only]
    return [*names, "PYTHONPATH"]


def mpi_program(entry_point: str, args: Sequence[str], python: str) -> list[str]:
    """MasterRunner's program: `python -m mpi4py script args` (mpi4py makes every rank abort
    on an uncaught exception), a non-Python entry point through /bin/sh."""
    if entry_point.endswith(".py"):
        return [python, "-m", "mpi4py", entry_point, *args]
    return script_command(entry_point, args, python)


def parse_mpi_options(options: str) -> tuple[str, list[str]]:
    """`_parse_custom_mpi_options`: (NCCL_DEBUG, default INFO; the other options, in order)."""
    nccl_debug = "INFO"
    rest: list[str] = []
    tokens = options.split()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "--NCCL_DEBUG" and index + 1 < len(tokens):
            nccl_debug = tokens[index + 1]
            index += 2
            continue
        if token.startswith("--NCCL_DEBUG="):
            nccl_debug = token.partition("=")[2]
        else:
            rest.append(token)
        index += 1
    return nccl_debug, rest


def mpirun_command(
    hosts: Sequence[str],
    processes_per_host: int,
    decoded: Mapping[str, Any],
    interface: str,
    names: Sequence[str],
    program: Sequence[str],
    local: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """MasterRunner `_create_command`, option for option (its LD_PRELOAD of a gethostname shim
    aside: a container's hostname is already algo-N here). `local` (the local-process backend:
    one machine, no job network) runs `-np P` here, with no host list and no interface."""
    environ = os.environ if environ is None else environ
    nccl_debug, extra = parse_mpi_options(str(decoded.get(MPI_OPTIONS_KEY) or ""))
    num = decoded.get(MPI_NUM_PROCESSES_KEY)
    num_processes = int(num) if num else processes_per_host * len(hosts)
    cmd = ["mpirun"]
    if local:
        cmd += ["-np", str(processes_per_host), "--oversubscribe"]
    else:
        if processes_per_host == 1:
            host_list = list(hosts)
        else:
            host_list = ["%s:%s" % (host, processes_per_host) for host in hosts]
        cmd += ["--host", ",".join(host_list), "-np", str(num_processes)]
    cmd += ["--allow-run-as-root", "--display-map", "--tag-output"]
    if not local:
        cmd += ["-mca", "btl_tcp_if_include", interface, "-mca", "oob_tcp_if_include", interface]
    cmd += [
        "-mca", "plm_rsh_no_tree_spawn", "1",
        "-bind-to", "none",
        "-map-by", "slot",
        "-mca", "pml", "ob1",
        "-mca", "btl", "^openib",
        "-mca", "orte_abort_on_non_zero_status", "1",
        "-mca", "btl_vader_single_copy_mechanism", "none",
        "-x", "NCCL_MIN_NRINGS=4",
    ]  # fmt: skip
    if not local:
        cmd += ["-x", "NCCL_SOCKET_IFNAME=%s" % interface]
    cmd += ["-x", "NCCL_DEBUG=%s" % nccl_debug]
    # Unset, `-x LD_LIBRARY_PATH` only makes mpirun warn (the toolkit's images always set it).
    cmd += [*(["-x", "LD_LIBRARY_PATH"] if "LD_LIBRARY_PATH" in environ else []), "-x", "PATH"]
    cmd += extra
    for credential in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if credential in environ:
            cmd += ["-x", credential]
    for name in names:
        cmd += ["-x", name]
    return [*cmd, *program]


def mpi_tag_line(line: str, processes_per_host: int) -> str:
    """process.py `watch`: mpirun's `[1,5]<stdout>:` tag names the rank's host, as
    `[1,mpirank:5,algo-3]<stdout>:` (ranks fill the hosts in order, P each)."""
    if "]<std" not in line:
        return line
    import re

    def tag(match: Any) -> str:
        rank = int(match.group(2))
        host = rank // max(processes_per_host, 1) + 1
        return "[%s,mpirank:%d,algo-%d]<%s>" % (match.group(1), rank, host, match.group(3))

    tagged = re.sub(r"\[(\d),(\d+)\]<(stdout|stderr)>", tag, line)
    # Most lines carry one tag: only a line written in pieces has more to join.
    return _mpi_join_fragments(tagged) if line.count("]<std") > 1 else tagged


_MPI_TAG = r"\[\d+,mpirank:\d+,algo-\d+\]<std(?:out|err)>:"


def _mpi_join_fragments(line: str) -> str:
    """mpirun tags every write a rank makes, so a line Python's traceback writes in pieces reads
    `[t]:ValueError[t]:: [t]:bad shard[t]:`; the pieces of one rank join behind one tag (and
    another rank's pieces in the same line go on a line of their own), so the error line reads
    as the script wrote it and the failure reason can find it."""
    import re

    tags = re.findall(_MPI_TAG, line)
    if not tags:
        return line
    end = "\n" if line.endswith("\n") else ""
    body = line[: len(line) - len(end)]
    head = body[: body.index(tags[0])]
    pieces = re.split("(" + _MPI_TAG + ")", body[len(head) :])[1:]
    joined: dict[str, str] = {}
    for at in range(0, len(pieces) - 1, 2):  # (tag, text) pairs; no zip(strict=) before 3.10
        joined[pieces[at]] = joined.get(pieces[at], "") + pieces[at + 1]
    lines = [tag_text + text for tag_text, text in joined.items()]
    return head + "\n".join(lines) + end


def _ssh_answers(host: str, port: int = 22, timeout: float = 2.0) -> bool:
    """Whether an SSH server answers on host:port (its version banner), as `_can_connect`."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _start_sshd() -> subprocess.Popen[bytes]:
    """sshd on port 22 with the job's host key and authorized key, nothing from /etc/ssh:
    no PAM, no passwords, errors only on stderr."""
    sshd = "/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else _which("sshd")
    if not sshd:
        raise OSError(SSHD_MISSING)
    if os.getuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation folder
    options = {
        "HostKey": SSH_DIR + "/host_ed25519",
        "AuthorizedKeysFile": SSH_DIR + "/authorized_keys",
        "StrictModes": "no",  # the keys are mounted read-only, owned by the app's user
        "UsePAM": "no",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "PermitRootLogin": "prohibit-password",
        "PidFile": "none",
        # FATAL: the hosts' "is sshd up?" probes (a banner read, then close) would each log
        # a kex_exchange_identification error; a failed login shows in ssh's own message.
        "LogLevel": "FATAL",
    }
    cmd = [sshd, "-D", "-e", "-f", "/dev/null", "-p", "22"]
    for key, value in options.items():
        cmd += ["-o", "%s=%s" % (key, value)]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _ssh(host: str, *command: str) -> list[str]:
    return ["ssh", "-F", SSH_DIR + "/config", host, *command]


def _mpi_env(env: dict[str, str]) -> dict[str, str]:
    """mpirun's own settings: ssh with the job's client config, the launch agent below."""
    out = dict(env)
    out["OMPI_MCA_plm_rsh_agent"] = "ssh"
    out["OMPI_MCA_plm_rsh_args"] = "-F %s/config" % SSH_DIR
    out["OMPI_MCA_orte_launch_agent"] = MPI_STATE_DIR + "/orted"
    return out


def _write_launch_agent(env: Mapping[str, str], python: str) -> None:
    """This host's environment and the agent that applies it before orted (see above)."""
    os.makedirs(MPI_STATE_DIR, mode=0o700, exist_ok=True)
    with open(MPI_STATE_DIR + "/env.json", "w", encoding="utf-8") as fh:
        json.dump(dict(env), fh)
    agent = MPI_STATE_DIR + "/orted"
    with open(agent, "w", encoding="utf-8") as fh:
        fh.write(
            "#!%s -S\n"
            "import json, os, sys\n"
            "with open(%r, encoding='utf-8') as fh:\n"
            "    os.environ.update(json.load(fh))\n"
            "os.execvp('orted', ['orted'] + sys.argv[1:])\n" % (python, MPI_STATE_DIR + "/env.json")
        )
    os.chmod(agent, 0o700)


def _orted_running() -> bool:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid, encoding="utf-8") as fh:
                if fh.read().strip() == "orted":
                    return True
        except OSError:
            continue
    return False


def _run_mpi(
    cmd: list[str],
    paths: Paths,
    env: dict[str, str],
    resource_cfg: Mapping[str, Any],
    decoded: Mapping[str, Any],
    pid_file: str | None,
    per_host: int,
) -> int:
    """One host of a multi-host MPI job: the master runs mpirun, a worker hosts its ranks."""
    import time

    _, hosts, master = distribution_layout(decoded, resource_cfg)
    current = str(resource_cfg.get("current_host", master))
    python = sys.executable or "python3"
    try:
        if current != master:
            _write_launch_agent(env, python)
            while not _ssh_answers(master):  # WorkerRunner: the master's sshd comes first
                time.sleep(0.2)
        sshd = _start_sshd()
    except OSError as exc:
        _write_once(paths.failure_file, "ExecuteUserScriptError: %s" % exc)
        print("trainer-gui driver: %s" % exc, file=sys.stderr)
        return 1
    try:
        if current == master:
            for host in hosts:
                while host != master and not _ssh_answers(host):
                    time.sleep(0.2)
            code = _run(cmd, paths, _mpi_env(env), pid_file, mpi_tags=per_host)
            for host in hosts:  # "the launcher has finished": the workers may go
                if host != master:
                    subprocess.run(
                        _ssh(host, "touch", "%s.%s" % (MPI_DONE_FILE, master)),
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        timeout=30,
                        check=False,
                    )
            return code
        return _mpi_worker(master)
    finally:
        sshd.terminate()


def _mpi_worker(master: str) -> int:
    """WorkerRunner.run: wait for mpirun's orted here, then for it to finish, then for the
    master's word (its status file) or for the master to go away."""
    import time

    status = "%s.%s" % (MPI_DONE_FILE, master)
    print("trainer-gui driver: MPI worker, waiting for mpirun on %s" % master, file=sys.stderr)
    started = False
    checked = time.monotonic()
    while not os.path.exists(status):
        if _orted_running():
            started = True
        elif started:
            break  # orted has finished: the status file follows while the master answers
        elif time.monotonic() - checked > 2:
            checked = time.monotonic()
            if not _ssh_answers(master):
                return 0  # the master went away before it started anything here
        time.sleep(0.1)
    while not os.path.exists(status) and _ssh_answers(master):
        time.sleep(0.2)
    return 0


def _wait_for_hosts(hosts: Sequence[str], timeout: float = 900.0) -> None:
    """Like the toolkit: block until every host name resolves (DNS can lag container start)."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    for host in hosts:
        while True:
            try:
                socket.gethostbyname(host)
                break
            except OSError:
                if time.monotonic() > deadline:
                    print("trainer-gui driver: host %s does not resolve" % host, file=sys.stderr)
                    return
                time.sleep(0.05)  # a peer started in parallel shows up within ms


#: Set only in a driver the warm interpreter forked (`warm_server.py`, issue 18): starts a
#: `python script.py` command as a fork of that interpreter (torch already imported) and returns
#: a Popen-like child, or None for a command that needs a process of its own.
SPAWN: Any = None


def _run(
    cmd: list[str],
    paths: Paths,
    env: dict[str, str],
    pid_file: str | None = None,
    mpi_tags: int = 0,
) -> int:
    """Run the job's command; `mpi_tags` (MPI processes per host) also reads its stdout and
    retags mpirun's lines on both streams as the toolkit's `process.watch` does."""
    cwd = paths.code_dir if os.path.isdir(paths.code_dir) else None
    try:
        child = SPAWN(cmd, cwd, env) if SPAWN is not None and not mpi_tags else None
        if child is None:
            child = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE if mpi_tags else None,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
    except OSError as exc:
        _write_once(
            paths.failure_file, "ExecuteUserScriptError: cannot start %s: %s" % (cmd[0], exc)
        )
        print("trainer-gui driver: cannot start %s: %s" % (cmd[0], exc), file=sys.stderr)
        return 127
    if pid_file:
        try:
            write_pid_file(pid_file, child.pid)
        except OSError as exc:
            print("trainer-gui driver: cannot write %s: %s" % (pid_file, exc), file=sys.stderr)

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.killpg(child.pid, signum)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)

    tail: collections.deque[str] = collections.deque(maxlen=FAILURE_SCAN_LINES)

    def pump(stream: Any, out: Any, keep: bool) -> None:
        for raw in iter(stream.readline, b""):
            if mpi_tags:
                raw = mpi_tag_line(raw.decode("utf-8", "replace"), mpi_tags).encode("utf-8")
            out.write(raw)
            out.flush()
            if keep:  # one read may be lines of two ranks (see _mpi_join_fragments)
                tail.extend(raw.decode("utf-8", "replace").splitlines(keepends=True))

    streams = [(child.stderr, sys.stderr.buffer, True)]
    if mpi_tags:
        streams.append((child.stdout, sys.stdout.buffer, False))
    readers = [threading.Thread(target=pump, args=s, daemon=True) for s in streams]
    for reader in readers:
        reader.start()
    code = child.wait()
    for reader in readers:
        reader.join(timeout=5)
    if code < 0:
        code = 128 - code
    if code == 0:
        _write_once(paths.success_file, "")
    else:
        _write_once(paths.failure_file, _failure_text(code, list(tail), cmd))
    return code


if __name__ == "__main__":
    sys.exit(main())
