"""`trainer-gui predict --custom-attributes`: the value reaches the handler as SageMaker's
X-Amzn-SageMaker-Custom-Attributes header (InvokeEndpoint's CustomAttributes)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_helpers import serving_in_thread

from trainer_gui.cli.main import main

pytest.importorskip("torch")

ECHO = """
    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept, context):
        attrs = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
        return f"attributes={attrs}", "text/plain"
"""


@pytest.fixture
def echo_model(tmp_path: Path) -> Iterator[Path]:
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "echo_attrs.py").write_text(textwrap.dedent(ECHO))
    yield tmp_path / "model"
    sys.modules.pop("echo_attrs", None)


def test_predict_sends_custom_attributes(
    echo_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("1,2\n")
    with serving_in_thread(echo_model, program="echo_attrs.py") as (url, service):
        assert service.state == "ready", service.error
        code = main(["predict", url, "--data", str(data), "--custom-attributes", "trace=7"])
        assert code == 0
        assert capsys.readouterr().out.strip() == "attributes=trace=7"
        assert main(["predict", url, "--data", str(data)]) == 0
        assert capsys.readouterr().out.strip() == "attributes=None"


def test_predict_refuses_custom_attributes_sagemaker_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("1,2\n")
    code = main(
        ["predict", "http://127.0.0.1:9", "--data", str(data), "--custom-attributes", "x" * 1025]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "at most 1024" in err and "Traceback" not in err
