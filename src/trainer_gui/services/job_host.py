"""The job host: one supervisor process per data folder that owns every running job.

Following a job means tailing its log files, parsing every line for metrics, writing lines,
samples and offsets to SQLite, and enforcing what the spec asks while it runs (the max runtime,
"one host failed, stop the others", packing the model at the end). None of that may depend on a
window or a terminal staying open: a job whose follower went away ran 3x over its limit. So
every job is owned by the job host, a process of its own that outlives the window and the CLI:

* **Started on demand** by the first client (the window, `trainer-gui run`, `jobs`, `stop`, ...)
  that finds none answering, detached from it (its own session, no console), and **gone when
  there is nothing to supervise**: no job to follow and no client connected for
  `TRAINER_GUI_HOST_IDLE` seconds (10 by default).
* **One per data folder**: it holds a process lock in `<data>/job-host/` for as long as it
  lives, and writes its address and a random key there (`endpoint.json`, readable by the user
  only). A second one started at the same moment finds the lock taken and exits at once.
* **Restarted, and taking over exactly once, when it dies**: a small keeper process starts it and
  starts it again when it ends without saying goodbye (a crash, `kill -9`); the new one takes
  the lock, then every unfinished job in the store, resuming from the stored offsets (each job
  has its own follower lock, so a job is ingested by one process at a time, and a batch commits
  with its offsets: nothing twice, nothing lost). If the keeper dies instead, the host starts a
  new keeper that watches it. Clients reconnect by themselves.

Clients talk to it over a `multiprocessing.connection` (a Unix socket in `<data>/job-host/`, a
named pipe on Windows) authenticated with the key. Calls and replies are pickled messages; the
host sends every client what the runners report, lines and samples already in columns
(`LogData`, `MetricData`), about 20 batches a second. `JobHostClient` is the client side: the
`Jobs` interface (services/api.py) whose jobs are followed by the host. The host has no Qt.

Started as `python -m trainer_gui.services.job_host` (or `trainer-gui _job-host` in a frozen
bundle, which has no `python -m`): with `--worker` it is the host itself, without it the keeper.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import secrets
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_gui.core.errors import UserError
from trainer_gui.core.locks import ProcessLock
from trainer_gui.core.runners.base import JobHandle
from trainer_gui.core.runners.events import BackendInfo, JobStatus, LogBatch, StatusChanged
from trainer_gui.core.runners.proc import pid_alive
from trainer_gui.services import host_keeper, thin_peer
from trainer_gui.services.api import EventListener, JobBoard, Jobs
from trainer_gui.services.host_link import (
    CONNECT_TIMEOUT,
    ENDPOINT,
    READY_TIMEOUT,
    connect,
    host_dir,
    keeper_command,
    read_endpoint,
)
from trainer_gui.services.host_link import (
    HOST_LOG as HOST_LOG,
)
from trainer_gui.services.host_link import (
    job_host_command as job_host_command,
)
from trainer_gui.services.host_link import spawn as _spawn
from trainer_gui.services.jobs import JobService
from trainer_gui.services.live_data import in_columns

if TYPE_CHECKING:
    from trainer_gui.core.spec.model import JobSpec
    from trainer_gui.core.store import JobRecord, Store

log = logging.getLogger(__name__)
SEND_INTERVAL = 0.05  # seconds between the host's event batches
CALL_TIMEOUT = 600.0  # a stop may wait for the job's grace period, a submit for a venv check
STARTING_GRACE = 900.0  # how long a host that lets go waits for jobs it is still starting
MAINTAIN_EVERY = 0.5  # seconds between the host's idle checks
RECOVER_EVERY = 2.0  # seconds between looks for unfinished jobs that nobody follows
_METHODS = frozenset(
    {"submit", "stop", "recover", "delete", "adopt", "ping", "quit", "run_spec", "job_summary"}
)


def idle_exit_seconds() -> float:
    """How long the host stays with nothing to supervise and no client (`TRAINER_GUI_HOST_IDLE`)."""
    try:
        return max(0.0, float(os.environ.get("TRAINER_GUI_HOST_IDLE", "10")))
    except ValueError:
        return 10.0


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a UserError/RuntimeError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        kind = UserError if isinstance(exc, UserError) else RuntimeError
        return kind(f"{type(exc).__name__}: {exc}")


# -- the endpoint file ---------------------------------------------------------------------------


def _write_endpoint(folder: Path, address: Any, key: bytes) -> None:
    """Atomically, and readable by this user only (it holds the key)."""
    tmp = folder / f".{ENDPOINT}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"address": address, "authkey": key.hex(), "pid": os.getpid()}, fh)
    os.replace(tmp, folder / ENDPOINT)


def _remove_endpoint_if_mine(folder: Path) -> None:
    endpoint = read_endpoint(folder)
    if endpoint is not None and endpoint["pid"] == os.getpid():
        try:
            (folder / ENDPOINT).unlink()
        except OSError as exc:
            log.info("cannot remove %s: %s", folder / ENDPOINT, exc)


# -- the host ------------------------------------------------------------------------------------


INGEST_NICE = 10
"""Niceness of the threads that read and parse a job's output (Linux): on a machine
where every core is busy, the window and the jobs themselves come first, and the ingest
catches up when a core is free (the job's output waits in its log files, nothing is lost)."""

_lowered: set[int] = set()


def _lower_this_thread() -> None:
    """Give the calling thread (a runner's follower thread) `INGEST_NICE`, once.

    Only when it delivers lines, that is after it started the job's process, which would
    otherwise inherit the niceness. Per thread, so the host's other threads (calls,
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
    batches every `SEND_INTERVAL` seconds; a job's final status at once."""

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
        if isinstance(event, StatusChanged) and event.status.is_terminal:
            self.flush()  # the job's end goes out now: a `run` waiting for it ends at once

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


class _Peer:
    """One connected client: its connection and a lock so replies and batches never interleave."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.gone = False
        self.thin = False  # plain data only (cli/thin_run.py): services/thin_peer.py
        self.job: str | None = None  # a thin peer's job, once it has one: only its events

    def send(self, message: Any) -> bool:
        if self.gone:
            return False
        try:
            with self.lock:
                self.conn.send(message)
            return True
        except (OSError, ValueError):  # the client went away
            self.gone = True
            return False


class _Host:
    """The job host's process: the lock, the listener, the service and its upkeep."""

    def __init__(self, store_path: Path, keeper: int | None) -> None:
        self.store_path = Path(store_path)
        self.folder = host_dir(self.store_path)
        self.keeper = keeper  # the keeper's pid, watched so a lost keeper is replaced
        self.peers: list[_Peer] = []
        self.peers_lock = threading.Lock()
        self.calls = 0  # calls being served
        self.exit = threading.Event()
        self.let_go = False  # on exit: False when idle (nothing followed), True on quit
        self.submitted: list[JobHandle] = []

    # -- life ----------------------------------------------------------------------------------

    def run(self) -> int:
        from trainer_gui.core.store import Store

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = ProcessLock(self.folder / "lock")
        if not lock.acquire():
            log.info("another job host owns %s; this one exits", self.store_path)
            return 0
        key = secrets.token_bytes(32)
        try:
            self.listener = Listener(address=self._address(), authkey=key)
        except OSError as exc:
            log.error("the job host cannot listen: %s", exc)
            lock.release()
            return 1
        self.store = Store(self.store_path)
        self.service = JobService(self.store)
        self.outbox = _Outbox(self._broadcast)
        self.service.subscribe(self.outbox.add)
        _write_endpoint(self.folder, self.listener.address, key)
        log.info("job host %d serving %s", os.getpid(), self.store_path)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self._quit())
        threading.Thread(target=self._accept, name="job-host-accept", daemon=True).start()
        try:
            self._maintain()
        finally:
            self._close(lock)
        return 0

    def _address(self) -> str | None:
        """A socket in the host folder when its path is short enough for AF_UNIX, else a
        temporary one (and a named pipe on Windows)."""
        if sys.platform == "win32":
            return None
        path = self.folder / "socket"
        if len(str(path)) > 100:
            return None
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a dead host's socket: the lock says nobody uses it
        return str(path)

    def _quit(self) -> None:
        self.let_go = True
        self.exit.set()

    def _busy(self) -> bool:
        """Jobs to follow, calls to answer, or queued jobs to start."""
        if self.service.followed_ids() or self.calls > 0:
            return True
        from trainer_gui.core.resources import PAUSED_KEY

        waiting = self.store.queue_entries(claimed=False)
        if self.store.active_sweep_ids():  # a sweep still to drive (services/sweeps.py)
            return True
        return bool(waiting) and not self.store.app_state(PAUSED_KEY, False)

    def _maintain(self) -> None:
        """Take over what nobody follows; notice a lost keeper; exit when idle."""
        idle_since: float | None = None
        next_recover = 0.0
        while not self.exit.wait(MAINTAIN_EVERY):
            now = time.monotonic()
            if not self.store_path.exists():
                log.warning("the data folder of %s is gone; the job host exits", self.store_path)
                self.exit.set()
                break
            if now >= next_recover:
                self._recover_unfollowed()
                next_recover = now + RECOVER_EVERY
            self._schedule()
            self._watch_keeper()
            with self.peers_lock:
                self.peers = [p for p in self.peers if not p.gone]
                quiet = not self.peers and not self._busy()
            if not quiet:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= idle_exit_seconds():
                log.info("nothing to supervise; the job host exits")
                self.exit.set()

    def _recover_unfollowed(self) -> None:
        try:
            active = self.store.list_jobs(active_only=True)
            unfollowed = [
                r.id
                for r in active
                if r.status != "Queued" and not self.service.is_followed_here(r.id)
            ]
            if unfollowed:
                taken = self.service.recover(unfollowed, cleanup=False)
                if taken:
                    log.info("took over %s", ", ".join(taken))
        except Exception:
            log.exception("could not look for jobs to take over")

    def _schedule(self) -> None:
        """Start queued jobs whose resources are free (the queue may have been changed by
        another process: a CLI that resumed it, raised a priority or cancelled a job)."""
        from trainer_gui.services import sweeps

        try:
            sweeps.tick(self.service)  # local sweeps queue their next trials first
            self.service.schedule()
        except Exception:
            log.exception("the queue could not start a job")

    def _watch_keeper(self) -> None:
        if self.keeper is None or pid_alive(self.keeper):
            return
        log.warning("the keeper (pid %d) is gone; starting a new one", self.keeper)
        command = [*keeper_command(), "--store", str(self.store_path)]
        command += ["--watch", str(os.getpid())]
        try:
            self.keeper = _spawn(command, self.folder).pid
        except UserError as exc:
            log.error("%s", exc)
            self.keeper = None

    def _close(self, lock: ProcessLock) -> None:
        # Clients that connect from here on find no endpoint and start a new host.
        _remove_endpoint_if_mine(self.folder)
        self.listener.close()
        if self.let_go:
            # A job still being prepared (its folder copied, its requirements installed) has
            # no process yet: let it start, then let go. The jobs keep running, and the next
            # host takes them over.
            deadline = time.monotonic() + STARTING_GRACE
            for handle in self.submitted:
                handle.wait_started(max(0.0, deadline - time.monotonic()))
        self.service.shutdown()
        self.outbox.close()
        with self.peers_lock:
            peers, self.peers = self.peers, []
        for peer in peers:
            peer.send(("bye",))
            peer.conn.close()
        self.store.close()
        lock.release()

    # -- clients -------------------------------------------------------------------------------

    def _broadcast(self, message: Any) -> None:
        with self.peers_lock:
            peers = list(self.peers)
        thin: list[tuple[Any, ...]] | None = None
        for peer in peers:
            if not peer.thin:
                peer.send(message)
                continue
            if thin is None:  # once per batch, and only while a thin peer listens
                thin = thin_peer.thin_events(message[1])
            mine = [e for e in thin if peer.job is None or e[1] == peer.job]
            if peer.job is not None and any(e[0] == "status" and e[4] for e in mine):
                # The job ended: its summary goes with the final status, so `run` prints it
                # and exits without another call (the store holds the end already).
                with contextlib.suppress(Exception):  # then the client asks (`job_summary`)
                    record = self.service.get(peer.job)
                    mine.append(("summary", peer.job, thin_peer.summary_data(self.store, record)))
            if mine:
                peer.send(("events", mine))

    def _accept(self) -> None:
        while not self.exit.is_set():
            try:
                conn = self.listener.accept()
            except AuthenticationError:
                log.warning("refused a connection with the wrong key")
                continue
            except OSError:  # the listener was closed: exiting
                return
            peer = _Peer(conn)
            with self.peers_lock:
                if self.exit.is_set():
                    conn.close()
                    return
                peer.send(("ready", os.getpid()))  # before any event batch reaches it
                self.peers.append(peer)
            threading.Thread(
                target=self._serve_peer, args=(peer,), name="job-host-peer", daemon=True
            ).start()

    def _serve_peer(self, peer: _Peer) -> None:
        while not peer.gone:
            try:
                message = peer.conn.recv()
            except (EOFError, OSError):
                break
            except Exception:
                log.exception("unreadable message from a client")
                break
            if message[0] == "close":
                break
            if message[0] == "thin":  # before its first call: events in plain data from now
                peer.thin = True
                continue
            if message[0] != "call":
                continue
            _, call_id, method, args, kwargs = message
            with self.peers_lock:
                self.calls += 1
            threading.Thread(
                target=self._serve_call,
                args=(peer, call_id, method, args, kwargs),
                name=f"job-host-{method}",
                daemon=True,
            ).start()
        peer.gone = True
        peer.conn.close()

    def _serve_call(
        self, peer: _Peer, call_id: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            if method not in _METHODS:
                raise RuntimeError(f"the job host has no method {method!r}")
            if method == "ping":
                result: Any = os.getpid()
            elif method == "quit":
                result = os.getpid()
                self._quit()
            elif method == "submit":
                # Queued and answered first: the job is safe in the store before anything of
                # it starts, whatever happens to this process next.
                handle = self.service.submit(*args, **{**kwargs, "schedule": False})
                self.submitted = [h for h in self.submitted if not h.done] + [handle]
                result = handle.job_id
            elif method == "run_spec":  # a thin client's `run`: load, validate, submit
                spec, python = thin_peer.load_for_run(*args, **kwargs)
                if spec is None:
                    result = {"fallback": True}  # SageMaker: the full client preflights it
                else:
                    handle = self.service.submit(spec, python=python, schedule=False)
                    self.submitted = [h for h in self.submitted if not h.done] + [handle]
                    peer.job = handle.job_id
                    result = thin_peer.started(self.store, handle.job_id, spec)
            elif method == "job_summary":
                result = thin_peer.summary_data(self.store, self.service.get(args[0]))
            else:
                result = getattr(self.service, method)(*args, **kwargs)
            self.outbox.flush()  # the events a call caused go before its reply
            peer.send(("reply", call_id, True, result, ""))
            if method in ("submit", "run_spec", "ping"):
                # A ping follows a change in the store the host should act on now, not on its
                # next pass: `sweep run` recorded a sweep to drive, the queue was resumed.
                self._schedule()
        except BaseException as exc:
            self.outbox.flush()
            failure = thin_peer.plain_error(exc) if peer.thin else _portable(exc)
            peer.send(("reply", call_id, False, failure, traceback.format_exc()))
        finally:
            with self.peers_lock:
                self.calls -= 1


# -- the keeper ----------------------------------------------------------------------------------


def host_main(argv: list[str] | None = None) -> int:
    """`python -m trainer_gui.services.job_host [--store DB] [--worker | --watch PID]`: the
    host with `--worker`, else its keeper (services/host_keeper.py, which clients start)."""
    from trainer_gui.core.store.db import default_db_path

    args = host_keeper.parser().parse_args(argv)
    store_path = args.store or default_db_path()
    host_keeper.setup_logging("job host" if args.worker else "job host keeper")
    if args.worker:
        return _Host(store_path, args.kept).run()
    return host_keeper.keep(store_path, args.watch)


def stop_host(store_path: Path, timeout: float = 30.0) -> bool:
    """Ask the store's host to let go of its jobs and exit (they keep running); True when no
    host runs afterwards. For tests and for uninstalling."""
    folder = host_dir(store_path)
    endpoint = read_endpoint(folder)
    if endpoint is None or not pid_alive(endpoint["pid"]):
        return True
    try:
        conn = Client(endpoint["address"], authkey=endpoint["authkey"])
        try:
            if conn.poll(READY_TIMEOUT):
                conn.recv()  # ready
            conn.send(("call", 0, "quit", (), {}))
            deadline = time.monotonic() + timeout
            while conn.poll(max(0.0, deadline - time.monotonic())):
                message = conn.recv()
                if message[0] in ("reply", "bye"):
                    break
        finally:
            conn.close()
    except (OSError, EOFError, AuthenticationError) as exc:
        log.info("the job host did not take the goodbye: %s", exc)
    deadline = time.monotonic() + timeout
    while pid_alive(endpoint["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(endpoint["pid"])


# -- the client ----------------------------------------------------------------------------------


class RemoteHandle(JobHandle):
    """A job followed by the job host: its id, and a wait for its end (through the store)."""

    def __init__(self, client: JobHostClient, job_id: str) -> None:
        super().__init__(job_id)
        self._client = client
        self.mark_started()

    def wait(self, timeout: float | None = None) -> JobStatus | None:
        record = self._client.wait(self.job_id, timeout)
        status = JobStatus(record.status)
        if not status.is_terminal:
            return None
        if not self.done:
            self._finish(status)
        return status


class _Link:
    """One connection to the host, and the calls waiting for its replies."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        self.calls: dict[int, Future[Any]] = {}
        self.send_lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self.send_lock:
            self.conn.send(message)


class JobHostClient:
    """The `Jobs` interface with the jobs followed by the job host (module notes).

    Reads (`get`, `spec_of`, `wait`) go to the store here; `submit`, `stop`, `recover`,
    `adopt` and `delete` run in the host; listeners get the host's events on a reader thread,
    lines and samples already in columns. Nothing starts until the first call or listener, so
    a command that only reads the store never starts a host. Calls block until the host
    answers: the window runs them off the GUI thread (with `run_task`).
    """

    def __init__(self, store: Store, command: list[str] | None = None) -> None:
        self._board = JobBoard(store)
        self._command = command or keeper_command()
        self._folder = host_dir(store.path)
        self._lock = threading.Lock()
        self._next_id = 0
        self._link: _Link | None = None
        self._linked = threading.Condition(self._lock)
        self._failure: str | None = None  # why the last connection attempt failed
        self._reader: threading.Thread | None = None
        self._closed = False

    @property
    def store(self) -> Store:
        return self._board.store

    @property
    def pid(self) -> int | None:
        """The host's pid while connected (None before, and while reconnecting)."""
        link = self._link
        return link.pid if link is not None else None

    # -- the connection ----------------------------------------------------------------------

    def _start_reader(self) -> None:
        with self._lock:
            if self._reader is None and not self._closed:
                self._reader = threading.Thread(
                    target=self._run, name="job-host-reader", daemon=True
                )
                self._reader.start()

    def _connect(self) -> _Link:
        """Connect to the running host, starting one (through its keeper) if none answers."""
        command = [*self._command, "--store", str(self.store.path)]
        conn, pid = connect(self._folder, command, lambda: self._closed, alive=pid_alive)
        return _Link(conn, pid)

    def _run(self) -> None:
        """Connect, read until the host goes away, and connect again (it is restarted)."""
        pause = 0.05
        while not self._closed:
            try:
                link = self._connect()
            except UserError as exc:
                with self._lock:
                    self._failure = str(exc)
                    self._linked.notify_all()
                time.sleep(min(pause, 2.0))
                pause *= 2
                continue
            pause = 0.05
            with self._lock:
                if self._closed:
                    link.conn.close()
                    return
                self._link, self._failure = link, None
                self._linked.notify_all()
            self._read(link)
            with self._lock:
                self._link = None
                calls, link.calls = link.calls, {}
            link.conn.close()
            for future in calls.values():
                future.set_exception(UserError("the job host process stopped; try again"))
            if not self._closed:
                log.info("the job host (pid %d) went away; connecting again", link.pid)

    def _read(self, link: _Link) -> None:
        while True:
            try:
                message = link.conn.recv()
            except (EOFError, OSError):  # the host is gone
                return
            except Exception:  # a message that does not unpickle: the host is broken
                log.exception("job host: unreadable message")
                return
            kind = message[0]
            if kind == "events":
                for event in message[1]:
                    self._board.notify(event)
            elif kind == "reply":
                _, call_id, ok, value, tb = message
                with self._lock:
                    future = link.calls.pop(call_id, None)
                if future is not None:
                    if ok:
                        future.set_result(value)
                    else:
                        if tb and not isinstance(value, UserError):
                            log.error("job host call failed:\n%s", tb)
                        future.set_exception(value)
            elif kind == "bye":
                return

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._start_reader()
        future: Future[Any] = Future()
        deadline = time.monotonic() + CONNECT_TIMEOUT
        with self._lock:
            while self._link is None:
                if self._closed:
                    raise UserError("the job host connection is closed")
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    raise UserError(failure)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UserError("the job host did not answer in time; try again")
                self._linked.wait(min(left, 0.5))
            link = self._link
            self._next_id += 1
            call_id = self._next_id
            link.calls[call_id] = future
        try:
            link.send(("call", call_id, method, args, kwargs))
        except (OSError, ValueError) as exc:
            with self._lock:
                link.calls.pop(call_id, None)
            raise UserError(f"the job host process is not answering: {exc}") from exc
        return future.result(timeout=CALL_TIMEOUT)

    def ping(self) -> int:
        """The host's pid, once it answers (for tests and the benchmark)."""
        return int(self._call("ping"))

    def quit_host(self) -> None:
        """Ask the host to let go of every job and exit (they keep running). For tests."""
        self._call("quit")

    # -- reads, here ----------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        unsubscribe = self._board.subscribe(listener)
        self._start_reader()
        return unsubscribe

    def get(self, key: str) -> JobRecord:
        return self._board.get(key)

    def spec_of(self, record: JobRecord) -> JobSpec:
        return self._board.spec_of(record)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        return self._board.wait(job_id, timeout)

    def is_followed_here(self, job_id: str) -> bool:
        return False

    # -- commands, in the host ------------------------------------------------------------

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
        """Disconnect. The host keeps following the jobs, and exits by itself once there is
        nothing left to supervise."""
        with self._lock:
            self._closed = True
            link = self._link
            reader = self._reader
            self._linked.notify_all()
        if link is not None:
            try:
                link.send(("close",))  # the host closes its end: the reader sees the end
            except (OSError, ValueError) as exc:
                log.info("the job host did not take the goodbye (%s)", exc)
        if reader is not None and reader is not threading.current_thread():
            reader.join(wait)
        if link is not None and (reader is None or not reader.is_alive()):
            link.conn.close()


def make_job_service(store: Store) -> Jobs:
    """What the window and the CLI follow jobs with: the job host (from a frozen bundle too),
    or this process when `TRAINER_GUI_JOB_HOST=0` says so."""
    if os.environ.get("TRAINER_GUI_JOB_HOST", "1") == "0":
        return JobService(store)
    return JobHostClient(store)


if __name__ == "__main__":
    sys.exit(host_main())
