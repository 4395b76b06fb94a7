"""Preflight: slices of the user's data, the probe spec, and real local probes judged live."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.errors import UserError
from trainer_gui.core.preflight import (
    PreflightLimits,
    checkpoint_written,
    preflight_root,
    preflight_spec,
    slice_channel,
)
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec import JobSpec, spec_from_dict
from trainer_gui.core.spec.model import Backend
from trainer_gui.services.jobs import JobService
from trainer_gui.services.preflight import run_preflight

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_slice_is_the_first_n_files_in_sorted_order_through_nested_folders(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    (data / "b").mkdir(parents=True)
    (data / "a").mkdir()
    for name in ("a/2.csv", "a/1.csv", "b/1.csv", "top.csv", "b/0.csv"):
        (data / name).write_text(name)
    before = _tree(data)
    info = slice_channel(data, tmp_path / "slice", PreflightLimits(max_files=3), "train")
    assert _files(tmp_path / "slice") == ["a/1.csv", "a/2.csv", "b/0.csv"]
    assert (tmp_path / "slice" / "b" / "0.csv").read_text() == "b/0.csv"
    assert (info.files, info.truncated) == (3, False)
    assert _tree(data) == before  # the user's folder is as it was


def test_a_slice_stops_before_the_size_limit_with_whole_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(5):
        (data / f"{i}.bin").write_bytes(b"x" * 400 * 1024)  # 0.4 MB each
    info = slice_channel(data, tmp_path / "slice", PreflightLimits(max_mb=1.0), "train")
    assert _files(tmp_path / "slice") == ["0.bin", "1.bin"]
    assert info.size == 800 * 1024


def test_a_first_file_over_the_limit_is_cut_after_its_last_whole_line(tmp_path: Path) -> None:
    data = tmp_path / "big.csv"
    line = b"1,2,3,4,5,6,7,8,9\n"
    data.write_bytes(line * 200_000)  # about 3.4 MB
    info = slice_channel(data, tmp_path / "slice", PreflightLimits(max_mb=1.0), "train")
    cut = (tmp_path / "slice" / "big.csv").read_bytes()
    assert info.truncated and 0 < len(cut) <= 1024 * 1024
    assert cut.endswith(b"\n") and len(cut) % len(line) == 0
    assert data.stat().st_size == len(line) * 200_000


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_a_slice_reads_linked_files_but_never_leads_out_of_its_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside")
    (outside / "deep" / "x.txt").write_text("deep")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("a")
    (data / "link.csv").symlink_to(outside / "secret.txt")
    (data / "linked-folder").symlink_to(outside / "deep", target_is_directory=True)
    slice_channel(data, tmp_path / "slice", PreflightLimits(), "train")
    got = tmp_path / "slice"
    assert _files(got) == ["a.csv", "link.csv"]  # a linked folder is not walked
    assert not (got / "link.csv").is_symlink()  # a copy: a write cannot reach the original
    (got / "link.csv").write_text("changed")
    assert (outside / "secret.txt").read_text() == "outside"


def test_an_empty_channel_has_no_slice(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no files"):
        slice_channel(tmp_path / "empty", tmp_path / "slice", PreflightLimits(), "train")


def _cloud_spec(tmp_path: Path, script: str, **over: Any) -> JobSpec:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text(script)
    data = tmp_path / "data"
    (data / "more").mkdir(parents=True, exist_ok=True)
    for i in range(30):
        (data / "more" / f"{i:02d}.csv").write_text(f"x\n{i}\n")
    spec: dict[str, Any] = {
        "name": "cloud-job",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "compute": {"backend": "sagemaker", "instance_type": "ml.m5.xlarge", "instance_count": 2},
        "channels": [{"name": "train", "source": "data", "input_mode": "FastFile"}],
        "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        "checkpoint_dir": "ckpt",
        "max_runtime_seconds": 7200,
        "sagemaker": {"role_arn": ROLE, "region": "us-east-1"},
        "image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
    }
    spec.update(over)
    return spec_from_dict(spec, base_dir=tmp_path)


def test_the_probe_spec_is_local_short_and_reads_only_the_slices(tmp_path: Path) -> None:
    spec = _cloud_spec(tmp_path, "print('loss=1')\n")
    probe, slices, notes = preflight_spec(
        spec, PreflightLimits(max_files=4, time_limit=30), docker_check=lambda s: "not here"
    )
    assert probe.compute.backend is Backend.LOCAL_PROCESS
    assert probe.compute.instance_count == 1
    assert probe.max_runtime_seconds <= 120
    assert probe.checkpoint_dir is None and probe.output_path is None
    assert probe.name == "cloud-job-preflight"
    (channel,) = probe.channels
    assert channel.input_mode == "File"
    sliced = Path(channel.source)
    assert preflight_root() in sliced.parents
    assert len(_files(sliced)) == 4
    assert any("not here" in n for n in notes) and any("one host of 2" in n for n in notes)
    assert spec.compute.backend is Backend.SAGEMAKER  # the cloud spec is untouched
    assert slices[0].path == sliced


def test_the_probe_runs_in_the_jobs_image_when_docker_can_run_it_here(tmp_path: Path) -> None:
    spec = _cloud_spec(tmp_path, "print('loss=1')\n")
    seen: list[JobSpec] = []

    def docker_ok(candidate: JobSpec) -> str | None:
        seen.append(candidate)
        return None

    probe, _, _ = preflight_spec(spec, docker_check=docker_ok)
    assert probe.compute.backend is Backend.DOCKER
    assert probe.image == spec.image == seen[0].image
    assert probe.compute.instance_count == 2


def test_a_heterogeneous_clusters_probe_runs_on_plain_hosts(tmp_path: Path) -> None:
    groups = [
        {"name": "gpu", "instance_type": "ml.g5.xlarge", "instance_count": 2},
        {"name": "cpu", "instance_type": "ml.m5.xlarge", "instance_count": 3},
    ]
    spec = _cloud_spec(
        tmp_path,
        "print('loss=1')\n",
        compute={"backend": "sagemaker", "instance_groups": groups},
        distribution={"kind": "torchrun", "instance_groups": ["gpu"]},
    )
    probe, _, _ = preflight_spec(spec, docker_check=lambda s: None)
    assert probe.compute.backend is Backend.DOCKER
    assert probe.compute.instance_groups == [] and probe.distribution.instance_groups == []
    assert probe.compute.instance_count == 2  # MAX_PROBE_HOSTS of the 5
    assert probe.compute.instance_type == "ml.g5.xlarge"
    probe, _, notes = preflight_spec(spec, docker_check=lambda s: "not here")
    assert probe.compute.backend is Backend.LOCAL_PROCESS
    assert any("one host of 5" in n for n in notes)


def test_checkpoints_are_found_under_any_hosts_checkpoint_folder(tmp_path: Path) -> None:
    assert checkpoint_written(tmp_path) is None
    (tmp_path / "hosts" / "algo-2" / "checkpoints" / "epoch0").mkdir(parents=True)
    assert checkpoint_written(tmp_path) is None
    (tmp_path / "hosts" / "algo-2" / "checkpoints" / "epoch0" / "model.pt").write_bytes(b"m")
    assert checkpoint_written(tmp_path) == "algo-2/checkpoints/epoch0/model.pt"


# -- real probes on the local-process backend ------------------------------------------------------


def _good_script() -> str:
    return (
        "import os, time\n"
        "ckpt = os.path.join(os.path.dirname(os.environ['SM_MODEL_DIR']), 'checkpoints')\n"
        "files = os.listdir(os.environ['SM_CHANNEL_TRAIN'] + '/more')\n"
        "print('files', len(files), flush=True)\n"
        "print('loss=0.5', flush=True)\n"
        "time.sleep(1)\n"
        "open(os.path.join(ckpt, 'ckpt.pt'), 'w').write('c')\n"
        "time.sleep(600)\n"
    )


def test_a_probe_that_prints_a_metric_and_writes_a_checkpoint_passes_and_is_stopped(
    tmp_path: Path, service: JobService
) -> None:
    spec = _cloud_spec(tmp_path, _good_script())
    lines: list[str] = []
    result = run_preflight(
        service, spec, limits=PreflightLimits(max_files=5, time_limit=60), progress=lines.append
    )
    assert result.ok, result.summary()
    assert result.metric == "loss" and result.checkpoint == "algo-1/checkpoints/ckpt.pt"
    assert result.job_id is not None
    record = service.get(result.job_id)
    assert record.status == JobStatus.STOPPED.value  # a probe, not a run
    assert result.seconds < 60
    log = (Path(record.run_dir) / "logs" / "job.log").read_text()
    assert "files 5" in log  # it saw the slice, not the 30 files
    assert any("waiting for the first metric" in line for line in lines)
    assert not (tmp_path / "ckpt").exists()  # the user's checkpoint folder is not the probe's
    assert list(preflight_root().iterdir()) == []  # the slices are gone


def test_a_probe_that_crashes_on_the_slice_fails_with_its_reason(
    tmp_path: Path, service: JobService
) -> None:
    script = "import sys\nprint('reading', flush=True)\nraise SystemExit('bad row 3 in part-00')\n"
    spec = _cloud_spec(tmp_path, script)
    result = run_preflight(service, spec, limits=PreflightLimits(time_limit=60))
    assert not result.ok
    assert "bad row 3 in part-00" in result.reason
    assert result.job_id and service.get(result.job_id).status == JobStatus.FAILED.value


def test_a_probe_with_no_metric_in_time_fails_and_is_stopped(
    tmp_path: Path, service: JobService
) -> None:
    spec = _cloud_spec(tmp_path, "import time\nprint('working', flush=True)\ntime.sleep(600)\n")
    result = run_preflight(service, spec, limits=PreflightLimits(time_limit=3))
    assert not result.ok
    assert "no metric within the time limit (3 s)" in result.reason and "loss" in result.reason
    assert result.job_id and service.get(result.job_id).status == JobStatus.STOPPED.value


def test_system_metrics_are_no_first_metric_for_a_spec_without_metric_definitions(
    tmp_path: Path, service: JobService
) -> None:
    spec = _cloud_spec(
        tmp_path,
        "import time\nprint('working', flush=True)\ntime.sleep(600)\n",
        metric_definitions=[],
    )
    result = run_preflight(service, spec, limits=PreflightLimits(time_limit=5))
    assert not result.ok, result.summary()
    assert "no metric within the time limit" in result.reason
    assert "nothing that looks like a metric" in result.reason
    assert result.job_id is not None  # while CPU and memory samples were stored
    assert any(n.startswith("sys/") for n in service.store.metric_names(result.job_id))


def test_a_probe_stopped_by_someone_else_says_so(tmp_path: Path, service: JobService) -> None:
    spec = _cloud_spec(tmp_path, "import time\nprint('busy', flush=True)\ntime.sleep(600)\n")
    ids: list[str] = []

    def stop_it(job_id: str) -> None:
        ids.append(job_id)
        threading.Timer(1.0, lambda: service.stop(job_id, wait=0)).start()

    result = run_preflight(service, spec, limits=PreflightLimits(time_limit=60), submitted=stop_it)
    assert not result.ok
    assert result.reason.startswith("the probe was stopped before a verdict")
    assert result.job_id == ids[0]
