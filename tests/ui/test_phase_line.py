"""The detail view's phase line, on a real local-process job: what the run does before its
first log line, how long each step took, and the current step counting up."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from trainer_gui.core.runners.local_process import LocalProcessRunner
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService
from trainer_gui.ui.bridge import JobEventBridge
from trainer_gui.ui.job_detail import JobDetail

SpecFactory = Callable[..., JobSpec]

#: As quiet as a script importing torch, then a line and a metric.
SLOW_START = """
    import time
    time.sleep(4)
    print("hello", flush=True)
    time.sleep(1.2)
    print("epoch=0 step=0 loss=0.5", flush=True)
    time.sleep(1.5)
"""


@pytest.fixture
def service(app_home: Path) -> Iterator[JobService]:
    store = Store(app_home / "db.sqlite3")
    svc = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    yield svc
    svc.shutdown()
    store.close()


@pytest.fixture
def detail(qtbot: QtBot, service: JobService) -> Iterator[JobDetail]:
    """The detail view wired to the job events as the main window wires it."""
    view = JobDetail(service.store)
    qtbot.addWidget(view)
    bridge = JobEventBridge(service, view)
    bridge.sig_logs.connect(view.on_logs)
    bridge.sig_metrics.connect(view.on_metrics)
    store = service.store
    bridge.sig_status.connect(
        lambda job_id, *_: view.update_records([r for r in [store.get_job(job_id)] if r])
    )
    view.resize(1000, 600)
    view.show()
    yield view
    bridge.close()


def _current(view: JobDetail) -> str:
    """The step shown as current (bold, with "…"), or "" when none is."""
    found = re.search(r"<b[^>]*>([^<]*)…</b>", view.phase_line.text())
    return found[1] if found else ""


def test_the_phase_line_follows_a_run_from_a_quiet_start_to_its_end(
    qtbot: QtBot, service: JobService, detail: JobDetail, job_spec: SpecFactory
) -> None:
    handle = service.submit(job_spec(SLOW_START))
    detail.show_jobs([service.get(handle.job_id)])

    # Before any log line, the line says the interpreter is starting, and for how long.
    qtbot.waitUntil(lambda: _current(detail).startswith("Starting the interpreter"), timeout=20_000)
    assert detail.phase_line.isVisible()
    assert detail.log_view.table.model().rowCount() == 0
    assert "Preparing" in detail.phase_line.text()
    shown = _current(detail)
    qtbot.waitUntil(lambda: _current(detail) != shown, timeout=2_500)  # it counts up, ~1 Hz
    assert _current(detail).startswith("Starting the interpreter")

    qtbot.waitUntil(lambda: _current(detail).startswith("Running"), timeout=20_000)
    qtbot.waitUntil(lambda: _current(detail).startswith("First metric"), timeout=20_000)
    assert handle.wait(60) is not None
    qtbot.waitUntil(lambda: detail.records[0].is_terminal and "Packing" in detail.phase_line.text())

    # Ended: every step with its time, none current, and the clock stopped.
    text = detail.phase_line.text()
    assert _current(detail) == ""
    steps = re.findall(r">([A-Z][^<>]*?) ([0-9.]+) s<", text)
    labels = [label for label, _ in steps]
    assert labels == [
        "Queued",
        "Preparing",
        "Starting the interpreter",
        "Running",
        "First metric",
        "Packing",
    ]
    seconds = dict(steps)
    assert float(seconds["Starting the interpreter"]) >= 3.5  # the quiet start, measured
    assert float(seconds["Running"]) >= 0.8
    assert not detail._ticker.isActive()
    assert "starting the interpreter" in detail.phase_line.toolTip()


def test_no_phase_line_for_several_jobs_or_a_job_from_before_phases(
    qtbot: QtBot, service: JobService, detail: JobDetail
) -> None:
    store = service.store
    for job_id in ("a", "b"):
        store.create_job(job_id, job_id, "local-process", "name: x\n", "/none", created_at=1.0)
        store.set_status(job_id, "Completed", "", 5.0)
    detail.show_jobs([store.require_job("a")])
    qtbot.waitUntil(lambda: "Queued 4.0 s" in detail.phase_line.text())
    assert detail.phase_line.isVisible()
    detail.show_jobs([store.require_job("a"), store.require_job("b")])
    assert not detail.phase_line.isVisible()
    # A job recorded before phases existed has none: no line rather than a made-up one.
    with store._write() as conn:
        conn.execute("DELETE FROM job_phases WHERE job_id = 'b'")
    detail.show_jobs([store.require_job("b")])
    qtbot.wait(300)
    assert not detail.phase_line.isVisible()
