"""Replace a small file so that a reader, or a crash, sees the old bytes or the new, never half.

The app keeps several such files (settings, caches, journals, saved specs); each once had its own
temp-file-and-rename code, some with a fixed temp name that two writers shared, some leaving the
temp file behind on an error.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

#: The mode of a new file when the caller names none and there is no old file to keep it from.
DEFAULT_MODE = 0o644


def write_atomic(
    path: str | Path, data: str | bytes, *, mode: int | None = None, fsync: bool = False
) -> Path:
    """Write `data` (text as UTF-8) to a temp file of its own beside `path`, then rename it over.

    `mode`: the file's permission bits; by default an existing file keeps its own, a new one gets
    `DEFAULT_MODE`. `fsync`: flush the bytes to disk before the rename (for files whose loss
    after a power cut matters more than the write's speed). The folder must exist. On any error
    the temp file is removed and the old file is left as it was.
    """
    path = Path(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            mode = DEFAULT_MODE
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
