"""Warm containers for docker runs (issue 18): a spare container waits for the next run.

A cold docker run of the direct launch spends a second creating and starting its container and
then seconds importing torch in it. After a run of a spec (one CPU host, a `.py` entry point, no
requirements.txt: `DockerRunner._launch` says "direct"), the runner asks this pool for a spare
container of that spec: the same image, user, hostname, environment (less the per-run names),
working folder and mounts a cold container gets, running `core/contract/warm_waiter.py` (the
image's `python3`, torch imported, waiting on a FIFO). The next run of the same spec takes it:

* **Mounts**: a cold container binds the run's own folders, which do not exist yet when the
  spare starts. The spare binds empty folders of a slot in the data folder
  (`<data>/docker-warm/<token>/m<i>`, one per mount); a bind follows the folder, not its path,
  so at the hand-off the run's prepared files are moved into them (renames, same file system)
  and each slot folder is renamed onto the run's (now empty) folder. The run folder ends up as a
  cold run's, and the container sees it at the same /opt/ml paths. The waiter checks that it
  sees the run's config files; an engine that does not share the host's folders by inode (a VM)
  refuses, and warm containers are not tried again in this process.
* **Names and labels**: labels cannot change on a running container; the spare carries
  `trainer-gui.role=warm`, `trainer-gui.home=<data folder>` and its slot, and is renamed to the
  job's `<job>-algo-1` at the hand-off. The runner finds a job's containers by its label or by
  that name on a warm container (`DockerRunner._job_containers`); stop, logs, wait and removal
  work the same. The start marker keeps the run's command (for the failure text).
* **Torn down** when the next run's spec differs (one spare per process), when the process
  closes the pool (the job host's exit, `atexit` otherwise), and when the job host starts (a
  crashed host's spare: `sweep_stale`). A spare whose heartbeat file (touched every
  HEARTBEAT_EVERY seconds) goes stale exits by itself (`warm_waiter.STALE_AFTER`), and the next
  clean-up removes it.
* **Off** with `TRAINER_GUI_WARM=0`, a project's `warm_start: false`, off Linux, and for every
  run that is not the direct launch on one host (those run cold exactly as before).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_gui.core.paths import data_home

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)

ROLE_WARM = "warm"
LABEL_HOME = "trainer-gui.home"
LABEL_SLOT = "trainer-gui.warm-slot"
SPARE_PREFIX = "tg-warm-"
WARM_DIR = "docker-warm"
WAITER_MOUNT = "/opt/trainer-gui/warm_waiter.py"
CONTROL_MOUNT = "/opt/trainer-gui/warm"
PREIMPORT = ("torch",)
HEARTBEAT_EVERY = 5.0
#: A spare whose heartbeat is older than this is stale (its waiter exits then too).
STALE_AFTER = 30.0
#: How long a run waits for a spare of its spec that is still importing torch (it started
#: before this run, so it is ready sooner than a cold container would be).
TAKE_TIMEOUT = 60.0
#: How long the waiter has to answer a run handed to it.
ANSWER_TIMEOUT = 10.0


def imports_preimported(script: Path) -> bool:
    """Whether the entry script itself imports a module the spare imports ahead (then waiting
    for a spare still importing it beats a cold start, which would import it again)."""
    try:
        text = script.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    names = "|".join(re.escape(name) for name in PREIMPORT)
    pattern = rf"^[ \t]*(from[ \t]+({names})\b|import[ \t]+([\w., \t]*,[ \t]*)?({names})\b)"
    return re.search(pattern, text, re.MULTILINE) is not None


def waiter_path() -> Path:
    return Path(__file__).resolve().parent.parent / "contract" / "warm_waiter.py"


def warm_root() -> Path:
    return data_home() / WARM_DIR


def cold_reason(backend_ids: dict[str, Any] | Any) -> str | None:
    """Why no warm container may be used, for reasons outside the spec; None when it may."""
    if not sys.platform.startswith("linux"):
        return "warm containers need Docker on Linux"
    if os.environ.get("TRAINER_GUI_WARM", "1") == "0":
        return "warm starts are off"
    if backend_ids.get("warm") is False:
        return "the project turned warm starts off"
    if not waiter_path().is_file():  # a frozen build that did not collect it as a file
        return "this build has no warm_waiter.py to mount"
    return None


@dataclass(frozen=True)
class MountPlan:
    target: str
    read_only: bool
    #: the run's folder bound there (swapped with a slot folder), or None for a fixed folder
    run_path: Path | None
    #: a fixed folder (the user's checkpoint_dir, the same for every run of the spec)
    source: str | None = None


@dataclass(frozen=True)
class Plan:
    """A spare container for one spec: what a cold container of it gets, less the run."""

    image: str
    image_id: str
    environment: dict[str, str]
    user: str | None
    mounts: tuple[MountPlan, ...]
    options: dict[str, Any]

    @property
    def key(self) -> str:
        data = [
            self.image_id,
            sorted(self.environment.items()),
            self.user,
            [(m.target, m.read_only, m.run_path is None, m.source) for m in self.mounts],
            sorted((k, repr(v)) for k, v in self.options.items()),
        ]
        return hashlib.sha256(json.dumps(data).encode("utf-8")).hexdigest()[:16]


@dataclass
class Spare:
    key: str
    slot: Path
    name: str
    plan: Plan
    container_id: str | None = None
    container: Any = None
    created: threading.Event = field(default_factory=threading.Event)
    failed: str | None = None

    @property
    def control(self) -> Path:
        return self.slot / "control"

    def slot_folder(self, index: int) -> Path:
        return self.slot / f"m{index}"

    def ready(self) -> bool:
        return self.container_id is not None and (self.control / "ready").exists()


def remove_slot(slot: Path) -> None:
    """A slot's control files and its empty folders; never a folder with files in it (a run's
    files are moved out before its folders are renamed away, or back on a failed hand-off)."""
    root = warm_root().resolve()
    try:
        resolved = slot.resolve()
    except OSError:
        return
    if resolved.parent != root:
        log.warning("not removing %s: not a warm slot of %s", slot, root)
        return
    control = resolved / "control"
    for name in ("ready", "answer", "heartbeat", "run.fifo", "ready.tmp", "answer.tmp"):
        with contextlib.suppress(FileNotFoundError):
            (control / name).unlink()
    for folder in [control, *sorted(resolved.glob("m*"))]:
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("leaving %s: %s", folder, exc)
    with contextlib.suppress(OSError):
        resolved.rmdir()


def handed_off(slot: Path) -> bool:
    """Whether the waiter of this slot accepted its run (re-attach: a renamed warm container
    that never got its run is a job that never started)."""
    try:
        return (slot / "control" / "answer").read_text(encoding="utf-8") == "accepted"
    except OSError:
        return False


def remove_container(client: DockerClient, container_id: str, slot: str | None) -> None:
    with contextlib.suppress(Exception):
        client.api.remove_container(container_id, force=True)
    if slot:
        remove_slot(Path(slot))


class DockerWarmPool:
    """The spare container of this process (at most one: the spec of the latest run)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: Spare | None = None
        self._beat: threading.Thread | None = None
        self._closed = threading.Event()
        self._atexit = False
        #: set when an engine cannot be used warm (e.g. it does not share folders by inode)
        self.unusable: str | None = None
        #: specs whose spare refused a run for its code (a module shadowing a pre-imported
        #: one): no more spares for them in this process
        self.refused: set[str] = set()

    # -- making one ------------------------------------------------------------------------

    def ensure(self, client: DockerClient, plan: Plan) -> None:
        """A spare for `plan` is ready or on its way; any other spare goes."""
        key = plan.key
        if self.unusable or key in self.refused:
            return
        with self._lock:
            current = self._spare
            if current is not None and current.key == key and current.failed is None:
                return
            token = secrets.token_hex(6)
            spare = Spare(key, warm_root() / token, SPARE_PREFIX + token, plan)
            self._spare = spare
            first = not self._atexit
            if first:
                atexit.register(self.close)  # the job host's exit (and any other process's)
                self._atexit = True
            self._closed.clear()
            if self._beat is None:
                self._beat = threading.Thread(target=self._heartbeat, name="warm-beat", daemon=True)
                self._beat.start()
        if current is not None:
            self._discard(client, current)
        if first:  # what a killed process left
            threading.Thread(target=sweep_stale, args=(client,), daemon=True).start()
        threading.Thread(
            target=self._create, args=(client, spare), name="warm-spare", daemon=True
        ).start()

    def _create(self, client: DockerClient, spare: Spare) -> None:
        from docker.types import Mount

        plan = spare.plan
        try:
            spare.control.mkdir(parents=True, mode=0o700)
            os.mkfifo(spare.control / "run.fifo", 0o600)
            (spare.control / "heartbeat").touch()
            mounts = []
            for index, mount in enumerate(plan.mounts):
                if mount.run_path is not None:
                    folder = spare.slot_folder(index)
                    folder.mkdir()
                    source = str(folder)
                else:
                    source = str(mount.source)
                mounts.append(
                    Mount(
                        target=mount.target, source=source, type="bind", read_only=mount.read_only
                    )
                )
            mounts.append(
                Mount(target=WAITER_MOUNT, source=str(waiter_path()), type="bind", read_only=True)
            )
            mounts.append(Mount(target=CONTROL_MOUNT, source=str(spare.control), type="bind"))
            labels = {
                "trainer-gui.role": ROLE_WARM,
                "trainer-gui.host": "algo-1",
                "trainer-gui.launch": "direct",
                LABEL_HOME: str(data_home()),
                LABEL_SLOT: str(spare.slot),
            }
            from trainer_gui.core.runners.docker import DIRECT_PYTHON

            container = client.containers.create(
                plan.image,
                entrypoint=[DIRECT_PYTHON],
                command=[
                    WAITER_MOUNT,
                    "--control",
                    CONTROL_MOUNT,
                    "--preimport",
                    ",".join(PREIMPORT),
                ],
                name=spare.name,
                labels=labels,
                environment=plan.environment,
                mounts=mounts,
                user=plan.user,
                detach=True,
                **plan.options,
            )
            spare.container_id = container.id
            spare.container = container
            if self._closed.is_set() or self._spare is not spare:
                raise RuntimeError("the pool let go of it")
            container.start()
        except Exception as exc:
            spare.failed = str(exc) or type(exc).__name__
            log.info("no warm container for the next run: %s", spare.failed)
            spare.created.set()
            self._remove(client, spare)
        finally:
            spare.created.set()

    # -- taking one ------------------------------------------------------------------------

    def take(
        self, client: DockerClient, key: str, wait: bool, timeout: float = TAKE_TIMEOUT
    ) -> Spare | None:
        """The spare for `key` once its waiter is ready, now the caller's; None when there is
        none (the run starts cold). One still importing is waited for only with `wait` (the
        script imports what it imports, so it is ready sooner than a cold container would be);
        otherwise it stays for a later run."""
        with self._lock:
            spare = self._spare
            if spare is None or spare.key != key or spare.failed is not None:
                return None
            if not wait and not spare.ready():
                return None
            self._spare = None
        deadline = time.monotonic() + timeout
        spare.created.wait(timeout)
        next_look = 0.0
        while spare.failed is None and spare.container_id is not None:
            if (spare.control / "ready").exists():
                return spare
            now = time.monotonic()
            if now > deadline:
                break
            if now >= next_look:
                with contextlib.suppress(OSError):  # the pool's heartbeat no longer sees it
                    os.utime(spare.control / "heartbeat")
                try:
                    state = client.api.inspect_container(spare.container_id)["State"]
                except Exception:
                    break
                if not state.get("Running"):  # a waiter that died
                    break
                next_look = now + 0.5
            time.sleep(0.01)
        log.info("the warm container %s was not ready; the run starts cold", spare.name)
        self._remove(client, spare)
        return None

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Tests and benchmarks: wait until the spare (if any) is ready."""
        deadline = time.monotonic() + timeout
        with self._lock:
            spare = self._spare
        if spare is None:
            return True
        spare.created.wait(timeout)
        while time.monotonic() < deadline and spare.failed is None:
            if (spare.control / "ready").exists():
                return True
            time.sleep(0.02)
        return False

    def spare(self) -> Spare | None:
        with self._lock:
            return self._spare

    # -- letting go ------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        while True:  # for the life of the process (a daemon thread): the spare of the moment
            time.sleep(HEARTBEAT_EVERY)
            with self._lock:
                spare = self._spare
            if spare is not None:
                with contextlib.suppress(OSError):
                    os.utime(spare.control / "heartbeat")

    def _discard(self, client: DockerClient, spare: Spare) -> None:
        threading.Thread(target=self._remove, args=(client, spare), daemon=True).start()

    @staticmethod
    def _remove(client: DockerClient, spare: Spare) -> None:
        spare.created.wait(60)
        if spare.container_id is not None:
            with contextlib.suppress(Exception):
                client.api.remove_container(spare.container_id, force=True)
        remove_slot(spare.slot)

    def close(self, client: DockerClient | None = None) -> None:
        """Remove the spare (the job host exits; tests)."""
        self._closed.set()
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None:
            return
        if client is None:
            try:
                from trainer_gui.core.docker_util import docker_client

                client = docker_client()
            except Exception as exc:
                log.info("cannot remove the warm container %s: %s", spare.name, exc)
                return
        self._remove(client, spare)


def _stale(slot: str | None) -> bool:
    """A spare whose heartbeat stopped: the process that made it is gone."""
    if not slot:
        return True
    try:
        age = time.time() - (Path(slot) / "control" / "heartbeat").stat().st_mtime
    except OSError:
        return True
    return age > STALE_AFTER


def sweep_stale(client: DockerClient) -> list[str]:
    """Remove this data folder's spares that serve no live process: exited ones, and those
    whose heartbeat stopped (their job host was killed); and slots no container uses. A spare
    of a live process (this one's, or another's with a fresh heartbeat) stays."""
    home = str(data_home())
    try:
        found = client.api.containers(
            all=True, filters={"label": [f"trainer-gui.role={ROLE_WARM}", f"{LABEL_HOME}={home}"]}
        )
    except Exception as exc:
        log.info("no sweep of warm containers: %s", exc)
        return []
    own = POOL.spare()
    removed = []
    in_use = {str(own.slot)} if own is not None else set()
    for info in found:
        labels = info.get("Labels") or {}
        name = (info.get("Names") or ["/"])[0].lstrip("/")
        slot = labels.get(LABEL_SLOT)
        mine = own is not None and own.container_id == info.get("Id")
        dead = info.get("State") != "running" or _stale(slot)
        if name.startswith(SPARE_PREFIX) and not mine and dead:
            remove_container(client, info["Id"], slot)
            removed.append(name)
            continue
        in_use.add(str(slot or ""))
    root = warm_root()
    with contextlib.suppress(OSError):
        for slot_dir in root.iterdir() if root.is_dir() else []:
            # a slot being made has no container yet: only old ones go
            old = time.time() - slot_dir.stat().st_mtime > STALE_AFTER
            if str(slot_dir) not in in_use and old:
                remove_slot(slot_dir)
    return removed


def hand_off(spare: Spare, request: dict[str, Any]) -> str | None:
    """Send the run to the spare's waiter; None once it accepted, else why not."""
    try:
        fd = os.open(spare.control / "run.fifo", os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        return "the waiter is gone" if exc.errno == errno.ENXIO else str(exc)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        data = (json.dumps(request) + "\n").encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
    answer = spare.control / "answer"
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        try:
            text = answer.read_text(encoding="utf-8")
        except FileNotFoundError:
            time.sleep(0.002)
            continue
        return None if text == "accepted" else text
    return "the waiter did not answer"


def swap_in(pairs: list[tuple[Path, Path]]) -> None:
    """Make each run folder the slot folder the spare binds: the run's entries move into the
    slot folder, which then replaces the (now empty) run folder. On an error the entries of
    the pair in progress move back (the run folder keeps its files either way) and it raises."""
    for run_path, slot_path in pairs:
        moved: list[str] = []
        try:
            for entry in os.listdir(run_path):
                os.rename(run_path / entry, slot_path / entry)
                moved.append(entry)
            os.rename(slot_path, run_path)  # replaces the empty folder
        except OSError:
            if slot_path.is_dir():
                for entry in moved:
                    with contextlib.suppress(OSError):
                        os.rename(slot_path / entry, run_path / entry)
            raise


#: The process's pool (the job host's, or the CLI's when it runs jobs itself).
POOL = DockerWarmPool()
