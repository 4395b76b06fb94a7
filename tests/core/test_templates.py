"""The template gallery's core: every template makes a project that trains to Completed as
shipped, stores metrics, packs a model and serves it with its own handlers; making a project
writes nowhere but its folder, and bad input is refused with a clear message."""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.errors import UserError
from trainer_gui.core.serving.readout import read_classes
from trainer_gui.core.spec import load_spec, spec_from_text
from trainer_gui.core.templates import (
    Template,
    create_project,
    get_template,
    list_templates,
)
from trainer_gui.services.jobs import JobService

TIMEOUT = 180
EXPECTED = {
    "image-classification",
    "tabular-classification",
    "ddp-torchrun",
    "mpi-allreduce",
    "custom-driver",
    "bring-your-script",
}

Invoke = Callable[[Path, bytes, str], dict[str, Any]]


def tree_digest(folder: Path) -> dict[str, str]:
    """Every path under folder with a hash of its content (folders as 'dir')."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def invoke(tmp_path: Path) -> Iterator[Invoke]:
    """Unpack a model.tar.gz and send one request through its handlers, as the endpoint does.

    The handlers' folder goes on sys.path and their module into sys.modules; both are undone.
    """
    from trainer_gui.core.serving.runtime import ModelService

    saved_path = sys.path[:]
    before = set(sys.modules)
    counter = iter(range(100))

    def call(archive: Path, body: bytes, content_type: str) -> dict[str, Any]:
        model_dir = tmp_path / f"served-{next(counter)}"
        model_dir.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(model_dir, filter="data")
        assert (model_dir / "code" / "inference.py").is_file()
        service = ModelService(model_dir=str(model_dir))
        service.load()
        assert service.module is not None and service.predict_fn.user  # the template's own
        answer, media = service.invoke(body, content_type, "application/json")
        assert media == "application/json"
        result: dict[str, Any] = json.loads(answer)
        return result

    old_flag = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    yield call
    sys.dont_write_bytecode = old_flag
    sys.path[:] = saved_path
    for name in set(sys.modules) - before:  # the handlers and what they imported from tmp
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def run_to_completed(service: JobService, spec_path: Path, every_metric: bool = True) -> Any:
    """Run the spec; Completed, every defined metric stored (or one), and a model packed."""
    handle = service.submit(load_spec(spec_path))
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    spec = load_spec(spec_path)
    stored = set(service.store.metric_names(record.id))
    defined = {m.name for m in spec.metric_definitions}
    if every_metric:
        assert defined and defined <= stored, f"defined {defined}, stored {stored}"
    assert stored & defined, f"defined {defined}, stored {stored}"
    model = Path(record.backend_ids["artifacts"]["model"])
    assert model.is_file()
    return record, model


# -- the gallery -------------------------------------------------------------------------------


def test_the_gallery_lists_every_template_with_what_a_card_shows() -> None:
    templates = list_templates()
    assert {t.name for t in templates} >= EXPECTED
    for template in templates:
        assert template.title and template.description and template.tags
        assert template.backend in ("local-process", "docker")
        if template.wraps_folder:
            continue
        # checked without its folder: the data is only made when a project is created
        spec = spec_from_text((template.folder / template.info.spec).read_text())
        assert spec.metric_definitions, template.name
        handlers = (template.folder / "code" / "inference.py").read_text()
        for fn in ("def model_fn", "def input_fn", "def predict_fn", "def output_fn"):
            assert fn in handlers, (template.name, fn)
    assert get_template("ddp-torchrun").backend == "docker"


def test_an_unknown_template_names_the_ones_there_are(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no template named 'mnist'; choose one of: .*image-class"):
        create_project("mnist", tmp_path / "p")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_with_anything_in_it_is_refused_and_left_alone(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"is not empty \(1 entries: notes.txt\)"):
        create_project("tabular-classification", dest)
    assert tree_digest(dest) == {"notes.txt": hashlib.sha256(b"keep me").hexdigest()}
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        create_project("tabular-classification", tmp_path / "file")


def test_a_project_is_written_only_into_its_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    created = create_project("image-classification", empty)
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]
    files = tree_digest(empty)
    assert "template.yaml" not in files and not any("__pycache__" in f for f in files)
    assert {"job.yaml", "README.md", "make_data.py", "code/train.py", "code/inference.py"} <= set(
        files
    )
    # 3 classes x (60 train + 20 test) generated images, deterministic
    assert len([f for f in files if f.endswith(".pgm")]) == 240
    again = create_project("image-classification", tmp_path / "again")
    assert {k: v for k, v in tree_digest(again.folder).items() if k.startswith("data")} == {
        k: v for k, v in files.items() if k.startswith("data")
    }
    # the job is named after the folder; the spec is valid where it lies
    assert load_spec(created.spec_path).name == "empty"


def test_a_failure_half_way_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    broken = root / "broken"
    (broken / "code").mkdir(parents=True)
    (broken / "code" / "train.py").write_text("print('hi')\n")
    (broken / "make_data.py").write_text(
        "def generate(project_dir):\n    raise OSError('disk full')\n"
    )
    (broken / "job.yaml").write_text(
        "name: broken\nsource: {source_dir: code, entry_point: train.py}\n"
    )
    (broken / "template.yaml").write_text(
        "title: Broken\ndescription: fails\nbackend: local-process\ngenerate: make_data.py\n"
    )
    with pytest.raises(UserError, match="making the broken data failed: OSError: disk full"):
        create_project("broken", tmp_path / "new", root=root)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError):
        create_project("broken", tmp_path / "empty", root=root)
    assert list((tmp_path / "empty").iterdir()) == []


# -- each template, end to end ------------------------------------------------------------------


def _first(folder: Path, pattern: str) -> Path:
    return sorted(folder.rglob(pattern))[0]


@pytest.mark.slow
def test_image_classification_trains_and_classifies_a_test_image(
    service: JobService, tmp_path: Path, invoke: Invoke
) -> None:
    pytest.importorskip("torch")
    created = create_project("image-classification", tmp_path / "shapes")
    record, model = run_to_completed(service, created.spec_path)
    assert service.store.last_metrics(record.id)["test_acc"] > 0.5
    image = _first(created.folder / "data" / "test" / "cross", "*.pgm").read_bytes()
    answer = invoke(model, image, "image/x-portable-graymap")
    assert answer["classes"] == ["circle", "cross", "square"]
    assert len(answer["predictions"]) == 1 and sum(answer["predictions"][0]) == pytest.approx(
        1, abs=1e-4
    )
    assert answer["predicted"][0] in answer["classes"]
    # the Predict panel reads it as class bars named by the answer itself
    readout = read_classes(json.dumps(answer))
    assert readout is not None and readout.labels_from == "response"
    assert sorted(score.label for score in readout.rows[0]) == answer["classes"]


@pytest.mark.slow
def test_tabular_classification_trains_and_reads_its_own_test_csv(
    service: JobService, tmp_path: Path, invoke: Invoke
) -> None:
    pytest.importorskip("torch")
    created = create_project("tabular-classification", tmp_path / "fruit")
    _, model = run_to_completed(service, created.spec_path)
    rows = (created.folder / "data" / "test" / "fruit.csv").read_text().splitlines()[:4]
    answer = invoke(model, "\n".join(rows).encode(), "text/csv")
    assert answer["classes"] == ["apple", "orange", "pear"]
    assert len(answer["predictions"]) == 3 and len(answer["predicted"]) == 3
    one = {"weight_g": 150, "diameter_cm": 7.4, "sweetness": 6, "colour": "red"}
    assert len(invoke(model, json.dumps(one).encode(), "application/json")["predicted"]) == 1


@pytest.mark.slow
def test_custom_driver_starts_two_workers_that_train_together(
    service: JobService, tmp_path: Path, invoke: Invoke
) -> None:
    pytest.importorskip("torch")
    created = create_project("custom-driver", tmp_path / "driver")
    record, model = run_to_completed(service, created.spec_path)
    log_text = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "starts 2 workers of train.py (world size 2" in log_text
    assert "world_size=2" in log_text
    answer = invoke(model, b"[[0.1, 0.5], [-0.3, 0.2]]", "application/json")
    assert len(answer["predictions"]) == 2
    assert all(isinstance(v, float) for v in answer["predictions"])


# -- bring your SageMaker script --------------------------------------------------------------

USER_TRAIN = '''\
"""Somebody's existing SageMaker script: argparse hyperparameters, SM_* folders."""
import argparse, json, os, shutil

import torch

from net import Net

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--learning-rate", type=float, default=0.05)
p.add_argument("--verbose", action="store_true", default=False)
p.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
p.add_argument("--train", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
args = p.parse_args()
rows = [list(map(float, line.split(","))) for line in open(os.path.join(args.train, "xy.csv"))]
x = torch.tensor([[r[0]] for r in rows]); y = torch.tensor([[r[1]] for r in rows])
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
for epoch in range(args.epochs):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    print(f"Epoch {epoch} - loss: {loss.item():.5f}", flush=True)
torch.save(model.state_dict(), os.path.join(args.model_dir, "model.pth"))
os.makedirs(os.path.join(args.model_dir, "code"), exist_ok=True)
for name in ("inference.py", "net.py"):
    shutil.copy(name, os.path.join(args.model_dir, "code", name))
'''

USER_NET = """\
import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
    def forward(self, x):
        return self.lin(x)
"""

USER_INFERENCE = """\
import json, os
import torch
from net import Net
def model_fn(model_dir):
    model = Net()
    model.load_state_dict(torch.load(os.path.join(model_dir, "model.pth")))
    return model.eval()
def input_fn(body, content_type):
    return torch.tensor(json.loads(body), dtype=torch.float32).reshape(-1, 1)
def predict_fn(data, model):
    with torch.no_grad():
        return model(data).reshape(-1).tolist()
def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction}), "application/json"
"""


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my-sagemaker-project"
    folder.mkdir()
    for name, text in (
        ("train.py", USER_TRAIN),
        ("net.py", USER_NET),
        ("inference.py", USER_INFERENCE),
    ):
        (folder / name).write_text(textwrap.dedent(text))
    return folder


@pytest.mark.slow
def test_bring_your_script_wraps_a_folder_runs_it_and_never_changes_it(
    service: JobService, tmp_path: Path, user_folder: Path, invoke: Invoke
) -> None:
    pytest.importorskip("torch")
    data = tmp_path / "xy"
    data.mkdir()
    (data / "xy.csv").write_text("".join(f"{i / 10},{2 * i / 10 + 1}\n" for i in range(10)))
    before = tree_digest(user_folder)

    created = create_project(
        "bring-your-script", tmp_path / "wrapped", source=user_folder, channels={"train": data}
    )
    spec = load_spec(created.spec_path)
    assert spec.source.source_dir == str(user_folder) and spec.source.entry_point == "train.py"
    assert [(c.name, c.source) for c in spec.channels] == [("train", str(data))]
    # literal argparse defaults become hyperparameters; flags and SageMaker's paths do not
    assert spec.hyperparameters == {"epochs": 3, "learning-rate": 0.05}
    assert sorted(p.name for p in created.folder.iterdir()) == ["README.md", "job.yaml"]

    record, model = run_to_completed(service, created.spec_path, every_metric=False)
    losses = [s.value for _, s in service.store.metric_samples(record.id, name="loss")]
    assert len(losses) == 3
    assert invoke(model, b"[0.5, 1.0]", "application/json")["predictions"].__len__() == 2
    assert tree_digest(user_folder) == before


def test_bring_your_script_fills_channels_it_finds_with_empty_folders(
    tmp_path: Path, user_folder: Path
) -> None:
    created = create_project("bring-your-script", tmp_path / "p", source=user_folder)
    spec = load_spec(created.spec_path)
    assert [(c.name, c.source) for c in spec.channels] == [("train", "data/train")]
    assert (created.folder / "data" / "train").is_dir()
    assert any("SM_CHANNEL_TRAIN" in note and "data/train/" in note for note in created.notes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"needs the folder with your training script \(--source FOLDER\)"),
        ({"source": "missing"}, "is not a folder"),
        ({"entry_point": "../x.py"}, "must be a path inside the source folder"),
        ({"entry_point": "nope.py"}, "entry script 'nope.py' is not in"),
        ({"channels": {"train": "/no/such/data"}}, "channel train: /no/such/data does not exist"),
        ({"channels": {"a/b": "."}}, "channel name 'a/b'"),
    ],
)
def test_bring_your_script_refuses_bad_input_before_writing(
    tmp_path: Path, user_folder: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"source": user_folder, **kwargs}
    if kwargs == {}:
        args = {}
    elif args["source"] == "missing":
        args["source"] = tmp_path / "missing"
    with pytest.raises(UserError, match=message):
        create_project("bring-your-script", tmp_path / "p", **args)
    assert not (tmp_path / "p").exists()


def test_bring_your_script_never_puts_the_project_inside_the_folder(
    user_folder: Path,
) -> None:
    before = tree_digest(user_folder)
    with pytest.raises(UserError, match="is inside your script folder"):
        create_project("bring-your-script", user_folder / "project", source=user_folder)
    assert tree_digest(user_folder) == before


def test_bring_your_script_asks_for_the_entry_point_when_it_cannot_tell(tmp_path: Path) -> None:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "a.py").write_text("")
    (folder / "b.py").write_text("")
    with pytest.raises(
        UserError, match=r"name the entry script .*\(--entry-point\): one of a.py, b.py"
    ):
        create_project("bring-your-script", tmp_path / "p", source=folder)
    created = create_project("bring-your-script", tmp_path / "p", source=folder, entry_point="b.py")
    assert load_spec(created.spec_path).source.entry_point == "b.py"


def test_templates_with_their_own_code_refuse_a_source(tmp_path: Path, user_folder: Path) -> None:
    template: Template = get_template("tabular-classification")
    with pytest.raises(UserError, match="brings its own code"):
        create_project(template, tmp_path / "p", source=user_folder)
    assert not (tmp_path / "p").exists()
