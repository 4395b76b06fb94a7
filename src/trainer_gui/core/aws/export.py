"""A spec as runnable SageMaker Python SDK code (V3 ModelTrainer, V2 PyTorch) or request JSON.

The V2 export gives the same request the app sends (same image, HyperParameters encoding,
torch_distributed flag and processes per host, channels with content types, metric definitions,
stopping condition, checkpoint, output, TensorBoard, tags). The V3 export uses ModelTrainer's own
mechanisms (its sm_drivers channel and Torchrun config), so its request differs in the ways V3
differs from V2 (hyperparameter strings stay raw). tests/aws/test_export_sdk.py runs both with
the real SDKs and lists every difference.

The code stays a local path the SDKs pack themselves (copied first into a temporary folder as
the app packs it where the SDK cannot take the spec's layout: `_code_staging`); local channel
data is uploaded by the program to the S3 location the app uses (the plan's channel URIs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from trainer_gui.core.aws.request import (
    CHECKPOINT_LOCAL_PATH,
    TENSORBOARD_LOCAL_PATH,
    Plan,
    build_request,
)
from trainer_gui.core.aws.s3 import S3Uri
from trainer_gui.core.contract.toolkit import DISTRIBUTION_GROUPS_KEY, PROCESSES_PER_HOST_KEY
from trainer_gui.core.errors import UserError
from trainer_gui.core.spec.model import Backend, JobSpec, is_remote
from trainer_gui.core.spec.sweep import (
    EARLY_STOPPING,
    GOALS,
    SCALING_TYPES,
    STRATEGIES,
    CategoricalValues,
    ContinuousRange,
    IntegerRange,
    SweepSpec,
    sweep_problems,
)

FORMATS = ("v3", "v2", "request")


def _py(value: Any) -> str:
    """A Python literal for JSON-like data (True/False/None, not true/false/null)."""
    return repr(value)


def _local(spec: JobSpec, value: str) -> str:
    return value if is_remote(value) else str(spec.resolve(value))


def export_request(spec: JobSpec, plan: Plan) -> str:
    """The CreateTrainingJob request; for a spec naming an AWS Batch queue, the SubmitServiceJob
    request carrying it (`aws batch submit-service-job --cli-input-json`), as the app sends."""
    request = build_request(spec, plan)
    if spec.sagemaker.batch_queue:
        from trainer_gui.core.aws.batch import spec_submit_request

        request = spec_submit_request(spec, request)
    return json.dumps(request, indent=2) + "\n"


def request_uploads(spec: JobSpec, plan: Plan) -> list[str]:
    """What the request JSON reads from S3 that only the app (or the SDK programs) upload, as
    notes saying which file goes where: JSON has no comments, and the AWS CLI's
    --cli-input-json refuses unknown keys, so the CLI and the dialog show them instead."""
    from trainer_gui.core.runners.staging import has_local_code

    notes: list[str] = []
    src = spec.source
    if plan.code_uri and has_local_code(spec):
        parts = []
        if src.source_dir and not is_remote(src.source_dir):
            parts.append(f"the contents of {_local(spec, src.source_dir)}")
        parts += [f"the folder {spec.resolve(d)}" for d in src.dependencies]
        if src.requirements:
            parts.append(f"{spec.resolve(src.requirements)} as requirements.txt")
        notes.append(
            f"request JSON: upload a tar.gz of {', '.join(parts)} (at its root) to "
            f"{plan.code_uri} before sending it (the app and the SDK programs do this)"
        )
    for name, source in plan.local_channels.items():
        notes.append(
            f"request JSON: upload {_local(spec, source)} to {plan.channel_uris[name]} "
            f"(channel {name!r})"
        )
    if plan.driver_uri:
        notes.append(
            f"request JSON: {plan.driver_uri} must hold the app's driver (start.py, toolkit.py);"
            " submit this spec from the app, which uploads it"
        )
    if plan.custom_driver_uri and spec.distribution.driver_dir:
        notes.append(
            f"request JSON: upload the contents of {spec.resolve(spec.distribution.driver_dir)} "
            f"to {plan.custom_driver_uri}"
        )
    return notes


def _queue_lines(
    spec: JobSpec, trainer: str, inputs: str, extra: str = "", v2: bool = False
) -> list[str]:
    """`TrainingQueue(queue).submit(...)` and a wait for the Batch job (V2 and V3 alike, but
    V2's submit has no quota share or preemption parameters: said in a comment)."""
    from trainer_gui.core.aws.batch import spec_retry_strategy

    settings = spec.sagemaker
    args = [trainer, inputs]
    if extra:
        args.append(extra)
    if settings.batch_retry_attempts is not None or settings.batch_retry_rules:
        args.append(f"retry_config={spec_retry_strategy(spec)!r}")
    if settings.batch_priority is not None:
        args.append(f"priority={settings.batch_priority}")
    if settings.batch_share_identifier:
        args.append(f"share_identifier={settings.batch_share_identifier!r}")
    lacking = []
    if settings.batch_quota_share:
        if v2:
            lacking.append(f"quota share {settings.batch_quota_share!r}")
        else:
            args.append(f"quota_share_name={settings.batch_quota_share!r}")
    if settings.batch_preemption_retries is not None:
        preemption = {"preemptionRetriesBeforeTermination": settings.batch_preemption_retries}
        if v2:
            lacking.append(f"preemption retries {settings.batch_preemption_retries}")
        else:
            args.append(f"preemption_config={preemption!r}")
    note = (
        [
            f"# Not set here: {' and '.join(lacking)} (SDK V2's TrainingQueue.submit has no "
            "such parameter; the V3 code and the request JSON set them)."
        ]
        if lacking
        else []
    )
    return [
        *note,
        f"queue = TrainingQueue({settings.batch_queue!r})",
        f"queued_job = queue.submit({', '.join(args)})",
        "queued_job.wait()  # SUBMITTED, RUNNABLE, ... until SUCCEEDED or FAILED",
        "print(queued_job.describe()['status'])",
    ]


def _v2_queued(spec: JobSpec, lines: list[str]) -> list[str]:
    """V2 code that submits the estimator to the spec's AWS Batch queue (V2's
    `sagemaker.aws_batch.training_queue.TrainingQueue`) instead of `estimator.fit(...)`."""
    out: list[str] = []
    for line in lines:
        if line.startswith("estimator.fit("):
            inputs = "inputs" if line.startswith("estimator.fit(inputs") else "None"
            out += _queue_lines(spec, "estimator", inputs, "job_name=job_name", v2=True)
            continue
        out.append(line)
        if line == "import sagemaker":
            out += [
                "# sagemaker<3 does not install what its TrainingQueue imports: pip install "
                "nest-asyncio",
                "from sagemaker.aws_batch.training_queue import TrainingQueue",
            ]
    return out


def _v3_queued(spec: JobSpec, lines: list[str]) -> list[str]:
    """V3 code that submits the trainer to the spec's AWS Batch queue (the SDK's
    `TrainingQueue.submit`, which sends the trainer's CreateTrainingJob request to Batch)
    instead of `trainer.train(...)`."""
    inputs = "inputs" if any(line.startswith("inputs = ") for line in lines) else "None"
    out: list[str] = []
    for line in lines:
        if line.startswith("trainer.train("):
            out += _queue_lines(spec, "trainer", inputs)
            continue
        out.append(line)
        if line == "from sagemaker.train import ModelTrainer":
            out.append("from sagemaker.train.aws_batch.training_queue import TrainingQueue")
    return out


def _code_staging(spec: JobSpec, with_dependencies: bool) -> list[str]:
    """Lines that copy the code into a temporary folder the way the app packs it (source
    folder less caches, dependency folders under their names, the requirements file as
    requirements.txt), for an SDK that cannot take the spec's layout as it is; empty when the
    source folder can be given as it is. Sets `source_dir`."""
    from trainer_gui.core.runners.staging import IGNORED_NAMES, REQUIREMENTS

    src = spec.source
    local_dir = src.source_dir and not is_remote(src.source_dir)
    req = spec.resolve(src.requirements) if src.requirements else None
    req_in_place = (
        req is not None and local_dir and req == spec.resolve(src.source_dir or "") / REQUIREMENTS
    )
    deps = src.dependencies if with_dependencies else []
    if not deps and (req is None or req_in_place):
        return []
    ignore = ", ".join(repr(n) for n in IGNORED_NAMES)
    lines = [
        "# The code as the app packs it: the SDK takes one folder with requirements.txt at its",
        "# root (and, in V3, no extra dependency folders).",
        f"source_dir = tempfile.mkdtemp(prefix={spec.name + '-code-'!r})",
        f"_ignore = shutil.ignore_patterns({ignore})",
    ]
    if local_dir:
        lines.append(
            f"shutil.copytree({_local(spec, src.source_dir or '')!r}, source_dir, "
            "dirs_exist_ok=True, ignore=_ignore)"
        )
    for dep in deps:
        folder = spec.resolve(dep)
        lines.append(
            f"shutil.copytree({str(folder)!r}, os.path.join(source_dir, {folder.name!r}), "
            "dirs_exist_ok=True, ignore=_ignore)"
        )
    if req is not None and not req_in_place:
        lines.append(f"shutil.copyfile({str(req)!r}, os.path.join(source_dir, {REQUIREMENTS!r}))")
    return [*lines, ""]


def _bucket_key(uri: str) -> tuple[str, str]:
    from trainer_gui.core.aws.s3 import S3Uri

    parsed = S3Uri.parse(uri)
    return parsed.bucket, parsed.key.rstrip("/")


def _v2_estimator(
    spec: JobSpec, plan: Plan, swept: frozenset[str] = frozenset(), job: bool = True
) -> tuple[list[str], list[str], list[str]]:
    """V2 code up to the estimator: (notes, session and estimator lines, inputs lines).

    `swept` hyperparameters are left out (a tuner sets them per training job). With `job`
    (not a sweep's estimator) the program names its job (`job_name`) for the paths keyed by
    it, as the app does (TensorBoard output)."""
    src = spec.source
    staging = _code_staging(spec, with_dependencies=False)
    args: list[tuple[str, str]] = []
    if src.command is not None:
        args.append(("entry_point", _py(src.command[0])))
    else:
        args.append(("entry_point", _py(src.entry_point)))
    if staging:
        args.append(("source_dir", "source_dir"))
    elif src.source_dir:
        args.append(("source_dir", _py(_local(spec, src.source_dir))))
    if src.dependencies:
        args.append(("dependencies", _py([_local(spec, d) for d in src.dependencies])))
    args += [
        ("role", _py(plan.role_arn)),
        ("base_job_name", _py(spec.name)),
        *_v2_compute(spec),
        ("volume_size", _py(spec.compute.volume_size_gb)),
        ("max_run", _py(spec.max_runtime_seconds)),
        ("output_path", _py(plan.output_uri)),
        ("code_location", _py(plan.base_uri.rstrip("/"))),
        # the image the app resolves (e.g. 2.5.1, where framework_version '2.5' names the
        # 2.5 tag); with image_uri V2 also takes torchrun on CPU instances, as the app does
        ("image_uri", _py(plan.image)),
    ]
    from trainer_gui.core.aws.images import versions_from_image

    versions = None if spec.image else versions_from_image(plan.image)
    if versions is not None:
        args += [("framework_version", _py(versions[0])), ("py_version", _py(versions[1]))]
    hps: dict[str, Any] = {k: v for k, v in spec.all_hyperparameters().items() if k not in swept}
    kind = spec.distribution.kind
    if kind in ("torchrun", "smddp") and spec.distribution.processes_per_host:
        # V2's torch_distributed and smdistributed have no process count; the toolkit reads
        # this key (as the app sends it)
        hps[PROCESSES_PER_HOST_KEY] = spec.distribution.processes_per_host
    grouped = spec.distribution_group_names() if spec.compute.instance_groups else []
    if kind == "torchrun" and grouped:
        # V2 drops a torch_distributed distribution's instance_groups (every group would run
        # torchrun on its own); the toolkit reads this key (as the app sends it)
        hps[DISTRIBUTION_GROUPS_KEY] = grouped
    if hps:
        args.append(("hyperparameters", _py(hps)))
    distribution: dict[str, Any] | None = None
    if kind == "torchrun":
        distribution = {"torch_distributed": {"enabled": True}}
    if kind == "smddp":
        distribution = {"smdistributed": {"dataparallel": {"enabled": True}}}
    if kind == "mpi":
        mpi: dict[str, Any] = {"enabled": True}
        if spec.distribution.processes_per_host:
            mpi["processes_per_host"] = spec.distribution.processes_per_host
        if spec.distribution.mpi_options:
            mpi["custom_mpi_options"] = spec.distribution.mpi_options
        distribution = {"mpi": mpi}
    if distribution is not None:
        code = _py(distribution)
        if grouped:  # the estimator's own InstanceGroup objects, as V2 checks membership
            names = [g.name for g in spec.compute.instance_groups]
            chosen = ", ".join(f"instance_groups[{names.index(n)}]" for n in grouped)
            code = code[:-1] + f", 'instance_groups': [{chosen}]}}"
        args.append(("distribution", code))
    if spec.metric_definitions:
        defs = [{"Name": m.name, "Regex": m.regex} for m in spec.metric_definitions]
        args.append(("metric_definitions", _py(defs)))
    if spec.environment:
        args.append(("environment", _py(dict(spec.environment))))
    if plan.checkpoint_uri:
        args += [
            ("checkpoint_s3_uri", _py(plan.checkpoint_uri)),
            ("checkpoint_local_path", _py(CHECKPOINT_LOCAL_PATH)),
        ]
    if job and spec.tensorboard:
        tb_base = plan.base_uri.rstrip("/")
        args.append(
            (
                "tensorboard_output_config",
                f"TensorBoardOutputConfig(s3_output_path=f{tb_base + '/{job_name}/tensorboard'!r}"
                f", container_local_output_path={TENSORBOARD_LOCAL_PATH!r})",
            )
        )
    if spec.sagemaker.tags:
        tags = [{"Key": k, "Value": v} for k, v in spec.sagemaker.tags.items()]
        args.append(("tags", _py(tags)))
    # the app sends no Debugger or Profiler settings
    args += [("disable_profiler", "True"), ("debugger_hook_config", "False")]
    notes: list[str] = []
    if src.command is not None:
        notes.append("# NOTE: a command job; V2 runs entry_point as a script (arguments dropped).")
    if spec.distribution.kind == "custom":
        notes.append("# NOTE: the custom distribution driver has no V2 equivalent; not exported.")
    lines = [
        f"session = sagemaker.Session(boto_session=boto3.Session(region_name={plan.region!r}))",
        *([f"job_name = name_from_base({spec.name!r})"] if job else []),
        *([] if spec.sagemaker.s3_prefix else ["session.default_bucket()  # made if missing"]),
        "",
        *staging,
        *_v2_instance_groups(spec),
        "estimator = PyTorch(",
        *[f"    {name}={value}," for name, value in args],
        "    sagemaker_session=session,",
        ")",
        "",
    ]
    inputs: list[str] = []
    for channel in spec.channels:
        uri = plan.channel_uris[channel.name]
        options = [repr(uri), "distribution='FullyReplicated'"]
        if channel.content_type:
            options.append(f"content_type={channel.content_type!r}")
        if channel.input_mode != "File":
            options.append(f"input_mode={channel.input_mode!r}")
        inputs.append(f"    {channel.name!r}: TrainingInput({', '.join(options)}),")
        if channel.name in plan.local_channels:  # uploaded where the app puts it
            bucket, key = _bucket_key(uri)
            source = _local(spec, channel.source)
            lines.append(f"session.upload_data({source!r}, bucket={bucket!r}, key_prefix={key!r})")
    return notes, lines, inputs


def _v2_compute(spec: JobSpec) -> list[tuple[str, str]]:
    """instance_type and instance_count, or the `instance_groups` list built before."""
    if spec.compute.instance_groups:
        return [("instance_groups", "instance_groups")]
    return [
        ("instance_type", _py(spec.compute.instance_type)),
        ("instance_count", _py(spec.compute.instance_count)),
    ]


def _v2_instance_groups(spec: JobSpec) -> list[str]:
    groups = spec.compute.instance_groups
    if not groups:
        return []
    return [
        "instance_groups = [",
        *[
            f"    InstanceGroup({g.name!r}, {g.instance_type!r}, {g.instance_count!r}),"
            for g in groups
        ],
        "]",
    ]


def _v2_imports(spec: JobSpec, job: bool) -> list[str]:
    lines = ["import boto3", "import sagemaker"]
    if _code_staging(spec, with_dependencies=False):
        lines = ["import os", "import shutil", "import tempfile", "", *lines]
    if job and spec.tensorboard:
        lines.append("from sagemaker.debugger import TensorBoardOutputConfig")
    if spec.channels:
        lines.append("from sagemaker.inputs import TrainingInput")
    if spec.compute.instance_groups:
        lines.append("from sagemaker.instance_group import InstanceGroup")
    lines.append("from sagemaker.pytorch import PyTorch")
    if job:
        lines.append("from sagemaker.utils import name_from_base")
    return lines


def export_v2(spec: JobSpec, plan: Plan) -> str:
    """SageMaker Python SDK V2: `sagemaker.pytorch.PyTorch` estimator + fit()."""
    notes, estimator, inputs = _v2_estimator(spec, plan)
    lines = [
        f'"""Job {spec.name!r} as SageMaker Python SDK V2 code (exported by trainer-gui).',
        "",
        "pip install 'sagemaker>=2,<3'; credentials come from your AWS profile as usual.",
        '"""',
        "",
        *notes,
        *_v2_imports(spec, job=True),
        "",
        *estimator,
    ]
    fit = "job_name=job_name, wait=True, logs=True"
    if inputs:
        lines += ["inputs = {", *inputs, "}", f"estimator.fit(inputs, {fit})", ""]
    else:
        lines += [f"estimator.fit({fit})", ""]
    if spec.sagemaker.batch_queue:
        lines = _v2_queued(spec, lines)
    return "\n".join(lines)


@dataclass
class _V3Trainer:
    """V3 code for the trainer: module imports, config imports, other imports, its lines
    (session, code staging, channel uploads, the trainer), its input items."""

    modules: list[str]
    imports: list[str]
    extra_imports: list[str]
    lines: list[str]
    channels: list[str]


def _v3_compute(spec: JobSpec) -> list[str]:
    """Compute's instance_type and instance_count, or its instance_groups."""
    groups = spec.compute.instance_groups
    if not groups:
        return [
            f"        instance_type={spec.compute.instance_type!r},",
            f"        instance_count={spec.compute.instance_count!r},",
        ]
    return [
        "        instance_groups=[",
        *[
            f"            InstanceGroup(instance_group_name={g.name!r}, "
            f"instance_type={g.instance_type!r}, instance_count={g.instance_count!r}),"
            for g in groups
        ],
        "        ],",
    ]


def _v3_trainer(
    spec: JobSpec, plan: Plan, swept: frozenset[str] = frozenset(), job: bool = True
) -> _V3Trainer:
    """`trainer = ModelTrainer(...)`, leaving out `swept` hyperparameters (a tuner sets them).

    Its session puts the code, drivers and channels under the app's S3 base (a configured
    s3_prefix included); the code is the tree the app packs (dependency folders and the
    requirements file staged into a copy when the spec has them, the app's ignore patterns)."""
    from trainer_gui.core.runners.staging import IGNORED_NAMES, REQUIREMENTS

    src = spec.source
    imports = ["Compute", "OutputDataConfig", "SourceCode", "StoppingCondition"]
    modules = ["import boto3", "from sagemaker.core.helper.session_helper import Session"]
    staging = _code_staging(spec, with_dependencies=True)
    if staging:
        modules = ["import os", "import shutil", "import tempfile", "", *modules]
    code_args: list[str] = []
    if staging:
        code_args.append("source_dir=source_dir")
    elif src.source_dir:
        code_args.append(f"source_dir={_local(spec, src.source_dir)!r}")
    if src.command is not None:
        import shlex

        code_args.append(f"command={shlex.join(src.command)!r}")
    elif src.entry_point:
        code_args.append(f"entry_script={src.entry_point!r}")
    if src.requirements:  # V3 takes it inside source_dir, where the app puts it
        code_args.append(f"requirements={REQUIREMENTS!r}")
    code_args.append(f"ignore_patterns={list(IGNORED_NAMES)!r}")
    body: list[str] = [
        f"    training_image={plan.image!r},",
        f"    role={plan.role_arn!r},",
        f"    base_job_name={spec.name!r},",
        "    sagemaker_session=session,",
        f"    source_code=SourceCode({', '.join(code_args)}),",
        "    compute=Compute(",
        *_v3_compute(spec),
        f"        volume_size_in_gb={spec.compute.volume_size_gb!r},",
        "    ),",
        f"    stopping_condition=StoppingCondition("
        f"max_runtime_in_seconds={spec.max_runtime_seconds}),",
        f"    output_data_config=OutputDataConfig(s3_output_path={plan.output_uri!r}),",
    ]
    extra_imports: list[str] = []
    if spec.distribution.kind == "torchrun":
        ppn = spec.distribution.processes_per_host
        body.append(f"    distributed=Torchrun({f'process_count_per_node={ppn}' if ppn else ''}),")
        extra_imports.append("from sagemaker.train.distributed import Torchrun")
    if spec.distribution.kind == "mpi":
        import shlex

        mpi_args = []
        if spec.distribution.processes_per_host:
            mpi_args.append(f"process_count_per_node={spec.distribution.processes_per_host}")
        if spec.distribution.mpi_options:
            mpi_args.append(
                f"mpi_additional_options={shlex.split(spec.distribution.mpi_options)!r}"
            )
        body.append(f"    distributed=MPI({', '.join(mpi_args)}),")
        extra_imports.append("from sagemaker.train.distributed import MPI")
    hps = {k: v for k, v in spec.all_hyperparameters().items() if k not in swept}
    if hps:
        body.append(f"    hyperparameters={_py(hps)},")
    if spec.environment:
        body.append(f"    environment={_py(dict(spec.environment))},")
    if plan.checkpoint_uri:
        imports.append("CheckpointConfig")
        body.append(
            f"    checkpoint_config=CheckpointConfig(s3_uri={plan.checkpoint_uri!r}, "
            f"local_path={CHECKPOINT_LOCAL_PATH!r}),"
        )
    if spec.sagemaker.tags:
        imports.append("Tag")
        tags = ", ".join(f"Tag(key={k!r}, value={v!r})" for k, v in spec.sagemaker.tags.items())
        body.append(f"    tags=[{tags}],")
    tail = ")"
    if spec.metric_definitions:
        imports.append("MetricDefinition")
        defs = ", ".join(
            f"MetricDefinition(name={m.name!r}, regex={m.regex!r})" for m in spec.metric_definitions
        )
        tail = f"{tail}.with_metric_definitions([{defs}])"
    if job and spec.tensorboard:
        # SageMaker's layout, as V3 makes it when no S3 path is given: the SDK sends
        # <default bucket>/<default prefix>/<base job name> (the app's base and the spec's
        # name here) and the service writes <that>/<job>/tensorboard-output, so each job's
        # files stay its own although V3 names the job only inside train().
        imports.append("TensorBoardOutputConfig")
        tail = (
            f"{tail}.with_tensorboard_output_config(TensorBoardOutputConfig("
            f"local_path={TENSORBOARD_LOCAL_PATH!r}))"
        )
    base = S3Uri.parse(plan.base_uri.rstrip("/"))
    session_args = [
        f"boto_session=boto3.Session(region_name={plan.region!r})",
        f"default_bucket={base.bucket!r}",
    ]
    if base.key.strip("/"):
        session_args.append(f"default_bucket_prefix={base.key.strip('/')!r}")
    lines = [f"session = Session({', '.join(session_args)})"]
    if not spec.sagemaker.s3_prefix:
        lines.append("session.default_bucket()  # made if missing")
    lines.append("")
    if spec.distribution.kind == "custom":
        lines.append("# NOTE: the custom distribution driver has no V3 equivalent; not exported.")
    if spec.distribution.kind == "smddp":
        lines.append("# NOTE: V3 has no smddp (SageMaker data parallel) setting; not exported.")
    if spec.compute.instance_groups:
        imports.append("InstanceGroup")
    lines += staging
    channels: list[str] = []
    for channel in spec.channels:
        uri = plan.channel_uris[channel.name]
        if channel.name in plan.local_channels:  # uploaded where the app puts it
            bucket, key = _bucket_key(uri)
            source = _local(spec, channel.source)
            lines.append(f"session.upload_data({source!r}, bucket={bucket!r}, key_prefix={key!r})")
        content = f", content_type={channel.content_type!r}" if channel.content_type else ""
        if channel.input_mode == "File":
            imports.append("InputData")
            channels.append(
                f"    InputData(channel_name={channel.name!r}, data_source={uri!r}{content}),"
            )
        else:  # InputData has no input mode: the Channel shape
            imports += ["Channel", "DataSource", "S3DataSource"]
            channels.append(
                f"    Channel(channel_name={channel.name!r}, data_source=DataSource("
                f"s3_data_source=S3DataSource(s3_data_type='S3Prefix', s3_uri={uri!r}, "
                f"s3_data_distribution_type='FullyReplicated')){content}, "
                f"input_mode={channel.input_mode!r}),"
            )
    if any(line.startswith("session.upload_data") for line in lines):
        lines.append("")
    lines += ["trainer = ModelTrainer(", *body, tail, ""]
    return _V3Trainer(modules, imports, extra_imports, lines, channels)


def _v3_inputs(trainer: _V3Trainer) -> list[str]:
    return ["inputs = [", *trainer.channels, "]"]


def export_v3(spec: JobSpec, plan: Plan) -> str:
    """SageMaker Python SDK V3: `sagemaker.train.ModelTrainer` + train()."""
    trainer = _v3_trainer(spec, plan)
    lines = [
        f'"""Job {spec.name!r} as SageMaker Python SDK V3 code (exported by trainer-gui).',
        "",
        "pip install 'sagemaker>=3'; credentials come from your AWS profile as usual.",
        "V3 sends hyperparameter strings unencoded and starts the script through its own",
        "drivers (sm_drivers channel); the script sees the same SM_* channels and model dir.",
        '"""',
        "",
        *trainer.modules,
        "from sagemaker.train import ModelTrainer",
        f"from sagemaker.train.configs import {', '.join(sorted(set(trainer.imports)))}",
        *trainer.extra_imports,
        "",
        *trainer.lines,
    ]
    if trainer.channels:
        lines += [
            *_v3_inputs(trainer),
            "trainer.train(input_data_config=inputs, wait=True, logs=True)",
            "",
        ]
    else:
        lines += ["trainer.train(wait=True, logs=True)", ""]
    if spec.sagemaker.batch_queue:
        lines = _v3_queued(spec, lines)
    return "\n".join(lines)


def export_code(spec: JobSpec, plan: Plan, fmt: str) -> str:
    if fmt == "v3":
        return export_v3(spec, plan)
    if fmt == "v2":
        return export_v2(spec, plan)
    if fmt == "request":
        return export_request(spec, plan)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def export_spec(
    spec: JobSpec, formats: tuple[str, ...] = FORMATS
) -> tuple[dict[str, str], list[str]]:
    """What `sagemaker export` and the export dialog show: the spec with the AWS settings filled
    in, planned under an example job name, in each format, plus notes about placeholders.
    Blocking (may call STS for the default bucket): run it off the GUI thread."""
    from trainer_gui.core.aws.defaults import with_aws_defaults
    from trainer_gui.core.aws.remote_jobs import plan_for_export
    from trainer_gui.core.joblog import make_job_id

    filled = with_aws_defaults(spec, any_backend=True)
    plan, notes = plan_for_export(filled, make_job_id(filled.name))
    if "request" in formats:
        notes += request_uploads(filled, plan)
    return {fmt: export_code(filled, plan, fmt) for fmt in formats}, notes


# -- sweeps (hyperparameter tuning jobs) ---------------------------------------------------------


def _ranges_code(sweep: SweepSpec) -> list[str]:
    """`hyperparameter_ranges = {...}` with the SDK's parameter classes (same in V2 and V3)."""
    lines = ["hyperparameter_ranges = {"]
    for name, p in sweep.sweep.parameters.items():
        if isinstance(p, ContinuousRange):
            scale = SCALING_TYPES[p.scale]
            lines.append(
                f"    {name!r}: ContinuousParameter({p.min!r}, {p.max!r}, scaling_type={scale!r}),"
            )
        elif isinstance(p, IntegerRange):
            scale = SCALING_TYPES[p.scale]
            lines.append(
                f"    {name!r}: IntegerParameter({p.min!r}, {p.max!r}, scaling_type={scale!r}),"
            )
        elif isinstance(p, CategoricalValues):
            lines.append(f"    {name!r}: CategoricalParameter({_py(list(p.values))}),")
    return [*lines, "}", ""]


def _tuner_args(sweep: SweepSpec, strategy_config: str | None) -> list[str]:
    s = sweep.sweep
    metrics = [{"Name": m.name, "Regex": m.regex} for m in sweep.job.metric_definitions]
    args = [
        f"objective_metric_name={s.objective.metric!r}",
        f"objective_type={GOALS[s.objective.goal]!r}",
        "hyperparameter_ranges=hyperparameter_ranges",
        f"metric_definitions={_py(metrics)}",
        f"strategy={STRATEGIES[s.strategy]!r}",
    ]
    if s.max_trials is not None:
        args.append(f"max_jobs={s.max_trials}")
    args.append(f"max_parallel_jobs={s.max_parallel}")
    if s.max_runtime_seconds is not None:
        args.append(f"max_runtime_in_seconds={s.max_runtime_seconds}")
    args.append(f"early_stopping_type={EARLY_STOPPING[s.early_stopping]!r}")
    if s.seed is not None:
        args.append(f"random_seed={s.seed}")
    if strategy_config:
        args.append(f"strategy_config={strategy_config}")
    return args


def _hyperband_args(sweep: SweepSpec) -> str | None:
    bounds = sweep.sweep.hyperband
    if sweep.sweep.strategy != "hyperband":
        return None
    parts = []
    if bounds.min_resource is not None:
        parts.append(f"min_resource={bounds.min_resource}")
    if bounds.max_resource is not None:
        parts.append(f"max_resource={bounds.max_resource}")
    return ", ".join(parts) if parts else None


def export_sweep_request(sweep: SweepSpec, plan: Plan, name: str) -> str:
    """The CreateHyperParameterTuningJob request the app sends, as JSON."""
    from trainer_gui.core.aws.tuning import tuning_request_for_plan

    return json.dumps(tuning_request_for_plan(sweep, plan, name), indent=2) + "\n"


def export_sweep_v2(sweep: SweepSpec, plan: Plan, name: str) -> str:
    """SDK V2: the spec's PyTorch estimator and a `sagemaker.tuner.HyperparameterTuner`."""
    spec = sweep.job
    notes, estimator, inputs = _v2_estimator(
        spec, plan, frozenset(sweep.sweep.parameters), job=False
    )
    hyperband = _hyperband_args(sweep)
    imports = ["CategoricalParameter", "ContinuousParameter", "HyperparameterTuner"]
    imports.append("IntegerParameter")
    config = None
    if hyperband:
        imports += ["HyperbandStrategyConfig", "StrategyConfig"]
        config = f"StrategyConfig(hyperband_strategy_config=HyperbandStrategyConfig({hyperband}))"
    args = [f"    {a}," for a in _tuner_args(sweep, config)]
    lines = [
        f'"""Sweep {spec.name!r} as SageMaker Python SDK V2 code (exported by trainer-gui).',
        "",
        "pip install 'sagemaker>=2,<3'; credentials come from your AWS profile as usual.",
        "Each training job of the tuning job runs the estimator with the tuned values.",
        '"""',
        "",
        *notes,
        *_v2_imports(spec, job=False),
        f"from sagemaker.tuner import {', '.join(sorted(imports))}",
        "",
        *estimator,
        *_ranges_code(sweep),
        "tuner = HyperparameterTuner(",
        "    estimator,",
        *args,
        f"    base_tuning_job_name={_base_name(spec.name)!r},",
        ")",
        "",
    ]
    fit = f"job_name={name!r}, wait=True"
    if inputs:
        lines += ["inputs = {", *inputs, "}", f"tuner.fit(inputs, {fit})"]
    else:
        lines.append(f"tuner.fit({fit})")
    lines += ["print(tuner.best_training_job())", ""]
    return "\n".join(lines)


def export_sweep_v3(sweep: SweepSpec, plan: Plan, name: str) -> str:
    """SDK V3: the spec's ModelTrainer and a `sagemaker.train.tuner.HyperparameterTuner`
    (whose tuning job is a `sagemaker.core.resources.HyperParameterTuningJob`)."""
    spec = sweep.job
    trainer = _v3_trainer(spec, plan, frozenset(sweep.sweep.parameters), job=False)
    hyperband = _hyperband_args(sweep)
    config = None
    shapes: list[str] = []
    if hyperband:
        shapes = ["HyperParameterTuningJobStrategyConfig", "HyperbandStrategyConfig"]
        config = (
            "HyperParameterTuningJobStrategyConfig("
            f"hyperband_strategy_config=HyperbandStrategyConfig({hyperband}))"
        )
    args = [f"    {a}," for a in _tuner_args(sweep, config)]
    lines = [
        f'"""Sweep {spec.name!r} as SageMaker Python SDK V3 code (exported by trainer-gui).',
        "",
        "pip install 'sagemaker>=3'; credentials come from your AWS profile as usual.",
        "Each training job of the tuning job runs the trainer with the tuned values.",
        '"""',
        "",
        "from sagemaker.core.parameter import (",
        "    CategoricalParameter,",
        "    ContinuousParameter,",
        "    IntegerParameter,",
        ")",
        *([f"from sagemaker.core.shapes import {', '.join(sorted(shapes))}"] if shapes else []),
        *trainer.modules,
        "from sagemaker.train import ModelTrainer",
        f"from sagemaker.train.configs import {', '.join(sorted(set(trainer.imports)))}",
        "from sagemaker.train.tuner import HyperparameterTuner",
        *trainer.extra_imports,
        "",
        *trainer.lines,
        *_ranges_code(sweep),
        "tuner = HyperparameterTuner(",
        "    model_trainer=trainer,",
        *args,
        f"    base_tuning_job_name={_base_name(spec.name)!r},",
        ")",
        "",
    ]
    if trainer.channels:
        lines += [*_v3_inputs(trainer), f"tuner.tune(inputs=inputs, job_name={name!r}, wait=True)"]
    else:
        lines.append(f"tuner.tune(job_name={name!r}, wait=True)")
    lines += ["print(tuner.best_training_job())", ""]
    return "\n".join(lines)


def _base_name(name: str) -> str:
    """A base for the SDKs' own tuning job names (they add a timestamp within 32 characters)."""
    return name[:18].rstrip("-")


def export_sweep_code(sweep: SweepSpec, plan: Plan, name: str, fmt: str) -> str:
    """The sweep in one format: v3 | v2 | request (json is taken for request)."""
    if fmt == "v3":
        return export_sweep_v3(sweep, plan, name)
    if fmt == "v2":
        return export_sweep_v2(sweep, plan, name)
    if fmt in ("request", "json"):
        return export_sweep_request(sweep, plan, name)
    raise ValueError(f"unknown export format {fmt!r}; use one of v3, v2, json")


def export_sweep(
    sweep: SweepSpec, formats: tuple[str, ...] = FORMATS, name: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """What `sweep export` shows: the sweep with the AWS settings filled in, planned under a
    tuning job name, in each format, plus notes about placeholders. Blocking (may call STS)."""
    from trainer_gui.core.aws.defaults import with_aws_defaults
    from trainer_gui.core.aws.remote_jobs import plan_for_export
    from trainer_gui.core.aws.tuning import check_tuning_name, tuning_job_name

    job = with_aws_defaults(sweep.job, any_backend=True)
    filled = sweep.model_copy(update={"job": job})
    on_sagemaker = job.model_copy(
        update={"compute": job.compute.model_copy(update={"backend": Backend.SAGEMAKER})}
    )
    problems = sweep_problems(on_sagemaker, sweep.sweep)
    if problems:  # a local sweep may use what SageMaker's tuning does not take
        raise UserError("on SageMaker: " + "; ".join(problems))
    name = check_tuning_name(name or tuning_job_name(job.name))
    plan, notes = plan_for_export(job, name)
    return {fmt: export_sweep_code(filled, plan, name, fmt) for fmt in formats}, notes
