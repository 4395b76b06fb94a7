"""Build the container images that local Docker jobs run in.

Three kinds live under `resources/images/<kind>/Dockerfile`: `train-cpu`, `train-gpu` and
`inference`. Each takes `--build-arg BASE_IMAGE=...` (defaults are public images a user can pull)
and, for machines with no registry (CI), a wheelhouse: a folder of wheels for torch, numpy and
their dependencies that is put in the build context as `wheels/` and installed with
`pip --no-index` (`WHEELHOUSE=1`).

    python -m trainer_gui.core.images --kind train-cpu \\
        --base-image trainer-gui/base:bookworm --wheelhouse .build/wheelhouse

Errors a person can fix are `UserError`s: `DockerUnavailable` (from `docker_client`),
`BaseImageMissing`, `WheelhouseError`, `ImageBuildError` (with the last lines of the build log).
The `docker` package is imported lazily.
"""

from __future__ import annotations

import argparse
import collections
import logging
import re
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from trainer_gui.core.docker_util import DockerUnavailable, describe_docker_error, docker_client
from trainer_gui.core.errors import UserError
from trainer_gui.core.paths import resource_path

if TYPE_CHECKING:  # pragma: no cover
    from docker import DockerClient

log = logging.getLogger(__name__)

__all__ = [
    "IMAGE_KINDS",
    "LOCAL_BASE_IMAGE",
    "BaseImageMissing",
    "ImageBuildError",
    "ImageKind",
    "UnknownImageKind",
    "WheelhouseError",
    "build_image",
    "default_base_image",
    "dockerfile_path",
    "image_exists",
    "main",
]

#: The base image `scripts/ci/make-base-image.sh` builds from Debian packages (no registry needed).
LOCAL_BASE_IMAGE = "trainer-gui/base:bookworm"
#: How many build-log lines an `ImageBuildError` carries.
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class ImageKind:
    """One buildable image: its folder under `resources/images/` and its default tag."""

    name: str
    tag: str
    description: str
    gpu: bool = False


IMAGE_KINDS: dict[str, ImageKind] = {
    "train-cpu": ImageKind(
        "train-cpu",
        "trainer-gui/train-cpu:latest",
        "Python 3, PyTorch (CPU build), NumPy, Open MPI with mpi4py, OpenSSH",
    ),
    "train-gpu": ImageKind(
        "train-gpu",
        "trainer-gui/train-gpu:latest",
        "CUDA base, Python 3, PyTorch (CUDA build) and NumPy",
        gpu=True,
    ),
    "inference": ImageKind(
        "inference", "trainer-gui/inference:latest", "Python 3, PyTorch (CPU build) and NumPy"
    ),
}


class UnknownImageKind(UserError):
    """No image of that kind."""


class BaseImageMissing(UserError):
    """The base image is neither on this machine nor pullable."""


class WheelhouseError(UserError):
    """The wheelhouse folder is missing or lacks torch."""


class ImageBuildError(UserError):
    """`docker build` failed; `log_tail` holds the last lines of its output."""

    def __init__(self, message: str, log_tail: Sequence[str] = ()) -> None:
        self.log_tail = list(log_tail)
        full = message
        if self.log_tail:
            full += "\nLast lines of the build log:\n" + "\n".join(
                f"  {line}" for line in self.log_tail
            )
        super().__init__(full)


# --- public API ---------------------------------------------------------------------------------


def dockerfile_path(kind: str) -> Path:
    """`resources/images/<kind>/Dockerfile` (raises `UnknownImageKind` for other kinds)."""
    _kind(kind)
    path = resource_path("images", kind, "Dockerfile")
    if not path.is_file():
        raise UnknownImageKind(f"The app's files lack {path}; reinstall trainer-gui.")
    return path


def default_base_image(kind: str) -> str:
    """The `ARG BASE_IMAGE=...` default of the kind's Dockerfile."""
    text = dockerfile_path(kind).read_text("utf-8")
    match = re.search(r"^\s*ARG\s+BASE_IMAGE=(\S+)", text, re.MULTILINE)
    if not match:  # pragma: no cover - our Dockerfiles all have one
        raise UnknownImageKind(f"{dockerfile_path(kind)} has no ARG BASE_IMAGE default")
    return match.group(1).strip("\"'")


def image_exists(tag: str, client: DockerClient | None = None) -> bool:
    """True when an image with this tag (or id) is on the engine `client` talks to."""
    import docker

    client = client or docker_client()
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        if getattr(exc, "status_code", None) == 404:
            return False
        raise
    return True


def build_image(
    kind: str,
    *,
    base_image: str | None = None,
    wheelhouse: Path | None = None,
    tag: str | None = None,
    on_progress: Callable[[str], None] | None = None,
    client: DockerClient | None = None,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    nocache: bool = False,
) -> str:
    """Build the image of `kind` and return its tag.

    `base_image` overrides the Dockerfile's `BASE_IMAGE` default; a base that is not on this
    machine is pulled first (unless it is a `trainer-gui/...` image, which only a script here
    makes). `wheelhouse` builds offline from that folder of wheels. Build output goes to
    `on_progress` one line at a time. `target` stops at a named stage (`runtime` checks a
    Dockerfile cheaply); `build_args` adds or overrides build arguments.
    """
    spec = _kind(kind)
    dockerfile = dockerfile_path(kind)
    tag = tag or spec.tag
    progress = on_progress or (lambda _line: None)
    wheels = _wheel_files(wheelhouse) if wheelhouse is not None else []

    client = client or docker_client()
    base = base_image or default_base_image(kind)
    _ensure_base_image(client, base, progress)

    args: dict[str, str] = {}
    if base_image:
        args["BASE_IMAGE"] = base_image
    if wheels:
        args["WHEELHOUSE"] = "1"
    args.update(build_args or {})

    progress(
        f"Building {tag} from {dockerfile.parent} (base {base}, "
        + (f"offline from {len(wheels)} wheels in {wheelhouse}" if wheels else "packages online")
        + ")"
    )
    with tempfile.TemporaryFile(prefix="trainer-gui-context-") as context:
        _write_context(context, dockerfile.parent, wheels)
        context.seek(0)
        _run_build(
            client,
            context,
            tag=tag,
            buildargs=args,
            target=target,
            nocache=nocache,
            # Image labels end up on every container too: keep them under trainer-gui.image*.
            labels={"trainer-gui.image": kind, "trainer-gui.image.base": base},
            progress=progress,
        )
    progress(f"Built {tag}")
    return tag


# --- internals ----------------------------------------------------------------------------------


def _kind(kind: str) -> ImageKind:
    try:
        return IMAGE_KINDS[kind]
    except KeyError:
        known = ", ".join(IMAGE_KINDS)
        raise UnknownImageKind(f"Unknown image kind {kind!r} (known: {known}).") from None


def _wheel_files(wheelhouse: Path) -> list[Path]:
    folder = Path(wheelhouse).expanduser()
    hint = "make one with scripts/ci/make-wheelhouse.sh, or build without a wheelhouse"
    if not folder.is_dir():
        raise WheelhouseError(f"Wheelhouse {folder} does not exist ({hint}).")
    wheels = sorted(folder.glob("*.whl"))
    if not any(w.name.lower().startswith("torch-") for w in wheels):
        raise WheelhouseError(f"Wheelhouse {folder} has no torch wheel ({hint}).")
    return wheels


def _write_context(out: IO[bytes], folder: Path, wheels: Sequence[Path]) -> None:
    """The kind's folder as a build-context tar, with the wheelhouse added under `wheels/`."""
    with tarfile.open(fileobj=out, mode="w") as tar:
        names: set[str] = set()
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if "__pycache__" in rel.parts or path.suffix == ".whl":
                continue
            tar.add(path, arcname=rel.as_posix(), recursive=False)
            names.add(rel.as_posix())
        if wheels and "wheels" not in names:
            info = tarfile.TarInfo("wheels")
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for wheel in wheels:
            tar.add(wheel, arcname=f"wheels/{wheel.name}", recursive=False)


def _is_local_only(image: str) -> bool:
    return image.startswith("trainer-gui/")


def _base_hint(base: str) -> str:
    if base == LOCAL_BASE_IMAGE or _is_local_only(base):
        return (
            "build it with scripts/ci/make-base-image.sh (Debian bookworm + python3 via "
            "debootstrap), or pass a base image you can pull, e.g. --base-image python:3.11-slim"
        )
    return (
        f"pull it with `docker pull {base}` where a registry is reachable, or build a local "
        f"base with scripts/ci/make-base-image.sh and pass --base-image {LOCAL_BASE_IMAGE}"
    )


def _ensure_base_image(client: DockerClient, base: str, progress: Callable[[str], None]) -> None:
    import docker

    try:
        if image_exists(base, client):
            return
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(describe_docker_error(exc)) from exc
    if _is_local_only(base):
        raise BaseImageMissing(f"Base image {base} is not on this machine: {_base_hint(base)}.")

    repo, _, tag = base.rpartition(":") if _has_tag(base) else (base, "", "latest")
    progress(f"Pulling base image {repo}:{tag}")
    last_status: dict[str, str] = {}
    try:
        for chunk in client.api.pull(repo, tag=tag, stream=True, decode=True):
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                raise BaseImageMissing(
                    f"Base image {base} is not on this machine and could not be pulled "
                    f"({chunk['error']}): {_base_hint(base)}."
                )
            status = str(chunk.get("status", ""))
            layer = str(chunk.get("id", ""))
            # Skip byte-level progress ("Downloading", "Extracting"): one line per change.
            if status and not chunk.get("progressDetail") and last_status.get(layer) != status:
                last_status[layer] = status
                progress(f"{layer}: {status}" if layer else status)
    except docker.errors.DockerException as exc:
        reason = _first_line(getattr(exc, "explanation", None) or str(exc) or type(exc).__name__)
        raise BaseImageMissing(
            f"Base image {base} is not on this machine and could not be pulled ({reason}): "
            f"{_base_hint(base)}."
        ) from exc
    except OSError as exc:  # requests' ConnectionError and friends
        raise BaseImageMissing(
            f"Base image {base} is not on this machine and could not be pulled ({exc}): "
            f"{_base_hint(base)}."
        ) from exc


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Classic-builder bookkeeping that says nothing about why a build failed.
_NOISE = re.compile(r"^\s*(---> |Removing intermediate container|Running in |Using cache)")
_NONZERO = re.compile(r"^The command '(?P<cmd>.*)' returned a non-zero code: (?P<code>\d+)", re.S)


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else ""


def _clip(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _summarise_error(error: str) -> str:
    """'RUN set -eu; python3 -m venv … failed with exit code 1' instead of the whole command."""
    match = _NONZERO.match(error.strip())
    if not match:
        return _clip(_first_line(error))
    cmd = " ".join(match.group("cmd").split())
    cmd = cmd.removeprefix("/bin/sh -c ")
    return f"step `RUN {_clip(cmd, 80)}` failed with exit code {match.group('code')}"


def _has_tag(image: str) -> bool:
    """Whether `image` names a tag (a colon after the last slash) or a digest."""
    if "@" in image:
        return False
    return ":" in image.rsplit("/", 1)[-1]


def _build_lines(chunks: Iterator[Any]) -> Iterator[tuple[str, str]]:
    """(`kind`, `text`) pairs from the engine's build stream: kind is line, error or id."""
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if "stream" in chunk:
            for line in _ANSI.sub("", str(chunk["stream"])).splitlines():
                if line.strip():
                    yield "line", line.rstrip()
        if "status" in chunk and not chunk.get("progressDetail"):
            yield "line", str(chunk["status"])
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = chunk.get("error") or detail.get("message") or "unknown error"
            yield "error", str(message).strip()
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            yield "id", str(aux["ID"])


def _run_build(
    client: DockerClient,
    context: IO[bytes],
    *,
    tag: str,
    buildargs: Mapping[str, str],
    target: str | None,
    nocache: bool,
    labels: Mapping[str, str],
    progress: Callable[[str], None],
) -> None:
    import docker

    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    kwargs: dict[str, Any] = {
        "fileobj": context,
        "custom_context": True,
        "tag": tag,
        "buildargs": dict(buildargs),
        "rm": True,
        "forcerm": True,
        "pull": False,
        "nocache": nocache,
        "decode": True,
        "labels": dict(labels),
    }
    if target:
        kwargs["target"] = target
    error: str | None = None
    try:
        for what, text in _build_lines(client.api.build(**kwargs)):
            if what == "line":
                if not _NOISE.match(text):
                    tail.append(_clip(text, 300))
                progress(text)
            elif what == "error":
                error = text
                progress(text)
    except docker.errors.APIError as exc:
        # The engine refused the build before it started: a Dockerfile that does not parse, a
        # bad build argument or target.
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise ImageBuildError(
            f"Building {tag} failed: {_clip(_first_line(explanation), 300)}", list(tail)
        ) from exc
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(describe_docker_error(exc)) from exc
    except OSError as exc:
        raise ImageBuildError(
            f"Building {tag} failed: lost the connection to Docker ({exc})", list(tail)
        ) from exc
    if error is not None:
        raise ImageBuildError(f"Building {tag} failed: {_summarise_error(error)}", list(tail))


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer_gui.core.images",
        description="Build a trainer-gui container image (train-cpu, train-gpu, inference).",
    )
    parser.add_argument("--kind", required=True, choices=sorted(IMAGE_KINDS))
    parser.add_argument(
        "--base-image", help="base image (default: the Dockerfile's, e.g. python:3.11-slim)"
    )
    parser.add_argument(
        "--wheelhouse", type=Path, help="folder of wheels to install offline (torch, numpy, deps)"
    )
    parser.add_argument("--tag", help="image tag (default: trainer-gui/<kind>:latest)")
    parser.add_argument("--target", help="stop at this build stage (e.g. runtime)")
    parser.add_argument(
        "--build-arg", action="append", default=[], metavar="NAME=VALUE", help="extra build arg"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    parser.add_argument("--quiet", action="store_true", help="print only the resulting tag")
    parser.add_argument(
        "--timestamps", action="store_true", help="prefix output lines with elapsed seconds"
    )
    ns = parser.parse_args(argv)

    extra: dict[str, str] = {}
    for item in ns.build_arg:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--build-arg wants NAME=VALUE, got {item!r}")
        extra[name] = value

    started = time.monotonic()

    def show(line: str) -> None:
        if ns.timestamps:
            line = f"[{time.monotonic() - started:7.1f}s] {line}"
        print(line, flush=True)

    try:
        tag = build_image(
            ns.kind,
            base_image=ns.base_image,
            wheelhouse=ns.wheelhouse,
            tag=ns.tag,
            on_progress=None if ns.quiet else show,
            target=ns.target,
            build_args=extra,
            nocache=ns.no_cache,
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    if ns.quiet:
        print(tag)
    else:
        show(f"Done in {time.monotonic() - started:.0f}s: {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
