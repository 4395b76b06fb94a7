"""Process bookkeeping that survives the app: is a pid still our job, and how to stop it."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def start_marker(pid: int) -> str | None:
    """Something that changes when a pid is reused: the kernel start time on Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, after the command name in parentheses (which may contain spaces).
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, marker: str | None = None) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # type: ignore[attr-defined]
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)  # type: ignore[attr-defined]
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = _proc_state(pid)
    if state == "Z":  # finished, not yet reaped by whoever started it
        return False
    return marker is None or start_marker(pid) in (None, marker)


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    return rest[0] if rest else None


def signal_group(pgid: int, sig: int) -> bool:
    if sys.platform == "win32":
        try:
            os.kill(pgid, signal.SIGTERM if sig != signal.SIGINT else signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def terminate_group(pgid: int, pid: int, grace: float, marker: str | None = None) -> None:
    """SIGTERM the whole group, SIGKILL it after `grace` seconds if the leader lives on."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker):
            return
        time.sleep(0.05)
    kill = getattr(signal, "SIGKILL", signal.SIGTERM)
    signal_group(pgid, kill)
