"""`serve` with a SageMaker inference image: TorchServe answers /ping before (and without) a
loaded model, so the launcher asks TorchServe's describe-model API (`GET /models/model`, on the
inference port in SageMaker's `default-ts.properties`: `enable_model_api=true`, management
address = SAGEMAKER_BIND_TO_PORT). A stand-in TorchServe answers here, as TorchServe does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from trainer_gui.core.serving.launcher import (
    MODE_RUNTIME,
    MODE_SAGEMAKER,
    Endpoint,
    EndpointError,
    EndpointLauncher,
    _Live,
)


class FakeTorchServe:
    """/ping: 200 always (as TorchServe's); /models/model: the workers as `statuses` say."""

    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.describes = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/ping":
                    body = json.dumps({"status": "Healthy"}).encode()
                elif self.path == "/models/model":
                    fake.describes += 1
                    workers = [
                        {"id": str(9000 + i), "status": s, "pid": 100 + i, "gpu": False}
                        for i, s in enumerate(fake.statuses)
                    ]
                    body = json.dumps([{"modelName": "model", "workers": workers}]).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def torchserve() -> Iterator[FakeTorchServe]:
    fake = FakeTorchServe()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join(5)


def endpoint(url: str, mode: str = MODE_SAGEMAKER) -> Endpoint:
    port = int(url.rsplit(":", 1)[1])
    return Endpoint("e", url, port, "cid", "image", mode, "model", "/m", "me")


def wait_ready(ep: Endpoint, live: _Live, timeout: float = 10) -> float:
    started = time.monotonic()
    EndpointLauncher()._wait_ready(ep, live, started, timeout, lambda *_: None, None)
    return time.monotonic() - started


def test_sagemaker_images_are_ready_once_a_torchserve_worker_has_the_model(
    torchserve: FakeTorchServe,
) -> None:
    torchserve.statuses = ["LOADING"]
    timer = threading.Timer(0.6, lambda: setattr(torchserve, "statuses", ["LOADING", "READY"]))
    timer.start()
    try:
        elapsed = wait_ready(endpoint(torchserve.url), _Live(endpoint(torchserve.url)))
    finally:
        timer.cancel()
    assert elapsed >= 0.5 and torchserve.describes >= 2


def test_a_model_that_fails_to_load_in_torchserve_fails_the_start(
    torchserve: FakeTorchServe,
) -> None:
    torchserve.statuses = ["LOADING"]
    ep = endpoint(torchserve.url)
    live = _Live(ep)
    live.tail.extend(
        [
            "2026-12-03T23:50:01,123 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - ValueError: "
            "Exactly one .pth or .pt file is required for PyTorch models: []",
            "2026-12-03T23:50:01,200 [INFO ] W-9000-model_1.0 org.pytorch.serve.wlm.WorkerThread"
            " - Backend worker process died.",
        ]
    )
    with pytest.raises(EndpointError, match="failed to load in TorchServe") as info:
        wait_ready(ep, live)
    assert "Exactly one .pth" in str(info.value)


def test_a_model_still_loading_at_the_deadline_says_so(torchserve: FakeTorchServe) -> None:
    torchserve.statuses = []
    ep = endpoint(torchserve.url)
    with pytest.raises(EndpointError, match="no TorchServe worker has the model loaded"):
        wait_ready(ep, _Live(ep), timeout=0.5)


def test_the_runtime_mode_trusts_ping(torchserve: FakeTorchServe) -> None:
    """Our runtime answers /ping 200 only once the model is loaded: nothing more to ask."""
    torchserve.statuses = []
    ep = endpoint(torchserve.url, MODE_RUNTIME)
    wait_ready(ep, _Live(ep))
    assert torchserve.describes == 0
