"""`trainer-gui run` of a local job as a thin client of the job host: standard library only.

Importing the job host's full client costs a second of CPU (the spec models and pydantic, numpy
for event columns, the store) and validating a spec half a second more (botocore's SageMaker
service model), which made `run` of a trivial Docker job 4-7x a plain `docker run`. The job
host has all of it loaded already, so this client hands it the spec's path and the flags
(services/thin_peer.py loads, validates and submits there) and prints what comes back: plain
tuples and dicts, read with an unpickler that refuses any class, so nothing of the app beyond
this module, the parser and the connection code (services/host_link.py) is imported here.

It applies to local jobs (local-process, Docker) with the job host on; a SageMaker spec goes
the full way (`main.cmd_run`), which preflights it. `LinePrinter` and `summary_text` print for
both ways, so their output is the same.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pickle
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

from trainer_gui.core.errors import UserError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_STOPPED = 3
EXIT_DETACHED = 130
#: How long `run` waits for an event before it asks the host whether the job ended (a job
#: whose final status event was lost with a restarted host still ends the command).
ASK_EVERY = 1.0
#: After the host said the job ended, how long `run` waits for its final status event.
LAST_EVENTS = 0.15


# -- printing (both ways) -------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def fmt_value(value: float) -> str:
    return f"{value:.6g}"


def format_span(seconds: float) -> str:
    """core/store/phases.py's `format_span` (a test holds them equal): that module imports the
    store."""
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {(whole % 3600) // 60:02d} min"


class LinePrinter:
    """Turns one job's events, in plain data (services/thin_peer.py `ThinEvent`), into
    terminal lines; called from several threads in the full client, so it locks.

    Phase changes print as `· starting the interpreter (0.3 s)`, the time counted from when
    the job was queued (`catch_up` gives the phases stored before the first event)."""

    def __init__(self, job_id: str, out: TextIO, quiet: bool) -> None:
        self.job_id = job_id
        self.out = out
        self.quiet = quiet
        self.since = time.time()
        self.lock = threading.Lock()
        self._phases_printed: set[tuple[str, str, float]] = set()
        self._last_phase: tuple[str, str] | None = None

    def catch_up(self, phases: Iterable[Sequence[Any]]) -> None:
        """`(phase, text, at, detail)` of the phases stored so far, oldest first."""
        for phase, text, at, detail in phases:
            if phase == "queued":
                self.since = at
            elif phase != "done":
                self._phase(phase, text, at, detail)

    def _phase(self, phase: str, text: str, at: float, detail: str) -> None:
        key = (phase, detail)
        if self.quiet or key == self._last_phase or (*key, at) in self._phases_printed:
            return
        self._last_phase = key
        self._phases_printed.add((*key, at))
        self.out.write(f"\u00b7 {text} ({format_span(max(0.0, at - self.since))})\n")

    def print(self, event: Sequence[Any]) -> None:
        """One event; the caller holds `lock`."""
        kind = event[0]
        if kind == "phase":
            self._phase(*event[2:6])
        elif kind == "status":
            _, _, status, message, terminal = event
            if terminal and status == "Failed":
                self.out.write(f"==> {status}{': ' + message if message else ''}\n")
            else:
                first = message.splitlines()[0] if message else ""
                self.out.write(f"==> {status}{': ' + first if first else ''}\n")
        elif kind == "log" and not self.quiet:
            self.out.writelines(f"[{host}] {text}\n" for host, text in event[2])
        elif kind == "metrics":
            # One line per host and step, after the log line that carried them.
            groups: dict[tuple[str, int | None], list[str]] = {}
            for host, step, name, value in event[2]:
                groups.setdefault((host, step), []).append(f"{name}={fmt_value(value)}")
            for (host, step), values in groups.items():
                at = f" (step {step})" if step is not None else ""
                self.out.write(f"  \u25b8 {host} {' '.join(values)}{at}\n")
        self.out.flush()


def summary_text(data: dict[str, Any]) -> str:
    """The lines `run` ends with (services/thin_peer.py `summary_data`)."""
    lines = [f"\nJob {data['id']}: {data['status']} in {duration(data['duration'])}"]
    if data["failure_reason"] and data["status"] != "Completed":
        lines.append(f"Reason: {data['failure_reason'].strip()}")
    metrics = data["metrics"]
    if metrics:
        lines.append(
            "Final metrics: " + ", ".join(f"{k}={fmt_value(v)}" for k, v in metrics.items())
        )
    for kind, path in sorted(data["artifacts"].items()):
        lines.append(f"{kind.capitalize()}: {path}")
    lines.append(f"Run folder: {data['run_dir']}")
    return "\n".join(lines) + "\n"


def exit_code(status: str) -> int:
    return {"Completed": EXIT_OK, "Stopped": EXIT_STOPPED}.get(status, EXIT_FAILED)


def detached_text(job_id: str) -> str:
    return (
        f"\nDetached; the job keeps running.\n  follow: trainer-gui logs {job_id} --follow\n"
        f"  stop:   trainer-gui stop {job_id}\n"
    )


# -- the connection -------------------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Builds tuples, lists, dicts, strings and numbers, and exceptions of modules imported
    already (an older host's failed call); any other class is refused (a message meant for
    the full client, which would import what it names)."""

    def find_class(self, module: str, name: str) -> Any:
        found = getattr(sys.modules.get(module), name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
        raise pickle.UnpicklingError(f"not plain data: {module}.{name}")


class _OldHost(Exception):
    """The running job host predates the thin client (it has no `run_spec`)."""


def recv_plain(conn: Connection) -> Any:
    """The next message in plain data, or None for one that is not."""
    data = conn.recv_bytes()
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError:
        return None


class _Host:
    """A thin client's connection to the job host (started if none runs): calls, and the
    events of one job, read on the calling thread."""

    def __init__(self, store_path: Path) -> None:
        from trainer_gui.services.host_link import host_dir, keeper_command

        self._folder = host_dir(store_path)
        self._command = [*keeper_command(), "--store", str(store_path)]
        self._next_id = 0
        self.job: str | None = None
        self.events: list[Any] = []  # the job's, not yet printed (all jobs' before it has one)
        self.conn = self._connect()

    def _connect(self) -> Connection:
        from trainer_gui.services.host_link import connect

        conn, _pid = connect(self._folder, self._command, recv=recv_plain)
        conn.send(("thin",))  # events in plain data from now on
        return conn

    def _take(self, message: Any) -> Any:
        """Keep the events of `message`; a reply is returned as `(call_id, ok, value)`."""
        if message is None:
            return None
        if message[0] == "events":
            self.events.extend(e for e in message[1] if self.job is None or e[1] == self.job)
        elif message[0] == "reply":
            return message[1:4]
        elif message[0] == "bye":
            raise EOFError("the job host said goodbye")
        return None

    def poll(self, timeout: float) -> bool:
        """Read what the host sent within `timeout` seconds; False when nothing came. A host
        that went away (restarted by its keeper) is connected to again."""
        try:
            if not self.conn.poll(timeout):
                return False
            self._take(recv_plain(self.conn))
            return True
        except (EOFError, OSError):
            self.conn.close()
            self.conn = self._connect()
            return True

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._next_id += 1
        call_id = self._next_id
        try:
            self.conn.send(("call", call_id, method, args, kwargs))
            while True:
                reply = self._take(recv_plain(self.conn))
                if reply is not None and reply[0] == call_id:
                    break
        except (EOFError, OSError) as exc:
            raise UserError(f"the job host process stopped; try again ({exc})") from None
        _, ok, value = reply
        if ok:
            return value
        if isinstance(value, dict) and value.get("user"):
            error = UserError(value["error"])
            error.exit_code = int(value["exit_code"])
            raise error
        if isinstance(value, BaseException):  # a host from before the thin client
            if "has no method" in str(value):
                raise _OldHost(str(value))
            raise value
        raise RuntimeError(value.get("error") if isinstance(value, dict) else repr(value))

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("close",))
        self.conn.close()


# -- the command ----------------------------------------------------------------------------------


def applies(args: argparse.Namespace) -> bool:
    """Whether `run` may go the thin way: the job host is on, the spec file is there (else the
    full way says so, starting no host) and no SageMaker backend is asked for."""
    return (
        os.environ.get("TRAINER_GUI_JOB_HOST", "1") != "0"
        and args.backend != "sagemaker"
        and Path(args.spec).is_file()
    )


def cmd_run(args: argparse.Namespace, out: TextIO | None = None) -> int | None:
    """`trainer-gui run` through the job host; None when the spec wants the full client (a
    SageMaker launch, preflighted first) or the running host predates this client."""
    from trainer_gui.core.paths import data_home
    from trainer_gui.services.host_link import DB_FILENAME

    out = out or sys.stdout
    host = _Host(data_home() / DB_FILENAME)
    try:
        try:
            started = host.call(
                "run_spec",
                args.spec,
                os.getcwd(),
                overrides=list(args.overrides),
                backend=args.backend,
                python=args.python,
            )
        except _OldHost:  # it runs until it is idle: the full client works with it
            return None
        if started.get("fallback"):
            return None
        job_id = str(started["job_id"])
        host.job = job_id
        # As the full client, which subscribes after the submit: what the submit itself
        # caused ("Queued") is not printed, the phases stored so far come first.
        host.events.clear()
        out.write(f"Started {job_id} on {started['backend']}\n")
        out.flush()
        if args.detach:
            out.write(f"Follow it with: trainer-gui logs {job_id} --follow\n")
            return EXIT_OK
        try:
            summary = _follow(host, job_id, started["phases"], args.quiet, out)
        except KeyboardInterrupt:
            out.write(detached_text(job_id))
            return EXIT_DETACHED
        if summary is None:  # a host from before the summary came with the final status
            summary = host.call("job_summary", job_id)
    finally:
        host.close()
    out.write(summary_text(summary))
    return exit_code(summary["status"])


def _follow(
    host: _Host, job_id: str, phases: list[Sequence[Any]], quiet: bool, out: TextIO
) -> dict[str, Any] | None:
    """Print the job's events until its final status (the host's word, when that event was
    lost: a restarted host); the job's summary when the host sent it with that status."""
    printer = LinePrinter(job_id, out, quiet)
    caught_up = quiet
    ended_at: float | None = None  # when the host said the job ended
    while True:
        events = [e for e in host.events if e[1] == job_id]
        host.events.clear()
        for event in events:
            if not caught_up:
                caught_up = True
                printer.catch_up(phases)
            if event[0] == "summary":
                continue
            printer.print(event)
            if event[0] == "status" and event[4]:
                return _summary_of(events)
        if ended_at is not None and time.monotonic() - ended_at > LAST_EVENTS:
            return None
        if not host.poll(LAST_EVENTS if ended_at is not None else ASK_EVERY) and ended_at is None:
            status = host.call("job_summary", job_id)["status"]
            if status in ("Completed", "Failed", "Stopped"):
                ended_at = time.monotonic()


def _summary_of(events: list[Any]) -> dict[str, Any] | None:
    """The summary among the batch that held the job's final status, if the host sent one
    and it tells the job's end (else the client asks)."""
    for event in events:
        ended = event[0] == "summary" and isinstance(event[2], dict)
        if ended and event[2].get("status") in ("Completed", "Failed", "Stopped"):
            return event[2]
    return None
