"""The Predict panel against a real model server (the serving runtime in a thread, no Docker)
and a stand-in launcher; SageMaker through a stubbed sagemaker-runtime client."""

from __future__ import annotations

import io
import json
import socket
import sys
import tarfile
import threading
import warnings
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


# -- answers people can read: class probabilities as bars ---------------------------------------


class CannedServer:
    """An endpoint that answers what the test sets and notes each request's Content-Type."""

    def __init__(self) -> None:
        import http.server

        self.answer: tuple[bytes, str] = (b"[]", "application/json")
        self.seen: list[tuple[str, bytes]] = []
        canned = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # /ping
                self._reply(b"", "text/plain")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                canned.seen.append(
                    (self.headers.get("Content-Type") or "", self.rfile.read(length))
                )
                self._reply(*canned.answer)

            def _reply(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer_json(self, value: Any) -> None:
        self.answer = (json.dumps(value).encode(), "application/json")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def canned(qtbot: QtBot) -> Iterator[tuple[PredictPanel, CannedServer]]:
    server = CannedServer()
    widget = PredictPanel(None)
    qtbot.addWidget(widget)
    widget.resize(460, 640)
    widget.show()
    qtbot.waitExposed(widget)
    widget.select_url(server.url)
    yield widget, server
    widget.shutdown()
    server.close()


def send_by_click(qtbot: QtBot, widget: PredictPanel, count: int) -> None:
    qtbot.mouseClick(widget.send_button, Qt.MouseButton.LeftButton)
    wait_history(qtbot, widget, count)


def type_request(qtbot: QtBot, widget: PredictPanel, text: str) -> None:
    """What a user does: select all in the editor and type over it."""
    widget.editor.setFocus()
    qtbot.keyClick(widget.editor, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(widget.editor, text)


def test_class_probabilities_show_as_bars_best_first_with_the_model_folders_labels(
    qtbot: QtBot, tmp_path: Path
) -> None:
    """The real runtime on a softmax model whose folder has labels.txt, through a local
    endpoint; a batch of three gets an example picker, and Raw shows the JSON."""
    model_dir = tmp_path / "softmax-model"
    model_dir.mkdir()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=-1))
    with warnings.catch_warnings():  # TorchScript is deprecated in torch >= 2.10
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net), str(model_dir / "model.pt"))
    (model_dir / "labels.txt").write_text("setosa\nversicolor\nvirginica\n")
    with serving_in_thread(model_dir) as (url, _service):
        launcher = FakeLauncher(url)
        launcher.endpoints = [
            Endpoint("iris", url, 0, "id", "image", "runtime", "src", str(model_dir), "me")
        ]
        widget = PredictPanel(launcher)  # type: ignore[arg-type]
        qtbot.addWidget(widget)
        widget.resize(460, 640)
        widget.show()
        qtbot.waitUntil(lambda: widget.endpoints() != [], timeout=10_000)
        type_request(qtbot, widget, json.dumps(ROWS))
        send_by_click(qtbot, widget, 1)
        with torch.no_grad():
            probs = net(torch.tensor(ROWS)).numpy()
        names = ["setosa", "versicolor", "virginica"]
        bars = widget.class_bars
        assert widget.response_stack.currentWidget() is bars
        order = np.argsort(-probs[0], kind="stable")
        assert bars.shown() == [(names[i], f"{probs[0][i]:.1%}") for i in order]
        assert [b.value() for _, b, _ in bars.bars()] == [round(probs[0][i] * 1000) for i in order]
        assert bars.bars()[0][0].font().bold() and not bars.bars()[1][0].font().bold()
        assert "model folder" in bars.source_label.text()
        assert not bars.more_button.isVisible()  # three classes: nothing more to show
        assert bars.example_combo.isVisible() and bars.example_combo.count() == 3
        bars.example_combo.setFocus()
        qtbot.keyClick(bars.example_combo, Qt.Key.Key_Down)
        order = np.argsort(-probs[1], kind="stable")
        assert [name for name, _ in bars.shown()] == [names[i] for i in order]

        qtbot.mouseClick(widget.raw_button, Qt.MouseButton.LeftButton)
        assert widget.response_stack.currentWidget() is widget.response_view
        assert np.allclose(json.loads(widget.response_view.toPlainText()), probs, atol=1e-6)
        qtbot.mouseClick(widget.raw_button, Qt.MouseButton.LeftButton)
        assert widget.response_stack.currentWidget() is bars
        widget.shutdown()


def test_top_five_then_show_all_and_names_from_the_answer(
    qtbot: QtBot, canned: tuple[PredictPanel, CannedServer]
) -> None:
    widget, server = canned
    probs = [0.02, 0.3, 0.05, 0.01, 0.4, 0.12, 0.07, 0.03]
    names = [f"digit-{i}" for i in range(8)]
    server.answer_json({"probabilities": [probs], "labels": names})
    type_request(qtbot, widget, "[[1, 2]]")
    send_by_click(qtbot, widget, 1)
    bars = widget.class_bars
    ranked = sorted(zip(names, probs, strict=True), key=lambda t: -t[1])
    assert bars.shown() == [(n, f"{p:.1%}") for n, p in ranked[:5]]
    assert bars.more_button.isVisible() and bars.more_button.text() == "Show all 8"
    assert not bars.example_combo.isVisible()  # one example
    qtbot.mouseClick(bars.more_button, Qt.MouseButton.LeftButton)
    assert [n for n, _ in bars.shown()] == [n for n, _ in ranked]
    qtbot.mouseClick(bars.more_button, Qt.MouseButton.LeftButton)
    assert len(bars.shown()) == 5


def test_logits_and_other_answers_stay_raw(
    qtbot: QtBot, canned: tuple[PredictPanel, CannedServer]
) -> None:
    widget, server = canned
    server.answer_json({"cat": 0.9, "dog": 0.1})
    type_request(qtbot, widget, "[1]")
    send_by_click(qtbot, widget, 1)
    assert widget.response_stack.currentWidget() is widget.class_bars
    assert widget.class_bars.shown()[0] == ("cat", "90.0%")
    server.answer_json([[2.3, -1.1, 0.4]])  # logits: not probabilities
    send_by_click(qtbot, widget, 2)
    assert widget.response_stack.currentWidget() is widget.response_view
    assert not widget.raw_button.isVisible()
    assert json.loads(widget.response_view.toPlainText()) == [[2.3, -1.1, 0.4]]
    widget.history_list.setCurrentRow(0)  # an earlier answer shows as it was read
    assert widget.response_stack.currentWidget() is widget.class_bars


# -- the request's Content-Type follows what is sent ----------------------------------------------


def test_typed_json_after_a_dropped_csv_file_goes_as_json(
    qtbot: QtBot, canned: tuple[PredictPanel, CannedServer], tmp_path: Path
) -> None:
    widget, server = canned
    path = tmp_path / "rows.csv"
    path.write_text("1,2,3,4\n")
    drop(widget, mime_for([path]))
    wait_history(qtbot, widget, 1)
    assert server.seen[-1][0] == "text/csv"
    assert widget.content_type_combo.currentText() == "text/csv"
    type_request(qtbot, widget, "[[1, 2, 3, 4]]")  # the user types over the file's text
    assert widget.content_type_combo.currentText() == "application/json"
    send_by_click(qtbot, widget, 2)
    assert server.seen[-1] == ("application/json", b"[[1, 2, 3, 4]]")
    type_request(qtbot, widget, "5,6,7,8")
    send_by_click(qtbot, widget, 3)
    assert server.seen[-1] == ("text/csv", b"5,6,7,8")


def test_a_binary_files_type_is_for_that_file_only(
    qtbot: QtBot, canned: tuple[PredictPanel, CannedServer], tmp_path: Path
) -> None:
    widget, server = canned
    path = tmp_path / "rows.npy"
    np.save(path, np.array(ROWS, dtype=np.float32))
    drop(widget, mime_for([path]))
    wait_history(qtbot, widget, 1)
    assert server.seen[-1][0] == "application/x-npy"
    send_by_click(qtbot, widget, 2)  # the payload again, with its own type
    assert server.seen[-1][0] == "application/x-npy"
    qtbot.mouseClick(widget.clear_button, Qt.MouseButton.LeftButton)
    type_request(qtbot, widget, '{"instances": [[1, 2, 3, 4]]}')
    send_by_click(qtbot, widget, 3)
    assert server.seen[-1][0] == "application/json"


def test_a_type_picked_by_hand_sticks_until_auto(
    qtbot: QtBot, canned: tuple[PredictPanel, CannedServer]
) -> None:
    widget, server = canned
    assert not widget.type_auto_button.isVisible()
    line = widget.content_type_combo.lineEdit()
    assert line is not None
    line.selectAll()
    qtbot.keyClicks(line, "text/plain")  # the user types a type
    assert widget.type_auto_button.isVisible()
    type_request(qtbot, widget, "[[1, 2, 3, 4]]")
    assert widget.content_type_combo.currentText() == "text/plain"
    send_by_click(qtbot, widget, 1)
    assert server.seen[-1][0] == "text/plain"
    qtbot.mouseClick(widget.type_auto_button, Qt.MouseButton.LeftButton)
    assert not widget.type_auto_button.isVisible()
    assert widget.content_type_combo.currentText() == "application/json"
    send_by_click(qtbot, widget, 2)
    assert server.seen[-1][0] == "application/json"
    widget.history_list.setCurrentRow(0)  # restoring a request restores its picked type
    assert widget.content_type_combo.currentText() == "text/plain"
    assert widget.type_auto_button.isVisible()
