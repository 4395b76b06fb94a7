"""What differs between two runs: spec fields, hyperparameters, environment, image and code.

Spec fields are compared as dotted paths (`compute.instance_count`, `channels[train].source`),
so a change deep in the spec reads as one line. The code comes from each run's code manifest
(core/code_store.py): unchanged files are found by hash alone, and only changed text files are
read back from the store for a unified diff.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_gui.core import code_store
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import JobRecord

#: Text bigger than this is not diffed line by line (the dialog would choke on it).
MAX_DIFF_BYTES = 2 * 1000 * 1000
#: Spec fields shown in their own tabs, not among the spec fields.
OWN_TABS = ("hyperparameters", "environment", "image")


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


MISSING: Any = _Missing()
"""A field one side does not have."""


@dataclass(frozen=True)
class FieldChange:
    key: str
    left: Any
    right: Any


@dataclass(frozen=True)
class FileChange:
    """One file that differs: `kind` is added, removed or changed; `diff` a unified diff of a
    text file, else empty with `note` saying what is known (binary, not kept, mode)."""

    path: str
    kind: str
    diff: str = ""
    note: str = ""


@dataclass
class RunDiff:
    left: str
    right: str
    spec: list[FieldChange] = field(default_factory=list)
    hyperparameters: list[FieldChange] = field(default_factory=list)
    environment: list[FieldChange] = field(default_factory=list)
    image: FieldChange | None = None
    code: list[FileChange] = field(default_factory=list)
    code_note: str = ""
    """Why the code could not be compared (a run staged before code was kept), else empty."""

    @property
    def same(self) -> bool:
        return not (
            self.spec or self.hyperparameters or self.environment or self.image or self.code
        )


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as {dotted path: leaf}; a list of named dicts is keyed by name."""
    out: dict[str, Any] = {}
    if isinstance(data, Mapping):
        if not data and prefix:
            out[prefix] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list):
        if not data and prefix:
            out[prefix] = []
        names = [v.get("name") for v in data if isinstance(v, Mapping)]
        by_name = len(names) == len(data) and all(names) and len(set(names)) == len(names)
        for i, value in enumerate(data):
            label = names[i] if by_name else i
            out.update(flatten(value, f"{prefix}[{label}]"))
    else:
        out[prefix] = data
    return out


def diff_mappings(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[FieldChange]:
    """The keys whose values differ (or that one side lacks), sorted by key."""
    changes = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key, MISSING), right.get(key, MISSING)
        if a is MISSING or b is MISSING or a != b or type(a) is not type(b):
            changes.append(FieldChange(key, a, b))
    return changes


def hyperparameters_of(spec: JobSpec) -> dict[str, Any]:
    try:
        return spec.all_hyperparameters()
    except Exception:  # the file moved or broke since the run: the inline ones still compare
        return dict(spec.hyperparameters)


def image_of(record: JobRecord, spec: JobSpec) -> str:
    """The image the run used (as the runner recorded it), else the one its spec names."""
    image = record.backend_ids.get("image") if record.backend_ids else None
    if isinstance(image, str) and image:
        return image
    return spec.image or "(the project's training image)"


def diff_specs(left: JobSpec, right: JobSpec) -> tuple[list[FieldChange], ...]:
    """(spec fields, hyperparameters, environment) that differ."""
    a = {k: v for k, v in left.model_dump(mode="json").items() if k not in OWN_TABS}
    b = {k: v for k, v in right.model_dump(mode="json").items() if k not in OWN_TABS}
    return (
        diff_mappings(flatten(a), flatten(b)),
        diff_mappings(hyperparameters_of(left), hyperparameters_of(right)),
        diff_mappings(left.environment, right.environment),
    )


def _text(data: bytes) -> str | None:
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _file_diff(
    path: str,
    a: code_store.FileEntry,
    b: code_store.FileEntry,
    names: tuple[str, str],
    read: Callable[[str], bytes | None],
) -> FileChange:
    notes = []
    if a.mode != b.mode:
        notes.append(f"mode {a.mode:o} → {b.mode:o}")
    if a.sha256 == b.sha256 and a.sha256 is not None:
        return FileChange(path, "changed", note="; ".join(notes))
    if a.sha256 is None or b.sha256 is None:
        why = a.note or b.note or "not kept"
        notes.insert(0, f"content not kept ({why}); sizes {a.size:,} → {b.size:,} bytes")
        return FileChange(path, "changed", note="; ".join(notes))
    if max(a.size, b.size) > MAX_DIFF_BYTES:
        notes.insert(0, f"too big to show; sizes {a.size:,} → {b.size:,} bytes")
        return FileChange(path, "changed", note="; ".join(notes))
    old, new = read(a.sha256), read(b.sha256)
    if old is None or new is None:
        notes.insert(0, "content missing from the code store")
        return FileChange(path, "changed", note="; ".join(notes))
    old_text, new_text = _text(old), _text(new)
    if old_text is None or new_text is None:
        size = "sizes differ" if len(old) != len(new) else "same size"
        notes.insert(0, f"binary, {size} ({len(old):,} → {len(new):,} bytes)")
        return FileChange(path, "changed", note="; ".join(notes))
    diff = "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{names[0]}/{path}",
            tofile=f"{names[1]}/{path}",
        )
    )
    return FileChange(path, "changed", diff=diff, note="; ".join(notes))


def _one_side(
    path: str, entry: code_store.FileEntry, kind: str, read: Callable[[str], bytes | None]
) -> FileChange:
    """An added or removed file, shown whole as a diff against nothing when it is text."""
    data = read(entry.sha256) if entry.sha256 and entry.size <= MAX_DIFF_BYTES else None
    text = _text(data) if data is not None else None
    if text is None:
        what = "binary" if data is not None else (entry.note or "content not kept")
        return FileChange(path, kind, note=f"{what}, {entry.size:,} bytes")
    lines = text.splitlines(keepends=True)
    if kind == "added":
        diff = difflib.unified_diff([], lines, fromfile="/dev/null", tofile=path)
    else:
        diff = difflib.unified_diff(lines, [], fromfile=path, tofile="/dev/null")
    return FileChange(path, kind, diff="".join(diff))


def diff_code(
    left: code_store.Manifest,
    right: code_store.Manifest,
    names: tuple[str, str] = ("a", "b"),
    read: Callable[[str], bytes | None] | None = None,
) -> list[FileChange]:
    """Files added, removed or changed from `left` to `right`, sorted by path."""
    reader = read or code_store.read_object
    changes = []
    for path in sorted(set(left.files) | set(right.files)):
        a, b = left.files.get(path), right.files.get(path)
        if a is None and b is not None:
            changes.append(_one_side(path, b, "added", reader))
        elif b is None and a is not None:
            changes.append(_one_side(path, a, "removed", reader))
        elif a is not None and b is not None:
            if a.sha256 == b.sha256 and a.mode == b.mode and a.sha256 is not None:
                continue
            if a == b:  # neither kept, same size and note: nothing to tell apart
                continue
            changes.append(_file_diff(path, a, b, names, reader))
    return changes


def diff_runs(
    left: JobRecord,
    right: JobRecord,
    spec_of: Callable[[JobRecord], JobSpec],
) -> RunDiff:
    """Everything that differs from `left` to `right` (specs read through `spec_of`)."""
    left_spec, right_spec = spec_of(left), spec_of(right)
    spec, hyper, env = diff_specs(left_spec, right_spec)
    result = RunDiff(left.id, right.id, spec, hyper, env)
    images = image_of(left, left_spec), image_of(right, right_spec)
    if images[0] != images[1]:
        result.image = FieldChange("image", *images)
    manifests = (
        code_store.load_manifest(Path(left.run_dir)),
        code_store.load_manifest(Path(right.run_dir)),
    )
    if manifests[0] is None or manifests[1] is None:
        missing = [r.name or r.id for r, m in zip((left, right), manifests, strict=True) if not m]
        result.code_note = (
            f"The code of {' and '.join(missing)} was not kept (run before code was kept, "
            "or its code came from S3), so the code cannot be compared."
        )
    else:
        result.code = diff_code(manifests[0], manifests[1], (left.id, right.id))
    return result


def format_value(value: Any) -> str:
    """A field's value as the diff shows it."""
    if value is MISSING:
        return "(not set)"
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)


__all__ = [
    "MISSING",
    "FieldChange",
    "FileChange",
    "RunDiff",
    "diff_code",
    "diff_mappings",
    "diff_runs",
    "diff_specs",
    "flatten",
    "format_value",
    "hyperparameters_of",
    "image_of",
]
