"""The bundled quickstart project trains for real under a fake SageMaker environment and serves."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

PROJECT = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "trainer_gui"
    / "resources"
    / "examples"
    / "quickstart"
)
CODE = PROJECT / "code"
METRIC_LINE = re.compile(
    r"^epoch=(\d+) step=(\d+) train_loss=([0-9.]+) test_loss=([0-9.]+) test_acc=([0-9.]+)$",
    re.MULTILINE,
)
ROWS = [[0.5, -1.2, 0.1, 0.3], [1.6, 0.4, -0.7, -0.9], [-0.3, 0.2, 2.0, 0.0]]


def clean_env(tmp: Path) -> dict[str, str]:
    """The host's environment minus anything SageMaker or torchrun would set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SM_", "SAGEMAKER_"))
        and k not in {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ in the shipped code folder
    env["TMPDIR"] = str(tmp)
    return env


def sagemaker_env(tmp: Path) -> dict[str, str]:
    """What the training toolkit sets for this job (contract section 1.6), paths in tmp."""
    env = clean_env(tmp)
    hps = {"batch-size": 64, "epochs": 3, "hidden": 32, "lr": 0.01}
    env.update(
        {
            "SM_CHANNELS": '["test","train"]',
            "SM_CHANNEL_TRAIN": str(PROJECT / "data" / "train"),
            "SM_CHANNEL_TEST": str(PROJECT / "data" / "test"),
            "SM_MODEL_DIR": str(tmp / "model"),
            "SM_OUTPUT_DATA_DIR": str(tmp / "output" / "data"),
            "SM_NUM_GPUS": "0",
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": '["algo-1"]',
            "SM_HPS": json.dumps(hps, sort_keys=True, separators=(",", ":")),
            "SM_USER_ENTRY_POINT": "train.py",
        }
    )
    env.update({f"SM_HP_{k.upper()}": str(v) for k, v in hps.items()})
    return env


def load_module(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import a project file by path, with its folder on sys.path and its own model_def.

    monkeypatch undoes the sys.path / sys.modules changes; no bytecode is written next to it.
    """
    monkeypatch.syspath_prepend(str(path.parent))
    monkeypatch.delitem(sys.modules, "model_def", raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 3-epoch run of train.py, as the toolkit starts it: cwd = code dir, sorted --key value."""
    tmp = tmp_path_factory.mktemp("quickstart")
    ckpt = tmp / "checkpoints"
    args = ["--batch-size", "64", "--epochs", "3", "--hidden", "32", "--lr", "0.01"]
    proc = subprocess.run(
        [sys.executable, "train.py", *args, "--checkpoint-dir", str(ckpt)],
        cwd=CODE,
        env=sagemaker_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return {"proc": proc, "tmp": tmp, "model_dir": tmp / "model", "ckpt": ckpt}


def test_train_writes_metrics_model_and_serving_code(trained: dict[str, Any]) -> None:
    proc = trained["proc"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = METRIC_LINE.findall(proc.stdout)
    assert [int(e) for e, *_ in lines] == [1, 2, 3], proc.stdout
    steps = [int(s) for _, s, *_ in lines]
    assert steps[0] > 0 and steps == [steps[0] * i for i in (1, 2, 3)]

    model_dir: Path = trained["model_dir"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["code", "model.pth", "model_config.json"]
    assert (model_dir / "code" / "inference.py").is_file()
    assert (model_dir / "code" / "model_def.py").is_file()
    # SageMaker's default model_fn insists on exactly one .pt/.pth: keep it that way.
    assert len([p for p in model_dir.rglob("*") if p.suffix in (".pt", ".pth")]) == 1
    config = json.loads((model_dir / "model_config.json").read_text())
    assert config["n_features"] == 4 and config["n_classes"] == 3 and config["hidden"] == 32

    final = json.loads((trained["tmp"] / "output" / "data" / "metrics.json").read_text())
    assert final["epoch"] == 3
    assert final["test_acc"] == pytest.approx(float(lines[-1][4]), abs=1e-4)
    assert final["test_acc"] > 0.8, proc.stdout
    assert (trained["ckpt"] / "checkpoint.pt").is_file()


def test_job_metric_definitions_match_the_output(trained: dict[str, Any]) -> None:
    from trainer_gui.core.spec import load_spec

    spec = load_spec(PROJECT / "job.yaml")
    assert load_spec(PROJECT / "job-torchrun.yaml").distribution.kind == "torchrun"
    assert {m.name for m in spec.metric_definitions} == {"train_loss", "test_loss", "test_acc"}
    out = trained["proc"].stdout.splitlines()
    for metric in spec.metric_definitions:
        values = [float(m.group(1)) for line in out if (m := re.search(metric.regex, line))]
        assert len(values) == 3, metric.name


def test_resume_from_checkpoint(
    trained: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A restarted job continues after the last checkpointed epoch (run in-process: fast)."""
    assert trained["proc"].returncode == 0, trained["proc"].stderr
    for key in [k for k in os.environ if k.startswith("SM_")] + ["WORLD_SIZE"]:
        monkeypatch.delenv(key, raising=False)
    train = load_module(CODE / "train.py", "quickstart_train", monkeypatch)
    args = [
        *("--epochs", "4", "--checkpoint-dir", str(trained["ckpt"])),
        *("--train", str(PROJECT / "data" / "train"), "--test", str(PROJECT / "data" / "test")),
        *("--model-dir", str(tmp_path / "model"), "--output-data-dir", str(tmp_path / "out")),
    ]
    assert train.main(args) == 0
    text = capsys.readouterr().out
    assert "resuming after epoch 3" in text
    assert [int(e) for e, *_ in METRIC_LINE.findall(text)] == [4]
    assert (tmp_path / "model" / "model.pth").is_file()


@pytest.fixture
def serving(trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Any]:
    """inference.py loaded from the model dir's code/, as the serving container does."""
    assert trained["proc"].returncode == 0, trained["proc"].stderr
    code_dir = trained["model_dir"] / "code"
    inference = load_module(code_dir / "inference.py", "quickstart_inference", monkeypatch)
    assert Path(sys.modules["model_def"].__file__ or "").parent == code_dir
    return inference, inference.model_fn(str(trained["model_dir"]))


def predict(inference: ModuleType, model: Any, body: Any, content_type: str, accept: str) -> Any:
    data = inference.input_fn(body, content_type)
    return inference.output_fn(inference.predict_fn(data, model), accept)


def test_inference_handlers_agree_across_formats(serving: tuple[ModuleType, Any]) -> None:
    inference, model = serving
    assert not model.training

    by_json = json.loads(predict(inference, model, json.dumps(ROWS), "application/json", "*/*"))
    assert by_json["classes"] == [0, 1, 2]
    probs = np.array(by_json["predictions"])
    assert probs.shape == (3, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    instances = json.dumps({"instances": ROWS}).encode()
    by_instances = json.loads(
        predict(inference, model, instances, "application/json; charset=utf-8", "application/json")
    )
    assert np.allclose(by_instances["predictions"], probs, atol=1e-6)

    csv_body = "x1,x2,x3,x4\n" + "\n".join(",".join(map(str, r)) for r in ROWS) + "\n"
    by_csv = predict(inference, model, csv_body.encode(), "text/csv; charset=utf-8", "text/csv")
    csv_probs = np.array([[float(v) for v in line.split(",")] for line in by_csv.splitlines()])
    assert np.allclose(csv_probs, probs, atol=1e-6)

    buf = io.BytesIO()
    np.save(buf, np.array(ROWS, dtype=np.float64))
    by_npy = predict(inference, model, buf.getvalue(), "application/x-npy", "application/x-npy")
    assert np.allclose(np.load(io.BytesIO(by_npy)), probs, atol=1e-6)

    one_row = json.loads(predict(inference, model, json.dumps(ROWS[0]), "application/json", ""))
    assert np.allclose(one_row["predictions"], probs[:1], atol=1e-6)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (json.dumps({"rows": ROWS}), "application/json", '"instances"'),
        (json.dumps([[1, 2, 3, 4], [1, 2]]), "application/json", "row 1 has 2 values"),
        (json.dumps([["a", 2, 3, 4]]), "application/json", "not a list of numbers"),
        ("1,2,3,4\n5,x,7,8\n", "text/csv", "line 2 has a non-numeric value"),
        ("", "text/csv", "no rows"),
        (b"not an npy file", "application/x-npy", "not a .npy array"),
        ("1,2,3,4", "application/xml", "unsupported content type"),
        ("[[1, 2, 3]]", "application/json", "expected rows of 4 features"),
    ],
    ids=[
        "bad-json",
        "no-instances",
        "ragged",
        "strings",
        "csv-text",
        "csv-empty",
        "bad-npy",
        "content-type",
        "feature-count",
    ],
)
def test_inference_rejects_bad_payloads(
    serving: tuple[ModuleType, Any], body: Any, content_type: str, message: str
) -> None:
    inference, model = serving
    with pytest.raises(ValueError, match=re.escape(message)):
        predict(inference, model, body, content_type, "application/json")


def test_inference_rejects_unsupported_accept(serving: tuple[ModuleType, Any]) -> None:
    inference, model = serving
    with pytest.raises(ValueError, match="unsupported accept type"):
        predict(inference, model, json.dumps(ROWS), "application/json", "text/html")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_torchrun_two_processes(tmp_path: Path) -> None:
    """torchrun --standalone --nproc_per_node 2: DDP over gloo, rank 0 alone prints and saves."""
    env = clean_env(tmp_path)
    env.update(
        {
            "SM_CHANNEL_TRAIN": str(PROJECT / "data" / "train"),
            "SM_CHANNEL_TEST": str(PROJECT / "data" / "test"),
            "SM_MODEL_DIR": str(tmp_path / "model"),
            "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
            "SM_NUM_GPUS": "0",
        }
    )
    cmd = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("train.py", "--epochs", "1", "--checkpoint-dir", str(tmp_path / "ckpt")),
    ]
    proc = subprocess.run(cmd, cwd=CODE, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "world size 2" in proc.stdout
    assert [int(e) for e, *_ in METRIC_LINE.findall(proc.stdout)] == [1]
    assert proc.stdout.count("saved model.pth") == 1
    assert (tmp_path / "model" / "model.pth").is_file()
    assert (tmp_path / "model" / "code" / "inference.py").is_file()
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    assert json.loads((tmp_path / "output" / "metrics.json").read_text())["epoch"] == 1
