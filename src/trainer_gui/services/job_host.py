"""The job host: the window's jobs are followed in a child process, not beside the GUI thread.

Following a job means tailing its log files, parsing every line for metrics and writing lines,
samples and offsets to SQLite. At 20,000 lines a second that is most of a core of Python, and
in the window's process every bit of it holds the GIL: each time the GUI thread enters Python
(a slot, a `paint`, a `boundingRect`: hundreds per repaint) it waits for the GIL for up to the
switch interval, and a repaint that takes 10 ms alone takes 100-250 ms. So the app runs its
`JobService` in a child process (`job_host_command()`: `python -m trainer_gui.services.job_host`,
or `trainer-gui _job-host` in a frozen bundle), which sends the window what the runners report,
lines and samples already in columns (`LogData`, `MetricData`), about 20 batches a second; the
window asks it to submit, stop, re-attach, adopt and delete jobs over the same connection. The
window's process keeps the GUI thread and a reader thread that mostly sleeps.

The connection is a `multiprocessing.connection` one: the window listens (a Unix socket, a named
pipe on Windows) with a random key, and hands the child the address and the key on its stdin
(never on the command line or on disk); the child connects and authenticates with the key.
Calls, replies and event batches are pickled messages on it, so the child's stdout is free for
whatever a library prints.

`JobHostClient` is that window side: the `Jobs` interface (services/api.py) whose jobs are
followed in the child. The child has no Qt. When the window closes the connection (or dies),
the child lets go of its jobs, as the window's own exit used to: they keep running, and the next
window re-attaches to them. If the child dies, the next call starts a new one (and `recover`
picks the jobs up again).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import secrets
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import TYPE_CHECKING, Any

from trainer_gui.core.errors import UserError
from trainer_gui.core.runners.base import JobHandle
from trainer_gui.core.runners.events import BackendInfo, JobStatus, LogBatch
from trainer_gui.services.api import EventListener, JobBoard, Jobs
from trainer_gui.services.jobs import JobService
from trainer_gui.services.live_data import in_columns

if TYPE_CHECKING:
    from trainer_gui.core.spec.model import JobSpec
    from trainer_gui.core.store import JobRecord, Store

log = logging.getLogger(__name__)
SEND_INTERVAL = 0.05  # seconds between the child's event batches
CALL_TIMEOUT = 600.0  # a stop may wait for the job's grace period, a submit for a venv check
CONNECT_TIMEOUT = 120.0  # a frozen bundle's first start (unpacking, virus scan) can be slow
STARTING_GRACE = 900.0  # how long a closing job host waits for jobs it is still starting
JOB_HOST_COMMAND = "_job-host"
"""The hidden `trainer-gui` subcommand that runs `child_main` (how a frozen bundle starts its
job host: it has no `python -m`)."""
# The bundle's entry script would run its self-check or GUI smoke instead of the job host.
_NOT_INHERITED = ("TRAINER_GUI_SELFCHECK", "TRAINER_GUI_SMOKE")
_METHODS = frozenset({"submit", "stop", "recover", "delete", "adopt", "ping"})


def job_host_command() -> list[str]:
    """How to start the job host: the bundle's own executable when frozen, else this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable, JOB_HOST_COMMAND]
    return [sys.executable, "-m", "trainer_gui.services.job_host"]


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a UserError/RuntimeError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        kind = UserError if isinstance(exc, UserError) else RuntimeError
        return kind(f"{type(exc).__name__}: {exc}")


# -- the child ---------------------------------------------------------------------------------


INGEST_NICE = 10
"""Niceness of the threads that read and parse a job's output (Linux): on a machine
where every core is busy, the window and the jobs themselves come first, and the ingest
catches up when a core is free (the job's output waits in its log files, nothing is lost)."""

_lowered: set[int] = set()


def _lower_this_thread() -> None:
    """Give the calling thread (a runner's follower thread) `INGEST_NICE`, once.

    Only when it delivers lines, that is after it started the job's process, which would
    otherwise inherit the niceness. Per thread, so the job host's other threads (calls,
    sending) keep the normal priority.
    """
    tid = threading.get_native_id()
    # Linux only: there a thread's id is a task id that setpriority takes.
    if tid in _lowered or not sys.platform.startswith("linux"):
        return
    _lowered.add(tid)
    nice = int(os.environ.get("TRAINER_GUI_INGEST_NICE", INGEST_NICE))
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, nice))
    except OSError as exc:
        log.debug("cannot lower the ingest thread's priority: %s", exc)


class _Outbox:
    """Collects the service's events (lines and samples into columns) and sends them in
    batches every `SEND_INTERVAL` seconds."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # batches leave in the order they were taken
        self._events: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-host-outbox", daemon=True)
        self._thread.start()

    def add(self, event: Any) -> None:
        """The service listener (runner threads): the per-line work happens here."""
        if isinstance(event, LogBatch):
            _lower_this_thread()
        if isinstance(event, BackendInfo):
            return  # the store has it; the window does not show it
        event = in_columns(event)
        if event is None:
            return
        with self._lock:
            self._events.append(event)

    def _run(self) -> None:
        _lower_this_thread()  # sending is part of the ingest too
        while not self._stop.wait(SEND_INTERVAL):
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                events, self._events = self._events, []
            if events:
                self._send(("events", events))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()


def _connect_to_window() -> Connection:
    """Read the window's address and key from stdin (one JSON line) and connect."""
    # A windowed bundle may have no sys.stdin object even with a pipe on its descriptor 0.
    stdin = sys.stdin.buffer if sys.stdin is not None else os.fdopen(0, "rb")
    try:
        hello = json.loads(stdin.readline() or b"{}")
        address, key = hello["address"], bytes.fromhex(hello["authkey"])
    except (ValueError, KeyError, TypeError):
        raise SystemExit(
            "the job host is started by the window (it reads its address on stdin)"
        ) from None
    return Client(address, authkey=key)


def child_main() -> int:
    """The job host: serve the window's calls, send it events and replies, on one connection."""
    from trainer_gui.core.store import Store

    logging.basicConfig(level=logging.WARNING, format="job host: %(levelname)s %(message)s")
    conn = _connect_to_window()
    lock = threading.Lock()
    broken = threading.Event()

    def send(message: Any) -> None:
        if broken.is_set():
            return
        try:
            with lock:
                conn.send(message)
        except (OSError, ValueError) as exc:  # the window went away
            log.info("the window is gone (%s); letting go of the jobs", exc)
            broken.set()

    store = Store()
    service = JobService(store)
    outbox = _Outbox(send)
    service.subscribe(outbox.add)
    submitted: list[JobHandle] = []
    send(("ready", os.getpid()))

    def serve(call_id: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            if method not in _METHODS:
                raise RuntimeError(f"the job host has no method {method!r}")
            if method == "ping":
                result: Any = os.getpid()
            elif method == "submit":
                handle = service.submit(*args, **kwargs)
                submitted.append(handle)
                result = handle.job_id
            else:
                result = getattr(service, method)(*args, **kwargs)
            outbox.flush()  # the events a call caused go before its reply
            send(("reply", call_id, True, result, ""))
        except BaseException as exc:
            outbox.flush()
            send(("reply", call_id, False, _portable(exc), traceback.format_exc()))

    try:
        while not broken.is_set():
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the window closed the connection or died
                break
            if message[0] == "close":
                break
            _, call_id, method, args, kwargs = message
            threading.Thread(
                target=serve, args=(call_id, method, args, kwargs), daemon=True
            ).start()
    finally:
        # A job still being prepared (its folder copied, its requirements installed) has no
        # process yet: let it start, then let go of every job. They keep running.
        deadline = time.monotonic() + STARTING_GRACE
        for handle in submitted:
            handle.wait_started(max(0.0, deadline - time.monotonic()))
        service.shutdown()
        outbox.close()
        store.close()
        conn.close()
    return 0


# -- the window side ---------------------------------------------------------------------------


class _Child:
    """One job host process: its connection (once it connected) and the calls waiting on it."""

    def __init__(self, command: list[str]) -> None:
        self.key = secrets.token_bytes(32)
        self.listener = Listener(authkey=self.key)  # AF_UNIX, or a named pipe on Windows
        self.conn: Connection | None = None
        self.connected = threading.Event()  # set when connected, and when that failed
        self.calls: dict[int, Future[Any]] = {}
        self.pid: int | None = None
        self._send_lock = threading.Lock()
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":  # no console window for the child
            kwargs["creationflags"] = subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, env=env, **kwargs)
        except OSError as exc:
            self.listener.close()
            raise UserError(f"cannot start the job host ({command[0]}): {exc}") from exc
        hello = {"address": self.listener.address, "authkey": self.key.hex()}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(hello).encode() + b"\n")
            self.proc.stdin.close()
        except OSError as exc:  # it died at once; the reader notices and reports it
            log.warning("the job host did not take its address: %s", exc)

    def accept(self, timeout: float) -> Connection | None:
        """Wait for the child to connect; None if it exited or took longer than `timeout`."""
        accepted: list[Connection] = []
        giving_up = threading.Event()

        def run() -> None:
            while not giving_up.is_set():
                try:
                    accepted.append(self.listener.accept())
                    return
                except AuthenticationError:
                    log.warning("job host: refused a connection with the wrong key")
                except OSError as exc:
                    log.warning("job host: cannot accept its connection: %s", exc)
                    return

        thread = threading.Thread(target=run, name="job-host-accept", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while thread.is_alive():
            thread.join(0.05)
            if thread.is_alive() and (self.proc.poll() is not None or time.monotonic() > deadline):
                # Unblock the accept by connecting ourselves, then drop that connection.
                giving_up.set()
                try:
                    Client(self.listener.address, authkey=self.key).close()
                except (OSError, EOFError, AuthenticationError) as exc:
                    log.warning("job host: could not stop waiting for the child: %s", exc)
                thread.join(5)
                for conn in accepted:
                    conn.close()
                return None
        return accepted[0] if accepted else None

    def send(self, message: Any, timeout: float = CONNECT_TIMEOUT) -> None:
        if not self.connected.wait(timeout) or self.conn is None:
            raise UserError("the job host process did not start; try again")
        with self._send_lock:
            self.conn.send(message)

    def close(self) -> None:
        """After the reader stopped: close the connection, the listener, and reap the child."""
        if self.conn is not None:
            self.conn.close()
        self.listener.close()
        if self.proc.poll() is None and self.conn is None:
            log.warning("the job host never connected; ending it")
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.info("the job host is still letting go of its jobs")


class RemoteHandle(JobHandle):
    """A job followed by the job host: its id, and a wait for its end (through the store)."""

    def __init__(self, client: JobHostClient, job_id: str) -> None:
        super().__init__(job_id)
        self._client = client
        self.mark_started()

    def wait(self, timeout: float | None = None) -> JobStatus | None:
        record = self._client.wait(self.job_id, timeout)
        status = JobStatus(record.status)
        return status if status.is_terminal else None


class JobHostClient:
    """The `Jobs` interface with the jobs followed by the job host process (module notes).

    Reads (`get`, `spec_of`, `wait`) go to the store here; `submit`, `stop`, `recover`,
    `adopt` and `delete` run in the child; listeners get the child's events on a reader
    thread, lines and samples already in columns. Calls block until the child answers: run
    them off the GUI thread (the window does, with `run_task`).
    """

    def __init__(self, store: Store, command: list[str] | None = None) -> None:
        self._board = JobBoard(store)
        self._command = command or job_host_command()
        self._host_lock = threading.Lock()
        self._next_id = 0
        self._child: _Child | None = None
        self._closed = False
        self._start()

    @property
    def store(self) -> Store:
        return self._board.store

    @property
    def pid(self) -> int | None:
        """The job host's pid, once it connected (None before, and after it ended)."""
        child = self._child
        return child.pid if child is not None else None

    # -- the child process ----------------------------------------------------------------

    def _start(self) -> _Child:
        child = _Child(self._command)
        self._child = child
        reader = threading.Thread(
            target=self._read, args=(child,), name="job-host-reader", daemon=True
        )
        reader.start()
        return child

    def _read(self, child: _Child) -> None:
        conn = child.accept(CONNECT_TIMEOUT)
        child.conn = conn
        child.connected.set()
        while conn is not None:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the child is gone
                break
            except Exception:  # a message that does not unpickle: the child is broken
                log.exception("job host: unreadable message")
                break
            kind = message[0]
            if kind == "events":
                for event in message[1]:
                    self._board.notify(event)
            elif kind == "reply":
                _, call_id, ok, value, tb = message
                with self._host_lock:
                    future = child.calls.pop(call_id, None)
                if future is not None:
                    if ok:
                        future.set_result(value)
                    else:
                        if tb and not isinstance(value, UserError):
                            log.error("job host call failed:\n%s", tb)
                        future.set_exception(value)
            elif kind == "ready":
                child.pid = message[1]
        # The child is gone: fail what waits on it; the next call starts a new one.
        with self._host_lock:
            calls, child.calls = child.calls, {}
            if self._child is child:
                self._child = None
        child.close()
        for future in calls.values():
            future.set_exception(UserError("the job host process stopped; try again"))
        if not self._closed:
            log.warning("job host process exited (code %s)", child.proc.returncode)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        future: Future[Any] = Future()
        with self._host_lock:
            if self._closed:
                raise UserError("the job host is closed")
            child = self._child
            if child is None or child.proc.poll() is not None:
                child = self._start()
            self._next_id += 1
            call_id = self._next_id
            child.calls[call_id] = future
        try:
            child.send(("call", call_id, method, args, kwargs))
        except (OSError, ValueError, UserError) as exc:
            with self._host_lock:
                child.calls.pop(call_id, None)
            raise UserError(f"the job host process is not answering: {exc}") from exc
        return future.result(timeout=CALL_TIMEOUT)

    def ping(self) -> int:
        """The child's pid, once it answers (for tests and the benchmark)."""
        return int(self._call("ping"))

    # -- reads, here ----------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        return self._board.subscribe(listener)

    def get(self, key: str) -> JobRecord:
        return self._board.get(key)

    def spec_of(self, record: JobRecord) -> JobSpec:
        return self._board.spec_of(record)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        return self._board.wait(job_id, timeout)

    def is_followed_here(self, job_id: str) -> bool:
        return False

    # -- commands, in the child -----------------------------------------------------------

    def submit(
        self,
        spec: JobSpec,
        project_id: int | None = None,
        python: str | None = None,
        job_id: str | None = None,
    ) -> RemoteHandle:
        job_id = self._call("submit", spec, project_id=project_id, python=python, job_id=job_id)
        return RemoteHandle(self, str(job_id))

    def stop(self, key: str, wait: float | None = None) -> JobRecord:
        record: JobRecord = self._call("stop", key, wait)
        return record

    def recover(self, job_ids: list[str] | None = None) -> list[str]:
        return list(self._call("recover", job_ids))

    def delete(self, key: str, remove_files: bool = True) -> None:
        self._call("delete", key, remove_files=remove_files)

    def adopt(
        self,
        name: str,
        profile: str | None = None,
        region: str | None = None,
        project_id: int | None = None,
    ) -> str:
        return str(self._call("adopt", name, profile=profile, region=region, project_id=project_id))

    def shutdown(self, wait: float = 10.0) -> None:
        """Say goodbye: the child lets go of its jobs (they keep running) and exits.

        A job it is still starting (copying its code, installing its requirements) is
        started first; the window does not wait more than `wait` seconds for that, the
        child finishes on its own.
        """
        with self._host_lock:
            self._closed = True
            child = self._child
        if child is None:
            return
        deadline = time.monotonic() + wait
        try:
            child.send(("close",), timeout=wait)
        except (OSError, ValueError, UserError) as exc:
            log.info("the job host did not take the goodbye (%s)", exc)
            if child.conn is None:
                child.proc.kill()  # it never connected, so it follows nothing
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.info("the job host is still starting jobs; it exits once they run")


def make_job_service(store: Store) -> Jobs:
    """What the window follows its jobs with: the job host (from a frozen bundle too), or this
    process when `TRAINER_GUI_JOB_HOST=0` says so."""
    if os.environ.get("TRAINER_GUI_JOB_HOST", "1") == "0":
        return JobService(store)
    return JobHostClient(store)


if __name__ == "__main__":
    sys.exit(child_main())
