"""Read log files that another process is still writing, resuming at a byte offset."""

from __future__ import annotations

import logging
import os
import re
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
