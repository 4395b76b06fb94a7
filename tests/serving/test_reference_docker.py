"""The runtime in the trainer-gui/inference image (no SageMaker toolkit in it, run as the user,
not root): requirements.txt from a wheelhouse, `from sagemaker_inference import errors`,
custom attributes through TorchServe's context API, and two worker processes."""

from __future__ import annotations

import http.client
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_reference_server import make_wheel

from trainer_gui.core.serving.launcher import DEFAULT_IMAGE, EndpointLauncher

pytestmark = pytest.mark.docker

LABELS = {"trainer-gui.test": "1", "trainer-gui.test-session": f"{os.getpid()}-reference"}


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[EndpointLauncher]:
    from trainer_gui.core.docker_util import docker_client

    required = os.environ.get("TRAINER_REQUIRE_DOCKER", "").strip().lower() in {"1", "true", "yes"}
    try:
        client = docker_client(timeout=120)
        client.images.get(DEFAULT_IMAGE)
    except Exception as exc:  # no engine (BackendUnavailable), or no image
        if required:
            pytest.fail(f"TRAINER_REQUIRE_DOCKER=1, but: {exc}", pytrace=False)
        pytest.skip(f"no Docker or no {DEFAULT_IMAGE}: {exc}")
    launcher = EndpointLauncher(client, labels=LABELS, home=tmp_path / "endpoints")
    yield launcher
    launcher.shutdown_all()
    selector = {"label": f"trainer-gui.test-session={LABELS['trainer-gui.test-session']}"}
    left = client.containers.list(all=True, filters=selector)
    for container in left:
        container.remove(force=True)
    client.close()
    assert left == [], [c.name for c in left]


def request(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", "/invocations", body, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_sagemaker_style_handlers_run_in_the_plain_inference_image(
    launcher: EndpointLauncher, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    wheels = model / "code" / "wheels"
    wheels.mkdir(parents=True)
    make_wheel(wheels, "tg_docker_probe")
    (model / "code" / "requirements.txt").write_text("tg_docker_probe==1.0\n")
    (model / "code" / "inference.py").write_text(
        textwrap.dedent(
            """
            import os

            import tg_docker_probe
            from sagemaker_inference import errors

            def model_fn(model_dir):
                return tg_docker_probe.VALUE

            def transform_fn(model, data, content_type, accept, context):
                attrs = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
                if data == "teapot":
                    raise errors.GenericInferenceToolkitError(418, "short and stout")
                return f"{model} {attrs} {os.getpid()}"
            """
        )
    )
    log: list[str] = []
    endpoint = launcher.start(
        model,
        name="reference-test",
        on_log=log.append,
        environment={
            "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": "/opt/ml/model/code/wheels",
        },
        timeout=240,
    )
    headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "k=v"}
    answers = {request(endpoint.url, b"x", headers) for _ in range(8)}
    assert {status for status, _ in answers} == {200}, "\n".join(log)
    assert {body.split()[0] for _, body in answers} == {b"42"}
    assert {body.split()[1] for _, body in answers} == {b"k=v"}
    status, body = request(endpoint.url, b"teapot", headers)
    assert status == 418 and b"short and stout" in body
    assert any(line.startswith("[serving] pip: ") for line in log), log
    assert sum("model loaded" in line for line in log) == 2, log  # two worker processes
    assert sys.modules.get("tg_docker_probe") is None
