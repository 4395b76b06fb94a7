"""Credentials never land on disk: not in the store, specs, logs, run folders or exports."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path
from typing import Any

from moto_support import FAKE_CREDENTIALS
from sm_helpers import make_spec, service

from trainer_gui.cli.main import main
from trainer_gui.core.store import DB_FILENAME


def _texts(root: Path) -> list[tuple[Path, bytes]]:
    """Every file under root as bytes, gzip and tar members unpacked too."""
    out: list[tuple[Path, bytes]] = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        out.append((path, data))
        if data[:2] == b"\x1f\x8b":
            raw = gzip.decompress(data)
            out.append((path, raw))
            try:
                with tarfile.open(path) as tar:
                    for member in tar.getmembers():
                        handle = tar.extractfile(member)
                        if handle is not None:
                            out.append((path / member.name, handle.read()))
            except tarfile.TarError:
                pass
    return out


def test_no_credential_value_is_written_anywhere(
    aws: Any, project: Path, app_home: Path, tmp_path: Path, capsys: Any
) -> None:
    svc = service()
    for _ in range(2):  # the second submit checks S3 for unchanged files (the journal)
        handle = svc.submit(
            make_spec(project, image="111122223333.dkr.ecr.us-east-1.amazonaws.com/x:1")
        )
        handle.wait(30)
    job = handle.job_id
    assert svc.get(job).status == "Completed"
    spec_file = project / "job.yaml"
    from trainer_gui.core.spec import save_spec

    save_spec(make_spec(project), spec_file)
    assert main(["sagemaker", "import", job, "-o", str(tmp_path / "imported.yaml")]) == 0
    for fmt in ("v3", "v2", "request"):
        assert main(["sagemaker", "export", str(spec_file), "--format", fmt]) == 0
    assert main(["sagemaker", "jobs"]) == 0
    printed = capsys.readouterr()
    svc.store.close()
    files = _texts(app_home) + _texts(tmp_path)
    assert any(p.name.startswith(DB_FILENAME) for p, _ in files)
    assert any(p.name == "job.log" for p, _ in files)
    assert any(p.name == "create-training-job.json" for p, _ in files)
    assert any(p.name == "transfers.json" for p, _ in files)
    secrets = [v.encode() for v in FAKE_CREDENTIALS.values()]
    leaks = [(str(p), s) for p, data in files for s in secrets if s in data]
    assert leaks == []
    for secret in FAKE_CREDENTIALS.values():
        assert secret not in printed.out + printed.err
    # and the cloud side: nothing in the request or in what was uploaded
    blob = str(aws.requests[job]).encode()
    assert not any(s in blob for s in secrets)
    for data in aws.objects("sagemaker-us-east-1-123456789012").values():
        assert not any(s in data for s in secrets)
