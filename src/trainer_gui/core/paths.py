"""Where things live: the data folder, run folders, and bundled resources (source or frozen)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

APP_NAME = "trainer-gui"


def data_home() -> Path:
    """The app's data folder; `TRAINER_GUI_HOME` overrides the platform default."""
    override = os.environ.get("TRAINER_GUI_HOME")
    if override:
        path = Path(override).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_home() -> Path:
    path = data_home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def resources_root() -> Path:
    """The package's `resources/` folder: package data in a wheel, an editable checkout and a
    frozen bundle alike (PyInstaller keeps the package layout under `sys._MEIPASS`)."""
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    return resources_root().joinpath(*parts)


def example_project() -> Path:
    return resource_path("examples", "quickstart")


def example_workspace() -> Path:
    """A writable copy of the example project, made once, so edits never touch the install."""
    target = data_home() / "projects" / "quickstart"
    if not target.exists():
        shutil.copytree(example_project(), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def remove_tree(folder: Path, what: str = "") -> bool:
    """Delete a folder on a cleanup path: what cannot go is logged, never raised, never lost.

    A link is unlinked, not followed. True when nothing is left.
    """
    label = what or str(folder)

    def report(_fn: object, path: str, exc: object) -> None:
        log.warning("could not remove %s (cleaning up %s): %s", path, label, exc)

    if folder.is_symlink():
        try:
            folder.unlink()
        except OSError as exc:
            report(None, str(folder), exc)
    elif folder.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(folder, onexc=report)
        else:  # pragma: no cover - depends on the Python
            shutil.rmtree(folder, onerror=report)
    return not folder.exists() and not folder.is_symlink()
