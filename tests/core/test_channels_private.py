"""Issue 16: input channels are private, writable copies per run, as SageMaker's File mode gives
them; a script that writes into or deletes from its channel never changes the user's data."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer_gui.core import safety
from trainer_gui.core.runners import channels
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]
TIMEOUT = 120

VANDAL = """
    import json, os
    d = os.environ["SM_CHANNEL_TRAIN"]
    with open(os.path.join(d, "rows.csv"), "r+") as fh:  # in place, as a hard link would share
        fh.write("XXXX")
    with open(os.path.join(d, "rows.csv"), "a") as fh:
        fh.write("appended\\n")
    os.remove(os.path.join(d, "other.csv"))
    os.chmod(os.path.join(d, "sub", "deep.txt"), 0o600)
    open(os.path.join(d, "sub", "deep.txt"), "w").write("truncated")
    open(os.path.join(d, "new.txt"), "w").write("new")
    os.makedirs(os.path.join(d, "made"))
    seen = {"files": sorted(os.listdir(d)), "rows": open(os.path.join(d, "rows.csv")).read(),
            "link": os.path.islink(d)}
    json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
    print("vandalised", flush=True)
"""


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under `root`: content hash (or 'dir') and mode."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        what = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[path.relative_to(root).as_posix()] = (what, stat.S_IMODE(st.st_mode))
    return out


def user_data(tmp_path: Path) -> Path:
    """The job_spec fixture's data folder, with more in it, some of it read-only."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "rows.csv").write_text("a,b\n1,2\n")
    (data / "other.csv").write_text("c\n3\n")
    (data / "sub").mkdir(exist_ok=True)
    (data / "sub" / "deep.txt").write_text("deep")
    (data / "sub" / "deep.txt").chmod(0o444)
    (data / "empty").mkdir(exist_ok=True)
    return data


def test_a_script_that_writes_into_its_channel_leaves_the_users_data_as_it_was(
    service: JobService, tmp_path: Path, job_spec: SpecFactory
) -> None:
    spec = job_spec(VANDAL)
    data = user_data(tmp_path)
    before = fingerprint(data)
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    assert fingerprint(data) == before
    # ... the script's writes landed in its own copy ...
    host = Path(record.run_dir) / "hosts" / "algo-1"
    seen = json.loads((host / "model" / "seen.json").read_text())
    assert seen["files"] == ["empty", "made", "new.txt", "rows.csv", "sub"]
    assert seen["rows"].startswith("XXXX") and seen["rows"].endswith("appended\n")
    assert not seen["link"]
    # ... which went with the job, as an instance's disk does.
    assert not (host / "input" / "data" / "train").exists()


def test_a_snapshot_is_a_writable_copy_with_every_file_and_folder(tmp_path: Path) -> None:
    data = user_data(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    calls: list[tuple[str, int, int]] = []
    report = channels.snapshot_channel(
        run, "train", data, run / "in" / "train", progress=lambda *a: calls.append(a), clone=False
    )
    copy = run / "in" / "train"
    assert {k: v[0] for k, v in fingerprint(copy).items()} == {
        k: v[0] for k, v in fingerprint(data).items()
    }
    assert (report.files, report.cloned, report.bytes) == (3, 0, 8 + 4 + 4)
    assert os.stat(copy / "sub" / "deep.txt").st_mode & 0o200  # the owner may write, as on S3
    assert (copy / "sub" / "deep.txt").stat().st_ino != (data / "sub" / "deep.txt").stat().st_ino
    assert calls[-1] == ("train", 16, 16)


def test_a_single_file_channel_is_copied_into_its_folder(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("x\n")
    run = tmp_path / "run"
    run.mkdir()
    channels.snapshot_channel(run, "one", tmp_path / "one.csv", run / "one")
    assert (run / "one" / "one.csv").read_text() == "x\n"


def test_links_in_the_data_are_copied_not_kept(tmp_path: Path) -> None:
    """A link kept as a link would carry a write back into the original."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "big.bin").write_bytes(b"1234")
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").symlink_to(elsewhere / "big.bin")
    (data / "loop").symlink_to(data)  # a folder link back up the tree ends, not recurses
    os.mkfifo(data / "pipe")  # reading it would block the run forever
    run = tmp_path / "run"
    run.mkdir()
    report = channels.snapshot_channel(run, "train", data, run / "train")
    copy = run / "train" / "big.bin"
    assert not copy.is_symlink() and copy.read_bytes() == b"1234"
    assert report.skipped == ["pipe"]


def test_a_snapshot_never_writes_outside_the_run_folder(tmp_path: Path) -> None:
    data = user_data(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(safety.OutsideRunFolder):
        channels.snapshot_channel(run, "train", data, tmp_path / "not-the-run")


def test_the_first_refused_clone_switches_to_copying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FICLONE where the file system can (Btrfs, XFS); ext4 or tmpfs refuse it once, and the
    rest of the channel is copied without asking again."""
    data = user_data(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    attempts: list[int] = []

    def refuse(source_fd: int, dest_fd: int) -> bool:
        attempts.append(dest_fd)
        return False

    monkeypatch.setattr(channels, "_clone", refuse)
    report = channels.snapshot_channel(run, "train", data, run / "train")
    assert len(attempts) == 1 and report.cloned == 0 and report.copied == 3
    assert fingerprint(run / "train")["rows.csv"][0] == fingerprint(data)["rows.csv"][0]


def test_a_clone_shares_nothing_a_write_can_reach(tmp_path: Path) -> None:
    """Whatever this file system does (clone or copy), a write to the copy stays there."""
    data = user_data(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    channels.snapshot_channel(run, "train", data, run / "train")
    with open(run / "train" / "rows.csv", "r+") as fh:
        fh.write("ZZZ")
    assert (data / "rows.csv").read_text() == "a,b\n1,2\n"


def test_a_large_copy_is_announced_before_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channels, "LARGE_CHANNEL_BYTES", 10)
    data = user_data(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    warnings: list[str] = []
    channels.snapshot_channel(run, "train", data, run / "train", warn=warnings.append, clone=False)
    assert len(warnings) == 1 and "'train'" in warnings[0] and "copy" in warnings[0]
