"""The code each run saw is kept once per content, with a manifest per run."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from trainer_gui.core import code_store
from trainer_gui.core.runners.staging import stage_code
from trainer_gui.core.spec import JobSpec, spec_from_dict


def _spec(project: Path) -> JobSpec:
    return spec_from_dict(
        {"name": "t", "source": {"source_dir": "code", "entry_point": "train.py"}},
        base_dir=project,
    )


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "code" / "pkg").mkdir(parents=True)
    (project / "code" / "train.py").write_text("print('loss=1')\n")
    (project / "code" / "pkg" / "model.py").write_text("LAYERS = 3\n")
    return project


def _objects(root: Path) -> list[Path]:
    return sorted(p for p in (root / "objects").rglob("*") if p.is_file())


def test_identical_code_of_two_runs_is_stored_once(tmp_path: Path, app_home: Path) -> None:
    project = _project(tmp_path)
    (project / "code" / "copy.py").write_text("LAYERS = 3\n")  # same bytes as pkg/model.py
    spec = _spec(project)
    for run in ("run-a", "run-b"):
        run_dir = app_home / "runs" / run
        stage_code(spec, run_dir / "code", run_dir=run_dir)

    objects = _objects(app_home / code_store.STORE_DIR)
    assert len(objects) == 2  # train.py, and one object for the two identical files
    for obj in objects:
        assert hashlib.sha256(obj.read_bytes()).hexdigest() == obj.parent.name + obj.name
        assert not obj.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    a = code_store.load_manifest(app_home / "runs" / "run-a")
    b = code_store.load_manifest(app_home / "runs" / "run-b")
    assert a is not None and a == b
    assert set(a.files) == {"copy.py", "pkg/model.py", "train.py"}
    # The staged copy is the job's own (writable, not a link to the object).
    staged = app_home / "runs" / "run-a" / "code" / "train.py"
    assert staged.read_text() == "print('loss=1')\n"
    assert staged.stat().st_ino not in {o.stat().st_ino for o in objects}


def test_manifest_round_trip_gives_back_each_files_bytes_and_mode(
    tmp_path: Path, app_home: Path
) -> None:
    project = _project(tmp_path)
    (project / "code" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(project / "code" / "run.sh", 0o755)
    run_dir = app_home / "runs" / "r"
    stage_code(_spec(project), run_dir / "code", run_dir=run_dir)

    manifest = code_store.load_manifest(run_dir)
    assert manifest is not None
    again = code_store.Manifest.from_json(manifest.to_json())
    assert again == manifest
    entry = manifest.files["run.sh"]
    assert entry.mode == 0o755 and entry.size == len("#!/bin/sh\n")
    assert entry.sha256 is not None
    assert code_store.read_object(entry.sha256) == b"#!/bin/sh\n"
    model = manifest.files["pkg/model.py"]
    assert model.sha256 is not None
    assert code_store.read_object(model.sha256) == b"LAYERS = 3\n"


def test_a_link_leading_out_of_the_source_folder_is_not_kept(
    tmp_path: Path, app_home: Path
) -> None:
    project = _project(tmp_path)
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("private\n")
    (project / "code" / "secret.txt").symlink_to(secret)
    run_dir = app_home / "runs" / "r"
    stage_code(_spec(project), run_dir / "code", run_dir=run_dir)

    manifest = code_store.load_manifest(run_dir)
    assert manifest is not None
    entry = manifest.files["secret.txt"]
    assert entry.sha256 is None and "link leading out" in entry.note
    contents = {o.read_bytes() for o in _objects(app_home / code_store.STORE_DIR)}
    assert b"private\n" not in contents
    assert secret.read_text() == "private\n"  # untouched


def test_a_link_planted_in_the_store_is_not_written_through(tmp_path: Path, app_home: Path) -> None:
    project = _project(tmp_path)
    digest = hashlib.sha256(b"print('loss=1')\n").hexdigest()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    objects = app_home / code_store.STORE_DIR / "objects"
    objects.mkdir(parents=True)
    (objects / digest[:2]).symlink_to(elsewhere, target_is_directory=True)
    run_dir = app_home / "runs" / "r"
    stage_code(_spec(project), run_dir / "code", run_dir=run_dir)  # the job still starts

    assert list(elsewhere.iterdir()) == []
    manifest = code_store.load_manifest(run_dir)
    assert manifest is not None
    assert manifest.files["train.py"].sha256 is None
    assert "could not be kept" in manifest.files["train.py"].note
    assert (run_dir / "code" / "train.py").read_text() == "print('loss=1')\n"


def test_a_file_over_the_limit_is_staged_but_only_noted(tmp_path: Path) -> None:
    project = _project(tmp_path)
    code_dir = tmp_path / "run" / "code"
    code_dir.mkdir(parents=True)
    store = tmp_path / "store"
    recorder = code_store.CodeRecorder([project / "code"], root=store, max_bytes=5)
    recorder.copy(code_dir, project / "code" / "train.py", code_dir / "train.py", "train.py")

    assert (code_dir / "train.py").read_text() == "print('loss=1')\n"
    entry = recorder.manifest.files["train.py"]
    assert entry.sha256 is None and "not kept" in entry.note
    assert not (store / "objects").exists()


def test_a_damaged_object_reads_as_missing(tmp_path: Path) -> None:
    recorder = code_store.CodeRecorder(root=tmp_path / "store")
    entry = recorder.keep(b"x = 1\n", 0o644)
    assert entry.sha256 is not None
    path = code_store.object_path(tmp_path / "store", entry.sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"x = 2\n")
    assert code_store.read_object(entry.sha256, tmp_path / "store") is None
    with pytest.raises(ValueError):
        code_store.object_path(tmp_path, "../../etc")


def test_packed_code_is_kept_without_a_copy(tmp_path: Path, app_home: Path) -> None:
    from trainer_gui.core.runners.staging import code_entries, keep_code

    project = _project(tmp_path)
    spec = _spec(project)
    run_dir = app_home / "runs" / "sm"
    run_dir.mkdir(parents=True)
    keep_code(spec, code_entries(spec), run_dir)

    manifest = code_store.load_manifest(run_dir)
    assert manifest is not None and set(manifest.files) == {"pkg/model.py", "train.py"}
    digest = manifest.files["train.py"].sha256
    assert digest is not None and code_store.read_object(digest) == b"print('loss=1')\n"
    assert not (run_dir / "code").exists()
