"""Two runs compared: spec fields, hyperparameters, environment, image and code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trainer_gui.core import code_store
from trainer_gui.core.run_diff import MISSING, FieldChange, diff_code, diff_runs, flatten
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]

TIMEOUT = 120
SCRIPT = "import sys\nprint('loss=0.5', flush=True)\nLR = {lr}\n"


def test_flatten_names_channels_by_name_and_keeps_empty_containers() -> None:
    flat = flatten(
        {
            "compute": {"instance_count": 2},
            "channels": [{"name": "train", "source": "data"}],
            "tags": {},
            "metric_definitions": [{"regex": "a"}, {"regex": "b"}],
        }
    )
    assert flat == {
        "compute.instance_count": 2,
        "channels[train].name": "train",
        "channels[train].source": "data",
        "tags": {},
        "metric_definitions[0].regex": "a",
        "metric_definitions[1].regex": "b",
    }


def test_two_real_runs_differ_in_spec_hyperparameters_environment_and_one_code_line(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    first = job_spec(
        SCRIPT.format(lr=0.1),
        hyperparameters={"lr": 0.1, "epochs": 3},
        environment={"SEED": "1"},
    )
    a = service.submit(first)
    assert a.wait(TIMEOUT) is not None
    second = job_spec(
        SCRIPT.format(lr=0.01),
        hyperparameters={"lr": 0.01, "epochs": 3, "batch": 64},
        environment={"SEED": "2", "EXTRA": "x"},
        max_runtime_seconds=600,
    )
    b = service.submit(second)
    assert b.wait(TIMEOUT) is not None
    left, right = service.get(a.job_id), service.get(b.job_id)

    diff = diff_runs(left, right, service.spec_of)

    assert diff.spec == [FieldChange("max_runtime_seconds", 86400, 600)]
    assert diff.hyperparameters == [
        FieldChange("batch", MISSING, 64),
        FieldChange("lr", 0.1, 0.01),
    ]
    assert diff.environment == [
        FieldChange("EXTRA", MISSING, "x"),
        FieldChange("SEED", "1", "2"),
    ]
    assert diff.image is None and diff.code_note == ""
    assert [(c.path, c.kind) for c in diff.code] == [("train.py", "changed")]
    lines = diff.code[0].diff.splitlines()
    assert "-LR = 0.1" in lines and "+LR = 0.01" in lines
    assert f"--- {left.id}/train.py" in lines


def test_added_removed_and_binary_files(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rec = code_store.CodeRecorder(root=store)

    def manifest(files: dict[str, bytes]) -> code_store.Manifest:
        return code_store.Manifest({k: rec.keep(v, 0o644) for k, v in files.items()})

    left = manifest({"a.py": b"x = 1\n", "old.py": b"gone\n", "w.bin": b"\0\1\2"})
    right = manifest({"a.py": b"x = 1\n", "new.py": b"here\n", "w.bin": b"\0\1\2\3"})

    changes = diff_code(left, right, read=lambda d: code_store.read_object(d, store))

    assert [(c.path, c.kind) for c in changes] == [
        ("new.py", "added"),
        ("old.py", "removed"),
        ("w.bin", "changed"),
    ]
    assert "+here" in changes[0].diff.splitlines()
    assert "-gone" in changes[1].diff.splitlines()
    assert changes[2].diff == "" and changes[2].note.startswith("binary, sizes differ")


def test_a_run_without_a_manifest_says_its_code_cannot_be_compared(
    service: JobService, job_spec: SpecFactory
) -> None:
    handle = service.submit(job_spec(SCRIPT.format(lr=1)))
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    (Path(record.run_dir) / code_store.MANIFEST).unlink()

    diff = diff_runs(record, record, service.spec_of)

    assert diff.same is True
    assert "cannot be compared" in diff.code_note
