"""Unpacking a model.tar.gz safely, and finding the model folder to serve.

A model archive may come from anywhere (a colleague, a download, a dropped file), so it is read
as hostile: every member is checked before anything is written, and nothing is written outside
the destination folder.

Refused: absolute names (`/x`, `C:\\x`), any `..` component, names with NUL bytes; symbolic links
whose target is absolute or leaves the folder (checked again, for real, after all links exist);
hard links to anything but an earlier regular member; devices, FIFOs and other special files;
a member larger than `max_member_bytes`, a total larger than `max_total_bytes` or than the free
space, more than `max_members` members. The archive's `code/` folder (with `inference.py`) is
kept where SageMaker keeps it. Files get owner read/write and everyone read, folders rwxr-xr-x,
execute bits are kept; owners and set-id bits are not.

The extraction is manual (no `TarFile.extractall`), so it behaves the same on every Python.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from trainer_gui.core.errors import UserError

__all__ = [
    "DEFAULT_LIMITS",
    "ArchiveLimits",
    "UnsafeArchive",
    "extract_model",
    "find_model_archive",
    "is_model_archive",
]

GiB = 1024**3
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class UnsafeArchive(UserError):
    """The archive is refused; the message names the member and the reason."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_member_bytes: int = 32 * GiB
    max_total_bytes: int = 64 * GiB
    max_members: int = 100_000


DEFAULT_LIMITS = ArchiveLimits()


def is_model_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def find_model_archive(folder: Path) -> Path | None:
    """A folder that holds only `model.tar.gz` (SageMaker's output/ as downloaded): that file."""
    try:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        return None
    archive = folder / "model.tar.gz"
    others = [p for p in entries if p.name not in ("model.tar.gz", "output.tar.gz")]
    if archive.is_file() and not others:
        return archive
    return None


def _member_name(member: tarfile.TarInfo) -> str:
    """The member's path relative to the destination ('' for the root itself), or refuse."""
    raw = member.name
    if "\x00" in raw:
        raise UnsafeArchive(f"member {raw!r} has a NUL byte in its name")
    name = raw.replace("\\", "/") if os.sep == "\\" else raw
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeArchive(f"member {raw!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"member {raw!r} has a '..' component (it would leave the folder)")
    return "/".join(parts)


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_members(
    members: list[tarfile.TarInfo], limits: ArchiveLimits
) -> list[tuple[tarfile.TarInfo, str]]:
    if len(members) > limits.max_members:
        raise UnsafeArchive(
            f"the archive has {len(members)} members, more than the limit of {limits.max_members}"
        )
    checked: list[tuple[tarfile.TarInfo, str]] = []
    kinds: dict[str, str] = {}
    total = 0
    for member in members:
        name = _member_name(member)
        if member.isdir():
            kind = "dir"
        elif member.isfile():
            kind = "file"
            _check_size(member, total, limits)
            total += member.size
        elif member.issym():
            kind = "symlink"
            target = member.linkname
            if not target or target.startswith("/") or "\x00" in target:
                raise UnsafeArchive(
                    f"symbolic link {member.name!r} -> {target!r} points to an absolute path"
                )
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if resolved == ".." or resolved.startswith("../"):
                raise UnsafeArchive(
                    f"symbolic link {member.name!r} -> {target!r} points out of the folder"
                )
        elif member.islnk():
            kind = "hardlink"
            target = _member_name(tarfile.TarInfo(member.linkname))
            if kinds.get(target) != "file":
                raise UnsafeArchive(
                    f"hard link {member.name!r} -> {member.linkname!r} does not point to a file "
                    "earlier in the archive"
                )
        else:
            what = (
                "device"
                if member.ischr() or member.isblk()
                else "FIFO"
                if member.isfifo()
                else "special file"
            )
            raise UnsafeArchive(f"member {member.name!r} is a {what}; model archives hold files")
        if not name:
            if kind != "dir":
                raise UnsafeArchive(f"member {member.name!r} would replace the folder itself")
            continue
        previous = kinds.get(name)
        if previous is not None and (previous != kind or kind not in ("dir", "file")):
            raise UnsafeArchive(f"member {member.name!r} appears twice, as {previous} and {kind}")
        for parent in _parents(name):
            if kinds.get(parent, "dir") != "dir":
                raise UnsafeArchive(
                    f"member {member.name!r} is inside {parent!r}, which is a {kinds[parent]}"
                )
        kinds[name] = kind
        checked.append((member, name))
    return checked


def _check_size(member: tarfile.TarInfo, total: int, limits: ArchiveLimits) -> None:
    if member.size > limits.max_member_bytes:
        raise UnsafeArchive(
            f"member {member.name!r} is {member.size} bytes, more than the limit of "
            f"{limits.max_member_bytes} bytes for one file"
        )
    if total + member.size > limits.max_total_bytes:
        raise UnsafeArchive(
            f"the archive unpacks to more than {limits.max_total_bytes} bytes (the limit)"
        )


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def extract_model(archive: Path, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> Path:
    """Unpack `archive` (tar, tar.gz, ...) into the new folder `dest` and return `dest`.

    Raises `UnsafeArchive` (nothing is left behind) or `UserError` for an unreadable archive.
    """
    archive = Path(archive)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"{dest} is not empty; model archives are unpacked into a new folder")
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = _read_members(tar, limits)
            checked = _check_members(members, limits)
            needed = sum(m.size for m, _ in checked if m.isfile())
            dest.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(dest).free
            if needed > free:
                raise UnsafeArchive(
                    f"the archive unpacks to {needed} bytes but only {free} are free in {dest}"
                )
            try:
                _write(tar, checked, dest.resolve())
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UserError(f"cannot read {archive} as a model archive (tar or tar.gz): {exc}") from exc
    except UserError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _read_members(tar: tarfile.TarFile, limits: ArchiveLimits) -> list[tarfile.TarInfo]:
    """Headers one by one, so a bomb (millions of members, a member claiming terabytes) stops
    at its first header past a limit, before its data is read or skipped."""
    members: list[tarfile.TarInfo] = []
    total = 0
    while True:
        member = tar.next()
        if member is None:
            return members
        if member.isfile():
            _check_size(member, total, limits)
            total += member.size
        members.append(member)
        if len(members) > limits.max_members:
            raise UnsafeArchive(
                f"the archive has more than {limits.max_members} members (the limit)"
            )


def _write(tar: tarfile.TarFile, checked: list[tuple[tarfile.TarInfo, str]], root: Path) -> None:
    root_str = str(root)
    links: list[tuple[tarfile.TarInfo, str]] = []
    times: list[tuple[Path, float]] = []
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for member, name in checked:
        target = root / name
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, 0o755)
            continue
        if member.issym():
            links.append((member, name))  # after every file: nothing is written through a link
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if member.islnk():
            source = root / _member_name(tarfile.TarInfo(member.linkname))
            shutil.copyfile(source, target, follow_symlinks=False)
        else:
            source_fh = tar.extractfile(member)
            if source_fh is None:  # pragma: no cover - isfile() members always have data
                raise UnsafeArchive(f"member {member.name!r} has no data")
            fd = os.open(target, flags, 0o600)
            with os.fdopen(fd, "wb") as out, source_fh:
                remaining = member.size
                while remaining > 0:
                    chunk = source_fh.read(min(1024 * 1024, remaining))
                    if not chunk:
                        raise UnsafeArchive(f"member {member.name!r} is truncated")
                    out.write(chunk)
                    remaining -= len(chunk)
        mode = 0o644 | (member.mode & 0o111)
        os.chmod(target, mode)
        times.append((target, member.mtime))
    for member, name in links:
        link = root / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(member.linkname, link)
    # Links may point through each other (a -> b/.., b -> .): resolve them for real now.
    for member, name in links:
        real = os.path.realpath(root / name)
        if not _inside(root_str, real):
            raise UnsafeArchive(
                f"symbolic link {member.name!r} -> {member.linkname!r} resolves to {real}, "
                "out of the folder"
            )
    for path, mtime in times:
        with contextlib.suppress(OSError, NotImplementedError, OverflowError):
            os.utime(path, (mtime, mtime), follow_symlinks=False)
