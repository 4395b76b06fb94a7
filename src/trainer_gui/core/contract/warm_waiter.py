"""The warm container's waiter: standard library only, it runs inside users' images (issue 18).

A docker run of the direct launch (`core/runners/docker.py`: one CPU host, a `.py` entry point,
no requirements.txt) runs `python3 train.py <args>` in a fresh container, and the script then
imports torch: seconds before its first line. The runner (`core/runners/docker_warm.py`) starts
a spare container ahead for the next run of the same spec, whose process is this file run by the
same `python3`, with the mounts, user, hostname and environment a cold container of that spec
gets. It imports torch (output to /dev/null, so the container's log holds only the run's), says
so (`ready` in its control folder), and waits on the control folder's FIFO.

The runner moves the run's folders into the mounted ones and writes one JSON line: the run's
environment and command. The waiter then checks that it sees the run's config files through its
mounts (an engine that does not share the host's folders by inode cannot be used warm) and that
the code folder shadows no module it holds; it writes `accepted` (or `refused: <why>` and exits
0, and the runner starts the run cold), and becomes the run's script: the environment (the
container's own, which is the cold container's minus the per-run names, updated with the run's),
argv, cwd and sys.path `python3 train.py` would have, then the script as `__main__` under
Python's exit rules (sys.exit codes, a traceback and 1 for an exception, death by SIGINT for an
uncaught KeyboardInterrupt). It is the container's main process under docker-init, as the
cold script is, so `docker stop`, the exit code and `docker logs` are a cold run's.

With no word from the runner it exits once the runner's heartbeat file is older than
STALE_AFTER seconds (the job host died without removing it); the next clean-up removes it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Without a heartbeat for this long, the runner is gone: the waiter exits.
STALE_AFTER = 30.0
CHECK_EVERY = 2.0
NEVER_PREIMPORT = frozenset({"__main__", "antigravity", "this", "idlelib", "turtle", "tkinter"})


def _quiet_imports(names: list[str]) -> None:
    """Import each name with stdout/stderr pointed at /dev/null; a failure leaves it cold."""
    saved = (os.dup(1), os.dup(2))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        for name in names:
            if name.partition(".")[0] in NEVER_PREIMPORT:
                continue
            with contextlib.suppress(BaseException):
                importlib.import_module(name)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _write(path: str, text: str) -> None:
    temp = path + ".tmp"
    with open(temp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(temp, path)


def _wait_for_run(control: str) -> dict[str, Any] | None:
    """The runner's one JSON line on the FIFO, or None once its heartbeat stopped."""
    fd = os.open(os.path.join(control, "run.fifo"), os.O_RDWR)  # never EOF: read to "\n"
    data = b""
    while b"\n" not in data:
        readable, _, _ = select.select([fd], [], [], CHECK_EVERY)
        if readable:
            chunk = os.read(fd, 1 << 16)
            data += chunk
            continue
        try:
            age = time.time() - os.stat(os.path.join(control, "heartbeat")).st_mtime
        except OSError:
            return None
        if age > STALE_AFTER:
            return None
    os.close(fd)
    message: dict[str, Any] = json.loads(data.partition(b"\n")[0])
    return message


def _refusal(request: dict[str, Any]) -> str | None:
    """Why this run cannot be run here (the runner then starts it cold)."""
    for name in request.get("expect", []):
        if not os.path.exists(name):
            return f"{name} is not visible through the mounts"
    loaded = {name.partition(".")[0] for name in sys.modules}
    code_dir = str(request.get("cwd") or "")
    try:
        entries = os.listdir(code_dir)
    except OSError as exc:
        return f"cannot list {code_dir}: {exc}"
    script = str(request["cmd"][1])
    for entry in entries:
        name = entry[:-3] if entry.endswith(".py") else entry
        if entry == script or name not in loaded:
            continue
        if entry.endswith(".py") or os.path.isdir(os.path.join(code_dir, entry)):
            return f"the code folder's {entry} shadows a module the waiter imported"
    return None


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _run_script(request: dict[str, Any], base_path: list[str]) -> int:
    """What `python3 script.py args` does, from this interpreter."""
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in request["env"].items()})
    os.environ.clear()
    os.environ.update(env)
    cmd = [str(part) for part in request["cmd"]]
    os.chdir(str(request["cwd"]))
    script = cmd[1]
    path = os.path.abspath(script)
    sys.argv = [script, *cmd[2:]]
    sys.path[:] = [os.path.dirname(os.path.realpath(path)), *base_path]
    import builtins
    import types
    from importlib.machinery import SourceFileLoader

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    main.__loader__ = SourceFileLoader("__main__", path)
    main.__cached__ = None  # type: ignore[attr-defined]
    if "__annotations__" in vars(sys.modules["__main__"]):  # as this interpreter's own __main__
        main.__annotations__ = {}
    sys.modules["__main__"] = main
    importlib.invalidate_caches()  # the code folder was empty when the imports looked at it
    try:
        with open(path, "rb") as fh:
            source = fh.read()
        exec(compile(source, path, "exec"), main.__dict__)
    except SystemExit as exc:
        return _exit_code(exc)
    except KeyboardInterrupt as exc:
        _print_exception(exc)
        _die_by_sigint()
    except BaseException as exc:
        _print_exception(exc)
        return 1
    return 0


def _print_exception(exc: BaseException) -> None:
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None  # from the script's frame
    exc.__traceback__ = tb
    sys.excepthook(type(exc), exc, tb)


def _die_by_sigint() -> None:
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    os._exit(130)


def _finish(code: int) -> None:
    """The end of a normal interpreter exit that a script can see (non-daemon threads joined,
    atexit callbacks, files it left open flushed), then `os._exit`: tearing down the modules of
    a torch-laden interpreter takes seconds (3.7-5.3 s against 0.1 s measured in the train-cpu
    image at load 9), which a cold `python3 train.py` that never imported torch does not pay."""
    import atexit
    import gc
    import io
    import threading

    with contextlib.suppress(Exception):
        threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    # By concrete class: an isinstance() against io's ABCs walks every class of a torch heap
    # (0.3-0.5 s, and deprecation warnings from torch's attributes on stderr).
    text = io.TextIOWrapper
    binary = (io.BufferedWriter, io.BufferedRandom)
    objects = [o for o in gc.get_objects() if issubclass(type(o), (text, *binary))]
    ordered = [o for o in objects if issubclass(type(o), text)]  # text first: it fills buffers
    for stream in [*ordered, *(o for o in objects if not issubclass(type(o), text))]:
        with contextlib.suppress(Exception):
            if not stream.closed and stream.writable():
                stream.flush()
    for std in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            std.flush()
    os._exit(code & 0xFF)


def main(argv: list[str]) -> int:
    control = argv[argv.index("--control") + 1]
    preimport = argv[argv.index("--preimport") + 1] if "--preimport" in argv else ""
    here = os.path.dirname(os.path.abspath(__file__))
    # sys.path as `python3 train.py` has it, less its first entry (the script's folder).
    base_path = [p for p in sys.path[1:] if os.path.abspath(p or ".") != here]
    _quiet_imports([name for name in preimport.split(",") if name])
    _write(os.path.join(control, "ready"), str(os.getpid()))
    request = _wait_for_run(control)
    if request is None:
        return 0
    refused = _refusal(request)
    if refused is not None:
        _write(os.path.join(control, "answer"), "refused: " + refused)
        return 0
    _write(os.path.join(control, "answer"), "accepted")
    _finish(_run_script(request, base_path))
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
