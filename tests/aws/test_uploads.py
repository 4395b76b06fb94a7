"""Code tarball, channel uploads, skip-unchanged, multipart resume and progress."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
from moto_support import Script
from sm_helpers import BUCKET, make_spec, runner, service, wait_for

from trainer_gui.core.aws.s3 import (
    Journal,
    MiB,
    Progress,
    S3Uri,
    Uploader,
    channel_manifest,
    pack_tree,
)
from trainer_gui.core.runners.sagemaker import TransferProgress, source_entries


def _submit(svc: Any, spec: Any) -> Any:
    handle = svc.submit(spec)
    handle.wait(30)
    return svc.get(handle.job_id)


def test_the_source_tarball_holds_code_dependencies_and_requirements(
    aws: Any, project: Path
) -> None:
    (project / "libs" / "helpers").mkdir(parents=True)
    (project / "libs" / "helpers" / "util.py").write_text("Y = 2\n")
    spec = make_spec(
        project,
        source={
            "source_dir": "code",
            "entry_point": "train.py",
            "requirements": "requirements.txt",
            "dependencies": ["libs/helpers"],
        },
    )
    record = _submit(service(), spec)
    assert record.status == "Completed", record.failure_reason
    blob = aws.objects(BUCKET, f"{record.id}/source/")[f"{record.id}/source/sourcedir.tar.gz"]
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        names = sorted(m.name for m in tar.getmembers())
        assert tar.extractfile("train.py").read() == b"print('loss=0.1')\n"  # type: ignore[union-attr]
        assert tar.extractfile("requirements.txt").read() == b"numpy\n"  # type: ignore[union-attr]
        assert {m.uid for m in tar.getmembers()} == {0}
    assert names == ["helpers/util.py", "pkg/__init__.py", "requirements.txt", "train.py"]


def test_the_tarball_is_reproducible(project: Path, tmp_path: Path) -> None:
    spec = make_spec(project)
    one = pack_tree(source_entries(spec), tmp_path / "a.tar.gz").read_bytes()
    two = pack_tree(source_entries(spec), tmp_path / "b.tar.gz").read_bytes()
    assert hashlib.md5(one).digest() == hashlib.md5(two).digest()


def _channel_prefix(aws: Any, job_id: str, name: str = "train") -> str:
    """The key prefix of a channel as the job's CreateTrainingJob request names it."""
    for channel in aws.requests[job_id]["InputDataConfig"]:
        if channel["ChannelName"] == name:
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            return str(S3Uri.parse(uri).key)
    raise AssertionError(f"no channel {name} in {job_id}'s request")


def test_channels_upload_once_and_a_second_submit_sends_only_what_changed(
    aws: Any, project: Path
) -> None:
    svc = service()
    first = _submit(svc, make_spec(project))
    assert first.status == "Completed", first.failure_reason
    prefix = _channel_prefix(aws, first.id)
    assert prefix.startswith("data/") and prefix.endswith("/")
    assert prefix == "data/" + channel_manifest(project / "data").digest + "/"
    assert aws.objects(BUCKET, prefix) == {
        f"{prefix}rows.csv": b"a,b\n1,2\n",
        f"{prefix}sub/more.csv": b"a,b\n3,4\n",
    }
    puts = aws.faults.count("s3:PutObject")
    second = _submit(svc, make_spec(project))
    assert second.status == "Completed"
    assert _channel_prefix(aws, second.id) == prefix  # the same data: the same prefix
    # only the second job's own code archive and nothing of the unchanged channel
    assert aws.faults.count("s3:PutObject") - puts == 1
    (project / "data" / "rows.csv").write_text("a,b\n9,9\n")
    (project / "data" / "sub" / "more.csv").unlink()
    (project / "data" / "new.csv").write_text("n\n")
    puts = aws.faults.count("s3:PutObject")
    third = _submit(svc, make_spec(project))
    assert third.status == "Completed"
    assert aws.faults.count("s3:PutObject") - puts == 3  # code, rows.csv, new.csv
    changed = _channel_prefix(aws, third.id)
    assert changed != prefix
    assert aws.objects(BUCKET, changed) == {
        f"{changed}new.csv": b"n\n",
        f"{changed}rows.csv": b"a,b\n9,9\n",
    }
    assert aws.faults.count("s3:DeleteObjects") == 0


def test_a_later_submission_never_changes_an_earlier_jobs_channel(aws: Any, project: Path) -> None:
    """The issue: channel data stored per spec name and mirrored with deletions let a queued or
    starting job read a later submission's data. Content-addressed prefixes never change."""
    svc = service()
    hold = threading.Event()
    aws.sim.script("mnist", Script(hold=hold))
    first = svc.submit(make_spec(project))
    wait_for(lambda: first.job_id in aws.requests)
    before = _channel_prefix(aws, first.job_id)
    (project / "data" / "rows.csv").write_text("changed\n")
    (project / "data" / "sub" / "more.csv").unlink()
    second = svc.submit(make_spec(project))
    wait_for(lambda: second.job_id in aws.requests)
    after = _channel_prefix(aws, second.job_id)
    assert after != before
    # the first job's prefix holds exactly what it was submitted with
    assert aws.objects(BUCKET, before) == {
        f"{before}rows.csv": b"a,b\n1,2\n",
        f"{before}sub/more.csv": b"a,b\n3,4\n",
    }
    assert aws.objects(BUCKET, after) == {f"{after}rows.csv": b"changed\n"}
    hold.set()
    first.wait(30)
    second.wait(30)
    assert svc.get(first.job_id).status == "Completed"


def test_same_named_specs_of_two_projects_do_not_share_a_channel(
    aws: Any, project: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-project"
    shutil.copytree(project, other)
    (other / "data" / "rows.csv").write_text("other,project\n")
    svc = service()
    one = _submit(svc, make_spec(project))
    two = _submit(svc, make_spec(other))
    assert one.status == two.status == "Completed"
    a, b = _channel_prefix(aws, one.id), _channel_prefix(aws, two.id)
    assert a != b
    assert aws.objects(BUCKET, a)[f"{a}rows.csv"] == b"a,b\n1,2\n"
    assert aws.objects(BUCKET, b)[f"{b}rows.csv"] == b"other,project\n"
    # the same data in a third project is the same prefix, uploaded once
    third = tmp_path / "third"
    shutil.copytree(project, third)
    puts = aws.faults.count("s3:PutObject")
    three = _submit(svc, make_spec(third))
    assert _channel_prefix(aws, three.id) == a
    assert aws.faults.count("s3:PutObject") - puts == 1  # its code archive only


def test_the_channel_digest_hashes_each_file_once(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer_gui.core.aws import s3 as s3_module

    journal = Journal(tmp_path / "j.json")
    reads: list[Path] = []
    original = s3_module._hash_file

    def counting(path: Path, part_size: int | None = None) -> Any:
        reads.append(path)
        return original(path, part_size)

    monkeypatch.setattr(s3_module, "_hash_file", counting)
    first = channel_manifest(project / "data", journal)
    assert len(reads) == 2
    assert channel_manifest(project / "data", journal).digest == first.digest
    assert len(reads) == 2  # cached by path, size and mtime
    (project / "data" / "rows.csv").write_text("a,b\n1,3\n")  # same size, new content
    changed = channel_manifest(project / "data", journal)
    assert changed.digest != first.digest and len(reads) == 3
    # the digest is the file list and contents, not where the folder is
    copy = tmp_path / "copy"
    shutil.copytree(project / "data", copy)
    assert channel_manifest(copy, journal).digest == changed.digest


def _big(path: Path, size: int) -> bytes:
    data = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    data = data[:size]
    path.write_bytes(data)
    return data


def test_big_files_go_in_parts_and_are_skipped_when_unchanged(aws: Any, tmp_path: Path) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="data")
    folder = tmp_path / "set"
    folder.mkdir()
    data = _big(folder / "big.bin", 12 * MiB)
    seen: list[Progress] = []
    up = Uploader(s3, Journal(tmp_path / "j.json"), part_size=5 * MiB, multipart_threshold=5 * MiB)
    summary = up.upload_tree(folder, S3Uri("data", "set/"), progress=seen.append)
    assert summary.uploaded == ["set/big.bin"]
    assert aws.faults.count("s3:UploadPart") == 3
    assert s3.get_object(Bucket="data", Key="set/big.bin")["Body"].read() == data
    assert seen[-1].done_bytes == seen[-1].total_bytes == 12 * MiB
    assert [p.done_bytes for p in seen] == sorted(p.done_bytes for p in seen)
    again = up.upload_tree(folder, S3Uri("data", "set/"))
    assert again.skipped == ["set/big.bin"] and again.uploaded == []
    assert aws.faults.count("s3:UploadPart") == 3


def test_an_interrupted_multipart_upload_resumes_where_it_stopped(aws: Any, project: Path) -> None:
    data = _big(project / "data" / "big.bin", 12 * MiB)
    options = {"part_size": 5 * MiB, "multipart_threshold": 5 * MiB}
    svc = service(**options)
    # part 1 goes through, then the network drops for longer than botocore + our retries
    original = aws.faults.intercept
    parts = {"n": 0}

    def flaky(request: Any) -> Any:
        from moto_support import _op_of

        if _op_of(request) == "s3:UploadPart":
            parts["n"] += 1
            if parts["n"] > 1:
                from botocore.exceptions import ConnectionClosedError

                aws.faults.sent.append("s3:UploadPart")
                raise ConnectionClosedError(endpoint_url=request.url)
        return original(request)

    aws.faults.intercept = flaky
    failed = _submit(svc, make_spec(project))
    assert failed.status == "Failed"
    assert "network connection was lost" in (failed.failure_reason or "")
    assert "submit the job again to resume" in (failed.failure_reason or "")
    aws.faults.intercept = original
    before_parts = aws.faults.count("s3:UploadPart")
    creates = aws.faults.count("s3:CreateMultipartUpload")
    ok = _submit(svc, make_spec(project))
    assert ok.status == "Completed", ok.failure_reason
    assert aws.faults.count("s3:CreateMultipartUpload") == creates  # the same upload, resumed
    assert aws.faults.count("s3:UploadPart") - before_parts == 2  # parts 2 and 3 only
    key = _channel_prefix(aws, ok.id) + "big.bin"
    assert aws.objects(BUCKET, key)[key] == data


def test_a_short_network_loss_is_retried_within_the_same_submit(aws: Any, project: Path) -> None:
    aws.faults.drop("s3:PutObject", times=5)  # more than botocore's 4 attempts
    record = _submit(service(retry_delays=(0.0, 0.0)), make_spec(project))
    assert record.status == "Completed", record.failure_reason


def test_upload_progress_reaches_the_job_listeners(aws: Any, project: Path) -> None:
    events: list[TransferProgress] = []
    direct: list[TransferProgress] = []
    svc = service(on_progress=direct.append)
    svc.subscribe(lambda e: events.append(e) if isinstance(e, TransferProgress) else None)
    record = _submit(svc, make_spec(project))
    assert record.status == "Completed"
    whats = {e.what for e in events}
    assert {"code", "channel train", "model.tar.gz", "output.tar.gz"} <= whats
    channel = [e for e in events if e.what == "channel train"]
    assert channel[-1].done_bytes == channel[-1].total_bytes == 16
    assert [e.what for e in direct] == [e.what for e in events]
    assert runner().poll_min > 0


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/tg-evil-absolute.txt", "ok/../../evil.txt"])
def test_a_hostile_model_archive_from_s3_is_refused_and_said_in_the_job_log(
    aws: Any, project: Path, name: str
) -> None:
    """The downloaded artifacts go through the app's one extractor: nothing lands outside the
    run folder, the archive stays for a look, and the job log says why it was not unpacked."""
    aws.sim.script("mnist", Script(model_files={"model.pt": b"w", name: b"evil"}))
    record = _submit(service(), make_spec(project))
    assert record.status == "Completed", record.failure_reason
    run = Path(record.run_dir)
    artifacts = run / "artifacts"
    assert (artifacts / "model.tar.gz").is_file()
    assert not (artifacts / "model").exists()
    assert (artifacts / "output" / "report.txt").read_bytes() == b"done"
    assert not (run / "evil.txt").exists() and not (artifacts / "evil.txt").exists()
    assert not Path("/tmp/tg-evil-absolute.txt").exists()
    assert not [p for p in artifacts.iterdir() if p.name.startswith(".")]  # no staging left
    log_text = (run / "logs" / "job.log").read_text()
    assert f"model.tar.gz: member {name!r}" in log_text
    assert "the archive was not unpacked" in log_text
