"""The endpoint clients: local HTTP with keep-alive, SageMaker InvokeEndpoint (stubbed), display."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import ROWS, serving_in_thread

from trainer_gui.core.serving.client import (
    EndpointUnreachable,
    LocalEndpointClient,
    SageMakerEndpointClient,
    client_for,
    content_type_for,
    format_body,
)

np = pytest.importorskip("numpy")


def test_local_client_reuses_one_connection(script_model: Path) -> None:
    with serving_in_thread(script_model) as (url, _):
        client = LocalEndpointClient(url)
        results = [client.invoke(json.dumps(ROWS), "application/json") for _ in range(20)]
        assert all(r.ok and r.content_type == "application/json" for r in results)
        assert all(r.latency_ms > 0 and r.target == url for r in results)
        assert len(client._all) == 1  # one keep-alive connection for the thread
        assert client.ping() == 200
        bad = client.invoke(b"{", "application/json")
        assert bad.status == 400 and "not valid JSON" in bad.text
        client.close()


def test_local_client_reconnects_after_the_server_closed_it(script_model: Path) -> None:
    with serving_in_thread(script_model) as (url, _):
        client = LocalEndpointClient(url)
        assert client.invoke("[[1,2,3,4]]", "application/json").ok
        # The server drops idle connections (its timeout); simulate that.
        conn = client._local.conn
        conn.sock.shutdown(socket.SHUT_RDWR)
        assert client.invoke("[[1,2,3,4]]", "application/json").ok
        client.close()


def test_local_client_says_when_nothing_answers() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = LocalEndpointClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(EndpointUnreachable, match="nothing answers"):
        client.invoke(b"[]", "application/json")


class FakeRuntime:
    """A stand-in for boto3's sagemaker-runtime client."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return {
            "Body": io.BytesIO(b'{"predictions": [[1.0]]}'),
            "ContentType": "application/json",
            "ResponseMetadata": {
                "HTTPStatusCode": 200,
                "HTTPHeaders": {"x-amzn-invoked-production-variant": "AllTraffic"},
            },
        }


def test_sagemaker_client_calls_invoke_endpoint() -> None:
    fake = FakeRuntime()
    client = SageMakerEndpointClient("my-endpoint", runtime_client=fake)
    result = client.invoke("[[1, 2]]", "application/json", "application/json", "k=v")
    assert fake.calls == [
        {
            "EndpointName": "my-endpoint",
            "Body": b"[[1, 2]]",
            "ContentType": "application/json",
            "Accept": "application/json",
            "CustomAttributes": "k=v",
        }
    ]
    assert result.ok and result.target == "sagemaker:my-endpoint"
    assert json.loads(result.body) == {"predictions": [[1.0]]}


def test_sagemaker_model_errors_keep_the_container_status() -> None:
    from botocore.exceptions import ClientError

    error = ClientError(
        {
            "Error": {"Code": "ModelError", "Message": "Received client error (415)"},
            "OriginalStatusCode": 415,
            "OriginalMessage": "unsupported content type 'text/plain'",
            "ResponseMetadata": {"HTTPStatusCode": 424},
        },
        "InvokeEndpoint",
    )
    result = SageMakerEndpointClient("e", runtime_client=FakeRuntime(error)).invoke(
        b"x", "text/plain"
    )
    assert result.status == 415 and "unsupported content type" in result.text

    missing = ClientError(
        {
            "Error": {"Code": "ValidationError", "Message": "Endpoint e not found."},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "InvokeEndpoint",
    )
    result = SageMakerEndpointClient("e", runtime_client=FakeRuntime(missing)).invoke(b"x")
    assert result.status == 400 and result.text == "ValidationError: Endpoint e not found."


def test_sagemaker_without_credentials_is_a_clear_error() -> None:
    from botocore.exceptions import NoCredentialsError

    client = SageMakerEndpointClient("e", runtime_client=FakeRuntime(NoCredentialsError()))
    with pytest.raises(EndpointUnreachable, match="configure AWS credentials"):
        client.invoke(b"x")


def test_sagemaker_endpoints_use_the_aws_settings_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trainer_gui.core.aws.defaults import AwsDefaults, save_aws_defaults

    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    save_aws_defaults(AwsDefaults(region="eu-west-1"))
    assert SageMakerEndpointClient("e")._runtime().meta.region_name == "eu-west-1"
    told = SageMakerEndpointClient("e", region="ap-southeast-2")._runtime()
    assert told.meta.region_name == "ap-southeast-2"


def test_client_for_targets() -> None:
    assert isinstance(client_for("sagemaker:abc"), SageMakerEndpointClient)
    local = client_for("http://127.0.0.1:1234")
    assert isinstance(local, LocalEndpointClient) and local.url == "http://127.0.0.1:1234"
    assert isinstance(client_for("127.0.0.1:99"), LocalEndpointClient)


def test_content_types_for_files() -> None:
    assert content_type_for("rows.json") == "application/json"
    assert content_type_for("rows.CSV") == "text/csv"
    assert content_type_for("a.npy") == "application/x-npy"
    assert content_type_for("cat.jpg") == "image/jpeg"
    assert content_type_for("x.png") == "image/png"
    assert content_type_for("blob.bin") == "application/octet-stream"


def test_format_body() -> None:
    assert format_body(b'{"a":[1,2]}', "application/json") == '{\n  "a": [1, 2]\n}'
    nested = format_body(b'{"p": [[0.1, -2e-05], [1, 2]], "s": ["a,b", "c"]}', "application/json")
    assert (
        nested
        == '{\n  "p": [\n    [0.1, -2e-05],\n    [1, 2]\n  ],\n  "s": [\n    "a,b",\n    "c"\n  ]\n}'
    )
    assert format_body(b"1,2\n3,4\n", "text/csv") == "1,2\n3,4\n"
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(2, 3))
    text = format_body(buf.getvalue(), "application/x-npy")
    assert text.startswith("array shape (2, 3), dtype float32") and "[[0. 1. 2.]" in text
    binary = format_body(bytes(range(256)), "image/png")
    assert binary.startswith("<256 bytes of image/png>")
    assert format_body(b"{bad", "application/json") == "{bad"
    assert format_body(b"x" * 50, "text/plain", limit=10).startswith("xxxxxxxxxx\n… (40 more")
