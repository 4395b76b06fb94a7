"""Finding, starting and connecting to the job host (services/job_host.py): standard library only.

`trainer-gui run` of a local job connects from a process that imports nothing else of the app
(cli/thin_run.py), so what a client needs before its first call lives here, apart from the
host, its service and its events: the host folder and its endpoint file, how the host is
started (detached, its output in the host log) and the connection with its hello.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from trainer_gui.core.errors import UserError

CONNECT_TIMEOUT = 120.0  # a frozen bundle's first start (unpacking, virus scan) can be slow
READY_TIMEOUT = 30.0  # from an accepted connection to the host's hello
HOST_DIR = "job-host"
ENDPOINT = "endpoint.json"
HOST_LOG = "host.log"
HOST_LOG_MAX = 5 * 1024 * 1024
JOB_HOST_COMMAND = "_job-host"
"""The hidden `trainer-gui` subcommand that runs the keeper, or with `--worker` the host (how a
frozen bundle starts its job host: it has no `python -m`)."""
DB_FILENAME = "trainer-gui.sqlite3"  # core/store/db.py's (a test holds them equal)
# The bundle's entry script would run its self-check or GUI smoke instead of the job host.
_NOT_INHERITED = ("TRAINER_GUI_SELFCHECK", "TRAINER_GUI_SMOKE")


def job_host_command() -> list[str]:
    """How to start the job host: the bundle's own executable when frozen, else this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable, JOB_HOST_COMMAND]
    return [sys.executable, "-m", "trainer_gui.services.job_host"]


def keeper_command() -> list[str]:
    """How a client starts the job host: its keeper (services/host_keeper.py), which starts
    the host with `job_host_command()`."""
    if getattr(sys, "frozen", False):
        return [sys.executable, JOB_HOST_COMMAND]
    return [sys.executable, "-m", "trainer_gui.services.host_keeper"]


def host_dir(store_path: Path) -> Path:
    """Where the host of the store at `store_path` keeps its lock, address and log."""
    return Path(store_path).resolve().parent / HOST_DIR


def read_endpoint(folder: Path) -> dict[str, Any] | None:
    """The running host's address, key and pid, or None (no file, or a broken one)."""
    try:
        data = json.loads((folder / ENDPOINT).read_text(encoding="utf-8"))
        return {
            "address": data["address"],
            "authkey": bytes.fromhex(data["authkey"]),
            "pid": int(data["pid"]),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _open_log(folder: Path) -> Any:
    """The host's log file (appended; started afresh once it grew past `HOST_LOG_MAX`)."""
    path = folder / HOST_LOG
    try:
        if path.stat().st_size > HOST_LOG_MAX:
            path.replace(folder / (HOST_LOG + ".1"))
    except OSError:
        pass
    return open(path, "ab")  # closed by the caller once the child has it


def spawn(command: list[str], folder: Path) -> subprocess.Popen[bytes]:
    """Start `command` detached from this process: its own session (a closing terminal or the
    window's Ctrl+C never reaches it), no console, its output in the host log."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
        kwargs["creationflags"] = flags
    else:
        kwargs["start_new_session"] = True
    with _open_log(folder) as out:
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                close_fds=True,
                **kwargs,
            )
        except OSError as exc:
            raise UserError(f"cannot start the job host ({command[0]}): {exc}") from exc


def process_exists(pid: int) -> bool:
    """Whether a process `pid` exists (the light check: no psutil on POSIX)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        from trainer_gui.core.runners.proc import pid_alive

        return pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    except OSError:
        return False
    return True


def connect(
    folder: Path,
    command: list[str],
    closed: Callable[[], bool] = lambda: False,
    alive: Callable[[int], bool] = process_exists,
    recv: Callable[[Connection], Any] = Connection.recv,
) -> tuple[Connection, int]:
    """Connect to the host whose endpoint is in `folder`, starting one with `command` (its
    keeper) if none answers; the connection and the host's pid, once it said hello.

    `recv` reads one message (a thin client's refuses anything but plain data, and returns
    None for it)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    spawned: subprocess.Popen[bytes] | None = None
    last_error = "no job host answered"
    while not closed():
        endpoint = read_endpoint(folder)
        if endpoint is not None:
            try:
                conn = Client(endpoint["address"], authkey=endpoint["authkey"])
                if not conn.poll(READY_TIMEOUT):
                    conn.close()
                    raise OSError("the job host did not say hello")
                message = recv(conn)
                if message is not None and message[0] == "ready":
                    return conn, int(message[1])
                conn.close()
                last_error = "the job host is closing"
            except (OSError, EOFError, AuthenticationError) as exc:
                last_error = f"the job host at {endpoint['address']} did not answer: {exc}"
        if spawned is None and (endpoint is None or not alive(endpoint["pid"])):
            spawned = spawn(command, folder)
        elif spawned is not None and spawned.poll() not in (None, 0):
            raise UserError(
                f"the job host did not start (exit code {spawned.returncode}); "
                f"its log: {folder / HOST_LOG}"
            )
        if time.monotonic() > deadline:
            raise UserError(f"{last_error}; its log: {folder / HOST_LOG}")
        time.sleep(0.05)
        if spawned is not None and spawned.poll() == 0 and read_endpoint(folder) is None:
            spawned = None  # its host found another one running, which then exited
    raise UserError("the job host connection is closed")
