"""Nothing outside a run's folder is written or removed (issue 13, items 1 and 11).

Channel names follow SageMaker's rule minus `.` and `..`; `core.safety` is the one gate every
write, link and removal of run preparation goes through; a job, run for real, leaves every file
around the paths it touches as it was; a sparse file in the source folder stays sparse.
"""

from __future__ import annotations

import functools
import glob
import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer_gui.core import safety
from trainer_gui.core.errors import SpecError
from trainer_gui.core.runners import local_process
from trainer_gui.core.runners.base import JobContext
from trainer_gui.core.runners.events import JobStatus, StatusChanged
from trainer_gui.core.runners.local_process import LocalProcessRunner
from trainer_gui.core.runners.staging import stage_code
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.spec.io import spec_from_dict
from trainer_gui.core.spec.model import ChannelSpec
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)
TIMEOUT = 120


# -- channel names ---------------------------------------------------------------------------


@functools.cache
def _botocore_channel_name() -> dict[str, Any]:
    import botocore

    pattern = os.path.join(os.path.dirname(botocore.__file__), "data", "sagemaker", "*")
    models = sorted(glob.glob(os.path.join(pattern, "service-2.json.gz")))
    assert models, "botocore ships no SageMaker service model"
    with gzip.open(models[-1], "rt", encoding="utf-8") as f:
        shapes = json.load(f)["shapes"]
    assert shapes["Channel"]["members"]["ChannelName"]["shape"] == "ChannelName"
    shape: dict[str, Any] = shapes["ChannelName"]
    return shape


NAMES = [
    "train",
    "Train-1",
    "validation_set",
    "a.b",
    ".hidden",
    "...",
    "-",
    "_",
    "sm_drivers",
    "a" * 64,
    "a" * 65,
    "",
    ".",
    "..",
    "a b",
    "a/b",
    "../train",
    "a\\b",
    "trän",
    "train\n",
    "\ntrain",
    "tr:ain",
    "a\x00b",
    "train*",
]


def _accepted(name: str, base: Path | None) -> bool:
    spec = {
        "name": "t",
        "source": {"command": ["true"]},
        "channels": [{"name": name, "source": "data"}],
    }
    try:
        spec_from_dict(spec, base_dir=base)
    except SpecError as exc:
        assert any("channel name" in p for p in exc.problems), exc.problems
        return False
    return True


def test_channel_names_follow_sagemakers_rule_except_dot_and_dot_dot(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    shape = _botocore_channel_name()
    for name in NAMES:
        sagemaker = (
            shape["min"] <= len(name) <= shape["max"]
            and re.fullmatch(shape["pattern"], name) is not None
        )
        assert _accepted(name, tmp_path) == (sagemaker and name not in (".", "..")), name


@settings(max_examples=150, deadline=None)
@given(name=st.text(alphabet="aZ09.-_/\\ \n:é*", max_size=70))
def test_channel_names_agree_with_sagemaker_on_generated_names(name: str) -> None:
    shape = _botocore_channel_name()
    sagemaker = (
        shape["min"] <= len(name) <= shape["max"]
        and re.fullmatch(shape["pattern"], name) is not None
    )
    assert _accepted(name, None) == (sagemaker and name not in (".", "..")), name


@pytest.mark.parametrize("name", [".", ".."])
def test_a_dot_channel_name_is_refused_with_the_field_and_the_fix(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / "data").mkdir()
    spec = {"name": "t", "source": {"command": ["true"]}, "channels": {name: "data"}}
    with pytest.raises(SpecError) as err:
        spec_from_dict(spec, base_dir=tmp_path)
    assert "channels" in str(err.value) and "name" in str(err.value)
    assert f"channel name {name!r} is not a folder name" in str(err.value)
    assert "e.g. train" in str(err.value)


# -- the gate --------------------------------------------------------------------------------


def test_the_gate_refuses_paths_outside_the_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "input").mkdir(parents=True)
    user = tmp_path / "user"
    (user / "train").mkdir(parents=True)
    (run / "input" / "data").symlink_to(user)
    assert safety.inside_run(run, run / "input" / "x") == (run / "input" / "x").resolve()
    for path in (
        tmp_path / "elsewhere",
        run,  # the folder itself is not removed through the gate either
        run / "input" / "data" / "train",  # through a link that leads out
    ):
        with pytest.raises(safety.OutsideRunFolder, match="not inside the run folder"):
            safety.remove(run, path)
        assert (user / "train").is_dir()
    for dots in (run / "input" / "..", run / "input" / ".." / ".."):
        with pytest.raises(safety.OutsideRunFolder, match="names no file"):
            safety.remove(run, dots)
    with pytest.raises(safety.OutsideRunFolder):
        safety.write_text(run, run / "input" / "data" / "x.json", "{}")
    with pytest.raises(safety.OutsideRunFolder):
        safety.copy_file(run, tmp_path / "user" / "train", run / "input" / "data" / "y")
    assert sorted(p.name for p in user.iterdir()) == ["train"]


def test_removing_a_link_removes_the_link_not_what_it_points_to(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    user = tmp_path / "user"
    user.mkdir()
    (user / "keep.txt").write_text("precious")
    (run / "data").symlink_to(user, target_is_directory=True)
    safety.remove(run, run / "data")
    assert not (run / "data").exists() and (user / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x"])
def test_a_channel_folder_must_be_one_plain_name(tmp_path: Path, name: str) -> None:
    from trainer_gui.core.contract import HostLayout

    with pytest.raises(safety.OutsideRunFolder, match="not a plain folder name"):
        HostLayout("algo-1", tmp_path).channel_dir(name)


def _ctx(spec: JobSpec, app_home: Path) -> JobContext:
    return JobContext("t-1", spec, app_home / "runs" / "t-1")


def test_the_reported_dot_channel_no_longer_deletes_the_users_folder(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory
) -> None:
    """`channels: [{name: ".", source: data}, {name: train, source: other}]` used to link the
    run's input/data to `data` and then rmtree `data/train`. Validation is bypassed here."""
    spec = job_spec("print('hi')\n")
    (tmp_path / "data" / "train").mkdir()
    (tmp_path / "data" / "train" / "part-0.csv").write_text("x\n1\n")
    (tmp_path / "other").mkdir()
    bad = spec.model_copy(
        update={
            "channels": [
                ChannelSpec.model_construct(name=".", source="data"),
                ChannelSpec.model_construct(name="train", source="other"),
            ]
        }
    )
    with pytest.raises(safety.OutsideRunFolder):
        LocalProcessRunner()._prepare(_ctx(bad, app_home), lambda event: None)
    assert (tmp_path / "data" / "train" / "part-0.csv").read_text() == "x\n1\n"
    assert (tmp_path / "data" / "rows.csv").exists()


def test_a_channel_link_inside_the_run_cannot_carry_a_removal_out(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory
) -> None:
    """Even past every name check: input/data already a link to the user's folder (what `.`
    made of it), linking the next channel is refused instead of replacing `data/train`."""
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "part-0.csv").write_text("x\n1\n")
    run = app_home / "runs" / "t-1"
    (run / "hosts" / "algo-1" / "input").mkdir(parents=True)
    (run / "hosts" / "algo-1" / "input" / "data").symlink_to(tmp_path / "data")
    with pytest.raises(safety.OutsideRunFolder, match="not inside the run folder"):
        local_process._link(
            run, tmp_path / "other", run / "hosts" / "algo-1" / "input" / "data" / "train"
        )
    assert (tmp_path / "data" / "train" / "part-0.csv").read_text() == "x\n1\n"


# -- canaries around a real job ---------------------------------------------------------------

Snapshot = dict[str, tuple[str, str]]


def snapshot(root: Path) -> Snapshot:
    """Every path under `root` (links not followed): its kind and content digest or target."""
    seen: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                seen[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                seen[rel] = ("dir", "")
            else:
                seen[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return seen


def plant_canaries(user: Path) -> None:
    """A canary next to every path a runner touches: the spec folder, each channel's parent,
    inside and beside it, the checkpoint folder's parent, the output_path's parent."""
    for where in (
        user,
        user / "data",
        user / "data" / "train",
        user / "data-sibling",
        user / "code",
        user / "work",
        user / "work" / "ckpt",
        user / "out",
        user / "out" / "results",
        user / "single",
    ):
        where.mkdir(parents=True, exist_ok=True)
        (where / "canary.txt").write_text(f"canary in {where.name}\n")
    (user / "single" / "one.csv").write_text("a\n1\n")
    (user / "data" / "train" / "part-0.csv").write_text("a\n2\n")


CANARY_SCRIPT = """
    import os, sys
    ckpt = os.path.join(os.path.dirname(os.environ["SM_MODEL_DIR"]), "checkpoints")
    open(os.path.join(ckpt, "step-1.pt"), "w").write("state")
    open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"), "w").write("m")
    print("loss=0.5", flush=True)
    if os.environ.get("FAIL") == "1":
        raise SystemExit("failing on purpose")
"""


def canary_spec(job_spec: SpecFactory, backend: str, fail: bool) -> JobSpec:
    return job_spec(
        CANARY_SCRIPT,
        backend=backend,
        channels=[
            {"name": "train", "source": "data"},
            {"name": "nested", "source": "data/train"},
            {"name": "one", "source": "single/one.csv"},
        ],
        checkpoint_dir="work/ckpt",
        output_path="out/results",
        environment={"FAIL": "1" if fail else "0"},
    )


def assert_only_documented_outputs(before: Snapshot, after: Snapshot, job_id: str) -> None:
    changed = {k for k in before if after.get(k) != before[k]}
    assert not changed, f"changed or removed outside the run folder: {sorted(changed)}"
    allowed = {
        "work/ckpt/step-1.pt",  # written by the script into its checkpoint_dir
        f"out/results/{job_id}",
        f"out/results/{job_id}/output",
        f"out/results/{job_id}/output/model.tar.gz",
        f"out/results/{job_id}/output/output.tar.gz",
    }
    new = set(after) - set(before)
    assert new <= allowed, f"new outside the run folder: {sorted(new - allowed)}"
    assert "work/ckpt/step-1.pt" in new
    assert f"out/results/{job_id}/output/model.tar.gz" in new


@pytest.mark.parametrize("fail", [False, True], ids=["completes", "fails"])
def test_a_local_process_job_leaves_every_canary_as_it_was(
    service: JobService, tmp_path: Path, job_spec: SpecFactory, fail: bool
) -> None:
    plant_canaries(tmp_path)
    spec = canary_spec(job_spec, "local-process", fail)
    before = snapshot(tmp_path)
    handle = service.submit(spec)
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == ("Failed" if fail else "Completed"), record.failure_reason
    assert_only_documented_outputs(before, snapshot(tmp_path), record.id)


# -- item 11: a sparse file in the source folder ---------------------------------------------

APPARENT = 512 * 1024 * 1024


def _sparse_file(path: Path) -> None:
    with open(path, "wb") as f:
        f.write(b"head")
        f.truncate(APPARENT)
    if path.stat().st_blocks * 512 >= APPARENT // 2:
        pytest.skip("this filesystem does not keep sparse files")


def test_a_sparse_file_is_staged_sparse_and_the_size_is_reported(
    tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec("print('hi')\n")
    _sparse_file(tmp_path / "code" / "big.bin")
    warnings: list[str] = []
    code = stage_code(spec, tmp_path / "run" / "code", warn=warnings.append)
    staged = code / "big.bin"
    assert staged.stat().st_size == APPARENT
    assert staged.stat().st_blocks * 512 < 16 * 1024 * 1024  # not 512 MB of zeros on disk
    with open(staged, "rb") as f:
        assert f.read(4) == b"head"
        f.seek(APPARENT - 4)
        assert f.read() == b"\0\0\0\0"
    assert (code / "train.py").read_text() == "print('hi')\n"
    assert len(warnings) == 1
    assert "537 MB" in warnings[0] and "big.bin (537 MB)" in warnings[0]
    assert "channel" in warnings[0]


def test_small_code_gets_no_warning(tmp_path: Path, job_spec: SpecFactory) -> None:
    spec = job_spec("print('hi')\n")
    warnings: list[str] = []
    stage_code(spec, tmp_path / "run" / "code", warn=warnings.append)
    assert warnings == []


def test_the_local_runner_reports_large_code_on_its_status_line(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec("print('hi')\n")
    _sparse_file(tmp_path / "code" / "big.bin")
    events: list[Any] = []
    LocalProcessRunner()._prepare(_ctx(spec, app_home), events.append)
    messages = [
        e.message for e in events if isinstance(e, StatusChanged) and e.status == JobStatus.STARTING
    ]
    assert any("big.bin (537 MB)" in m for m in messages), messages
