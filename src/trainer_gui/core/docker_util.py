"""Connecting to the Docker engine, with errors a person can act on.

Every backend that talks to Docker gets its client from `docker_client()`, which either returns a
client that answered a ping or raises `DockerUnavailable` (a `BackendUnavailable`) whose message
says what is wrong: the SDK is missing, Docker is not installed or not running, the socket is not
ours to use, `DOCKER_HOST` points nowhere, or the engine is too slow to answer.

The `docker` package is imported lazily so that the rest of the app works without it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_gui.core.errors import BackendUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from docker import DockerClient

log = logging.getLogger(__name__)

__all__ = [
    "NOT_RUNNING_HINT",
    "PERMISSION_HINT",
    "DockerUnavailable",
    "describe_docker_error",
    "docker_available",
    "docker_client",
]

NOT_RUNNING_HINT = "Docker is not running (start Docker Desktop / `sudo systemctl start docker`)"
PERMISSION_HINT = (
    "permission denied on the Docker socket (add your user to the docker group: "
    "`sudo usermod -aG docker $USER`, then log out and in again)"
)
NOT_INSTALLED_HINT = (
    "Docker is not installed (install Docker Desktop, or Docker Engine: on Debian/Ubuntu "
    "`sudo apt-get install docker.io`)"
)


class DockerUnavailable(BackendUnavailable):
    """The Docker engine cannot be used right now; `str(err)` says why and what to do."""


def docker_client(*, timeout: int = 300, base_url: str | None = None) -> DockerClient:
    """A connected Docker client (it has answered a ping), or `DockerUnavailable`.

    `base_url` overrides the engine address; otherwise `DOCKER_HOST` and friends are used, then
    the default socket, then the endpoint of the Docker CLI's current context (Docker Desktop on
    Linux, colima and others put their socket there). `timeout` is the client's per-request
    timeout in seconds (builds stream, so it bounds silence, not a whole build).
    """
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency of the app
        raise DockerUnavailable(
            "The Docker SDK for Python is not installed (`pip install docker`)."
        ) from exc

    candidates: list[str | None] = [base_url] if base_url else [None]
    if base_url is None and not os.environ.get("DOCKER_HOST"):
        for host in (_context_host(), _desktop_socket()):
            if host and host not in candidates:
                candidates.append(host)

    first_error: BaseException | None = None
    for candidate in candidates:
        client: DockerClient | None = None
        try:
            if candidate is None:
                client = docker.from_env(timeout=timeout)
            else:
                client = docker.DockerClient(base_url=candidate, timeout=timeout)
            client.ping()
            return client
        except Exception as exc:
            log.debug("no Docker engine at %s: %s", candidate or "DOCKER_HOST/default", exc)
            if client is not None:
                client.close()
            if first_error is None:
                first_error = exc
    assert first_error is not None
    raise DockerUnavailable(describe_docker_error(first_error)) from first_error


def docker_available() -> bool:
    """True when `docker_client()` would succeed (never raises)."""
    try:
        docker_client(timeout=10).close()
    except BackendUnavailable:
        return False
    return True


def describe_docker_error(exc: BaseException) -> str:
    """A one-line, actionable message for an error raised while connecting to Docker."""
    chain = _exception_chain(exc)
    text = " | ".join(str(e) for e in chain)
    lowered = text.lower()
    docker_host = os.environ.get("DOCKER_HOST")

    if any(isinstance(e, PermissionError) for e in chain) or "permission denied" in lowered:
        return f"Cannot use Docker: {PERMISSION_HINT}."
    if any(isinstance(e, TimeoutError) for e in chain) or "timed out" in lowered:
        return (
            "Cannot use Docker: the engine did not answer in time "
            "(it may still be starting; try again in a minute)."
        )
    missing_socket = (
        any(
            isinstance(e, FileNotFoundError) or getattr(e, "errno", None) == errno.ENOENT
            for e in chain
        )
        or "no such file or directory" in lowered
    )
    refused = any(isinstance(e, ConnectionRefusedError) for e in chain) or (
        "connection refused" in lowered
    )
    if docker_host and (missing_socket or refused or "connection" in lowered):
        return (
            f"Cannot use Docker: nothing answers at DOCKER_HOST={docker_host} "
            "(start Docker there, or unset/fix DOCKER_HOST)."
        )
    if missing_socket or refused or "connection aborted" in lowered:
        if not _docker_installed():
            return f"Cannot use Docker: {NOT_INSTALLED_HINT}."
        return f"Cannot use Docker: {NOT_RUNNING_HINT}."
    if sys.platform == "win32" and ("pipe" in lowered or "pywintypes" in lowered):
        return f"Cannot use Docker: {NOT_RUNNING_HINT}."
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"Cannot use Docker: {first}"


# --- helpers ------------------------------------------------------------------------------------


def _exception_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend([item.__cause__, item.__context__])
        # urllib3/requests keep the underlying error in `reason` or in args.
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        todo.extend(a for a in item.args if isinstance(a, BaseException))
    return seen


def _docker_installed() -> bool:
    if shutil.which("docker") or shutil.which("dockerd"):
        return True
    return any(
        Path(p).exists()
        for p in (
            "/var/run/docker.sock",
            "/Applications/Docker.app",
            r"C:\Program Files\Docker\Docker",
        )
    )


def _desktop_socket() -> str | None:
    """Docker Desktop's per-user socket, where the default one is absent."""
    for path in (
        Path.home() / ".docker" / "run" / "docker.sock",
        Path.home() / ".docker" / "desktop" / "docker.sock",
    ):
        if path.exists():
            return f"unix://{path}"
    return None


def _context_host() -> str | None:
    """The engine address of the Docker CLI's current context, if it is not the default."""
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    name = os.environ.get("DOCKER_CONTEXT")
    try:
        if not name:
            config: dict[str, Any] = json.loads((config_dir / "config.json").read_text("utf-8"))
            name = config.get("currentContext")
        if not name or name == "default":
            return None
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        meta = json.loads(
            (config_dir / "contexts" / "meta" / digest / "meta.json").read_text("utf-8")
        )
        host = meta.get("Endpoints", {}).get("docker", {}).get("Host")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:  # a damaged CLI config: use the default
        log.debug("ignoring the Docker CLI context %s: %s", name, exc)
        return None
    return host if isinstance(host, str) and host else None
