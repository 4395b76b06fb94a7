"""Files the app replaces are seen whole, old or new, and keep their mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trainer_gui.core.atomic import DEFAULT_MODE, write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_default_mode_and_no_temp_file_is_left(tmp_path: Path) -> None:
    target = write_atomic(tmp_path / "settings.json", "{}\n")
    assert target.read_text() == "{}\n"
    assert _mode(target) == DEFAULT_MODE
    assert os.listdir(tmp_path) == ["settings.json"]


def test_a_replaced_file_keeps_its_own_mode_unless_one_is_named(tmp_path: Path) -> None:
    target = tmp_path / "spec.yaml"
    target.write_text("old")
    target.chmod(0o600)
    write_atomic(target, "new")
    assert (target.read_text(), _mode(target)) == ("new", 0o600)
    write_atomic(target, b"bytes", mode=0o444, fsync=True)
    assert (target.read_bytes(), _mode(target)) == (b"bytes", 0o444)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cache.json"
    target.write_text("old")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["cache.json"]


def test_two_writers_of_one_file_never_share_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fixed temp name let two writers (two threads, or two saves of one spec) rename each
    other's half-written file."""
    target = tmp_path / "journal.json"
    names: list[str] = []
    real = os.replace

    def spy(src: str, dst: str) -> None:
        names.append(os.path.basename(src))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_atomic(target, "a")
    write_atomic(target, "b")
    assert len(set(names)) == 2
    assert target.read_text() == "b"
