"""Input channels as SageMaker's File mode gives them: a private, writable copy per run.

On SageMaker every channel is downloaded onto the instance before the script starts, so a
script may write into it, delete from it, or rewrite a file in place, and the data it was given
never changes. A link to the user's folder (or a read-only mount) is not that: writes either
fail (EROFS) or, worse, change the user's original data.

How the copy is made, and why not with hard links: a hard link is the same file under a second
name, so `open(path, "r+")`, `"a"`, `os.truncate` or `chmod` through it changes the original,
and making the links read-only would change the original's mode too (and root in a container
ignores modes anyway). Only deleting or replacing (write a new file, rename it over) is safe
through a hard link, and scripts are not limited to that. So each file is

* cloned (`FICLONE`: Btrfs, XFS, bcachefs, OCFS2, ...): it shares the original's blocks until
  either side writes, when the file system copies just the blocks written; nothing is copied
  twice and a write never reaches the original;
* else copied (holes kept): the only other way to promise the original stays as it was.

A copy larger than `LARGE_CHANNEL_BYTES` is reported through `warn` before it starts, since it
is made again for every run; `progress` reports bytes done. Symbolic links inside the data are
followed (their content is copied: a link kept as a link would lead a write back to the
original), special files (FIFOs, sockets, devices) are skipped. Every file and folder is
readable and writable by its owner, as a download is.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainer_gui.core import safety
from trainer_gui.core.runners.events import TransferProgress
from trainer_gui.core.spec.model import JobSpec, is_remote

log = logging.getLogger(__name__)

#: A channel copy (not clone) bigger than this is reported before it starts.
LARGE_CHANNEL_BYTES = 1000 * 1000 * 1000
#: `ioctl(dest, FICLONE, source)` (linux/fs.h: _IOW(0x94, 9, int)).
FICLONE = 0x40049409
#: How often `progress` hears of a copy in flight, at most.
PROGRESS_SECONDS = 0.5

#: (channel name, bytes done, bytes in all)
Progress = Callable[[str, int, int], None]

_NOT_CLONABLE = {
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.EXDEV,  # another file system
    errno.EINVAL,  # the file system does not clone (ext4, tmpfs), or not these two files
    errno.ENOTTY,  # not a file system ioctl at all
    errno.EPERM,
    errno.EBADF,
    errno.ENOSYS,
}


@dataclass
class Snapshot:
    """What one channel's snapshot took."""

    name: str
    files: int = 0
    bytes: int = 0
    cloned: int = 0  # files that share blocks with the original
    skipped: list[str] = field(default_factory=list)  # special files left out

    @property
    def copied(self) -> int:
        return self.files - self.cloned


def _clone(source_fd: int, dest_fd: int) -> bool:
    """Whether `dest` now shares `source`'s blocks; False where the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    try:
        fcntl.ioctl(dest_fd, FICLONE, source_fd)
    except OSError as exc:
        if exc.errno in _NOT_CLONABLE:
            return False
        raise
    return True


def _copy_file(source: Path, dest: Path, clone: list[bool]) -> bool:
    """`source` into the new file `dest` (created exclusively: never through a link already
    there): cloned if `clone[0]` still says it may work, else a real copy keeping holes; True
    when cloned. A failed clone turns cloning off for the rest of the channel."""
    with open(source, "rb") as fin, open(dest, "xb") as fout:
        if clone[0]:
            if _clone(fin.fileno(), fout.fileno()):
                return True
            clone[0] = False
    safety.copy_keeping_holes(source, dest)  # into the empty file just made
    return False


def _private_mode(path: Path, st: os.stat_result, is_dir: bool) -> None:
    """The source's mode and times, plus owner read/write (and search for a folder)."""
    extra = 0o700 if is_dir else 0o600
    os.chmod(path, stat.S_IMODE(st.st_mode) | extra)
    if not is_dir:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@dataclass
class _Tree:
    folders: list[Path] = field(default_factory=list)  # relative, parents first
    files: list[tuple[Path, Path, os.stat_result]] = field(default_factory=list)  # (abs, rel, st)
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(st.st_size for _, _, st in self.files)


def _walk(source: Path) -> _Tree:
    """The folders and regular files under `source`; links followed, loops cut, special files
    (and dangling links) listed as skipped."""
    tree = _Tree()
    if source.is_file():
        tree.files.append((source, Path(source.name), source.stat()))
        return tree
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
        here = Path(dirpath)
        st = os.stat(here)
        if (st.st_dev, st.st_ino) in seen:  # a link back up the tree
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        if here != source:
            tree.folders.append(here.relative_to(source))
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(source)
            try:
                file_st = path.stat()
            except OSError:  # a dangling link: nothing to copy
                tree.skipped.append(rel.as_posix())
                continue
            if stat.S_ISREG(file_st.st_mode):
                tree.files.append((path, rel, file_st))
            else:
                tree.skipped.append(rel.as_posix())
    return tree


def snapshot_channel(
    run_dir: Path,
    name: str,
    source: Path,
    dest: Path,
    *,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    clone: bool = True,
) -> Snapshot:
    """Make `dest` (inside `run_dir`, replaced if there) a private copy of `source`, a folder
    or a single file (which goes inside `dest`, as a channel is always a folder).

    `clone=False` copies even where the file system could clone (tests, benchmarks)."""
    safety.remove(run_dir, dest)
    root = safety.make_dirs(run_dir, dest)
    tree = _walk(source.resolve())
    report = Snapshot(name, skipped=tree.skipped)
    for item in tree.skipped:
        log.warning("channel %s: %s is not a regular file; left out of the copy", name, item)
    for folder in tree.folders:  # each checked: nothing in the data leads out of the run
        safety.make_dirs(run_dir, root.joinpath(*folder.parts))
    total = tree.total
    may_clone = [clone]
    done = 0
    last = 0.0
    warned = False
    for path, rel, st in tree.files:
        target = root.joinpath(*rel.parts)  # in a folder made above; open(.., "xb") below
        report.cloned += _copy_file(path, target, may_clone)  # never follows a link there
        _private_mode(target, st, is_dir=False)
        report.files += 1
        done += st.st_size
        if not may_clone[0] and not warned and total > LARGE_CHANNEL_BYTES:
            warned = True
            message = large_channel_message(name, total)
            log.warning("%s", message)
            if warn is not None:
                warn(message)
        now = time.monotonic()
        if progress is not None and (now - last >= PROGRESS_SECONDS or done == total):
            last = now
            progress(name, done, total)
    report.bytes = done
    for dirpath, _, _ in os.walk(root):  # the owner's to write, as a download is
        os.chmod(dirpath, stat.S_IMODE(os.stat(dirpath).st_mode) | 0o700)
    if progress is not None and not tree.files:
        progress(name, 0, 0)
    log.debug(
        "channel %s: %d file(s), %d bytes, %d cloned, %d copied into %s",
        name,
        report.files,
        report.bytes,
        report.cloned,
        report.copied,
        root,
    )
    return report


def large_channel_message(name: str, total: int) -> str:
    return (
        f"Copying channel {name!r} ({total / 1e9:,.1f} GB) into the run folder: each run gets "
        "its own copy, as SageMaker downloads one, so a script that writes into its channel "
        "never changes your data. This file system cannot share the blocks (Btrfs or XFS "
        "can), so the copy takes time and space; a smaller channel, or data on such a file "
        "system, avoids it."
    )


def snapshot_channels(
    spec: JobSpec,
    run_dir: Path,
    folder_for: Callable[[str], Path],
    *,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    clone: bool = True,
) -> list[Snapshot]:
    """A private copy of every local channel of `spec`, at `folder_for(name)` in `run_dir`."""
    return [
        snapshot_channel(
            run_dir,
            channel.name,
            spec.resolve(channel.source),
            folder_for(safety.path_component(channel.name, "channel name")),
            warn=warn,
            progress=progress,
            clone=clone,
        )
        for channel in spec.channels
        if not is_remote(channel.source)
    ]


def progress_message(name: str, done: int, total: int) -> str:
    """A status line for a snapshot in flight."""
    if total <= 0:
        return f"Copying channel {name!r}"
    return f"Copying channel {name!r}: {done / 1e6:,.0f} of {total / 1e6:,.0f} MB"


def reporter(job_id: str, sink: Callable[[TransferProgress], None]) -> Progress:
    """`progress` for a runner: TransferProgress events (a progress bar; nothing is stored)."""

    def report(name: str, done: int, total: int) -> None:
        sink(TransferProgress(job_id, "copy", f"channel {name}", done, total, 0, name))

    return report


def discard(spec: JobSpec, run_dir: Path) -> None:
    """Remove the job's channel copies once it has ended, as SageMaker's instances go: a copy
    (not a clone) of big data would otherwise stay in every run folder. Best effort: what a
    container wrote as root may not be removable here, and is left (and logged)."""
    hosts = run_dir / "hosts"
    if not hosts.is_dir():
        return
    for host in sorted(hosts.iterdir()):
        for channel in spec.channels:
            if is_remote(channel.source):
                continue
            folder = host / "input" / "data" / safety.path_component(channel.name, "channel name")
            try:
                safety.remove(run_dir, folder)
            except OSError as exc:
                log.warning("could not remove the channel copy %s: %s", folder, exc)
