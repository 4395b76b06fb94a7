"""The CreateTrainingJob request for a spec: where everything goes in S3, and the request.

Pure functions: `plan_locations` decides every S3 URI from the spec, the job name and a base
URI; `build_request` turns spec + plan into the request dict boto3 sends. The runner uploads to
exactly those URIs, the exporter prints the same request, and tests compare it field by field.

S3 layout under the base URI (`sagemaker.s3_prefix`, or `s3://sagemaker-<region>-<account>`):

    <base>/<job>/source/sourcedir.tar.gz     the code (sagemaker_submit_directory)
    <base>/<job>/tg-driver/{start.py,toolkit.py}   images without the toolkit (launch mode b)
    <base>/<job>/sm_drivers/...              a custom distribution driver folder
    <base>/data/<digest>/                    local channel data, content-addressed: the digest
                                             is over the files' names, sizes and SHA-256s, so
                                             a job's data never changes under it and the same
                                             data is uploaded once (`s3.channel_manifest`)
    <base>/<spec name>/checkpoints/          when checkpoint_dir is a local folder
    <output_path or base>/<job>/output/{model,output}.tar.gz   written by SageMaker
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainer_gui.core import contract
from trainer_gui.core.aws.s3 import S3Uri, channel_uri
from trainer_gui.core.errors import UserError
from trainer_gui.core.runners.staging import has_local_code
from trainer_gui.core.spec.model import JobSpec, is_remote

CODE_CHANNEL = "code"
DRIVER_CHANNEL = "tg-driver"
CUSTOM_DRIVER_CHANNEL = contract.DRIVERS_CHANNEL  # "sm_drivers", as the local backends use
RESERVED_CHANNELS = (CODE_CHANNEL, DRIVER_CHANNEL, CUSTOM_DRIVER_CHANNEL)
CONTAINER_DATA = "/opt/ml/input/data"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
#: Where SageMaker uploads TensorBoard event files from (its default, and the local layout).
TENSORBOARD_LOCAL_PATH = "/opt/ml/output/tensorboard"
SOURCE_ARCHIVE = "sourcedir.tar.gz"
START_SCRIPT = "start.py"
DRIVER_SCRIPT = "toolkit.py"
# Runs the bootstrap with whichever Python the image has (<= 256 chars, the API's item limit).
DRIVER_LAUNCHER = (
    'exec "$(command -v python3 || command -v python)" '
    f'{CONTAINER_DATA}/{DRIVER_CHANNEL}/{START_SCRIPT} "$@"'
)


@dataclass(frozen=True)
class Plan:
    """Everything about a submission that is not in the spec: region, role, image, S3 URIs."""

    job_name: str
    region: str
    role_arn: str
    image: str
    toolkit: bool
    base_uri: str
    output_uri: str
    code_uri: str | None = None
    channel_uris: dict[str, str] = field(default_factory=dict)
    local_channels: dict[str, str] = field(default_factory=dict)  # name -> local source
    checkpoint_uri: str | None = None
    driver_uri: str | None = None
    custom_driver_uri: str | None = None

    @property
    def launch_mode(self) -> str:
        return "toolkit" if self.toolkit else "driver"


def uses_driver(spec: JobSpec, toolkit_image: bool) -> bool:
    """Launch mode (b): plain images, commands and custom drivers run the app's driver."""
    return (
        not toolkit_image or spec.source.command is not None or spec.distribution.kind == "custom"
    )


def check_limits(spec: JobSpec, image: str) -> None:
    """What CreateTrainingJob would refuse, checked again before anything is uploaded: the
    hyperparameters file may have changed since the spec was read, and the image is now the
    resolved URI. Limits from botocore's service model (`core.spec.limits`)."""
    from trainer_gui.core.spec import limits

    problems = []
    count = spec.hyperparameter_count_problem()
    if count:
        problems.append(count)
    if len(image) > limits.max_image_uri():
        problems.append(
            f"image: {image[:60]}... is {len(image)} characters; SageMaker takes at most "
            f"{limits.max_image_uri()}"
        )
    if spec.compute.instance_groups:
        for group in spec.compute.instance_groups:
            kind = limits.instance_type_problem(group.instance_type)
            if kind:
                problems.append(f"compute.instance_groups: {group.name!r}: {kind}")
    else:
        kind = limits.instance_type_problem(spec.compute.instance_type)
        if kind:
            problems.append(f"compute.instance_type: {kind}")
    smddp = spec.smddp_instance_problem() or _smddp_version_problem(spec)
    if smddp:
        problems.append(smddp)
    problems += [f"sagemaker.tags: {p}" for p in limits.tag_problems(spec.sagemaker.tags)]
    if problems:
        raise UserError("\n".join(problems))


def _smddp_version_problem(spec: JobSpec) -> str | None:
    """smddp is in the SageMaker PyTorch images of the versions the SDK lists, and no later."""
    if spec.distribution.kind != "smddp" or spec.image:
        return None
    from trainer_gui.core.aws.errors import AwsError
    from trainer_gui.core.aws.images import full_version
    from trainer_gui.core.spec.model import SMDDP_PYTORCH_VERSIONS

    version = spec.sagemaker.framework_version
    with contextlib.suppress(AwsError):  # else the image lookup says what is wrong with it
        version = full_version(version)
    if version in SMDDP_PYTORCH_VERSIONS:
        return None
    return (
        f"sagemaker.framework_version: SageMaker's data-parallel library (smddp) is in the "
        f"PyTorch images up to 2.2.0, not {version}; pick 2.2 or earlier, a custom image with "
        "the library, or distribution kind torchrun"
    )


def plan_locations(
    spec: JobSpec,
    job_name: str,
    region: str,
    role_arn: str,
    image: str,
    toolkit_image: bool,
    base_uri: str,
    channel_digests: Mapping[str, str] | None = None,
) -> Plan:
    """Every S3 URI of a submission. `channel_digests` (channel name -> content digest, from
    `s3.channel_manifest`) name the local channels' prefixes; a local channel without one is
    hashed here (cached per file, so cheap when the data was hashed before)."""
    check_limits(spec, image)
    base = S3Uri.parse(base_uri.rstrip("/"))
    driver = uses_driver(spec, toolkit_image)
    if driver and spec.distribution.kind == "mpi" and spec.compute.host_count > 1:
        raise UserError(
            "distribution kind mpi on several SageMaker instances needs an image with the "
            "SageMaker training toolkit (the PyTorch training image, the default), whose MPI "
            "runner sets up SSH between the instances; leave `image` empty, or use one instance"
        )
    code_uri: str | None = None
    source = spec.source
    if source.source_dir and is_remote(source.source_dir):
        code_uri = source.source_dir  # an imported job's code, already in S3
    elif has_local_code(spec):  # what the local backends stage into /opt/ml/code
        code_uri = str(base.join(job_name, "source", SOURCE_ARCHIVE))
    channel_uris: dict[str, str] = {}
    local_channels: dict[str, str] = {}
    for channel in spec.channels:
        if channel.name in RESERVED_CHANNELS:
            raise UserError(
                f"channel name {channel.name!r} is used by the app on SageMaker; rename it"
            )
        if is_remote(channel.source):
            channel_uris[channel.name] = channel.source
        else:
            digest = (channel_digests or {}).get(channel.name)
            if digest is None:
                from trainer_gui.core.aws.s3 import channel_manifest

                digest = channel_manifest(spec.resolve(channel.source)).digest
            channel_uris[channel.name] = channel_uri(base, digest)
            local_channels[channel.name] = channel.source
    checkpoint: str | None = spec.checkpoint_s3_uri
    if checkpoint is None and spec.checkpoint_dir:
        checkpoint = (
            spec.checkpoint_dir
            if is_remote(spec.checkpoint_dir)
            else str(base.join(spec.name, "checkpoints")) + "/"
        )
    output = spec.output_path if spec.output_path and is_remote(spec.output_path) else None
    output_uri = output or str(base)
    custom = None
    if spec.distribution.kind == "custom":
        custom = str(base.join(job_name, CUSTOM_DRIVER_CHANNEL)) + "/"
    return Plan(
        job_name=job_name,
        region=region,
        role_arn=role_arn,
        image=image,
        toolkit=not driver,
        base_uri=str(base),
        output_uri=output_uri,
        code_uri=code_uri,
        channel_uris=channel_uris,
        local_channels=local_channels,
        checkpoint_uri=checkpoint,
        driver_uri=(str(base.join(job_name, DRIVER_CHANNEL)) + "/") if driver else None,
        custom_driver_uri=custom,
    )


def artifact_uris(output_uri: str, job_name: str) -> tuple[str, str]:
    """Where SageMaker writes model.tar.gz and output.tar.gz for a job."""
    out = S3Uri.parse(output_uri).join(job_name, "output")
    return str(out.join("model.tar.gz")), str(out.join("output.tar.gz"))


def _channel(name: str, uri: str, content_type: str | None = None, mode: str | None = None) -> dict:
    entry: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }
    if content_type:
        entry["ContentType"] = content_type
    if mode and mode != "File":
        entry["InputMode"] = mode
    return entry


def driver_arguments(spec: JobSpec) -> list[str]:
    """ContainerArguments for launch mode (b): what the driver gets after the bootstrap.

    The local backends build the same list (`contract.driver_arguments`); SageMaker adds its
    limits on the items.
    """
    args = contract.driver_arguments(spec)
    for arg in args:
        if not arg or len(arg) > 256:
            raise UserError(
                f"command argument {arg[:40]!r}... must be 1-256 characters on SageMaker "
                "(ContainerArguments); put long values in a file in the source folder"
            )
    if len(args) > 99:
        raise UserError("the command has more than 99 arguments; SageMaker accepts 100 items")
    return args


def resource_config(spec: JobSpec) -> dict[str, Any]:
    """ResourceConfig: InstanceType and InstanceCount, or InstanceGroups (a heterogeneous
    cluster: no top-level type or count), as the V2 SDK's `_Job._prepare_resource_config`."""
    compute = spec.compute
    if compute.instance_groups:
        return {
            "VolumeSizeInGB": compute.volume_size_gb,
            "InstanceGroups": [
                {
                    "InstanceGroupName": g.name,
                    "InstanceType": g.instance_type,
                    "InstanceCount": g.instance_count,
                }
                for g in compute.instance_groups
            ],
        }
    return {
        "InstanceType": compute.instance_type,
        "InstanceCount": compute.instance_count,
        "VolumeSizeInGB": compute.volume_size_gb,
    }


def build_request(spec: JobSpec, plan: Plan) -> dict[str, Any]:
    """The CreateTrainingJob request (boto3 keyword arguments) for `spec` under `plan`."""
    algorithm: dict[str, Any] = {
        "TrainingImage": plan.image,
        "TrainingInputMode": "File",
    }
    if spec.metric_definitions:
        algorithm["MetricDefinitions"] = [
            {"Name": m.name, "Regex": m.regex} for m in spec.metric_definitions
        ]
    if not plan.toolkit:
        algorithm["ContainerEntrypoint"] = ["/bin/sh", "-c", DRIVER_LAUNCHER, "trainer-gui-driver"]
        args = driver_arguments(spec)
        if args:
            algorithm["ContainerArguments"] = args
    channels = [
        _channel(c.name, plan.channel_uris[c.name], c.content_type, c.input_mode)
        for c in spec.channels
    ]
    if not plan.toolkit:
        if plan.code_uri:
            channels.append(_channel(CODE_CHANNEL, plan.code_uri))
        if plan.driver_uri:
            channels.append(_channel(DRIVER_CHANNEL, plan.driver_uri))
    if plan.custom_driver_uri:
        channels.append(_channel(CUSTOM_DRIVER_CHANNEL, plan.custom_driver_uri))
    if len(channels) > 20:
        raise UserError(
            f"{len(channels)} input channels with the app's own; SageMaker accepts at most 20"
        )
    hyperparameters = contract.sagemaker_hyperparameters(
        spec,
        plan.job_name,
        submit_directory=plan.code_uri or contract.CONTAINER_CODE_DIR,
        region=plan.region,
        cloud=True,
    )
    request: dict[str, Any] = {
        "TrainingJobName": plan.job_name,
        "RoleArn": plan.role_arn,
        "AlgorithmSpecification": algorithm,
        "HyperParameters": hyperparameters,
        "OutputDataConfig": {"S3OutputPath": plan.output_uri},
        "ResourceConfig": resource_config(spec),
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
    }
    if channels:
        request["InputDataConfig"] = channels
    if plan.checkpoint_uri:
        request["CheckpointConfig"] = {
            "S3Uri": plan.checkpoint_uri,
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    if spec.tensorboard:  # read back while the job runs (core/metrics/tensorboard.py)
        request["TensorBoardOutputConfig"] = {
            "S3OutputPath": str(S3Uri.parse(plan.base_uri).join(plan.job_name, "tensorboard")),
            "LocalPath": TENSORBOARD_LOCAL_PATH,
        }
    if spec.environment:
        request["Environment"] = dict(spec.environment)
    if spec.sagemaker.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in spec.sagemaker.tags.items()]
    return request
