"""The job host: the window's jobs are followed in a child process, not beside the GUI thread.

Following a job means tailing its log files, parsing every line for metrics and writing lines,
samples and offsets to SQLite. At 20,000 lines a second that is most of a core of Python, and
in the window's process every bit of it holds the GIL: each time the GUI thread enters Python
(a slot, a `paint`, a `boundingRect`: hundreds per repaint) it waits for the GIL for up to the
switch interval, and a repaint that takes 10 ms alone takes 100-250 ms. So the app runs its
`JobService` in a child process (`python -m trainer_gui.services.job_host`), which sends the window
what the runners report, lines and samples already in columns (`LogData`, `MetricData`), about
20 batches a second; the window asks it to submit, stop, re-attach and delete jobs over the
same pipe. The window's process keeps the GUI thread and a reader thread that mostly sleeps.

`JobHostClient` is that window side: a `JobService` whose jobs are followed in the child. The
child has no Qt. When the window closes the pipe (or dies), the child lets go of its jobs, as
the window's own exit used to: they keep running, and the next window re-attaches to them.
If the child dies, the next call starts a new one (and `recover` picks the jobs up again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, TYPE_CHECKING, Any

from trainer_gui.core.errors import UserError
from trainer_gui.core.runners.base import JobHandle
from trainer_gui.core.runners.events import BackendInfo, JobStatus, LogBatch
from trainer_gui.services.jobs import JobService
from trainer_gui.services.live_data import in_columns

if TYPE_CHECKING:
    from trainer_gui.core.spec.model import JobSpec
    from trainer_gui.core.store import JobRecord, Store

log = logging.getLogger(__name__)
SEND_INTERVAL = 0.05  # seconds between the child's event batches
CALL_TIMEOUT = 600.0  # a stop may wait for the job's grace period, a submit for a venv check
STARTING_GRACE = 900.0  # how long a closing job host waits for jobs it is still starting
_HEADER = struct.Struct(">I")
_METHODS = frozenset({"submit", "stop", "recover", "delete", "ping"})


# -- framing -----------------------------------------------------------------------------------


def _write_frame(stream: IO[bytes], lock: threading.Lock, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    with lock:
        stream.write(_HEADER.pack(len(data)))
        stream.write(data)
        stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks = []
    while size:
        data = stream.read(size)
        if not data:
            return None
        chunks.append(data)
        size -= len(data)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exactly(stream, _HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


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
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, nice))


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


def child_main() -> int:
    """The job host: serve calls from stdin, send events and replies on the original stdout."""
    from trainer_gui.core.store import Store

    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # A stray print must not corrupt a frame: what goes to stdout goes to stderr (or nowhere,
    # under a window-only launcher that has no stderr).
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    lock = threading.Lock()
    broken = threading.Event()

    def send(message: Any) -> None:
        if broken.is_set():
            return
        try:
            _write_frame(out, lock, message)
        except (OSError, ValueError):  # the window went away
            broken.set()

    logging.basicConfig(level=logging.WARNING, format="job host: %(levelname)s %(message)s")
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
            message = _read_frame(requests)
            if message is None or message[0] == "close":
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
        with contextlib.suppress(OSError):
            out.close()
    return 0


# -- the window side ---------------------------------------------------------------------------


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


class JobHostClient(JobService):
    """A `JobService` whose jobs are followed by the job host process (see the module notes).

    Reads (`get`, `spec_of`, `wait`) go to the store here; `submit`, `stop`, `recover` and
    `delete` run in the child; listeners get the child's events on a reader thread, lines and
    samples already in columns. Calls block until the child answers: run them off the GUI
    thread (the window does, with `run_task`).
    """

    def __init__(self, store: Store, command: list[str] | None = None) -> None:
        super().__init__(store)
        self._command = command or [sys.executable, "-m", "trainer_gui.services.job_host"]
        self._host_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._calls: dict[int, Future[Any]] = {}
        self._next_id = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        self.pid: int | None = None
        self._start()

    # -- the child process ----------------------------------------------------------------

    def _start(self) -> None:
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":  # no console window for the child
            kwargs["creationflags"] = subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
        proc = subprocess.Popen(
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(os.environ),
            **kwargs,
        )
        self._proc = proc
        reader = threading.Thread(
            target=self._read, args=(proc,), name="job-host-reader", daemon=True
        )
        reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        while True:
            try:
                message = _read_frame(proc.stdout)
            except Exception:  # a torn frame: the child is gone or broken
                log.exception("job host: unreadable message")
                message = None
            if message is None:
                break
            kind = message[0]
            if kind == "events":
                for event in message[1]:
                    self._notify(event)
            elif kind == "reply":
                _, call_id, ok, value, tb = message
                with self._host_lock:
                    future = self._calls.pop(call_id, None)
                if future is not None:
                    if ok:
                        future.set_result(value)
                    else:
                        if tb and not isinstance(value, UserError):
                            log.error("job host call failed:\n%s", tb)
                        future.set_exception(value)
            elif kind == "ready":
                self.pid = message[1]
        # The child is gone: fail what waits on it; the next call starts a new one.
        with self._host_lock:
            calls, self._calls = self._calls, {}
            if self._proc is proc:
                self._proc = None
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
        for pipe in (proc.stdout, proc.stdin):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        for future in calls.values():
            future.set_exception(UserError("the job host process stopped; try again"))
        if not self._closed:
            log.warning("job host process exited (code %s)", proc.returncode)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        future: Future[Any] = Future()
        with self._host_lock:
            if self._closed:
                raise UserError("the job host is closed")
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            proc = self._proc
            self._next_id += 1
            call_id = self._next_id
            self._calls[call_id] = future
        assert proc is not None and proc.stdin is not None
        try:
            _write_frame(proc.stdin, self._send_lock, ("call", call_id, method, args, kwargs))
        except OSError as exc:
            with self._host_lock:
                self._calls.pop(call_id, None)
            raise UserError(f"the job host process is not answering: {exc}") from exc
        return future.result(timeout=CALL_TIMEOUT)

    def ping(self) -> int:
        """The child's pid, once it answers (for tests and the benchmark)."""
        return int(self._call("ping"))

    # -- JobService, followed in the child ------------------------------------------------

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

    def is_followed_here(self, job_id: str) -> bool:
        return False

    def shutdown(self, wait: float = 10.0) -> None:
        """Close the pipe: the child lets go of its jobs (they keep running) and exits.

        A job it is still starting (copying its code, installing its requirements) is
        started first; the window does not wait more than `wait` seconds for that, the
        child finishes on its own.
        """
        with self._host_lock:
            self._closed = True
            proc = self._proc
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            _write_frame(proc.stdin, self._send_lock, ("close",))
            proc.stdin.close()
        except OSError:
            pass
        deadline = time.monotonic() + wait
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            log.info("the job host is still starting jobs; it exits once they run")


def make_job_service(store: Store) -> JobService:
    """What the window follows its jobs with: the job host, or this process where a child
    cannot be started the same way (a frozen build) or `TRAINER_GUI_JOB_HOST=0` says so."""
    if getattr(sys, "frozen", False) or os.environ.get("TRAINER_GUI_JOB_HOST", "1") == "0":
        return JobService(store)
    return JobHostClient(store)


if __name__ == "__main__":
    sys.exit(child_main())
