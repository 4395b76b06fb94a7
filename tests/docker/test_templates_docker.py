"""The 2-host torchrun template, as shipped, trains to Completed on local Docker and serves."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

from trainer_gui.core.spec import load_spec
from trainer_gui.core.templates import create_project
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker
TIMEOUT = 300


def test_ddp_torchrun_template_trains_on_two_hosts_and_serves(
    service: JobService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = create_project("ddp-torchrun", tmp_path / "ddp")
    spec = load_spec(created.spec_path)
    assert (spec.compute.backend.value, spec.compute.instance_count) == ("docker", 2)
    assert spec.distribution.kind == "torchrun"

    handle = service.submit(spec)
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    stored = set(service.store.metric_names(record.id))
    assert {m.name for m in spec.metric_definitions} <= stored
    log_text = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "world_size=2" in log_text  # both hosts joined one process group

    pytest.importorskip("torch")
    from trainer_gui.core.serving.runtime import ModelService

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(record.backend_ids["artifacts"]["model"]) as tar:
        tar.extractall(model_dir, filter="data")
    monkeypatch.setattr(sys, "path", sys.path[:])
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    served = ModelService(model_dir=str(model_dir))
    served.load()
    body, media = served.invoke(b"[[0.1, 0.2], [2.0, 0.1]]", "application/json", None)
    answer = json.loads(body)
    assert media == "application/json" and answer["classes"] == ["inner", "outer"]
    assert len(answer["predictions"]) == 2
    sys.modules.pop("inference", None)  # this test's handlers, not the next one's
