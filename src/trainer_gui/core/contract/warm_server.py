"""The warm interpreter of local-process runs: a fork server, standard library only (issue 18).

The runner (`core/runners/warm.py`) starts this file with the project's own interpreter and the
job's environment; it imports torch (and the heavy modules earlier runs imported) once, then
waits on one end of a SOCK_SEQPACKET socket pair whose other end the runner holds. For each run
it is asked for, it forks:

* a **driver** child: a session of its own (`setsid`, so pgid == pid as for a cold driver),
  the stdin/stdout/stderr descriptors the runner sent (`socket.send_fds`), the job's cwd,
  environment (cleared, then set) and argv, default signal dispositions, then the driver's own
  `toolkit.main` — the very code a cold run executes as `python toolkit.py ...`;
* from the driver, when its command is `<this python> <script>.py ...`, a **script** child in
  place of `subprocess.Popen`: again its own session, stderr into the driver's pipe, the script's
  cwd/environment/argv/sys.path as `python script.py` would have them, then the script run as
  `__main__` with Python's exit rules (sys.exit codes, a traceback and 1 for an exception,
  death by SIGINT for an uncaught KeyboardInterrupt). Anything else (torchrun, a shell
  command) is started by the driver with Popen, exactly as cold.

Neither fork is on a run's start path: a driver is forked ahead of time and waits for its run
on a socket of its own, with its script child forked ahead the same way (which gets the
driver's stdin/stdout with the run, as Popen would give them); a new spare is forked when the
server is idle, and after it imported what a run taught it.

The forked children unwind to the top of this process's stack before they run (`_Become`), so
the script runs on a clean stack and ends through the interpreter's normal shutdown (atexit,
non-daemon threads, flushed files).

The server is the driver's parent: it reaps it and sends its exit status (as
`subprocess.Popen.returncode` has it) to the runner, which watches the driver like a process of
its own (`WarmProcess`). Stop, the process tree and the pid file are those of a cold run: the
script is the driver's child.

It exits when the runner's end of the socket closes (the job host ended, for whatever reason),
leaving running jobs alone, and refuses a run (the runner then starts it cold) when its
site-packages changed since it started, when the job's code folder would shadow a module it
holds, or when the interpreter differs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_MESSAGE = 1 << 20
MAX_FDS = 3
#: Top-level modules the script imported, sent back (one write, atomic under PIPE_BUF).
LEARN_LIMIT = 60000
#: Modules whose import does something (opens a browser, prints): never imported ahead.
#: A cold `python script.py` finds `__annotations__` in its module's globals before its first
#: line up to Python 3.13 (3.14's lazy annotations put none there).
_MAIN_HAS_ANNOTATIONS = sys.version_info < (3, 14)
NEVER_PREIMPORT = frozenset({"__main__", "antigravity", "this", "idlelib", "turtle", "tkinter"})


class _Become(BaseException):
    """Raised in a forked child: unwind everything and run `action` at the top."""

    def __init__(self, action: Callable[[], int]) -> None:
        super().__init__()
        self.action = action


# -- what this interpreter holds --------------------------------------------------------------


def _library_dirs() -> list[str]:
    """The site-packages folders: modules learned from there are safe to keep imported."""
    return [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]


def site_fingerprint(dirs: list[str]) -> list[Any]:
    """Changes when a package is installed, upgraded or removed (its dist-info folder comes
    or goes, so the folder's mtime moves)."""
    out: list[Any] = []
    for folder in dirs:
        try:
            out.append([folder, os.stat(folder).st_mtime_ns])
        except OSError:
            out.append([folder, None])
    return out


def _top_modules() -> set[str]:
    return {name.partition(".")[0] for name in list(sys.modules)}


def _stdlib_dirs() -> list[str]:
    """The standard library's folders (site-packages may sit inside: the same rule holds)."""
    base = os.path.dirname(os.__file__)
    return [base, os.path.join(base, "lib-dynload")]


def _learnable(library: list[str], before: set[str]) -> list[str]:
    """Modules the run imported that this interpreter lacked, loaded from site-packages or the
    standard library (never the job's own code); submodules too (`torch.utils.data`)."""
    roots = tuple(folder.rstrip("/") + "/" for folder in [*library, *_stdlib_dirs()])
    found = []
    for name, module in list(sys.modules.items()):
        if name in before or name.partition(".")[0] in NEVER_PREIMPORT:
            continue
        path = getattr(module, "__file__", None) or ""
        if path and path.startswith(roots):
            found.append(name)
    return sorted(found)


def _quiet_import(name: str) -> None:
    """Import `name` here, its output going nowhere; a failure only means it stays cold."""
    import importlib

    with contextlib.suppress(BaseException):
        importlib.import_module(name)


def _shadowed(dirs: list[str], loaded: set[str]) -> str | None:
    """A module this process holds that the job's own folders would import instead."""
    for folder in dirs:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for entry in names:
            name = entry[:-3] if entry.endswith(".py") else entry
            if name in loaded and (
                entry.endswith(".py") or os.path.isdir(os.path.join(folder, entry))
            ):
                return name
    return None


# -- the children ---------------------------------------------------------------------------------


#: The signals this interpreter found ignored at its start (inherited from the job host, e.g.
#: SIGHUP under `nohup`, SIGINT in a background job; and the two Python ignores itself): a cold
#: run's interpreter inherits the same, because an ignored signal stays ignored across exec.
_INHERITED_IGNORED = frozenset(
    sig for sig in signal.valid_signals() if signal.getsignal(sig) == signal.SIG_IGN
)


def reset_signals() -> None:
    """The dispositions a fresh interpreter started by the job host has, and nothing blocked."""
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGPIPE", "SIGXFSZ"):  # ignored by every Python at start-up
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    for sig in _INHERITED_IGNORED:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _set_environment(env: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(env)


def _reseed() -> None:
    """A forked child shares its parent's random state; a cold interpreter seeds afresh."""
    module = sys.modules.get("random")
    if module is not None:
        module.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        with contextlib.suppress(Exception):
            numpy_random.seed()


class ForkedScript:
    """The script child, as the driver's `subprocess.Popen` would have been."""

    def __init__(self, pid: int, stderr: Any) -> None:
        self.pid = pid
        self.stderr = stderr
        self.returncode: int | None = None

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class _Server:
    def __init__(self, sock: socket.socket, toolkit: Any, base_path: list[str]) -> None:
        self.sock = sock
        self.toolkit = toolkit
        self.base_path = base_path
        self.library = _library_dirs()
        self.fingerprint = site_fingerprint(self.library)
        self.children: dict[int, int] = {}  # driver pid -> request id
        self.learn_r, self.learn_w = os.pipe()
        self.wake_r, self.wake_w = os.pipe()
        self.pending_imports: list[str] = []
        self.learn_buffer = b""
        self.stale = False
        # A driver forked ahead of time, waiting for its run (pid, socket): no fork on the
        # start path. In a driver: its script, forked ahead the same way (pid, socket, stderr).
        self.spare: tuple[int, socket.socket] | None = None
        self.spare_at = 0.0  # when it was forked (monotonic)
        self.spare_script: tuple[int, socket.socket, int] | None = None
        self.closed = False

    # -- messages ---------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(json.dumps(message).encode("utf-8"))

    def serve(self) -> int:
        import select

        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.learn_r, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self._make_spare()
        self.send(
            {
                "ready": True,
                "pid": os.getpid(),
                "modules": sorted(_top_modules()),
                "fingerprint": self.fingerprint,
            }
        )
        while True:
            timeout = 0.2 if self.pending_imports or self.spare is None else None
            watched: list[Any] = [self.sock, self.wake_r, self.learn_r]
            readable, _, _ = select.select(watched, [], [], timeout)
            if self.wake_r in readable:
                with contextlib.suppress(OSError):
                    os.read(self.wake_r, 512)
            self._reap()
            if self.learn_r in readable:
                self._learn()
            if self.sock in readable:
                try:
                    data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
                except OSError:
                    return 0
                if not data:
                    for fd in fds:
                        os.close(fd)
                    return 0  # the runner is gone: so is this warm interpreter
                self._request(json.loads(data.decode("utf-8")), fds)
                continue
            # Between runs: no run in flight (its learned modules were written before its
            # driver ended), or 0.2 s without a message beside a long one. Not "0.2 s of
            # silence" alone: runs started back to back (the edit-and-rerun loop) never leave
            # one, and the learned imports and the spare waited for ever.
            if self.children and readable:
                continue
            if not self.children:
                self._learn()
            if self.pending_imports:
                # Parents first, most submodules then come with them. What had to be imported
                # by name goes back to the runner, which keeps it for the next server.
                learned = []
                for name in sorted(self.pending_imports):
                    if name not in sys.modules:
                        _quiet_import(name)
                        if name in sys.modules:
                            learned.append(name)
                self.pending_imports = []
                if learned:
                    self.send({"learned": learned})
                self._drop_spare()  # the next one holds what was just imported
            if self.spare is None and (not readable or time.monotonic() - self.spare_at > 0.05):
                self._make_spare()  # not beside a run that is starting; a dying one: not in a loop

    def _make_spare(self) -> None:
        import gc

        gc.collect()
        gc.freeze()  # what the server holds stays out of the children's collections (no COW)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            mine.close()
            raise _Become(lambda: self._spare_driver(theirs))
        theirs.close()
        self.spare = (pid, mine)
        self.spare_at = time.monotonic()

    def _drop_spare(self) -> None:
        if self.spare is not None:
            self.spare[1].close()  # it reads the end and exits; reaped with the others
            self.spare = None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and self.spare[0] == pid:
                self._drop_spare()  # died waiting (killed?): another is made when idle
            request = self.children.pop(pid, None)
            if request is not None:
                self.send({"id": request, "exit": os.waitstatus_to_exitcode(status)})

    def _learn(self) -> None:
        try:
            self.learn_buffer += os.read(self.learn_r, 65536)
        except OSError:  # nothing there (non-blocking)
            return
        complete, _, self.learn_buffer = self.learn_buffer.rpartition(b"\n")
        for name in complete.decode("utf-8", "replace").split():
            if name not in sys.modules and name not in self.pending_imports:
                self.pending_imports.append(name)

    def _request(self, request: dict[str, Any], fds: list[int]) -> None:
        op = request.get("op")
        if op == "import":
            for name in request.get("modules", []):
                if name not in self.pending_imports:
                    self.pending_imports.append(name)
            return
        ident = int(request.get("id") or 0)
        reason = self._refusal(request, fds)
        if reason:
            for fd in fds:
                os.close(fd)
            self.send({"id": ident, "refused": reason, "stale": self.stale})
            return
        pid = self._hand_to_spare(request, fds)
        if pid == 0:
            pid = os.fork()
            if pid == 0:
                raise _Become(lambda: self._driver(request, fds))
        for fd in fds:
            os.close(fd)
        self.children[pid] = ident
        self.send({"id": ident, "pid": pid})

    def _hand_to_spare(self, request: dict[str, Any], fds: list[int]) -> int:
        """The waiting driver's pid once it has the run; 0 when there is none to take it."""
        if self.spare is None:
            return 0
        pid, sock = self.spare
        self.spare = None
        try:
            socket.send_fds(sock, [json.dumps(request).encode("utf-8")], fds)
        except OSError:
            return 0
        finally:
            sock.close()
        return pid

    def _refusal(self, request: dict[str, Any], fds: list[int]) -> str | None:
        if len(fds) != 3:
            return "expected stdin, stdout and stderr"
        if request.get("python") != sys.executable:
            return "another interpreter"
        if self.stale or site_fingerprint(self.library) != self.fingerprint:
            self.stale = True
            return "its packages changed"
        env = request.get("env") or {}
        folders = [request.get("cwd") or ""]
        folders += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        name = _shadowed(folders, _top_modules())
        if name:
            return f"the job's folder has its own {name!r}"
        return None

    # -- in the driver child ----------------------------------------------------------------

    def _close_server_side(self) -> None:
        if self.closed:  # once: the numbers may belong to other files by now
            return
        self.closed = True
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        self.sock.close()
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None
        for fd in (self.learn_r, self.wake_r, self.wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _spare_driver(self, sock: socket.socket) -> int:
        """A driver forked ahead: its own script forked ahead too, then it waits for a run."""
        self._close_server_side()
        self._make_spare_script()
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
        except OSError:
            data, fds = b"", []
        sock.close()
        if not data:
            os._exit(0)
        return self._driver(json.loads(data.decode("utf-8")), fds)

    def _make_spare_script(self) -> None:
        read_end, write_end = os.pipe()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            mine.close()
            raise _Become(lambda: self._spare_script_waits(theirs, write_end))
        os.close(write_end)
        theirs.close()
        self.spare_script = (pid, mine, read_end)

    def _spare_script_waits(self, sock: socket.socket, stderr: int) -> int:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 2)
        except OSError:
            data, fds = b"", []
        sock.close()
        if not data or len(fds) != 2:
            os._exit(0)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        run = json.loads(data.decode("utf-8"))
        return _script(run["cmd"], run["cwd"], run["env"], stderr, self)

    def _drop_spare_script(self) -> None:
        if self.spare_script is not None:
            pid, sock, read_end = self.spare_script
            self.spare_script = None
            sock.close()
            os.close(read_end)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # not left for the driver's own children to trip over

    def _driver(self, request: dict[str, Any], fds: list[int]) -> int:
        self._close_server_side()
        os.setsid()
        reset_signals()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        _set_environment(request["env"])
        args = list(request["args"])
        sys.argv = [request["driver"], *args]
        sys.path[:] = [os.path.dirname(request["driver"]), *_pythonpath(), *self.base_path]
        _reseed()
        self.toolkit.SPAWN = self._spawn_script
        code = 1
        try:
            code = int(self.toolkit.main(args))
        except SystemExit as exc:
            code = _exit_code(exc)
        except Exception:
            import traceback

            traceback.print_exc()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code & 0xFF)

    def _spawn_script(self, cmd: list[str], cwd: str | None, env: dict[str, str]) -> Any:
        """The driver's hook: fork the script instead of starting an interpreter for it."""
        if len(cmd) < 2 or cmd[0] != sys.executable or not cmd[1].endswith(".py"):
            self._drop_spare_script()
            return None
        if self.spare_script is not None:
            pid, sock, stderr = self.spare_script
            self.spare_script = None
            try:
                run = json.dumps({"cmd": cmd, "cwd": cwd, "env": env}).encode("utf-8")
                socket.send_fds(sock, [run], [0, 1])  # the driver's stdin and stdout, as Popen
                sock.close()
                return ForkedScript(pid, os.fdopen(stderr, "rb"))
            except OSError:
                self.spare_script = (pid, sock, stderr)
                self._drop_spare_script()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            raise _Become(lambda: _script(cmd, cwd, env, write_end, self))
        os.close(write_end)
        return ForkedScript(pid, os.fdopen(read_end, "rb"))


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def _exit_code(exc: SystemExit) -> int:
    """Python's rule for an uncaught SystemExit (the message goes to stderr)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


#: Set in the script child: how it ends ("exit", or "sigint" after an uncaught
#: KeyboardInterrupt); None in the server.
_SCRIPT_ENDING: str | None = None


def _script(
    cmd: list[str], cwd: str | None, env: dict[str, str], stderr: int, server: _Server
) -> int:
    """The script child: what `python script.py args` does, on a clean stack."""
    global _SCRIPT_ENDING
    _SCRIPT_ENDING = "exit"
    os.setsid()
    reset_signals()
    os.dup2(stderr, 2)
    os.close(stderr)
    if cwd:
        os.chdir(cwd)
    _set_environment(env)
    script = cmd[1]
    path = os.path.abspath(script)
    sys.argv = [script, *cmd[2:]]
    sys.path[:] = [os.path.dirname(os.path.realpath(path)), *_pythonpath(), *server.base_path]
    _reseed()
    import builtins
    import types
    from importlib.machinery import SourceFileLoader

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    main.__loader__ = SourceFileLoader("__main__", path)
    main.__cached__ = None  # type: ignore[attr-defined]
    if _MAIN_HAS_ANNOTATIONS:
        main.__annotations__ = {}
    sys.modules["__main__"] = main
    before = set(sys.modules)  # what the warm interpreter held: the run learns the rest
    code = 0
    try:
        with open(path, "rb") as fh:
            source = fh.read()
        exec(compile(source, path, "exec"), main.__dict__)
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:
        # Python's own rule: the traceback (from the script's frame, not this one), status 1;
        # for a KeyboardInterrupt, death by SIGINT after it (see _exit).
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        exc.__traceback__ = tb  # the hook prints the exception's own traceback
        sys.excepthook(type(exc), exc, tb)
        code = 1
        if isinstance(exc, KeyboardInterrupt):
            _SCRIPT_ENDING = "sigint"
    finally:
        _report(server, before)
    return code


def _report(server: _Server, before: set[str]) -> None:
    """Tell the server which library modules this run imported, for the next runs."""
    try:
        names = " ".join(_learnable(server.library, before))
        if len(names) > LEARN_LIMIT:
            names = names[:LEARN_LIMIT].rsplit(" ", 1)[0]
        names += "\n"
        os.write(server.learn_w, names.encode("utf-8"))
    except (OSError, IndexError):
        pass
    with contextlib.suppress(OSError):
        os.close(server.learn_w)


def _load_toolkit(path: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_trainer_gui_toolkit", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"warm server: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _serve(argv: list[str]) -> int:
    fd = int(argv[argv.index("--fd") + 1])
    toolkit_path = argv[argv.index("--toolkit") + 1]
    preimport = argv[argv.index("--preimport") + 1] if "--preimport" in argv else ""
    here = os.path.dirname(os.path.abspath(__file__))
    base_path = [p for p in sys.path if p and os.path.abspath(p) != here]
    sock = socket.socket(fileno=fd)
    toolkit = _load_toolkit(toolkit_path)
    for name in filter(None, preimport.split(",")):
        _quiet_import(name)
    # What earlier servers learned, kept by the runner: only for the packages it was learned
    # with (an install or upgrade since drops it).
    learned = argv[argv.index("--learned") + 1] if "--learned" in argv else ""
    learned_for = argv[argv.index("--learned-for") + 1] if "--learned-for" in argv else "null"
    with contextlib.suppress(ValueError):
        if learned and json.loads(learned_for) == site_fingerprint(_library_dirs()):
            for name in filter(None, learned.split(",")):
                _quiet_import(name)
    server = _Server(sock, toolkit, base_path)
    return server.serve()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def action() -> int:
        return _serve(argv)

    while True:
        try:
            return action()
        except _Become as become:
            action = become.action


def _end_script(code: int) -> None:
    """The script child's end: what `Py_FinalizeEx` does that a script can see (wait for its
    non-daemon threads, run its atexit callbacks, flush its files), then `os._exit`. Not the
    rest: tearing down the modules and freeing every object of a forked, torch-sized heap
    copies it page by page (3.8 s against 0.04 s measured), and no script can tell."""
    import atexit
    import threading

    with contextlib.suppress(Exception):
        threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    if _SCRIPT_ENDING == "sigint":  # an uncaught KeyboardInterrupt: die by SIGINT, as Python
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)


def _exit(code: int) -> None:
    if _SCRIPT_ENDING is not None:
        _end_script(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
