"""Process bookkeeping that survives the app: is a pid still our job, and how to stop it.

psutil on every OS: a pid's creation time tells a reused pid apart (Linux, macOS, Windows
alike), and stop ends the whole process tree, not just the driver. Windows has no process
groups, and the driver starts the user's script in a session of its own, so signalling the
group alone would leave the script running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

#: Creation times are floats with platform-dependent precision; two processes on one pid are
#: always further apart than this.
_MARKER_TOLERANCE = 0.01


def start_marker(pid: int) -> str | None:
    """Something that changes when a pid is reused: the process's creation time."""
    try:
        return repr(psutil.Process(pid).create_time())
    except (psutil.Error, ValueError):
        return None


def _marker_value(marker: str | None) -> float | None:
    """A stored marker as a creation time; None for none, and for an older store's format
    (Linux clock ticks since boot, not comparable), which is then ignored rather than trusted
    to say the pid was reused."""
    if not marker:
        return None
    try:
        value = float(marker)
    except ValueError:
        return None
    # Clock ticks since boot (the format before psutil) are small integers; creation times are
    # seconds since the epoch with a fraction.
    if "." not in marker and "e" not in marker.lower():
        return None
    return value


def _same_process(process: psutil.Process, marker: str | None) -> bool:
    expected = _marker_value(marker)
    if expected is None:
        return True
    try:
        return abs(process.create_time() - expected) <= _MARKER_TOLERANCE
    except psutil.Error:
        return False


def _running(process: psutil.Process) -> bool:
    """Running and not a zombie (finished, not yet reaped by whoever started it)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.ZombieProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process: it exists
    except psutil.Error:
        return False


def pid_alive(pid: int, marker: str | None = None) -> bool:
    """Whether `pid` runs and is still the process `marker` was taken from."""
    if pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
    except psutil.AccessDenied:
        return True
    except psutil.Error:
        return False
    return _running(process) and _same_process(process, marker)


def _tree(pid: int, marker: str | None) -> list[psutil.Process]:
    """The job's process and every descendant, gathered before anything is signalled (once
    the driver is gone its children are re-parented and can no longer be found from it)."""
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return []
    if not _same_process(root, marker):
        return []
    procs = [root]
    try:
        procs += root.children(recursive=True)
    except psutil.Error as exc:
        log.debug("listing the children of %d: %s", pid, exc)
    return procs


def _signal(process: psutil.Process, kill: bool) -> None:
    try:
        if kill:
            process.kill()
        else:
            process.terminate()
    except psutil.NoSuchProcess:
        pass
    except psutil.Error as exc:
        log.warning("could not %s process %d: %s", "kill" if kill else "stop", process.pid, exc)


def _signal_group(pgid: int, sig: int) -> None:
    """POSIX only: the whole process group, including members that are no descendants."""
    if sys.platform == "win32" or pgid <= 0:
        return
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except OSError as exc:
        log.debug("signalling process group %d: %s", pgid, exc)


def _descendants(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Every live descendant of `procs` not in `procs` yet: children a survivor started after
    the tree was first listed (a script that forks while it ignores SIGTERM)."""
    known = {(p.pid, _create_time(p)) for p in procs}
    found: list[psutil.Process] = []
    for process in procs:
        if not _running(process):
            continue
        try:
            children = process.children(recursive=True)
        except psutil.Error:
            continue
        for child in children:
            key = (child.pid, _create_time(child))
            if key not in known:
                known.add(key)
                found.append(child)
    return found


def _freeze(procs: list[psutil.Process]) -> list[psutil.Process]:
    """`procs` and all their descendants, stopped (SIGSTOP) until no new one appears: a
    stopped process cannot start another, so the SIGKILL that follows misses none. Killed
    unfrozen, a script that was starting a process in a session of its own leaves that one
    re-parented away from the tree, out of reach (seen under load in test_stop_tree)."""
    frozen = list(procs)
    todo = list(procs)
    for _ in range(50):  # a fixed point comes in a round or two; the bound is a safety net
        for process in todo:
            with contextlib.suppress(psutil.Error):
                process.suspend()
        todo = _descendants(frozen)
        if not todo:
            break
        frozen += todo
    return frozen


def _create_time(process: psutil.Process) -> float | None:
    try:
        return process.create_time()
    except psutil.Error:
        return None


def _wait_gone(
    procs: list[psutil.Process], timeout: float, kill_new: bool | None = None
) -> list[psutil.Process]:
    """Those of `procs` still running after `timeout` seconds; zombies count as gone.

    With `kill_new` set, children the survivors start meanwhile join `procs` and get the same
    signal (False: SIGTERM, True: SIGKILL), so nothing started during the grace escapes.
    Not `psutil.wait_procs`: it reaps processes that are this process's own children, which
    would take the exit code away from the `subprocess.Popen` the job's follower waits on.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        if kill_new is not None:
            for child in _descendants(procs):
                _signal(child, kill=kill_new)
                procs.append(child)
        alive = [p for p in procs if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def terminate_tree(pid: int, grace: float, marker: str | None = None, pgid: int = 0) -> None:
    """SIGTERM the job's process group and every descendant of `pid`, SIGKILL survivors after
    `grace` seconds. A pid that is no longer the job (`marker` differs) is left alone.

    The tree is listed before the first signal (once the driver is gone its children are
    re-parented and cannot be found from it) and again while waiting and before the kill, so
    a process a survivor starts in between is ended too."""
    procs = _tree(pid, marker)
    if not procs:
        return
    _signal_group(pgid, signal.SIGTERM)
    for process in procs:
        _signal(process, kill=False)
    survivors = _wait_gone(procs, grace, kill_new=False)
    if not survivors:
        return
    log.info("process %d: %d process(es) outlived the grace period; killing", pid, len(survivors))
    survivors = _freeze(survivors)
    _signal_group(pgid, getattr(signal, "SIGKILL", signal.SIGTERM))
    for process in survivors:
        _signal(process, kill=True)
    left = _wait_gone(survivors, 5.0, kill_new=True)
    if left:
        log.warning(
            "process %d: %s still running after SIGKILL", pid, ", ".join(str(p.pid) for p in left)
        )


def die_with_parent() -> None:
    """`preexec_fn` for a helper child (a venv, a pip install) that must not outlive the process
    starting it: Linux sends it SIGKILL when its parent dies. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the child may outlive us, as before
        pass


def helper_preexec() -> Callable[[], None] | None:
    """What to pass as `preexec_fn` for helper children (None where it does nothing)."""
    return die_with_parent if sys.platform.startswith("linux") else None
