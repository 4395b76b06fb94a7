"""model.tar.gz unpacking: good archives keep their layout, hostile ones are refused whole."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer_gui.core.errors import UserError
from trainer_gui.core.serving.archive import (
    ArchiveLimits,
    UnsafeArchive,
    extract_model,
    find_model_archive,
)

Member = Callable[[tarfile.TarFile], None]


def regular(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))

    return add


def special(name: str, kind: bytes, linkname: str = "", size: int = 0) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        info.size = size
        tar.addfile(info, io.BytesIO(b"\0" * size) if size else None)

    return add


def make(path: Path, *members: Member, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for add in members:
            add(tar)
    return path


def test_a_sagemaker_model_archive_unpacks_with_its_code(tmp_path: Path) -> None:
    archive = make(
        tmp_path / "model.tar.gz",
        special(".", tarfile.DIRTYPE),
        regular("./model.pth", b"weights"),
        regular("./model_config.json", b"{}"),
        special("./code", tarfile.DIRTYPE),
        regular("./code/inference.py", b"def model_fn(d): ...\n"),
        regular("./code/run.sh", b"#!/bin/sh\n", mode=0o4755),
        special("./code/weights.pth", tarfile.SYMTYPE, linkname="../model.pth"),
        special("./copy.pth", tarfile.LNKTYPE, linkname="./model.pth"),
    )
    dest = extract_model(archive, tmp_path / "out")
    assert (dest / "model.pth").read_bytes() == b"weights"
    assert (dest / "code" / "inference.py").is_file()
    assert (dest / "code" / "weights.pth").read_bytes() == b"weights"  # a link inside is fine
    assert (dest / "copy.pth").read_bytes() == b"weights"
    assert not (dest / "copy.pth").is_symlink()
    run_mode = (dest / "code" / "run.sh").stat().st_mode & 0o7777
    assert run_mode == 0o755  # execute bits kept, set-uid dropped
    assert (dest / "model.pth").stat().st_mode & 0o777 == 0o644


def test_plain_tar_and_duplicate_files(tmp_path: Path) -> None:
    archive = make(tmp_path / "m.tar", regular("a", b"1"), regular("a", b"2"), mode="w")
    assert (extract_model(archive, tmp_path / "out") / "a").read_bytes() == b"2"


HOSTILE: dict[str, tuple[list[Member], str]] = {
    "dotdot": ([regular("../evil.txt")], "'..' component"),
    "dotdot-deep": ([regular("code/../../evil.txt")], "'..' component"),
    "absolute": ([regular("/tmp/evil.txt")], "absolute path"),
    "symlink-absolute": ([special("link", tarfile.SYMTYPE, "/etc/passwd")], "absolute path"),
    "symlink-out": ([special("code/link", tarfile.SYMTYPE, "../../outside")], "out of the folder"),
    "symlink-chain": (
        # Each looks inside on its own; together p resolves to the folder's parent.
        [special("p", tarfile.SYMTYPE, "q/.."), special("q", tarfile.SYMTYPE, ".")],
        "resolves to",
    ),
    "write-through-link": (
        [special("d", tarfile.SYMTYPE, "."), regular("d/x.txt")],
        "which is a symlink",
    ),
    "hardlink-out": ([special("h", tarfile.LNKTYPE, "/etc/passwd")], "absolute path"),
    "hardlink-missing": ([special("h", tarfile.LNKTYPE, "nothing")], "does not point to a file"),
    "device": ([special("dev", tarfile.CHRTYPE)], "is a device"),
    "fifo": ([special("fifo", tarfile.FIFOTYPE)], "is a FIFO"),
    "replace-root": ([regular(".")], "replace the folder itself"),
    "file-then-dir": (
        [regular("code"), special("code", tarfile.DIRTYPE)],
        "appears twice",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    members, message = HOSTILE[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = make(tmp_path / "model.tar.gz", regular("model.pth", b"w"), *members)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(UnsafeArchive, match=message):
        extract_model(archive, work / "out")
    assert not (work / "out").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/evil.txt").exists()


def test_size_and_count_limits(tmp_path: Path) -> None:
    limits = ArchiveLimits(max_member_bytes=1000, max_total_bytes=1500, max_members=5)
    huge = make(tmp_path / "huge.tar.gz", regular("big.pt", b"\0" * 1001))
    with pytest.raises(UnsafeArchive, match="more than the limit of 1000 bytes"):
        extract_model(huge, tmp_path / "a", limits)
    total = make(tmp_path / "total.tar.gz", regular("a", b"\0" * 800), regular("b", b"\0" * 800))
    with pytest.raises(UnsafeArchive, match="more than 1500 bytes"):
        extract_model(total, tmp_path / "b", limits)
    many = make(tmp_path / "many.tar.gz", *[regular(f"f{i}") for i in range(6)])
    with pytest.raises(UnsafeArchive, match="more than 5 members"):
        extract_model(many, tmp_path / "c", limits)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_a_declared_huge_member_is_refused_before_reading_it(tmp_path: Path) -> None:
    """A header that claims 64 GiB (a bomb) is refused from the header alone."""
    info = tarfile.TarInfo("bomb.pt")
    info.size = 64 * 1024**3
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    archive = tmp_path / "bomb.tar"
    archive.write_bytes(header + b"\0" * 1024)  # truncated: the data is never there
    with pytest.raises(UnsafeArchive, match="more than the limit"):
        extract_model(archive, tmp_path / "out")


def test_not_an_archive_and_a_busy_destination(tmp_path: Path) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tar file at all")
    with pytest.raises(UserError, match="cannot read"):
        extract_model(bad, tmp_path / "out")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep")
    good = make(tmp_path / "good.tar.gz", regular("model.pt"))
    with pytest.raises(UserError, match="not empty"):
        extract_model(good, busy)
    assert (busy / "x").read_text() == "keep"


def test_find_model_archive_in_a_downloaded_output_folder(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"")
    (tmp_path / "output.tar.gz").write_bytes(b"")
    assert find_model_archive(tmp_path) == tmp_path / "model.tar.gz"
    (tmp_path / "model.pth").write_bytes(b"")
    assert find_model_archive(tmp_path) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_links_are_created_after_files(tmp_path: Path) -> None:
    """A link named like a later file's folder cannot redirect that file (the order is fixed)."""
    archive = make(
        tmp_path / "m.tar.gz",
        special("code", tarfile.DIRTYPE),
        regular("code/inference.py", b"ok"),
        special("alias", tarfile.SYMTYPE, "code"),
    )
    dest = extract_model(archive, tmp_path / "out")
    assert (dest / "alias" / "inference.py").read_bytes() == b"ok"
    assert (dest / "alias").is_symlink()
