"""The docker backend writes nothing outside the run folder (issue 13, item 1).

Canaries beside every path the runner mounts or creates (tests/core/test_data_safety.py has the
helpers and the local-process twin); only the documented outputs appear: the output_path copy
and what the script writes into its checkpoint_dir.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer_gui.core import safety
from trainer_gui.core.contract import HostLayout
from trainer_gui.core.runners.base import JobContext
from trainer_gui.core.runners.docker import LAUNCH_DRIVER, DockerRunner
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.spec.model import ChannelSpec
from trainer_gui.services.jobs import JobService

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))
from test_data_safety import (
    assert_only_documented_outputs,
    canary_spec,
    plant_canaries,
    snapshot,
)

pytestmark = pytest.mark.docker

TIMEOUT = 300
SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)


@pytest.mark.parametrize("fail", [False, True], ids=["completes", "fails"])
def test_a_docker_job_leaves_every_canary_as_it_was(
    service: JobService, tmp_path: Path, job_spec: SpecFactory, fail: bool
) -> None:
    plant_canaries(tmp_path)
    spec = canary_spec(job_spec, "docker", fail)
    before = snapshot(tmp_path)
    handle = service.submit(spec)
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == ("Failed" if fail else "Completed"), record.failure_reason
    assert_only_documented_outputs(before, snapshot(tmp_path), record.id)


def test_a_dot_channel_never_becomes_a_mount(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory
) -> None:
    """Validation bypassed: `.` would mount the channel over /opt/ml/input/data itself."""
    spec = job_spec("print('hi')\n", backend="docker")
    bad = spec.model_copy(
        update={"channels": [ChannelSpec.model_construct(name=".", source="data")]}
    )
    run = app_home / "runs" / "t-1"
    layout = HostLayout("algo-1", run / "hosts" / "algo-1")
    with pytest.raises(safety.OutsideRunFolder, match="not a plain folder name"):
        DockerRunner(client=object())._mounts(JobContext("t-1", bad, run), layout, LAUNCH_DRIVER)


def test_a_writable_mount_outside_the_run_folder_is_refused(
    app_home: Path, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec("print('hi')\n", backend="docker")
    run = app_home / "runs" / "t-1"
    layout = HostLayout("algo-1", tmp_path / "data")  # model/output would be the user's folder
    with pytest.raises(safety.OutsideRunFolder, match="not inside the run folder"):
        DockerRunner(client=object())._mounts(JobContext("t-1", spec, run), layout, LAUNCH_DRIVER)
