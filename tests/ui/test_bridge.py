from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Slot
from pytestqt.qtbot import QtBot

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.events import (
    AnyEvent,
    ArtifactReady,
    BackendInfo,
    JobStatus,
    LogBatch,
    LogLine,
    MetricBatch,
    StatusChanged,
)
from trainer_gui.services.live_data import LogChunk, LogData, MetricChunk, MetricData, overlap
from trainer_gui.ui.bridge import JobEventBridge, drop_overlap


class FakeService:
    """Just the subscription half of JobService, so tests can fire events from any thread."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[AnyEvent], None]] = []

    def subscribe(self, listener: Callable[[AnyEvent], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def fire(self, event: AnyEvent) -> None:
        for listener in list(self.listeners):
            listener(event)


class Recorder(QObject):
    """Records every bridge signal with the thread it arrived on."""

    def __init__(self, bridge: JobEventBridge) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...], int]] = []
        bridge.sig_status.connect(self.on_status)
        bridge.sig_logs.connect(self.on_logs)
        bridge.sig_metrics.connect(self.on_metrics)
        bridge.sig_artifact.connect(self.on_artifact)

    @Slot(str, str, str)
    def on_status(self, job_id: str, status: str, message: str) -> None:
        self.calls.append(("status", (job_id, status, message), threading.get_ident()))

    @Slot(str, object)
    def on_logs(self, job_id: str, lines: LogChunk) -> None:
        self.calls.append(("logs", (job_id, lines), threading.get_ident()))

    @Slot(str, object)
    def on_metrics(self, job_id: str, samples: MetricChunk) -> None:
        self.calls.append(("metrics", (job_id, samples), threading.get_ident()))

    @Slot(str, str, str)
    def on_artifact(self, job_id: str, kind: str, path: str) -> None:
        self.calls.append(("artifact", (job_id, kind, path), threading.get_ident()))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [args for k, args, _ in self.calls if k == kind]


def _line(i: int, host: str = "algo-1") -> LogLine:
    return LogLine(host, "stdout", f"line {i}", 1000.0 + i)


def _produce(service: FakeService, job: str, batches: int) -> None:
    service.fire(StatusChanged(job, JobStatus.STARTING, "Preparing"))
    service.fire(StatusChanged(job, JobStatus.TRAINING, "Training in progress"))
    for b in range(batches):
        service.fire(LogBatch(job, [_line(b * 10 + i) for i in range(10)]))
        service.fire(
            MetricBatch(job, [MetricSample("loss", 1.0 / (b + 1), "algo-1", 1000.0 + b, b)])
        )
        service.fire(BackendInfo(job, {"pid": 1}))
    service.fire(ArtifactReady(job, "model", "/tmp/model.tar.gz"))
    service.fire(StatusChanged(job, JobStatus.COMPLETED, "done"))


def test_bridge_coalesces_events_from_a_runner_thread_and_emits_on_gui_thread_in_order(
    qtbot: QtBot,
) -> None:
    service = FakeService()
    bridge = JobEventBridge(service, hz=30)  # type: ignore[arg-type]
    recorder = Recorder(bridge)
    producer = threading.Thread(target=_produce, args=(service, "job-a", 100))
    producer.start()
    producer.join()  # the GUI thread is blocked meanwhile, so no flush can split the events

    qtbot.waitUntil(
        lambda: (
            ("status", ("job-a", "Completed", "done")) in [(k, a) for k, a, _ in recorder.calls]
        ),
        timeout=5000,
    )

    gui = threading.get_ident()
    assert {thread for _, _, thread in recorder.calls} == {gui}
    assert [args[1] for args in recorder.of("status")] == ["Starting", "Training", "Completed"]
    # 100 LogBatch and 100 MetricBatch events came out as one signal each.
    assert len(recorder.of("logs")) == 1
    assert len(recorder.of("metrics")) == 1
    chunk = recorder.of("logs")[0][1]
    assert isinstance(chunk, LogChunk)  # in columns, made on the producer's thread
    assert [text for _, _, text in chunk.rows] == [f"line {i}" for i in range(1000)]
    assert list(chunk.times) == [1000.0 + i for i in range(1000)]
    assert chunk.hosts == ("algo-1",)
    assert chunk.widest == len("line 999")
    metrics = recorder.of("metrics")[0][1]
    assert isinstance(metrics, MetricChunk)
    steps, _walls, values = metrics.columns[("algo-1", "loss")]
    assert steps.tolist() == list(range(100))
    assert values.tolist() == [1.0 / (b + 1) for b in range(100)]
    assert metrics.last == {"loss": 1.0 / 100}
    # The data came before the artifact and the final status, which kept their order.
    kinds = [k for k, _, _ in recorder.calls]
    assert kinds == ["status", "status", "logs", "metrics", "artifact", "status"]
    bridge.close()


def test_bridge_keeps_each_jobs_lines_before_its_later_status(qtbot: QtBot) -> None:
    service = FakeService()
    bridge = JobEventBridge(service)  # type: ignore[arg-type]
    recorder = Recorder(bridge)

    def produce() -> None:
        service.fire(LogBatch("a", [_line(1)]))
        service.fire(LogBatch("b", [_line(2)]))
        service.fire(StatusChanged("a", JobStatus.FAILED, "boom"))
        service.fire(LogBatch("a", [_line(3)]))
        service.fire(LogBatch("b", [_line(4)]))

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join()
    with qtbot.waitSignal(bridge.sig_status, timeout=5000):
        pass
    qtbot.waitUntil(lambda: len(recorder.of("logs")) == 3, timeout=5000)
    order = [
        (k, a[0], [row[2] for row in a[1].rows] if k == "logs" else a[1])
        for k, a, _ in recorder.calls
    ]
    assert order == [
        ("logs", "a", ["line 1"]),
        ("status", "a", "Failed"),
        ("logs", "b", ["line 2", "line 4"]),
        ("logs", "a", ["line 3"]),
    ]
    bridge.close()


def test_bridge_flushes_at_its_rate_while_a_producer_keeps_going(qtbot: QtBot) -> None:
    service = FakeService()
    bridge = JobEventBridge(service, hz=50)  # type: ignore[arg-type]
    recorder = Recorder(bridge)
    stop = threading.Event()
    produced = [0]

    def produce() -> None:
        i = 0
        while not stop.is_set() and i < 200_000:
            service.fire(LogBatch("a", [_line(i)]))
            i += 1
        produced[0] = i

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        qtbot.waitUntil(lambda: len(recorder.of("logs")) >= 3, timeout=10_000)
    finally:
        stop.set()
        producer.join()
    qtbot.waitUntil(lambda: bridge.pending_count() == 0, timeout=5000)
    texts = [row[2] for args in recorder.of("logs") for row in args[1].rows]
    assert texts == [f"line {i}" for i in range(produced[0])]
    assert len(recorder.of("logs")) < produced[0]
    bridge.close()


def test_bridge_close_unsubscribes_and_stops(qtbot: QtBot) -> None:
    service = FakeService()
    bridge = JobEventBridge(service)  # type: ignore[arg-type]
    recorder = Recorder(bridge)
    assert len(service.listeners) == 1
    bridge.close()
    assert service.listeners == []
    bridge.flush()
    assert recorder.calls == []
    with qtbot.assertNotEmitted(bridge.sig_status, wait=100):
        pass


def test_drop_overlap_removes_live_items_the_load_already_read() -> None:
    loaded = [1, 2, 3, 4, 5]
    assert drop_overlap(loaded, [4, 5, 6, 7], key=lambda x: x) == [6, 7]
    assert drop_overlap(loaded, [6, 7], key=lambda x: x) == [6, 7]
    assert drop_overlap(loaded, [3, 4, 5], key=lambda x: x) == []
    assert drop_overlap([], [1], key=lambda x: x) == [1]
    # A repeated value that is not a real overlap stays.
    assert drop_overlap([1, 2, 5], [5, 9], key=lambda x: x) == [9]
    assert drop_overlap([5, 1, 2], [5, 9], key=lambda x: x) == [5, 9]


def test_bridge_passes_events_already_in_columns_and_merges_them(qtbot: QtBot) -> None:
    """The job host delivers LogData/MetricData; several per flush come out as one signal."""
    service = FakeService()
    bridge = JobEventBridge(service)  # type: ignore[arg-type]
    recorder = Recorder(bridge)
    a = LogChunk.from_lines([_line(0, "algo-1"), _line(1, "algo-2")])
    b = LogChunk.from_lines([_line(2, "algo-2"), _line(3, "algo-3")])
    service.fire(LogData("j", a))
    service.fire(LogData("j", b))
    m1 = MetricChunk.from_samples([MetricSample("loss", 1.0, "algo-1", 1.0, 1)])
    m2 = MetricChunk.from_samples(
        [MetricSample("loss", 0.5, "algo-1", 2.0, 2), MetricSample("acc", 0.9, "algo-2", 2.0)]
    )
    service.fire(MetricData("j", m1))
    service.fire(MetricData("j", m2))
    bridge.flush()
    ((_, logs),) = recorder.of("logs")
    assert [row[2] for row in logs.rows] == ["line 0", "line 1", "line 2", "line 3"]
    assert logs.hosts == ("algo-1", "algo-2", "algo-3")
    assert [row[2] for row in logs.rows_of("algo-2")] == ["line 1", "line 2"]
    ((_, metrics),) = recorder.of("metrics")
    steps, _, values = metrics.columns[("algo-1", "loss")]
    assert steps.tolist() == [1.0, 2.0]
    assert values.tolist() == [1.0, 0.5]
    assert np.isnan(metrics.columns[("algo-2", "acc")][0]).all()  # no step
    assert metrics.last == {"loss": 0.5, "acc": 0.9}
    assert len(metrics) == 3
    bridge.close()


def test_overlap_of_stored_and_live_columns() -> None:
    def cols(values: list[float]) -> tuple[Any, Any, Any]:
        arr = np.array(values, dtype=np.float64)
        return (arr, arr + 1000.0, arr * 2)

    assert overlap(cols([1, 2, 3, 4, 5]), cols([4, 5, 6])) == 2
    assert overlap(cols([1, 2, 3]), cols([6, 7])) == 0
    assert overlap(cols([1, 2, 3]), cols([1, 2, 3])) == 3
    assert overlap(cols([]), cols([1])) == 0
    assert overlap(cols([1, 2, 5]), cols([5, 9])) == 1
    assert overlap(cols([5, 1, 2]), cols([5, 9])) == 0
    nan = float("nan")
    assert overlap(cols([1, nan, 3]), cols([nan, 3, 4])) == 2
