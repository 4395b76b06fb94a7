"""Shared setup for the widget tests: offscreen Qt, a throwaway data folder, no stray pool tasks.

Test files add their own fixtures; only what every UI test needs lives here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything creates the QApplication: no display needed, same pixels everywhere.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# pyqtgraph picks PySide6 even where PyQt is installed too (style-anchors 2.1).
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

# How long a test's leftover pool work may take to end (the guard's own test makes it short).
POOL_WAIT_MS = int(os.environ.get("TRAINER_TEST_POOL_WAIT_MS", "10000"))

# PySide6 6.12.0 on Python < 3.12 drops a reference of None on every void call, and a test
# run would die with "none_dealloc" somewhere in the middle: stop at once with the reason.
from trainer_gui.ui.app import binding_problem  # noqa: E402

_PROBLEM = binding_problem()
if _PROBLEM is not None:
    pytest.exit(_PROBLEM, returncode=2)


@pytest.fixture
def trainer_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty `TRAINER_GUI_HOME` for the test (store, runs, settings all go there)."""
    home = tmp_path / "trainer-home"
    home.mkdir()
    monkeypatch.setenv("TRAINER_GUI_HOME", str(home))
    return home


# Pools whose work outlived a test: Qt's global pool waits for its threads when the process
# ends, so one stuck worker would hang the run after its last test (see `pytest_unconfigure`).
_STUCK: list[str] = []
_EXIT_STATUS: list[int] = []


def app_pools() -> dict[str, Any]:
    """The global pool and every pool the window owns, by name."""
    from PySide6.QtCore import QThreadPool

    from trainer_gui.ui.tasks import store_writes

    return {"store writes": store_writes(), "global": QThreadPool.globalInstance()}


# Workers per pool a failed test left stuck: later tests wait only for their own.
_STUCK_WORKERS: dict[str, int] = {}


def settle_pools(wait_ms: int = POOL_WAIT_MS) -> list[str]:
    """Cancel the live tasks, drop what has not started, wait (bounded) for the rest, apart
    from workers an earlier test already left stuck.

    Returns the pools still busy after `wait_ms`, by name (empty when all are idle)."""
    from trainer_gui.ui.tasks import BackgroundTask

    for task in list(BackgroundTask._live):
        task.cancel()  # its function may look at cancel_event and stop early
    busy = []
    deadline = time.monotonic() + wait_ms / 1000
    for name, pool in app_pools().items():
        pool.clear()  # queued, not started: never starts
        known = _STUCK_WORKERS.get(name, 0)
        if known == 0:
            idle = pool.waitForDone(max(0, int((deadline - time.monotonic()) * 1000)))
        else:
            while pool.activeThreadCount() > known and time.monotonic() < deadline:
                time.sleep(0.01)
            idle = pool.activeThreadCount() <= known
        if not idle:
            busy.append(f"{name} pool")
        _STUCK_WORKERS[name] = pool.activeThreadCount()
    return busy


@pytest.fixture(autouse=True)
def _no_dangling_pool_tasks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves QThreadPool work running (it would outlive its widgets), and
    never let it hang the run: the wait is bounded, and a worker still stuck ends with the
    process (`pytest_unconfigure`) instead of keeping it alive."""
    yield
    busy = settle_pools()
    if busy:
        _STUCK.append(request.node.nodeid)
        pytest.fail(
            f"QThreadPool tasks still running {POOL_WAIT_MS} ms after the test "
            f"({', '.join(busy)}); the run ends without waiting for them"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """With a worker thread stuck (a failed test never released it), Qt's pools would wait for
    it at interpreter exit forever: leave now, with the run's own exit status."""
    if not _STUCK or not any(pool.activeThreadCount() for pool in app_pools().values()):
        return
    sys.stdout.write(
        f"\nQThreadPool workers of {', '.join(_STUCK)} still running: "
        "exiting without waiting for them\n"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[-1] if _EXIT_STATUS else 1)
