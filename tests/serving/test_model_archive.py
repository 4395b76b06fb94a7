"""Finding the model.tar.gz to serve, and unpacking it with the app's one extractor.

The extractor's own rules (hostile members, limits) are tested in tests/core/test_archives.py.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from trainer_gui.core.archives import ArchiveLimits, UnsafeArchive
from trainer_gui.core.serving.archive import find_model_archive
from trainer_gui.core.serving.launcher import EndpointLauncher, resolve_model


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_find_model_archive_in_a_downloaded_output_folder(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"")
    (tmp_path / "output.tar.gz").write_bytes(b"")
    assert find_model_archive(tmp_path) == tmp_path / "model.tar.gz"
    (tmp_path / "model.pth").write_bytes(b"")
    assert find_model_archive(tmp_path) is None


def test_a_served_archive_is_unpacked_into_the_endpoint_folder(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "model.tar.gz", {"model.pt": b"w", "code/inference.py": b""})
    launcher = EndpointLauncher(client=object(), home=tmp_path / "home")
    workdir = tmp_path / "home" / "ep"
    workdir.mkdir(parents=True)
    model_dir, read_only = launcher.prepare_model(resolve_model(archive), workdir)
    assert model_dir == workdir / "model" and not read_only
    assert (model_dir / "model.pt").read_bytes() == b"w"
    assert archive.is_file()  # the user's own archive is left as it was


def test_a_hostile_or_oversized_served_archive_is_refused(tmp_path: Path) -> None:
    launcher = EndpointLauncher(client=object(), home=tmp_path / "home")
    evil = _archive(tmp_path / "evil.tar.gz", {"model.pt": b"w", "../escape.txt": b"x"})
    workdir = tmp_path / "home" / "ep"
    workdir.mkdir(parents=True)
    with pytest.raises(UnsafeArchive, match=r"'\.\.' component"):
        launcher.prepare_model(resolve_model(evil), workdir)
    big = _archive(tmp_path / "big.tar.gz", {"model.pt": b"w" * 100})
    with pytest.raises(UnsafeArchive, match="more than the limit of 10 bytes"):
        launcher.prepare_model(resolve_model(big), workdir, ArchiveLimits(max_member_bytes=10))
    assert list(workdir.iterdir()) == []
    assert not (tmp_path / "home" / "escape.txt").exists()
