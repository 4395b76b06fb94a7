"""Warm starts for local-process runs (issue 18): the runner's side of the fork server.

A cold run starts the project's interpreter for the driver, which starts another for the script,
which then imports torch: seconds before the script's own first line. A warm run asks a fork
server (`core/contract/warm_server.py`, run by the project's interpreter with torch already
imported) for the driver; the driver forks the script from itself. The script's own code starts
within tens of milliseconds, with the environment, argv, cwd, sys.path, process group, signal
dispositions and exit status a cold run gives it (tests/core/test_warm_start.py runs the
contract both ways).

Design:

* **Owned by the process that runs the jobs** (the job host): one server per interpreter and
  environment, started on the first run that could use it (that run is cold; later ones are
  warm once it is ready). It talks over a socket pair, not a path: nothing to authenticate, and
  the server exits when the job host's end closes, so it holds no memory once the app and its
  host are gone. Jobs it started run on (their own sessions); a new host re-attaches to them
  as it does to cold ones.
* **Exit status**: the server is the driver's parent; it reaps it and sends the status back.
  `WarmProcess` is the runner's `Popen`: `pid`, `poll()`, `wait()`, `returncode` (negative for
  a signal, as Popen). Should the server die first, the status is taken from the run's
  success/failure files once the driver is gone.
* **Stop and signals** are untouched: the driver leads its own session as a cold one does, the
  script is its child, so `proc.terminate_tree` reaches both.
* **Never warm** for GPU jobs (CUDA state cannot cross a fork), torchrun/custom drivers/plain
  commands, a job with requirements (its own venv), a project that opted out
  (`project setting warm_start: false`), `TRAINER_GUI_WARM=0`, or off Linux.
* **Restarted** when the interpreter file changes (path, size, mtime), when the job's
  environment differs (part of the server's key: variables read at import time, such as
  OMP_NUM_THREADS, must be the job's), and when the server finds its site-packages changed
  (it then refuses, the run goes cold, and a new server is started).
* **Learns** the site-packages modules each warm run imported and imports them between runs.
  The names are kept in the data folder (`warm-imports.json`, per interpreter, with the
  fingerprint of its site-packages; the 200 most recent): the next server, after a restart of
  the host, imports them before it says it is ready. A changed fingerprint drops them; an
  unreadable file is ignored (a log line) and rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from trainer_gui.core.atomic import write_atomic
from trainer_gui.core.paths import data_home
from trainer_gui.core.runners import proc

log = logging.getLogger(__name__)

#: The project setting (Project.settings) that turns warm starts off for one project.
SETTING = "warm_start"
#: What every warm server imports before it says it is ready.
PREIMPORT = ("torch",)
#: Variables that differ between runs and are set for each driver, not for the server.
PER_RUN = ("TRAINING_JOB_NAME",)
MAX_MESSAGE = 1 << 20
#: The learned imports in the data folder; how many names per interpreter, how many interpreters.
LEARNED_FILE = "warm-imports.json"
LEARNED_MAX = 200
LEARNED_INTERPRETERS = 20
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def server_path() -> Path:
    return Path(__file__).resolve().parent.parent / "contract" / "warm_server.py"


def globally_enabled() -> bool:
    return (
        sys.platform.startswith("linux")
        and hasattr(socket, "send_fds")
        and os.environ.get("TRAINER_GUI_WARM", "1") != "0"
    )


def project_allows(settings: Mapping[str, Any] | None) -> bool:
    """A project's choice; on unless its settings say `warm_start: false`."""
    return not settings or settings.get(SETTING, True) is not False


def cold_reason(spec: Any, requirements: bool, backend_ids: Mapping[str, Any]) -> str | None:
    """Why this job must start cold; None when a warm start gives it the same run."""
    if not globally_enabled():
        return "warm starts are off"
    if backend_ids.get("warm") is False:
        return "the project turned warm starts off"
    if spec.uses_gpu:
        return "a GPU job (CUDA state cannot cross a fork)"
    if requirements:
        return "requirements.txt (a venv of its own)"
    if spec.source.command is not None or spec.distribution.kind != "none":
        return "not a plain script"
    if not str(spec.source.entry_point or "").endswith(".py"):
        return "not a Python script"
    return None


def _interpreter_key(python: str) -> tuple[str, int, int]:
    try:
        st = os.stat(python)
        return (python, st.st_size, st.st_mtime_ns)
    except OSError:
        return (python, 0, 0)


def _env_key(env: Mapping[str, str]) -> str:
    # The app's own settings (TRAINER_GUI_*) never reach what the script imports.
    items = sorted(
        (k, v) for k, v in env.items() if k not in PER_RUN and not k.startswith("TRAINER_GUI_")
    )
    return hashlib.sha256(json.dumps(items).encode("utf-8")).hexdigest()


class LearnedImports:
    """The modules warm runs imported, kept across restarts of the host (`warm-imports.json`):
    {"version": 1, "interpreters": {python: {"fingerprint": [...], "modules": [names]}}}."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else data_home() / LEARNED_FILE

    def _load(self) -> dict[str, dict[str, Any]]:
        path = self.path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("ignoring the warm starts' learned imports %s: %s", path, exc)
            return {}
        try:
            entries = json.loads(text)["interpreters"]
            out = {}
            for python, entry in entries.items():
                modules = entry["modules"]
                if not isinstance(entry["fingerprint"], list) or not isinstance(modules, list):
                    raise TypeError("not a list")
                good = [m for m in modules if isinstance(m, str) and _MODULE_NAME.match(m)]
                out[str(python)] = {"fingerprint": entry["fingerprint"], "modules": good}
            return out
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning(
                "ignoring the warm starts' learned imports %s: not readable (%r)", path, exc
            )
            return {}

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        path = self.path
        entries = dict(list(entries.items())[-LEARNED_INTERPRETERS:])
        text = json.dumps({"version": 1, "interpreters": entries}, indent=1)
        try:
            write_atomic(path, text)
        except OSError as exc:
            log.warning("cannot keep the warm starts' learned imports in %s: %s", path, exc)

    def get(self, python: str) -> tuple[list[str], Any]:
        """The names to import at start and the fingerprint they were learned with."""
        with self._lock:
            entry = self._load().get(python)
        if entry is None:
            return [], None
        return list(entry["modules"]), entry["fingerprint"]

    def started(self, python: str, fingerprint: Any) -> None:
        """A server is ready: its packages changed since the names were learned? Drop them."""
        with self._lock:
            entries = self._load()
            entry = entries.get(python)
            if entry is not None and entry["fingerprint"] == fingerprint:
                return
            entries.pop(python, None)
            entries[python] = {"fingerprint": fingerprint, "modules": []}
            self._save(entries)

    def learned(self, python: str, fingerprint: Any, names: list[str]) -> None:
        with self._lock:
            entries = self._load()
            entry = entries.pop(python, None)
            if entry is None or entry["fingerprint"] != fingerprint:
                entry = {"fingerprint": fingerprint, "modules": []}
            new = [n for n in names if isinstance(n, str) and _MODULE_NAME.match(n)]
            kept = [m for m in entry["modules"] if m not in new]
            entry["modules"] = [*kept, *new][-LEARNED_MAX:]  # the most recent last
            entries[python] = entry
            self._save(entries)


class WarmProcess:
    """A driver the fork server started, watched like a `subprocess.Popen` of our own."""

    def __init__(self, server: _Server, ident: int, run_dir: Path | None) -> None:
        self.server = server
        self.ident = ident
        self.run_dir = run_dir
        self.pid = 0
        self.refused: str | None = None
        self.stale = False
        self.returncode: int | None = None
        self._marker: str | None = None
        self._started = threading.Event()
        self._ended = threading.Event()

    # called by the server's reader thread
    def _on_pid(self, pid: int) -> None:
        self.pid = pid
        self._marker = proc.start_marker(pid)
        self._started.set()

    def _on_refused(self, reason: str, stale: bool) -> None:
        self.refused = reason
        self.stale = stale
        self._started.set()
        self._ended.set()

    def _on_exit(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    def _on_lost(self) -> None:
        """The server is gone: the driver (if any) runs on, watched by its pid."""
        if not self._started.is_set():
            self.refused = "the warm interpreter ended"
            self._started.set()
        self._ended.set()

    def wait_started(self) -> bool:
        """Whether the server forked the driver (False: refused, start it cold)."""
        self._started.wait()
        return self.refused is None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if not self._ended.is_set():
            return None
        if proc.pid_alive(self.pid, self._marker):
            return None  # the server died before its driver: watch the pid
        self.returncode = self._status_from_files()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None:
                return code
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(["warm driver"], timeout or 0)
            if not self._ended.is_set():
                self._ended.wait(0.5 if left is None else min(left, 0.5))
            else:
                time.sleep(0.05)

    def _status_from_files(self) -> int:
        """0 when the driver wrote its success file, else 1 (the failure file says why)."""
        if self.run_dir is None:
            return 1
        success = self.run_dir / "hosts" / "algo-1" / "output" / "success"
        return 0 if success.exists() else 1


class _Server:
    """One warm interpreter: its process, its socket and the runs it started."""

    def __init__(
        self,
        python: str,
        env: Mapping[str, str],
        preimport: list[str],
        memory: LearnedImports | None = None,
    ) -> None:
        from trainer_gui.core import contract

        self.python = python
        self.memory = memory
        self.fingerprint: Any = None
        self.ready = threading.Event()
        self.dead = False
        self.modules: set[str] = set()
        self.retired = False
        self._next = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, WarmProcess] = {}
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = mine
        server_env = {k: v for k, v in env.items() if k not in PER_RUN and k != "PYTHONPATH"}
        cmd = [
            python,
            str(server_path()),
            "--fd",
            str(theirs.fileno()),
            "--toolkit",
            str(contract.driver_path()),
            "--preimport",
            ",".join(preimport),
        ]
        if memory is not None:
            try:
                learned, learned_for = memory.get(python)
            except Exception as exc:  # never a reason for a run not to start
                log.warning("warm start: the learned imports are not used: %s", exc)
                learned = []
            if learned:
                cmd += ["--learned", ",".join(learned), "--learned-for", json.dumps(learned_for)]
        try:
            self.popen = subprocess.Popen(
                cmd,
                env=server_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # no terminal signal of the host's reaches it
            )
        finally:
            theirs.close()
        self._reader = threading.Thread(target=self._read, name="warm-server", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            try:
                message = json.loads(data.decode("utf-8"))
            except ValueError:
                continue
            if message.get("ready"):
                self.modules = set(message.get("modules") or ())
                self.fingerprint = message.get("fingerprint")
                self._remember(lambda m: m.started(self.python, self.fingerprint))
                self.ready.set()
                continue
            if "learned" in message:
                names = [str(n) for n in message.get("learned") or ()]
                self._remember(
                    lambda m, names=names: m.learned(self.python, self.fingerprint, names)
                )
                continue
            with self._lock:
                waiter = self._waiting.get(int(message.get("id", -1)))
            if waiter is None:
                continue
            if "pid" in message:
                waiter._on_pid(int(message["pid"]))
            elif "refused" in message:
                waiter._on_refused(str(message["refused"]), bool(message.get("stale")))
                self._forget(waiter)
            elif "exit" in message:
                waiter._on_exit(int(message["exit"]))
                self._forget(waiter)
        self.dead = True
        self.ready.set()
        with self._lock:
            waiting, self._waiting = list(self._waiting.values()), {}
        for waiter in waiting:
            waiter._on_lost()
        with contextlib.suppress(OSError):
            self.popen.wait(5)

    def _remember(self, action: Any) -> None:
        if self.memory is None:
            return
        try:
            action(self.memory)
        except Exception as exc:  # a bad file never breaks a run
            log.warning("warm start: cannot keep the learned imports: %s", exc)

    def _forget(self, waiter: WarmProcess) -> None:
        with self._lock:
            self._waiting.pop(waiter.ident, None)
            idle = not self._waiting
        if idle and self.retired:
            self.close()

    def usable(self) -> bool:
        return self.ready.is_set() and not self.dead and not self.retired

    def launch(
        self,
        args: list[str],
        cwd: str,
        env: Mapping[str, str],
        fds: tuple[int, int, int],
        run_dir: Path | None,
    ) -> WarmProcess | None:
        with self._lock:
            self._next += 1
            waiter = WarmProcess(self, self._next, run_dir)
            self._waiting[waiter.ident] = waiter
        request = {
            "op": "run",
            "id": waiter.ident,
            "python": self.python,
            "driver": args[0],
            "args": args[1:],
            "cwd": cwd,
            "env": dict(env),
        }
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode("utf-8")], list(fds))
        except OSError as exc:
            log.info("the warm interpreter is gone (%s); starting cold", exc)
            with self._lock:
                self._waiting.pop(waiter.ident, None)
            self.dead = True
            return None
        if not waiter.wait_started():
            log.info("warm start refused: %s; starting cold", waiter.refused)
            if waiter.stale:
                self.retire()
            return None
        return waiter

    def retire(self) -> None:
        """No new runs; closed once the runs it started have ended."""
        self.retired = True
        with self._lock:
            idle = not self._waiting
        if idle:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class WarmPool:
    """The warm servers of this process, one per (interpreter, environment)."""

    def __init__(
        self, preimport: tuple[str, ...] = PREIMPORT, learned: LearnedImports | None = None
    ) -> None:
        self.preimport = list(preimport)
        self.learned = learned if learned is not None else LearnedImports()
        self._servers: dict[tuple[Any, ...], _Server] = {}
        self._lock = threading.Lock()

    def _key(self, python: str, env: Mapping[str, str]) -> tuple[Any, ...]:
        return (*_interpreter_key(python), _env_key(env))

    def launch(
        self,
        python: str,
        args: list[str],
        cwd: str,
        env: Mapping[str, str],
        fds: tuple[int, int, int],
        run_dir: Path | None = None,
    ) -> WarmProcess | None:
        """The driver started warm, or None: start it cold (a server is then being made
        ready for the next run)."""
        key = self._key(python, env)
        with self._lock:
            server = self._servers.get(key)
            if server is not None and (server.dead or server.retired):
                server = None
            if server is None:
                self._retire_others(python)
                try:
                    self._servers[key] = _Server(python, env, self.preimport, self.learned)
                except OSError as exc:
                    log.info("cannot start a warm interpreter for %s: %s", python, exc)
                return None
        if not server.usable():
            return None
        return server.launch(args, cwd, env, fds, run_dir)

    def _retire_others(self, python: str) -> None:
        """An interpreter has one server: a changed file or environment replaces it."""
        for key, server in list(self._servers.items()):
            if key[0] == python or server.dead or server.retired:
                del self._servers[key]
                server.retire()

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Tests and benchmarks: wait until every server started has imported its modules."""
        deadline = time.monotonic() + timeout
        with self._lock:
            servers = list(self._servers.values())
        return all(s.ready.wait(max(0.0, deadline - time.monotonic())) for s in servers)

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.retire()

    def server_modules(self) -> set[str]:
        """Tests: the top-level modules the ready servers held when they said so."""
        with self._lock:
            return set().union(*(s.modules for s in self._servers.values() if not s.dead))

    def server_pids(self) -> list[int]:
        with self._lock:
            return [s.popen.pid for s in self._servers.values() if not s.dead]


#: The process's pool (the job host's, or the CLI's when it runs jobs itself).
POOL = WarmPool()


def open_std(stdout: IO[bytes], stderr: IO[bytes]) -> tuple[int, int, int]:
    """Descriptors to send for stdin (/dev/null), stdout and stderr (closed by the caller)."""
    return (os.open(os.devnull, os.O_RDONLY), stdout.fileno(), stderr.fileno())
