"""A local output_path gets the job's archives from the docker backend too (issue 11, defect 1)."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker

TIMEOUT = 300
SpecFactory = Callable[..., JobSpec]  # the job_spec fixture (tests/conftest.py)

SCRIPT = """
    import os
    open(os.path.join(os.environ["SM_MODEL_DIR"], "weights.bin"), "w").write("w")
    open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt"), "w").write("ok")
    print("loss=0.5", flush=True)
"""


def test_a_docker_job_copies_its_archives_to_a_local_output_path(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec(SCRIPT, backend="docker", output_path="results")
    handle = service.submit(spec)
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    dest = tmp_path / "results" / record.id / "output"
    assert sorted(p.name for p in dest.iterdir()) == ["model.tar.gz", "output.tar.gz"]
    with tarfile.open(dest / "model.tar.gz") as tar:
        assert tar.getnames() == ["weights.bin"]
    with tarfile.open(dest / "output.tar.gz") as tar:
        assert tar.getnames() == ["report.txt"]
    # The same archives as in the run folder, which the app keeps using.
    artifacts = record.backend_ids["artifacts"]
    assert (dest / "model.tar.gz").read_bytes() == Path(artifacts["model"]).read_bytes()
