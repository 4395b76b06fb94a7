"""Helpers for the window, form and table tests: a main-window factory, simulated drops, fake jobs.

Import with `from helpers import ...` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QThreadPool, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.store import JobRecord, Store
from trainer_gui.services.api import Jobs
from trainer_gui.services.job_host import JobHostClient
from trainer_gui.services.jobs import JobService
from trainer_gui.ui.status import ProbeResult
from trainer_gui.ui.tasks import store_writes

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "src" / "trainer_gui" / "resources" / "examples" / "quickstart"


def mime_for(paths: list[Path] | None = None, text: str | None = None) -> QMimeData:
    mime = QMimeData()
    if paths:
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    if text is not None:
        mime.setText(text)
    return mime


def drop(
    target: QWidget,
    mime: QMimeData,
    pos: QPoint | None = None,
    source: QWidget | None = None,
) -> tuple[bool, bool]:
    """Send DragEnter then Drop to `target` like a file manager would; returns (entered, dropped).

    `source` is ignored by Qt for synthetic events (QDropEvent.source() is only set during a
    real drag), so internal moves are tested through the widget's own API.
    """
    del source
    point = pos or target.rect().center()
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction | Qt.DropAction.LinkAction
    # QDragEnterEvent takes a QPoint (QDropEvent a QPointF too) in PySide6 < 6.12.
    enter = QDragEnterEvent(
        QPoint(point), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(target, enter)
    entered = enter.isAccepted()
    event = QDropEvent(
        QPointF(point),
        actions,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, event)
    return entered, event.isAccepted()


def fake_probes(record: list[str] | None = None) -> dict[str, Callable[[], ProbeResult]]:
    """Probes that answer at once and note the thread they ran on."""

    def docker() -> ProbeResult:
        if record is not None:
            record.append(threading.current_thread().name)
        return ProbeResult("docker", "ok", "Docker 99.0", "fake engine")

    def aws() -> ProbeResult:
        if record is not None:
            record.append(threading.current_thread().name)
        return ProbeResult("aws", "bad", "AWS: no credentials", "fake: none")

    return {"docker": docker, "aws": aws}


SPEC_YAML = "name: {name}\nsource:\n  command: [python, -c, 'print(1)']\n"


def add_job(
    store: Store,
    name: str,
    status: JobStatus = JobStatus.COMPLETED,
    project_id: int | None = None,
    metrics: dict[str, float] | None = None,
    run_dir: Path | None = None,
    job_id: str | None = None,
) -> JobRecord:
    """A job straight into the store (no runner), with a status and last metric values."""
    from trainer_gui.core.paths import runs_home

    job_id = job_id or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{abs(hash(name)) % 65536:04x}"
    run = run_dir or runs_home() / job_id
    run.mkdir(parents=True, exist_ok=True)
    (run / "logs").mkdir(exist_ok=True)
    store.create_job(
        job_id, name, "local-process", SPEC_YAML.format(name=name), str(run), project_id
    )
    if status != JobStatus.PENDING:
        store.set_status(job_id, JobStatus.TRAINING.value, "", time.time() - 5)
        if status != JobStatus.TRAINING:
            store.set_status(job_id, status.value, "", time.time())
    if metrics:
        samples = [MetricSample(k, v, "algo-1", time.time(), step=1) for k, v in metrics.items()]
        store.record_batch(job_id, {}, samples)
    record = store.get_job(job_id)
    assert record is not None
    return record


class WindowFactory:
    """Builds MainWindows on one store and service and tears them down in order.

    The service is the job host's client by default, as the app runs (jobs followed in a child
    process). `in_process=True` follows them in the test's own process instead: only for a test
    that must reach into the following side (fake runners, the ingest's threads).
    """

    def __init__(self, qtbot: Any, in_process: bool = False) -> None:
        self.qtbot = qtbot
        self.store = Store()
        self.service: Jobs = JobService(self.store) if in_process else JobHostClient(self.store)
        self.windows: list[Any] = []

    def __call__(self, **kwargs: Any) -> Any:
        from trainer_gui.ui.main_window import MainWindow

        kwargs.setdefault("probes", fake_probes())
        kwargs.setdefault("recover", False)
        window = MainWindow(self.store, self.service, **kwargs)
        self.qtbot.addWidget(window)
        self.windows.append(window)
        return window

    def wait_idle(self, window: Any) -> None:
        """Until the window's job list has been loaded (no reload pending)."""
        self.qtbot.waitUntil(lambda: not window._jobs_loading, timeout=5000)

    def close(self) -> None:
        for window in self.windows:
            for editor in list(window.editors):
                editor.close()
            if not window._closing:
                window.close()
        for record in self.store.list_jobs(active_only=True):
            try:
                self.service.stop(record.id, wait=15)
            except Exception as exc:  # best effort: a failed test's job
                log.warning("could not stop %s after the test: %s", record.id, exc)
        store_writes().waitForDone(10_000)
        QThreadPool.globalInstance().waitForDone(10_000)
        self.service.shutdown()
        self.store.close()


def window_factory(qtbot: Any, in_process: bool = False) -> Iterator[WindowFactory]:
    """Body of a `make_window` fixture: `yield from window_factory(qtbot)`."""
    factory = WindowFactory(qtbot, in_process)
    yield factory
    factory.close()
