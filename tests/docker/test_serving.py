"""Local inference endpoints in real containers: the example project's trained model, served.

Module-scoped endpoints (a cold start costs seconds) carry the test label and a session label
naming this process, so the per-test cleanup of tests/docker/conftest.py leaves them alone
while they are in use, and a later session removes them if this one died.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_helpers import (
    ROWS,
    in_process,
    json_rows,
    load_handlers,
    pack,
    post,
    torchscript_model,
    train_quickstart,
)

from trainer_gui.core.serving.client import LocalEndpointClient
from trainer_gui.core.serving.launcher import (
    DEFAULT_IMAGE,
    DETACHED,
    LABEL_DIR,
    LABEL_ENDPOINT,
    LABEL_HOME,
    LABEL_LAUNCHER,
    LABEL_NETWORK,
    LABEL_OWNER,
    MODE_SAGEMAKER,
    Endpoint,
    EndpointError,
    EndpointLauncher,
    StartProgress,
    owner_token,
)

np = pytest.importorskip("numpy")
pytest.importorskip("torch")

pytestmark = pytest.mark.docker

# The per-test cleanup in conftest.py removes this session's objects; these outlive single tests.
MODULE_LABELS = {"trainer-gui.test": "1", "trainer-gui.test-session": f"{os.getpid()}-serving"}
TOOLKIT_TEST_IMAGE = "trainer-gui/serving-toolkit-test:latest"


def require_image(client: Any, tag: str) -> None:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        message = f"{tag} is not built (scripts/ci/build-test-images.sh)"
        if os.environ.get("TRAINER_REQUIRE_DOCKER", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("serving-docker")
    model_dir = train_quickstart(tmp)
    archive = pack(model_dir, tmp / "model.tar.gz")
    return {"tmp": tmp, "model_dir": model_dir, "archive": archive}


@pytest.fixture(scope="module")
def launcher(_docker_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_image(_docker_session, DEFAULT_IMAGE)
    home = tmp_path_factory.mktemp("endpoints")
    launcher = EndpointLauncher(_docker_session, labels=MODULE_LABELS, home=home)
    yield launcher
    launcher.shutdown_all()
    selector = {"label": f"trainer-gui.test-session={MODULE_LABELS['trainer-gui.test-session']}"}
    left = _docker_session.containers.list(all=True, filters=selector)
    assert left == [], [c.name for c in left]
    networks = _docker_session.networks.list(filters=selector)
    assert networks == [], [n.name for n in networks]


@pytest.fixture(scope="module")
def quickstart(launcher: EndpointLauncher, trained: dict[str, Path]) -> dict[str, Any]:
    """The example's model.tar.gz in trainer-gui/inference (mode b), and its handlers here."""
    progress: list[StartProgress] = []
    log: list[str] = []
    started = time.monotonic()
    endpoint = launcher.start(
        trained["archive"], name="quickstart-test", on_progress=progress.append, on_log=log.append
    )
    cold = time.monotonic() - started
    handlers = load_handlers(trained["model_dir"] / "code", "quickstart_docker_reference")
    model = handlers.model_fn(str(trained["model_dir"]))
    sys.modules.pop("model_def", None)
    return {
        "endpoint": endpoint,
        "handlers": handlers,
        "model": model,
        "progress": progress,
        "log": log,
        "cold": cold,
    }


@pytest.fixture(scope="module")
def defaults(launcher: EndpointLauncher, trained: dict[str, Path]) -> Endpoint:
    """A TorchScript model.pt with no code/: the runtime's default handlers."""
    return launcher.start(torchscript_model(trained["tmp"] / "script"), name="defaults-test")


# -- predictions ---------------------------------------------------------------------------------


def test_endpoint_starts_with_progress_and_live_log(quickstart: dict[str, Any]) -> None:
    endpoint: Endpoint = quickstart["endpoint"]
    stages = [p.stage for p in quickstart["progress"]]
    assert stages[0] == "unpacking" and stages[-1] == "ready" and "waiting" in stages
    assert quickstart["progress"][-1].fraction == 1.0
    assert any("[serving] ready" in line for line in quickstart["log"]), quickstart["log"]
    assert endpoint.mode == "runtime" and endpoint.url.startswith("http://127.0.0.1:")
    print(f"cold start to healthy: {quickstart['cold']:.2f} s")


def test_json_csv_npy_match_the_handlers_in_process(quickstart: dict[str, Any]) -> None:
    url = quickstart["endpoint"].url
    handlers, model = quickstart["handlers"], quickstart["model"]
    expected = np.array(
        json_rows(in_process(handlers, model, json.dumps(ROWS), "application/json", "*/*"))
    )

    status, body, ctype = post(url, json.dumps(ROWS), "application/json")
    assert (status, ctype) == (200, "application/json"), body
    assert json.loads(body)["classes"] == [0, 1, 2]
    assert np.allclose(json_rows(body), expected, atol=1e-6)

    csv_body = "x1,x2,x3,x4\n" + "\n".join(",".join(map(str, r)) for r in ROWS) + "\n"
    status, body, ctype = post(url, csv_body, "text/csv; charset=utf-8", "text/csv")
    assert (status, ctype) == (200, "text/csv"), body
    rows = [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]
    assert np.allclose(rows, expected, atol=1e-6)

    buf = io.BytesIO()
    np.save(buf, np.array(ROWS))
    status, body, ctype = post(url, buf.getvalue(), "application/x-npy", "application/x-npy")
    assert (status, ctype) == (200, "application/x-npy"), body
    assert np.allclose(np.load(io.BytesIO(body)), expected, atol=1e-6)


def test_user_input_fn_errors_are_500_with_the_message(quickstart: dict[str, Any]) -> None:
    url = quickstart["endpoint"].url
    status, body, _ = post(url, b"{not json", "application/json")
    assert status == 500
    assert body.decode().startswith("ValueError: application/json: body is not valid JSON")
    status, body, _ = post(url, "1,2", "application/xml")
    assert status == 500 and "unsupported content type 'application/xml'" in body.decode()


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        (b"[[1, 2], [3]]", "application/json", None, 400, "regular array"),
        (b"1,2,x,4", "text/csv", None, 400, "'x' is not a number"),
        (b"garbage", "application/x-npy", None, 400, "not a .npy array"),
        (b"1,2,3,4", "application/xml", None, 415, "unsupported content type"),
        (b"[[1, 2, 3, 4]]", "application/json", "image/png", 406, "cannot answer"),
        (b"[[1, 2, 3]]", "application/json", None, 500, "shapes cannot be multiplied"),
    ],
    ids=["ragged-json", "csv-text", "bad-npy", "content-type", "accept", "model-error"],
)
def test_default_handlers_status_codes(
    defaults: Endpoint,
    body: bytes,
    content_type: str,
    accept: str | None,
    status: int,
    message: str,
) -> None:
    got, text, _ = post(defaults.url, body, content_type, accept)
    assert got == status, text
    assert message in text.decode()


def test_default_handlers_accept_charset_parameters(defaults: Endpoint) -> None:
    status, body, _ = post(defaults.url, json.dumps(ROWS), "application/json; charset=utf-8")
    assert status == 200 and np.array(json.loads(body)).shape == (3, 2)


def test_parallel_requests_through_the_container(quickstart: dict[str, Any]) -> None:
    client = LocalEndpointClient(quickstart["endpoint"].url)
    errors: list[str] = []

    def worker() -> None:
        for _ in range(10):
            result = client.invoke(json.dumps(ROWS), "application/json")
            if not result.ok:
                errors.append(result.text)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    client.close()
    assert errors == []


# -- the port ------------------------------------------------------------------------------------


def _local_addresses() -> set[str]:
    """This machine's non-loopback IPv4 addresses."""
    found: set[str] = set()
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, timeout=10)
        for link in json.loads(out.stdout or "[]"):
            for info in link.get("addr_info", []):
                found.add(info["local"])
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing address
            found.add(sock.getsockname()[0])
        except OSError:
            pass
    return {a for a in found if not a.startswith("127.")}


def test_port_is_published_on_loopback_only(
    quickstart: dict[str, Any], _docker_session: Any
) -> None:
    endpoint: Endpoint = quickstart["endpoint"]
    attrs = _docker_session.api.inspect_container(endpoint.container_id)
    bindings = attrs["HostConfig"]["PortBindings"]["8080/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    published = attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {b["HostIp"] for b in published} == {"127.0.0.1"}
    assert int(published[0]["HostPort"]) == endpoint.host_port
    with socket.create_connection(("127.0.0.1", endpoint.host_port), timeout=5):
        pass
    others = _local_addresses()
    for address in others:
        with pytest.raises(OSError):
            socket.create_connection((address, endpoint.host_port), timeout=2).close()
    print(f"checked {len(others)} non-loopback addresses: {sorted(others)}")


def _endpoint_networks(client: Any, name: str) -> list[str]:
    found = client.api.networks(filters={"label": [LABEL_NETWORK, f"{LABEL_ENDPOINT}={name}"]})
    return [n["Name"] for n in found]


def _reachable(client: Any, labels: dict[str, str], host: str, port: int, network: str) -> bool:
    """Whether a container on `network` (what a training job would be) opens host:port."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
        "except OSError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(1)\n"
    )
    container = client.containers.run(
        DEFAULT_IMAGE,
        ["python", "-c", probe, host, str(port)],
        detach=True,
        network=network,
        labels=labels,
    )
    try:
        code = container.wait(timeout=60)["StatusCode"]
        print(f"{network} -> {host}:{port}: exit {code} {container.logs().decode().strip()}")
        return bool(code == 0)
    finally:
        container.remove(force=True)


def test_an_endpoint_is_reachable_from_the_host_only_and_its_network_goes_with_it(
    launcher: EndpointLauncher,
    trained: dict[str, Path],
    docker_client: Any,
    docker_labels: dict[str, str],
) -> None:
    model = torchscript_model(trained["tmp"] / "isolated")
    endpoint = launcher.start(model, name="isolated-test")
    try:
        networks = docker_client.api.inspect_container(endpoint.container_id)["NetworkSettings"][
            "Networks"
        ]
        assert list(networks) == _endpoint_networks(docker_client, "isolated-test"), networks
        (own,) = networks
        assert own.startswith("tg-endpoint-isolated-test-")
        labels = docker_client.api.inspect_network(own)["Labels"]
        assert labels[LABEL_OWNER] == owner_token() and labels["trainer-gui.test"] == "1"
        address = networks[own]["IPAddress"]
        # The host: through the published port on 127.0.0.1.
        assert post(endpoint.url, json.dumps([[1, 2, 3, 4]]), "application/json")[0] == 200
        # The probe works: a container on the endpoint's own network connects ...
        assert _reachable(docker_client, docker_labels, address, 8080, own)
        # ... one on the default bridge, where single-host training jobs run, does not:
        # neither to the container itself nor to the published port through the bridge gateway.
        assert not _reachable(docker_client, docker_labels, address, 8080, "bridge")
        ipam = docker_client.api.inspect_network("bridge")["IPAM"]["Config"][0]
        gateway = ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])
        assert not _reachable(docker_client, docker_labels, gateway, endpoint.host_port, "bridge")
    finally:
        launcher.stop("isolated-test")
    assert _endpoint_networks(docker_client, "isolated-test") == []


# -- several endpoints, stop, failures, cleanup ---------------------------------------------------


def test_several_endpoints_at_once_then_stop_one(
    launcher: EndpointLauncher,
    quickstart: dict[str, Any],
    defaults: Endpoint,
    trained: dict[str, Path],
) -> None:
    listed = {e.name: e for e in launcher.list_endpoints()}
    assert {"quickstart-test", "defaults-test"} <= set(listed)
    assert listed["quickstart-test"].host_port != listed["defaults-test"].host_port
    # A third one, on the model folder (mounted read-only), with a name of its own.
    third = launcher.start(trained["model_dir"], timeout=240)
    assert third.name == "model" and third.name in {e.name for e in launcher.list_endpoints()}
    status, _, _ = post(third.url, json.dumps(ROWS), "application/json")
    assert status == 200
    assert launcher.stop(third.name) is True
    assert third.name not in {e.name for e in launcher.list_endpoints()}
    assert launcher.stop(third.name) is False
    # The other two are untouched.
    assert post(quickstart["endpoint"].url, json.dumps(ROWS), "application/json")[0] == 200


def test_a_model_that_fails_to_load_is_reported_and_removed(
    launcher: EndpointLauncher, tmp_path: Path, _docker_session: Any
) -> None:
    code = tmp_path / "broken" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(
        "def model_fn(model_dir):\n    raise RuntimeError('weights are corrupt')\n"
    )
    started = time.monotonic()
    with pytest.raises(EndpointError) as info:
        launcher.start(tmp_path / "broken", name="broken-test")
    assert "exited with code 1 before /ping answered" in str(info.value)
    assert any("weights are corrupt" in line for line in info.value.log_tail), info.value.log_tail
    assert time.monotonic() - started < 120
    assert "broken-test" not in {e.name for e in launcher.list_endpoints()}
    assert _endpoint_networks(_docker_session, "broken-test") == []
    assert not (launcher.home / "broken-test").exists()


def test_readiness_timeout_removes_the_container(
    launcher: EndpointLauncher, tmp_path: Path
) -> None:
    code = tmp_path / "slow" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(
        "import time\n\ndef model_fn(model_dir):\n    time.sleep(600)\n"
    )
    with pytest.raises(EndpointError, match="did not answer 200 within 2 s"):
        launcher.start(tmp_path / "slow", name="slow-test", timeout=2)
    assert "slow-test" not in {e.name for e in launcher.list_endpoints()}
    assert _endpoint_networks(launcher.client, "slow-test") == []


def _fake_endpoint(
    client: Any,
    launcher: EndpointLauncher,
    name: str,
    owner: str,
    labels: dict[str, str],
    launcher_id: str = "",
) -> Any:
    """A labelled container that looks like an endpoint (no model: only cleanup is tested)."""
    workdir = launcher.home / name
    workdir.mkdir(parents=True, exist_ok=True)
    return client.containers.run(
        DEFAULT_IMAGE,
        ["sleep", "300"],
        detach=True,
        name=f"tg-endpoint-{name}",
        labels={
            **labels,
            LABEL_ENDPOINT: name,
            LABEL_OWNER: owner,
            LABEL_DIR: str(workdir),
            LABEL_HOME: str(launcher.home.resolve()),
            LABEL_LAUNCHER: launcher_id,
        },
    )


def _fake_network(
    client: Any, launcher: EndpointLauncher, name: str, owner: str, labels: dict[str, str]
) -> Any:
    """A network labelled as the launcher labels an endpoint's own."""
    return client.networks.create(
        f"tg-endpoint-{name}-{os.getpid()}",
        driver="bridge",
        labels={
            **labels,
            LABEL_ENDPOINT: name,
            LABEL_NETWORK: "1",
            LABEL_OWNER: owner,
            LABEL_HOME: str(launcher.home.resolve()),
        },
    )


def test_orphans_of_a_crashed_process_are_removed_at_next_start(
    docker_client: Any, docker_labels: dict[str, str], tmp_path: Path
) -> None:
    launcher = EndpointLauncher(docker_client, labels=docker_labels, home=tmp_path / "endpoints")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = owner_token(dead.pid)
    dead.wait()
    _fake_endpoint(docker_client, launcher, "orphan-test", dead_owner, docker_labels)
    _fake_endpoint(docker_client, launcher, "detached-test", DETACHED, docker_labels)
    _fake_endpoint(docker_client, launcher, "alive-test", owner_token(os.getppid()), docker_labels)
    (launcher.home / "stale-folder").mkdir()
    # Endpoint networks: the orphan's (attached), one a crashed start left bare, one a live
    # process is starting, and a detached endpoint's (its creator exited, it still serves).
    nets = {
        name: _fake_network(docker_client, launcher, name, owner, docker_labels)
        for name, owner in [
            ("orphan-test", dead_owner),
            ("crashed-start-test", dead_owner),
            ("starting-test", owner_token(os.getppid())),
            ("detached-test", dead_owner),
        ]
    }
    nets["orphan-test"].connect("tg-endpoint-orphan-test")
    nets["detached-test"].connect("tg-endpoint-detached-test")

    assert launcher.cleanup_orphans() == ["orphan-test"]
    names = {e.name for e in launcher.list_endpoints()}
    assert {"detached-test", "alive-test"} <= names and "orphan-test" not in names
    assert _endpoint_networks(docker_client, "orphan-test") == []
    assert _endpoint_networks(docker_client, "crashed-start-test") == []
    assert _endpoint_networks(docker_client, "starting-test") == [nets["starting-test"].name]
    assert _endpoint_networks(docker_client, "detached-test") == [nets["detached-test"].name]
    assert not (launcher.home / "orphan-test").exists()
    assert not (launcher.home / "stale-folder").exists()  # unpacked model with no container
    assert (launcher.home / "detached-test").exists()


def test_shutdown_all_stops_only_this_process_endpoints(
    docker_client: Any, docker_labels: dict[str, str], tmp_path: Path
) -> None:
    launcher = EndpointLauncher(docker_client, labels=docker_labels, home=tmp_path / "endpoints")
    me = launcher.launcher_id
    _fake_endpoint(docker_client, launcher, "mine-test", owner_token(), docker_labels, me)
    _fake_endpoint(docker_client, launcher, "detached-test-2", DETACHED, docker_labels, me)
    _fake_endpoint(docker_client, launcher, "other-launcher-test", owner_token(), docker_labels)
    assert launcher.shutdown_all() == ["mine-test"]
    names = {e.name for e in launcher.list_endpoints()}
    assert {"detached-test-2", "other-launcher-test"} <= names and "mine-test" not in names


# -- mode (a): an image with the SageMaker inference toolkit's environment -------------------------

FAKE_TOOLKIT_ENTRYPOINT = """\
#!/bin/sh
# Stands in for the DLC's torchserve-entrypoint.py: `serve` starts the model server.
if [ "$1" = serve ]; then
    echo "fake-toolkit: serve as $(id -u), program=$SAGEMAKER_PROGRAM, port=$SAGEMAKER_BIND_TO_PORT"
    exec python /opt/fake-toolkit/server.py
fi
exec "$@"
"""


@pytest.fixture(scope="module")
def toolkit_image(_docker_session: Any) -> str:
    """trainer-gui/inference + SAGEMAKER_SERVING_MODULE + an entrypoint that answers `serve`."""
    from trainer_gui.core.serving.launcher import runtime_path

    require_image(_docker_session, DEFAULT_IMAGE)
    dockerfile = textwrap.dedent(
        f"""\
        FROM {DEFAULT_IMAGE}
        ENV SAGEMAKER_SERVING_MODULE=sagemaker_pytorch_serving_container.serving:main
        COPY entrypoint.sh /usr/local/bin/entrypoint.sh
        COPY server.py /opt/fake-toolkit/server.py
        RUN chmod +x /usr/local/bin/entrypoint.sh
        ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
        """
    )
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data, mode in [
            ("Dockerfile", dockerfile.encode(), 0o644),
            ("entrypoint.sh", FAKE_TOOLKIT_ENTRYPOINT.encode(), 0o755),
            ("server.py", runtime_path().read_bytes(), 0o644),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    _docker_session.images.build(
        fileobj=context,
        custom_context=True,
        tag=TOOLKIT_TEST_IMAGE,
        rm=True,
        pull=False,
        labels={"trainer-gui.test": "1"},
    )
    return TOOLKIT_TEST_IMAGE


def test_sagemaker_images_run_serve(
    launcher: EndpointLauncher, toolkit_image: str, trained: dict[str, Path]
) -> None:
    log: list[str] = []
    endpoint = launcher.start(
        trained["archive"], image=toolkit_image, name="toolkit-test", on_log=log.append
    )
    try:
        assert endpoint.mode == MODE_SAGEMAKER
        banner = next(line for line in log if line.startswith("fake-toolkit:"))
        assert banner == "fake-toolkit: serve as 0, program=inference.py, port=8080"
        status, body, _ = post(endpoint.url, json.dumps(ROWS), "application/json")
        assert status == 200 and len(json_rows(body)) == 3
    finally:
        launcher.stop("toolkit-test")


# -- the command line ------------------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer_gui", *args]


def _remove_endpoint(client: Any, name: str) -> int:
    """CLI endpoints carry no test label: remove their containers and networks by name whatever
    happened; how many there were."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL_ENDPOINT}={name}"})
    for container in found:
        container.remove(force=True)
    networks = _endpoint_networks(client, name)
    for network in networks:
        client.api.remove_network(network)
    return len(found) + len(networks)


def test_cli_serve_foreground_predict_and_ctrl_c(
    trained: dict[str, Path], tmp_path: Path, _docker_session: Any
) -> None:
    request = tmp_path / "rows.json"
    request.write_text(json.dumps(ROWS))
    env = dict(os.environ)
    proc = subprocess.Popen(
        _cli("serve", str(trained["archive"]), "--name", "cli-test"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if match := re.search(r"Serving .* at (http://127\.0\.0\.1:\d+)", line):
                url = match.group(1)
        assert url, "".join(lines)
        out = subprocess.run(
            _cli("predict", "cli-test", "--data", str(request)),
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert '"predictions"' in out.stdout and "200" in out.stderr
        out = subprocess.run(
            _cli("predict", url, "--data", str(request), "--accept", "text/csv"),
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert out.returncode == 0 and len(out.stdout.strip().splitlines()) == 3, out.stdout
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
        assert proc.returncode == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left_behind = _remove_endpoint(_docker_session, "cli-test")
    assert "Stopped cli-test" in "".join(lines)
    assert left_behind == 0  # Ctrl-C removed the container and its network
    left = _docker_session.containers.list(
        all=True, filters={"label": f"{LABEL_ENDPOINT}=cli-test"}
    )
    assert left == []


def test_cli_serve_detach_then_stop(trained: dict[str, Path], _docker_session: Any) -> None:
    env = dict(os.environ)
    try:
        out = subprocess.run(
            _cli("serve", str(trained["model_dir"]), "--name", "detached-cli-test", "--detach"),
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        listed = subprocess.run(
            _cli("serve", "--list"), capture_output=True, text=True, env=env, timeout=60
        )
        assert "detached-cli-test" in listed.stdout
    finally:
        stopped = subprocess.run(
            _cli("serve", "--stop", "detached-cli-test"),
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        left_behind = _remove_endpoint(_docker_session, "detached-cli-test")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert left_behind == 0
    left = _docker_session.containers.list(
        all=True, filters={"label": f"{LABEL_ENDPOINT}=detached-cli-test"}
    )
    assert left == []
