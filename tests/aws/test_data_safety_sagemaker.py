"""The SageMaker backend only reads the project: it stages into the run folder and uploads
(issue 13, item 1; the local twins are in tests/core/test_data_safety.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from moto_support import Script
from sm_helpers import make_spec, service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))
from test_data_safety import snapshot


@pytest.mark.parametrize("outcome", ["Completed", "Failed"])
def test_a_sagemaker_job_leaves_the_project_as_it_was(
    aws: Any, project: Path, app_home: Path, outcome: str
) -> None:
    for where in (project, project / "data", project / "data" / "sub", project / "code"):
        (where / "canary.txt").write_text(f"canary in {where.name}\n")
    (project / "drivers").mkdir()
    (project / "drivers" / "launch.py").write_text("print('custom')\n")
    aws.sim.script(
        "mnist",
        Script(outcome=outcome, model_files={"model.pt": b"W"}, output_files={"m.json": b"{}"}),
    )
    svc = service()
    spec = make_spec(
        project,
        channels=[{"name": "train", "source": "data"}, {"name": "sub", "source": "data/sub"}],
        distribution={"kind": "custom", "driver_dir": "drivers", "driver_script": "launch.py"},
    )
    before = snapshot(project)
    handle = svc.submit(spec)
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == outcome, record.failure_reason
    assert snapshot(project) == before
    assert Path(record.run_dir).resolve().is_relative_to(app_home.resolve())


def test_large_code_is_reported_before_the_upload(aws: Any, project: Path) -> None:
    """Item 11: a sparse 512 MB file in the source folder is named on the status line."""
    with open(project / "code" / "big.bin", "wb") as f:
        f.truncate(512 * 1024 * 1024)
    aws.sim.script("mnist", Script(model_files={"model.pt": b"W"}))
    svc = service()
    handle = svc.submit(make_spec(project))
    handle.wait(60)
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    messages = [e.message for e in svc.store.status_history(record.id) if e.status == "Starting"]
    assert any("big.bin (537 MB)" in m for m in messages), messages
