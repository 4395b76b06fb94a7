"""The runtime as the container runs it (`python runtime.py`), against what SageMaker's PyTorch
image does around the handlers: SAGEMAKER_MODEL_SERVER_WORKERS worker processes,
SAGEMAKER_MODEL_SERVER_TIMEOUT, and `code/requirements.txt` installed before the model loads
(`sagemaker_pytorch_serving_container.torchserve.start_torchserve`)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from serving_helpers import post

from trainer_gui.core.serving import runtime

pytest.importorskip("torch")

RUNTIME = Path(runtime.__file__)

SLEEPY = """
    import os
    import time

    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept):
        time.sleep(float(data))
        return str(os.getpid())
"""


def model_with(tmp_path: Path, source: str, requirements: str | None = None) -> Path:
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(textwrap.dedent(source))
    if requirements is not None:
        (code / "requirements.txt").write_text(requirements)
    return tmp_path / "model"


@contextmanager
def running(
    model_dir: Path, env: dict[str, str], lines: list[str], wait_ready: bool = True
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`python runtime.py` on a free port: (url, process); its log lines collect in `lines`."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ.update(env, SAGEMAKER_BIND_TO_PORT="0", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(
        [sys.executable, str(RUNTIME), "--model-dir", str(model_dir), "--host", "127.0.0.1"],
        cwd=model_dir.parent,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    ready = threading.Event()
    port: list[int] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if match := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
                port.append(int(match.group(1)))
            if "ready:" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if wait_ready:
            assert ready.wait(180) and proc.poll() is None, "".join(lines)
        yield (f"http://127.0.0.1:{port[0]}" if port else ""), proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)


def test_workers_answer_requests_in_parallel(tmp_path: Path) -> None:
    """16 requests of 0.25 s: 4 s one at a time; with 4 workers, as TorchServe, about 1 s."""
    model_dir = model_with(tmp_path, SLEEPY)
    lines: list[str] = []
    with running(model_dir, {"SAGEMAKER_MODEL_SERVER_WORKERS": "4"}, lines) as (url, _):
        post(url, "0", "text/csv")  # connections and workers warm
        answers: list[tuple[int, bytes]] = []

        def call() -> None:
            status, body, _ = post(url, "0.25", "text/csv")
            answers.append((status, body))

        threads = [threading.Thread(target=call) for _ in range(16)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        elapsed = time.monotonic() - started
    assert [status for status, _ in answers] == [200] * 16, "".join(lines)
    assert len({body for _, body in answers}) == 4  # four processes answered
    assert elapsed < 2.5, f"{elapsed:.2f} s for 16 x 0.25 s with 4 workers"


def test_a_request_over_the_server_timeout_gets_an_error_and_a_fresh_worker(
    tmp_path: Path,
) -> None:
    model_dir = model_with(tmp_path, SLEEPY)
    lines: list[str] = []
    with running(model_dir, {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"}, lines) as (url, _):
        first = post(url, "0", "text/csv")[1]
        started = time.monotonic()
        status, body, _ = post(url, "30", "text/csv")
        assert time.monotonic() - started < 10
        assert status == 500 and b"SAGEMAKER_MODEL_SERVER_TIMEOUT" in body, body
        # The replacement loads the model; then requests are answered again, by a new process.
        deadline = time.monotonic() + 60
        while True:
            status, body, _ = post(url, "0", "text/csv")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200 and body != first, "".join(lines)
    assert any("no answer within SAGEMAKER_MODEL_SERVER_TIMEOUT=1" in line for line in lines)


def make_wheel(folder: Path, name: str, version: str = "1.0") -> Path:
    """A pure-Python wheel with one module `name` (VALUE = 42), built by hand: no network."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": b"VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


def test_code_requirements_are_installed_before_the_model_loads(tmp_path: Path) -> None:
    name = "tg_req_probe"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, name)
    target = tmp_path / "site"
    target.mkdir()
    model_dir = model_with(
        tmp_path,
        f"""
        import {name}

        def model_fn(model_dir):
            return {name}.VALUE

        def transform_fn(model, data, content_type, accept):
            return str(model)
        """,
        requirements=f"{name}==1.0\n",
    )
    env = {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_TARGET": str(target),  # not into the test venv
        "PYTHONPATH": str(target),
    }
    lines: list[str] = []
    with running(model_dir, env, lines) as (url, _):
        assert post(url, "x", "text/csv")[:2] == (200, b"42")
    log = "".join(lines)
    assert "installing " in log and "pip: " in log and "installed code/requirements.txt" in log


def test_a_failing_requirements_install_stops_the_server_with_a_clear_message(
    tmp_path: Path,
) -> None:
    model_dir = model_with(tmp_path, SLEEPY, requirements="tg-no-such-package-xyz==9.9\n")
    lines: list[str] = []
    env = {"PIP_NO_INDEX": "1", "PIP_TARGET": str(tmp_path / "site")}
    with running(model_dir, env, lines, wait_ready=False) as (_, proc):
        assert proc.wait(120) == 1
    log = "".join(lines)
    assert "installing code/requirements.txt failed (pip exit code" in log, log
    assert "tg-no-such-package-xyz" in log


def test_without_write_access_to_site_packages_requirements_go_to_a_folder_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime runs as the user, not root: pip gets --target, the folder goes on sys.path
    (a venv's pip refuses --user)."""
    import sysconfig
    import tempfile

    name = "tg_req_target_probe"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, name)
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text(f"{name}==1.0\n")
    purelib = sysconfig.get_paths()["purelib"]
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if path == purelib else real_access(path, mode)
    )
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.delenv("PIP_TARGET", raising=False)
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.setattr(sys, "path", list(sys.path))
    lines: list[str] = []
    runtime.install_requirements(str(code), lines.append)
    target = str(tmp_path / "tmp" / "trainer-gui-requirements")
    assert (Path(target) / f"{name}.py").is_file(), lines
    assert sys.path[0] == target and os.environ["PYTHONPATH"] == target
    assert any("is not writable: installing into" in line for line in lines)


def test_when_no_worker_can_load_the_model_again_ping_says_so(tmp_path: Path) -> None:
    marker = tmp_path / "loaded-once"
    model_dir = model_with(
        tmp_path,
        f"""
        import os
        import time

        def model_fn(model_dir):
            if os.path.exists({str(marker)!r}):
                raise RuntimeError("the weights went away")
            open({str(marker)!r}, "w").close()

        def transform_fn(model, data, content_type, accept):
            time.sleep(float(data))
            return "ok"
        """,
    )
    lines: list[str] = []
    with running(model_dir, {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"}, lines) as (url, _):
        assert post(url, "30", "text/csv")[0] == 500
        host, port = url.removeprefix("http://").split(":")
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/ping")
            response = conn.getresponse()
            status, body = response.status, response.read()
            conn.close()
            if status == 500:
                break
            time.sleep(0.2)
        assert status == 500 and b"the weights went away" in body, "".join(lines)
