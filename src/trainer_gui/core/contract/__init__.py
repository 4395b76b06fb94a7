"""The SageMaker container contract, built from a job spec: files, environment, argv, torchrun.

Pure functions; the stdlib-only half lives in `toolkit` (it also runs inside containers).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from trainer_gui.core import safety
from trainer_gui.core.contract import toolkit
from trainer_gui.core.contract.toolkit import (
    DEFAULT_BASE_DIR,
    MASTER_PORT,
    Paths,
    build_environment,
    decode_hyperparameters,
    encode_hyperparameters,
    to_cmd_args,
    torchrun_command,
)
from trainer_gui.core.spec.model import JobSpec

__all__ = [
    "DEFAULT_BASE_DIR",
    "MASTER_PORT",
    "HostLayout",
    "Paths",
    "build_environment",
    "decode_hyperparameters",
    "driver_arguments",
    "driver_path",
    "encode_hyperparameters",
    "host_groups",
    "host_instance_type",
    "host_names",
    "input_data_config",
    "materialise_host",
    "resource_config",
    "sagemaker_hyperparameters",
    "sm_environment",
    "to_cmd_args",
    "torchrun_command",
    "v3_environment",
]

CONTAINER_CODE_DIR = "/opt/ml/code"


def driver_path() -> Path:
    """The driver script to run on the host or mount into plain images."""
    return Path(toolkit.__file__).resolve()


def host_names(spec: JobSpec) -> list[str]:
    """algo-1..N; with instance groups numbered across the groups, in their order."""
    return [f"algo-{i}" for i in range(1, spec.compute.host_count + 1)]


def host_groups(spec: JobSpec) -> list[tuple[str, str, list[str]]]:
    """(group name, instance type, hosts) per instance group; [] for a homogeneous cluster."""
    out: list[tuple[str, str, list[str]]] = []
    first = 1
    for group in spec.compute.instance_groups:
        hosts = [f"algo-{i}" for i in range(first, first + group.instance_count)]
        out.append((group.name, group.instance_type, hosts))
        first += group.instance_count
    return out


def host_instance_type(spec: JobSpec, host: str) -> str:
    """The instance type `host` has: its group's, or compute.instance_type."""
    for _, instance_type, hosts in host_groups(spec):
        if host in hosts:
            return instance_type
    return spec.compute.instance_type


#: The one line a local run of an smddp job says about how it runs.
SMDDP_LOCAL_NOTE = (
    "smddp (SageMaker's data-parallel library) runs only on SageMaker; here the job runs "
    "as torchrun"
)


def sagemaker_hyperparameters(
    spec: JobSpec,
    job_name: str,
    submit_directory: str = CONTAINER_CODE_DIR,
    region: str | None = None,
    cloud: bool = False,
) -> dict[str, str]:
    """The HyperParameters map as the V2 SDK sends it: user values JSON-encoded + sagemaker_*.

    smddp is SageMaker's own library: the request (`cloud`) enables it as the V2 SDK's
    `smdistributed: dataparallel` does; a local job gets torchrun's keys instead. With instance
    groups the V2 SDK has no top-level instance type: smddp sends null, torchrun none.
    """
    hps: dict[str, Any] = dict(spec.all_hyperparameters())
    if spec.source.entry_point and spec.source.command is None:
        hps["sagemaker_program"] = spec.source.entry_point
        hps["sagemaker_submit_directory"] = submit_directory
    hps["sagemaker_container_log_level"] = 20
    hps["sagemaker_job_name"] = job_name
    if region:
        hps["sagemaker_region"] = region
    kind = spec.distribution.kind
    grouped = bool(spec.compute.instance_groups)
    if kind == "smddp" and cloud:
        hps[toolkit.SMDDP_KEY] = True
        hps["sagemaker_instance_type"] = None if grouped else spec.compute.instance_type
        hps[toolkit.SMDDP_MPI_OPTIONS_KEY] = ""
    elif kind in ("torchrun", "smddp"):
        hps[toolkit.TORCH_DISTRIBUTED_KEY] = True
        if not grouped:
            hps["sagemaker_instance_type"] = spec.compute.instance_type
    if kind in ("torchrun", "smddp") and spec.distribution.processes_per_host:
        hps[toolkit.PROCESSES_PER_HOST_KEY] = spec.distribution.processes_per_host
    if kind == "mpi":  # the V2 SDK's `distribution={"mpi": {...}}`, key for key
        hps[toolkit.MPI_KEY] = True
        if spec.distribution.processes_per_host:
            hps[toolkit.PROCESSES_PER_HOST_KEY] = spec.distribution.processes_per_host
        hps[toolkit.MPI_OPTIONS_KEY] = spec.distribution.mpi_options or ""
    if grouped and kind not in ("none", "custom"):
        hps[toolkit.DISTRIBUTION_GROUPS_KEY] = spec.distribution_group_names()
    return encode_hyperparameters(hps)


def resource_config(spec: JobSpec, host: str) -> dict[str, Any]:
    return toolkit.resource_config(
        host, host_names(spec), spec.compute.instance_type, groups=host_groups(spec)
    )


def input_data_config(spec: JobSpec) -> dict[str, dict[str, str]]:
    channels: dict[str, str | None] = {c.name: c.content_type for c in spec.channels}
    if spec.distribution.kind == "custom":
        channels[DRIVERS_CHANNEL] = None
    return toolkit.input_data_config(channels)


DRIVERS_CHANNEL = "sm_drivers"
#: Where a custom distribution driver folder is seen inside a container.
CONTAINER_DRIVERS_DIR = PurePosixPath(DEFAULT_BASE_DIR, "input", "data", DRIVERS_CHANNEL)


def driver_arguments(spec: JobSpec, drivers_dir: PurePath = CONTAINER_DRIVERS_DIR) -> list[str]:
    """The driver's arguments after its own options: `--custom-driver` and `-- command...`.

    `drivers_dir` is where the job sees the custom driver folder: the container path, or the
    host folder for a job that runs on this machine.
    """
    args: list[str] = []
    if spec.distribution.kind == "custom" and spec.distribution.driver_script:
        args += ["--custom-driver", str(drivers_dir / spec.distribution.driver_script)]
    if spec.source.command is not None:
        args += ["--", *spec.source.command]
    return args


def sm_environment(
    spec: JobSpec,
    job_name: str,
    host: str,
    base_dir: str = DEFAULT_BASE_DIR,
    num_gpus: int = 0,
    num_cpus: int | None = None,
    region: str | None = None,
) -> dict[str, str]:
    """What the training script sees on `host` (the toolkit's SM_* plus MASTER_ADDR/PORT)."""
    return build_environment(
        Paths(base_dir),
        sagemaker_hyperparameters(spec, job_name, region=region),
        resource_config(spec, host),
        input_data_config(spec),
        num_gpus=num_gpus,
        num_cpus=num_cpus,
        environ={},
    )


def v3_environment(
    spec: JobSpec, job_name: str, host: str, base_dir: str = DEFAULT_BASE_DIR
) -> dict[str, str]:
    """SDK V3's names that the toolkit does not set, for an image whose toolkit starts the
    script (the driver adds them itself): given as the container's environment, which the
    toolkit passes on to the script."""
    decoded = decode_hyperparameters(sagemaker_hyperparameters(spec, job_name))
    hosts = host_names(spec)
    user, _ = toolkit.split_hyperparameters(decoded)
    toolkit_names = {"SM_HP_" + key.upper() for key in user}
    _, _, master = toolkit.distribution_layout(decoded, resource_config(spec, host))
    v3 = toolkit.v3_environment(Paths(base_dir), decoded, hosts, host, master)
    return {key: value for key, value in v3.items() if key not in toolkit_names}


@dataclass(frozen=True)
class HostLayout:
    """One host's /opt/ml tree on the local disk."""

    host: str
    root: Path

    @property
    def paths(self) -> Paths:
        return Paths(str(self.root))

    def channel_dir(self, name: str) -> Path:
        """Refuses a name that is not one plain folder (`.` would be input/data itself)."""
        return self.root / "input" / "data" / safety.path_component(name, "channel name")

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def failure_reason(self) -> str | None:
        path = self.output_dir / "failure"
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")[:1024]
        return None

    def succeeded(self) -> bool:
        return (self.output_dir / "success").is_file()


def materialise_host(
    spec: JobSpec,
    job_name: str,
    host: str,
    root: Path,
    region: str | None = None,
    seen_as: str = DEFAULT_BASE_DIR,
    run_dir: Path | None = None,
) -> HostLayout:
    """Create `root` as host's /opt/ml: the folders and the three config JSON files.

    `seen_as` is where the job sees this tree: /opt/ml in a container, `root` itself on the host.
    Nothing is written outside `run_dir` (the job's run folder; `root` itself if not given).
    """
    run_dir = root if run_dir is None else run_dir
    layout = HostLayout(safety.path_component(host, "host name"), root)
    for sub in (
        layout.config_dir,
        root / "input" / "data",
        layout.model_dir,
        layout.output_dir / "data",
        layout.output_dir / "intermediate",
        layout.code_dir,
        layout.checkpoints_dir,
    ):
        safety.make_dirs(run_dir, sub)
    files = {
        "hyperparameters.json": sagemaker_hyperparameters(
            spec, job_name, submit_directory=toolkit.Paths(seen_as).code_dir, region=region
        ),
        "resourceconfig.json": resource_config(spec, host),
        "inputdataconfig.json": input_data_config(spec),
    }
    for name, content in files.items():
        target = safety.write_text(
            run_dir, layout.config_dir / name, json.dumps(content, indent=2, sort_keys=False)
        )
        if os.name != "nt":
            target.chmod(0o644)
    return layout
