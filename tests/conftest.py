"""Every test gets its own app data folder; nothing touches the real one."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.spec import JobSpec, spec_from_dict

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def app_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TRAINER_GUI_HOME", str(home))
    monkeypatch.setenv("TRAINER_GUI_STOP_GRACE", "5")
    # A job host a test started (through the CLI or the window) goes soon after its jobs end,
    # and whatever is left is asked to go at the end of the test.
    monkeypatch.setenv("TRAINER_GUI_HOST_IDLE", "1")
    # The queue runs one local job at a time on a CPU-only machine; tests that run several at
    # once get room for them (the queue's own tests set their limit).
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "8")
    # Local-process runs start cold: a warm interpreter imports torch in the background, which
    # a test does not need; tests/core/test_warm_start.py runs the contract both ways.
    monkeypatch.setenv("TRAINER_GUI_WARM", "0")
    yield home
    from trainer_gui.core.store.db import default_db_path
    from trainer_gui.services.job_host import stop_host

    assert stop_host(default_db_path()), "a job host of this test did not exit"


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread() -> Iterator[None]:
    """The window's policy (ui/gcguard.py): no automatic cyclic GC, which would free Qt objects
    on whatever worker thread allocates; the main thread collects what is due after the test."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    yield
    from trainer_gui.ui.gcguard import collect_due

    collect_due()
    if enabled:
        gc.enable()


WaitUntil = Callable[..., None]
SpecFactory = Callable[..., JobSpec]


def _wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def wait_until() -> WaitUntil:
    """Poll a condition (for work in other processes, where no signal exists to wait on)."""
    return _wait_until


@pytest.fixture
def job_spec(tmp_path: Path) -> SpecFactory:
    """Write `script` as code/train.py next to a small data channel and return a spec for it."""

    def make(script: str, backend: str = "local-process", **over: Any) -> JobSpec:
        code = tmp_path / "code"
        code.mkdir(exist_ok=True)
        (code / "train.py").write_text(textwrap.dedent(script))
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        (data / "rows.csv").write_text("a,b\n1,2\n")
        spec: dict[str, Any] = {
            "name": "t",
            "source": {"source_dir": "code", "entry_point": "train.py"},
            "compute": {"backend": backend, "instance_type": "ml.m5.large"},
            "channels": [{"name": "train", "source": "data", "content_type": "text/csv"}],
            "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        }
        spec.update(over)
        return spec_from_dict(spec, base_dir=tmp_path)

    return make
