"""`trainer-gui run` of a SageMaker spec preflights it locally first: a failure on the slice
refuses the launch with its reason (nothing reaches SageMaker), `--force` launches anyway, and
the cloud job names its preflight."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from sm_helpers import make_spec

from trainer_gui.cli.main import main
from trainer_gui.core.errors import UserError
from trainer_gui.core.preflight import (
    PREFLIGHT_KEY,
    PREFLIGHT_OF_KEY,
    PreflightLimits,
    slice_s3_channel,
)
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.spec import save_spec
from trainer_gui.core.store import Store

WaitUntil = Callable[..., None]

FAILS_ON_THE_SLICE = """\
import os
rows = sum(1 for _ in open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "rows.csv")))
print("rows", rows, flush=True)
if rows < 100:
    raise SystemExit(f"need 100 rows for a batch, got {rows}")
print("loss=0.1")
"""


def _spec_file(project: Path, script: str) -> Path:
    (project / "code" / "train.py").write_text(script)
    spec = make_spec(project, metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}])
    return save_spec(spec, project / "job.yaml")


def test_a_preflight_that_fails_on_the_slice_blocks_the_sagemaker_launch_with_its_reason(
    aws: Any, project: Path, capsys: Any
) -> None:
    path = _spec_file(project, FAILS_ON_THE_SLICE)
    assert main(["run", str(path), "--preflight-time", "60"]) == 1
    out = capsys.readouterr().out
    assert "Preflight failed" in out
    assert "need 100 rows for a batch, got 2" in out
    assert "Not launched on SageMaker" in out and "--force" in out
    assert aws.requests == {}  # no CreateTrainingJob reached SageMaker
    assert aws.faults.count("CreateTrainingJob") == 0
    with Store() as store:
        (probe,) = store.list_jobs()
    assert probe.backend == "local-process" and probe.status == JobStatus.FAILED.value
    assert probe.backend_ids[PREFLIGHT_OF_KEY] == "mnist"


def test_force_launches_anyway_and_the_cloud_job_names_its_preflight(
    aws: Any, project: Path, capsys: Any, wait_until: WaitUntil
) -> None:
    path = _spec_file(project, FAILS_ON_THE_SLICE)
    assert main(["run", str(path), "--force", "--detach", "--preflight-time", "60"]) == 0
    out = capsys.readouterr().out
    assert "Launching anyway (--force)" in out
    wait_until(lambda: aws.requests)  # the job host creates it
    (name,) = aws.requests
    with Store() as store:
        cloud = store.get_job(name)
        assert cloud is not None and cloud.backend == "sagemaker"
        probe = store.get_job(cloud.backend_ids[PREFLIGHT_KEY])
        assert probe is not None and probe.backend == "local-process"
        assert probe.status == JobStatus.FAILED.value


def test_no_preflight_skips_it(aws: Any, project: Path, capsys: Any, wait_until: WaitUntil) -> None:
    path = _spec_file(project, FAILS_ON_THE_SLICE)
    assert main(["run", str(path), "--no-preflight", "--detach"]) == 0
    assert "Preflight" not in capsys.readouterr().out
    wait_until(lambda: aws.requests)
    (name,) = aws.requests
    with Store() as store:
        assert [r.backend for r in store.list_jobs()] == ["sagemaker"]
        cloud = store.get_job(name)
        assert cloud is not None and PREFLIGHT_KEY not in cloud.backend_ids


def test_a_preflight_that_passes_lets_the_launch_go_ahead(
    aws: Any, project: Path, capsys: Any, wait_until: WaitUntil
) -> None:
    script = (
        "import os, time\n"
        "print('loss=0.5', flush=True)\n"
        "ckpt = os.path.join(os.path.dirname(os.environ['SM_MODEL_DIR']), 'checkpoints')\n"
        "open(os.path.join(ckpt, 'last.pt'), 'w').write('x')\n"
        "time.sleep(600)\n"
    )
    path = _spec_file(project, script)
    assert main(["run", str(path), "--detach", "--preflight-time", "60"]) == 0
    out = capsys.readouterr().out
    assert "Preflight passed" in out and "checkpoint write" in out
    wait_until(lambda: aws.requests)
    (name,) = aws.requests
    with Store() as store:
        cloud = store.get_job(name)
        assert cloud is not None
        probe = store.get_job(cloud.backend_ids[PREFLIGHT_KEY])
        assert probe is not None and probe.status == JobStatus.STOPPED.value


def test_the_windows_launch_anyway_after_a_failed_preflight_launches_and_links_it(
    qtbot: Any, aws: Any, project: Path, monkeypatch: Any
) -> None:
    from PySide6.QtCore import QThreadPool
    from sm_helpers import runner

    from trainer_gui.services.jobs import JobService
    from trainer_gui.ui.main_window import MainWindow
    from trainer_gui.ui.preflight import LAUNCH_ANYWAY
    from trainer_gui.ui.status import ProbeResult
    from trainer_gui.ui.tasks import store_writes

    (project / "code" / "train.py").write_text(FAILS_ON_THE_SLICE)
    spec = make_spec(project, metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}])
    store = Store()
    service = JobService(store, runners={"sagemaker": runner()})
    probes = {
        "docker": lambda: ProbeResult("docker", "ok", "Docker", "fake"),
        "aws": lambda: ProbeResult("aws", "ok", "AWS", "fake"),
    }
    win = MainWindow(store, service, probes=probes, recover=False)
    qtbot.addWidget(win)
    try:
        monkeypatch.setattr(win, "confirm_cloud_run", lambda spec, region: True)
        win.commands.submit(spec, None)
        preflight = win.commands.preflight
        qtbot.waitUntil(
            lambda: preflight.box is not None and preflight.box.isVisible(), timeout=60_000
        )
        box = preflight.box
        assert box is not None and "need 100 rows for a batch, got 2" in box.text()
        assert aws.requests == {}  # nothing launched while it asks
        anyway = next(b for b in box.buttons() if b.text() == LAUNCH_ANYWAY)
        qtbot.mouseClick(anyway, Qt.MouseButton.LeftButton)

        qtbot.waitUntil(lambda: bool(aws.requests), timeout=30_000)
        (name,) = aws.requests
        qtbot.waitUntil(lambda: PREFLIGHT_KEY in service.get(name).backend_ids, timeout=10_000)
        probe = service.get(service.get(name).backend_ids[PREFLIGHT_KEY])
        assert probe.backend == "local-process" and probe.status == JobStatus.FAILED.value
    finally:
        win.close()
        store_writes().waitForDone(10_000)
        QThreadPool.globalInstance().waitForDone(10_000)
        service.shutdown()
        store.close()


# -- s3:// channels --------------------------------------------------------------------------------


def _bucket_with_parts(aws: Any, keys: dict[str, bytes]) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="team-data")
    for key, body in keys.items():
        s3.put_object(Bucket="team-data", Key=key, Body=body)


def test_an_s3_channels_slice_is_its_first_objects_in_key_order(aws: Any, tmp_path: Path) -> None:
    keys = {f"train/part-{i:02d}.csv": b"a,b\n1,2\n" for i in range(8)}
    keys["train/"] = b""  # a console folder marker
    keys["train/deep/x.csv"] = b"x\n"
    keys["training-other/y.csv"] = b"not this channel\n"
    _bucket_with_parts(aws, keys)
    s3 = aws.client("s3")
    info = slice_s3_channel(
        s3, "s3://team-data/train", tmp_path / "slice", PreflightLimits(max_files=3), "train"
    )
    got = sorted(p.relative_to(tmp_path / "slice").as_posix() for p in info.path.rglob("*.csv"))
    assert got == ["deep/x.csv", "part-00.csv", "part-01.csv"]
    one = slice_s3_channel(
        s3, "s3://team-data/train/part-05.csv", tmp_path / "one", PreflightLimits(), "train"
    )
    assert [p.name for p in one.path.iterdir()] == ["part-05.csv"]


def test_an_s3_object_whose_name_leads_out_of_the_slice_is_refused(
    aws: Any, tmp_path: Path
) -> None:
    _bucket_with_parts(aws, {"train/../../escape.csv": b"x\n"})
    with pytest.raises(UserError, match="no safe file name"):
        slice_s3_channel(
            aws.client("s3"), "s3://team-data/train", tmp_path / "s", PreflightLimits(), "train"
        )
    assert not (tmp_path / "escape.csv").exists()


def test_cli_preflight_of_a_spec_with_an_s3_channel_runs_on_its_first_objects(
    aws: Any, project: Path, capsys: Any
) -> None:
    _bucket_with_parts(aws, {f"train/rows-{i}.csv": b"a\n" for i in range(30)})
    (project / "code" / "train.py").write_text(
        "import os\n"
        "print('objects', len(os.listdir(os.environ['SM_CHANNEL_TRAIN'])), flush=True)\n"
        "print('loss=0.3', flush=True)\n"
    )
    spec = make_spec(
        project,
        channels=[{"name": "train", "source": "s3://team-data/train/"}],
        metric_definitions=[{"name": "loss", "regex": r"loss=([0-9.]+)"}],
    )
    path = save_spec(spec, project / "job.yaml")
    assert main(["preflight", str(path), "--preflight-files", "4"]) == 0
    out = capsys.readouterr().out
    assert "Preflight passed" in out and "the first 4 object(s) read" in out
    assert aws.requests == {}
    with Store() as store:
        (probe,) = store.list_jobs()
        log = (Path(probe.run_dir) / "logs" / "job.log").read_text()
    assert "objects 4" in log
