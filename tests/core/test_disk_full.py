"""A full disk (issue 13, item 4): named in the reason, the job stopped, the store consistent,
no traceback. ENOSPC is injected where the follower and the packer write; no disk is filled."""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from trainer_gui.core.runners import follow
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]
WaitUntil = Callable[..., None]

FOREVER = """
    import time
    step = 0
    while True:
        print(f"step={step} loss=1.0", flush=True)
        step += 1
        time.sleep(0.1)
"""

QUICK = """
    print("loss=0.5", flush=True)
"""


def _no_space(path: str) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", path)


def _full_disk_errors(app_home: Path) -> list[BaseException]:
    return [
        _no_space(str(app_home / "runs")),
        sqlite3.OperationalError("database or disk is full"),
    ]


@pytest.mark.parametrize("kind", ["oserror", "sqlite"])
def test_a_full_disk_while_ingesting_stops_the_job_and_names_the_disk(
    service: JobService,
    job_spec: SpecFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    app_home: Path,
    kind: str,
) -> None:
    error = _full_disk_errors(app_home)[0 if kind == "oserror" else 1]
    record_batch = Store.record_batch
    calls = {"n": 0}

    def fill_up(self: Store, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:  # the first lines land; then the disk is full
            raise error
        return record_batch(self, *args, **kwargs)

    monkeypatch.setattr(Store, "record_batch", fill_up)
    caplog.set_level(logging.INFO)
    handle = service.submit(job_spec(FOREVER))

    assert handle.wait(60) is not None

    record = service.get(handle.job_id)
    assert record.status == "Failed"
    reason = record.failure_reason or ""
    assert reason.startswith("the disk holding "), reason
    assert "is full" in reason and "the job was stopped" in reason
    expected = str(app_home / "runs") if kind == "oserror" else str(service.store.path)
    assert expected in reason
    pid = int(record.backend_ids["pid"])
    with contextlib.suppress(psutil.NoSuchProcess):
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # no traceback


def test_a_full_disk_while_packing_fails_the_job_naming_the_disk(
    service: JobService,
    job_spec: SpecFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def pack_job(hosts: list[Path], dest: Path) -> Any:
        raise _no_space(str(dest / "model.tar.gz"))

    monkeypatch.setattr(follow, "pack_job", pack_job)
    caplog.set_level(logging.INFO)
    handle = service.submit(job_spec(QUICK))

    assert handle.wait(60) is not None

    record = service.get(handle.job_id)
    assert record.status == "Failed"
    artifacts = Path(record.run_dir) / "artifacts"
    assert record.failure_reason == (
        f"Packing artifacts failed: the disk holding {artifacts / 'model.tar.gz'} is full "
        "(no space left on device)"
    )
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
