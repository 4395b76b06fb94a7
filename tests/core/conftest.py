"""The job service the local-process tests drive: a store in the test's app home and a runner
with a short stop grace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer_gui.core.runners.local_process import LocalProcessRunner
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService


@pytest.fixture
def service(app_home: Path) -> Iterator[JobService]:
    store = Store(app_home / "db.sqlite3")
    svc = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    yield svc
    svc.shutdown()
    store.close()
