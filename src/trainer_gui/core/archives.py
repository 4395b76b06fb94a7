"""The one way the app unpacks a tar or tar.gz that came from elsewhere.

S3 downloads (a job's model.tar.gz and output.tar.gz, an imported job's code), served models and
dropped files all come through `extract_archive`. Every archive is read as hostile:

* headers are read one by one first, so a bomb (a member claiming terabytes, millions of
  members) is refused at its first header past a limit, before any data is read or written:
  the sizes the headers declare add up to the total, which must stay under the size limits,
  under the free space where it unpacks, and within `max_ratio` times the archive's own size
  (a small archive that unpacks to gigabytes is a decompression bomb, not a model);
* every member is checked before anything is written: no absolute names, no `..`, no links that
  leave the folder, hard links only to an earlier file, no devices, FIFOs or other special files,
  nothing written through a link, no member that is both a file and a folder;
* Python's own `data` extraction filter (PEP 706) does the writing where the running Python has
  it (3.10.12+, 3.11.4+, 3.12+); older ones get the same rules from the checks above plus the
  filter's permission rules applied here;
* tarfile reads a pax header or a GNU long name whole into memory, and inflates whatever it
  skips: the inflated stream it reads is bounded (`_Inflated`), so neither can be a bomb;
* links may point through each other, so once everything exists each one is resolved for real;
* the archive is unpacked into a hidden sibling folder and moved into place only when complete,
  so a refused or broken archive leaves nothing at the destination.

`UnsafeArchive` (a `UserError`) names the archive, the member and what is wrong with it.
"""

from __future__ import annotations

import bz2
import contextlib
import copy
import gzip
import io
import logging
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from trainer_gui.core.errors import UserError
from trainer_gui.core.paths import remove_tree

log = logging.getLogger(__name__)

__all__ = [
    "ARCHIVE_SUFFIXES",
    "DEFAULT_LIMITS",
    "ArchiveLimits",
    "UnsafeArchive",
    "extract_archive",
    "is_archive_name",
]

MiB = 1024**2
GiB = 1024**3
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

#: Whether this Python's tarfile has PEP 706's extraction filters (tests switch it off).
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
#: How much of a member's data tarfile reads at once (set on every TarFile opened here) ...
COPY_CHUNK = 1024 * 1024
#: ... so a single read bigger than this is a header read whole (see `_Inflated`).
MAX_HEADER_READ = 16 * 1024 * 1024


class UnsafeArchive(UserError):
    """The archive is refused; the message names the archive, the member and the reason."""


@dataclass(frozen=True)
class ArchiveLimits:
    """How much one archive may unpack to (model weights are big; a bomb is bigger)."""

    max_member_bytes: int = 32 * GiB
    max_total_bytes: int = 64 * GiB
    max_members: int = 100_000
    #: Unpacked / archive size above which it is a bomb: weights compress to ~1-2x, text and
    #: code ~10x, zeros ~1000x (gzip's ceiling) ...
    max_ratio: float = 200.0
    #: ... unless it unpacks to less than this in all (a small archive of text or empty files).
    ratio_exempt_bytes: int = 64 * MiB


DEFAULT_LIMITS = ArchiveLimits()


def is_archive_name(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(
    archive: Path,
    dest: Path,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    replace: bool = False,
) -> Path:
    """Unpack `archive` into the folder `dest` and return `dest`.

    `dest` must be missing or empty, unless `replace` (a run's own artifact folder being
    refreshed): then its old content gives way to the new, once the new is complete. Raises
    `UnsafeArchive` for a hostile archive, `UserError` for an unreadable one or a failed write;
    either way nothing is left at `dest` that was not there before.
    """
    archive = Path(archive)
    dest = Path(dest)
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise UserError(f"cannot unpack {archive.name} into {dest}: it exists and is not a folder")
    if not replace and dest.is_dir() and any(dest.iterdir()):
        raise UserError(
            f"cannot unpack {archive.name} into {dest}: the folder is not empty "
            "(archives are unpacked into a new folder)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpacking-", dir=dest.parent))
    try:
        os.chmod(staging, 0o755)
        _unpack(archive, staging, limits)
        if dest.is_dir():
            old = dest.with_name(f".{dest.name}.old-{staging.name.rsplit('-', 1)[-1]}")
            dest.rename(old)
            os.replace(staging, dest)
            remove_tree(old, f"the old content of {dest}")
        else:
            os.replace(staging, dest)
    except BaseException:
        remove_tree(staging, f"a half-unpacked {archive.name}")
        raise
    log.info("unpacked %s into %s", archive, dest)
    return dest


# -- reading and checking ---------------------------------------------------------------------


def _unpack(archive: Path, root: Path, limits: ArchiveLimits) -> None:
    filter_error: tuple[type[BaseException], ...] = (
        (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
    )
    try:
        compressed = archive.stat().st_size
        free = shutil.disk_usage(root).free
        ratio_bound = int(max(limits.ratio_exempt_bytes, limits.max_ratio * max(compressed, 1)))
        # Headers and padding: at most ~2 KiB a member, plus room for small archives.
        slack = limits.ratio_exempt_bytes + 2048 * limits.max_members
        with contextlib.ExitStack() as stack:
            stream = _Inflated(
                stack.enter_context(_decompressed(archive)),
                min(limits.max_total_bytes, ratio_bound) + slack,
                archive,
            )
            # The file-like protocol tarfile uses: read, seek, tell.
            tar = stack.enter_context(tarfile.open(fileobj=cast("IO[bytes]", stream), mode="r:"))
            tar.errorlevel = 2  # every problem raises; none is only logged by tarfile
            # Data is read in chunks no bigger than this (an __init__ argument typeshed lacks).
            setattr(tar, "copybufsize", COPY_CHUNK)  # noqa: B010
            members = _read_headers(tar, archive, limits, compressed, ratio_bound, free, root)
            wanted = _check_members(members, archive)
            _write(tar, wanted, root)
    except UserError:
        raise
    except filter_error as exc:
        raise UnsafeArchive(f"{archive.name}: refused by the extraction filter: {exc}") from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
        raise UserError(
            f"{archive.name} is not a readable tar or tar.gz archive ({exc}); nothing was unpacked"
        ) from exc
    except OSError as exc:
        raise UserError(f"unpacking {archive.name} failed: {exc}; nothing was unpacked") from exc
    _check_links_resolve(wanted, archive, root)


def _decompressed(archive: Path) -> io.BufferedIOBase:
    """The archive's tar stream: gzip, bzip2 and xz are told by their magic bytes."""
    with open(archive, "rb") as head:
        magic = head.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(archive, "rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(archive, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(archive, "rb")
    return open(archive, "rb")  # closed by the caller's ExitStack


class _Inflated:
    """The tar stream as tarfile reads it, refusing to go past `limit` bytes or to read more
    than `MAX_HEADER_READ` at once.

    The member sizes are checked from the headers, but tarfile also reads a pax header or a GNU
    long name in one piece, into memory, before any check sees it: a 60 MB gzip can hold a
    60 GB "file name". Data is read in `COPY_CHUNK` pieces, so only such a header reads more.
    """

    def __init__(self, raw: io.BufferedIOBase, limit: int, archive: Path) -> None:
        self._raw = raw
        self._limit = limit
        self._archive = archive

    def _refuse(self, end: int) -> UnsafeArchive:
        return UnsafeArchive(
            f"{self._archive.name} ({_size(self._archive.stat().st_size)}) inflates to more "
            f"than {_size(self._limit)} of tar stream (at least {_size(end)}): more than its "
            "headers and the expansion-ratio limit allow (a decompression bomb); "
            "it was not unpacked"
        )

    def read(self, size: int | None = -1) -> bytes:
        position = self._raw.tell()
        if size is None or size < 0:
            size = self._limit - position + 1
        if size > MAX_HEADER_READ:
            raise UnsafeArchive(
                f"{self._archive.name} has a header of {_size(size)} ({size} bytes; a pax "
                f"header or a long name), more than the limit of {_size(MAX_HEADER_READ)}; "
                "it was not unpacked"
            )
        if position + size > self._limit:
            raise self._refuse(position + size)
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self._raw.tell() + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR):
            raise OSError("the tar stream is read forwards and backwards only, not from its end")
        if target > self._limit:  # seeking forward in a compressed stream inflates up to it
            raise self._refuse(target)
        return self._raw.seek(target)

    def tell(self) -> int:
        return self._raw.tell()


def _size(count: float) -> str:
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if count >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count:.0f} bytes"


def _read_headers(
    tar: tarfile.TarFile,
    archive: Path,
    limits: ArchiveLimits,
    compressed: int,
    ratio_bound: int,
    free: int,
    root: Path,
) -> list[tarfile.TarInfo]:
    """All headers (no data is inflated past them), refused at the first one past a limit.

    Sizes are the ones the headers declare (for sparse files: the size with the holes filled,
    as extraction writes them), so a header claiming terabytes is caught before its data.
    """
    members: list[tarfile.TarInfo] = []
    total = 0
    while (member := tar.next()) is not None:
        members.append(member)
        if len(members) > limits.max_members:
            raise UnsafeArchive(
                f"{archive.name} has more than {limits.max_members} members (the limit); "
                "it was not unpacked"
            )
        if member.isfile():
            if member.size > limits.max_member_bytes:
                raise UnsafeArchive(
                    f"{archive.name}: member {member.name!r} is {member.size} bytes, more than "
                    f"the limit of {limits.max_member_bytes} bytes for one file"
                )
            total += member.size
            if total > limits.max_total_bytes:
                raise UnsafeArchive(
                    f"{archive.name} unpacks to more than {limits.max_total_bytes} bytes "
                    "(the limit); it was not unpacked"
                )
            if total > ratio_bound:
                raise UnsafeArchive(
                    f"{archive.name} ({_size(compressed)}) unpacks to at least {_size(total)} "
                    f"({total} bytes), {total / max(compressed, 1):.0f} times its size: more "
                    f"than the limit of {limits.max_ratio:.0f}x for archives that unpack to over "
                    f"{_size(limits.ratio_exempt_bytes)} (a decompression bomb); "
                    "it was not unpacked"
                )
            if total > free:
                raise UserError(
                    f"{archive.name} unpacks to at least {_size(total)} ({total} bytes) but only "
                    f"{_size(free)} ({free} bytes) are free in {root.parent}; nothing was unpacked"
                )
    return members


def _refuse(archive: Path, member: tarfile.TarInfo, why: str) -> UnsafeArchive:
    return UnsafeArchive(
        f"{archive.name}: member {member.name!r} {why}; the archive was not unpacked"
    )


def _relative(raw: str, archive: Path, member: tarfile.TarInfo) -> str:
    """`raw` as a clean relative path ('' for the folder itself), or refuse it."""
    if "\x00" in raw:
        raise _refuse(archive, member, "has a NUL byte in its name")
    name = raw.replace("\\", "/")  # portable archives never need a backslash; Windows reads one
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise _refuse(archive, member, f"has an absolute path ({raw!r})")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, member, "has a '..' component (it would leave the folder)")
    return "/".join(parts)


def _kind(member: tarfile.TarInfo, archive: Path) -> str:
    if member.isdir():
        return "folder"
    if member.isfile():
        return "file"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        raise _refuse(archive, member, "is a device file")
    if member.isfifo():
        raise _refuse(archive, member, "is a FIFO")
    raise _refuse(archive, member, "is a special file")


def _check_members(
    members: list[tarfile.TarInfo], archive: Path
) -> list[tuple[tarfile.TarInfo, str]]:
    """The members to write with their clean names; refuse the archive on the first bad one."""
    kinds: dict[str, str] = {}
    wanted: list[tuple[tarfile.TarInfo, str]] = []
    for member in members:
        name = _relative(member.name, archive, member)
        kind = _kind(member, archive)
        if kind == "symlink":
            target = member.linkname
            if (
                not target
                or "\x00" in target
                or target.startswith(("/", "\\"))
                or (len(target) > 1 and target[1] == ":")
            ):
                raise _refuse(archive, member, f"is a link to an absolute path ({target!r})")
            resolved = posixpath.normpath(
                posixpath.join(posixpath.dirname(name), target.replace("\\", "/"))
            )
            if resolved == ".." or resolved.startswith("../"):
                raise _refuse(archive, member, f"is a link out of the folder ({target!r})")
        elif kind == "hard link":
            target = member.linkname
            if target.replace("\\", "/").startswith("/") or (len(target) > 1 and target[1] == ":"):
                raise _refuse(archive, member, f"is a link to an absolute path ({target!r})")
            if kinds.get(_relative(target, archive, member)) != "file":
                raise _refuse(
                    archive, member, f"is a hard link to {target!r}, not to a file before it"
                )
        if not name:
            if kind != "folder":
                raise _refuse(archive, member, "would replace the folder itself")
            continue
        previous = kinds.get(name)
        if previous is not None and (previous != kind or kind not in ("folder", "file")):
            raise _refuse(archive, member, f"appears twice, as a {previous} and a {kind}")
        for parent in _parents(name):
            parent_kind = kinds.setdefault(parent, "folder")
            if parent_kind != "folder":
                raise _refuse(archive, member, f"is inside {parent!r}, which is a {parent_kind}")
        kinds[name] = kind
        wanted.append((member, name))
    return wanted


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


# -- writing ----------------------------------------------------------------------------------


def _write(tar: tarfile.TarFile, wanted: list[tuple[tarfile.TarInfo, str]], root: Path) -> None:
    members = [member for member, _ in wanted]
    if HAS_DATA_FILTER:
        tar.extractall(root, members=members, filter="data")
        return
    # A Python without PEP 706: the checks above already refused what the filter refuses;
    # apply its permission rules to copies of the members and extract those.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tar.extractall(root, members=[_sanitized(m) for m in members])


def _sanitized(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """The `data` filter's attribute rules: no owners, no set-id/sticky bits, no group/other
    write; files readable and writable by their owner, executable only if the owner's is."""
    clean = copy.copy(member)
    clean.uid = os.getuid() if hasattr(os, "getuid") else 0
    clean.gid = os.getgid() if hasattr(os, "getgid") else 0
    clean.uname = clean.gname = ""
    mode = member.mode & 0o755
    if member.isfile() or member.islnk():
        mode |= 0o600
        if not mode & 0o100:
            mode &= ~0o011
    elif member.isdir():
        mode = 0o755
    clean.mode = mode
    return clean


def _check_links_resolve(
    wanted: list[tuple[tarfile.TarInfo, str]], archive: Path, root: Path
) -> None:
    """Each link looked inside on its own; together they may not (p -> q/.., q -> .)."""
    real_root = os.path.realpath(root)
    for member, name in wanted:
        if not member.issym():
            continue
        real = os.path.realpath(root / name)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise _refuse(
                archive,
                member,
                f"is a link ({member.linkname!r}) that resolves to {real}, out of the folder",
            )
