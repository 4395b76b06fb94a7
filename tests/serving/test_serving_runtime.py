"""The serving runtime in-process: its HTTP server on 127.0.0.1 in a thread, real models."""

from __future__ import annotations

import ast
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import (
    ROWS,
    in_process,
    json_rows,
    load_handlers,
    post,
    serving_in_thread,
)

from trainer_gui.core.serving import runtime
from trainer_gui.core.serving.runtime import ModelService, parse_accept

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

RUNTIME = Path(runtime.__file__)


def npy(array: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def get(url: str, path: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def write_code(model_dir: Path, source: str, name: str = "inference.py") -> Path:
    code = model_dir / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / name).write_text(textwrap.dedent(source))
    return model_dir


@pytest.fixture
def fresh_modules() -> Any:
    """User modules are imported by name: forget them around each test."""
    path = list(sys.path)
    for name in ("inference", "model_def"):
        sys.modules.pop(name, None)
    yield
    for name in ("inference", "model_def"):
        sys.modules.pop(name, None)
    sys.path[:] = path


# -- the standard library only ----------------------------------------------------------------


def test_runtime_imports_only_the_standard_library() -> None:
    tree = ast.parse(RUNTIME.read_text(encoding="utf-8"))
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    top_level: list[str] = []
    everywhere: list[str] = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        everywhere += names
        if node in tree.body:
            top_level += names
    assert [n for n in top_level if n.split(".")[0] not in stdlib] == []
    # Lazily, only numpy and torch (the image has them); never the app itself.
    lazy = {n.split(".")[0] for n in everywhere} - stdlib
    assert lazy <= {"numpy", "torch"}


def test_runtime_runs_as_a_script_outside_the_app(script_model: Path, tmp_path: Path) -> None:
    """`python runtime.py` with only a model folder: ready, serves, and exits 0 on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SAGEMAKER_BIND_TO_PORT"] = "0"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-I",
            str(RUNTIME),
            "--model-dir",
            str(script_model),
            "--host",
            "127.0.0.1",
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        port = None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if match := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
                port = int(match.group(1))
            if "ready:" in line or not line:
                break
        assert port and "ready:" in lines[-1], "".join(lines)
        status, body, _ = post(f"http://127.0.0.1:{port}", json.dumps(ROWS), "application/json")
        assert status == 200 and len(json.loads(body)) == 3
        proc.terminate()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_runtime_script_exits_1_when_the_model_cannot_load(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            str(RUNTIME),
            "--model-dir",
            str(tmp_path / "model"),
            "--port",
            "0",
            "--host",
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "Exactly one .pth or .pt file is required" in proc.stderr


# -- the example project's handlers -----------------------------------------------------------


@pytest.fixture(scope="module")
def quickstart(quickstart_model: Path) -> Any:
    """The server on the quickstart model, and its handlers loaded here for comparison."""
    with serving_in_thread(quickstart_model) as (url, service):
        assert service.state == "ready", service.error
        handlers = load_handlers(quickstart_model / "code", "quickstart_reference")
        model = handlers.model_fn(str(quickstart_model))
        yield url, handlers, model
    sys.modules.pop("inference", None)
    sys.modules.pop("model_def", None)


def test_quickstart_json_csv_npy_give_the_handlers_answers(quickstart: Any) -> None:
    url, handlers, model = quickstart
    expected = json_rows(in_process(handlers, model, json.dumps(ROWS), "application/json", "*/*"))

    status, body, ctype = post(url, json.dumps(ROWS), "application/json")
    assert (status, ctype) == (200, "application/json")
    assert json_rows(body) == expected  # same code, same numbers: exactly equal

    status, body, _ = post(url, json.dumps({"instances": ROWS}), "application/json; charset=utf-8")
    assert status == 200 and np.allclose(json_rows(body), expected)

    csv_body = "x1,x2,x3,x4\n" + "\n".join(",".join(map(str, r)) for r in ROWS) + "\n"
    status, body, ctype = post(url, csv_body, "text/csv", "text/csv")
    assert (status, ctype) == (200, "text/csv")
    got = [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]
    assert np.allclose(got, expected, atol=1e-6)

    status, body, ctype = post(url, npy(np.array(ROWS)), "application/x-npy", "application/x-npy")
    assert (status, ctype) == (200, "application/x-npy")
    assert np.allclose(np.load(io.BytesIO(body)), expected, atol=1e-6)


def test_quickstart_user_input_fn_errors_are_500_with_its_message(quickstart: Any) -> None:
    url, _, _ = quickstart
    status, body, ctype = post(url, b"{not json", "application/json")
    assert status == 500 and ctype.startswith("text/plain")
    text = body.decode()
    assert text.startswith("ValueError: application/json: body is not valid JSON")
    # The type and message only: the traceback (file names, lines, code) stays in the log.
    assert "Traceback" not in text and "inference.py" not in text
    assert "TRAINER_GUI_SERVING_DEBUG" in text

    status, body, _ = post(url, "[[1, 2, 3]]", "application/json")
    assert status == 500 and "expected rows of 4 features" in body.decode()


def test_several_requests_at_once_on_keep_alive_connections(quickstart: Any) -> None:
    url, handlers, model = quickstart
    host, port = url.removeprefix("http://").split(":")
    expected = json_rows(in_process(handlers, model, json.dumps(ROWS[:1]), "application/json", ""))
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            for _ in range(20):
                conn.request(
                    "POST",
                    "/invocations",
                    body=json.dumps(ROWS[:1]),
                    headers={"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                data = response.read()
                if response.status != 200 or json_rows(data) != expected:
                    errors.append(f"{response.status} {data[:100]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


# -- the default handlers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def defaults(script_model: Path) -> Any:
    with serving_in_thread(script_model) as (url, service):
        assert service.state == "ready", service.error
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(script_model / "model.pt"))
        yield url, model


def expected_of(model: Any, rows: Any) -> Any:
    with torch.no_grad():
        return model(torch.tensor(rows, dtype=torch.float32)).numpy()


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"],
)
def test_defaults_decode_json_with_or_without_parameters(defaults: Any, content_type: str) -> None:
    url, model = defaults
    status, body, ctype = post(url, json.dumps(ROWS), content_type)
    assert (status, ctype) == (200, "application/json")
    assert np.allclose(json.loads(body), expected_of(model, ROWS), atol=1e-6)


def test_defaults_decode_csv_and_npy_and_encode_by_accept(defaults: Any) -> None:
    url, model = defaults
    expected = expected_of(model, ROWS)
    csv_body = "\n".join(",".join(map(str, r)) for r in ROWS)
    status, body, ctype = post(url, csv_body, "text/csv; charset=utf-8", "text/csv")
    assert (status, ctype) == (200, "text/csv")
    assert np.allclose(np.loadtxt(io.StringIO(body.decode()), delimiter=","), expected, atol=1e-6)

    status, body, ctype = post(
        url, npy(np.array(ROWS, dtype=np.float32)), "application/x-npy", "application/x-npy"
    )
    assert (status, ctype) == (200, "application/x-npy")
    assert np.allclose(np.load(io.BytesIO(body)), expected, atol=1e-6)

    # Accept: the first type the default output_fn writes, q-values honoured; */* = the default.
    status, _, ctype = post(url, json.dumps(ROWS), "application/json", "image/png, text/csv")
    assert (status, ctype) == (200, "text/csv")
    status, _, ctype = post(
        url, json.dumps(ROWS), "application/json", "application/json;q=0.5, application/x-npy"
    )
    assert (status, ctype) == (200, "application/x-npy")
    for accept in (None, "*/*", ""):
        status, _, ctype = post(url, json.dumps(ROWS), "application/json", accept)
        assert (status, ctype) == (200, "application/json")


def test_default_accept_from_the_environment(script_model: Path) -> None:
    with serving_in_thread(script_model, default_accept="text/csv") as (url, _):
        for accept in (None, "*/*"):
            status, body, ctype = post(url, json.dumps(ROWS), "application/json", accept)
            assert (status, ctype) == (200, "text/csv"), body
        status, _, ctype = post(url, json.dumps(ROWS), "application/json", "application/json")
        assert ctype == "application/json"


def pickled_npy() -> bytes:
    return npy(np.array([{"a": 1}], dtype=object))


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        (b"{not json", "application/json", None, 400, "not valid JSON"),
        (b"[[1, 2], [3]]", "application/json", None, 400, "do not form a regular array"),
        (b'[["a", "b", "c", "d"]]', "application/json", None, 400, "expected numbers"),
        (b'{"instances": [[1, 2, 3, 4]]}', "application/json", None, 400, "got a JSON object"),
        (b"\xff\xfe[1]", "application/json", None, 400, "not UTF-8"),
        (b"1,2,3,4\n5,x,7,8\n", "text/csv", None, 400, "line 2, column 2: 'x' is not a number"),
        (b"1,2,3,4\n5,6\n", "text/csv", None, 400, "line 2 has 2 values"),
        (b"\n\n", "text/csv", None, 400, "no rows"),
        (b"garbage", "application/x-npy", None, 400, "not a .npy array"),
        (pickled_npy(), "application/x-npy", None, 400, "pickles are refused"),
        (b"1,2,3,4", "text/plain", None, 415, "unsupported content type 'text/plain'"),
        (b"1,2,3,4", None, None, 415, "no Content-Type"),
        (b"[[1, 2, 3, 4]]", "application/json", "image/png", 406, "cannot answer in 'image/png'"),
    ],
    ids=[
        "bad-json",
        "ragged",
        "strings",
        "object",
        "not-utf8",
        "csv-text",
        "csv-ragged",
        "csv-empty",
        "bad-npy",
        "pickled-npy",
        "content-type",
        "no-content-type",
        "accept",
    ],
)
def test_defaults_answer_bad_requests_with_4xx_and_a_message(
    defaults: Any,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    status: int,
    message: str,
) -> None:
    url, _ = defaults
    got, text, ctype = post(url, body, content_type, accept)
    assert got == status, text
    assert message in text.decode()
    assert ctype == "text/plain; charset=utf-8"


def test_model_errors_in_default_predict_are_500(defaults: Any) -> None:
    url, _ = defaults
    status, body, _ = post(url, "[[1, 2, 3]]", "application/json")
    assert status == 500 and "shapes cannot be multiplied" in body.decode()


def test_payload_limit_and_protocol_errors(script_model: Path) -> None:
    with serving_in_thread(script_model, max_payload_bytes=1024) as (url, _):
        status, body, _ = post(url, b"[" + b"1," * 2000 + b"1]", "application/json")
        assert status == 413 and "SAGEMAKER_MAX_PAYLOAD_IN_MB" in body.decode()
        assert get(url, "/nope")[0] == 404
        assert get(url, "/invocations")[0] == 405
        assert get(url, "/ping") == (200, b"")
        assert json.loads(get(url, "/execution-parameters")[1])["MaxPayloadInMB"] == 1
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n\r\n")
            answer = sock.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 411")


def test_parse_accept() -> None:
    assert parse_accept(None, "application/json") == ["application/json"]
    assert parse_accept("*/*", "text/csv") == ["text/csv"]
    assert parse_accept("text/csv;q=0.2, application/x-npy", "x") == [
        "application/x-npy",
        "text/csv",
    ]
    assert parse_accept("TEXT/CSV; charset=utf-8", "x") == ["text/csv"]
    assert parse_accept("text/csv;q=0", "application/json") == ["application/json"]


# -- user handlers: resolution, errors, context -------------------------------------------------


def test_transform_fn_alone_serves(tmp_path: Path, fresh_modules: None) -> None:
    model_dir = write_code(
        tmp_path,
        """
        def model_fn(model_dir):
            return {"scale": 2}

        def transform_fn(model, data, content_type, accept):
            return (f"{content_type}|{accept}|{type(data).__name__}|{data}".encode(), "text/plain")
        """,
    )
    with serving_in_thread(model_dir) as (url, service):
        assert service.state == "ready", service.error
        status, body, ctype = post(url, "abc", "application/json")
        assert (status, ctype) == (200, "text/plain")
        # As the toolkit: exact JSON/CSV bodies arrive as str, Accept defaulted.
        assert body == b"application/json|application/json|str|abc"
        status, body, _ = post(url, b"\x00\x01", "application/octet-stream", "text/csv")
        assert body.startswith(b"application/octet-stream|text/csv|bytes|")


def test_transform_fn_with_input_fn_is_refused_at_load(tmp_path: Path, fresh_modules: None) -> None:
    model_dir = write_code(
        tmp_path,
        """
        def model_fn(model_dir):
            return 1
        def input_fn(data, content_type):
            return data
        def transform_fn(model, data, content_type, accept):
            return data
        """,
    )
    with serving_in_thread(model_dir) as (url, service):
        assert service.state == "failed"
        assert "transform_fn together with input_fn" in service.error
        status, body = get(url, "/ping")
        assert status == 500 and b"transform_fn" in body


def test_user_handlers_with_context_and_status_codes(tmp_path: Path, fresh_modules: None) -> None:
    model_dir = write_code(
        tmp_path,
        """
        from sagemaker_inference import errors

        class Rejected(Exception):
            status_code = 422  # not the toolkit's error class: a 500, as there

        def model_fn(model_dir, context):
            return {"dir": context.system_properties["model_dir"]}

        def input_fn(data, content_type, context):
            if data == "reject":
                raise errors.GenericInferenceToolkitError(422, "no thanks")
            if data == "own":
                raise Rejected("nope")
            if data == "boom":
                raise KeyError("missing")
            return (data, context.custom_attributes)

        def predict_fn(data, model):
            return {"got": data[0], "attrs": data[1], "dir": model["dir"]}

        def output_fn(prediction, accept):
            import json
            return json.dumps(prediction)
        """,
    )
    with serving_in_thread(model_dir) as (url, service):
        assert service.state == "ready", service.error
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request(
            "POST",
            "/invocations",
            body="hi",
            headers={
                "Content-Type": "application/json",
                "X-Amzn-SageMaker-Custom-Attributes": "k=v",
            },
        )
        response = conn.getresponse()
        assert json.loads(response.read()) == {"got": "hi", "attrs": "k=v", "dir": str(tmp_path)}
        conn.close()
        status, body, _ = post(url, "reject", "application/json")
        assert status == 422 and body.decode().startswith("GenericInferenceToolkitError: no")
        status, body, _ = post(url, "own", "application/json")
        assert status == 500 and body.decode().startswith("Rejected: nope")
        status, body, _ = post(url, "boom", "application/json")
        assert status == 500 and body.decode().startswith("KeyError: 'missing'")


def test_missing_module_means_defaults_and_import_errors_are_reported(
    tmp_path: Path, script_model: Path, fresh_modules: None
) -> None:
    broken = write_code(tmp_path / "broken", "import not_a_module_anywhere\n")
    with serving_in_thread(broken) as (_, service):
        assert service.state == "failed"
        assert "importing" in service.error and "not_a_module_anywhere" in service.error
    # SAGEMAKER_PROGRAM names another file: a missing one means defaults, silently (toolkit).
    with serving_in_thread(script_model, program="absent.py") as (_, service):
        assert service.state == "ready"


def test_default_model_fn_wants_one_torchscript_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "a" / "weights.pth")
    with serving_in_thread(tmp_path / "a") as (_, service):
        assert service.state == "failed" and "TorchScript only" in service.error
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.pt").write_bytes(b"")
    (tmp_path / "b" / "y.pt").write_bytes(b"")
    with serving_in_thread(tmp_path / "b") as (_, service):
        assert service.state == "failed" and "found: x.pt, y.pt" in service.error


def test_ping_is_503_while_loading_and_never_waits_for_a_prediction(
    tmp_path: Path, fresh_modules: None
) -> None:
    from trainer_gui.core.serving.runtime import make_server

    gate = tmp_path / "go"
    model_dir = write_code(
        tmp_path / "m",
        f"""
        import os, time

        def model_fn(model_dir):
            while not os.path.exists({str(gate)!r}):
                time.sleep(0.01)
            return None

        def transform_fn(model, data, content_type, accept):
            time.sleep(float(data))
            return str(time.monotonic())
        """,
    )
    service = ModelService(model_dir=str(model_dir))
    server = make_server(service, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        loader = threading.Thread(target=service.load)
        loader.start()
        assert get(url, "/ping")[0] == 503
        status, body, _ = post(url, "0", "text/csv")
        assert status == 503 and b"not loaded" in body
        gate.write_text("go")
        loader.join(30)
        assert get(url, "/ping")[0] == 200

        slow = threading.Thread(target=post, args=(url, "1.5", "text/csv"))
        slow.start()
        time.sleep(0.2)
        started = time.monotonic()
        assert get(url, "/ping")[0] == 200
        assert time.monotonic() - started < 0.5  # /ping does not queue behind the prediction
        slow.join(10)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("concurrency", "overlap"), [(1, False), (2, True)])
def test_handlers_run_one_at_a_time_unless_configured(
    tmp_path: Path, fresh_modules: None, concurrency: int, overlap: bool
) -> None:
    model_dir = write_code(
        tmp_path,
        """
        import time

        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            start = time.monotonic()
            time.sleep(0.4)
            return f"{start},{time.monotonic()}"
        """,
    )
    with serving_in_thread(model_dir, concurrency=concurrency) as (url, _):
        spans: list[tuple[float, float]] = []

        def call() -> None:
            status, body, _ = post(url, "x", "text/csv")
            assert status == 200
            start, end = body.decode().split(",")
            spans.append((float(start), float(end)))

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        (_, a1), (b0, _) = sorted(spans)
        assert (b0 < a1) is overlap


# -- error bodies: the message for the client, the traceback for the log ------------------------

FAILING_HANDLER = """
    def model_fn(model_dir):
        return "model"

    def input_fn(data, content_type):
        return data

    def _lookup(table, key):
        return table[key]

    def predict_fn(data, model):
        return _lookup({}, "missing-" + data.decode())
    """


def test_error_bodies_carry_no_traceback_but_the_log_does(
    tmp_path: Path, fresh_modules: None, capfd: pytest.CaptureFixture[str]
) -> None:
    model_dir = write_code(tmp_path, FAILING_HANDLER)
    with serving_in_thread(model_dir) as (url, service):
        assert service.state == "ready", service.error
        status, body, ctype = post(url, b"key", "application/octet-stream")
    text = body.decode()
    assert status == 500 and ctype.startswith("text/plain")
    assert text.splitlines()[0] == "KeyError: 'missing-key'"
    for leak in ("Traceback", "inference.py", "_lookup", str(tmp_path), "line "):
        assert leak not in text, text
    logged = capfd.readouterr().err
    assert "POST /invocations -> 500: KeyError: 'missing-key'" in logged
    assert "Traceback (most recent call last)" in logged
    assert "inference.py" in logged and "in _lookup" in logged


def test_debug_setting_puts_the_users_traceback_in_the_body(
    tmp_path: Path, fresh_modules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = write_code(tmp_path, FAILING_HANDLER)
    monkeypatch.setenv("TRAINER_GUI_SERVING_DEBUG", "1")
    assert ModelService.from_environ(str(model_dir)).debug_errors is True
    monkeypatch.setenv("TRAINER_GUI_SERVING_DEBUG", "0")
    assert ModelService.from_environ(str(model_dir)).debug_errors is False
    with serving_in_thread(model_dir, debug_errors=True) as (url, service):
        assert service.state == "ready", service.error
        status, body, _ = post(url, b"key", "application/octet-stream")
    text = body.decode()
    assert status == 500 and text.startswith("KeyError: 'missing-key'")
    assert "Traceback (most recent call last)" in text and "in _lookup" in text
    # Where the user's code failed, not the server's own frames.
    assert "inference.py" in text and "runtime.py" not in text
