"""The one gate for writing or removing files while a run is prepared: never outside its folder.

A run's folder (and, for staging, its code folder) is the only place the runners may create,
overwrite, link or delete anything. A spec that slipped past validation, a link left in the tree,
or a name like `.` must not turn a cleanup into `rmtree` of the user's data, so every such
operation resolves its target first and refuses one that is not strictly inside the folder.
The user's own checkpoint_dir and output_path are the documented exceptions and are not written
through here.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

#: Names that never denote a file of their own (and pathlib would silently drop `.`).
_NOT_A_NAME = {"", ".", ".."}

#: Files at least this big whose blocks are not all allocated are copied hole by hole.
SPARSE_MIN_BYTES = 1 << 20
_CHUNK = 1 << 20


class OutsideRunFolder(RuntimeError):
    """A bug, not bad input: something tried to write or remove outside a run's folder."""


def path_component(name: str, what: str) -> str:
    """`name` as one plain path component (a channel folder, a host folder), or refuse it."""
    if name in _NOT_A_NAME or "/" in name or "\\" in name or "\0" in name:
        raise OutsideRunFolder(f"{what} {name!r} is not a plain folder name; refusing to use it")
    return name


def inside_run(run_dir: Path, path: Path, *, follow_final: bool = True) -> Path:
    """`path` resolved, if it lies strictly inside `run_dir` (also resolved); else refuse.

    `follow_final=False` is for removing a link: the link itself is the target, not where it
    points. Every folder above the final name is resolved either way, so a link in the middle
    of the path (a channel link, say) cannot carry a write into the folder it points to.
    """
    root = Path(os.path.realpath(run_dir))
    if follow_final:
        resolved = Path(os.path.realpath(path))
    else:
        if path.name in _NOT_A_NAME:
            raise OutsideRunFolder(f"refusing to remove {str(path)!r}: it names no file of its own")
        resolved = Path(os.path.realpath(path.parent)) / path.name
    if resolved == root or not resolved.is_relative_to(root):
        raise OutsideRunFolder(
            f"refusing to write or remove {str(path)!r}: it resolves to {str(resolved)!r}, "
            f"which is not inside the run folder {str(root)!r}"
        )
    return resolved


def remove(run_dir: Path, path: Path) -> None:
    """Remove a file, a link (never what it points to) or a folder tree; a missing one is fine."""
    target = inside_run(run_dir, path, follow_final=False)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


def make_dirs(run_dir: Path, path: Path) -> Path:
    target = inside_run(run_dir, path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def write_text(run_dir: Path, path: Path, text: str) -> Path:
    target = inside_run(run_dir, path)
    target.write_text(text, encoding="utf-8")
    return target


def copy_file(run_dir: Path, source: Path, target: Path) -> Path:
    """Copy a file with its metadata into the run folder, keeping a sparse file sparse."""
    dest = inside_run(run_dir, target)  # a link there is followed, and refused if it leads out
    copy_keeping_holes(source, dest)
    return dest


def link(run_dir: Path, source: Path, target: Path) -> Path:
    """Make `target` (replacing whatever is there) show `source`: a link, or a copy where links
    are not allowed (Windows without developer mode). Only `target` is touched."""
    remove(run_dir, target)
    dest = inside_run(run_dir, target, follow_final=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        dest.symlink_to(source, target_is_directory=source.is_dir())
    except OSError:
        log.info("cannot link %s; copying it into the run folder instead", source)
        if source.is_dir():
            shutil.copytree(source, dest, copy_function=_copy2_keeping_holes)
        else:
            copy_keeping_holes(source, dest)
    return dest


def is_sparse(path: Path) -> bool:
    """Whether `path` has holes worth keeping (cheap: one stat)."""
    st = path.stat()
    blocks = getattr(st, "st_blocks", None)
    return (
        blocks is not None
        and hasattr(os, "SEEK_DATA")
        and st.st_size >= SPARSE_MIN_BYTES
        and blocks * 512 < st.st_size
    )


def copy_keeping_holes(source: Path, dest: Path) -> None:
    """`shutil.copy2`, except that a sparse file's holes stay holes instead of becoming zeros."""
    if not is_sparse(source):
        shutil.copy2(source, dest)
        return
    try:
        _copy_data_segments(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        log.debug("no SEEK_DATA for %s (%s); copying it in full", source, exc)
        shutil.copy2(source, dest)
        return
    shutil.copystat(source, dest)


def _copy2_keeping_holes(source: str, dest: str) -> str:
    copy_keeping_holes(Path(source), Path(dest))
    return dest


def _copy_data_segments(source: Path, dest: Path) -> None:
    with open(source, "rb") as fin, open(dest, "wb") as fout:
        fd = fin.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            left = end - start
            while left > 0:
                chunk = fin.read(min(left, _CHUNK))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
            pos = end
        fout.truncate(size)


__all__ = [
    "OutsideRunFolder",
    "copy_file",
    "copy_keeping_holes",
    "inside_run",
    "is_sparse",
    "link",
    "make_dirs",
    "path_component",
    "remove",
    "write_text",
]
