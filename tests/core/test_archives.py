"""The one archive extractor: good archives keep their layout, hostile ones are refused whole.

Every case runs twice: with Python's `data` extraction filter, and with the checks a Python
without it (3.10.0-3.10.11) relies on.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from trainer_gui.core import archives
from trainer_gui.core.archives import ArchiveLimits, UnsafeArchive, extract_archive
from trainer_gui.core.errors import UserError

Member = Callable[[tarfile.TarFile], None]


@pytest.fixture(params=["data-filter", "no-filter"], autouse=True)
def filter_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "data-filter" and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile extraction filters")
    monkeypatch.setattr(archives, "HAS_DATA_FILTER", request.param == "data-filter")
    return str(request.param)


def regular(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))

    return add


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    return add


def make(path: Path, *members: Member, mode: Literal["w:gz", "w"] = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for add in members:
            add(tar)
    return path


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_sagemaker_model_archive_unpacks_with_its_code(tmp_path: Path) -> None:
    archive = make(
        tmp_path / "model.tar.gz",
        special(".", tarfile.DIRTYPE),
        regular("./model.pth", b"weights"),
        regular("./model_config.json", b"{}"),
        special("./code", tarfile.DIRTYPE),
        regular("./code/inference.py", b"def model_fn(d): ...\n"),
        regular("./code/run.sh", b"#!/bin/sh\n", mode=0o4775),
        special("./code/weights.pth", tarfile.SYMTYPE, linkname="../model.pth"),
        special("./copy.pth", tarfile.LNKTYPE, linkname="./model.pth"),
    )
    dest = extract_archive(archive, tmp_path / "out")
    assert dest == tmp_path / "out"
    assert (dest / "model.pth").read_bytes() == b"weights"
    assert (dest / "code" / "inference.py").is_file()
    assert (dest / "code" / "weights.pth").read_bytes() == b"weights"  # a link inside is fine
    assert (dest / "code" / "weights.pth").is_symlink()
    assert (dest / "copy.pth").read_bytes() == b"weights"
    assert not (dest / "copy.pth").is_symlink()
    assert (dest / "code" / "run.sh").stat().st_mode & 0o7777 == 0o755  # no set-uid, no g+w
    assert (dest / "model.pth").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging


def test_a_plain_tar_with_a_repeated_file_keeps_the_last(tmp_path: Path) -> None:
    archive = make(tmp_path / "m.tar", regular("a", b"1"), regular("a", b"2"), mode="w")
    assert (extract_archive(archive, tmp_path / "out") / "a").read_bytes() == b"2"


def test_a_link_to_a_folder_comes_after_the_files_in_it(tmp_path: Path) -> None:
    archive = make(
        tmp_path / "m.tar.gz",
        special("code", tarfile.DIRTYPE),
        regular("code/inference.py", b"ok"),
        special("alias", tarfile.SYMTYPE, "code"),
    )
    dest = extract_archive(archive, tmp_path / "out")
    assert (dest / "alias" / "inference.py").read_bytes() == b"ok"
    assert (dest / "alias").is_symlink()


HOSTILE: dict[str, tuple[list[Member], str]] = {
    "dotdot": ([regular("../evil.txt")], r"'\.\./evil.txt' has a '\.\.' component"),
    "dotdot-deep": ([regular("code/../../evil.txt")], "'..' component"),
    "dotdot-backslash": ([regular("..\\evil.txt")], "'..' component"),
    "absolute": ([regular("/tmp/evil.txt")], "has an absolute path"),
    "drive-letter": ([regular("C:/evil.txt")], "has an absolute path"),
    "symlink-absolute": ([special("link", tarfile.SYMTYPE, "/etc/passwd")], "absolute path"),
    "symlink-out": (
        [special("code/link", tarfile.SYMTYPE, "../../outside")],
        "is a link out of the folder",
    ),
    "symlink-chain": (
        # Each looks inside on its own; together p resolves to the folder's parent.
        [special("p", tarfile.SYMTYPE, "q/.."), special("q", tarfile.SYMTYPE, ".")],
        "resolves to .*out of the folder",
    ),
    "write-through-link": (
        [special("d", tarfile.SYMTYPE, "."), regular("d/x.txt")],
        "which is a symlink",
    ),
    "link-over-folder": (
        [regular("d/x.txt"), special("d", tarfile.SYMTYPE, "..")],
        "out of the folder|appears twice",
    ),
    "hardlink-absolute": ([special("h", tarfile.LNKTYPE, "/etc/passwd")], "absolute path"),
    "hardlink-out": ([special("h", tarfile.LNKTYPE, "../outside")], "'..' component"),
    "hardlink-missing": ([special("h", tarfile.LNKTYPE, "nothing")], "not to a file before it"),
    "char-device": ([special("dev", tarfile.CHRTYPE)], "'dev' is a device file"),
    "block-device": ([special("sda", tarfile.BLKTYPE)], "is a device file"),
    "fifo": ([special("fifo", tarfile.FIFOTYPE)], "is a FIFO"),
    "replace-root": ([regular(".")], "would replace the folder itself"),
    "file-then-folder": (
        [regular("code"), special("code", tarfile.DIRTYPE)],
        "appears twice, as a file and a folder",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    members, message = HOSTILE[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = make(tmp_path / "bad.tar.gz", regular("model.pth", b"w"), *members)
    before = tree(tmp_path)
    with pytest.raises(UnsafeArchive, match=message) as caught:
        extract_archive(archive, work / "out")
    assert str(caught.value).startswith("bad.tar.gz: ")
    assert tree(tmp_path) == before  # nothing at the destination, nothing beside or above it
    assert not Path("/tmp/evil.txt").exists()


def test_an_existing_empty_destination_is_used_and_left_alone_on_refusal(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    bad = make(tmp_path / "bad.tar.gz", regular("../evil.txt"))
    with pytest.raises(UnsafeArchive):
        extract_archive(bad, tmp_path / "out")
    assert tree(tmp_path) == ["bad.tar.gz", "out"]
    good = make(tmp_path / "good.tar.gz", regular("model.pt", b"1"))
    assert (extract_archive(good, tmp_path / "out") / "model.pt").read_bytes() == b"1"


def test_replace_swaps_a_folder_only_once_the_new_content_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(UserError, match="not empty"):
        extract_archive(make(tmp_path / "a.tar.gz", regular("new.txt")), out)
    bad = make(tmp_path / "bad.tar.gz", regular("new.txt"), special("dev", tarfile.CHRTYPE))
    with pytest.raises(UnsafeArchive):
        extract_archive(bad, out, replace=True)
    assert tree(out) == ["old.txt"]
    extract_archive(make(tmp_path / "b.tar.gz", regular("new.txt")), out, replace=True)
    assert tree(out) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.tar.gz",
        "b.tar.gz",
        "bad.tar.gz",
        "out",
    ]


def test_size_and_member_limits(tmp_path: Path) -> None:
    limits = ArchiveLimits(max_member_bytes=1000, max_total_bytes=1500, max_members=5)
    huge = make(tmp_path / "huge.tar.gz", regular("big.pt", b"\0" * 1001))
    with pytest.raises(
        UnsafeArchive, match=re.escape("'big.pt' is 1001 bytes, more than the limit of 1000")
    ):
        extract_archive(huge, tmp_path / "a", limits=limits)
    total = make(tmp_path / "total.tar.gz", regular("a", b"\0" * 800), regular("b", b"\0" * 800))
    with pytest.raises(
        UnsafeArchive, match=re.escape("total.tar.gz unpacks to more than 1500 bytes")
    ):
        extract_archive(total, tmp_path / "b", limits=limits)
    many = make(tmp_path / "many.tar.gz", *[regular(f"f{i}") for i in range(6)])
    with pytest.raises(UnsafeArchive, match=re.escape("many.tar.gz has more than 5 members")):
        extract_archive(many, tmp_path / "c", limits=limits)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_a_gzip_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    """64 GiB of zeros compress to ~64 MiB; the header alone says it is too big, so the data
    is never inflated (the archive here is cut short: reading on would fail differently)."""
    info = tarfile.TarInfo("bomb.pt")
    info.size = 64 * 1024**3
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 4096))
    with pytest.raises(
        UnsafeArchive, match=re.escape("'bomb.pt' is 68719476736 bytes, more than the limit")
    ):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_member_count_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    archive = make(tmp_path / "many.tar", *[special(f"d{i}", tarfile.DIRTYPE) for i in range(50)])
    with pytest.raises(UnsafeArchive, match="more than 20 members"):
        extract_archive(archive, tmp_path / "out", limits=ArchiveLimits(max_members=20))
    assert not (tmp_path / "out").exists()


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tar file at all")
    with pytest.raises(
        UserError, match=re.escape("model.tar.gz is not a readable tar or tar.gz archive")
    ):
        extract_archive(bad, tmp_path / "out")
    truncated = tmp_path / "cut.tar.gz"
    whole = make(tmp_path / "whole.tar.gz", regular("a", os.urandom(20_000)))
    truncated.write_bytes(whole.read_bytes()[:-4000])
    with pytest.raises(UserError, match=re.escape("cut.tar.gz")):
        extract_archive(truncated, tmp_path / "out2")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("keep")
    good = make(tmp_path / "good.tar.gz", regular("model.pt"))
    with pytest.raises(UserError, match="exists and is not a folder"):
        extract_archive(good, tmp_path / "out")
    assert (tmp_path / "out").read_text() == "keep"
