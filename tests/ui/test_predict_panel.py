"""The Predict panel against a real model server (the serving runtime in a thread, no Docker)
and a stand-in launcher; SageMaker through a stubbed sagemaker-runtime client."""

from __future__ import annotations

import io
import json
import socket
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import drop, mime_for
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_helpers import ROWS, serving_in_thread, torchscript_model

from trainer_gui.core.serving import client as client_mod
from trainer_gui.core.serving.client import SageMakerEndpointClient
from trainer_gui.core.serving.launcher import Endpoint, StartProgress
from trainer_gui.ui import predict_panel as panel_mod
from trainer_gui.ui.predict_panel import PredictPanel

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """The default handlers on a TorchScript Linear(4, 2), served on 127.0.0.1."""
    model_dir = torchscript_model(tmp_path_factory.mktemp("panel-model"))
    with serving_in_thread(model_dir) as (url, service):
        assert service.state == "ready", service.error
        yield url, service.model


def endpoint(name: str, url: str) -> Endpoint:
    port = int(url.rsplit(":", 1)[1])
    return Endpoint(
        name,
        url,
        port,
        f"id-{name}",
        "trainer-gui/inference:latest",
        "runtime",
        f"/models/{name}.tar.gz",
        f"/endpoints/{name}/model",
        "me",
    )


class FakeLauncher:
    """What PredictPanel uses of EndpointLauncher, recording the threads it is called on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.endpoints = [endpoint("alpha", url)]
        self.threads: list[str] = []
        self.cleaned = 0
        self.started: list[str] = []
        self.stopped: list[str] = []

    def _note(self) -> None:
        self.threads.append(threading.current_thread().name)

    def cleanup_orphans(self) -> list[str]:
        self._note()
        self.cleaned += 1
        return []

    def list_endpoints(self) -> list[Endpoint]:
        self._note()
        return list(self.endpoints)

    def start(
        self, model: Any, *, on_progress: Any, on_log: Any, cancel: Any, **_: Any
    ) -> Endpoint:
        self._note()
        self.started.append(str(model))
        on_progress(StartProgress("unpacking", "Unpacking model.tar.gz", 0.1, 240.0))
        on_log("[serving] listening on 0.0.0.0:8080")
        on_progress(StartProgress("waiting", "Waiting for /ping (1.0 s)", 1.0, 240.0))
        on_log("[serving] ready: GET /ping, POST /invocations on port 8080")
        new = endpoint("beta", self.url)
        self.endpoints.append(new)
        on_progress(StartProgress("ready", "beta is ready", 1.5, 240.0))
        return new

    def stop(self, name: str) -> bool:
        self._note()
        self.stopped.append(name)
        self.endpoints = [e for e in self.endpoints if e.name != name]
        return True


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every client the panel makes, and the thread each request ran on."""
    made: list[dict[str, Any]] = []
    real = client_mod.client_for

    def recording(target: str, launcher: Any = None, **kwargs: Any) -> Any:
        client = real(target, launcher, **kwargs)
        original = client.invoke

        def invoke(*args: Any, **kw: Any) -> Any:
            made.append(
                {
                    "target": target,
                    "thread": threading.current_thread().name,
                    "kwargs": kwargs,
                    "args": args,
                }
            )
            return original(*args, **kw)

        client.invoke = invoke
        return client

    monkeypatch.setattr(panel_mod, "client_for", recording)
    return made


@pytest.fixture
def panel(qtbot: QtBot, server: tuple[str, Any]) -> Iterator[tuple[PredictPanel, FakeLauncher]]:
    launcher = FakeLauncher(server[0])
    widget = PredictPanel(launcher)  # type: ignore[arg-type]
    qtbot.addWidget(widget)
    qtbot.waitUntil(lambda: widget.endpoints() != [], timeout=10_000)
    yield widget, launcher
    widget.shutdown()


def expected(model: Any, rows: Any) -> Any:
    with torch.no_grad():
        return model(torch.tensor(rows, dtype=torch.float32)).numpy()


def wait_history(qtbot: QtBot, widget: PredictPanel, count: int) -> None:
    qtbot.waitUntil(lambda: len(widget.history()) == count and not widget.busy, timeout=20_000)


def test_lists_endpoints_off_the_gui_thread_and_sends_json(
    qtbot: QtBot,
    panel: tuple[PredictPanel, FakeLauncher],
    server: tuple[str, Any],
    calls: list[dict[str, Any]],
) -> None:
    widget, launcher = panel
    assert launcher.cleaned == 1  # a crashed session's endpoints go at the first listing
    assert "MainThread" not in launcher.threads
    assert widget.endpoint_combo.currentText().startswith("alpha — http://127.0.0.1:")
    assert not widget.target_row.isVisible()

    widget.set_request(json.dumps(ROWS), "application/json", "application/json")
    assert widget.send()
    wait_history(qtbot, widget, 1)
    entry = widget.history()[0]
    assert entry.result is not None and entry.result.status == 200
    assert widget.status_label.text() == "200 OK"
    assert widget.latency_label.text().endswith(" ms")
    assert widget.type_label.text() == "application/json"
    shown = json.loads(widget.response_view.toPlainText())
    assert np.allclose(shown, expected(server[1], ROWS), atol=1e-6)
    assert widget.response_view.toPlainText().startswith("[\n  [")  # pretty-printed
    assert [c["thread"] for c in calls] and all(c["thread"] != "MainThread" for c in calls)
    assert widget.history_list.count() == 1 and "200" in widget.history_list.item(0).text()


def test_csv_request_with_accept_csv(
    qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher], server: tuple[str, Any]
) -> None:
    widget, _ = panel
    widget.set_request("1,2,3,4\n5,6,7,8\n", "text/csv; charset=utf-8", "text/csv")
    widget.send()
    wait_history(qtbot, widget, 1)
    assert widget.type_label.text() == "text/csv"
    rows = [
        [float(v) for v in line.split(",")]
        for line in widget.response_view.toPlainText().splitlines()
    ]
    assert np.allclose(rows, expected(server[1], [[1, 2, 3, 4], [5, 6, 7, 8]]), atol=1e-5)


def test_dropping_an_npy_file_sends_it_and_shows_the_array(
    qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher], tmp_path: Path
) -> None:
    widget, _ = panel
    path = tmp_path / "rows.npy"
    np.save(path, np.array(ROWS, dtype=np.float32))
    widget.accept_combo.setCurrentText("application/x-npy")
    entered, dropped = drop(widget, mime_for([path]))
    assert entered and dropped
    wait_history(qtbot, widget, 1)
    entry = widget.history()[0]
    assert entry.content_type == "application/x-npy" and entry.source == "rows.npy"
    assert widget.status_label.text() == "200 OK"
    assert widget.response_view.toPlainText().startswith(
        "array shape (3, 2), dtype float64"
    )  # via tolist(), as the toolkit
    assert widget.editor.isReadOnly() and "rows.npy" in widget.editor.toPlainText()
    widget.clear_request()
    assert not widget.editor.isReadOnly() and widget.editor.toPlainText() == ""


def test_dropping_on_the_editor_sends_a_json_file(
    qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher], tmp_path: Path
) -> None:
    widget, _ = panel
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS))
    widget.editor.insertFromMimeData(mime_for([path]))  # what a drop on the editor calls
    wait_history(qtbot, widget, 1)
    assert widget.editor.toPlainText() == json.dumps(ROWS)  # text files stay editable
    assert widget.content_type_combo.currentText() == "application/json"
    assert widget.status_label.text() == "200 OK"


def test_an_image_the_model_cannot_read_gets_415(
    qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher], tmp_path: Path
) -> None:
    widget, _ = panel
    path = tmp_path / "cat.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    assert widget.send_file(path)
    wait_history(qtbot, widget, 1)
    assert widget.status_label.text() == "415 Unsupported Media Type"
    assert "unsupported content type 'image/png'" in widget.response_view.toPlainText()
    assert widget.history()[0].content_type == "image/png"


def test_history_resend_and_show(qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher]) -> None:
    widget, _ = panel
    widget.set_request("[[1, 2, 3, 4]]", "application/json")
    widget.send()
    wait_history(qtbot, widget, 1)
    widget.set_request("{bad", "application/json")
    widget.send()
    wait_history(qtbot, widget, 2)
    assert widget.status_label.text() == "400 Bad Request"

    widget.history_list.setCurrentRow(0)  # showing an entry restores its request and answer
    assert widget.editor.toPlainText() == "[[1, 2, 3, 4]]"
    assert widget.status_label.text() == "200 OK"
    widget.resend_selected()
    wait_history(qtbot, widget, 3)
    first, _, third = widget.history()
    assert (third.body, third.target, third.content_type) == (
        first.body,
        first.target,
        first.content_type,
    )
    assert third.result is not None and third.result.status == 200
    item = widget.history_list.item(1)
    widget.history_list.itemDoubleClicked.emit(item)
    wait_history(qtbot, widget, 4)
    assert widget.history()[-1].body == b"{bad"


def test_sagemaker_endpoint_by_name(
    qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher], monkeypatch: pytest.MonkeyPatch
) -> None:
    widget, _ = panel
    seen: list[dict[str, Any]] = []

    class Runtime:
        def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
            seen.append({**kwargs, "thread": threading.current_thread().name})
            return {
                "Body": io.BytesIO(b'{"predictions": [1]}'),
                "ContentType": "application/json",
                "ResponseMetadata": {"HTTPStatusCode": 200},
            }

    made: list[tuple[str, Any]] = []

    def fake_client_for(target: str, launcher: Any = None, **kwargs: Any) -> Any:
        made.append((target, kwargs.get("region")))
        name = target.removeprefix("sagemaker:")
        return SageMakerEndpointClient(name, runtime_client=Runtime())

    monkeypatch.setattr(panel_mod, "client_for", fake_client_for)
    widget.select_sagemaker("prod-endpoint", "eu-west-1")
    assert widget.sagemaker_name.isVisibleTo(widget) and not widget.url_edit.isVisibleTo(widget)
    widget.set_request("[[1, 2, 3, 4]]", "application/json", "application/json")
    widget.send()
    wait_history(qtbot, widget, 1)
    assert made == [("sagemaker:prod-endpoint", "eu-west-1")]
    assert seen[0]["EndpointName"] == "prod-endpoint" and seen[0]["thread"] != "MainThread"
    assert widget.status_label.text() == "200 OK"
    assert json.loads(widget.response_view.toPlainText()) == {"predictions": [1]}

    widget.sagemaker_name.clear()
    assert not widget.send()
    assert "SageMaker endpoint's name" in widget.status_label.text()


def test_serving_a_model_shows_progress_and_log_then_selects_it(
    qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher], tmp_path: Path
) -> None:
    widget, launcher = panel
    with qtbot.waitSignal(widget.sig_endpoint_started, timeout=20_000) as started:
        assert widget.serve_model(tmp_path / "model.tar.gz")
        assert not widget.serve_model(tmp_path / "other.tar.gz")  # one start at a time
    assert started.args[0].name == "beta"
    assert launcher.started == [str(tmp_path / "model.tar.gz")]
    assert "[serving] ready" in widget.log_view.toPlainText()
    assert widget.endpoint_combo.currentText().startswith("beta — ")
    assert not widget.serve_row.isVisibleTo(widget)
    assert widget.serve_button.isEnabled()


def test_dropping_a_model_archive_serves_it(
    qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher], tmp_path: Path
) -> None:
    widget, launcher = panel
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz"):
        pass
    with qtbot.waitSignal(widget.sig_endpoint_started, timeout=20_000):
        drop(widget, mime_for([archive]))
    assert launcher.started == [str(archive)]
    assert widget.history() == []  # served, not sent


def test_stop_the_selected_endpoint(qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher]) -> None:
    widget, launcher = panel
    assert widget.select_endpoint("alpha")
    widget.stop_button.click()
    qtbot.waitUntil(lambda: launcher.stopped == ["alpha"] and not widget.busy, timeout=10_000)
    names = [widget.endpoint_combo.itemText(i) for i in range(widget.endpoint_combo.count())]
    assert not any(n.startswith("alpha") for n in names)
    assert launcher.threads[-1] != "MainThread"


def test_an_unreachable_endpoint_is_an_error_not_a_hang(
    qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher]
) -> None:
    widget, _ = panel
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    widget.select_url(f"http://127.0.0.1:{port}")
    widget.set_request("[[1, 2, 3, 4]]", "application/json")
    widget.send()
    wait_history(qtbot, widget, 1)
    assert widget.status_label.text() == "No answer"
    assert "nothing answers" in widget.response_view.toPlainText()
    assert widget.history()[0].error


def test_without_a_launcher_urls_and_sagemaker_still_work(
    qtbot: QtBot, server: tuple[str, Any]
) -> None:
    widget = PredictPanel(None)
    qtbot.addWidget(widget)
    items = [widget.endpoint_combo.itemText(i) for i in range(widget.endpoint_combo.count())]
    assert items == ["URL…", "SageMaker endpoint…"]
    assert not widget.serve_model("model.tar.gz")
    widget.select_url(server[0])
    widget.set_request("[[1, 2, 3, 4]]", "application/json")
    widget.send()
    wait_history(qtbot, widget, 1)
    assert widget.status_label.text() == "200 OK"
    widget.shutdown()


def test_ctrl_enter_sends(qtbot: QtBot, panel: tuple[PredictPanel, FakeLauncher]) -> None:
    widget, _ = panel
    widget.show()
    widget.set_request("[[1, 2, 3, 4]]", "application/json")
    widget.editor.setFocus()
    qtbot.keyClick(widget.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    wait_history(qtbot, widget, 1)


class BlockingLauncher(FakeLauncher):
    """Lists its endpoints only when the test lets it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.listing = threading.Event()
        self.release = threading.Event()

    def list_endpoints(self) -> list[Endpoint]:
        self.listing.set()
        assert self.release.wait(10)
        return super().list_endpoints()


def test_closing_the_panel_cancels_pending_work(qtbot: QtBot) -> None:
    launcher = BlockingLauncher("http://127.0.0.1:9")
    widget = PredictPanel(launcher)  # type: ignore[arg-type]
    qtbot.addWidget(widget)
    changed: list[Any] = []
    widget.sig_endpoints_changed.connect(changed.append)
    qtbot.waitUntil(launcher.listing.is_set, timeout=5000)
    assert widget.busy
    tasks = list(widget._tasks._callbacks)
    widget.close()
    assert not widget.busy
    launcher.release.set()
    qtbot.waitUntil(lambda: all(task.finished for task in tasks), timeout=5000)
    assert changed == []
    assert widget.endpoints() == []
