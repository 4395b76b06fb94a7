"""The one archive extractor: good archives keep their layout, hostile ones are refused whole.

Every case runs twice: with Python's `data` extraction filter, and with the checks a Python
without it (3.10.0-3.10.11) relies on.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

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


# -- expansion ratio and free space, judged from the headers before anything is written ------


class Usage(NamedTuple):
    total: int
    used: int
    free: int


def zeros_archive(path: Path, size: int) -> Path:
    """A real gzip bomb: `size` bytes of zeros in one member, compressed (about 1000x)."""
    info = tarfile.TarInfo("weights.pt")
    info.size = size
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def declared_only(path: Path, sizes: dict[str, int]) -> Path:
    """A plain tar whose headers declare `sizes` but hold only a few bytes of data each:
    reading any member's data would fail, so a refusal proves it came from the headers."""
    blob = b""
    for name, size in sizes.items():
        info = tarfile.TarInfo(name)
        info.size = size
        blob += info.tobuf(format=tarfile.GNU_FORMAT) + b"\x01" * 512
    path.write_bytes(blob)
    return path


def test_a_zeros_bomb_is_refused_by_its_expansion_ratio(tmp_path: Path) -> None:
    bomb = zeros_archive(tmp_path / "bomb.tar.gz", 96 * 1024**2)  # ~100 KiB on disk
    ratio = 96 * 1024**2 / bomb.stat().st_size
    assert ratio > 200
    with pytest.raises(UnsafeArchive) as info:
        extract_archive(bomb, tmp_path / "out")
    message = str(info.value)
    assert message.startswith("bomb.tar.gz (")
    assert f"unpacks to at least 96.0 MiB ({96 * 1024**2} bytes), {ratio:.0f} times its size" in (
        message
    )
    assert "more than the limit of 200x for archives that unpack to over 64.0 MiB" in message
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bomb.tar.gz"]  # no staging folder left


def test_small_or_incompressible_archives_are_not_held_to_the_ratio(tmp_path: Path) -> None:
    """Under the exempt size any ratio goes; above it, real data (ratio ~1) unpacks."""
    limits = ArchiveLimits(ratio_exempt_bytes=1024**2, max_ratio=200)
    small = zeros_archive(tmp_path / "small.tar.gz", 1024**2)
    assert extract_archive(small, tmp_path / "a", limits=limits) == tmp_path / "a"
    assert (tmp_path / "a" / "weights.pt").stat().st_size == 1024**2
    weights = make(tmp_path / "real.tar.gz", regular("model.pt", os.urandom(3 * 1024**2)))
    extract_archive(weights, tmp_path / "b", limits=limits)
    assert (tmp_path / "b" / "model.pt").stat().st_size == 3 * 1024**2
    few_mb = zeros_archive(tmp_path / "few.tar.gz", 3 * 1024**2)
    with pytest.raises(UnsafeArchive, match=re.escape("limit of 200x")):
        extract_archive(few_mb, tmp_path / "c", limits=limits)
    assert not (tmp_path / "c").exists()


def test_huge_declared_sizes_are_refused_from_the_headers(tmp_path: Path) -> None:
    """20 GiB declared (under the per-file limit) in a 1 KiB archive: refused at the header."""
    archive = declared_only(tmp_path / "declared.tar", {"a.pt": 20 * 1024**3})
    with pytest.raises(UnsafeArchive, match=r"declared\.tar \(1\.0 KiB\) unpacks to at least 20"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_total_is_checked_against_free_space_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = 5 * 1024**2

    def disk_usage(path: str | os.PathLike[str]) -> Usage:
        return Usage(100 * 1024**3, 100 * 1024**3 - free, free)

    monkeypatch.setattr(archives.shutil, "disk_usage", disk_usage)
    # The header alone crosses the free space; its data (missing) is never read.
    archive = declared_only(tmp_path / "big.tar", {"a.pt": 8 * 1024**2})
    no_ratio = ArchiveLimits(max_ratio=1e12)
    with pytest.raises(UserError) as info:
        extract_archive(archive, tmp_path / "out", limits=no_ratio)
    assert str(info.value) == (
        f"big.tar unpacks to at least 8.0 MiB ({8 * 1024**2} bytes) but only 5.0 MiB "
        f"({free} bytes) are free in {tmp_path}; nothing was unpacked"
    )
    assert not isinstance(info.value, UnsafeArchive)
    assert [p.name for p in tmp_path.iterdir()] == ["big.tar"]
    # Real data that fits is written.
    fits = make(tmp_path / "fits.tar.gz", regular("model.pt", os.urandom(4 * 1024**2)))
    extract_archive(fits, tmp_path / "fits", limits=no_ratio)
    assert (tmp_path / "fits" / "model.pt").stat().st_size == 4 * 1024**2


@pytest.mark.skipif(
    not (
        shutil.which("tar")
        and "GNU"
        in subprocess.run(["tar", "--version"], capture_output=True, text=True, check=False).stdout
    ),
    reason="needs GNU tar to write a sparse archive",
)
def test_a_gnu_sparse_member_counts_at_its_full_size(tmp_path: Path) -> None:
    """3 GiB of holes pack into ~150 bytes with `tar -S`; the size unpacked is 3 GiB."""
    holes = tmp_path / "src" / "holes.bin"
    holes.parent.mkdir()
    with open(holes, "wb") as f:
        f.truncate(3 * 1024**3)
        f.seek(1_000_000)
        f.write(b"abc")
    archive = tmp_path / "sparse.tar.gz"
    subprocess.run(["tar", "-cSzf", str(archive), "-C", str(holes.parent), "holes.bin"], check=True)
    with pytest.raises(UnsafeArchive, match=r"unpacks to at least 3\.0 GiB \(3221225472 bytes\)"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def metadata_bomb(path: Path, kind: bytes, size: int, count: int = 1) -> Path:
    """`count` GNU long names or pax headers of `size` bytes each (tarfile reads one whole,
    into memory, before any member check sees it), gzip-compressed as they are written."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = bytearray()
    for _ in range(count):
        info = tarfile.TarInfo("././@LongLink")
        info.type = kind
        info.size = size
        out += packer.compress(info.tobuf(format=tarfile.GNU_FORMAT))
        chunk = b"a" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            out += packer.compress(chunk)
    path.write_bytes(bytes(out + packer.flush()))
    return path


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["long", "pax"])
def test_a_header_bomb_is_refused_before_tarfile_reads_it_into_memory(
    tmp_path: Path, kind: bytes
) -> None:
    bomb = metadata_bomb(tmp_path / "names.tar.gz", kind, 40 * 1024**2)
    with pytest.raises(UnsafeArchive) as info:
        extract_archive(bomb, tmp_path / "out")
    assert str(info.value) == (
        f"names.tar.gz has a header of 40.0 MiB ({40 * 1024**2} bytes; a pax header or a "
        "long name), more than the limit of 16.0 MiB; it was not unpacked"
    )
    assert not (tmp_path / "out").exists()


def test_the_inflated_stream_is_bounded_by_the_ratio(tmp_path: Path) -> None:
    """Headers each under the one-read limit, together far past what the archive may inflate to."""
    bomb = metadata_bomb(tmp_path / "chain.tar.gz", tarfile.GNUTYPE_LONGNAME, 8 * 1024**2, 5)
    limits = ArchiveLimits(ratio_exempt_bytes=1024**2, max_members=10)
    with pytest.raises(UnsafeArchive, match=r"^chain\.tar\.gz \(.*\) inflates to more than"):
        extract_archive(bomb, tmp_path / "out", limits=limits)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
def test_long_names_and_every_compression_unpack(tmp_path: Path, mode: str) -> None:
    long_name = "code/" + "n" * 200 + ".py"
    archive = tmp_path / "model.tar"
    with tarfile.open(archive, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for add in (
            regular(long_name, b"print(1)\n"),
            regular("model.pt", os.urandom(3 * 1024**2)),
        ):
            add(tar)
    out = extract_archive(archive, tmp_path / "out")
    assert (out / long_name).read_bytes() == b"print(1)\n"
    assert (out / "model.pt").stat().st_size == 3 * 1024**2
