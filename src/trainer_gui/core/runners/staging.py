"""What goes into /opt/ml/code, for every backend: the source folder, dependencies, requirements.

One list of files (`code_entries`) that the local backends copy into a code folder and the
SageMaker backend packs into sourcedir.tar.gz, so a job sees the same tree wherever it runs.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from trainer_gui.core import code_store, safety
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
#: Code bigger than this (apparent size) gets a warning: it is usually data in the wrong place.
LARGE_CODE_BYTES = 100 * 1000 * 1000


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


def code_roots(spec: JobSpec) -> list[Path]:
    """The folders `code_entries` walks: files reached through links out of them are not kept."""
    source = spec.source
    roots = [spec.resolve(dep) for dep in source.dependencies]
    if source.source_dir and not is_remote(source.source_dir):
        roots.insert(0, spec.resolve(source.source_dir))
    return roots


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


def stage_code(
    spec: JobSpec,
    code_dir: Path,
    *,
    run_dir: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Copy the job's code into `code_dir` (created if missing); returns `code_dir`.

    Nothing lands outside `code_dir` (which itself must be inside `run_dir`, its parent if not
    given); sparse files stay sparse. A copy over `LARGE_CODE_BYTES` is reported through `warn`
    (the runner's status line), naming the biggest files, since it is copied again every run.
    """
    run_dir = code_dir.parent if run_dir is None else run_dir
    safety.make_dirs(run_dir, code_dir)
    entries = code_entries(spec)
    kept = code_store.CodeRecorder(code_roots(spec), allowed=[REQUIREMENTS])  # for run diffs
    for path, name in entries:
        target = code_dir.joinpath(*name.split("/"))
        if target.parent != code_dir:
            safety.make_dirs(code_dir, target.parent)
        kept.copy(code_dir, path, target, name)
    kept.save(run_dir)
    log.debug("staged %d file(s) into %s", len(entries), code_dir)
    message = large_code_message(entries)
    if message:
        log.warning("%s", message)
        if warn is not None:
            warn(message)
    return code_dir


def keep_code(spec: JobSpec, entries: list[tuple[Path, str]], run_dir: Path) -> None:
    """Keep code that is packed rather than staged (SageMaker) for run diffs; never raises."""
    kept = code_store.CodeRecorder(code_roots(spec), allowed=[REQUIREMENTS])
    for path, name in entries:
        try:
            kept.record(path, name)
        except OSError as exc:
            log.warning("could not keep %s for run diffs: %s", name, exc)
    kept.save(run_dir)


def large_code_message(entries: list[tuple[Path, str]]) -> str | None:
    """A warning when the code to copy is over `LARGE_CODE_BYTES`, else None."""
    sizes = [(path.stat().st_size, name) for path, name in entries]
    total = sum(size for size, _ in sizes)
    if total <= LARGE_CODE_BYTES:
        return None
    biggest = ", ".join(f"{name} ({_mb(size)})" for size, name in sorted(sizes, reverse=True)[:3])
    return (
        f"The job's code is {_mb(total)} and is copied for every run; largest: {biggest}. "
        "Move data out of the source folder into a channel (or delete it); the copy skips only "
        f"{', '.join(IGNORED_NAMES)}."
    )


def _mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"
