"""Readable unique names for cloned jobs, and a stable colour for each run.

A clone keeps its original's name with a number added ("mnist" -> "mnist-2" -> "mnist-3"), so
two runs side by side can be told apart without reading ids. A run's colour is derived from
its id alone, so the same run has the same colour in every plot, legend and table, in every
session.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from pathlib import Path

from trainer_gui.core.spec.model import JOB_NAME_RE

#: The longest job name SageMaker (and the spec) accepts.
MAX_NAME = 63
_SUFFIX_RE = re.compile(r"^(.*?)-(\d+)$")
_INVALID_RE = re.compile(r"[^A-Za-z0-9-]+")
_SPEC_SUFFIXES = (".yaml", ".yml")

#: Tableau 10: distinct from each other on light and dark backgrounds.
PALETTE: tuple[str, ...] = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def _stem(name: str, used: set[str]) -> str:
    """The name a clone counts on from: "mnist-3" -> "mnist" when "mnist" is taken (a clone of
    it), but "resnet-50" stays "resnet-50" when no "resnet" is (the number is part of the name).
    """
    match = _SUFFIX_RE.match(name)
    if match and match.group(1) and match.group(1).lower() in used:
        return match.group(1)
    return name


def unique_name(name: str, taken: Iterable[str]) -> str:
    """`name` with the lowest free "-N" (N >= 2) that no name in `taken` uses.

    Names are compared without case (spec files on macOS and Windows are not case-sensitive).
    A clone of a clone counts on from the original ("mnist-2" -> "mnist-3" while "mnist" is
    taken), and the result is kept within the 63 characters a job name may have.
    """
    used = {t.strip().lower() for t in taken}
    # What a job name cannot hold becomes a hyphen, so the result is always a valid name.
    stem = _INVALID_RE.sub("-", _stem(name.strip(), used)).strip("-") or "job"
    number = 2
    while True:
        suffix = f"-{number}"
        base = stem[: MAX_NAME - len(suffix)].rstrip("-") or "job"
        candidate = f"{base}{suffix}"
        if candidate.lower() not in used and JOB_NAME_RE.match(candidate):
            return candidate
        number += 1


def spec_names(folder: Path | None) -> list[str]:
    """The names the job specs of a project folder take (their file names, less `.yaml`)."""
    if folder is None:
        return []
    try:
        entries = list(folder.iterdir())
    except OSError:  # a folder that went away: nothing there to clash with
        return []
    return [p.stem for p in entries if p.suffix.lower() in _SPEC_SUFFIXES]


def clone_name(name: str, folder: Path | None, job_names: Iterable[str]) -> str:
    """The name for a clone of the job or spec `name`: unique among the project's jobs and the
    spec files in its folder, so saving the clone never offers to overwrite its original."""
    return unique_name(name, [name, *job_names, *spec_names(folder)])


def run_color(run_id: str) -> str:
    """A run's colour (#rrggbb), the same for the same id everywhere and every time."""
    return PALETTE[zlib.crc32(run_id.encode("utf-8")) % len(PALETTE)]


def run_colors(run_ids: Iterable[str]) -> dict[str, str]:
    """Colours for runs shown together: each its own `run_color`, unless an earlier run in the
    list has it already, then the next colour of the palette not yet taken (while any is left).
    """
    out: dict[str, str] = {}
    for run_id in run_ids:
        if run_id in out:
            continue
        start = PALETTE.index(run_color(run_id))
        taken = set(out.values())
        for step in range(len(PALETTE)):
            color = PALETTE[(start + step) % len(PALETTE)]
            if color not in taken:
                break
        else:
            color = PALETTE[start]
        out[run_id] = color
    return out


__all__ = [
    "MAX_NAME",
    "PALETTE",
    "clone_name",
    "run_color",
    "run_colors",
    "spec_names",
    "unique_name",
]
