"""Local inference endpoints: one Docker container per endpoint, serving one model.

    launcher = EndpointLauncher()
    launcher.cleanup_orphans()                      # once at start: what a crash left behind
    endpoint = launcher.start("quickstart-2026…")   # a job, model.tar.gz, folder or s3:// URI
    endpoint.url                                    # http://127.0.0.1:<free port>
    launcher.stop(endpoint.name)
    launcher.shutdown_all()                         # at exit: every endpoint this process owns

`start` blocks until `/ping` answers 200 (or raises `EndpointError` with the container's last log
lines), so call it off the GUI thread; `on_progress` and `on_log` are called on worker threads.

Two modes, chosen from the image as on the training side:

* SageMaker inference images (their environment has `SAGEMAKER_SERVING_MODULE`, as the AWS PyTorch
  inference DLCs do) run `serve`, and the toolkit + TorchServe inside do what they do in the cloud;
* any other image with Python and torch runs `runtime.py` of this package, mounted read-only.

Either way the model folder is `/opt/ml/model` (with `code/inference.py`), the container listens
on 8080, and that port is published on 127.0.0.1 only, on a free port Docker picks (no race
between choosing and binding). Every container carries `trainer-gui.endpoint=<name>` and the
owner process; stop, `shutdown_all` and `cleanup_orphans` find them by those labels.

Each endpoint sits alone on a bridge network of its own, not on Docker's default bridge: every
single-host training job runs there, and any of them could otherwise call the model server (or
read its error bodies). Docker isolates bridge networks from each other, so only the host reaches
the endpoint, through the published port. The network carries the same labels (and
`trainer-gui.endpoint.network`) and goes with the container on every path: stop, a failed
start, `shutdown_all`, and `cleanup_orphans` (which also removes a network a crash left without
its container).
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_gui.core.archives import DEFAULT_LIMITS, ArchiveLimits, extract_archive
from trainer_gui.core.errors import BackendUnavailable, UserError
from trainer_gui.core.locks import ProcessLock
from trainer_gui.core.paths import remove_tree
from trainer_gui.core.serving import archive as archive_mod

if TYPE_CHECKING:  # pragma: no cover
    from docker.models.containers import Container

    from docker import DockerClient
    from trainer_gui.core.aws.session import AwsSession

log = logging.getLogger(__name__)

__all__ = [
    "CONTAINER_PORT",
    "DEFAULT_IMAGE",
    "LABEL_ENDPOINT",
    "LABEL_NETWORK",
    "MODE_RUNTIME",
    "MODE_SAGEMAKER",
    "Endpoint",
    "EndpointError",
    "EndpointLauncher",
    "EndpointNotFound",
    "ModelSource",
    "StartProgress",
    "container_config",
    "detect_mode",
    "resolve_model",
    "runtime_path",
]

DEFAULT_IMAGE = "trainer-gui/inference:latest"
CONTAINER_PORT = 8080
RUNTIME_MOUNT = "/opt/trainer-gui/serving_runtime.py"
MODEL_MOUNT = "/opt/ml/model"
SERVING_MODULE_ENV = "SAGEMAKER_SERVING_MODULE"
MODE_SAGEMAKER = "sagemaker"
MODE_RUNTIME = "runtime"
DETACHED = "detached"
#: SageMaker's limit for /ping to start passing; `start(timeout=...)` overrides it.
DEFAULT_TIMEOUT = 240.0
PING_TIMEOUT = 2.0
POLL_SECONDS = 0.05
LOG_TAIL = 40

LABEL_ENDPOINT = "trainer-gui.endpoint"
LABEL_SOURCE = "trainer-gui.endpoint.source"
LABEL_MODE = "trainer-gui.endpoint.mode"
LABEL_OWNER = "trainer-gui.endpoint.owner"
LABEL_DIR = "trainer-gui.endpoint.dir"
LABEL_MODEL = "trainer-gui.endpoint.model"
LABEL_HOME = "trainer-gui.endpoint.home"
LABEL_LAUNCHER = "trainer-gui.endpoint.launcher"
#: On an endpoint's own network (value "1"); containers never carry it.
LABEL_NETWORK = "trainer-gui.endpoint.network"

_NAME_OK = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class EndpointError(UserError):
    """An endpoint could not start or be reached; `log_tail` has the container's last lines."""

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        self.log_tail = list(log_tail or [])
        full = message
        if self.log_tail:
            full += "\nLast lines of the container log:\n" + "\n".join(
                f"  {line}" for line in self.log_tail
            )
        super().__init__(full)


class EndpointNotFound(UserError):
    """No local endpoint with that name."""


@dataclass(frozen=True)
class Endpoint:
    """One local endpoint, as its container's labels and port binding describe it."""

    name: str
    url: str
    host_port: int
    container_id: str
    image: str
    mode: str
    source: str
    model_dir: str
    owner: str
    state: str = "running"
    started_at: float = 0.0

    @property
    def invocations_url(self) -> str:
        return self.url + "/invocations"

    @property
    def ping_url(self) -> str:
        return self.url + "/ping"


@dataclass(frozen=True)
class StartProgress:
    """Where a start is. `stage`: preparing, unpacking, creating, waiting or ready."""

    stage: str
    message: str
    elapsed: float
    timeout: float

    @property
    def fraction(self) -> float:
        """Share of the readiness time limit used (for a progress bar)."""
        if self.stage == "ready":
            return 1.0
        return min(1.0, self.elapsed / self.timeout) if self.timeout > 0 else 0.0


@dataclass(frozen=True)
class ModelSource:
    """What to serve: `kind` archive (a tar[.gz] file), folder, or s3 (a URI to download)."""

    kind: str
    location: str
    description: str
    job_id: str | None = None
    name_hint: str = "model"


ProgressCallback = Callable[[StartProgress], None]
LogCallback = Callable[[str], None]


# -- pure helpers (unit-tested without Docker) ------------------------------------------------


def runtime_path() -> Path:
    """The stdlib serving runtime that plain images run."""
    from trainer_gui.core.serving import runtime

    return Path(runtime.__file__).resolve()


def detect_mode(image_env: list[str] | None) -> str:
    """`sagemaker` for images with the SageMaker inference toolkit, else `runtime`."""
    for item in image_env or []:
        if str(item).split("=", 1)[0] == SERVING_MODULE_ENV:
            return MODE_SAGEMAKER
    return MODE_RUNTIME


def sanitize_name(text: str) -> str:
    """A Docker- and URL-friendly endpoint name from any text."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:48].rstrip("-")
    return name or "model"


def container_name(name: str) -> str:
    return f"tg-endpoint-{name}"


def container_config(
    *,
    name: str,
    image: str,
    mode: str,
    model_dir: Path,
    model_read_only: bool,
    port: int | None = None,
    environment: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    uid_gid: tuple[int, int] | None = None,
    gpus: int = 0,
    network: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create` (no Docker needed to build them).

    `port` None lets Docker pick a free host port; the binding is always on 127.0.0.1.
    `network`: the endpoint's own network (None: Docker's default bridge).
    """
    from docker.types import DeviceRequest, Mount

    env: dict[str, str] = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": f"{MODEL_MOUNT}/code",
        "SAGEMAKER_BIND_TO_PORT": str(CONTAINER_PORT),
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(environment or {})
    mounts = [
        Mount(target=MODEL_MOUNT, source=str(model_dir), type="bind", read_only=model_read_only)
    ]
    config: dict[str, Any] = {
        "image": image,
        "name": container_name(name),
        "labels": dict(labels or {}),
        "mounts": mounts,
        "ports": {f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)},
        "init": True,
        "detach": True,
    }
    if network is not None:
        config["network"] = network
    if mode == MODE_SAGEMAKER:
        # The image's entrypoint (the DLC's torchserve-entrypoint.py) gets `serve`, as in the
        # cloud. It writes TorchServe's config under /etc and /.sagemaker: it runs as root.
        config["command"] = ["serve"]
    else:
        mounts.append(
            Mount(target=RUNTIME_MOUNT, source=str(runtime_path()), type="bind", read_only=True)
        )
        launch = 'exec "$(command -v python3 || command -v python)" ' + RUNTIME_MOUNT + ' "$@"'
        config["entrypoint"] = ["/bin/sh", "-c", launch, "trainer-gui-serve"]
        config["command"] = []
        # No __pycache__ in the model's code folder (it may be mounted read-only).
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        if uid_gid is not None:
            config["user"] = f"{uid_gid[0]}:{uid_gid[1]}"
            env.setdefault("HOME", "/tmp")
    if gpus:
        config["device_requests"] = [DeviceRequest(count=gpus, capabilities=[["gpu"]])]
    config["environment"] = env
    return config


def _job_model(key: str) -> ModelSource:
    from trainer_gui.core.store import Store

    store = Store()
    try:
        record = store.require_job(key)
    finally:
        store.close()
    artifacts = record.backend_ids.get("artifacts") or {}
    model = artifacts.get("model") if isinstance(artifacts, dict) else None
    if not model:
        raise UserError(
            f"job {record.id} has no model yet (status {record.status}); serve a job once it "
            "has finished and packed model.tar.gz"
        )
    source = resolve_model(str(model), _job_lookup=False)
    return ModelSource(
        source.kind,
        source.location,
        f"job {record.id} ({source.location})",
        job_id=record.id,
        name_hint=record.name or record.id,
    )


def resolve_model(source: str | Path, *, _job_lookup: bool = True) -> ModelSource:
    """A model.tar.gz, a model folder, an `s3://…/model.tar.gz`, or a job id / name."""
    text = str(source)
    if text.startswith("s3://"):
        stem = text.rstrip("/").rsplit("/", 1)[-1]
        return ModelSource("s3", text, text, name_hint=_hint_from_parts(text.split("/"), stem))
    path = Path(text).expanduser()
    if path.is_dir():
        inner = archive_mod.find_model_archive(path)
        if inner is not None:
            return ModelSource(
                "archive", str(inner.resolve()), str(inner), name_hint=path.resolve().name
            )
        resolved = path.resolve()
        return ModelSource("folder", str(resolved), str(path), name_hint=resolved.name)
    if path.is_file():
        if not archive_mod.is_model_archive(path):
            raise UserError(
                f"{path} is not a model archive: serve a model.tar.gz (.tar.gz, .tgz, .tar) or "
                "a model folder"
            )
        resolved = path.resolve()
        return ModelSource(
            "archive",
            str(resolved),
            str(path),
            name_hint=_hint_from_parts(list(resolved.parts), resolved.name),
        )
    if _job_lookup and text and os.sep not in text and "/" not in text:
        return _job_model(text)
    raise UserError(f"nothing to serve at {text!r}: no such file, folder or job")


def _hint_from_parts(parts: list[str], filename: str) -> str:
    stem = filename
    for suffix in archive_mod.ARCHIVE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem.lower() in ("model", "models", ""):
        # runs/<job>/artifacts/model.tar.gz, <job>/output/model.tar.gz: the job's name.
        parents = [p for p in parts[:-1] if p and p not in ("artifacts", "output", "/")]
        return parents[-1] if parents else "model"
    return stem


# -- processes ---------------------------------------------------------------------------------


def owner_token(pid: int | None = None) -> str:
    """`host:pid:creation time`: names a process so that a reused pid is not taken for it."""
    from trainer_gui.core.runners.proc import start_marker

    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{start_marker(pid) or ''}"


def _owner_alive(token: str) -> bool:
    """Whether the process named by an owner token still runs (other machines: assume so).

    psutil's liveness and creation time, as for jobs, so it works on every OS; a token from an
    older version (clock ticks, not a creation time) only has its pid checked.
    """
    from trainer_gui.core.runners.proc import pid_alive

    if token == DETACHED or not token:
        return True
    host, _, rest = token.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    return pid_alive(int(pid_text), started or None)


def _ping(url: str, timeout: float = PING_TIMEOUT) -> int | None:
    """GET /ping: the status code, or None when nothing answers."""
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port.split("/")[0]), timeout=timeout)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


#: TorchServe's log lines when the model's worker cannot load it (it keeps answering /ping).
TORCHSERVE_LOAD_FAILURES = (
    "Backend worker process died",
    "Load model failed",
    "Failed to load model",
    "ModelLoadError",
)


def _torchserve_workers_ready(url: str, timeout: float = PING_TIMEOUT) -> bool | None:
    """Whether TorchServe has a worker with the model loaded (SageMaker images only).

    TorchServe answers /ping while its workers still load the model, and goes on answering when
    they fail. SageMaker's config serves the management API on the same port, so
    `GET /models/model` lists the workers: True once one is READY, False while none is. None
    when that API does not answer as TorchServe's does (another server): /ping decides then.
    """
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port.split("/")[0]), timeout=timeout)
    try:
        conn.request("GET", "/models/model")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if response.status != 200:
        return None
    try:
        described = json.loads(body)
        models = described if isinstance(described, list) else [described]
        workers = [w for m in models if isinstance(m, dict) for w in m.get("workers") or []]
    except (ValueError, TypeError, AttributeError):
        return None
    return any(isinstance(w, dict) and str(w.get("status")).upper() == "READY" for w in workers)


# -- the launcher ------------------------------------------------------------------------------


@dataclass
class _Live:
    """What this process keeps for an endpoint it started: the log follower."""

    endpoint: Endpoint
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=LOG_TAIL))
    exited: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class EndpointLauncher:
    """Starts, lists and stops local inference endpoints (thread-safe).

    `labels` are added to every container (tests label theirs); `home` is where archives are
    unpacked (default: `<data folder>/endpoints`); `aws` is the session that downloads s3://
    models (default: the profile and region of the AWS settings, as for training jobs).
    """

    def __init__(
        self,
        client: DockerClient | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        home: Path | None = None,
        aws: AwsSession | None = None,
    ) -> None:
        self._client_obj = client
        self._aws = aws
        self._labels = dict(labels or {})
        self._home = home
        self._lock = threading.RLock()
        self._live: dict[str, _Live] = {}
        self._owner = owner_token()
        self.launcher_id = uuid.uuid4().hex[:12]

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def client(self) -> DockerClient:
        with self._lock:
            if self._client_obj is None:
                from trainer_gui.core.docker_util import docker_client

                self._client_obj = docker_client()
            return self._client_obj

    @property
    def home(self) -> Path:
        if self._home is None:
            from trainer_gui.core.paths import data_home

            self._home = data_home() / "endpoints"
        self._home.mkdir(parents=True, exist_ok=True)
        return self._home

    def close(self) -> None:
        """Let go of the Docker client (endpoints keep running; see `shutdown_all`)."""
        with self._lock:
            if self._client_obj is not None:
                with _logged("closing the Docker client"):
                    self._client_obj.close()
                self._client_obj = None

    # -- listing ----------------------------------------------------------------------------

    def _containers(self, name: str | None = None) -> list[dict[str, Any]]:
        selector = f"{LABEL_ENDPOINT}={name}" if name else LABEL_ENDPOINT
        try:
            found: list[dict[str, Any]] = self.client.api.containers(
                all=True, filters={"label": selector}
            )
        except BackendUnavailable:
            raise
        except Exception as exc:
            from trainer_gui.core.docker_util import DockerUnavailable, describe_docker_error

            raise DockerUnavailable(describe_docker_error(exc)) from exc
        return found

    @staticmethod
    def _endpoint(summary: dict[str, Any]) -> Endpoint:
        labels = summary.get("Labels") or {}
        port = 0
        for binding in summary.get("Ports") or []:
            if binding.get("PrivatePort") == CONTAINER_PORT and binding.get("PublicPort"):
                port = int(binding["PublicPort"])
                break
        return Endpoint(
            name=labels.get(LABEL_ENDPOINT, ""),
            url=f"http://127.0.0.1:{port}" if port else "",
            host_port=port,
            container_id=str(summary.get("Id", "")),
            image=str(summary.get("Image", "")),
            mode=labels.get(LABEL_MODE, MODE_RUNTIME),
            source=labels.get(LABEL_SOURCE, ""),
            model_dir=labels.get(LABEL_MODEL, ""),
            owner=labels.get(LABEL_OWNER, ""),
            state=str(summary.get("State", "")),
            started_at=float(summary.get("Created") or 0),
        )

    def list_endpoints(self) -> list[Endpoint]:
        """Every local endpoint on this engine (any process's), oldest first."""
        endpoints = [self._endpoint(c) for c in self._containers()]
        return sorted(endpoints, key=lambda e: (e.started_at, e.name))

    def get(self, name: str) -> Endpoint:
        for summary in self._containers(name):
            return self._endpoint(summary)
        known = ", ".join(e.name for e in self.list_endpoints()) or "none are running"
        raise EndpointNotFound(f"no local endpoint {name!r} ({known})")

    # -- start ------------------------------------------------------------------------------

    def _name_lock(self, name: str) -> ProcessLock:
        """Held while an endpoint of that name is being prepared (any process of this app)."""
        return ProcessLock(self.home / ".locks" / f"{name}.lock")

    def _claim_name(self, wanted: str | None, hint: str) -> tuple[str, ProcessLock]:
        """A name no endpoint has and no other start is preparing, and its lock, held."""
        taken = {e.name for e in self.list_endpoints()}
        with self._lock:
            taken |= set(self._live)
        if wanted:
            if not _NAME_OK.match(wanted):
                raise UserError(
                    f"endpoint name {wanted!r}: use lower-case letters, digits and '-' "
                    "(at most 63, starting with a letter or digit)"
                )
            lock = self._name_lock(wanted)
            if wanted in taken or not lock.acquire():
                raise UserError(f"an endpoint named {wanted!r} is already running; stop it first")
            return wanted, lock
        base = sanitize_name(hint)
        for n in range(1, 10_000):
            name = base if n == 1 else f"{base}-{n}"
            if name in taken:
                continue
            lock = self._name_lock(name)
            if lock.acquire():
                return name, lock
        raise UserError(f"too many endpoints named {base}-N")  # pragma: no cover

    def _image_env(self, image: str) -> list[str]:
        import docker.errors

        try:
            attrs = self.client.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            hint = (
                "build it with `trainer-gui images build inference`"
                if image == DEFAULT_IMAGE
                else f"pull it with `docker pull {image}` or build it"
            )
            raise UserError(f"Docker image {image!r} is not on this machine; {hint}") from None
        except docker.errors.APIError as exc:
            raise BackendUnavailable(f"Docker could not look up {image!r}: {exc}") from None
        env: list[str] = (attrs.get("Config") or {}).get("Env") or []
        return env

    def aws_session(self) -> AwsSession:
        """The session for s3:// models: the one given, else the AWS settings' (made once)."""
        with self._lock:
            if self._aws is None:
                from trainer_gui.core.aws.session import AwsSession

                self._aws = AwsSession.from_settings()
            return self._aws

    def prepare_model(
        self,
        source: ModelSource,
        workdir: Path,
        limits: ArchiveLimits = DEFAULT_LIMITS,
        progress: Callable[[str, str], None] | None = None,
    ) -> tuple[Path, bool]:
        """(host folder to mount at /opt/ml/model, read-only?): a folder as it is; an archive
        (downloaded first for s3://) unpacked into `workdir/model` by the app's one extractor."""
        report = progress or (lambda _stage, _message: None)
        if source.kind == "folder":
            report("preparing", f"Serving the folder {source.location} (mounted read-only)")
            return Path(source.location), True
        archive = Path(source.location)
        if source.kind == "s3":
            archive = workdir / "model.tar.gz"
            report("preparing", f"Downloading {source.location}")
            _download_s3(self.aws_session(), source.location, archive)
        report("unpacking", f"Unpacking {archive.name}")
        model_dir = extract_archive(archive, workdir / "model", limits=limits)
        if source.kind == "s3":
            archive.unlink(missing_ok=True)
        return model_dir, False

    def start(
        self,
        model: str | Path | ModelSource,
        *,
        name: str | None = None,
        image: str = DEFAULT_IMAGE,
        mode: str = "auto",
        port: int | None = None,
        environment: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        on_log: LogCallback | None = None,
        detached: bool = False,
        gpus: int = 0,
        limits: ArchiveLimits = DEFAULT_LIMITS,
        cancel: threading.Event | None = None,
    ) -> Endpoint:
        """Serve `model` and return once `/ping` answers 200.

        `model`: what `resolve_model` takes. `mode`: auto (from the image), sagemaker or
        runtime. `port`: the host port (default: a free one). `timeout`: seconds for `/ping` to
        pass. `on_progress(StartProgress)` and `on_log(line)` run on worker threads; the log
        keeps flowing to `on_log` for the endpoint's whole life. `detached`: the endpoint is not
        this process's (shutdown_all and orphan cleanup leave it alone). `cancel`: set it to
        give up (the container is removed). Raises `EndpointError` or another `UserError`.
        """
        started = time.monotonic()
        source = model if isinstance(model, ModelSource) else resolve_model(model)
        if mode not in ("auto", MODE_SAGEMAKER, MODE_RUNTIME):
            raise UserError(f"mode must be auto, {MODE_SAGEMAKER} or {MODE_RUNTIME}, not {mode!r}")

        def progress(stage: str, message: str) -> None:
            if on_progress is not None:
                on_progress(StartProgress(stage, message, time.monotonic() - started, timeout))

        image_env = self._image_env(image)
        chosen = detect_mode(image_env) if mode == "auto" else mode
        with self._lock:  # one name per endpoint, even when two starts race
            name, name_lock = self._claim_name(name, source.name_hint)
            workdir = self.home / name
            remove_tree(workdir)  # a crashed endpoint's leftovers
            workdir.mkdir(parents=True)
            reserved = Endpoint(name, "", 0, "", image, chosen, source.description, "", "")
            self._live[name] = _Live(reserved)
        container: Container | None = None
        try:
            model_dir, read_only = self.prepare_model(source, workdir, limits, progress)
            _check_servable(model_dir, chosen, environment, progress)
            labels = {
                **self._labels,
                LABEL_ENDPOINT: name,
                LABEL_SOURCE: source.description[:500],
                LABEL_MODE: chosen,
                LABEL_OWNER: DETACHED if detached else self._owner,
                LABEL_LAUNCHER: self.launcher_id,
                LABEL_DIR: str(workdir),
                LABEL_MODEL: str(model_dir),
                LABEL_HOME: str(self.home.resolve()),
            }
            uid_gid = (os.getuid(), os.getgid()) if hasattr(os, "getuid") else None
            network = self._create_network(name)
            config = container_config(
                name=name,
                image=image,
                mode=chosen,
                model_dir=model_dir,
                model_read_only=read_only,
                port=port,
                environment=environment,
                labels=labels,
                uid_gid=uid_gid if chosen == MODE_RUNTIME else None,
                gpus=gpus,
                network=network,
            )
            progress("creating", f"Starting {image} ({chosen} mode)")
            container = self._create_and_start(config)
            endpoint = self._endpoint(
                self.client.api.containers(all=True, filters={"id": container.id})[0]
            )
            if not endpoint.host_port:
                raise EndpointError("Docker published no port for the endpoint")
            live = _Live(endpoint)
            with self._lock:
                self._live[name] = live
            live.thread = threading.Thread(
                target=self._follow,
                args=(container, live, on_log),
                name=f"endpoint-{name}",
                daemon=True,
            )
            live.thread.start()
            self._wait_ready(endpoint, live, started, timeout, progress, cancel)
        except BaseException:
            self._remove(name, container.id if container is not None else None, workdir)
            raise
        finally:
            # Once the container exists its label claims the name; before, the lock did.
            name_lock.release()
        progress("ready", f"{name} is ready at {endpoint.url}")
        return endpoint

    def _create_network(self, name: str) -> str:
        """A bridge network for this endpoint alone; its name.

        Labelled with the creating process (never `detached`): a network whose container is gone
        and whose creator is gone is an orphan, whatever the endpoint was.
        """
        import docker.errors

        network = f"{container_name(name)}-{uuid.uuid4().hex[:8]}"
        labels = {
            **self._labels,
            LABEL_ENDPOINT: name,
            LABEL_NETWORK: "1",
            LABEL_OWNER: self._owner,
            LABEL_LAUNCHER: self.launcher_id,
            LABEL_HOME: str(self.home.resolve()),
        }
        try:
            self.client.networks.create(network, driver="bridge", labels=labels)
        except docker.errors.APIError as exc:
            text = str(getattr(exc, "explanation", None) or exc)
            hint = (
                "; Docker has no address range left for another network: stop some endpoints "
                "or remove unused networks (docker network prune)"
                if "address pool" in text or "non-overlapping" in text
                else ""
            )
            raise EndpointError(
                f"Docker could not create the endpoint's own network {network}: {text}{hint}"
            ) from None
        return network

    def _networks(self, name: str | None = None) -> list[dict[str, Any]]:
        selector = [LABEL_NETWORK] + ([f"{LABEL_ENDPOINT}={name}"] if name else [])
        found: list[dict[str, Any]] = self.client.api.networks(filters={"label": selector})
        return found

    def _remove_networks(self, name: str) -> None:
        """The endpoint's networks (its containers are gone by now)."""
        with _logged(f"listing the networks of the endpoint {name}"):
            for network in self._networks(name):
                with _logged(f"removing the network {network.get('Name')} of the endpoint {name}"):
                    self.client.api.remove_network(network["Id"])

    def _create_and_start(self, config: dict[str, Any]) -> Container:
        import docker.errors

        try:
            container: Container = self.client.containers.create(**config)
        except docker.errors.APIError as exc:
            raise EndpointError(_explain(exc)) from None
        try:
            container.start()
        except docker.errors.APIError as exc:
            with _logged(f"removing the container {container.id} that did not start"):
                container.remove(force=True)
            raise EndpointError(_explain(exc)) from None
        return container

    def _follow(self, container: Container, live: _Live, on_log: LogCallback | None) -> None:
        """Container log lines to the tail and `on_log`, until the container goes."""
        buffer = b""
        try:
            for chunk in container.logs(stream=True, follow=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    self._log_line(raw, live, on_log)
            if buffer:
                self._log_line(buffer, live, on_log)
        except Exception as exc:  # the container went, or Docker did: the follower ends
            log.debug("following the endpoint %s's log ended: %s", live.endpoint.name, exc)
        finally:
            live.exited.set()

    @staticmethod
    def _log_line(raw: bytes, live: _Live, on_log: LogCallback | None) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        live.tail.append(line)
        if on_log is not None:
            try:
                on_log(line)
            except Exception:  # a listener's bug must not stop the log follower
                log.debug("an endpoint log listener failed", exc_info=True)

    def _wait_ready(
        self,
        endpoint: Endpoint,
        live: _Live,
        started: float,
        timeout: float,
        progress: Callable[[str, str], None],
        cancel: threading.Event | None,
    ) -> None:
        deadline = started + timeout
        last_report = 0.0
        progress("waiting", f"Waiting for {endpoint.url}/ping")
        note = ""
        while True:
            status = _ping(endpoint.url)
            if status == 200:
                if endpoint.mode != MODE_SAGEMAKER:
                    return
                loaded = _torchserve_workers_ready(endpoint.url)
                if loaded or loaded is None:
                    return
                failed = [
                    line for line in live.tail if any(m in line for m in TORCHSERVE_LOAD_FAILURES)
                ]
                if failed:
                    raise EndpointError(
                        f"endpoint {endpoint.name}: the model failed to load in TorchServe "
                        f"({failed[0].strip()[:200]}); /ping answers 200 regardless",
                        list(live.tail),
                    )
                status, note = 0, "; /ping passes, but no TorchServe worker has the model loaded"
            now = time.monotonic()
            if live.exited.is_set():
                # Let the log reader catch the last lines before they are quoted.
                live.exited.wait(1.0)
                code = self._exit_code(endpoint.container_id)
                what = f"exited with code {code}" if code is not None else "stopped"
                raise EndpointError(
                    f"endpoint {endpoint.name}: the container {what} before /ping answered",
                    list(live.tail),
                )
            if cancel is not None and cancel.is_set():
                raise EndpointError(f"endpoint {endpoint.name}: start cancelled")
            if now > deadline:
                raise EndpointError(
                    f"endpoint {endpoint.name}: /ping did not answer 200 within {timeout:.0f} s "
                    f"(last answer: {status or 'none'}{note})",
                    list(live.tail),
                )
            if now - last_report >= 0.25:
                last_report = now
                progress(
                    "waiting",
                    f"Waiting for /ping ({now - started:.1f} s"
                    + (f", last answer {status}" if status else "")
                    + ")",
                )
            live.exited.wait(POLL_SECONDS)

    def _exit_code(self, container_id: str) -> int | None:
        try:
            state = self.client.api.inspect_container(container_id).get("State") or {}
        except Exception as exc:
            log.debug("cannot inspect the container %s: %s", container_id, exc)
            return None
        if state.get("Running"):
            return None
        code = state.get("ExitCode")
        return int(code) if code is not None else None

    def wait_exit(self, name: str, timeout: float | None = None) -> bool:
        """Block until the endpoint's container ends (True) or `timeout` passes (False).

        Only for endpoints this launcher started (it follows their logs); others: False.
        """
        with self._lock:
            live = self._live.get(name)
        if live is None:
            return False
        return live.exited.wait(timeout)

    # -- logs -------------------------------------------------------------------------------

    def logs(self, name: str, tail: int = 200) -> str:
        """The last `tail` lines of the endpoint's container log."""
        endpoint = self.get(name)
        data = self.client.api.logs(endpoint.container_id, tail=tail)
        return bytes(data).decode("utf-8", "replace")

    def stream_logs(self, name: str, since_start: bool = True) -> Iterator[str]:
        """Follow the endpoint's log line by line until the container goes."""
        endpoint = self.get(name)
        buffer = b""
        stream = self.client.api.logs(
            endpoint.container_id, stream=True, follow=True, tail="all" if since_start else 0
        )
        for chunk in stream:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                yield raw.decode("utf-8", "replace").rstrip("\r")
        if buffer:
            yield buffer.decode("utf-8", "replace")

    # -- stop and clean up ------------------------------------------------------------------

    def _remove(self, name: str, container_id: str | None, workdir: Path | None) -> None:
        with self._lock:
            self._live.pop(name, None)
        ids = [container_id] if container_id else []
        with _logged(f"listing the containers of the endpoint {name}"):
            ids += [c["Id"] for c in self._containers(name) if c["Id"] not in ids]
        for cid in ids:
            with _logged(f"removing the container {cid} of the endpoint {name}"):
                self.client.api.remove_container(cid, force=True, v=True)
        self._remove_networks(name)
        if workdir is not None and _inside(workdir, self.home):
            remove_tree(workdir)

    def stop(self, name: str) -> bool:
        """Remove the endpoint's container and its unpacked model; False if there was none."""
        found = self._containers(name)
        for summary in found:
            labels = summary.get("Labels") or {}
            workdir = Path(labels[LABEL_DIR]) if labels.get(LABEL_DIR) else None
            self._remove(name, summary["Id"], workdir)
        with self._lock:
            self._live.pop(name, None)
        return bool(found)

    def _stop_many(self, summaries: list[dict[str, Any]]) -> list[str]:
        names = sorted({(c.get("Labels") or {}).get(LABEL_ENDPOINT, "") for c in summaries} - {""})
        threads = [threading.Thread(target=self.stop, args=(n,), daemon=True) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return names

    def shutdown_all(self) -> list[str]:
        """Stop every endpoint this launcher started (not detached ones); their names.

        Call it when the app exits; endpoints of a process that died instead are removed by
        `cleanup_orphans` at the next start.
        """
        try:
            mine = [
                c
                for c in self._containers()
                if (c.get("Labels") or {}).get(LABEL_LAUNCHER) == self.launcher_id
                and (c.get("Labels") or {}).get(LABEL_OWNER) != DETACHED
            ]
        except UserError as exc:  # no Docker: there is nothing of ours to stop
            log.debug("shutting down the endpoints: %s", exc)
            return []
        return self._stop_many(mine)

    def cleanup_orphans(self) -> list[str]:
        """Remove endpoints whose owner process is gone (a crash); their names.

        Only this app's (same data folder, or one that no longer exists), only this machine's
        processes, never detached endpoints. Unpacked models without a container go too.
        """
        try:
            containers = self._containers()
        except UserError as exc:  # no Docker: the next start looks again
            log.debug("looking for orphaned endpoints: %s", exc)
            return []
        home = self.home.resolve()
        orphans = []
        for summary in containers:
            labels = summary.get("Labels") or {}
            owner = labels.get(LABEL_OWNER, "")
            if _ours(labels, home) and owner != DETACHED and not _owner_alive(owner):
                orphans.append(summary)
        removed = self._stop_many(orphans)
        with _logged("removing the networks of crashed endpoint starts"):
            self._remove_orphan_networks(home)
        live_names = {(c.get("Labels") or {}).get(LABEL_ENDPOINT) for c in containers}
        with self._lock:
            live_names |= set(self._live)
        for folder in home.iterdir() if home.is_dir() else []:
            if folder.name.startswith(".") or not folder.is_dir() or folder.name in live_names:
                continue
            lock = self._name_lock(folder.name)
            if lock.acquire():  # else another process is preparing that endpoint right now
                try:
                    remove_tree(folder)
                finally:
                    lock.release()
        return removed

    def _remove_orphan_networks(self, home: Path) -> None:
        """Endpoint networks with no container whose creating process is gone (it crashed
        between creating the network and its container, or while removing them)."""
        for summary in self._networks():
            labels = summary.get("Labels") or {}
            if not _ours(labels, home) or _owner_alive(labels.get(LABEL_OWNER, "")):
                continue
            what = f"the orphaned network {summary.get('Name')}"
            with _logged(f"removing {what}"):
                details = self.client.api.inspect_network(summary["Id"])
                if details.get("Containers"):
                    continue  # a detached endpoint's, still serving
                self.client.api.remove_network(summary["Id"])
                log.info("removed %s", what)


def _ours(labels: Mapping[str, str], home: Path) -> bool:
    """Made by this app's data folder, or by one that no longer exists."""
    their_home = labels.get(LABEL_HOME, "")
    return not their_home or Path(their_home) == home or not Path(their_home).exists()


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve()) and path.resolve() != root.resolve()
    except OSError:
        return False


def _check_servable(
    model_dir: Path,
    mode: str,
    environment: Mapping[str, str] | None,
    progress: Callable[[str, str], None],
) -> None:
    """Refuse a folder the default handlers cannot serve; it would only fail in the container."""
    program = (environment or {}).get("SAGEMAKER_PROGRAM") or "inference.py"
    if (model_dir / "code" / program).is_file():
        return
    weights = (
        [p.name for p in model_dir.iterdir() if p.is_file() and p.suffix in (".pt", ".pth")]
        if model_dir.is_dir()
        else []
    )
    if len(weights) == 1 or "model.pt" in weights:
        progress("preparing", f"No code/{program}: the default handlers serve {weights[0]}")
        return
    if mode == MODE_SAGEMAKER:
        return
    found = ", ".join(sorted(weights)) or "no .pt/.pth file"
    raise UserError(
        f"nothing to serve in {model_dir}: no code/{program} and not exactly one .pt/.pth "
        f"TorchScript file ({found}); the training script should copy inference.py into "
        "model/code/"
    )


def _download_s3(session: AwsSession, uri: str, dest: Path) -> None:
    """Through the app's session (profile, region, adaptive retries) and S3 download path."""
    from trainer_gui.core.aws.s3 import S3Uri, download

    where = S3Uri.parse(uri)
    if not where.key or where.key.endswith("/"):
        raise UserError(f"{uri} is not an s3://bucket/key URI of a model archive")
    if download(session.client("s3"), where, dest) is None:
        raise UserError(f"{uri} does not exist (no such object in S3)")


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    """Best-effort cleanup: a failure does not stop the caller, and is logged, not lost."""
    try:
        yield
    except Exception as exc:
        log.debug("%s failed: %s", what, exc)


def _explain(exc: Any) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    if "port is already allocated" in text or "address already in use" in text:
        return f"the port is taken; pick another one or let Docker choose ({text})"
    if "Conflict" in text or getattr(exc, "status_code", None) == 409:
        return f"a container with this endpoint's name exists already ({text})"
    if "could not select device driver" in text:
        return "Docker cannot give the endpoint GPUs (no NVIDIA Container Toolkit)"
    return f"Docker refused to start the endpoint: {text}"
