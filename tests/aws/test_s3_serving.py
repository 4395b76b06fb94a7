"""Serving a model from S3 goes through the app's AWS session and its one archive extractor.

Against the moto server: the download is signed with the saved profile's key for the saved
region and carries the app's user agent (the session's retry config), a hostile model.tar.gz in
S3 is refused like any other, and a missing object is one clear sentence.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from moto_support import capture_requests, signed_for, user_agent

from trainer_gui.core.archives import UnsafeArchive
from trainer_gui.core.aws.defaults import AwsDefaults, save_aws_defaults
from trainer_gui.core.aws.session import AwsSession
from trainer_gui.core.errors import UserError
from trainer_gui.core.serving.launcher import EndpointLauncher, resolve_model

BUCKET = "models-bucket"
RESEARCH_KEY = "AKIARESEARCHPROFILE1"


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture
def research_profile(aws: Any) -> None:
    """A named profile with keys of its own, saved in the AWS settings with a region."""
    (aws.home / "credentials").write_text(
        f"[research]\naws_access_key_id = {RESEARCH_KEY}\n"
        "aws_secret_access_key = researchSecretKeyForTheTests0000000000000\n"
    )
    save_aws_defaults(AwsDefaults(profile="research", region="eu-west-2"))


def _put(aws: Any, key: str, body: bytes) -> str:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def test_an_s3_model_is_downloaded_with_the_saved_profile_and_region(
    aws: Any, research_profile: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    archive = _tar({"model.pth": b"weights", "code/inference.py": b"def model_fn(d): ...\n"})
    uri = _put(aws, "jobs/run-1/output/model.tar.gz", archive)
    sent = capture_requests(aws, monkeypatch)
    launcher = EndpointLauncher(client=object(), home=tmp_path / "endpoints")
    workdir = tmp_path / "endpoints" / "run-1"
    workdir.mkdir(parents=True)

    model_dir, read_only = launcher.prepare_model(resolve_model(uri), workdir)

    assert (model_dir / "model.pth").read_bytes() == b"weights"
    assert (model_dir / "code" / "inference.py").is_file()
    assert not read_only
    assert sorted(p.name for p in workdir.iterdir()) == ["model"]  # the download is gone
    gets = [r for r in sent if r.method == "GET" and "model.tar.gz" in r.url]
    assert gets, [r.url for r in sent]
    assert signed_for(gets[0]) == (RESEARCH_KEY, "eu-west-2", "s3")
    assert "trainer-gui" in user_agent(gets[0])  # the session's client config, not a bare client


def test_a_session_given_to_the_launcher_is_the_one_used(
    aws: Any, research_profile: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uri = _put(aws, "m/model.tar.gz", _tar({"model.pt": b"w"}))
    sent = capture_requests(aws, monkeypatch)
    launcher = EndpointLauncher(
        client=object(),
        home=tmp_path / "endpoints",
        aws=AwsSession(None, "ap-south-1"),
    )
    workdir = tmp_path / "w"
    workdir.mkdir()
    launcher.prepare_model(resolve_model(uri), workdir)
    key, region, _ = signed_for(next(r for r in sent if r.method == "GET"))
    assert key != RESEARCH_KEY and region == "ap-south-1"


def test_a_hostile_model_in_s3_is_refused_and_nothing_escapes(
    aws: Any, research_profile: None, tmp_path: Path
) -> None:
    uri = _put(aws, "evil/model.tar.gz", _tar({"model.pt": b"w"}, {"link": "../../../etc"}))
    launcher = EndpointLauncher(client=object(), home=tmp_path / "endpoints")
    workdir = tmp_path / "endpoints" / "evil"
    workdir.mkdir(parents=True)
    with pytest.raises(UnsafeArchive, match=r"model\.tar\.gz: member 'link' is a link out of"):
        launcher.prepare_model(resolve_model(uri), workdir)
    assert not (workdir / "model").exists()


def test_a_missing_s3_model_is_one_clear_sentence(
    aws: Any, research_profile: None, tmp_path: Path
) -> None:
    _put(aws, "other/model.tar.gz", b"x")
    launcher = EndpointLauncher(client=object(), home=tmp_path / "endpoints")
    workdir = tmp_path / "w"
    workdir.mkdir()
    with pytest.raises(UserError, match=r"s3://models-bucket/none/model.tar.gz does not exist"):
        launcher.prepare_model(resolve_model(f"s3://{BUCKET}/none/model.tar.gz"), workdir)
    assert list(workdir.iterdir()) == []
