"""Preflight: a SageMaker spec turned into a short local probe on a slice of its data.

A cloud job that crashes in its first minute still costs an instance start and a wait for it.
The probe runs the same code (in the same image when Docker has it here, else as a local
process) on the first files of each channel, until the first metric and a checkpoint write, or
a time limit. This module holds what needs no job: the slicing, the spec turned local and the
verdict over what a probe job showed; `services/preflight.py` runs the probe job.

The user's data is only read: each slice is a copy under the app's data folder
(`<data>/preflight/<id>/<channel>`), made of whole files in sorted order, with a cut-down copy
of the first file only when even that one is over the size limit.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from trainer_gui.core.errors import UserError
from trainer_gui.core.paths import data_home, remove_tree
from trainer_gui.core.preflight_limits import (  # defaults, here for those who import them here
    DEFAULT_MAX_FILES as DEFAULT_MAX_FILES,
)
from trainer_gui.core.preflight_limits import DEFAULT_MAX_MB as DEFAULT_MAX_MB
from trainer_gui.core.preflight_limits import DEFAULT_TIME_LIMIT as DEFAULT_TIME_LIMIT
from trainer_gui.core.spec.model import Backend, ChannelSpec, JobSpec, is_remote

log = logging.getLogger(__name__)

#: After the first metric, how long the probe waits for a checkpoint write before it calls the
#: metric enough (a script may not write checkpoints at all).
DEFAULT_CHECKPOINT_GRACE = 30.0
#: The backend id of a cloud job that names the preflight job it was checked by.
PREFLIGHT_KEY = "preflight"
#: The backend id a preflight job carries: the cloud spec's name it probed.
PREFLIGHT_OF_KEY = "preflight_of"
#: At most this many hosts in a Docker probe: enough to exercise multi-host start-up.
MAX_PROBE_HOSTS = 2


@dataclass(frozen=True)
class PreflightLimits:
    """How much data and time a probe gets."""

    max_files: int = DEFAULT_MAX_FILES
    max_mb: float = DEFAULT_MAX_MB
    time_limit: float = DEFAULT_TIME_LIMIT
    checkpoint_grace: float = DEFAULT_CHECKPOINT_GRACE

    def __post_init__(self) -> None:
        if self.max_files < 1:
            raise UserError(f"preflight: max files is {self.max_files}; give 1 or more")
        if self.max_mb <= 0:
            raise UserError(f"preflight: the size limit is {self.max_mb} MB; give more than 0")
        if self.time_limit <= 0:
            raise UserError(f"preflight: the time limit is {self.time_limit} s; give more than 0")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)


@dataclass
class PreflightResult:
    """What a probe found: `ok`, and why (a failure's reason, or a note on a pass)."""

    ok: bool
    reason: str
    job_id: str | None = None
    seconds: float = 0.0
    backend: str = ""
    metric: str | None = None
    checkpoint: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "passed" if self.ok else "failed"
        where = f" ({self.backend}, job {self.job_id})" if self.job_id else ""
        text = f"Preflight {verdict} in {self.seconds:.0f} s{where}: {self.reason}"
        return text + "".join(f"\n{note}" for note in self.notes)


@dataclass(frozen=True)
class SliceInfo:
    """One channel's slice: where it is and what went in."""

    channel: str
    path: Path
    files: int
    size: int
    truncated: bool = False


# -- slicing ------------------------------------------------------------------------------------


def _files_in(source: Path, rel: Path = Path()) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to `source`) in path order, lazily (a channel may hold millions);
    links to files are read through (as the channel copy does), linked folders and special
    files are left out."""
    if source.is_file():
        yield source, Path(source.name)
        return
    try:
        entries = sorted(os.scandir(source), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _files_in(Path(entry.path), rel / entry.name)
            elif stat.S_ISREG(entry.stat(follow_symlinks=True).st_mode):
                yield Path(entry.path), rel / entry.name
        except OSError:
            continue  # a broken link, or gone meanwhile


def _copy_prefix(source: Path, target: Path, limit: int) -> None:
    """The first `limit` bytes, cut after the last full line when there is one."""
    with open(source, "rb") as fh:
        data = fh.read(limit)
    cut = data.rfind(b"\n")
    if cut > 0:
        data = data[: cut + 1]
    target.write_bytes(data)


def slice_channel(source: Path, target: Path, limits: PreflightLimits, name: str = "") -> SliceInfo:
    """Copy the first files of `source` (a folder or a file) into `target` (a new folder)."""
    if not source.exists():
        raise UserError(f"channel {name!r}: {source} does not exist")
    target.mkdir(parents=True, exist_ok=False)
    root = target.resolve()
    count = 0
    size = 0
    truncated = False
    for path, rel in _files_in(source):
        if count >= limits.max_files:
            break
        dest = (target / rel).resolve()
        if root not in dest.parents:  # a name that would lead out of the slice
            raise UserError(f"channel {name!r}: {rel} is not a plain file name")
        file_size = path.stat().st_size
        if size + file_size > limits.max_bytes:
            if count:
                break  # whole files only, once there is one
            dest.parent.mkdir(parents=True, exist_ok=True)
            _copy_prefix(path, dest, limits.max_bytes)
            size = dest.stat().st_size
            count, truncated = 1, True
            break
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        count += 1
        size += file_size
    if count == 0:
        raise UserError(f"channel {name!r}: {source} has no files to take a slice of")
    return SliceInfo(name, target, count, size, truncated)


def _s3_client_for(spec: JobSpec) -> Any:
    from trainer_gui.core.aws.session import AwsSession

    return AwsSession(spec.sagemaker.profile, spec.sagemaker.region).client("s3")


def _s3_objects(s3: Any, bucket: str, key: str) -> Iterator[tuple[str, str, int]]:
    """(key, path in the channel, size): the objects under `key` as a folder, in key order, or
    the one object `key` names when nothing is under it."""
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    found = False
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            name = str(obj["Key"])
            if name.endswith("/"):
                continue  # a console "folder" marker
            found = True
            yield name, name[len(prefix) :], int(obj["Size"])
    if not found and key and not key.endswith("/"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except Exception:  # no such object: the channel is empty (said below)
            return
        yield key, PurePosixPath(key).name, int(head["ContentLength"])


def slice_s3_channel(
    s3: Any, uri: str, target: Path, limits: PreflightLimits, name: str = ""
) -> SliceInfo:
    """The first objects of an s3:// channel, downloaded into `target` (a new folder): the same
    rules as a local slice, in key order."""
    from trainer_gui.core.aws.errors import aws_errors
    from trainer_gui.core.aws.s3 import S3Uri

    source = S3Uri.parse(uri)
    target.mkdir(parents=True, exist_ok=False)
    root = target.resolve()
    count = size = 0
    truncated = False
    with aws_errors(f"reading {uri} for the preflight", source.bucket):
        for key, rel, object_size in _s3_objects(s3, source.bucket, source.key):
            if count >= limits.max_files:
                break
            parts = PurePosixPath(rel).parts
            dest = target.joinpath(*parts).resolve() if parts else root
            if not parts or ".." in parts or root not in dest.parents:
                raise UserError(f"channel {name!r}: the object {key!r} has no safe file name")
            if size + object_size > limits.max_bytes and count:
                break  # whole files only, once there is one
            dest.parent.mkdir(parents=True, exist_ok=True)
            if size + object_size > limits.max_bytes:
                body = s3.get_object(
                    Bucket=source.bucket, Key=key, Range=f"bytes=0-{limits.max_bytes - 1}"
                )["Body"].read()
                cut = body.rfind(b"\n")
                dest.write_bytes(body[: cut + 1] if cut > 0 else body)
                count, size, truncated = 1, dest.stat().st_size, True
                break
            s3.download_file(source.bucket, key, str(dest))
            count += 1
            size += object_size
    if count == 0:
        raise UserError(f"channel {name!r}: {uri} has no objects to take a slice of")
    return SliceInfo(name, target, count, size, truncated)


def preflight_root() -> Path:
    path = data_home() / "preflight"
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the spec -----------------------------------------------------------------------------------


def docker_image_of(spec: JobSpec) -> str | None:
    """The image the cloud job would run: the spec's, or the SageMaker PyTorch image for its
    region (None when that cannot be worked out here)."""
    if spec.image:
        return spec.image
    region = spec.sagemaker.region
    if not region:
        return None
    try:
        from trainer_gui.core.aws.images import pytorch_training_image

        return pytorch_training_image(
            spec.sagemaker.framework_version,
            spec.sagemaker.py_version,
            region,
            spec.compute.image_instance_type,
        )
    except Exception:  # an unknown version or region: no image to look for
        return None


def docker_problem(spec: JobSpec) -> str | None:
    """Why `spec` (a docker spec) cannot run here, or None; the docker runner's own check."""
    try:
        from trainer_gui.core.runners.docker import DockerRunner

        DockerRunner().check(spec)
    except UserError as exc:
        return str(exc)
    except Exception as exc:  # docker missing altogether, an engine that does not answer
        return f"{type(exc).__name__}: {exc}"
    return None


def _local_spec(
    spec: JobSpec, channels: list[ChannelSpec], backend: Backend, hosts: int
) -> JobSpec:
    data = spec.model_dump(mode="json")
    data["name"] = _probe_name(spec.name)
    data["image"] = spec.image
    data["compute"] = {
        **data["compute"],
        "backend": backend.value,
        "instance_count": hosts,
        "gpus": 0,
        # a probe runs on one kind of host: instance groups become plain hosts
        "instance_groups": [],
        "instance_type": spec.compute.image_instance_type,
    }
    data["distribution"] = {**data["distribution"], "instance_groups": []}
    data["channels"] = [c.model_dump(mode="json") for c in channels]
    data["checkpoint_dir"] = None  # never the user's folder: a probe must not resume or write it
    data["checkpoint_s3_uri"] = None
    data["output_path"] = None  # its artifacts stay in its own run folder
    out = JobSpec.model_validate(data)
    return out.with_base_dir(spec.base_dir)


def _probe_name(name: str) -> str:
    suffix = "-preflight"
    return (name[: 63 - len(suffix)].rstrip("-") or "job") + suffix


def preflight_spec(
    spec: JobSpec,
    limits: PreflightLimits | None = None,
    *,
    folder: Path | None = None,
    docker_check: Callable[[JobSpec], str | None] = docker_problem,
    s3_client: Any = None,
) -> tuple[JobSpec, list[SliceInfo], list[str]]:
    """`spec` as a local probe: (the probe spec, its slices, notes on what differs).

    Docker with the cloud image when the docker runner's checks pass for it, else
    local-process; every local channel replaced by a slice under `folder` (a new folder under
    the data folder by default); the runtime cut to the time limit; no user checkpoint or
    output folder. An s3:// channel's slice is its first objects, downloaded (`s3_client`, or
    one for the spec's profile and region)."""
    limits = limits or PreflightLimits()
    notes: list[str] = []
    if spec.source.source_dir and is_remote(spec.source.source_dir):
        raise UserError(
            f"preflight: the source folder is {spec.source.source_dir}; a preflight runs local code"
        )
    folder = folder or preflight_root() / uuid.uuid4().hex[:12]
    slices: list[SliceInfo] = []
    channels: list[ChannelSpec] = []
    try:
        for channel in spec.channels:
            target = folder / channel.name
            if is_remote(channel.source):
                if s3_client is None:
                    s3_client = _s3_client_for(spec)
                info = slice_s3_channel(s3_client, channel.source, target, limits, channel.name)
                notes.append(f"channel {channel.name!r}: the first {info.files} object(s) read")
            else:
                info = slice_channel(spec.resolve(channel.source), target, limits, channel.name)
            slices.append(info)
            if info.truncated:
                notes.append(
                    f"channel {channel.name!r}: its first file is over {limits.max_mb:g} MB; "
                    "the probe got its first part"
                )
            channels.append(
                ChannelSpec(
                    name=channel.name,
                    source=str(info.path),
                    content_type=channel.content_type,
                    input_mode="File",
                )
            )
        runtime = int(limits.time_limit) + 60  # the probe stops it first; this is the backstop
        base = spec.model_copy(update={"max_runtime_seconds": runtime})
        base.with_base_dir(spec.base_dir)
        image = docker_image_of(spec)
        backend, hosts = Backend.LOCAL_PROCESS, 1
        if image is not None:
            candidate = _local_spec(base, channels, Backend.DOCKER, 1).model_copy(
                update={"image": image}
            )
            candidate.with_base_dir(spec.base_dir)
            problem = docker_check(candidate)
            if problem is None:
                backend, hosts = Backend.DOCKER, min(spec.compute.host_count, MAX_PROBE_HOSTS)
                base = base.model_copy(update={"image": image})
                base.with_base_dir(spec.base_dir)
            else:
                notes.append(f"not in the job's image ({problem}); ran as a local process")
        else:
            notes.append("the job's image is not known here; ran as a local process")
        if backend is Backend.LOCAL_PROCESS and spec.compute.host_count > 1:
            notes.append(f"one host of {spec.compute.host_count}")
        if backend is Backend.LOCAL_PROCESS:
            base = base.model_copy(update={"image": None})
            base.with_base_dir(spec.base_dir)
        probe = _local_spec(base, channels, backend, hosts)
    except BaseException:
        remove_tree(folder, "a preflight's slices")
        raise
    return probe, slices, notes


def discard_slices(slices: list[SliceInfo]) -> None:
    """Remove a probe's slice folder (all slices of one probe share it)."""
    folders = {info.path.parent for info in slices}
    for folder in folders:
        if folder.parent == preflight_root():
            remove_tree(folder, "a preflight's slices")


# -- the verdict ------------------------------------------------------------------------------


def checkpoint_written(run_dir: Path) -> str | None:
    """The first file under any host's /opt/ml/checkpoints in a local run folder, or None."""
    hosts = run_dir / "hosts"
    if not hosts.is_dir():
        return None
    for host in sorted(hosts.iterdir()):
        checkpoints = host / "checkpoints"
        if not checkpoints.is_dir() or checkpoints.is_symlink():
            continue
        for path, rel in _files_in(checkpoints):
            del path
            return f"{host.name}/checkpoints/{rel.as_posix()}"
    return None


def wanted_metrics(spec: JobSpec) -> set[str] | None:
    """The metric names that count as "a first metric": the spec's definitions, or any (None)
    when it has none (auto-detected ones then)."""
    names = {m.name for m in spec.metric_definitions}
    return names or None
