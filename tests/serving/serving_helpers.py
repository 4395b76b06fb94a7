"""Models to serve in the serving tests: the quickstart project's, trained for real, and a
TorchScript one for the default handlers. Shared by tests/serving and tests/docker/test_serving.py.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tarfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "src" / "trainer_gui" / "resources" / "examples" / "quickstart"
ROWS = [[0.5, -1.2, 0.1, 0.3], [1.6, 0.4, -0.7, -0.9], [-0.3, 0.2, 2.0, 0.0]]


def train_quickstart(dest: Path, epochs: int = 2) -> Path:
    """Run the example's train.py as SageMaker would (fake SM_* env); returns the model folder."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SM_", "SAGEMAKER_"))
        and k not in {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}
    }
    model_dir = dest / "model"
    env.update(
        {
            "PYTHONDONTWRITEBYTECODE": "1",
            "SM_CHANNELS": '["test","train"]',
            "SM_CHANNEL_TRAIN": str(QUICKSTART / "data" / "train"),
            "SM_CHANNEL_TEST": str(QUICKSTART / "data" / "test"),
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(dest / "output" / "data"),
            "SM_NUM_GPUS": "0",
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": '["algo-1"]',
            "OMP_NUM_THREADS": "1",
        }
    )
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--epochs",
            str(epochs),
            "--checkpoint-dir",
            str(dest / "ckpt"),
        ],
        cwd=QUICKSTART / "code",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (model_dir / "code" / "inference.py").is_file()
    return model_dir


def pack(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz as SageMaker packs it: the folder's contents at the top level."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return archive


def torchscript_model(dest: Path) -> Path:
    """A model folder with one TorchScript model.pt (y = x @ W.T + b, 4 -> 2) and no code/."""
    import torch

    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    with warnings.catch_warnings():  # TorchScript is deprecated in torch >= 2.10
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(dest / "model.pt"))
    return dest


def load_handlers(code_dir: Path, name: str) -> Any:
    """Import inference.py from a model's code/ the way the runtime does (own model_def)."""
    import importlib.util

    sys.modules.pop("model_def", None)
    sys.path.insert(0, str(code_dir))
    try:
        spec = importlib.util.spec_from_file_location(name, code_dir / "inference.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(code_dir))
    return module


def in_process(handlers: Any, model: Any, body: Any, content_type: str, accept: str) -> Any:
    return handlers.output_fn(
        handlers.predict_fn(handlers.input_fn(body, content_type), model), accept
    )


def post(
    url: str,
    body: bytes | str,
    content_type: str | None,
    accept: str | None = None,
    timeout: float = 30,
) -> tuple[int, bytes, str]:
    """One POST /invocations on a fresh connection: (status, body, content type)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    try:
        conn.request("POST", "/invocations", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Content-Type") or ""
    finally:
        conn.close()


def json_rows(data: bytes) -> Any:
    return json.loads(data)["predictions"]


@contextmanager
def serving_in_thread(model_dir: Path, **service_kwargs: Any) -> Iterator[tuple[str, Any]]:
    """The runtime's server on 127.0.0.1 (a free port), model loaded: (url, service)."""
    from trainer_gui.core.serving.runtime import ModelService, make_server

    service = ModelService(model_dir=str(model_dir), **service_kwargs)
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with suppress(Exception):  # a failed load shows in service.state / service.error
            service.load()
        yield f"http://127.0.0.1:{server.server_address[1]}", service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
