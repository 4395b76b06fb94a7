"""The parts every backend shares: staging, the driver's arguments, follow-and-finish."""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from trainer_gui.core import contract
from trainer_gui.core.aws.request import driver_arguments as sagemaker_arguments
from trainer_gui.core.aws.request import plan_locations
from trainer_gui.core.contract import HostLayout
from trainer_gui.core.runners.base import JobContext, JobHandle
from trainer_gui.core.runners.events import ArtifactReady, JobEvent, JobStatus, StatusChanged
from trainer_gui.core.runners.follow import Ending, Watch, final_status, follow_and_finish
from trainer_gui.core.runners.sagemaker import source_entries
from trainer_gui.core.runners.staging import code_entries, stage_code
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)


def _project(tmp_path: Path) -> None:
    """Next to job_spec's code/: a dependency folder, a requirements file and junk to skip."""
    code = tmp_path / "code"
    for junk in (".git/HEAD", "__pycache__/train.cpython-311.pyc", "venv/bin/python", "a.pyc"):
        (code / junk).parent.mkdir(parents=True, exist_ok=True)
        (code / junk).write_text("x")
    (code / "pkg").mkdir(exist_ok=True)
    (code / "pkg" / "model.py").write_text("M = 1\n")
    (tmp_path / "shared" / ".mypy_cache").mkdir(parents=True)
    (tmp_path / "shared" / "util.py").write_text("U = 1\n")
    (tmp_path / "shared" / ".mypy_cache" / "x").write_text("x")
    (tmp_path / "reqs.txt").write_text("numpy\n")


def test_the_local_code_folder_holds_what_sagemaker_uploads(
    tmp_path: Path, job_spec: SpecFactory
) -> None:
    _project(tmp_path)
    spec = job_spec(
        "print(1)\n",
        source={
            "source_dir": "code",
            "entry_point": "train.py",
            "dependencies": ["shared"],
            "requirements": "reqs.txt",
        },
    )
    names = [name for _, name in code_entries(spec)]
    assert names == ["pkg/model.py", "requirements.txt", "shared/util.py", "train.py"]
    staged = stage_code(spec, tmp_path / "run" / "code")
    on_disk = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    assert on_disk == names
    assert (staged / "requirements.txt").read_text() == "numpy\n"
    assert [name for _, name in source_entries(spec)] == names  # sourcedir.tar.gz's members


def test_a_command_job_still_gets_its_source_folder(tmp_path: Path, job_spec: SpecFactory) -> None:
    spec = job_spec("print(1)\n", source={"source_dir": "code", "command": ["python", "train.py"]})
    assert [name for _, name in code_entries(spec)] == ["train.py"]


def test_the_driver_arguments_are_one_list_seen_from_where_the_job_runs(
    tmp_path: Path, job_spec: SpecFactory
) -> None:
    (tmp_path / "drivers").mkdir()
    (tmp_path / "drivers" / "launch.py").write_text("")
    spec = job_spec(
        "print(1)\n",
        distribution={"kind": "custom", "driver_dir": "drivers", "driver_script": "launch.py"},
    )
    host = tmp_path / "hosts" / "algo-1" / "input" / "data" / "sm_drivers"
    assert contract.driver_arguments(spec, host) == ["--custom-driver", str(host / "launch.py")]
    container = ["--custom-driver", "/opt/ml/input/data/sm_drivers/launch.py"]
    assert contract.driver_arguments(spec) == container
    assert sagemaker_arguments(spec) == container
    command = job_spec("", source={"command": ["python", "-c", "print(1)"]})
    assert contract.driver_arguments(command, PurePosixPath("/x")) == [
        "--", "python", "-c", "print(1)",
    ]  # fmt: skip


# -- the final status -------------------------------------------------------------------------


def _layouts(tmp_path: Path, hosts: int) -> list[HostLayout]:
    layouts = []
    for i in range(1, hosts + 1):
        layout = HostLayout(f"algo-{i}", tmp_path / f"algo-{i}")
        layout.output_dir.mkdir(parents=True)
        layouts.append(layout)
    return layouts


def _ctx(tmp_path: Path, job_spec: SpecFactory, **over: object) -> JobContext:
    return JobContext("job-1", job_spec("print(1)\n", **over), tmp_path / "run")


def test_every_host_exiting_0_completes(tmp_path: Path, job_spec: SpecFactory) -> None:
    ctx = _ctx(tmp_path, job_spec)
    layouts = _layouts(tmp_path, 2)
    ending = Ending({"algo-1": 0, "algo-2": 0})
    assert final_status(ctx, layouts, ending) == (JobStatus.COMPLETED, "Training job completed")


def test_a_stop_request_wins_with_its_reason(tmp_path: Path, job_spec: SpecFactory) -> None:
    ctx = _ctx(tmp_path, job_spec)
    ctx.request_stop("MaxRuntimeExceeded: too long")
    ending = Ending({"algo-1": 143})
    assert final_status(ctx, _layouts(tmp_path, 1), ending) == (
        JobStatus.STOPPED,
        "MaxRuntimeExceeded: too long",
    )


def test_the_first_failed_host_names_the_reason(tmp_path: Path, job_spec: SpecFactory) -> None:
    ctx = _ctx(tmp_path, job_spec)
    layouts = _layouts(tmp_path, 2)
    ending = Ending({"algo-1": 137, "algo-2": 3}, "algo-2", {"algo-2": ["boom"]})
    assert final_status(ctx, layouts, ending) == (
        JobStatus.FAILED,
        "algo-2 exited with code 3; last lines:\nboom",
    )
    (layouts[1].output_dir / "failure").write_text("out of memory")
    assert final_status(ctx, layouts, ending) == (JobStatus.FAILED, "algo-2: out of memory")


def test_a_host_that_ended_unwatched_is_judged_by_its_files(
    tmp_path: Path, job_spec: SpecFactory
) -> None:
    ctx = _ctx(tmp_path, job_spec)
    layouts = _layouts(tmp_path, 1)
    assert final_status(ctx, layouts, Ending()) == (
        JobStatus.FAILED,
        "algo-1 ended without writing /opt/ml/output/success",
    )
    (layouts[0].output_dir / "success").write_text("")
    assert final_status(ctx, layouts, Ending())[0] is JobStatus.COMPLETED


# -- follow and finish ------------------------------------------------------------------------


class _Forever(Watch):
    """A job that runs until stopped; records what the skeleton asked of it."""

    def __init__(self, ctx: JobContext, fail_settle: bool = False) -> None:
        self.ctx = ctx
        self.stopped = False
        self.released = False
        self.fail_settle = fail_settle

    def running(self) -> bool:
        return not self.stopped

    def pump(self, final: bool) -> None:
        del final

    def pause(self, seconds: float) -> None:
        time.sleep(min(seconds, 0.01))

    def settle(self) -> Ending:
        if self.fail_settle:
            raise RuntimeError("engine went away")
        return Ending({"algo-1": 143})

    def release(self) -> None:
        self.released = True


@pytest.fixture
def events() -> list[JobEvent]:
    return []


def test_the_deadline_stops_the_job_with_sagemakers_reason(
    tmp_path: Path, job_spec: SpecFactory, events: list[JobEvent]
) -> None:
    ctx = _ctx(tmp_path, job_spec, max_runtime_seconds=60)
    ctx.started_at = time.time() - 61
    watch = _Forever(ctx)

    def stop(c: JobContext) -> None:
        watch.stopped = True

    handle = JobHandle(ctx.job_id)
    follow_and_finish(ctx, events.append, handle, watch, stop)
    assert handle.status is JobStatus.STOPPED
    last = [e for e in events if isinstance(e, StatusChanged)][-1]
    assert last.message.startswith("MaxRuntimeExceeded")
    assert {e.kind for e in events if isinstance(e, ArtifactReady)} == {"model", "output"}
    assert watch.released


def test_an_internal_error_fails_the_job_and_still_releases(
    tmp_path: Path, job_spec: SpecFactory, events: list[JobEvent]
) -> None:
    ctx = _ctx(tmp_path, job_spec)
    watch = _Forever(ctx, fail_settle=True)
    watch.stopped = True
    handle = JobHandle(ctx.job_id)
    follow_and_finish(ctx, events.append, handle, watch, lambda c: None)
    assert handle.status is JobStatus.FAILED
    last = [e for e in events if isinstance(e, StatusChanged)][-1]
    assert "engine went away" in last.message
    assert watch.released


# -- a real local job through the skeleton ----------------------------------------------------


def test_a_local_job_copies_its_archives_to_a_local_output_path(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    script = """
        import os
        open(os.path.join(os.environ["SM_MODEL_DIR"], "weights.bin"), "w").write("w")
    """
    handle = service.submit(job_spec(script, output_path="results"))
    assert handle.wait(120) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    dest = tmp_path / "results" / record.id / "output"
    with tarfile.open(dest / "model.tar.gz") as tar:
        assert tar.getnames() == ["weights.bin"]
    assert (dest / "output.tar.gz").is_file()


def test_sagemaker_uploads_code_whenever_the_local_backends_stage_some(
    tmp_path: Path, job_spec: SpecFactory
) -> None:
    _project(tmp_path)
    spec = job_spec(
        "", source={"command": ["python", "-m", "shared.util"], "dependencies": ["shared"]}
    )
    assert [name for _, name in code_entries(spec)] == ["shared/util.py"]
    plan = plan_locations(spec, "job-1", "eu-west-1", "arn:role", "img", False, "s3://b/p")
    assert plan.code_uri == "s3://b/p/job-1/source/sourcedir.tar.gz"
    bare = job_spec("", source={"command": ["python", "-c", "print(1)"]})
    assert (
        plan_locations(bare, "job-2", "eu-west-1", "arn:role", "img", False, "s3://b/p").code_uri
        is None
    )
