"""What goes into /opt/ml/code, for every backend: the source folder, dependencies, requirements.

One list of files (`code_entries`) that the local backends copy into a code folder and the
SageMaker backend packs into sourcedir.tar.gz, so a job sees the same tree wherever it runs.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from trainer_gui.core.spec.model import JobSpec, is_remote

log = logging.getLogger(__name__)

#: Never part of a job's code: version control, caches, virtual environments.
IGNORED_NAMES = (
    ".git",
    "__pycache__",
    "*.pyc",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ipynb_checkpoints",
)
COPY_IGNORE = shutil.ignore_patterns(*IGNORED_NAMES)
REQUIREMENTS = "requirements.txt"


def _tree_entries(root: Path, prefix: str, entries: dict[str, Path]) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):  # as copytree does
        skipped = COPY_IGNORE(dirpath, dirnames + filenames)
        dirnames[:] = sorted(d for d in dirnames if d not in skipped)
        for name in sorted(filenames):
            if name in skipped:
                continue
            path = Path(dirpath) / name
            entries[f"{prefix}{path.relative_to(root).as_posix()}"] = path


def has_local_code(spec: JobSpec) -> bool:
    """Whether /opt/ml/code gets anything from this machine (decided without reading files)."""
    source = spec.source
    local_dir = bool(source.source_dir) and not is_remote(source.source_dir or "")
    return local_dir or bool(source.dependencies) or bool(source.requirements)


def code_entries(spec: JobSpec) -> list[tuple[Path, str]]:
    """(file, path under /opt/ml/code), sorted by path; a later entry wins on a clash.

    The source folder (unless it is already in S3), each dependency folder under its own
    name, and the requirements file as requirements.txt.
    """
    entries: dict[str, Path] = {}
    source = spec.source
    if source.source_dir and not is_remote(source.source_dir):
        _tree_entries(spec.resolve(source.source_dir), "", entries)
    for dep in source.dependencies:
        folder = spec.resolve(dep)
        _tree_entries(folder, f"{folder.name}/", entries)
    if source.requirements:
        entries[REQUIREMENTS] = spec.resolve(source.requirements)
    return sorted(((path, name) for name, path in entries.items()), key=lambda e: e[1])


def stage_code(spec: JobSpec, code_dir: Path) -> Path:
    """Copy the job's code into `code_dir` (created if missing); returns `code_dir`."""
    code_dir.mkdir(parents=True, exist_ok=True)
    entries = code_entries(spec)
    for path, name in entries:
        target = code_dir.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    log.debug("staged %d file(s) into %s", len(entries), code_dir)
    return code_dir
