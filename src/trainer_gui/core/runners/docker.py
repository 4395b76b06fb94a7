"""Local Docker backend: one container per host (`algo-1..N`), as SageMaker starts them.

No docker-compose. Every container and network carries `trainer-gui.job=<id>` so nothing is ever
lost track of: containers keep running when the app exits, the next process re-attaches by label,
and orphans are removed. Two launch modes, picked from the image:

* images with the SageMaker training toolkit (`SAGEMAKER_TRAINING_MODULE` in their environment)
  run `train` and the toolkit does the rest, exactly as on SageMaker;
* any other image with Python gets the same world from the project's contract code:
  - "direct": a `.py` entry point on CPU hosts with no requirements.txt and no distribution
    (the common case) runs as `python3 train.py <args>` with the SM_* environment computed
    here by the same `build_environment` the driver uses, from the same config files, the
    image's environment and the engine's CPU count; `/opt/ml/output/success` or `failure`
    (the toolkit's text, from the exit code and the last stderr lines) is written when the
    container exits. No second interpreter starts before the script (the driver's costs
    ~100 ms a job in a container on 2 CPUs; see bench/README.md). The next run of the same
    spec is handed to a spare container started ahead with torch imported (`docker_warm.py`,
    issue 18) unless warm starts are off;
  - "driver": everything else (torchrun and its DNS wait, custom drivers, commands,
    requirements.txt, GPUs, whose count only the container can tell) runs the stdlib driver,
    mounted read-only, which sets the same environment and runs `python` or `torchrun` itself.

Networking, as the contract needs it and no more:

* one host: the container's hostname is `algo-1` (Docker lists it in /etc/hosts, so it resolves
  to the container itself) on Docker's default bridge; a per-job network would add nothing a
  single host can reach, and costs a network create and remove (~0.3 s) per job;
* several hosts: a per-job bridge network `tg-<job>` where each container is `algo-N` by alias;
* several hosts *without* a distributed launcher: the hosts run independently and may finish at
  different times, but on SageMaker every host's name resolves for the whole job (the toolkit
  blocks until all hosts resolve, for up to 15 minutes, before it starts the script). Docker
  drops a container's name from the network's DNS the moment it exits, so each host's network
  namespace is held by a tiny `algo-N` holder container (`sh -c read`, the job's own image) that
  lives until the job ends, and the host's training container joins that namespace. Distributed
  jobs need no holders: no host can finish before every host has joined the rendezvous.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import posixpath
import queue
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_gui.core import contract, safety
from trainer_gui.core.contract import HostLayout
from trainer_gui.core.errors import BackendUnavailable, UserError
from trainer_gui.core.resources import GPU_IDS_KEY
from trainer_gui.core.runners import channels, docker_warm, mpi_ssh, sysmetrics
from trainer_gui.core.runners.base import (
    BATCH_LINES,
    EventSink,
    JobContext,
    JobHandle,
    Runner,
    emit_phase,
    emit_status,
    follow_in_thread,
    start_in_thread,
    stop_grace_seconds,
)
from trainer_gui.core.runners.events import BackendInfo, JobStatus, LogBatch, LogLine, Phase
from trainer_gui.core.runners.follow import (
    START_MARKER,
    STARTING_DIED,
    Ending,
    Watch,
    follow_and_finish,
    read_start_marker,
    start_and_follow,
    write_start_marker,
)
from trainer_gui.core.runners.staging import stage_code
from trainer_gui.core.runners.tail import decode
from trainer_gui.core.spec.model import Backend, JobSpec

if TYPE_CHECKING:
    from docker.models.containers import Container

    from docker import DockerClient

log = logging.getLogger(__name__)

LABEL_JOB = "trainer-gui.job"
LABEL_HOST = "trainer-gui.host"
LABEL_ROLE = "trainer-gui.role"
LABEL_RUN_DIR = "trainer-gui.run-dir"
LABEL_LAUNCH = "trainer-gui.launch"
LAUNCH_TOOLKIT = "toolkit"
LAUNCH_DRIVER = "driver"
LAUNCH_DIRECT = "direct"
ROLE_TRAIN = "train"
ROLE_HOLDER = "network-holder"
DRIVER_MOUNT = "/opt/trainer-gui/driver.py"
CPU_IMAGE = "trainer-gui/train-cpu:latest"
GPU_IMAGE = "trainer-gui/train-gpu:latest"
#: The direct launch's interpreter. Exec'd by docker-init itself, not through a shell: sh drops
#: variables whose names are not identifiers from the environment it passes on, and the
#: toolkit exports `SM_HP_<KEY>` with hyphens kept (SM_HP_BATCH-SIZE). Whether the image has
#: it on its PATH is looked up once per image in the first created container (a few stat
#: requests); one without falls back to the driver (whose launcher also tries `python`).
DIRECT_PYTHON = "python3"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOLKIT_ENV = "SAGEMAKER_TRAINING_MODULE"


def default_image(spec: JobSpec) -> str:
    return spec.image or (GPU_IMAGE if spec.uses_gpu else CPU_IMAGE)


def network_name(job_id: str) -> str:
    return f"tg-{job_id}"


def container_name(job_id: str, host: str) -> str:
    return f"{job_id}-{host}"


def holder_name(job_id: str, host: str) -> str:
    return f"{job_id}-{host}-net"


def uses_job_network(spec: JobSpec) -> bool:
    """Several hosts talk over a per-job network; one host needs none (see the module doc)."""
    return spec.compute.host_count > 1


def uses_mpi_ssh(spec: JobSpec) -> bool:
    """An MPI job over several hosts: mpirun reaches them over SSH with the job's own keys."""
    return spec.distribution.kind == "mpi" and spec.compute.host_count > 1


def uses_holders(spec: JobSpec) -> bool:
    """Independent hosts keep their names resolvable until the job ends (see the module doc);
    so do a heterogeneous cluster's, whose groups outside the distribution run on their own."""
    independent = spec.distribution.kind == "none" or bool(spec.compute.instance_groups)
    return uses_job_network(spec) and independent


def _in_parallel(calls: list[Any]) -> list[BaseException | None]:
    """Run zero-argument callables at once (Docker serves concurrent requests); their errors."""
    errors: list[BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            calls[index]()
        except BaseException as exc:
            errors[index] = exc

    if len(calls) == 1:
        run(0)
        return errors
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


# -- docker log timestamps -> resumable offsets ---------------------------------------------------


def parse_timestamp(stamp: str) -> tuple[int, int]:
    """RFC 3339 with nanoseconds (Docker trims trailing zeros) -> (epoch seconds, nanoseconds)."""
    main, _, frac = stamp.rstrip("Z").partition(".")
    seconds = int(
        datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    )
    return seconds, int((frac + "000000000")[:9]) if frac else 0


def format_offset(stamp: tuple[int, int], count: int) -> str:
    return f"{stamp[0]}.{stamp[1]:09d}:{count}"


def parse_offset(offset: str | None) -> tuple[tuple[int, int], int] | None:
    if not offset or ":" not in offset:
        return None
    when, _, count = offset.partition(":")
    sec, _, nanos = when.partition(".")
    try:
        return (int(sec), int(nanos or 0)), int(count)
    except ValueError:
        return None


class _LogReader(threading.Thread):
    """Follows one stream of one container and queues (line, offset) in order."""

    def __init__(
        self,
        container: Container,
        host: str,
        stream: str,
        out: queue.Queue[tuple[LogLine, tuple[str, str], str]],
        resume: str | None,
    ) -> None:
        super().__init__(name=f"logs-{container.name}-{stream}", daemon=True)
        self.container = container
        self.host = host
        self.stream = stream
        self.out = out
        self.resume = parse_offset(resume)
        self.failed: BaseException | None = None

    def run(self) -> None:
        kwargs: dict[str, Any] = {
            "stdout": self.stream == "stdout",
            "stderr": self.stream == "stderr",
            "stream": True,
            "follow": True,
            "timestamps": True,
        }
        # Counting starts afresh: Docker re-sends the whole second the offset lies in, and the
        # n lines already stored at the offset's timestamp are the first n it sends with it.
        last: tuple[int, int] | None = None
        same = 0
        skip_until: tuple[int, int] | None = None
        skip_same = 0
        if self.resume is not None:
            skip_until, skip_same = self.resume
            kwargs["since"] = skip_until[0]
        buffer = b""
        try:
            for chunk in self.container.logs(**kwargs):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    last, same = self._emit(raw, last, same, skip_until, skip_same)
            if buffer.strip():
                self._emit(buffer, last, same, skip_until, skip_same)
        except Exception as exc:
            self.failed = exc

    def _emit(
        self,
        raw: bytes,
        last: tuple[int, int] | None,
        same: int,
        skip_until: tuple[int, int] | None,
        skip_same: int,
    ) -> tuple[tuple[int, int] | None, int]:
        stamp_raw, _, text = raw.partition(b" ")
        try:
            stamp = parse_timestamp(stamp_raw.decode())
        except ValueError:
            return last, same
        count = same + 1 if stamp == last else 1
        if skip_until is not None and (
            stamp < skip_until or (stamp == skip_until and count <= skip_same)
        ):
            return stamp, count
        line = LogLine(
            self.host, self.stream, decode(text.rstrip(b"\r")), stamp[0] + stamp[1] / 1e9
        )
        self.out.put((line, (self.host, self.stream), format_offset(stamp, count)))
        return stamp, count


class DockerRunner(Runner):
    backend = Backend.DOCKER.value

    def __init__(self, client: DockerClient | None = None, grace: float | None = None) -> None:
        self._client_obj = client
        self.grace = stop_grace_seconds() if grace is None else grace
        self._lock = threading.Lock()
        self._ncpu: int | None = None
        self._image_paths: dict[str, str] = {}
        self._python3: dict[tuple[str, str], bool] = {}

    @property
    def client(self) -> DockerClient:
        with self._lock:
            if self._client_obj is None:
                from trainer_gui.core.docker_util import docker_client

                self._client_obj = docker_client()
            return self._client_obj

    # -- checks -----------------------------------------------------------------------------

    def check(self, spec: JobSpec, python: str | None = None) -> None:
        del python
        import docker.errors

        client = self.client
        image = default_image(spec)
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            kind = "train-gpu" if spec.uses_gpu else "train-cpu"
            hint = (
                f"build it with `trainer-gui images build {kind}`"
                if image in (CPU_IMAGE, GPU_IMAGE)
                else f"pull it with `docker pull {image}` or build it"
            )
            raise UserError(f"Docker image {image!r} is not on this machine; {hint}") from None
        except docker.errors.APIError as exc:
            raise BackendUnavailable(
                f"Docker could not look up {image!r}: {exc.explanation}"
            ) from None
        if spec.uses_gpu:
            runtimes = client.info().get("Runtimes") or {}
            if "nvidia" not in runtimes:
                raise BackendUnavailable(
                    "this job asks for GPUs but the Docker engine has no GPU runtime; install "
                    "the NVIDIA Container Toolkit (`nvidia-ctk runtime configure --runtime=docker`)"
                    " and restart Docker, or set compute.gpus to 0"
                )
        for channel in spec.channels:
            if channel.source.startswith("s3://"):
                raise UserError(
                    f"channel {channel.name!r} reads {channel.source}; local Docker jobs read "
                    "local "
                    "folders (download it first, or use the sagemaker backend)"
                )
            if not spec.resolve(channel.source).exists():
                raise UserError(f"channel {channel.name!r}: {channel.source} does not exist")

    def _image_env(self, image: str) -> tuple[str, dict[str, str]]:
        """(image id, its environment)."""
        attrs = self.client.images.get(image).attrs
        items = attrs.get("Config", {}).get("Env") or []
        env = dict(str(item).partition("=")[::2] for item in items)
        image_id = str(attrs.get("Id", image))
        self._image_paths[image_id] = env.get("PATH") or DEFAULT_PATH
        return image_id, env

    def _toolkit_image(self, image: str) -> bool:
        return TOOLKIT_ENV in self._image_env(image)[1]

    def _engine_cpus(self) -> int:
        """What multiprocessing.cpu_count() says in a container: the engine's CPUs."""
        if self._ncpu is None:
            self._ncpu = int(self.client.info().get("NCPU") or 0) or contract.toolkit.cpu_count()
        return self._ncpu

    def _path(self, ctx: JobContext, image_id: str) -> str:
        return ctx.spec.environment.get("PATH") or self._image_paths.get(image_id, DEFAULT_PATH)

    def _has_python3(self, container_id: str, key: tuple[str, str]) -> bool:
        """Whether DIRECT_PYTHON is an executable on the PATH, asked of a created container."""
        if key not in self._python3:
            found = False
            try:
                for folder in key[1].split(":"):
                    stat = self._stat(container_id, posixpath.join(folder or "/", DIRECT_PYTHON))
                    if stat and stat.get("linkTarget"):
                        stat = self._stat(container_id, str(stat["linkTarget"]))
                    mode = int(stat.get("mode", 0)) if stat else 0
                    if mode & 0o111 and not mode & (1 << 31):  # executable, not a directory
                        found = True
                        break
            except Exception as exc:  # the driver's launcher works either way
                log.debug("looking up %s in %s: %s", DIRECT_PYTHON, container_id, exc)
            self._python3[key] = found
        return self._python3[key]

    def _stat(self, container_id: str, path: str) -> dict[str, Any] | None:
        import base64

        api = self.client.api
        url = api._url("/containers/{0}/archive", container_id)
        response = api.head(url, params={"path": path})
        header = response.headers.get("X-Docker-Container-Path-Stat")
        if response.status_code != 200 or not header:
            return None
        stat: dict[str, Any] = json.loads(base64.b64decode(header))
        return stat

    def _launch(self, ctx: JobContext, toolkit: bool, image_id: str) -> str:
        spec = ctx.spec
        if toolkit and spec.distribution.kind != "custom" and spec.source.command is None:
            return LAUNCH_TOOLKIT
        direct = (
            spec.source.command is None
            and (spec.source.entry_point or "").endswith(".py")
            and spec.distribution.kind == "none"
            and not spec.uses_gpu
            and not (ctx.run_dir / "code" / "requirements.txt").exists()
            and self._python3.get((image_id, self._path(ctx, image_id)), True)
        )
        return LAUNCH_DIRECT if direct else LAUNCH_DRIVER

    @staticmethod
    def _direct_command(layout: HostLayout) -> list[str]:
        """`plan_command` for the host: [python3, train.py, args...]."""
        hps = json.loads((layout.config_dir / "hyperparameters.json").read_text("utf-8"))
        return contract.toolkit.plan_command(contract.Paths(), hps, {}, 0, python=DIRECT_PYTHON)

    def _direct_environment(
        self, layout: HostLayout, image_env: dict[str, str], container_env: dict[str, str]
    ) -> dict[str, str]:
        """What the driver's `main` would put in the script's environment, from the same files."""
        config = {
            name: json.loads((layout.config_dir / f"{name}.json").read_text("utf-8"))
            for name in ("hyperparameters", "resourceconfig", "inputdataconfig")
        }
        environ = {**image_env, **container_env}
        env = contract.build_environment(
            contract.Paths(),
            config["hyperparameters"],
            config["resourceconfig"],
            config["inputdataconfig"],
            num_gpus=0,
            num_cpus=self._engine_cpus(),
            environ=environ,
        )
        env["PYTHONPATH"] = self._direct_pythonpath(image_env, container_env)
        return {**container_env, **env}

    @staticmethod
    def _direct_pythonpath(image_env: dict[str, str], container_env: dict[str, str]) -> str:
        environ = {**image_env, **container_env}
        code_dir = contract.Paths().code_dir
        return ":".join(p for p in [code_dir, environ.get("PYTHONPATH", "")] if p)

    # -- start ------------------------------------------------------------------------------

    def submit(self, ctx: JobContext, sink: EventSink) -> JobHandle:
        return start_in_thread(ctx, sink, self._start_and_follow, self.stop)

    def _prepare(self, ctx: JobContext, sink: EventSink | None = None) -> list[HostLayout]:
        spec = ctx.spec

        def warn(message: str) -> None:
            if sink is not None:
                emit_status(sink, ctx.job_id, JobStatus.STARTING, message)

        if spec.distribution.kind == "smddp":
            warn(contract.SMDDP_LOCAL_NOTE)
        # one copy, mounted by every host
        stage_code(spec, ctx.run_dir / "code", run_dir=ctx.run_dir, warn=warn)
        layouts = []
        for host in contract.host_names(spec):
            root = ctx.run_dir / "hosts" / host
            layout = contract.materialise_host(spec, ctx.job_id, host, root, run_dir=ctx.run_dir)
            layouts.append(layout)
            # Each host's own writable copy, as each SageMaker instance downloads one.
            progress = channels.reporter(ctx.job_id, sink) if sink is not None else None
            channels.snapshot_channels(
                spec, ctx.run_dir, layout.channel_dir, warn=warn, progress=progress
            )
        return layouts

    def _mounts(self, ctx: JobContext, layout: HostLayout, launch: str) -> list[Any]:
        from docker.types import Mount

        spec = ctx.spec

        def bind(
            source: Path, target: str, read_only: bool = False, users_folder: bool = False
        ) -> Mount:
            """A writable bind is the run folder's, or the user's checkpoint_dir (by design)."""
            if not read_only and not users_folder:
                source = safety.inside_run(ctx.run_dir, source)
            return Mount(target=target, source=str(source), type="bind", read_only=read_only)

        mounts = [
            bind(layout.config_dir, "/opt/ml/input/config", read_only=True),
            bind(layout.model_dir, "/opt/ml/model"),
            bind(layout.output_dir, "/opt/ml/output"),
            bind(ctx.run_dir / "code", "/opt/ml/code"),
        ]
        for channel in spec.channels:  # the host's private copies (_prepare), writable
            target = f"/opt/ml/input/data/{safety.path_component(channel.name, 'channel name')}"
            mounts.append(bind(layout.channel_dir(channel.name), target))
        if spec.distribution.kind == "custom" and spec.distribution.driver_dir:
            mounts.append(
                bind(
                    spec.resolve(spec.distribution.driver_dir).resolve(),
                    str(contract.CONTAINER_DRIVERS_DIR),
                    read_only=True,
                )
            )
        if spec.checkpoint_dir and not spec.checkpoint_dir.startswith("s3://"):
            persistent = spec.resolve(spec.checkpoint_dir).resolve()
            persistent.mkdir(parents=True, exist_ok=True)
            mounts.append(bind(persistent, "/opt/ml/checkpoints", users_folder=True))
        else:
            mounts.append(bind(layout.checkpoints_dir, "/opt/ml/checkpoints"))
        if launch == LAUNCH_DRIVER:
            mounts.append(bind(contract.driver_path(), DRIVER_MOUNT, read_only=True))
        keys = ctx.run_dir / mpi_ssh.SSH_DIR
        if launch == LAUNCH_DRIVER and uses_mpi_ssh(spec) and keys.is_dir():
            mounts.append(bind(keys, mpi_ssh.CONTAINER_SSH_DIR, read_only=True))
            for name in ("passwd", "group"):  # a non-root user's name, for ssh and sshd
                if (keys / name).is_file():
                    mounts.append(bind(keys / name, f"/etc/{name}", read_only=True))
        return mounts

    def _command(self, spec: JobSpec, launch: str) -> tuple[list[str] | None, list[str]]:
        """(entrypoint, command) for every host (a direct launch's command is per host)."""
        if launch == LAUNCH_TOOLKIT:
            return None, ["train"]
        if launch == LAUNCH_DIRECT:
            return [], []  # per host: _direct_command
        args = contract.driver_arguments(spec, contract.CONTAINER_DRIVERS_DIR)
        # -S: the driver needs only the standard library, so it skips site (~10 ms); the
        # script it starts runs on the same interpreter with site as usual.
        launcher = 'exec "$(command -v python3 || command -v python)" -S ' + DRIVER_MOUNT + ' "$@"'
        return ["/bin/sh", "-c", launcher, "trainer-gui-driver"], args

    def _start(self, ctx: JobContext, sink: EventSink) -> list[Container]:
        import docker.errors
        from docker.types import DeviceRequest

        spec = ctx.spec
        client = self.client
        image = default_image(spec)
        image_id, image_env = self._image_env(image)
        toolkit = TOOLKIT_ENV in image_env
        layouts = self._prepare(ctx, sink)
        if uses_mpi_ssh(spec) and not toolkit:  # fresh keys for this job (mpi_ssh.py)
            mpi_ssh.write_job_keys(ctx.run_dir, ctx.job_id, [lay.host for lay in layouts])
            if hasattr(os, "getuid") and os.getuid() != 0:
                mpi_ssh.write_identity(ctx.run_dir, os.getuid(), os.getgid())
        launch = self._launch(ctx, toolkit, image_id)
        hosts = len(layouts)
        environment = dict(spec.environment)
        environment.update({"TRAINING_JOB_NAME": ctx.job_id, "PYTHONUNBUFFERED": "1"})
        user = None
        if not toolkit and hasattr(os, "getuid") and os.getuid() != 0:
            # Files in the run folder stay the user's; the toolkit path needs root (hostnames).
            user = f"{os.getuid()}:{os.getgid()}"
            environment.update({"HOME": "/tmp", "USER": "trainer", "LOGNAME": "trainer"})
        info: dict[str, Any] = {"image": image, "toolkit": toolkit, "launch": launch}
        plan = self._warm_plan(
            ctx, layouts, launch, (image, image_id), image_env, environment, user
        )
        if plan is not None:
            warmed = self._start_warm(ctx, sink, plan, layouts[0], image_env, environment, info)
            if warmed is not None:
                return [warmed]
        what = "the container" if hosts == 1 else f"{hosts} containers"
        emit_phase(sink, ctx.job_id, Phase.STARTING, f"starting {what}")
        labels = {
            LABEL_JOB: ctx.job_id,
            LABEL_ROLE: ROLE_TRAIN,
            LABEL_RUN_DIR: str(ctx.run_dir),
            LABEL_LAUNCH: launch,
        }
        network = network_name(ctx.job_id) if uses_job_network(spec) else None
        entrypoint, command = self._command(spec, launch)
        device_requests = None
        if spec.uses_gpu:
            count = -1 if spec.compute.gpus == "all" else int(spec.compute.gpus)
            device_requests = [DeviceRequest(count=count, capabilities=[["gpu"]])]
        given = ctx.backend_ids.get(GPU_IDS_KEY)

        def devices(index: int) -> list[DeviceRequest] | None:
            """The queue's distinct devices for host `index` (2 hosts x 1 GPU: GPU 0 and GPU
            1), or the spec's count when the job has none (started before the queue)."""
            if spec.uses_gpu and isinstance(given, list) and index < len(given) and given[index]:
                ids = [str(i) for i in given[index]]
                return [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]
            return device_requests

        def on_network(host: str) -> dict[str, Any]:
            """hostname + network for a container that owns host's network namespace."""
            if network is None:
                return {"hostname": host}  # Docker's default bridge
            return {
                "hostname": host,
                "network": network,
                # The alias is what other hosts resolve (algo-1 is torchrun's master).
                "networking_config": {network: client.api.create_endpoint_config(aliases=[host])},
            }

        containers: list[Container] = []
        try:
            if network is not None:
                client.api.create_network(network, driver="bridge", labels=labels)
                info["network"] = network
            sink(BackendInfo(ctx.job_id, info))
            namespaces: dict[str, dict[str, Any]] = {}
            if uses_holders(spec):
                holders = [
                    client.containers.create(
                        image,
                        command=["-c", "read _"],  # blocks on the open, never written stdin
                        entrypoint=["/bin/sh"],
                        name=holder_name(ctx.job_id, layout.host),
                        labels={**labels, LABEL_ROLE: ROLE_HOLDER, LABEL_HOST: layout.host},
                        stdin_open=True,
                        detach=True,
                        **on_network(layout.host),
                    )
                    for layout in layouts
                ]
                _raise_first(_in_parallel([holder.start for holder in holders]))
                namespaces = {
                    layout.host: {"network_mode": f"container:{holder.id}"}
                    for layout, holder in zip(layouts, holders, strict=True)
                }
            for index, layout in enumerate(layouts):
                host_env, host_command = environment, command
                if launch == LAUNCH_TOOLKIT:  # SDK V3's names, which the toolkit lacks
                    v3 = contract.v3_environment(spec, ctx.job_id, layout.host)
                    host_env = {**v3, **environment}
                if launch == LAUNCH_DIRECT:
                    host_env = self._direct_environment(layout, image_env, environment)
                    python, *host_command = self._direct_command(layout)
                    entrypoint = [python]
                container = client.containers.create(
                    image,
                    command=host_command,
                    entrypoint=entrypoint,
                    name=container_name(ctx.job_id, layout.host),
                    labels={**labels, LABEL_HOST: layout.host},
                    environment=host_env,
                    mounts=self._mounts(ctx, layout, launch),
                    working_dir="/opt/ml/code",
                    user=user,
                    init=True,
                    shm_size="1g",
                    device_requests=devices(index),
                    detach=True,
                    **(namespaces.get(layout.host) or on_network(layout.host)),
                )
                containers.append(container)
                key = (image_id, self._path(ctx, image_id))
                if launch == LAUNCH_DIRECT and not self._has_python3(container.id, key):
                    self._remove(ctx.job_id)
                    return self._start(ctx, sink)  # now through the driver's launcher
            # Recorded before they start: a process that dies from here on leaves containers
            # that a re-attach recognises as created, whether or not they got started.
            ids: dict[str, object] = {"containers": {c.name: c.id for c in containers}}
            write_start_marker(ctx.run_dir, ids)
            sink(BackendInfo(ctx.job_id, ids))
            _raise_first(_in_parallel([container.start for container in containers]))
            if hosts > 1 and spec.distribution.kind != "none":
                # Until a host prints: the launcher's rendezvous (torchrun waits for every host).
                emit_phase(sink, ctx.job_id, Phase.WAITING_FOR_PEERS, f"waiting for {hosts} hosts")
        except docker.errors.APIError as exc:
            self._remove(ctx.job_id, ctx.run_dir)
            raise UserError(_explain_api_error(exc)) from None
        if plan is None:  # the image's python3 is known now (first run of an image)
            plan = self._warm_plan(
                ctx, layouts, launch, (image, image_id), image_env, environment, user
            )
        if plan is not None:
            docker_warm.POOL.ensure(client, plan)  # a spare for the next run of this spec
        return containers

    # -- warm containers (docker_warm.py) ---------------------------------------------------

    def _warm_plan(
        self,
        ctx: JobContext,
        layouts: list[HostLayout],
        launch: str,
        image: tuple[str, str],
        image_env: dict[str, str],
        environment: dict[str, str],
        user: str | None,
    ) -> docker_warm.Plan | None:
        """The spare container a run of this spec can use, or None: the run is not the direct
        launch on one host, warm starts are off, or the image's python3 is not known yet."""
        if launch != LAUNCH_DIRECT or len(layouts) != 1 or uses_job_network(ctx.spec):
            return None
        if docker_warm.cold_reason(ctx.backend_ids) or docker_warm.POOL.unusable:
            return None
        if self._python3.get((image[1], self._path(ctx, image[1]))) is not True:
            return None
        layout = layouts[0]
        run_dir = ctx.run_dir.resolve()
        mounts = []
        for mount in self._mounts(ctx, layout, launch):
            source = Path(mount["Source"])
            if source.resolve().is_relative_to(run_dir):
                if source.is_symlink() or not source.is_dir():
                    return None  # only folders can be swapped in
                mounts.append(docker_warm.MountPlan(mount["Target"], mount["ReadOnly"], source))
            else:  # a fixed folder (the user's checkpoint_dir)
                fixed = docker_warm.MountPlan(mount["Target"], mount["ReadOnly"], None, str(source))
                mounts.append(fixed)
        base = {k: v for k, v in environment.items() if k != "TRAINING_JOB_NAME"}
        base["PYTHONPATH"] = self._direct_pythonpath(image_env, environment)
        options = {
            "hostname": layout.host,
            "working_dir": "/opt/ml/code",
            "init": True,
            "shm_size": "1g",
        }
        return docker_warm.Plan(image[0], image[1], base, user, tuple(mounts), options)

    def _start_warm(
        self,
        ctx: JobContext,
        sink: EventSink,
        plan: docker_warm.Plan,
        layout: HostLayout,
        image_env: dict[str, str],
        environment: dict[str, str],
        info: dict[str, Any],
    ) -> Container | None:
        """The run handed to the spare container of its spec, or None (then it starts cold)."""
        client = self.client
        waiting = docker_warm.POOL.spare()
        if waiting is None or waiting.key != plan.key:
            return None
        entry = ctx.run_dir / "code" / str(ctx.spec.source.entry_point)
        wait = docker_warm.imports_preimported(entry)
        if not wait and not waiting.ready():
            return None  # cold at once; the spare stays for a later run
        # From here the time is the warm container's (ready, or still importing torch).
        emit_phase(sink, ctx.job_id, Phase.STARTING, "handing the run to a warm container")
        spare = docker_warm.POOL.take(client, plan.key, wait=wait)
        if spare is None:
            return None
        host_env = self._direct_environment(layout, image_env, environment)
        cmd = self._direct_command(layout)
        name = container_name(ctx.job_id, layout.host)
        request = {
            "env": host_env,
            "cmd": cmd,
            "cwd": "/opt/ml/code",
            "expect": [
                "/opt/ml/input/config/hyperparameters.json",
                posixpath.join("/opt/ml/code", cmd[1]),
            ],
        }
        pairs = [
            (mount.run_path, spare.slot_folder(index))
            for index, mount in enumerate(plan.mounts)
            if mount.run_path is not None
        ]
        cid = str(spare.container_id)
        why: str | None
        try:
            docker_warm.swap_in(pairs)
            client.api.rename(cid, name)
            write_start_marker(ctx.run_dir, {"containers": {name: cid}, "warm": {"command": cmd}})
            why = docker_warm.hand_off(spare, request)
        except Exception as exc:
            why = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.errno == errno.EXDEV:  # runs on another disk
                docker_warm.POOL.unusable = why
        if why is not None:
            log.info(
                "the warm container of %s refused the run (%s); starting it cold", ctx.job_id, why
            )
            if "not visible" in why:  # an engine that does not share folders by inode
                docker_warm.POOL.unusable = why
            if "shadows" in why:  # every spare of this spec would refuse the same code
                docker_warm.POOL.refused.add(plan.key)
            docker_warm.remove_container(client, cid, str(spare.slot))
            with contextlib.suppress(OSError):
                (ctx.run_dir / START_MARKER).unlink()
            return None
        sink(BackendInfo(ctx.job_id, {**info, "warm_container": True}))
        sink(BackendInfo(ctx.job_id, {"containers": {name: cid}}))
        docker_warm.POOL.ensure(client, plan)  # the next run's spare
        container: Container = spare.container
        return container

    def _start_and_follow(self, ctx: JobContext, sink: EventSink, handle: JobHandle) -> None:
        start_and_follow(
            ctx,
            sink,
            handle,
            preparing="Creating containers",
            start=lambda: _ContainerWatch(self, ctx, sink, self._start(ctx, sink)),
            stop=self.stop,
            undo=lambda: self._remove(ctx.job_id, ctx.run_dir),  # nothing half-made stays
        )

    # -- follow -----------------------------------------------------------------------------

    def _job_containers(self, job_id: str) -> list[Container]:
        """The job's training containers (not its network holders), algo-1 first."""
        found = self.client.containers.list(
            all=True, filters={"label": [f"{LABEL_JOB}={job_id}", f"{LABEL_ROLE}={ROLE_TRAIN}"]}
        )
        found += self.client.containers.list(all=True, filters=self._warm_filter(job_id))
        found = [
            c for c in found if c.labels.get(LABEL_ROLE) == ROLE_TRAIN or _handed(c.name, job_id)
        ]
        return sorted(found, key=lambda c: _host_index(c.labels.get(LABEL_HOST, "")))

    @staticmethod
    def _warm_filter(job_id: str) -> dict[str, Any]:
        """Warm containers handed to this job: renamed `<job>-algo-N` (labels cannot change)."""
        return {
            "label": [f"{LABEL_ROLE}={docker_warm.ROLE_WARM}"],
            "name": f"{job_id}-algo-",
        }

    def attach(self, ctx: JobContext, sink: EventSink) -> JobHandle:
        def follow(ctx: JobContext, sink: EventSink, handle: JobHandle) -> None:
            try:
                containers = self._job_containers(ctx.job_id)
            except Exception as exc:
                reason = f"Cannot reach Docker to re-attach: {exc}"
                emit_status(sink, ctx.job_id, JobStatus.FAILED, reason)
                handle._finish(JobStatus.FAILED)
                return
            unstarted = self._never_started(ctx, containers)
            if unstarted:
                # `wait()` on a container that never started answers 0 at once: it must not
                # count as a finished job. Its hosts cannot meet any more: end it.
                self._remove(ctx.job_id, ctx.run_dir)
                stopped = ctx.stop_requested()
                status = JobStatus.STOPPED if stopped else JobStatus.FAILED
                reason = ctx.stop_reason() if stopped else f"{STARTING_DIED} ({unstarted})"
                emit_status(sink, ctx.job_id, status, reason)
                handle._finish(status)
                return
            watch = _ContainerWatch(self, ctx, sink, containers)
            follow_and_finish(ctx, sink, handle, watch, self.stop)

        return follow_in_thread(ctx, sink, follow, self.stop)

    @staticmethod
    def _never_started(ctx: JobContext, containers: list[Container]) -> str | None:
        """Why the job found on re-attach never ran, or None: a container still in state
        "created", or fewer containers than hosts while the start marker (written once all
        were created) is missing and no host wrote how it ended."""
        created = [
            c.name for c in containers if c.attrs.get("State", {}).get("Status") == "created"
        ]
        if created:
            return f"{', '.join(created)} created but never started"
        for container in containers:
            slot = container.labels.get(docker_warm.LABEL_SLOT)
            if slot and not docker_warm.handed_off(Path(slot)):
                return f"the warm container {container.name} never got the run"
        hosts = contract.host_names(ctx.spec)
        if len(containers) >= len(hosts) or read_start_marker(ctx.run_dir) is not None:
            return None
        for host in hosts:
            layout = HostLayout(host, ctx.run_dir / "hosts" / host)
            if layout.succeeded() or layout.failure_reason():
                return None
        return f"{len(containers)} of {len(hosts)} containers were created"

    @staticmethod
    def _report_direct(
        ctx: JobContext,
        direct: dict[str, Container],
        exit_codes: dict[str, int],
        tails: dict[str, deque[str]],
    ) -> None:
        """For directly launched hosts, what the driver (and the toolkit) write at the end:
        output/success, or output/failure unless the script wrote its own."""
        for host, container in direct.items():
            code = exit_codes.get(host)
            if code is None:
                continue
            layout = HostLayout(host, ctx.run_dir / "hosts" / host)
            paths = layout.paths
            try:
                if code == 0:
                    contract.toolkit._write_once(paths.success_file, "")
                else:
                    config = container.attrs.get("Config", {})
                    cmd = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
                    if container.labels.get(LABEL_ROLE) == docker_warm.ROLE_WARM:
                        cmd = _warm_command(ctx.run_dir) or cmd  # the run's, not the waiter's
                    text = contract.toolkit._failure_text(code, list(tails.get(host, [])), cmd)
                    contract.toolkit._write_once(paths.failure_file, text)
            except OSError as exc:  # the exit code still decides the status
                log.warning(
                    "writing the end-of-job file of %s/%s failed: %s", ctx.job_id, host, exc
                )

    # -- stop and clean up ------------------------------------------------------------------

    def _stop_containers(self, containers: list[Container], grace: float) -> None:
        threads = [
            threading.Thread(target=_quiet_stop, args=(c, grace), daemon=True) for c in containers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=grace + 30)

    def stop(self, ctx: JobContext) -> None:
        if not ctx.stop_requested():
            ctx.request_stop()
        self._stop_containers(self._job_containers(ctx.job_id), self.grace)

    def _remove(self, job_id: str, run_dir: Path | None = None) -> None:
        """Containers and the network go on every path: success, failure, stop, recovery;
        with `run_dir`, an MPI job's SSH keys too, once no container can use them."""
        try:
            self._remove_objects(job_id)
        finally:
            if run_dir is not None:
                mpi_ssh.remove_job_keys(run_dir)

    def _remove_objects(self, job_id: str) -> None:
        try:
            api = self.client.api
            selector = {"label": f"{LABEL_JOB}={job_id}"}
            # Low-level calls: one request lists them all, and they are removed at once.
            ids = [c["Id"] for c in api.containers(all=True, filters=selector)]
            slots = []
            for info in api.containers(all=True, filters=self._warm_filter(job_id)):
                if _handed((info.get("Names") or [""])[0], job_id):
                    ids.append(info["Id"])
                    slots.append((info.get("Labels") or {}).get(docker_warm.LABEL_SLOT))
            errors = _in_parallel(
                [functools.partial(api.remove_container, cid, force=True) for cid in ids]
            )
            if any(errors):
                # e.g. 409 "removal already in progress": another follower of this job (a
                # re-attach) is removing it. Gone means gone, so wait for that to finish.
                deadline = time.monotonic() + 30
                while api.containers(all=True, filters=selector):
                    if time.monotonic() > deadline:
                        log.warning("the containers of %s outlived 30 s of removal", job_id)
                        break
                    time.sleep(0.05)
                    for cid in ids:
                        with contextlib.suppress(Exception):  # being removed: checked above
                            api.remove_container(cid, force=True)
            for slot in slots:  # its control files (the run's folders were renamed out)
                if slot:
                    docker_warm.remove_slot(Path(slot))
            for network in api.networks(filters=selector):
                try:
                    api.remove_network(network["Id"])
                except Exception as exc:  # often: a second follower removed it first
                    log.info("removing network %s of %s: %s", network.get("Name"), job_id, exc)
        except Exception as exc:
            log.warning("removing the containers of %s failed: %s", job_id, exc)

    def cleanup_orphans(self, active_job_ids: set[str]) -> list[str]:
        """Remove the containers and networks of jobs this app no longer follows.

        Only this app's: an object whose `trainer-gui.run-dir` label names a run folder of
        another app home that still exists (another user, a test session, a second data
        folder on one engine) belongs to that app's jobs and is left alone.
        """
        from trainer_gui.core.paths import runs_home

        try:
            client = self.client
            labelled = client.api.containers(all=True, filters={"label": LABEL_JOB})
            networks = client.api.networks(filters={"label": LABEL_JOB})
        except Exception as exc:
            log.info("orphan clean-up skipped: %s", exc)
            return []
        home = runs_home().resolve()
        jobs: dict[str, Path | None] = {}
        for labels in [c.get("Labels") for c in labelled] + [n.get("Labels") for n in networks]:
            job = (labels or {}).get(LABEL_JOB, "")
            if job and job not in active_job_ids and _ours(labels or {}, home):
                label = str((labels or {}).get(LABEL_RUN_DIR) or "")
                run_dir = Path(label) if label else None
                # an MPI job's keys go with its containers (only in this app's run folders)
                if run_dir is not None and run_dir.resolve().is_relative_to(home):
                    jobs[job] = run_dir
                else:
                    jobs.setdefault(job, None)
        for job, run_dir in jobs.items():
            self._remove(job, run_dir)
        return sorted(set(jobs) | set(self._cleanup_warm(active_job_ids)))

    def _cleanup_warm(self, active_job_ids: set[str]) -> list[str]:
        """This data folder's warm containers that serve nobody: handed to a job no longer
        active, or spares whose waiter exited (a running spare is its pool's)."""
        from trainer_gui.core.paths import data_home

        client = self.client
        home = f"{docker_warm.LABEL_HOME}={data_home()}"
        role = f"{LABEL_ROLE}={docker_warm.ROLE_WARM}"
        try:
            found = client.api.containers(all=True, filters={"label": [role, home]})
        except Exception as exc:
            log.info("warm clean-up skipped: %s", exc)
            return []
        removed = []
        for info in found:
            name = (info.get("Names") or ["/"])[0].lstrip("/")
            slot = (info.get("Labels") or {}).get(docker_warm.LABEL_SLOT)
            if name.startswith(docker_warm.SPARE_PREFIX):
                continue  # spares: sweep_stale below
            job = name.rsplit("-algo-", 1)[0]
            if job not in active_job_ids:
                docker_warm.remove_container(client, info["Id"], slot)
                removed.append(job)
        docker_warm.sweep_stale(client)
        return removed


def _ours(labels: dict[str, str], home: Path) -> bool:
    run_dir = labels.get(LABEL_RUN_DIR)
    if not run_dir:
        return True
    path = Path(run_dir)
    try:
        return path.resolve().is_relative_to(home) or not path.exists()
    except OSError:
        return True


def _handed(name: str, job_id: str) -> bool:
    """A warm container's name once handed to `job_id`: exactly `<job>-algo-N`."""
    name = name.lstrip("/")
    prefix = f"{job_id}-algo-"
    return name.startswith(prefix) and name[len(prefix) :].isdigit()


def _warm_command(run_dir: Path) -> list[str] | None:
    marker = read_start_marker(run_dir) or {}
    warm = marker.get("warm")
    command = warm.get("command") if isinstance(warm, dict) else None
    return [str(part) for part in command] if isinstance(command, list) else None


def _raise_first(errors: list[BaseException | None]) -> None:
    for error in errors:
        if error is not None:
            raise error


def _quiet_stop(container: Container, grace: float) -> None:
    """Stop one container; one already gone or removed is fine, anything else is logged."""
    try:
        container.stop(timeout=max(1, int(grace)))
    except Exception as exc:
        log.debug("stopping container %s: %s", getattr(container, "name", "?"), exc)


def _host_index(host: str) -> int:
    try:
        return int(host.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return sys.maxsize


def _explain_api_error(exc: Any) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    if "Conflict" in text or getattr(exc, "status_code", None) == 409:
        return (
            f"a container or network with this job's name already exists ({text}); "
            "remove it with `docker rm -f`"
        )
    if "no space left on device" in text.lower():
        return "the disk Docker uses is full; free space (`docker system prune`) and try again"
    if "port is already allocated" in text or "address already in use" in text:
        return f"a port this job needs is taken: {text}"
    if "could not select device driver" in text:
        return (
            "Docker cannot give this job GPUs (no NVIDIA Container Toolkit); set compute.gpus to 0"
        )
    return f"Docker refused to start the job: {text}"


class _ContainerWatch(Watch):
    """One job's containers: a log reader per stream, a waiter per container."""

    def __init__(
        self, runner: DockerRunner, ctx: JobContext, sink: EventSink, containers: list[Container]
    ) -> None:
        self.runner = runner
        self.ctx = ctx
        self.sink = sink
        self.containers = containers
        self.lines: queue.Queue[tuple[LogLine, tuple[str, str], str]] = queue.Queue()
        self.readers: list[_LogReader] = []
        self.exit_codes: dict[str, int] = {}
        self.first_failure: list[str] = []
        self.tails: dict[str, deque[str]] = {}
        self.exited = threading.Event()
        self.remover: threading.Thread | None = None
        for container in containers:
            host = container.labels.get(LABEL_HOST, container.name)
            self.tails[host] = deque(maxlen=20)
            for stream in ("stdout", "stderr"):
                reader = _LogReader(
                    container, host, stream, self.lines, ctx.offsets.get((host, stream))
                )
                reader.start()
                self.readers.append(reader)
        self.waiters = [
            threading.Thread(target=self._wait, args=(c,), daemon=True) for c in containers
        ]
        for thread in self.waiters:
            thread.start()

    def _wait(self, container: Container) -> None:
        host = container.labels.get(LABEL_HOST, container.name)
        try:
            code = int(container.wait().get("StatusCode", 1))
        except Exception as exc:
            log.info("waiting for %s failed (%s); counting it as killed", container.name, exc)
            code = 137
        self.exit_codes[host] = code
        self.exited.set()
        if code != 0 and not self.first_failure:
            self.first_failure.append(host)
            if len(self.containers) > 1 and not self.ctx.stop_requested():
                # One host failed: SageMaker ends the job, so stop the others now.
                threading.Thread(
                    target=self.runner._stop_containers, args=(self.containers, 5.0), daemon=True
                ).start()

    def running(self) -> bool:
        return any(t.is_alive() for t in self.waiters)

    def system_sampler(self) -> sysmetrics.Sampler | None:
        """Docker's stats of each host's container."""
        hosts = {c.labels.get(LABEL_HOST, c.name): c.id for c in self.containers}
        return sysmetrics.DockerStatsSampler(self.runner.client, hosts, sysmetrics.Gpus())

    def pause(self, seconds: float) -> None:
        # Woken at once when a container exits: no polling delay at the end of a job.
        self.exited.wait(seconds)
        self.exited.clear()

    def pump(self, final: bool) -> None:
        if final:
            for reader in self.readers:
                reader.join(timeout=10)
        while True:
            batch: list[LogLine] = []
            offsets: dict[tuple[str, str], str] = {}
            with contextlib.suppress(queue.Empty):
                while len(batch) < BATCH_LINES:
                    line, key, offset = self.lines.get_nowait()
                    batch.append(line)
                    offsets[key] = offset
                    if line.stream == "stderr" and line.host in self.tails:
                        self.tails[line.host].append(line.text)
            if not batch:
                return
            self.sink(LogBatch(self.ctx.job_id, batch, offsets))

    def settle(self) -> Ending:
        # Every host has exited and its logs are read: the containers can go while the
        # artifacts are packed from the run folder.
        job_id = self.ctx.job_id
        self.remover = threading.Thread(
            target=self.runner._remove,
            args=(job_id, self.ctx.run_dir),
            name=f"remove-{job_id}",
            daemon=True,
        )
        self.remover.start()
        direct = {
            container.labels.get(LABEL_HOST, container.name): container
            for container in self.containers
            if container.labels.get(LABEL_LAUNCH) == LAUNCH_DIRECT
        }
        self.runner._report_direct(self.ctx, direct, self.exit_codes, self.tails)
        return Ending(
            dict(self.exit_codes),
            self.first_failure[0] if self.first_failure else None,
            {host: list(lines) for host, lines in self.tails.items()},
        )

    def release(self) -> None:
        """Containers and the network go on every path: success, failure, stop, recovery."""
        if self.remover is not None:
            self.remover.join()
        else:
            self.runner._remove(self.ctx.job_id, self.ctx.run_dir)
        channels.discard(self.ctx.spec, self.ctx.run_dir)  # the hosts' copies, once they are gone
