"""TensorBoard scalars read straight from the event files a script writes: no regexes, no
tensorflow or tensorboard package.

An event file is a sequence of TFRecords (little-endian uint64 length, masked CRC-32C of those
8 bytes, the data, masked CRC-32C of the data); each record is an `Event` protobuf. Scalars are
`summary.value[].simple_value` (PyTorch's SummaryWriter, TF1) or a 0-d float tensor
(`tensor.float_val`/`double_val`/`half_val`/`tensor_content`, TF2's `tf.summary.scalar`, whose
`scalars` plugin metadata only comes with a tag's first value).

Files are read incrementally from a byte offset: a record not yet completely written ends the
read ("wait for more"), so the offset always sits on a record boundary; the caller stores it
with the samples in one transaction (key `(host, "tb:<file relative to the log dir>")`), which
makes a follower that takes over resume exactly once.

Naming: a scalar tagged `loss` becomes the metric `tb/loss`; one in a sub-folder of the log dir
(`train/`, `val/`: TensorBoard's runs) becomes `tb/train/loss`. The prefix keeps TensorBoard
series apart from the same name parsed out of the log by a regex.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_gui.core.metrics.types import MetricSample

log = logging.getLogger(__name__)

#: Metric names of TensorBoard scalars start with this.
PREFIX = "tb/"
#: The offsets' stream of an event file starts with this, then the file's relative path.
STREAM_PREFIX = "tb:"
#: SageMaker's convention: the folder (under /opt/ml) scripts write TensorBoard files into.
LOCAL_DIR = "output/tensorboard"
#: Where SageMaker itself looks (TensorBoardOutputConfig.LocalPath).
CONTAINER_DIR = "/opt/ml/output/tensorboard"
#: Event files of TensorFlow, PyTorch and tensorboardX are named so.
FILE_MARKER = "tfevents"
#: Never hold more than this of one file in memory per read; the rest comes next time.
READ_CHUNK = 8 * 1024 * 1024
#: At most this many damaged bytes are searched for the next record header per read.
MAX_RESYNC = 64 * 1024
#: Records up to this size are always CRC-checked; bigger ones only when they hold a scalar.
ALWAYS_CHECKED = 4096
#: A record longer than this is no scalar event (and no sane length): skip it unread.
MAX_RECORD = 64 * 1024 * 1024

_HEADER = 12  # uint64 length + uint32 masked crc
_FOOTER = 4  # uint32 masked crc


# -- CRC-32C (Castagnoli), as TFRecord uses it ---------------------------------------------


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord stores the CRC rotated and offset, so CRCs of CRCs stay strong."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """`data` as one TFRecord (for writers and tests)."""
    length = struct.pack("<Q", len(data))
    return (
        length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
    )


@dataclass
class Records:
    """What one read of a byte range found."""

    records: list[bytes] = field(default_factory=list)
    #: Bytes of the range accounted for (whole records and skipped damage): the next offset.
    used: int = 0
    #: One line per damaged spot that was skipped.
    problems: list[str] = field(default_factory=list)


def read_records(
    data: bytes, base: int = 0, worth_checking: Callable[[bytes], bool] | None = None
) -> Records:
    """The complete records in `data` (which starts on a record boundary at file offset
    `base`). A record cut short at the end is left for the next read. A record whose data CRC
    is wrong is skipped and reported; a header whose length CRC is wrong cannot be trusted for
    its length, so the reader looks for the next valid header byte by byte.

    CRC-32C in Python runs at a few MB/s: `worth_checking(payload)` False (an image or a
    histogram, no scalar in it) drops a record unchecked, so big event files cost little."""
    out = Records()
    pos = 0
    resync_from: int | None = None
    while len(data) - pos >= _HEADER:
        (length,) = struct.unpack_from("<Q", data, pos)
        (length_crc,) = struct.unpack_from("<I", data, pos + 8)
        if masked_crc(data[pos : pos + 8]) != length_crc or length > MAX_RECORD:
            if resync_from is None:
                resync_from = pos
            elif pos - resync_from >= MAX_RESYNC:
                break  # a long damaged stretch: go on from here next time
            pos += 1
            continue
        if resync_from is not None:
            out.problems.append(
                f"damaged record header at byte {base + resync_from}; skipped "
                f"{pos - resync_from} bytes to the next record"
            )
            resync_from = None
            out.used = pos
        end = pos + _HEADER + length + _FOOTER
        if end > len(data):
            break  # not completely written yet
        payload = data[pos + _HEADER : pos + _HEADER + length]
        (data_crc,) = struct.unpack_from("<I", data, pos + _HEADER + length)
        if worth_checking is not None and not worth_checking(payload):
            pass  # nothing of it would be used
        elif masked_crc(payload) != data_crc:
            out.problems.append(f"record at byte {base + pos} failed its CRC check; skipped")
        else:
            out.records.append(payload)
        pos = end
        out.used = pos
    # Damage running into the end of what is there: keep looking there next time (the header
    # after it may still be on its way), but never re-read more than a header's worth.
    if resync_from is not None:
        keep = pos if pos - resync_from >= MAX_RESYNC else len(data) - _HEADER + 1
        keep = max(resync_from, keep)
        if keep > resync_from:
            out.problems.append(
                f"damaged record header at byte {base + resync_from}; skipped "
                f"{keep - resync_from} bytes"
            )
        out.used = keep
    return out


# -- the protobuf wire format, as much as Event needs -------------------------------------------


class DecodeError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("varint runs past the end")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


Field = tuple[int, int, "int | bytes"]  # number, wire type, value (ints for 0/1/5, bytes for 2)


def fields(data: bytes) -> Iterator[Field]:
    """(field number, wire type, value) of each field; fixed32/64 come as their raw int."""
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise DecodeError("fixed64 runs past the end")
            (value,) = struct.unpack_from("<Q", data, pos)
            pos += 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise DecodeError("length-delimited field runs past the end")
            value = data[pos : pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > end:
                raise DecodeError("fixed32 runs past the end")
            (value,) = struct.unpack_from("<I", data, pos)
            pos += 4
        else:
            raise DecodeError(f"wire type {wire} is not supported")
        yield number, wire, value


def _f32(raw: int) -> float:
    return float(struct.unpack("<f", struct.pack("<I", raw))[0])


def _f64(raw: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", raw))[0])


def _signed64(raw: int) -> int:
    return raw - (1 << 64) if raw >= 1 << 63 else raw


# TensorProto dtypes that hold a float scalar.
_DT_FLOAT, _DT_DOUBLE, _DT_HALF, _DT_BFLOAT16 = 1, 2, 19, 14


def _tensor_scalar(data: bytes) -> float | None:
    """The value of a 0-d (or one-element) float tensor; None for anything else."""
    dtype = 0
    dims = 0
    values: list[float] = []
    content = b""
    for number, wire, value in fields(data):
        if number == 1 and wire == 0:
            dtype = int(value)
        elif number == 2 and isinstance(value, bytes):
            dims = sum(1 for n, _, v in fields(value) if n == 2 and isinstance(v, bytes))
        elif number == 4 and isinstance(value, bytes):
            content = value
        elif number == 5:  # float_val (packed or not)
            if isinstance(value, bytes):
                values += [float(v) for v in struct.unpack(f"<{len(value) // 4}f", value)]
            else:
                values.append(_f32(int(value)))
        elif number == 6:  # double_val
            if isinstance(value, bytes):
                values += [float(v) for v in struct.unpack(f"<{len(value) // 8}d", value)]
            else:
                values.append(_f64(int(value)))
        elif number == 13:  # half_val: each half's bits in an int32 varint
            raws: list[int] = []
            if isinstance(value, bytes):
                pos = 0
                while pos < len(value):
                    item, pos = _varint(value, pos)
                    raws.append(item)
            else:
                raws.append(int(value))
            values += [float(struct.unpack("<e", struct.pack("<H", r & 0xFFFF))[0]) for r in raws]
    if dims > 1:
        return None
    if content:
        fmt = {_DT_FLOAT: "f", _DT_DOUBLE: "d", _DT_HALF: "e"}.get(dtype)
        if fmt is None:
            return None
        size = struct.calcsize(fmt)
        if len(content) != size:
            return None
        return float(struct.unpack(f"<{fmt}", content)[0])
    if dtype not in (_DT_FLOAT, _DT_DOUBLE, _DT_HALF) or len(values) != 1:
        return None
    return values[0]


def _plugin_name(metadata: bytes) -> str:
    for number, _, value in fields(metadata):
        if number == 1 and isinstance(value, bytes):  # plugin_data
            for n, _, v in fields(value):
                if n == 1 and isinstance(v, bytes):
                    return v.decode("utf-8", "replace")
    return ""


@dataclass(frozen=True)
class Scalar:
    tag: str
    value: float
    step: int
    wall_time: float


def decode_event(data: bytes, plugins: dict[str, str] | None = None) -> list[Scalar]:
    """The scalars one serialized `Event` holds. `plugins` remembers each tag's plugin across
    events (TF2 sends it with a tag's first value only): a tensor of a tag known to belong to
    another plugin (text, histograms) is not a scalar."""
    plugins = {} if plugins is None else plugins
    wall_time = 0.0
    step = 0
    summary: bytes | None = None
    for number, wire, value in fields(data):
        if number == 1 and wire == 1:
            wall_time = _f64(int(value))
        elif number == 2 and wire == 0:
            step = _signed64(int(value))
        elif number == 5 and isinstance(value, bytes):
            summary = value
    if summary is None:
        return []
    found = []
    for number, _, value in fields(summary):
        if number != 1 or not isinstance(value, bytes):
            continue
        tag = ""
        simple: float | None = None
        tensor: bytes | None = None
        metadata: bytes | None = None
        for n, wire, v in fields(value):
            if n == 1 and isinstance(v, bytes):
                tag = v.decode("utf-8", "replace")
            elif n == 2 and wire == 5:
                simple = _f32(int(v))
            elif n == 8 and isinstance(v, bytes):
                tensor = v
            elif n == 9 and isinstance(v, bytes):
                metadata = v
        if not tag:
            continue
        if metadata is not None:
            name = _plugin_name(metadata)
            if name:
                plugins[tag] = name
        if simple is None and tensor is not None and plugins.get(tag, "scalars") == "scalars":
            simple = _tensor_scalar(tensor)
        if simple is not None:
            found.append(Scalar(tag, simple, step, wall_time))
    return found


# -- following the files of a log dir ---------------------------------------------------------


def metric_name(relative: str, tag: str) -> str:
    """`tb/<tag>`, or `tb/<run folder>/<tag>` for a file in a sub-folder of the log dir."""
    folder = relative.rpartition("/")[0]
    return f"{PREFIX}{folder}/{tag}" if folder else f"{PREFIX}{tag}"


def stream_key(relative: str) -> str:
    return f"{STREAM_PREFIX}{relative}"


@dataclass
class Batch:
    """One read of one file: its samples, where the file now stands, what was damaged."""

    relative: str
    samples: list[MetricSample]
    offset: int
    problems: list[str]


class EventSource:
    """Where event files are: a folder here, or an S3 prefix (see `core.aws`)."""

    def sizes(self) -> dict[str, int]:
        """Each event file's path relative to the log dir ('/' separated) and its size."""
        raise NotImplementedError

    def read(self, relative: str, offset: int, size: int) -> bytes:
        raise NotImplementedError


class FolderSource(EventSource):
    def __init__(self, root: Path) -> None:
        self.root = root

    def sizes(self) -> dict[str, int]:
        if not self.root.is_dir():
            return {}
        found = {}
        for path in self.root.rglob(f"*{FILE_MARKER}*"):
            try:
                if path.is_file():
                    found[path.relative_to(self.root).as_posix()] = path.stat().st_size
            except OSError:
                continue  # removed meanwhile
        return found

    def read(self, relative: str, offset: int, size: int) -> bytes:
        with open(self.root / relative, "rb") as fh:
            fh.seek(offset)
            return fh.read(size)


class S3Source(EventSource):
    """Event files SageMaker uploads from /opt/ml/output/tensorboard (TensorBoardOutputConfig)
    while the job runs, read by byte ranges: each upload replaces an object with a longer one.

    Files are named relative to the prefix, less any folders up to a `tensorboard-output`
    folder, should SageMaker put the host's files below one. SageMaker writes them to
    `<S3OutputPath>/<job name>/tensorboard-output/`, and a path may be shared by jobs (SDK V3
    gives every job of a trainer the same one): with `job` set, another job's folder is skipped."""

    def __init__(self, client: Any, uri: str, job: str | None = None) -> None:
        if not uri.startswith("s3://"):
            raise ValueError(f"{uri!r} is not an s3:// URI")
        self.client = client
        self.job = job
        self.bucket, _, key = uri[5:].partition("/")
        self.prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        self._keys: dict[str, str] = {}

    def sizes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents") or []:
                key = str(item["Key"])
                if FILE_MARKER not in key.rpartition("/")[2]:
                    continue
                relative = key[len(self.prefix) :]
                marker = relative.rfind("tensorboard-output/")
                if marker >= 0:
                    owner = relative[:marker].rstrip("/").rpartition("/")[2]
                    if self.job and owner and owner != self.job:
                        continue  # another job's files under a shared path
                    relative = relative[marker + len("tensorboard-output/") :]
                self._keys[relative] = key
                found[relative] = int(item.get("Size") or 0)
        return found

    def read(self, relative: str, offset: int, size: int) -> bytes:
        key = self._keys.get(relative, self.prefix + relative)
        reply = self.client.get_object(
            Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + size - 1}"
        )
        return bytes(reply["Body"].read())


class EventFollower:
    """Reads the new scalars of every event file of one host's log dir, from stored offsets.

    `offsets` maps the offsets' stream (`tb:<relative>`) to a byte offset, as the store
    returns them for this host; `poll` returns one `Batch` per file that moved."""

    def __init__(self, source: EventSource, host: str, offsets: dict[str, str] | None = None):
        self.source = source
        self.host = host
        self.offsets: dict[str, int] = {}
        for stream, value in (offsets or {}).items():
            if stream.startswith(STREAM_PREFIX):
                try:
                    self.offsets[stream[len(STREAM_PREFIX) :]] = int(value)
                except ValueError:
                    log.warning("ignoring the stored offset %r of %s", value, stream)
        self._plugins: dict[str, dict[str, str]] = {}

    def poll(self) -> list[Batch]:
        batches = []
        for relative, size in sorted(self.source.sizes().items()):
            offset = self.offsets.get(relative, 0)
            if size < offset:  # replaced by a shorter file: start it again
                log.info("%s shrank below offset %d; reading it from the start", relative, offset)
                offset = 0
            if size - offset < _HEADER:
                continue
            batch = self._read(relative, offset, min(size - offset, READ_CHUNK))
            if batch is not None:
                batches.append(batch)
        return batches

    def _read(self, relative: str, offset: int, size: int) -> Batch | None:
        try:
            data = self.source.read(relative, offset, size)
        except Exception as exc:  # gone meanwhile, S3 briefly unreachable: next time
            log.warning("reading %s: %s", relative, exc)
            return None
        plugins = self._plugins.setdefault(relative, {})

        def worth_checking(payload: bytes) -> bool:
            if len(payload) <= ALWAYS_CHECKED:
                return True
            try:
                return bool(decode_event(payload, dict(plugins)))
            except DecodeError:
                return True  # checked, and then reported as damaged or undecodable

        found = read_records(data, offset, worth_checking)
        if len(data) >= READ_CHUNK and not found.records and found.used == 0:
            # One record bigger than a read: no scalar is that big; skip it by its header.
            (length,) = struct.unpack_from("<Q", data, 0)
            found.used = min(len(data), _HEADER + length + _FOOTER)
            found.problems.append(f"record at byte {offset} too large to read; skipped")
        samples = []
        for record in found.records:
            try:
                scalars = decode_event(record, plugins)
            except DecodeError as exc:
                found.problems.append(f"an event in {relative} could not be decoded ({exc})")
                continue
            samples += [
                MetricSample(
                    metric_name(relative, s.tag), s.value, self.host, s.wall_time, step=s.step
                )
                for s in scalars
                if not math.isnan(s.wall_time)
            ]
        if not found.used:
            return None
        new_offset = offset + found.used
        self.offsets[relative] = new_offset
        return Batch(relative, samples, new_offset, [f"{relative}: {p}" for p in found.problems])


def encode_scalar_event(
    tag: str, value: float, step: int, wall_time: float, *, tensor: bool = False
) -> bytes:
    """A serialized Event with one scalar: `simple_value`, or with `tensor` a 0-d DT_FLOAT
    tensor with the `scalars` plugin (TF2's form). For writers of test files and fakes."""

    def key(number: int, wire: int) -> bytes:
        return _encode_varint(number << 3 | wire)

    def chunk(number: int, body: bytes) -> bytes:
        return key(number, 2) + _encode_varint(len(body)) + body

    if tensor:
        tensor_proto = key(1, 0) + _encode_varint(_DT_FLOAT) + chunk(2, b"")
        tensor_proto += chunk(5, struct.pack("<f", value))
        metadata = chunk(1, chunk(1, b"scalars"))
        entry = chunk(1, tag.encode()) + chunk(8, tensor_proto) + chunk(9, metadata)
    else:
        entry = chunk(1, tag.encode()) + key(2, 5) + struct.pack("<f", value)
    event = key(1, 1) + struct.pack("<d", wall_time) + key(2, 0) + _encode_varint(step)
    return event + chunk(5, chunk(1, entry))


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


__all__ = [
    "CONTAINER_DIR",
    "LOCAL_DIR",
    "PREFIX",
    "STREAM_PREFIX",
    "Batch",
    "DecodeError",
    "EventFollower",
    "EventSource",
    "FolderSource",
    "S3Source",
    "Scalar",
    "crc32c",
    "decode_event",
    "encode_scalar_event",
    "fields",
    "frame_record",
    "masked_crc",
    "metric_name",
    "read_records",
    "stream_key",
]
