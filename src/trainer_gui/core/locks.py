"""A lock held for as long as a process lives: the OS drops it when the holder dies.

Used so only one process (GUI or CLI) ingests a job's logs and metrics at a time.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class ProcessLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops flock/msvcrt locks
            self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None
