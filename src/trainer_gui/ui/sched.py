"""Short scheduler slices for the GUI thread (Linux 6.12+), so it is not made to wait behind CPU
hogs for a whole default slice each time it wakes.

On a machine whose cores are all busy (a training job, a test suite), the GUI thread's work per
event is small (2-10 ms) but each wake-up waits for a running task's slice to end; the EEVDF
scheduler of Linux 6.12 lets a thread ask for a shorter slice (`sched_attr.sched_runtime` of a
SCHED_OTHER thread), which it then gets sooner and more often. Measured in bench/README.md (GUI
responsiveness). Elsewhere, or on an older kernel, nothing changes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys

log = logging.getLogger(__name__)

#: `TRAINER_GUI_SHORT_SLICES=0` keeps the kernel's default slice (to compare, or if it misbehaves).
OPT_OUT = "TRAINER_GUI_SHORT_SLICES"
#: The slice the GUI thread asks for, in nanoseconds (the kernel accepts 0.1-100 ms).
GUI_SLICE_NS = 300_000

_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}  # sched_setattr, sched_getattr
_SCHED_FLAG_RESET_ON_FORK = 0x01  # processes the thread starts get the default slice


class _SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    ]


def _syscalls() -> tuple[int, int] | None:
    if not sys.platform.startswith("linux"):
        return None
    return _SYSCALLS.get(platform.machine())


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = platform.release().split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def current_slice_ns() -> int | None:
    """This thread's slice in nanoseconds (the kernel's default unless one was asked for), or
    None where it cannot be read."""
    calls = _syscalls()
    if calls is None:
        return None
    attr = _SchedAttr()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(calls[1], 0, ctypes.byref(attr), ctypes.sizeof(attr), 0) != 0:
        return None
    return int(attr.sched_runtime)


def ask_short_slices(slice_ns: int = GUI_SLICE_NS) -> bool:
    """Ask for `slice_ns` slices for the calling thread; whether the kernel took it.

    Only on Linux 6.12+ (before EEVDF's custom slices a SCHED_OTHER runtime meant nothing),
    only for a thread of the normal policy, keeping its nice value. Never raises.
    """
    calls = _syscalls()
    if calls is None or not _kernel_at_least(6, 12) or os.environ.get(OPT_OUT) == "0":
        return False
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            return False
        attr = _SchedAttr(
            size=ctypes.sizeof(_SchedAttr),
            sched_policy=os.SCHED_OTHER,
            sched_flags=_SCHED_FLAG_RESET_ON_FORK,
            sched_nice=os.getpriority(os.PRIO_PROCESS, 0),  # this thread's (Linux)
            sched_runtime=slice_ns,
        )
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(calls[0], 0, ctypes.byref(attr), 0) != 0:
            log.debug("sched_setattr refused: %s", os.strerror(ctypes.get_errno()))
            return False
    except (OSError, AttributeError) as exc:  # no libc syscall(), an odd platform
        log.debug("no short slices for the GUI thread: %s", exc)
        return False
    return current_slice_ns() == slice_ns
