"""model.tar.gz and output.tar.gz, packed from every host the way SageMaker does."""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def pack_dirs(sources: Iterable[Path], target: Path) -> Path:
    """Tar the contents of several folders into one archive; the first host's file wins."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    seen: set[str] = set()
    # compresslevel 1: model folders can be large and people wait on this at the end of a job.
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
        for source in sources:
            if not source.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(source):
                dirnames.sort()
                base = Path(dirpath)
                for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
                    path = base / name
                    arcname = path.relative_to(source).as_posix()
                    if arcname in seen:
                        continue
                    seen.add(arcname)
                    try:
                        tar.add(path, arcname=arcname, recursive=False)
                    except OSError as exc:  # a file the job removed while we packed
                        log.debug("not packed into %s: %s", target.name, exc)
    tmp.replace(target)
    return target


def pack_job(host_roots: list[Path], dest: Path) -> tuple[Path, Path]:
    """Pack /opt/ml/model into model.tar.gz and /opt/ml/output/data into output.tar.gz."""
    model = pack_dirs([root / "model" for root in host_roots], dest / "model.tar.gz")
    output = pack_dirs([root / "output" / "data" for root in host_roots], dest / "output.tar.gz")
    return model, output
