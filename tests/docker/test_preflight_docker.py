"""A preflight runs in the job's own image when Docker has it: the probe is a docker job on the
slice, passes at its first metric and checkpoint, and is stopped (no container is left)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.preflight import PreflightLimits
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec import spec_from_dict
from trainer_gui.services.jobs import JobService
from trainer_gui.services.preflight import run_preflight

IMAGE = "trainer-gui/train-cpu:latest"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"


@pytest.mark.docker
def test_a_preflight_runs_in_the_jobs_image_and_stops_at_its_first_checkpoint(
    tmp_path: Path, service: JobService, docker_client: Any
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import os, time\n"
        "n = len(os.listdir('/opt/ml/input/data/train'))\n"
        "print(f'files={n}', flush=True)\n"
        "print('loss=0.75', flush=True)\n"
        "open('/opt/ml/checkpoints/epoch-0.pt', 'w').write('c')\n"
        "time.sleep(600)\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    for i in range(12):
        (data / f"part-{i:02d}.csv").write_text("a,b\n1,2\n")
    spec = spec_from_dict(
        {
            "name": "in-image",
            "image": IMAGE,
            "source": {"source_dir": "code", "entry_point": "train.py"},
            "compute": {"backend": "sagemaker", "instance_type": "ml.m5.xlarge"},
            "channels": [{"name": "train", "source": "data"}],
            "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
            "sagemaker": {"role_arn": ROLE, "region": "us-east-1"},
        },
        base_dir=tmp_path,
    )
    result = run_preflight(service, spec, limits=PreflightLimits(max_files=3, time_limit=120))
    assert result.ok, result.summary()
    assert result.backend == "docker"
    assert result.checkpoint == "algo-1/checkpoints/epoch-0.pt"
    assert result.job_id is not None
    record = service.get(result.job_id)
    assert record.status == JobStatus.STOPPED.value
    log = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "files=3" in log
