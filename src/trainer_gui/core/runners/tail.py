"""Read log files that another process is still writing, resuming at a byte offset."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import struct
import sys
import time
from pathlib import Path

from trainer_gui.core.runners.events import LogLine

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
READ_CHUNK = 4 * 1024 * 1024


_EOL = re.compile(rb"\r\n|\r|\n")


def split_lines(data: bytes) -> tuple[list[tuple[bytes, int]], int]:
    """Complete non-blank lines in `data`, each with the byte count that ends it, and how many
    bytes they span; '\\r' ends a line too (tqdm)."""
    end = max(data.rfind(b"\n"), data.rfind(b"\r"))
    if end < 0:
        return [], 0
    found: list[tuple[bytes, int]] = []
    start = 0
    for match in _EOL.finditer(data, 0, end + 1):
        raw = data[start : match.start()]
        start = match.end()
        if raw.strip():
            found.append((raw, start))
    return found, end + 1


def decode(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= MAX_LINE else text[:MAX_LINE] + " …[line cut]"


class FileTail:
    """One (host, stream) source backed by a file; the offset is the byte count consumed."""

    def __init__(self, path: Path, host: str, stream: str, offset: int = 0) -> None:
        self.path = path
        self.host = host
        self.stream = stream
        self.offset = offset

    @property
    def key(self) -> tuple[str, str]:
        return (self.host, self.stream)

    def read(self, final: bool = False) -> list[LogLine]:
        """New complete lines; with `final`, a trailing partial line counts as complete."""
        return [line for line, _ in self.read_marked(final)]

    def read_marked(self, final: bool = False) -> list[tuple[LogLine, int]]:
        """New lines, each with the file offset just past it: a batch that ends at a line can
        store exactly the offset that resumes after it."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self.offset:  # truncated or replaced: start again rather than read garbage
            log.info("%s shrank below offset %d; reading it from the start", self.path, self.offset)
            self.offset = 0
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(READ_CHUNK)
        raws, used = split_lines(data)
        if final and used < len(data) and len(data) < READ_CHUNK:
            tail = data[used:]
            if tail.strip():
                raws.append((tail, len(data)))
            used = len(data)
        base = self.offset
        self.offset += used
        now = time.time()
        return [
            (LogLine(self.host, self.stream, decode(raw), now), base + end) for raw, end in raws
        ]


#: inotify(7) flags (Linux): the folder's files written, created or moved in; the queue lost.
_IN_MODIFY = 0x00000002
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then `len` bytes of name)


class FolderChanges:
    """Says when a file of one folder is written, so a follower reads new log lines at once
    instead of on its next poll (issue 18).

    Linux: an inotify instance watching the folder; `fileno()` turns readable on a change and
    `relevant()` says whether one of `names` changed. Elsewhere, or when no instance can be
    had (the per-user limit, an old kernel), `fileno()` is None and the follower polls as
    before. Only ever a hint: the follower still reads the files on its poll."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self.names = {os.fsencode(name) for name in names}
        self._fd: int | None = None
        if not sys.platform.startswith("linux"):
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            mask = _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO | _IN_ONLYDIR
            if libc.inotify_add_watch(fd, os.fsencode(folder), mask) < 0:
                errno = ctypes.get_errno()
                os.close(fd)
                raise OSError(errno, "inotify_add_watch")
        except (OSError, AttributeError) as exc:  # AttributeError: a libc without inotify
            log.debug("no change notices for %s (%s); polling", folder, exc)
            return
        self._fd = fd

    def fileno(self) -> int | None:
        return self._fd

    def relevant(self) -> bool:
        """Read the pending notices; whether one of the named files changed (or notices were
        lost). Never blocks."""
        if self._fd is None:
            return False
        found = False
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return found
            except OSError:
                return True
            if not data:
                return found
            offset = 0
            while offset + _EVENT.size <= len(data):
                _, mask, _, size = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = data[start : start + size].rstrip(b"\0")
                offset = start + size
                if mask & (_IN_Q_OVERFLOW | _IN_IGNORED) or name in self.names:
                    found = True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
