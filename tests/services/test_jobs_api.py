"""The jobs interface: what both implementations share, and adopting an account's job."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer_gui.core.errors import JobNotFound, UserError
from trainer_gui.core.paths import runs_home
from trainer_gui.core.store import Store
from trainer_gui.services.api import JobBoard
from trainer_gui.services.jobs import JobService

SPEC = "name: {name}\nsource:\n  command: [python, -c, 'print(1)']\n"


@pytest.fixture
def store(app_home: Path) -> Iterator[Store]:
    db = Store()
    yield db
    db.close()


def test_the_board_reads_records_and_waits_through_the_store(store: Store) -> None:
    board = JobBoard(store)
    store.create_job("j1", "j", "local-process", SPEC.format(name="j"), str(runs_home() / "j1"))
    store.set_status("j1", "Training", "")
    with pytest.raises(JobNotFound, match="no job 'nope'"):
        board.get("nope")
    assert board.spec_of(board.get("j1")).name == "j"
    assert board.wait("j1", timeout=0).status == "Training"
    # Another process records the end; the wait sees it.
    ender = threading.Timer(0.3, lambda: Store().set_status("j1", "Completed", ""))
    ender.start()
    assert board.wait("j1", timeout=30).status == "Completed"
    ender.join()


def test_a_failing_listener_does_not_keep_events_from_the_others(store: Store) -> None:
    board = JobBoard(store)
    seen: list[object] = []

    def broken(_event: object) -> None:
        raise RuntimeError("boom")

    board.subscribe(broken)
    unsubscribe = board.subscribe(seen.append)
    board.notify("one")
    unsubscribe()
    board.notify("two")
    assert seen == ["one"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "-lead", "x" * 64, ""])
def test_adopt_refuses_what_is_no_training_job_name_before_touching_disk(
    store: Store, name: str
) -> None:
    service = JobService(store)
    before = set(runs_home().glob("*")) if runs_home().exists() else set()
    with pytest.raises(UserError, match="is not a SageMaker training job name"):
        service.adopt(name, region="us-east-1")
    after = set(runs_home().glob("*")) if runs_home().exists() else set()
    assert after == before
    assert store.list_jobs() == []
