"""S3 transfers for jobs: packing the code, uploading channels, downloading artifacts.

* Uploads skip files already in S3 unchanged: same size and the same MD5 (the object's ETag for
  single-part uploads, the multipart ETag recomputed locally for multipart ones, or the `md5`
  metadata every upload of ours carries, which survives SSE-KMS).
* Files from `multipart_threshold` up go in parts. Each part sent is recorded in a journal in
  the app's data folder, so an upload cut off by a network loss resumes where it stopped, in the
  same submit (a few retries with backoff) or the next one, instead of starting over.
* Progress is reported through a callback (bytes done of bytes total), at most every 0.1 s.
* Local channel data is content-addressed (`channel_manifest`, `Uploader.upload_channel`): it
  goes under `<base>/data/<digest>/`, the digest a SHA-256 over the channel's file names, sizes
  and SHA-256s. A submission whose data changed gets a new prefix; the old one is never touched,
  so a job that was created, queued or is still downloading reads exactly the data it was
  submitted with, and the same data (another submit, another project) is uploaded once.
* Downloaded archives are unpacked by `trainer_gui.core.archives`, the app's one extractor.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import math
import os
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_gui.core.atomic import write_atomic
from trainer_gui.core.aws.errors import (
    AwsUploadInterrupted,
    aws_errors,
    is_network_error,
    translate,
)
from trainer_gui.core.errors import UserError

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3's smallest part (all but the last)
MAX_PARTS = 10_000
DEFAULT_PART = 16 * MiB
DEFAULT_THRESHOLD = 16 * MiB
PROGRESS_INTERVAL = 0.1


# -- URIs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise UserError(f"{uri!r} is not an s3:// URI")
        bucket, _, key = uri[5:].partition("/")
        if not bucket:
            raise UserError(f"{uri!r} has no bucket name")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Uri(self.bucket, key)

    def as_prefix(self) -> str:
        """The key as a folder prefix (ends with '/', or empty for the bucket root)."""
        return self.key.rstrip("/") + "/" if self.key.strip("/") else ""


# -- progress --------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where a transfer stands. `skipped_bytes` were already in S3 and not sent again."""

    direction: str  # "upload" | "download"
    done_bytes: int = 0
    total_bytes: int = 0
    skipped_bytes: int = 0
    files_done: int = 0
    files_total: int = 0
    current: str = ""

    @property
    def fraction(self) -> float:
        return 1.0 if self.total_bytes <= 0 else min(1.0, self.done_bytes / self.total_bytes)


ProgressFn = Callable[[Progress], None]


class _Reporter:
    """Rate-limits progress callbacks; the last one (done) always goes out."""

    def __init__(self, progress: Progress, callback: ProgressFn | None) -> None:
        self.progress = progress
        self.callback = callback
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, nbytes: int, current: str | None = None, force: bool = False) -> None:
        with self._lock:
            self.progress.done_bytes += nbytes
            if current is not None:
                self.progress.current = current
            now = time.monotonic()
            if self.callback is None or (not force and now - self._last < PROGRESS_INTERVAL):
                return
            self._last = now
            snapshot = Progress(**self.progress.__dict__)
        self.callback(snapshot)

    def file_done(self) -> None:
        with self._lock:
            self.progress.files_done += 1
        self.add(0, force=self.progress.files_done >= self.progress.files_total)


# -- hashing and the journal ---------------------------------------------------------------------


def md5_file(path: Path, part_size: int | None = None) -> tuple[str, list[str]]:
    """(hex MD5 of the file, hex MD5 of each part when `part_size` is given)."""
    md5, parts, _ = _hash_file(path, part_size)
    return md5, parts


def _hash_file(path: Path, part_size: int | None = None) -> tuple[str, list[str], str]:
    """(MD5, MD5 of each part, SHA-256) in one read of the file."""
    whole = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    parts: list[str] = []
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(part_size or 8 * MiB)
            if not chunk:
                break
            whole.update(chunk)
            sha.update(chunk)
            if part_size:
                parts.append(hashlib.md5(chunk, usedforsecurity=False).hexdigest())
    return whole.hexdigest(), parts, sha.hexdigest()


def multipart_etag(part_md5s: list[str]) -> str:
    digest = hashlib.md5(
        b"".join(bytes.fromhex(p) for p in part_md5s), usedforsecurity=False
    ).hexdigest()
    return f"{digest}-{len(part_md5s)}"


def part_size_for(size: int, wanted: int) -> int:
    return max(wanted, MIN_PART, math.ceil(size / MAX_PARTS))


class Journal:
    """JSON state in the data folder: MD5s of local files, multipart uploads under way.

    Holds paths, sizes, hashes, upload ids and part ETags: never credentials.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # a damaged journal: uploads start over, not fail
            log.warning("ignoring the upload journal %s: %s", self.path, exc)
            return {}

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(data, sort_keys=True))

    def get(self, section: str, key: str) -> Any:
        with self._lock:
            return self._load().get(section, {}).get(key)

    def put(self, section: str, key: str, value: Any) -> None:
        with self._lock:
            data = self._load()
            if value is None:
                data.get(section, {}).pop(key, None)
            else:
                data.setdefault(section, {})[key] = value
            self._save(data)


def default_journal() -> Journal:
    from trainer_gui.core.paths import data_home

    return Journal(data_home() / "aws" / "transfers.json")


@dataclass
class FileHashes:
    md5: str
    part_size: int
    parts: list[str]
    sha256: str = ""

    @property
    def multipart_etag(self) -> str:
        return multipart_etag(self.parts)


def file_hashes(path: Path, part_size: int, journal: Journal) -> FileHashes:
    """MD5s and SHA-256 of a file, remembered per (path, size, mtime, part size) so big files
    are read once."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{part_size}"
    cached = journal.get("hashes", key)
    if isinstance(cached, dict) and "md5" in cached and cached.get("sha256"):
        return FileHashes(
            cached["md5"], part_size, list(cached.get("parts", [])), str(cached["sha256"])
        )
    md5, parts, sha256 = _hash_file(path, part_size)
    journal.put("hashes", key, {"md5": md5, "parts": parts, "sha256": sha256})
    return FileHashes(md5, part_size, parts, sha256)


# -- content-addressed channel data ----------------------------------------------------------------

#: Channel data lives under `<base>/<CHANNEL_DATA_DIR>/<digest>/`.
CHANNEL_DATA_DIR = "data"
_MANIFEST_VERSION = b"trainer-gui channel v1\n"


@dataclass(frozen=True)
class ChannelFile:
    path: Path
    name: str  # the file's name under the channel prefix (posix, relative)
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class ChannelManifest:
    """A local channel's files with their hashes, and the digest that names its S3 prefix."""

    source: Path
    files: tuple[ChannelFile, ...]
    digest: str

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def channel_manifest(
    source: Path, journal: Journal | None = None, part_size: int = DEFAULT_PART
) -> ChannelManifest:
    """Hash a channel's folder (or single file). Hashes are cached per path, size and mtime in
    the journal, so unchanged data is not read again on the next submit."""
    journal = journal or default_journal()
    if not source.exists():
        raise UserError(f"channel data {source} does not exist")
    if source.is_file():
        pairs = [(source, source.name)]
    else:
        pairs = [(path, path.relative_to(source).as_posix()) for path in _walk(source)]
    files: list[ChannelFile] = []
    for path, name in sorted(pairs, key=lambda p: p[1]):
        stat = path.stat()
        hashes = file_hashes(path, part_size_for(stat.st_size, part_size), journal)
        files.append(ChannelFile(path, name, stat.st_size, stat.st_mtime_ns, hashes.sha256))
    digest = hashlib.sha256(_MANIFEST_VERSION)
    for f in files:
        digest.update(f"{f.name}\0{f.size}\0{f.sha256}\n".encode())
    return ChannelManifest(source, tuple(files), digest.hexdigest())


def channel_uri(base: S3Uri, digest: str) -> str:
    """The S3Prefix URI (with its trailing '/') of a channel with this content digest."""
    return str(base.join(CHANNEL_DATA_DIR, digest)) + "/"


# -- upload ----------------------------------------------------------------------------------------


@dataclass
class UploadSummary:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_sent: int = 0


@dataclass(frozen=True)
class _Remote:
    size: int
    etag: str


class Uploader:
    """Uploads files and folders to S3 with skip-unchanged, multipart resume and progress."""

    def __init__(
        self,
        s3: Any,
        journal: Journal | None = None,
        part_size: int = DEFAULT_PART,
        multipart_threshold: int = DEFAULT_THRESHOLD,
        retry_delays: tuple[float, ...] = (1.0, 4.0, 10.0),
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.s3 = s3
        self.journal = journal or default_journal()
        self.part_size = max(part_size, MIN_PART)
        self.threshold = max(multipart_threshold, self.part_size)
        self.retry_delays = retry_delays
        self.cancelled = cancelled or (lambda: False)

    # -- listing ---------------------------------------------------------------------------

    def _list(self, bucket: str, prefix: str) -> dict[str, _Remote]:
        out: dict[str, _Remote] = {}
        with aws_errors(f"listing s3://{bucket}/{prefix}", bucket):
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []) or []:
                    out[obj["Key"]] = _Remote(int(obj["Size"]), str(obj["ETag"]).strip('"'))
        return out

    def _unchanged(self, bucket: str, key: str, path: Path, remote: _Remote | None) -> bool:
        size = path.stat().st_size
        if remote is None or remote.size != size:
            return False
        part_size = part_size_for(size, self.part_size)
        hashes = file_hashes(path, part_size, self.journal)
        if remote.etag == hashes.md5:
            return True
        if "-" in remote.etag and remote.etag == hashes.multipart_etag:
            return True
        from botocore.exceptions import ClientError

        try:  # SSE-KMS ETags are not MD5s; our uploads carry the MD5 as metadata
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:  # cannot tell: upload it again
            log.debug("cannot read s3://%s/%s's metadata: %s", bucket, key, exc)
            return False
        return str(head.get("Metadata", {}).get("md5", "")) == hashes.md5

    # -- public ----------------------------------------------------------------------------

    def upload_file(
        self,
        path: Path,
        uri: S3Uri,
        progress: ProgressFn | None = None,
        skip_unchanged: bool = True,
    ) -> bool:
        """Upload one file to exactly `uri`; returns False when it was skipped as unchanged."""
        summary = self._upload_many([(path, uri.key)], uri.bucket, None, progress, skip_unchanged)
        return bool(summary.uploaded)

    def upload_tree(
        self,
        source: Path,
        uri: S3Uri,
        progress: ProgressFn | None = None,
        delete_stale: bool = True,
        ignore: Callable[[Path], bool] | None = None,
    ) -> UploadSummary:
        """Mirror a folder (or one file) under the prefix `uri`; returns what was done.

        With `delete_stale`, objects under the prefix that are not in the folder are removed,
        so the channel the job sees is exactly the folder.
        """
        prefix = uri.as_prefix()
        files: list[tuple[Path, str]] = []
        if source.is_file():
            files.append((source, prefix + source.name))
        else:
            for path in sorted(_walk(source)):
                if ignore is not None and ignore(path):
                    continue
                files.append((path, prefix + path.relative_to(source).as_posix()))
        return self._upload_many(files, uri.bucket, prefix, progress, True, delete_stale)

    def upload_channel(
        self, manifest: ChannelManifest, uri: S3Uri, progress: ProgressFn | None = None
    ) -> UploadSummary:
        """Upload a channel to its content-addressed prefix `uri` (see `channel_uri`).

        Objects already there unchanged are skipped (a resubmit, or the same data of another
        job); nothing under the prefix is ever deleted, since other jobs may read it. A file that
        changed since it was hashed stops the upload: its bytes would not match the prefix's
        name.
        """
        prefix = uri.as_prefix()
        expected = {f.path: f for f in manifest.files}

        def check(path: Path) -> None:
            entry = expected[path]
            try:
                stat = path.stat()
            except OSError as exc:
                raise UserError(f"channel data {path} went away during the upload: {exc}") from exc
            if (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                raise UserError(
                    f"channel data {path} changed during the upload; submit the job again "
                    "once it no longer changes"
                )

        files = [(f.path, prefix + f.name) for f in manifest.files]
        return self._upload_many(files, uri.bucket, prefix, progress, True, False, check)

    # -- work ------------------------------------------------------------------------------

    def _upload_many(
        self,
        files: list[tuple[Path, str]],
        bucket: str,
        prefix: str | None,
        progress: ProgressFn | None,
        skip_unchanged: bool,
        delete_stale: bool = False,
        check: Callable[[Path], None] | None = None,
    ) -> UploadSummary:
        summary = UploadSummary()
        if prefix is not None:
            remote = self._list(bucket, prefix)
        elif skip_unchanged:
            remote = {}
            for _, key in files:
                remote.update(self._list(bucket, key))
            remote = {k: v for k, v in remote.items() if k in {key for _, key in files}}
        else:
            remote = {}
        total = sum(path.stat().st_size for path, _ in files)
        report = _Reporter(Progress("upload", total_bytes=total, files_total=len(files)), progress)
        for path, key in files:
            if self.cancelled():
                raise UserError("the upload was stopped")
            if check is not None:
                check(path)
            size = path.stat().st_size
            if skip_unchanged and self._unchanged(bucket, key, path, remote.get(key)):
                summary.skipped.append(key)
                report.progress.skipped_bytes += size
                report.add(size, current=key)
                report.file_done()
                continue
            if size >= self.threshold:
                self._multipart(path, bucket, key, report)
            else:
                self._put(path, bucket, key, report)
            if check is not None:
                check(path)
            summary.uploaded.append(key)
            summary.bytes_sent += size
            report.file_done()
        if delete_stale and prefix is not None:
            keep = {key for _, key in files}
            stale = sorted(k for k in remote if k not in keep)
            for start in range(0, len(stale), 1000):
                chunk = stale[start : start + 1000]
                with aws_errors(f"removing old files under s3://{bucket}/{prefix}", bucket):
                    self.s3.delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk]}
                    )
            summary.deleted = stale
        if not files:
            report.add(0, force=True)
        return summary

    def _retrying(self, what: str, call: Callable[[], Any], where: str) -> Any:
        """Retry network failures a few times (botocore retried each already), then give up."""
        delays = list(self.retry_delays)
        while True:
            try:
                return call()
            except Exception as exc:
                if not is_network_error(exc):
                    raise translate(exc, what, where.split("/")[2]) from exc
                if not delays or self.cancelled():
                    raise AwsUploadInterrupted(
                        f"{what}: the network connection was lost ({exc}); what was sent is "
                        "kept: submit the job again to resume the upload"
                    ) from exc
                time.sleep(delays.pop(0))

    def _put(self, path: Path, bucket: str, key: str, report: _Reporter) -> None:
        data = path.read_bytes()
        md5 = hashlib.md5(data, usedforsecurity=False)
        where = f"s3://{bucket}/{key}"

        def call() -> Any:
            return self.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentMD5=base64.b64encode(md5.digest()).decode(),
                Metadata={"md5": md5.hexdigest()},
            )

        self._retrying(f"uploading {path.name} to {where}", call, where)
        report.add(len(data), current=key)

    def _multipart(self, path: Path, bucket: str, key: str, report: _Reporter) -> None:
        from botocore.exceptions import ClientError

        where = f"s3://{bucket}/{key}"
        stat = path.stat()
        part_size = part_size_for(stat.st_size, self.part_size)
        hashes = file_hashes(path, part_size, self.journal)
        journal_key = f"{bucket}/{key}"
        state = self.journal.get("uploads", journal_key)
        done: dict[int, str] = {}
        upload_id: str | None = None
        if (
            isinstance(state, dict)
            and state.get("md5") == hashes.md5
            and state.get("part_size") == part_size
            and state.get("size") == stat.st_size
        ):
            upload_id = str(state["upload_id"])
            try:  # the server's word on which parts arrived
                paginator = self.s3.get_paginator("list_parts")
                for page in paginator.paginate(Bucket=bucket, Key=key, UploadId=upload_id):
                    for part in page.get("Parts", []) or []:
                        done[int(part["PartNumber"])] = str(part["ETag"]).strip('"')
            except ClientError:
                upload_id, done = None, {}
        if upload_id is None:
            created = self._retrying(
                f"starting the upload of {path.name}",
                lambda: self.s3.create_multipart_upload(
                    Bucket=bucket, Key=key, Metadata={"md5": hashes.md5}
                ),
                where,
            )
            upload_id = str(created["UploadId"])
            self.journal.put(
                "uploads",
                journal_key,
                {
                    "upload_id": upload_id,
                    "md5": hashes.md5,
                    "part_size": part_size,
                    "size": stat.st_size,
                    "path": str(path.resolve()),
                },
            )
        nparts = len(hashes.parts)
        etags: dict[int, str] = {}
        with open(path, "rb") as fh:
            for number in range(1, nparts + 1):
                if self.cancelled():
                    raise UserError("the upload was stopped")
                expected = hashes.parts[number - 1]
                length = min(part_size, stat.st_size - (number - 1) * part_size)
                if done.get(number) == expected:  # arrived before the interruption
                    etags[number] = expected
                    report.add(length, current=key)
                    continue
                fh.seek((number - 1) * part_size)
                chunk = fh.read(length)
                digest = base64.b64encode(bytes.fromhex(expected)).decode()

                def send(chunk: bytes = chunk, number: int = number, digest: str = digest) -> Any:
                    return self.s3.upload_part(
                        Bucket=bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ContentMD5=digest,
                    )

                out = self._retrying(
                    f"uploading {path.name} (part {number} of {nparts}) to {where}", send, where
                )
                etags[number] = str(out["ETag"]).strip('"')
                report.add(length, current=key)
        self._retrying(
            f"finishing the upload of {path.name}",
            lambda: self.s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": f'"{etags[n]}"'} for n in sorted(etags)]
                },
            ),
            where,
        )
        self.journal.put("uploads", journal_key, None)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


# -- download --------------------------------------------------------------------------------------


def download(s3: Any, uri: S3Uri, dest: Path, progress: ProgressFn | None = None) -> Path | None:
    """Download one object to `dest` (via a .partial file); None when there is no object."""
    from botocore.exceptions import ClientError

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        obj = s3.get_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise translate(exc, f"downloading {uri}", uri.bucket) from exc
    except Exception as exc:
        raise translate(exc, f"downloading {uri}", uri.bucket) from exc
    total = int(obj.get("ContentLength") or 0)
    report = _Reporter(Progress("download", total_bytes=total, files_total=1), progress)
    # A name of its own: a follower the app let go of may still be finishing the same download
    # when the one that took the job over starts it (seen under load: one renamed the shared
    # .partial away under the other).
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".partial")
    tmp = Path(name)
    body = obj["Body"]
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in iter(lambda: body.read(MiB), b""):
                fh.write(chunk)
                report.add(len(chunk), current=str(uri))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise translate(exc, f"downloading {uri}", uri.bucket) from exc
    tmp.chmod(0o644)  # mkstemp's 0600 is no artifact's mode
    tmp.replace(dest)
    report.file_done()
    return dest


# -- archives --------------------------------------------------------------------------------------


def pack_tree(entries: Iterable[tuple[Path, str]], target: Path) -> Path:
    """A reproducible tar.gz of `(file, name in archive)` pairs: same files, same bytes.

    Names sorted, owners and gzip timestamp zeroed, so an unchanged source folder gives an
    archive with the same MD5 (and a re-submit can skip its upload).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    items = sorted(entries, key=lambda e: e[1])
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path, name in items:
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            elif info.issym() or info.isdir():
                tar.addfile(info)
    tmp.replace(target)
    return target


__all__ = [
    "CHANNEL_DATA_DIR",
    "ChannelFile",
    "ChannelManifest",
    "Journal",
    "Progress",
    "ProgressFn",
    "S3Uri",
    "UploadSummary",
    "Uploader",
    "channel_manifest",
    "channel_uri",
    "default_journal",
    "download",
    "pack_tree",
]
