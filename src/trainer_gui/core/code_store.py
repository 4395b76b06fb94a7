"""The code each run saw, kept for later: a content-addressed store plus a manifest per run.

Staging reads every file of a job's code anyway; while it copies a file into the run's code
folder it hashes the same bytes (SHA-256) and, when the store lacks them, writes them once under
`<data>/code-store/objects/ab/cdef…`. The run folder gets `code-manifest.json` (path → hash,
size, mode), so two runs of unchanged code share every object and a diff needs only manifests.

Objects are plain read-only copies, never hard links to the staged files: the code folder is
mounted into the job, and a script writing there would otherwise change the stored object.
Nothing is written outside the store or the run folder (`safety.inside_run`), and a file the
store cannot keep (too big, reached through a link leading out of the source folder, a write
that failed) gets a note in the manifest instead: keeping code is a record, never a reason for
a job not to start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_gui.core import safety
from trainer_gui.core.atomic import write_atomic

log = logging.getLogger(__name__)

STORE_DIR = "code-store"
MANIFEST = "code-manifest.json"
MANIFEST_VERSION = 1
#: Files bigger than this are copied into the code folder but not kept (usually data).
MAX_KEPT_BYTES = 10 * 1000 * 1000


def store_root() -> Path:
    """`<data>/code-store` (TRAINER_GUI_HOME in tests), the one store for every run."""
    from trainer_gui.core.paths import data_home

    return data_home() / STORE_DIR


def object_path(root: Path, digest: str) -> Path:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
    return root / "objects" / digest[:2] / digest[2:]


@dataclass(frozen=True)
class FileEntry:
    """One file of a run's code: its hash when kept, else a note saying why not."""

    sha256: str | None
    size: int
    mode: int
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"size": self.size, "mode": f"{self.mode:o}"}
        if self.sha256:
            data["sha256"] = self.sha256
        if self.note:
            data["note"] = self.note
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileEntry:
        digest = data.get("sha256")
        return cls(
            sha256=str(digest) if digest else None,
            size=int(data.get("size", 0)),
            mode=int(str(data.get("mode", "644")), 8),
            note=str(data.get("note", "")),
        )


@dataclass
class Manifest:
    files: dict[str, FileEntry] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "files": {name: self.files[name].to_json() for name in sorted(self.files)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        files = data.get("files")
        if not isinstance(files, Mapping):
            raise ValueError("no 'files' mapping")
        return cls({str(k): FileEntry.from_json(v) for k, v in files.items()})


class CodeRecorder:
    """Copies files into a code folder while keeping them in the store; then saves a manifest.

    `roots` are the folders the code comes from (resolved); a file whose real path lies in none
    of them (a link leading out) is copied as before but its content is not kept. Names in
    `allowed` (the requirements file, which may live anywhere) are exempt.
    """

    def __init__(
        self,
        roots: Iterable[Path] = (),
        *,
        allowed: Iterable[str] = (),
        root: Path | None = None,
        max_bytes: int = MAX_KEPT_BYTES,
    ) -> None:
        self.root = root if root is not None else store_root()
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.allowed = set(allowed)
        self.max_bytes = max_bytes
        self.manifest = Manifest()
        self._made: set[Path] = set()

    def copy(self, code_dir: Path, source: Path, target: Path, name: str) -> None:
        """Copy `source` to `target` (inside `code_dir`), hashing and keeping what it can."""
        st = source.stat()
        mode = stat.S_IMODE(st.st_mode)
        if st.st_size > self.max_bytes or not stat.S_ISREG(st.st_mode) or safety.is_sparse(source):
            safety.copy_file(code_dir, source, target)  # sparse files stay sparse
            note = f"over {self.max_bytes / 1e6:g} MB: not kept"
            if st.st_size <= self.max_bytes:
                note = "a sparse file: not kept"
            self.manifest.files[name] = FileEntry(None, st.st_size, mode, note)
            return
        dest = safety.inside_run(code_dir, target)
        with open(source, "rb") as fin:
            data = fin.read()
        with open(dest, "wb") as fout:
            fout.write(data)
        shutil.copystat(source, dest)
        if not self._inside_roots(source, name):
            note = "reached through a link leading out of the source folder: not kept"
            self.manifest.files[name] = FileEntry(None, len(data), mode, note)
            return
        self.manifest.files[name] = self.keep(data, mode)

    def record(self, source: Path, name: str) -> None:
        """Keep `source` without copying it anywhere (code packed for SageMaker)."""
        st = source.stat()
        mode = stat.S_IMODE(st.st_mode)
        if st.st_size > self.max_bytes or not stat.S_ISREG(st.st_mode):
            note = f"over {self.max_bytes / 1e6:g} MB: not kept"
            self.manifest.files[name] = FileEntry(None, st.st_size, mode, note)
        elif not self._inside_roots(source, name):
            note = "reached through a link leading out of the source folder: not kept"
            self.manifest.files[name] = FileEntry(None, st.st_size, mode, note)
        else:
            self.manifest.files[name] = self.keep(source.read_bytes(), mode)

    def keep(self, data: bytes, mode: int) -> FileEntry:
        digest = hashlib.sha256(data).hexdigest()
        try:
            self._write_object(digest, data)
        except (OSError, safety.OutsideRunFolder) as exc:
            log.warning("could not keep code object %s: %s", digest, exc)
            return FileEntry(None, len(data), mode, f"could not be kept: {exc}")
        return FileEntry(digest, len(data), mode)

    def save(self, run_dir: Path) -> Path | None:
        """Write the manifest into the run folder; a failure is logged, never raised."""
        text = json.dumps(self.manifest.to_json(), indent=1, sort_keys=True)
        try:
            return safety.write_text(run_dir, run_dir / MANIFEST, text)
        except (OSError, safety.OutsideRunFolder) as exc:
            log.warning("could not write the code manifest of %s: %s", run_dir, exc)
            return None

    def _inside_roots(self, source: Path, name: str) -> bool:
        if name in self.allowed or not self.roots:
            return True
        real = Path(os.path.realpath(source))
        return any(real.is_relative_to(r) for r in self.roots)

    def _write_object(self, digest: str, data: bytes) -> None:
        path = object_path(self.root, digest)
        folder = path.parent
        if folder not in self._made:
            self.root.mkdir(parents=True, exist_ok=True)
            safety.make_dirs(self.root, folder)
            self._made.add(folder)
        target = safety.inside_run(self.root, path)  # a link planted in the store is refused
        try:
            if target.stat().st_size == len(data):
                return  # present (same hash and size: the same bytes)
        except FileNotFoundError:
            pass
        write_atomic(target, data, mode=0o444)


def load_manifest(run_dir: Path) -> Manifest | None:
    """The run's manifest, or None when it has none (or it cannot be read)."""
    path = run_dir / MANIFEST
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None


def read_object(digest: str, root: Path | None = None) -> bytes | None:
    """A kept file's bytes, or None if missing or damaged (its hash does not match)."""
    root = root if root is not None else store_root()
    try:
        data = object_path(root, digest).read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        log.warning("code object %s is damaged", digest)
        return None
    return data


__all__ = [
    "MANIFEST",
    "MAX_KEPT_BYTES",
    "STORE_DIR",
    "CodeRecorder",
    "FileEntry",
    "Manifest",
    "load_manifest",
    "object_path",
    "read_object",
    "store_root",
]
