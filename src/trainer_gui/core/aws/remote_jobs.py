"""Training jobs already in the account: list them, import one as a spec, describe one to follow.

`spec_from_description` reverses the request mapping (request.py): sagemaker_program and
sagemaker_submit_directory give the source, the torch_distributed flag the distribution, the
channels (less the app's own code/tg-driver ones) the data, JSON-decoded hyperparameters less
the sagemaker_* keys the hyperparameters. With `download_code`, the job's sourcedir.tar.gz is
unpacked next to the spec so it re-runs locally as it is; otherwise source_dir stays an s3://
URI that the SageMaker backend reuses without uploading anything.

Jobs made by SDK V3's ModelTrainer (`is_v3_job`: an sm_drivers channel running sm_train.sh) say
what they run in the drivers' sourcecode.json and distributed.json (`v3_configs`): the import
takes the source folder (the `code` channel, downloaded as a folder), entry script or command,
requirements and torchrun/MPI process count from there instead of V3's launcher command.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from trainer_gui.core.archives import extract_archive
from trainer_gui.core.aws.errors import AwsError, aws_errors
from trainer_gui.core.aws.images import versions_from_image
from trainer_gui.core.aws.request import (
    CODE_CHANNEL,
    CUSTOM_DRIVER_CHANNEL,
    DRIVER_CHANNEL,
    SOURCE_ARCHIVE,
    Plan,
    plan_locations,
)
from trainer_gui.core.aws.s3 import S3Uri, download
from trainer_gui.core.aws.session import AwsSession, default_region
from trainer_gui.core.contract import decode_hyperparameters
from trainer_gui.core.contract.toolkit import (
    DISTRIBUTION_GROUPS_KEY,
    MPI_KEY,
    MPI_OPTIONS_KEY,
    PROCESSES_PER_HOST_KEY,
    RESERVED_HYPERPARAMETERS,
    SMDDP_KEY,
    TORCH_DISTRIBUTED_KEY,
)
from trainer_gui.core.errors import UserError
from trainer_gui.core.spec.model import JOB_NAME_RE, JobSpec, MetricDefinition

log = logging.getLogger(__name__)

SUFFIX_RE = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{4}$")


@dataclass(frozen=True)
class RemoteJob:
    name: str
    status: str
    created: float
    ended: float | None
    arn: str


def list_training_jobs(session: AwsSession, limit: int = 20) -> list[RemoteJob]:
    """The account's most recent training jobs in the session's region, newest first."""
    out: list[RemoteJob] = []
    with aws_errors("listing training jobs"):
        paginator = session.client("sagemaker").get_paginator("list_training_jobs")
        pages = paginator.paginate(
            SortBy="CreationTime",
            SortOrder="Descending",
            PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 100)},
        )
        for page in pages:
            for item in page.get("TrainingJobSummaries", []) or []:
                end = item.get("TrainingEndTime")
                out.append(
                    RemoteJob(
                        name=item["TrainingJobName"],
                        status=item["TrainingJobStatus"],
                        created=item["CreationTime"].timestamp(),
                        ended=end.timestamp() if end else None,
                        arn=item["TrainingJobArn"],
                    )
                )
    out.sort(key=lambda j: j.created, reverse=True)
    return out[:limit]


def describe(session: AwsSession, name: str) -> dict[str, Any]:
    with aws_errors(f"looking up the training job {name}"):
        return dict(session.client("sagemaker").describe_training_job(TrainingJobName=name))


def job_tags(session: AwsSession, arn: str) -> dict[str, str]:
    try:
        with aws_errors("reading the job's tags"):
            out = session.client("sagemaker").list_tags(ResourceArn=arn)
    except AwsError as exc:  # tags are extras: a job without them still imports
        log.info("the tags of %s could not be read: %s", arn, exc)
        return {}
    return {
        t["Key"]: t.get("Value", "")
        for t in out.get("Tags", []) or []
        if not t["Key"].lower().startswith("aws:")
    }


# -- jobs made by SDK V3's ModelTrainer -----------------------------------------------------------
# V3 uploads the source folder as the `code` channel and its drivers as the `sm_drivers` channel,
# runs `bash -c "chmod +x .../sm_drivers/sm_train.sh && .../sm_train.sh"`, and says what to run in
# the drivers' sourcecode.json (its SourceCode: source_dir, entry_script, command, args,
# requirements) and distributed.json (Torchrun: process_count_per_node; MPI: also
# mpi_additional_options). Hyperparameters are sent as strings, unencoded.
V3_TRAIN_SCRIPT = "sm_train.sh"
V3_SOURCE_CODE_JSON = "sourcecode.json"
V3_DISTRIBUTED_JSON = "distributed.json"


def _channel_uri(desc: dict[str, Any], name: str) -> str | None:
    for channel in desc.get("InputDataConfig") or []:
        if channel.get("ChannelName") == name:
            uri = ((channel.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
            return str(uri) if uri else None
    return None


def is_v3_job(desc: dict[str, Any]) -> bool:
    """Whether SDK V3's ModelTrainer made this job (its drivers channel runs sm_train.sh)."""
    algo = desc.get("AlgorithmSpecification") or {}
    args = " ".join(str(a) for a in algo.get("ContainerArguments") or [])
    return _channel_uri(desc, CUSTOM_DRIVER_CHANNEL) is not None and V3_TRAIN_SCRIPT in args


def v3_configs(session: AwsSession, desc: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """A V3 job's sourcecode.json and distributed.json, read from its sm_drivers channel;
    None when the job is not a V3 one or they cannot be read (then it imports as a command)."""
    if not is_v3_job(desc):
        return None
    uri = S3Uri.parse(str(_channel_uri(desc, CUSTOM_DRIVER_CHANNEL)))
    out: dict[str, dict[str, Any]] = {}
    for key, file in (("source_code", V3_SOURCE_CODE_JSON), ("distributed", V3_DISTRIBUTED_JSON)):
        target = uri.join(file)
        try:
            with aws_errors(f"reading {target}"):
                body = session.client("s3").get_object(Bucket=target.bucket, Key=target.key)
                value = json.loads(body["Body"].read() or b"{}")
        except (AwsError, ValueError) as exc:
            log.info("the V3 job's %s could not be read: %s", file, exc)
            return None
        out[key] = value if isinstance(value, dict) else {}
    return out


def _v3_source(desc: dict[str, Any], v3: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import shlex

    code = v3["source_code"]
    source: dict[str, Any] = {}
    code_uri = _channel_uri(desc, CODE_CHANNEL)
    if code_uri:
        source["source_dir"] = code_uri
    if code.get("command"):
        source["command"] = shlex.split(str(code["command"])) + [
            str(a) for a in code.get("args") or []
        ]
    elif code.get("entry_script"):
        source["entry_point"] = str(code["entry_script"])
    return source


def _v3_distribution(v3: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    dist = v3["distributed"]
    if not dist:
        return None
    out: dict[str, Any] = {"kind": "mpi" if "mpi_additional_options" in dist else "torchrun"}
    if dist.get("process_count_per_node"):
        out["processes_per_host"] = int(dist["process_count_per_node"])
    if dist.get("mpi_additional_options"):
        out["mpi_options"] = " ".join(str(o) for o in dist["mpi_additional_options"])
    return out


def spec_from_description(
    desc: dict[str, Any],
    region: str,
    tags: dict[str, str] | None = None,
    v3: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Spec data (a mapping for `spec_from_dict`) that would re-create this training job.

    `v3`: a V3 ModelTrainer job's driver configs (`v3_configs`), which say its source folder,
    entry script or command, and distribution."""
    name = SUFFIX_RE.sub("", str(desc["TrainingJobName"])) or "imported"
    name = name[:40].rstrip("-")
    raw_hps = dict(desc.get("HyperParameters") or {})
    decoded = decode_hyperparameters(raw_hps)
    algo = desc.get("AlgorithmSpecification") or {}
    program = decoded.get("sagemaker_program")
    submit = decoded.get("sagemaker_submit_directory")
    source: dict[str, Any] = {}
    if submit and isinstance(submit, str):
        source["source_dir"] = submit
    if program:
        source["entry_point"] = str(program)
    args = list(algo.get("ContainerArguments") or [])
    if v3 is not None:
        source = _v3_source(desc, v3)
    elif "--" in args:
        source["command"] = args[args.index("--") + 1 :]
    elif not program:
        container_cmd = list(algo.get("ContainerEntrypoint") or []) + args
        if container_cmd:
            source["command"] = container_cmd
    data: dict[str, Any] = {"name": name, "source": source}
    image = str(algo.get("TrainingImage", ""))
    sagemaker: dict[str, Any] = {"region": region, "role_arn": desc.get("RoleArn")}
    versions = versions_from_image(image)
    if versions is not None:
        sagemaker["framework_version"], sagemaker["py_version"] = versions
    elif image:
        data["image"] = image
    resources = desc.get("ResourceConfig") or {}
    groups = [
        {
            "name": g["InstanceGroupName"],
            "instance_type": g["InstanceType"],
            "instance_count": int(g["InstanceCount"]),
        }
        for g in resources.get("InstanceGroups") or []
    ]
    data["compute"] = {
        "backend": "sagemaker",
        "instance_type": resources.get("InstanceType")
        or (groups[0]["instance_type"] if groups else "ml.m5.xlarge"),
        "instance_count": int(resources.get("InstanceCount") or 1),
        "volume_size_gb": int(resources.get("VolumeSizeInGB", 30)),
    }
    if groups:  # a heterogeneous cluster
        data["compute"]["instance_groups"] = groups
        data["compute"]["instance_count"] = 1
    on = (True, "true", "True")
    if decoded.get(TORCH_DISTRIBUTED_KEY) in on or decoded.get(SMDDP_KEY) in on:
        smddp = decoded.get(TORCH_DISTRIBUTED_KEY) not in on
        dist: dict[str, Any] = {"kind": "smddp" if smddp else "torchrun"}
        if decoded.get(PROCESSES_PER_HOST_KEY):
            dist["processes_per_host"] = int(decoded[PROCESSES_PER_HOST_KEY])
        data["distribution"] = dist
    elif decoded.get(MPI_KEY) in (True, "true", "True"):
        mpi: dict[str, Any] = {"kind": "mpi"}
        if decoded.get(PROCESSES_PER_HOST_KEY):
            mpi["processes_per_host"] = int(decoded[PROCESSES_PER_HOST_KEY])
        if decoded.get(MPI_OPTIONS_KEY):
            mpi["mpi_options"] = str(decoded[MPI_OPTIONS_KEY])
        data["distribution"] = mpi
    v3_dist = _v3_distribution(v3) if v3 is not None else None
    if v3_dist is not None:
        data["distribution"] = v3_dist
    if groups and "distribution" in data:
        named = decoded.get(DISTRIBUTION_GROUPS_KEY)
        if not isinstance(named, list) or not named:
            # V2 sends none for torch_distributed (each group then runs its own torchrun,
            # which a spec cannot say): the first GPU group, whose type picked the image
            gpu = [
                g["name"] for g in groups if str(g["instance_type"]).startswith(("ml.g", "ml.p"))
            ]
            named = (gpu or [groups[0]["name"]])[:1]
        data["distribution"]["instance_groups"] = [str(n) for n in named]
    channels = []
    for channel in desc.get("InputDataConfig") or []:
        cname = channel["ChannelName"]
        if cname in (CODE_CHANNEL, DRIVER_CHANNEL, CUSTOM_DRIVER_CHANNEL):
            continue
        s3 = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        if not s3.get("S3Uri"):
            continue  # file systems and datasets are not in the spec model
        entry: dict[str, Any] = {"name": cname, "source": s3["S3Uri"]}
        if channel.get("ContentType"):
            entry["content_type"] = channel["ContentType"]
        mode = channel.get("InputMode") or algo.get("TrainingInputMode")
        if mode and mode != "File":
            entry["input_mode"] = mode
        channels.append(entry)
    if channels:
        data["channels"] = channels
    hps = {
        k: v
        for k, v in decoded.items()
        if not k.startswith("sagemaker_") and k not in RESERVED_HYPERPARAMETERS
    }
    if hps:
        data["hyperparameters"] = hps
    if desc.get("Environment"):
        data["environment"] = dict(desc["Environment"])
    stopping = desc.get("StoppingCondition") or {}
    if stopping.get("MaxRuntimeInSeconds"):
        data["max_runtime_seconds"] = int(stopping["MaxRuntimeInSeconds"])
    checkpoint = (desc.get("CheckpointConfig") or {}).get("S3Uri")
    if checkpoint:
        data["checkpoint_s3_uri"] = checkpoint
    metrics = []
    for metric in algo.get("MetricDefinitions") or []:
        try:
            MetricDefinition(name=metric["Name"], regex=metric["Regex"])
        except ValueError:
            continue  # e.g. built-in algorithm regexes without exactly one group
        metrics.append({"name": metric["Name"], "regex": metric["Regex"]})
    if metrics:
        data["metric_definitions"] = metrics
    output = (desc.get("OutputDataConfig") or {}).get("S3OutputPath")
    if output:
        data["output_path"] = output
    if tags:
        sagemaker["tags"] = dict(tags)
    data["sagemaker"] = {k: v for k, v in sagemaker.items() if v}
    return data


def import_training_job(
    session: AwsSession,
    name: str,
    spec_path: Path | None = None,
    download_code: bool = True,
) -> JobSpec:
    """A spec for an account's training job; saved to `spec_path` when given.

    With `download_code` and a spec path, the code is unpacked into `<spec folder>/<name>-code`
    and the spec points there (so it runs locally too).
    """
    from trainer_gui.core.spec import save_spec, spec_from_dict

    desc = describe(session, name)
    v3 = v3_configs(session, desc)
    data = spec_from_description(
        desc, session.region, job_tags(session, desc["TrainingJobArn"]), v3
    )
    base = spec_path.resolve().parent if spec_path else None
    source_dir = data["source"].get("source_dir")
    if v3 is not None and download_code and base is not None and isinstance(source_dir, str):
        folder = base / f"{data['name']}-code"
        _download_prefix(session, S3Uri.parse(source_dir), folder)
        packed = v3["source_code"].get("source_dir")
        if isinstance(packed, str) and packed.endswith(".tar.gz"):  # V3 untars it in the job
            archive = folder / Path(packed).name
            if archive.is_file():
                extract_archive(archive, folder)
                archive.unlink()
        data["source"]["source_dir"] = folder.name
        requirements = v3["source_code"].get("requirements")
        if isinstance(requirements, str) and (folder / requirements).is_file():
            data["source"]["requirements"] = f"{folder.name}/{requirements}"
    elif v3 is not None and isinstance(source_dir, str):
        _v3_code_left_in_s3(data, v3, source_dir)
    if (
        download_code
        and base is not None
        and isinstance(source_dir, str)
        and source_dir.startswith("s3://")
        and source_dir.endswith(".tar.gz")
    ):
        folder = base / f"{data['name']}-code"
        archive = base / f".{data['name']}-{SOURCE_ARCHIVE}"
        if download(session.client("s3"), S3Uri.parse(source_dir), archive) is None:
            raise UserError(f"the job's code {source_dir} is no longer in S3")
        try:
            extract_archive(archive, folder)
        finally:
            archive.unlink(missing_ok=True)
        data["source"]["source_dir"] = folder.name
    spec = spec_from_dict(data, base_dir=base, source=f"training job {name}")
    if spec_path is not None:
        save_spec(spec, spec_path)
    return spec


def _v3_code_left_in_s3(data: dict[str, Any], v3: dict[str, dict[str, Any]], code_uri: str) -> None:
    """A V3 job imported without its code: V3's code channel is an S3 folder, which no spec can
    run from (the app sends an archive as sagemaker_submit_directory). An archive V3 was given
    (source_dir: a .tar.gz) is one: the spec points at it and reruns without an upload. A folder
    is refused, naming where the code is, rather than imported as a spec that cannot run."""
    packed = v3["source_code"].get("source_dir")
    if isinstance(packed, str) and packed.endswith(".tar.gz"):
        data["source"]["source_dir"] = str(S3Uri.parse(code_uri).join(Path(packed).name))
        return
    raise UserError(
        f"the job was made by SageMaker SDK V3, whose code is the S3 folder {code_uri}, not an "
        "archive a spec can run from; import it with its code (without --no-code, saving the "
        "spec to a file), so the code is downloaded next to the spec"
    )


def _download_prefix(session: AwsSession, prefix: S3Uri, folder: Path) -> None:
    """Every object under `prefix` into `folder` (a V3 job's code channel), keys kept as paths;
    a key that would leave the folder is refused."""
    s3 = session.client("s3")
    root = prefix.key.rstrip("/") + "/" if prefix.key.strip("/") else ""
    found = False
    with aws_errors(f"listing the job's code {prefix}"):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=root)
        keys = [o["Key"] for page in pages for o in page.get("Contents", []) or []]
    for key in keys:
        rel = key[len(root) :]
        parts = [p for p in rel.split("/") if p]
        if not parts or key.endswith("/"):
            continue
        if any(p in (".", "..") for p in parts):
            raise UserError(f"the job's code has an unsafe path: {key}")
        target = folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        download(s3, S3Uri(prefix.bucket, key), target)
        found = True
    if not found:
        raise UserError(f"the job's code {prefix} is no longer in S3")


@dataclass(frozen=True)
class Adoption:
    """What the store needs to follow an account's training job like one started here.

    The job service records it (services/jobs.py `adopt`); this module only asks AWS."""

    name: str
    spec: JobSpec
    created_at: float
    backend_ids: dict[str, Any]


def adoption(session: AwsSession, name: str) -> Adoption:
    """The spec and backend ids of the account's training job `name` (one describe call)."""
    from trainer_gui.core.spec import spec_from_dict

    if not JOB_NAME_RE.match(name):
        raise UserError(f"{name!r} is not a SageMaker training job name")
    desc = describe(session, name)
    data = spec_from_description(desc, session.region, v3=v3_configs(session, desc))
    spec = spec_from_dict(data, source=f"training job {name}")
    created = desc.get("CreationTime")
    return Adoption(
        name=name,
        spec=spec,
        created_at=created.timestamp() if isinstance(created, datetime) else time.time(),
        backend_ids={
            "training_job_name": name,
            "training_job_arn": desc.get("TrainingJobArn"),
            "region": session.region,
            "profile": session.profile,
            "adopted": True,
        },
    )


def plan_for_export(
    spec: JobSpec, job_name: str, session: AwsSession | None = None
) -> tuple[Plan, list[str]]:
    """The plan an export shows, with placeholders (and notes) for what AWS would tell."""
    from trainer_gui.core.aws.images import resolve_image

    notes: list[str] = []
    region = spec.sagemaker.region or default_region(spec.sagemaker.profile)
    if not region:
        region = "us-east-1"
        notes.append("no region in the spec or the AWS config: us-east-1 assumed")
    role = spec.sagemaker.role_arn
    if not role:
        role = "arn:aws:iam::<account-id>:role/<sagemaker-execution-role>"
        notes.append("sagemaker.role_arn is empty: replace the role placeholder")
    base = spec.sagemaker.s3_prefix
    if not base:
        try:
            session = session or AwsSession(spec.sagemaker.profile, region)
            base = f"s3://{session.default_bucket()}"
        except AwsError as exc:
            base = f"s3://sagemaker-{region}-<account-id>"
            notes.append(f"default bucket unknown ({exc}): replace <account-id>")
    image, toolkit = resolve_image(
        spec.image,
        spec.sagemaker.framework_version,
        spec.sagemaker.py_version,
        region,
        spec.compute.image_instance_type,
    )
    return plan_locations(spec, job_name, region, role, image, toolkit, base), notes


def describe_json(desc: dict[str, Any]) -> str:
    return json.dumps(desc, indent=2, default=str)
