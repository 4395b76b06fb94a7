"""Finding the model archive to serve; unpacking it is `trainer_gui.core.archives`' job.

SageMaker's model.tar.gz keeps its `code/` folder (with `inference.py`) inside; the launcher
unpacks it with the app's one extractor, so hostile archives are refused the same way as S3
downloads and imported code.
"""

from __future__ import annotations

import logging
from pathlib import Path

from trainer_gui.core.archives import ARCHIVE_SUFFIXES, is_archive_name

log = logging.getLogger(__name__)

__all__ = ["ARCHIVE_SUFFIXES", "find_model_archive", "is_model_archive"]


def is_model_archive(path: Path) -> bool:
    return path.is_file() and is_archive_name(path)


def find_model_archive(folder: Path) -> Path | None:
    """A folder that holds only `model.tar.gz` (SageMaker's output/ as downloaded): that file."""
    try:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        log.debug("cannot list %s while looking for model.tar.gz: %s", folder, exc)
        return None
    archive = folder / "model.tar.gz"
    others = [p for p in entries if p.name not in ("model.tar.gz", "output.tar.gz")]
    if archive.is_file() and not others:
        return archive
    return None
