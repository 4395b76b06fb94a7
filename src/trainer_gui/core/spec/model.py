"""The job spec: one pydantic model that forms, YAML, the CLI and SageMaker requests derive from.

Limits mirror CreateTrainingJob (botocore service model) so a spec that validates here is
accepted by SageMaker too. Every message says which field is wrong and how to fix it.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
CHANNEL_NAME_RE = re.compile(r"^[A-Za-z0-9.\-_]+$")
ENV_KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")

MAX_HYPERPARAMETERS = 100
MAX_HP_KEY = 256
MAX_HP_VALUE = 2500
MAX_METRIC_DEFINITIONS = 40
MAX_CHANNELS = 20
MAX_ENVIRONMENT = 100
MAX_RUNTIME_LIMIT = 28 * 24 * 3600
RESERVED_HP_PREFIX = "sagemaker_"

HyperValue = str | int | float | bool | None | list[Any] | dict[str, Any]


def _not_bool(value: Any) -> Any:
    """pydantic takes `true` for 1; in a count or a limit that is a mistake, not a number."""
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a number; give a whole number")
    return value


WholeNumber = Annotated[int, BeforeValidator(_not_bool)]


class Backend(str, enum.Enum):
    LOCAL_PROCESS = "local-process"
    DOCKER = "docker"
    SAGEMAKER = "sagemaker"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        use_enum_values=False,
        populate_by_name=True,
    )


def _base_dir(info: ValidationInfo) -> Path | None:
    ctx = info.context or {}
    base = ctx.get("base_dir")
    return Path(base) if base else None


def _check_exists(value: str | None, info: ValidationInfo, what: str, want_dir: bool) -> None:
    """Check a local path against the spec file's folder, when the caller gave one."""
    if value is None or is_remote(value):
        return
    base = _base_dir(info)
    if base is None:
        return
    path = resolve_path(base, value)
    kind = _path_kind(path, what, value)
    if kind is None:
        raise ValueError(f"{what} {value!r} does not exist (looked at {path}); fix the path")
    if want_dir and kind != "dir":
        raise ValueError(f"{what} {value!r} is a file; give a folder")
    if not want_dir and kind == "dir":
        raise ValueError(f"{what} {value!r} is a folder; give a file")


def _path_kind(path: Path, what: str, value: str) -> Literal["dir", "file"] | None:
    """'dir', 'file' (or anything else there), or None when nothing is there.

    A path the OS cannot even look up (too long, a NUL byte) is a ValueError naming it, so the
    spec gets a clear problem line instead of an OSError from deep inside validation.
    """
    try:
        if path.is_dir():
            return "dir"
        return "file" if path.exists() else None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(f"{what} {shown!r} cannot be looked up: {reason}") from None


def check_script_path(value: str | None, what: str, folder: str) -> str | None:
    """A script named relative to its folder must stay inside it: not absolute, no `..`.

    Checked the way both POSIX and Windows read it, since the spec may be written on one and
    run on the other (`/bin/sh`, `C:\\x`, `..\\..\\etc` are all refused).
    """
    if value is None:
        return value
    if not value.strip():
        raise ValueError(f"{what} is empty; name a script inside the {folder}")
    for pure in (PurePosixPath(value), PureWindowsPath(value)):
        if pure.anchor or ".." in pure.parts:
            raise ValueError(f"{what} {value!r} must be a path inside the {folder}, e.g. train.py")
    return value


def _check_script_in_folder(
    info: ValidationInfo, folder: str, script: str, what: str, folder_word: str
) -> None:
    """With a base folder known, the script must be a file inside the (local) folder."""
    base = _base_dir(info)
    if base is None or is_remote(folder):
        return
    path = resolve_path(base, folder) / script
    if _path_kind(path, what, script) != "file":
        raise ValueError(f"{what} {script!r} is not in the {folder_word} ({path} does not exist)")


def is_remote(value: str) -> bool:
    return value.startswith("s3://")


def resolve_path(base: Path | None, value: str) -> Path:
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # ~name of a user this machine does not know
        raise ValueError(f"{value!r}: no home folder for {value.split('/')[0]!r}") from None
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


class SourceSpec(_Model):
    """What runs: a script in a source folder (SageMaker script mode) or a plain command."""

    source_dir: str | None = Field(
        None,
        title="Source folder",
        description="Folder with your training code; packed and sent as-is.",
    )
    entry_point: str | None = Field(
        None, title="Entry script", description="Script inside the source folder, e.g. train.py."
    )
    requirements: str | None = Field(
        None,
        title="requirements.txt",
        description="Extra packages to install before the job starts (a per-job venv locally).",
    )
    dependencies: list[str] = Field(
        default_factory=list,
        title="Extra dependency folders",
        description="Folders copied next to your code so it can import them.",
    )
    command: list[str] | None = Field(
        None,
        title="Command",
        description="Run this command instead of a script (no hyperparameter arguments are added).",
    )

    @field_validator("source_dir")
    @classmethod
    def _source_dir_exists(cls, v: str | None, info: ValidationInfo) -> str | None:
        _check_exists(v, info, "source folder", want_dir=True)
        return v

    @field_validator("requirements")
    @classmethod
    def _requirements_exists(cls, v: str | None, info: ValidationInfo) -> str | None:
        _check_exists(v, info, "requirements file", want_dir=False)
        return v

    @field_validator("dependencies")
    @classmethod
    def _deps_exist(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for dep in v:
            _check_exists(dep, info, "dependency folder", want_dir=True)
        return v

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or not v[0].strip()):
            raise ValueError("command is empty; give the program and its arguments, or remove it")
        return v

    @field_validator("entry_point")
    @classmethod
    def _entry_point_relative(cls, v: str | None) -> str | None:
        return check_script_path(v, "entry script", "source folder")

    @model_validator(mode="after")
    def _script_or_command(self, info: ValidationInfo) -> SourceSpec:
        if self.command is None:
            if not self.source_dir or not self.entry_point:
                raise ValueError("give source_dir and entry_point (a script to run), or a command")
            _check_script_in_folder(
                info, self.source_dir, self.entry_point, "entry script", "source folder"
            )
        return self


#: Instance types SageMaker's data-parallel library (smddp) runs on: the SageMaker Python SDK's
#: `fw_utils.SM_DATAPARALLEL_SUPPORTED_INSTANCE_TYPES` (v2.257), less its "local_gpu".
SMDDP_INSTANCE_TYPES = ("ml.p3.16xlarge", "ml.p3dn.24xlarge", "ml.p4d.24xlarge", "ml.p4de.24xlarge")
#: PyTorch versions whose SageMaker images carry it: the SDK's
#: `SM_DATAPARALLEL_SUPPORTED_FRAMEWORK_VERSIONS["pytorch"]` (v2.257), checked where the app picks
#: the image (a custom image is the user's call, as in the SDK).
SMDDP_PYTORCH_VERSIONS = (
    "1.6", "1.6.0", "1.7", "1.7.1", "1.8", "1.8.0", "1.8.1", "1.9", "1.9.0", "1.9.1", "1.10",
    "1.10.0", "1.10.2", "1.11", "1.11.0", "1.12", "1.12.0", "1.12.1", "1.13.1", "2.0.0", "2.0.1",
    "2.1.0", "2.1.2", "2.2.0",
)  # fmt: skip
INSTANCE_TYPE_PATTERN = (
    r"^(ml\.[a-z0-9][a-z0-9-]*\.[a-z0-9]+|local|local_gpu)$"  # ml.c7i-flex.xlarge
)
MAX_HOSTS = 100


class InstanceGroupSpec(_Model):
    """One instance group of a heterogeneous cluster (CreateTrainingJob's InstanceGroup)."""

    name: str = Field(
        ...,
        title="Group name",
        description="The script sees it as SM_CURRENT_INSTANCE_GROUP (1-64 characters).",
    )
    instance_type: str = Field(
        ..., title="Instance type", description="This group's type.", pattern=INSTANCE_TYPE_PATTERN
    )
    instance_count: WholeNumber = Field(
        1, ge=1, le=MAX_HOSTS, title="Instance count", description="Hosts in this group."
    )

    @field_validator("name")
    @classmethod
    def _name_per_service_model(cls, v: str) -> str:
        # InstanceGroupName: 1-64 characters, pattern ".+" (no line breaks).
        if not v or len(v) > 64 or not re.fullmatch(r".+", v) or not v.strip():
            raise ValueError(
                f"instance group name {v[:70]!r} must be 1-64 characters on one line "
                "(e.g. trainers)"
            )
        return v


class ComputeSpec(_Model):
    """Where and on how much hardware the job runs."""

    backend: Backend = Field(
        Backend.LOCAL_PROCESS,
        title="Backend",
        description="local-process (no Docker needed), docker (local containers) or sagemaker.",
    )
    instance_type: str = Field(
        "ml.m5.xlarge",
        title="Instance type",
        description="SageMaker instance type; local backends report it to the script as "
        "SM_CURRENT_INSTANCE_TYPE.",
        pattern=INSTANCE_TYPE_PATTERN,
    )
    instance_count: WholeNumber = Field(
        1, ge=1, le=MAX_HOSTS, title="Instance count", description="Hosts algo-1..N."
    )
    instance_groups: list[InstanceGroupSpec] = Field(
        default_factory=list,
        title="Instance groups",
        description="A heterogeneous cluster: groups of hosts of their own type (instead of "
        "instance type and count); hosts are algo-1..N across the groups, in order.",
    )
    gpus: Annotated[int | Literal["all"], BeforeValidator(_not_bool)] = Field(
        0,
        title="GPUs per host",
        description="Local backends: GPUs to give each host (a count, or 'all'); 0 for CPU.",
    )
    volume_size_gb: WholeNumber = Field(
        30, ge=1, le=16384, title="Volume size (GB)", description="SageMaker storage per instance."
    )

    @field_validator("gpus")
    @classmethod
    def _gpus_non_negative(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("GPUs must be 0 or more, or 'all'")
        return v

    @field_validator("instance_type")
    @classmethod
    def _a_training_type_on_sagemaker(cls, v: str, info: ValidationInfo) -> str:
        """Locally the type is only a label; SageMaker refuses any but its training types."""
        if info.data.get("backend") == Backend.SAGEMAKER and v.startswith("ml."):
            from trainer_gui.core.spec import limits

            problem = limits.instance_type_problem(v)
            if problem:
                raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _groups(self) -> ComputeSpec:
        """Instance groups per the service model (InstanceGroups: at most 5; names unique)."""
        groups = self.instance_groups
        if not groups:
            return self
        from trainer_gui.core.spec import limits

        most = limits.max_of("ResourceConfig", "InstanceGroups")
        if len(groups) > most:
            raise ValueError(f"{len(groups)} instance groups; SageMaker accepts at most {most}")
        if self.instance_count != 1:
            raise ValueError(
                "instance_count and instance_groups exclude each other: give each group its "
                "instance_count and leave compute.instance_count at 1"
            )
        names = [g.name for g in groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"instance group name {dupes[0]!r} is used twice; rename one")
        total = sum(g.instance_count for g in groups)
        if total > MAX_HOSTS:
            raise ValueError(f"the instance groups have {total} hosts; at most {MAX_HOSTS}")
        if self.backend == Backend.SAGEMAKER:
            for group in groups:
                problem = limits.instance_type_problem(group.instance_type)
                if problem:
                    raise ValueError(f"instance group {group.name!r}: {problem}")
        return self

    @property
    def image_instance_type(self) -> str:
        """The type that picks the framework image (CPU or GPU): with instance groups, the first
        GPU group's, else the first group's, as the SageMaker SDK's `_get_instance_type`."""
        for group in self.instance_groups:
            if re.match(r"^ml\.[gp]", group.instance_type):
                return group.instance_type
        if self.instance_groups:
            return self.instance_groups[0].instance_type
        return self.instance_type

    @property
    def instance_types(self) -> list[str]:
        """Each instance type the job runs on, once: the groups' or instance_type."""
        return list(dict.fromkeys(g.instance_type for g in self.instance_groups)) or [
            self.instance_type
        ]

    @property
    def host_count(self) -> int:
        """Hosts algo-1..N: the groups' counts added up, or instance_count."""
        if self.instance_groups:
            return sum(g.instance_count for g in self.instance_groups)
        return self.instance_count


class DistributionSpec(_Model):
    """How processes are launched on each host (SageMaker's `distribution`)."""

    kind: Literal["none", "torchrun", "mpi", "smddp", "custom"] = Field(
        "none",
        title="Distribution",
        description="none: one process per host; torchrun: torch.distributed across all hosts; "
        "mpi: mpirun from the first host over SSH to all hosts; "
        "smddp: SageMaker's data-parallel library (on SageMaker; torchrun locally); "
        "custom: run your own driver script.",
    )
    processes_per_host: WholeNumber | None = Field(
        None,
        ge=1,
        le=128,
        title="Processes per host",
        description="torchrun --nproc_per_node, or MPI processes per host; empty means one "
        "per GPU, or 1 on CPU.",
    )
    mpi_options: str | None = Field(
        None,
        max_length=2048,
        title="Extra mpirun options",
        description="MPI: added to the mpirun command line (SageMaker's custom_mpi_options), "
        "e.g. '--NCCL_DEBUG WARN -x MY_VAR=1'.",
    )
    driver_dir: str | None = Field(
        None, title="Driver folder", description="Custom distribution: folder with your driver."
    )
    driver_script: str | None = Field(
        None, title="Driver script", description="Custom distribution: script in the driver folder."
    )
    instance_groups: list[str] = Field(
        default_factory=list,
        title="Distributed instance groups",
        description="With instance groups: the group that runs the distribution (the SDK's "
        "distribution['instance_groups']); the other groups run the script once per host.",
    )

    @field_validator("driver_dir")
    @classmethod
    def _driver_dir_exists(cls, v: str | None, info: ValidationInfo) -> str | None:
        _check_exists(v, info, "driver folder", want_dir=True)
        return v

    @field_validator("driver_script")
    @classmethod
    def _driver_script_relative(cls, v: str | None) -> str | None:
        return check_script_path(v, "driver script", "driver folder")

    @model_validator(mode="after")
    def _custom_needs_driver(self, info: ValidationInfo) -> DistributionSpec:
        if self.kind == "custom" and not (self.driver_dir and self.driver_script):
            raise ValueError("a custom distribution needs driver_dir and driver_script")
        if self.kind != "custom" and (self.driver_dir or self.driver_script):
            raise ValueError(
                "driver_dir and driver_script only apply to kind: custom; set kind or remove them"
            )
        if self.kind != "mpi" and self.mpi_options:
            raise ValueError("mpi_options only apply to kind: mpi; set kind or remove them")
        if self.driver_dir and self.driver_script:
            _check_script_in_folder(
                info, self.driver_dir, self.driver_script, "driver script", "driver folder"
            )
        return self


class ChannelSpec(_Model):
    """One input channel, mounted at /opt/ml/input/data/<name>."""

    name: str = Field(
        ...,
        title="Channel name",
        description="Letters, digits, '.', '-' and '_' (e.g. train, test); the script sees "
        "it as SM_CHANNEL_<NAME>.",
    )
    source: str = Field(..., title="Data", description="A local folder or file, or an s3:// URI.")
    content_type: str | None = Field(None, title="Content type", description="e.g. text/csv.")
    input_mode: Literal["File", "FastFile", "Pipe"] = Field(
        "File", title="Input mode", description="Local backends support File only."
    )

    @field_validator("name")
    @classmethod
    def _name_pattern(cls, v: str) -> str:
        # SageMaker's ChannelName: [A-Za-z0-9\.\-_]+, 1-64 characters (fullmatch: no "\n").
        if not v or len(v) > 64 or not CHANNEL_NAME_RE.fullmatch(v):
            raise ValueError(
                f"channel name {v!r} must be 1-64 letters, digits, '.', '-' or '_' (e.g. train)"
            )
        if v in (".", ".."):  # SageMaker's pattern allows them; as a folder they are not one
            raise ValueError(
                f"channel name {v!r} is not a folder name; use letters or digits (e.g. train)"
            )
        return v

    @field_validator("source")
    @classmethod
    def _source_exists(cls, v: str, info: ValidationInfo) -> str:
        if not v.strip():
            raise ValueError("data source is empty; give a folder, a file or an s3:// URI")
        if is_remote(v):
            if not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", v):
                raise ValueError(f"{v!r} is not a valid s3:// URI (s3://bucket/prefix)")
            return v
        if "://" in v:
            raise ValueError(f"{v!r}: only local paths and s3:// URIs are supported")
        base = _base_dir(info)
        if base is not None and _path_kind(resolve_path(base, v), "data path", v) is None:
            raise ValueError(
                f"data path {v!r} does not exist (looked at {resolve_path(base, v)}); fix the path"
            )
        return v


class MetricDefinition(_Model):
    """A regex whose one capture group is the metric's value (SageMaker MetricDefinitions)."""

    name: str = Field(..., min_length=1, max_length=255, title="Name")
    regex: str = Field(..., min_length=1, max_length=500, title="Regex")

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"regex {v!r} does not compile: {exc}") from None
        if compiled.groups != 1:
            raise ValueError(
                f"regex {v!r} has {compiled.groups} capture groups; it needs exactly one "
                "around the value, e.g. loss=([0-9.]+) (use (?:...) for other groups)"
            )
        return v


#: AWS Batch (SubmitServiceJob): a job queue name (or its ARN), share identifiers, priorities.
BATCH_QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
BATCH_QUEUE_ARN_RE = re.compile(
    r"^arn:aws[a-z\-]*:batch:[a-z]{2}(-[a-z]+)+-\d:\d{12}:job-queue/[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
)
BATCH_SHARE_RE = re.compile(r"^[A-Za-z0-9]{1,255}\*?$")
BATCH_PRIORITY_MAX = 9999
#: Batch's RetryStrategy.attempts range (1-10).
BATCH_ATTEMPTS_MAX = 10
#: A quota share name as other Batch names: letters, digits, hyphens, underscores.
BATCH_QUOTA_SHARE_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
#: ServiceJobEvaluateOnExit.onStatusReason: a glob of up to 512 printable characters.
BATCH_REASON_MAX = 512
#: evaluateOnExit rules per job: Batch's documented limit for a RetryStrategy (5); botocore's
#: model states none for service jobs.
BATCH_RULES_MAX = 5


class BatchRetryRule(_Model):
    """One AWS Batch `evaluateOnExit` rule of a SageMaker service job: what Batch does when an
    attempt ends with a status reason that matches (the first matching rule wins)."""

    action: Literal["RETRY", "EXIT"] = Field(
        title="Action",
        description="RETRY runs the job again (while attempts are left); EXIT ends it.",
    )
    on_status_reason: str = Field(
        validation_alias=AliasChoices("on_status_reason", "onStatusReason"),
        title="On status reason",
        description="A glob matched against the attempt's status reason: the exact text, or "
        "its start followed by * (e.g. 'Received status from SageMaker:InternalServerError*'; "
        "* alone matches any reason).",
    )

    @model_validator(mode="before")
    @classmethod
    def _service_job_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            other = [
                k for k in ("onReason", "onExitCode", "on_reason", "on_exit_code") if k in data
            ]
            if other:
                verb = "applies" if len(other) == 1 else "apply"
                raise ValueError(
                    f"{' and '.join(other)} {verb} to Batch container jobs; a SageMaker service "
                    "job's rule matches only on_status_reason (the training job's failure reason)"
                )
        return data

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().upper() in ("RETRY", "EXIT"):
            return v.strip().upper()
        raise ValueError(f"{v!r} is no action: give RETRY or EXIT")

    @field_validator("on_status_reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if not v:
            raise ValueError("give the status reason to match, or * for any reason")
        if len(v) > BATCH_REASON_MAX:
            raise ValueError(
                f"the pattern is {len(v)} characters; Batch takes at most {BATCH_REASON_MAX}"
            )
        if not v.isprintable():
            bad = next(ch for ch in v if not ch.isprintable())
            raise ValueError(f"{bad!r} is not a printable character; Batch takes only those")
        if "*" in v[:-1]:
            raise ValueError(
                f"{_short(v)!r} has a * before its end; Batch's pattern is the exact reason or "
                "its start followed by one * at the end"
            )
        return v


def _short(value: str, limit: int = 40) -> str:
    """A value short enough to quote in a message (the rule after it must stay readable)."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


class SageMakerSettings(_Model):
    """Cloud-only settings. Never holds credentials: those come from boto3's chain."""

    role_arn: str | None = Field(
        None, title="Execution role ARN", description="IAM role SageMaker assumes for the job."
    )
    region: str | None = Field(None, title="Region", description="e.g. us-east-1.")
    profile: str | None = Field(
        None, title="AWS profile", description="Named profile from your AWS config."
    )
    tags: dict[str, str] = Field(default_factory=dict, title="Tags")
    framework_version: str = Field(
        "2.5", title="PyTorch version", description="Picks the SageMaker PyTorch image."
    )
    py_version: str = Field("py311", title="Python version", pattern=r"^py3\d+$")
    s3_prefix: str | None = Field(
        None,
        title="S3 prefix",
        description="s3://bucket/prefix for code, data and outputs; default: the SageMaker "
        "default bucket.",
    )
    batch_queue: str | None = Field(
        None,
        title="AWS Batch queue",
        description="Submit through this SageMaker Training job queue (name or ARN); empty "
        "creates the training job directly.",
    )
    batch_priority: int | None = Field(  # plain int: the form gives it a spin box
        None,
        ge=0,
        le=BATCH_PRIORITY_MAX,
        title="Batch priority",
        description="Scheduling priority in the queue (0-9999, higher runs first).",
    )
    batch_share_identifier: str | None = Field(
        None,
        title="Batch share identifier",
        description="Fair-share identifier; needed when the queue has a fair-share policy.",
    )
    batch_quota_share: str | None = Field(
        None,
        title="Batch quota share",
        description="Quota share name; needed when the queue has a quota-share policy.",
    )
    batch_retry_attempts: int | None = Field(
        None,
        ge=1,
        le=BATCH_ATTEMPTS_MAX,
        title="Batch attempts",
        description="Times AWS Batch runs the job (1-10); it retries only on SageMaker's "
        "internal errors, as the SDK's TrainingQueue does. Empty: 1.",
    )
    batch_preemption_retries: int | None = Field(
        None,
        ge=0,
        title="Batch preemption retries",
        description="Times a preempted job is queued again before it ends; empty: no limit.",
    )
    batch_retry_rules: list[BatchRetryRule] | None = Field(
        None,
        title="Batch retry rules",
        description="When AWS Batch retries a failed attempt (evaluateOnExit; up to 5, the "
        "first match wins; needs 2 or more attempts to retry), e.g. [{action: RETRY, "
        "on_status_reason: 'Received status from SageMaker:CapacityError*'}, {action: EXIT, "
        "on_status_reason: '*'}]. Empty: retry only on SageMaker's internal errors, as the "
        "SDK's TrainingQueue does.",
    )

    @field_validator("batch_queue")
    @classmethod
    def _batch_queue(cls, v: str | None) -> str | None:
        if v and not (BATCH_QUEUE_NAME_RE.match(v) or BATCH_QUEUE_ARN_RE.match(v)):
            raise ValueError(
                f"{_short(v)!r} is not an AWS Batch job queue: give its name (up to 128 "
                "letters, digits, hyphens and underscores) or its ARN "
                "(arn:aws:batch:<region>:<account>:job-queue/<name>)"
            )
        return v or None

    @field_validator("batch_priority", mode="before")
    @classmethod
    def _batch_priority(cls, v: Any) -> Any:
        return _not_bool(v)

    @field_validator("batch_share_identifier")
    @classmethod
    def _batch_share(cls, v: str | None) -> str | None:
        if v and not BATCH_SHARE_RE.match(v):
            raise ValueError(
                f"{_short(v)!r} is not a Batch share identifier: up to 255 letters and digits, "
                "optionally followed by *"
            )
        return v or None

    @field_validator("batch_quota_share")
    @classmethod
    def _batch_quota_share(cls, v: str | None) -> str | None:
        if v and not BATCH_QUOTA_SHARE_RE.match(v):
            raise ValueError(
                f"{_short(v)!r} is not a Batch quota share name: up to 255 letters, digits, "
                "hyphens and underscores"
            )
        return v or None

    @field_validator("batch_retry_attempts", "batch_preemption_retries", mode="before")
    @classmethod
    def _batch_counts(cls, v: Any) -> Any:
        return _not_bool(v)

    @field_validator("batch_retry_rules")
    @classmethod
    def _batch_rules(cls, v: list[BatchRetryRule] | None) -> list[BatchRetryRule] | None:
        if v and len(v) > BATCH_RULES_MAX:
            raise ValueError(f"{len(v)} rules; AWS Batch takes at most {BATCH_RULES_MAX}")
        return v or None

    @model_validator(mode="after")
    def _batch_settings_need_a_queue(self) -> SageMakerSettings:
        if self.batch_share_identifier and self.batch_quota_share:
            raise ValueError(
                "batch_share_identifier and batch_quota_share exclude each other: a queue has "
                "a fair-share or a quota-share policy; give the one your queue uses"
            )
        if not self.batch_queue:
            named = [
                name
                for name in (
                    "batch_priority",
                    "batch_share_identifier",
                    "batch_quota_share",
                    "batch_retry_attempts",
                    "batch_preemption_retries",
                    "batch_retry_rules",
                )
                if getattr(self, name) is not None
            ]
            if named:
                verb = "applies" if len(named) == 1 else "apply"
                raise ValueError(
                    f"{' and '.join(named)} only {verb} with batch_queue; name the AWS Batch "
                    "queue or clear it"
                )
        rules = self.batch_retry_rules or []
        if any(r.action == "RETRY" for r in rules) and (self.batch_retry_attempts or 1) < 2:
            raise ValueError(
                "batch_retry_rules: a RETRY rule needs batch_retry_attempts of 2 or more (with "
                "one attempt Batch never retries); set the attempts or make the rules EXIT"
            )
        return self

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, v: str | None) -> str | None:
        if v and not ROLE_ARN_RE.match(v):
            raise ValueError(f"{v!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/Name)")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v and not REGION_RE.match(v):
            raise ValueError(f"{v!r} is not an AWS region name (e.g. us-east-1)")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        from trainer_gui.core.spec import limits  # the service model's lengths and characters

        problems = limits.tag_problems(v) if v else []
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("s3_prefix")
    @classmethod
    def _s3_prefix(cls, v: str | None) -> str | None:
        if v and not v.startswith("s3://"):
            raise ValueError(f"{v!r} must start with s3://")
        if v and not v[5:].partition("/")[0]:
            raise ValueError(f"{v!r} has no bucket name (s3://bucket/prefix)")
        return v


class JobSpec(_Model):
    """Everything a training job is: the one source of truth for forms, YAML, CLI and requests."""

    name: str = Field(
        ...,
        title="Job name",
        description="Letters, digits and hyphens, starting with a letter or digit (at most 63).",
    )
    description: str = Field("", title="Description")
    source: SourceSpec = Field(..., title="Source")
    image: str | None = Field(
        None,
        title="Image",
        description="Docker image or ECR URI; empty picks the project's training image.",
    )
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    distribution: DistributionSpec = Field(default_factory=DistributionSpec)
    channels: list[ChannelSpec] = Field(default_factory=list, title="Input channels")
    hyperparameters: dict[str, HyperValue] = Field(
        default_factory=dict,
        title="Hyperparameters",
        description="Passed as --key value arguments and SM_HP_<KEY> variables.",
    )
    hyperparameters_file: str | None = Field(
        None,
        title="Hyperparameters file",
        description="JSON or YAML file with more hyperparameters; values above win.",
    )
    environment: dict[str, str] = Field(default_factory=dict, title="Environment variables")
    max_runtime_seconds: WholeNumber = Field(
        86400,
        ge=1,
        le=MAX_RUNTIME_LIMIT,
        title="Max runtime (s)",
        description="The job is stopped after this long (SageMaker StoppingCondition).",
    )
    checkpoint_dir: str | None = Field(
        None,
        title="Checkpoint folder",
        description="Kept between runs and mounted at /opt/ml/checkpoints (or an s3:// URI).",
    )
    checkpoint_s3_uri: str | None = Field(None, title="Checkpoint S3 URI")
    metric_definitions: list[MetricDefinition] = Field(
        default_factory=list, title="Metric definitions"
    )
    output_path: str | None = Field(
        None,
        title="Output location",
        description="Where model.tar.gz and output.tar.gz go: a local folder or s3:// URI; "
        "empty keeps them in the job's run folder.",
    )
    tensorboard: bool = Field(
        False,
        title="TensorBoard on SageMaker",
        description="Upload /opt/ml/output/tensorboard while a SageMaker job runs "
        "(TensorBoardOutputConfig), so its scalars are read live; local jobs' files are "
        "always read.",
    )
    sagemaker: SageMakerSettings = Field(default_factory=SageMakerSettings)

    _base_dir: Path | None = PrivateAttr(default=None)

    # -- field checks -----------------------------------------------------------------------

    @field_validator("name")
    @classmethod
    def _name_pattern(cls, v: str) -> str:
        if not JOB_NAME_RE.match(v):
            raise ValueError(
                f"job name {v!r} must be 1-63 letters, digits and hyphens, start with a letter or "
                "digit and not end with a hyphen (e.g. mnist-small)"
            )
        return v

    @field_validator("image")
    @classmethod
    def _image_length(cls, v: str | None) -> str | None:
        if v is not None:
            from trainer_gui.core.spec import limits

            most = limits.max_image_uri()
            if len(v) > most:
                raise ValueError(
                    f"the image is {len(v)} characters; SageMaker takes image URIs of at most "
                    f"{most} (AlgorithmSpecification.TrainingImage)"
                )
        return v

    @field_validator("channels", mode="before")
    @classmethod
    def _channels_from_mapping(cls, v: Any) -> Any:
        """Accept `{train: path}` or `{train: {source: path}}` as well as a list."""
        if isinstance(v, dict):
            out = []
            for name, item in v.items():
                if isinstance(item, dict):
                    out.append({"name": name, **item})
                else:
                    out.append({"name": name, "source": item})
            return out
        return v

    @field_validator("channels")
    @classmethod
    def _channels_unique(cls, v: list[ChannelSpec]) -> list[ChannelSpec]:
        if len(v) > MAX_CHANNELS:
            raise ValueError(f"{len(v)} channels; SageMaker accepts at most {MAX_CHANNELS}")
        seen: set[str] = set()
        for ch in v:
            if ch.name in seen:
                raise ValueError(f"channel name {ch.name!r} is used twice; rename one")
            seen.add(ch.name)
        return v

    @field_validator("hyperparameters")
    @classmethod
    def _hp_limits(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_hyperparameters(v)
        return v

    @field_validator("hyperparameters_file")
    @classmethod
    def _hp_file_exists(cls, v: str | None, info: ValidationInfo) -> str | None:
        _check_exists(v, info, "hyperparameters file", want_dir=False)
        return v

    @field_validator("environment")
    @classmethod
    def _env_limits(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_ENVIRONMENT:
            raise ValueError(f"{len(v)} variables; SageMaker accepts at most {MAX_ENVIRONMENT}")
        for key, value in v.items():
            if not ENV_KEY_RE.match(key) or len(key) > 512:
                raise ValueError(
                    f"variable name {key!r} must be letters, digits and '_' and not start "
                    "with a digit"
                )
            if len(value) > 512:
                raise ValueError(f"variable {key!r} is {len(value)} chars; at most 512")
        return v

    @field_validator("metric_definitions")
    @classmethod
    def _metric_limits(cls, v: list[MetricDefinition]) -> list[MetricDefinition]:
        if len(v) > MAX_METRIC_DEFINITIONS:
            raise ValueError(
                f"{len(v)} metric definitions; SageMaker accepts at most {MAX_METRIC_DEFINITIONS}"
            )
        names = [m.name for m in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric name {dupes[0]!r} is defined twice; rename one")
        return v

    @field_validator("checkpoint_s3_uri")
    @classmethod
    def _checkpoint_s3(cls, v: str | None) -> str | None:
        if v and not v.startswith("s3://"):
            raise ValueError(f"{v!r} must start with s3://")
        return v

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> JobSpec:
        base = _base_dir(info)
        if base is not None:
            self._base_dir = base
        backend = self.compute.backend
        if backend == Backend.LOCAL_PROCESS and self.compute.host_count != 1:
            raise ValueError(
                "compute.instance_count: the local-process backend runs one host; set 1, or "
                "pick the docker or sagemaker backend for several hosts"
            )
        if self.distribution.kind != "none" and self.source.command is not None:
            raise ValueError(
                "distribution: torchrun and custom drivers run a script; set source_dir and "
                "entry_point instead of a command"
            )
        if backend == Backend.SAGEMAKER:
            if self.compute.instance_type in ("local", "local_gpu"):
                raise ValueError(
                    "compute.instance_type: SageMaker needs an ml.* instance type, "
                    "e.g. ml.m5.xlarge"
                )
        else:
            for ch in self.channels:
                if ch.input_mode != "File":
                    raise ValueError(
                        f"channels: {ch.name!r} uses {ch.input_mode} mode; local backends "
                        "support File mode only"
                    )
        problem = self.distribution_groups_problem() or self.smddp_instance_problem()
        if problem:
            raise ValueError(problem)
        problem = self.hyperparameter_count_problem(base is not None)
        if problem:
            raise ValueError(problem)
        return self

    def distribution_groups_problem(self) -> str | None:
        """distribution.instance_groups as the SageMaker SDK checks them (`validate_distribution`):
        names of compute.instance_groups; only with a distribution; with several groups, one."""
        named = self.distribution.instance_groups
        groups = [g.name for g in self.compute.instance_groups]
        kind = self.distribution.kind
        if named and not groups:
            return (
                "distribution.instance_groups names groups, but compute.instance_groups has none; "
                "add the groups or remove the names"
            )
        unknown = [n for n in named if n not in groups]
        if unknown:
            return (
                f"distribution.instance_groups: {unknown[0]!r} is not one of compute."
                f"instance_groups ({', '.join(groups)})"
            )
        if named and kind in ("none", "custom"):
            return (
                f"distribution.instance_groups only applies to a distribution (torchrun, mpi, "
                f"smddp); kind is {kind}"
            )
        if len(groups) > 1 and kind not in ("none", "custom") and len(named) != 1:
            return (
                f"distribution.instance_groups: with {len(groups)} instance groups, name the one "
                f"group that runs {kind} (e.g. [{groups[0]}]); SageMaker runs one"
            )
        return None

    def distribution_group_names(self) -> list[str]:
        """The groups that run the distribution: those named, or the only group there is."""
        if self.distribution.instance_groups:
            return list(self.distribution.instance_groups)
        groups = self.compute.instance_groups
        return [groups[0].name] if len(groups) == 1 else []

    def smddp_instance_problem(self) -> str | None:
        """smddp on SageMaker runs only on the SDK's supported types (locally it is torchrun)."""
        if self.distribution.kind != "smddp" or self.compute.backend != Backend.SAGEMAKER:
            return None
        named = set(self.distribution_group_names())
        if self.compute.instance_groups:
            types = [
                (f"instance group {g.name!r}", g.instance_type)
                for g in self.compute.instance_groups
                if g.name in named
            ]
        else:
            types = [("compute.instance_type", self.compute.instance_type)]
        for where, instance_type in types:
            if instance_type not in SMDDP_INSTANCE_TYPES:
                return (
                    f"{where}: SageMaker's data-parallel library (smddp) does not run on "
                    f"{instance_type}; pick one of {', '.join(SMDDP_INSTANCE_TYPES)}, or "
                    "distribution kind torchrun"
                )
        return None

    def hyperparameter_count_problem(self, read_file: bool = True) -> str | None:
        """Too many hyperparameters once the file's and the app's `sagemaker_*` keys join the
        inline ones (SageMaker counts them all); a bad hyperparameters file says what is wrong.

        Checked for every backend, as the other SageMaker limits are, so a spec that runs here
        also submits; `read_file` is False where relative paths cannot be resolved."""
        from trainer_gui.core import contract
        from trainer_gui.core.errors import SpecError
        from trainer_gui.core.spec import limits

        names = set(self.hyperparameters)
        if self.hyperparameters_file and read_file:
            from trainer_gui.core.spec.io import load_hyperparameters_file

            try:
                names |= set(load_hyperparameters_file(self.resolve(self.hyperparameters_file)))
            except SpecError as exc:
                return "; ".join(exc.problems)
        bare = self.model_copy(update={"hyperparameters": {}, "hyperparameters_file": None})
        # As the request has them (a job name and region there, so count them here too).
        reserved = sorted(
            contract.sagemaker_hyperparameters(bare, "job", region="us-east-1", cloud=True)
        )
        most = limits.max_hyperparameters()
        total = len(names) + len(reserved)
        if total <= most:
            return None
        return (
            f"hyperparameters: {len(names)} of yours and the {len(reserved)} the app adds for "
            f"SageMaker ({', '.join(reserved)}) make {total}; SageMaker accepts at most {most}, "
            f"so remove {total - most} (a config file in the source folder holds any number)"
        )

    # -- helpers ---------------------------------------------------------------------------

    @property
    def base_dir(self) -> Path | None:
        """The folder relative paths in this spec are resolved against (the spec file's)."""
        return self._base_dir

    def with_base_dir(self, base: Path | None) -> JobSpec:
        self._base_dir = base
        return self

    def resolve(self, value: str) -> Path:
        return resolve_path(self._base_dir, value)

    def all_hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters file merged with the inline ones (inline wins)."""
        merged: dict[str, Any] = {}
        if self.hyperparameters_file:
            from trainer_gui.core.spec.io import load_hyperparameters_file

            merged.update(load_hyperparameters_file(self.resolve(self.hyperparameters_file)))
        merged.update(self.hyperparameters)
        return merged

    @property
    def uses_gpu(self) -> bool:
        return self.compute.gpus == "all" or (
            isinstance(self.compute.gpus, int) and self.compute.gpus > 0
        )


def check_hyperparameters(v: dict[str, Any]) -> None:
    """SageMaker's limits on HyperParameters, applied to the JSON-encoded values it will get."""
    import json

    if len(v) > MAX_HYPERPARAMETERS:
        raise ValueError(
            f"{len(v)} hyperparameters; SageMaker accepts at most {MAX_HYPERPARAMETERS}"
        )
    for key, value in v.items():
        if not key or len(key) > MAX_HP_KEY:
            raise ValueError(f"hyperparameter name {key[:40]!r}... must be 1-{MAX_HP_KEY} chars")
        if key.startswith(RESERVED_HP_PREFIX):
            raise ValueError(
                f"hyperparameter {key!r}: names starting with {RESERVED_HP_PREFIX!r} are reserved "
                "for SageMaker; rename it"
            )
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"hyperparameter {key!r} is not a number, string, bool, list or mapping"
            ) from None
        if len(encoded) > MAX_HP_VALUE:
            raise ValueError(
                f"hyperparameter {key!r} is {len(encoded)} chars once encoded; at most "
                f"{MAX_HP_VALUE} (put large values in a file in a channel)"
            )
