"""Shared setup for the widget tests: offscreen Qt, a throwaway data folder, no stray pool tasks.

Test files add their own fixtures; only what every UI test needs lives here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything creates the QApplication: no display needed, same pixels everywhere.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# pyqtgraph picks PySide6 even where PyQt is installed too (style-anchors 2.1).
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

POOL_WAIT_MS = 10_000

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


@pytest.fixture(autouse=True)
def _no_dangling_pool_tasks() -> Iterator[None]:
    """Fail a test that leaves QThreadPool work running (it would outlive its widgets)."""
    yield
    from PySide6.QtCore import QThreadPool

    from trainer_gui.ui.tasks import store_writes

    for pool in (store_writes(), QThreadPool.globalInstance()):
        if not pool.waitForDone(POOL_WAIT_MS):
            pytest.fail(f"QThreadPool tasks still running {POOL_WAIT_MS} ms after the test")
