"""The launcher's decisions without Docker: container config for both modes, names, owners."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainer_gui.core.errors import UserError
from trainer_gui.core.serving import launcher as launcher_mod
from trainer_gui.core.serving.launcher import (
    CONTAINER_PORT,
    MODE_RUNTIME,
    MODE_SAGEMAKER,
    container_config,
    detect_mode,
    owner_token,
    resolve_model,
    runtime_path,
    sanitize_name,
)

DLC_ENV = [
    "PATH=/opt/conda/bin:/usr/local/bin:/usr/bin",
    "SAGEMAKER_SERVING_MODULE=sagemaker_pytorch_serving_container.serving:main",
    "TEMP=/home/model-server/tmp",
]


def test_mode_comes_from_the_image_environment() -> None:
    assert detect_mode(DLC_ENV) == MODE_SAGEMAKER
    assert detect_mode(["PATH=/opt/venv/bin:/usr/bin", "VIRTUAL_ENV=/opt/venv"]) == MODE_RUNTIME
    assert detect_mode(["SAGEMAKER_TRAINING_MODULE=x"]) == MODE_RUNTIME  # a training image
    assert detect_mode(None) == MODE_RUNTIME


def test_sagemaker_image_runs_serve_as_in_the_cloud(tmp_path: Path) -> None:
    config = container_config(
        name="m",
        image="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5-cpu-py311",
        mode=MODE_SAGEMAKER,
        model_dir=tmp_path,
        model_read_only=False,
        labels={"trainer-gui.endpoint": "m"},
        uid_gid=None,
        environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
    )
    assert config["command"] == ["serve"]
    assert "entrypoint" not in config  # the DLC's own entrypoint handles `serve`
    assert "user" not in config  # TorchServe's config is written as root
    env = config["environment"]
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert env["SAGEMAKER_BIND_TO_PORT"] == "8080"
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"
    mounts = {m["Target"]: m for m in config["mounts"]}
    assert set(mounts) == {"/opt/ml/model"}
    assert mounts["/opt/ml/model"]["Source"] == str(tmp_path)
    assert mounts["/opt/ml/model"]["ReadOnly"] is False
    assert config["ports"] == {f"{CONTAINER_PORT}/tcp": ("127.0.0.1", None)}
    assert config["name"] == "tg-endpoint-m"


def test_plain_image_runs_the_mounted_runtime_as_the_user(tmp_path: Path) -> None:
    config = container_config(
        name="m",
        image="trainer-gui/inference:latest",
        mode=MODE_RUNTIME,
        model_dir=tmp_path,
        model_read_only=True,
        port=18080,
        uid_gid=(1000, 1000),
    )
    entrypoint = config["entrypoint"]
    assert (
        entrypoint[:2] == ["/bin/sh", "-c"]
        and "/opt/trainer-gui/serving_runtime.py" in entrypoint[2]
    )
    mounts = {m["Target"]: m for m in config["mounts"]}
    assert mounts["/opt/trainer-gui/serving_runtime.py"]["Source"] == str(runtime_path())
    assert mounts["/opt/trainer-gui/serving_runtime.py"]["ReadOnly"] is True
    assert mounts["/opt/ml/model"]["ReadOnly"] is True
    assert config["user"] == "1000:1000" and config["environment"]["HOME"] == "/tmp"
    # Published on the loopback address only, whatever the port.
    assert config["ports"] == {"8080/tcp": ("127.0.0.1", 18080)}
    assert config["init"] is True


def test_the_container_joins_the_endpoints_own_network(tmp_path: Path) -> None:
    def config(network: str | None) -> dict[str, object]:
        return container_config(
            name="m",
            image="i",
            mode=MODE_RUNTIME,
            model_dir=tmp_path,
            model_read_only=True,
            network=network,
        )

    own = config("tg-endpoint-m-1a2b3c4d")
    assert own["network"] == "tg-endpoint-m-1a2b3c4d"
    assert own["ports"] == {"8080/tcp": ("127.0.0.1", None)}  # still published, loopback only
    assert "network" not in config(None)


def test_the_runtime_file_is_standalone() -> None:
    """It runs from its mount point with nothing of the app next to it."""
    out = subprocess.run(
        [sys.executable, "-I", str(runtime_path()), "--help"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and "--model-dir" in out.stdout


def test_names() -> None:
    assert sanitize_name("Quickstart_20261122 (copy)") == "quickstart-20261122-copy"
    assert sanitize_name("***") == "model"
    assert len(sanitize_name("x" * 200)) <= 48


def test_resolve_model_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = tmp_path / "runs" / "quickstart-20261122-000000-abcd" / "artifacts"
    job.mkdir(parents=True)
    (job / "model.tar.gz").write_bytes(b"")
    source = resolve_model(job / "model.tar.gz")
    assert source.kind == "archive" and source.name_hint == "quickstart-20261122-000000-abcd"

    folder = tmp_path / "my-model"
    folder.mkdir()
    source = resolve_model(folder)
    assert (source.kind, source.name_hint) == ("folder", "my-model")

    downloaded = tmp_path / "download"
    downloaded.mkdir()
    (downloaded / "model.tar.gz").write_bytes(b"")
    assert resolve_model(downloaded).kind == "archive"

    assert resolve_model("s3://bucket/jobs/train-1/output/model.tar.gz").name_hint == "train-1"

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="not a model archive"):
        resolve_model(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="nothing to serve"):
        resolve_model(tmp_path / "missing" / "model.tar.gz")


def test_a_job_is_served_from_its_model_artifact(tmp_path: Path) -> None:
    from trainer_gui.core.store import Store

    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"")
    with Store() as store:
        store.create_job("quick-20261122-000000-abcd", "quick", "local-process", "", str(tmp_path))
        with pytest.raises(UserError, match="has no model yet"):
            resolve_model("quick")
        store.update_backend_ids(
            "quick-20261122-000000-abcd", {"artifacts": {"model": str(archive)}}
        )
    source = resolve_model("quick")
    assert source.kind == "archive" and source.location == str(archive.resolve())
    assert source.job_id == "quick-20261122-000000-abcd" and source.name_hint == "quick"
    with pytest.raises(UserError, match="No job"):
        resolve_model("no-such-job")


def test_owner_tokens_tell_live_and_dead_processes_apart() -> None:
    me = owner_token()
    assert launcher_mod._owner_alive(me)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    token = owner_token(proc.pid)
    proc.wait()
    assert not launcher_mod._owner_alive(token)
    assert launcher_mod._owner_alive("detached")
    assert launcher_mod._owner_alive("another-host:1:1")  # not ours to judge
    host, pid, _ = me.split(":")
    assert not launcher_mod._owner_alive(f"{host}:{pid}:1.5")  # the pid was reused (any OS)
    assert launcher_mod._owner_alive(f"{host}:{pid}:123456")  # an old token: only the pid counts


def test_nothing_to_serve_is_refused_before_docker(tmp_path: Path) -> None:
    progress: list[str] = []
    with pytest.raises(UserError, match="nothing to serve"):
        launcher_mod._check_servable(tmp_path, MODE_RUNTIME, None, lambda s, m: progress.append(m))
    (tmp_path / "model.pt").write_bytes(b"")
    launcher_mod._check_servable(tmp_path, MODE_RUNTIME, None, lambda s, m: progress.append(m))
    assert "default handlers serve model.pt" in progress[-1]


class _NoContainers:
    """A Docker client stand-in for what cleanup and naming ask of it: no containers at all."""

    class api:
        @staticmethod
        def containers(**_: object) -> list[dict[str, object]]:
            return []

        @staticmethod
        def networks(**_: object) -> list[dict[str, object]]:
            return []


def test_cleanup_keeps_folders_another_start_is_preparing(tmp_path: Path) -> None:
    from trainer_gui.core.locks import ProcessLock
    from trainer_gui.core.serving.launcher import EndpointLauncher

    launcher = EndpointLauncher(_NoContainers(), home=tmp_path)  # type: ignore[arg-type]
    (tmp_path / "leftover" / "model").mkdir(parents=True)
    (tmp_path / "starting" / "model").mkdir(parents=True)
    busy = ProcessLock(tmp_path / ".locks" / "starting.lock")
    assert busy.acquire()  # as another process's start would hold it
    try:
        assert launcher.cleanup_orphans() == []
        assert not (tmp_path / "leftover").exists()
        assert (tmp_path / "starting" / "model").is_dir()
        # Naming skips a name being prepared, and refuses it when asked for explicitly.
        name, lock = launcher._claim_name(None, "starting")
        assert name == "starting-2"
        lock.release()
        with pytest.raises(UserError, match="already running"):
            launcher._claim_name("starting", "x")
    finally:
        busy.release()
