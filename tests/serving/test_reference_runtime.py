"""The serving runtime against the real SageMaker toolkits (sagemaker-inference 1.10,
sagemaker-pytorch-inference 2.0), request by request.

The reference side runs the toolkit's own `Transformer` with the PyTorch default handler, given
a TorchServe-style context (ours: the toolkit only uses TorchServe's context API), and then
TorchServe's rule for writing a handler's result (`ts/protocol/otf_message_handler.py`
`create_predict_response`: bytes as they are, str as UTF-8, a torch.Tensor as `torch.save` bytes,
anything else `json.dumps(value, indent=2)`, a TypeError there is a 503). The runtime side is
`ModelService.handle`, what the HTTP server sends.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import post, serving_in_thread

from trainer_gui.core.serving import runtime
from trainer_gui.core.serving.runtime import Context, ModelService, RequestProcessor

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
transformer_mod = pytest.importorskip("sagemaker_inference.transformer")
ts_handler = pytest.importorskip(
    "sagemaker_pytorch_serving_container.default_pytorch_inference_handler"
)
from sagemaker_inference import decoder as toolkit_decoder  # noqa: E402
from sagemaker_inference import errors as toolkit_errors  # noqa: E402

CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"


class Endpoint:
    """One model folder served both ways: the toolkit (reference) and our runtime."""

    def __init__(self, model_dir: Path, program: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.model_dir = model_dir
        monkeypatch.setenv("SAGEMAKER_PROGRAM", program)
        monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
        monkeypatch.syspath_prepend(str(model_dir / "code"))
        self.transformer = transformer_mod.Transformer(
            default_inference_handler=ts_handler.DefaultPytorchInferenceHandler()
        )
        self.context = Context(str(model_dir), {})
        self.service = ModelService(model_dir=str(model_dir), program=program)
        self.service.load()

    def reference(
        self, body: bytes, content_type: str, accept: str | None, headers: dict[str, str]
    ) -> tuple[int, bytes, str | None]:
        request = {"Content-Type": content_type, **headers}
        if accept is not None:
            request["Accept"] = accept
        self.context.request_processor = [RequestProcessor(request)]
        ret = self.transformer.transform([{"body": body}], self.context)
        status, _ = self.context.get_response_status(0)
        label = self.context.get_response_content_type(0)
        value = ret[0]
        if isinstance(value, (bytes, bytearray)):
            return status, bytes(value), label
        if isinstance(value, str):
            return status, value.encode("utf-8"), label
        if isinstance(value, torch.Tensor):
            buffer = io.BytesIO()
            torch.save(value, buffer)
            return status, buffer.getvalue(), label
        try:
            return status, json.dumps(value, indent=2).encode("utf-8"), label
        except TypeError:
            return 503, b"Unsupported model output data type.", None

    def ours(
        self, body: bytes, content_type: str, accept: str | None, headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        request = {"Content-Type": content_type, **headers}
        if accept is not None:
            request["Accept"] = accept
        reply = self.service.handle(body, content_type, accept, request)
        return reply.status, reply.body, reply.content_type

    def both(
        self,
        body: bytes | str,
        content_type: str = "application/json",
        accept: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[tuple[int, bytes, str | None], tuple[int, bytes, str]]:
        data = body.encode() if isinstance(body, str) else body
        return (
            self.reference(data, content_type, accept, headers or {}),
            self.ours(data, content_type, accept, headers or {}),
        )


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """serve(source) -> Endpoint: `source` as code/<unique>.py (no stale module between tests)."""
    names: list[str] = []

    def make(source: str) -> Endpoint:
        name = f"handlers_{uuid.uuid4().hex[:10]}"
        names.append(name)
        code = tmp_path / "model" / "code"
        code.mkdir(parents=True, exist_ok=True)
        (code / f"{name}.py").write_text(textwrap.dedent(source))
        return Endpoint(tmp_path / "model", f"{name}.py", monkeypatch)

    yield make
    for name in names:
        sys.modules.pop(name, None)


IDENTITY = """
    import torch

    def model_fn(model_dir):
        return torch.nn.Identity()
"""


# -- the handler context -----------------------------------------------------------------------


def test_handlers_read_custom_attributes_with_torchserves_context_api(serve: Any) -> None:
    endpoint = serve(
        """
        def model_fn(model_dir, context):
            return context.system_properties["model_dir"]

        def transform_fn(model, data, content_type, accept, context):
            attrs = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
            every = context.get_all_request_header(0)
            props = context.request_processor[0].get_request_properties()
            context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", "seen=" + attrs)
            return {"attrs": attrs, "n": len(every), "same": every == props, "dir": model}
        """
    )
    reference, ours = endpoint.both("[1]", headers={CUSTOM: "trace=42"})
    assert reference[0] == 200, reference
    assert ours == reference
    assert json.loads(ours[1])["attrs"] == "trace=42"
    reply = endpoint.service.handle(b"[1]", "application/json", None, {CUSTOM: "a=b"})
    assert dict(reply.headers) == {CUSTOM: "seen=a=b"}


def test_custom_attributes_reach_the_handler_over_http(serve: Any) -> None:
    endpoint = serve(
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept, context):
            return context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes") or "none"
        """
    )
    with serving_in_thread(endpoint.model_dir, program=endpoint.service.program) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/invocations", b"x", {"Content-Type": "text/csv", CUSTOM: "k=v"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"k=v")
        conn.close()


# -- default decoding and output ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("1,,3,4", "text/csv"),
        ("1,2,3,4", "text/csv"),
        ("1,2\n3,4\n", "text/csv"),
        ("0.5,1.5\n2.5,-3.5", "text/csv"),
        ("[[1, 2], [3, 4.5]]", "application/json"),
        ("[7]", "application/json"),
    ],
)
def test_default_input_and_output_fn_answer_as_the_toolkit(
    serve: Any, body: str, content_type: str
) -> None:
    endpoint = serve(IDENTITY)
    for accept in ("application/json", "text/csv", None, "*/*"):
        reference, ours = endpoint.both(body, content_type, accept)
        assert reference[0] == 200, reference
        assert ours == reference, (accept, ours, reference)


def test_default_output_fn_npy_answer_matches(serve: Any) -> None:
    endpoint = serve(IDENTITY)
    reference, ours = endpoint.both("[[1, 2], [3, 4]]", accept="application/x-npy")
    assert ours == reference
    assert np.load(io.BytesIO(ours[1])).tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    "result",
    [
        "np.array([1.5, 2.5])",
        "torch.tensor([[1.0, 2.0]])",
        "{'a': 1, 'b': [1, 2]}",
        "[1, 2.5, None]",
        "'plain text'",
        "b'raw bytes'",
        "(b'1,2', 'text/csv')",
        "None",
        "np.float32(1.5)",
    ],
)
def test_output_fn_results_are_written_as_torchserve_writes_them(serve: Any, result: str) -> None:
    endpoint = serve(
        f"""
        import numpy as np
        import torch

        def model_fn(model_dir):
            return None

        def input_fn(data, content_type):
            return data

        def predict_fn(data, model):
            return data

        def output_fn(prediction, accept):
            return {result}
        """
    )
    reference, ours = endpoint.both("[1]", accept="application/json")
    assert ours[0] == reference[0]
    if reference[0] == 503:
        assert "Unsupported model output data type" in ours[1].decode()
        return
    assert ours[2] == reference[2]
    if result.startswith("torch."):  # torch.save bytes: equal tensors
        loaded = torch.load(io.BytesIO(ours[1]))
        assert torch.equal(loaded, torch.load(io.BytesIO(reference[1])))
    else:
        assert ours[1] == reference[1]


def test_a_user_output_fn_answer_is_labelled_with_the_accept_it_was_given(serve: Any) -> None:
    """The toolkit labels a plain result with the request's Accept; the label never names a type
    the body is not (it was application/json for this CSV body)."""
    endpoint = serve(
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            first = accept.replace(" ", "").split(",")[0].split(";")[0]
            return "1,2\\n" if first == "text/csv" else "[1, 2]"
        """
    )
    accept = "text/csv;q=0.5, application/json"
    reference, ours = endpoint.both("[1]", accept=accept)
    assert ours == reference
    assert ours[1] == b"1,2\n" and not ours[2].startswith("application/json")


def test_the_default_output_fn_labels_its_answer_with_the_type_it_wrote(serve: Any) -> None:
    endpoint = serve(IDENTITY)
    reference, ours = endpoint.both("[1, 2]", accept="text/csv;q=0.5, application/json")
    assert ours[1] == reference[1] == b"[1.0, 2.0]"
    # The toolkit labels it with the whole Accept; ours names what the body is.
    assert reference[2] == "text/csv;q=0.5, application/json"
    assert ours[2] == "application/json"


# -- errors and limits --------------------------------------------------------------------------


def test_only_the_toolkits_error_class_sets_the_status(serve: Any) -> None:
    endpoint = serve(
        """
        from sagemaker_inference import errors

        class Own(Exception):
            status_code = 422

        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            if data == "teapot":
                raise errors.GenericInferenceToolkitError(418, "short and stout")
            raise Own("mine")
        """
    )
    reference, ours = endpoint.both("teapot", "text/csv")
    assert ours[0] == reference[0] == 418
    assert "short and stout" in ours[1].decode()
    reference, ours = endpoint.both("other", "text/csv")
    assert ours[0] == reference[0] == 500


def test_the_toolkits_error_module_is_importable_without_the_toolkit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    for name in [n for n in sys.modules if n.split(".")[0] == "sagemaker_inference"]:
        monkeypatch.delitem(sys.modules, name)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sagemaker_inference" else real(name, *a),
    )
    assert runtime.install_toolkit_modules()
    from sagemaker_inference import content_types, decoder, errors  # the stand-in

    error = errors.GenericInferenceToolkitError(404, "no such item")
    assert runtime.toolkit_status(error) == 404 and error.phrase == "no such item"
    assert runtime.toolkit_status(errors.UnsupportedFormatError("x/y")) == 500
    assert errors.GenericInferenceToolkitError is not toolkit_errors.GenericInferenceToolkitError
    for body in ("1,,3,4", "1,2\n3,4", "0.5,x"):
        ours = decoder.decode(body, content_types.CSV)
        assert ours.tolist() == toolkit_decoder.decode(body, "text/csv").tolist()


def test_a_response_over_6_mb_is_refused_as_sagemaker_refuses_it(serve: Any) -> None:
    endpoint = serve(
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            return b"x" * int(data)
        """
    )
    limit = 6 * 1024 * 1024
    assert endpoint.ours(str(limit).encode(), "text/csv", None, {})[0] == 200
    status, body, _ = endpoint.ours(str(limit + 1).encode(), "text/csv", None, {})
    assert status == 500 and "more than the 6 MB" in body.decode()


def test_a_chunked_request_body_is_read(serve: Any) -> None:
    endpoint = serve(IDENTITY)
    with serving_in_thread(endpoint.model_dir, program=endpoint.service.program) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        chunks = iter([b"[[1, 2", b"], [3, ", b"4]]"])
        conn.request(
            "POST",
            "/invocations",
            body=chunks,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read()) == [[1.0, 2.0], [3.0, 4.0]]
        conn.close()
        # A plain request on a fresh connection answers the same.
        assert post(url, "[[1, 2], [3, 4]]", "application/json")[1] == b"[[1.0, 2.0], [3.0, 4.0]]"


def test_a_chunked_body_over_the_payload_limit_is_refused(serve: Any) -> None:
    endpoint = serve(IDENTITY)
    with serving_in_thread(
        endpoint.model_dir, program=endpoint.service.program, max_payload_bytes=1024
    ) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        # The server may answer and close before the last chunk goes: that is allowed.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request(
                "POST",
                "/invocations",
                body=iter([b"[" + b"1," * 600, b"1]"]),
                headers={"Content-Type": "application/json"},
                encode_chunked=True,
            )
        response = conn.getresponse()
        assert response.status == 413 and b"MB limit" in response.read()
        conn.close()
