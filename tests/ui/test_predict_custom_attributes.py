"""The Predict panel's "Custom attributes" field: typed in, sent as
X-Amzn-SageMaker-Custom-Attributes (a local endpoint) or CustomAttributes (SageMaker), read by a
handler with TorchServe's context API, restored with a history entry."""

from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_helpers import serving_in_thread

from trainer_gui.core.serving.client import SageMakerEndpointClient
from trainer_gui.ui import predict_panel as panel_mod
from trainer_gui.ui.predict_panel import PredictPanel

pytest.importorskip("torch")

ECHO = """
    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept, context):
        attrs = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
        return f"attributes={attrs}", "text/plain"
"""


@pytest.fixture
def echo_url(tmp_path: Path) -> Iterator[str]:
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "echo_panel_attrs.py").write_text(textwrap.dedent(ECHO))
    with serving_in_thread(tmp_path / "model", program="echo_panel_attrs.py") as (url, service):
        assert service.state == "ready", service.error
        yield url
    sys.modules.pop("echo_panel_attrs", None)


@pytest.fixture
def widget(qtbot: QtBot) -> Iterator[PredictPanel]:
    panel = PredictPanel(None)
    qtbot.addWidget(panel)
    panel.show()
    yield panel
    panel.shutdown()


def send_by_clicking(qtbot: QtBot, widget: PredictPanel, count: int) -> None:
    qtbot.mouseClick(widget.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(widget.history()) == count and not widget.busy, timeout=20_000)


def test_typed_custom_attributes_reach_the_handler(
    qtbot: QtBot, widget: PredictPanel, echo_url: str
) -> None:
    widget.select_url(echo_url)
    widget.set_request("1,2,3,4", "text/csv")
    qtbot.keyClicks(widget.attributes_edit, "trace=42")
    send_by_clicking(qtbot, widget, 1)
    assert widget.response_view.toPlainText().strip() == "attributes=trace=42"

    widget.attributes_edit.clear()
    send_by_clicking(qtbot, widget, 2)
    assert widget.response_view.toPlainText().strip() == "attributes=None"

    widget.history_list.setCurrentRow(0)  # an old request comes back with its attributes
    assert widget.attributes_edit.text() == "trace=42"


def test_custom_attributes_go_to_sagemaker_as_custom_attributes(
    qtbot: QtBot, widget: PredictPanel, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    class Runtime:
        def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
            seen.append(kwargs)
            return {
                "Body": io.BytesIO(b"[1]"),
                "ContentType": "application/json",
                "ResponseMetadata": {"HTTPStatusCode": 200},
            }

    monkeypatch.setattr(
        panel_mod,
        "client_for",
        lambda target, launcher=None, **_: SageMakerEndpointClient(
            target.removeprefix("sagemaker:"), runtime_client=Runtime()
        ),
    )
    widget.select_sagemaker("prod", "eu-west-1")
    widget.set_request("[[1, 2, 3, 4]]", "application/json")
    qtbot.keyClicks(widget.attributes_edit, "user=a")
    send_by_clicking(qtbot, widget, 1)
    assert seen[0]["CustomAttributes"] == "user=a"


def test_custom_attributes_sagemaker_would_refuse_are_not_sent(
    qtbot: QtBot, widget: PredictPanel, echo_url: str
) -> None:
    widget.select_url(echo_url)
    widget.set_request("1,2", "text/csv")
    widget.attributes_edit.setText("naïve")  # pasted: typing non-ASCII aborts QTest offscreen
    qtbot.mouseClick(widget.send_button, Qt.MouseButton.LeftButton)
    assert "visible US-ASCII" in widget.status_label.text()
    assert widget.history() == []
