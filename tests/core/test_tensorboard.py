"""TensorBoard scalars without regexes (issue 15, item 5): the event-file reader against a file
TensorBoard itself wrote, damaged and half-written files, and a real local-process job whose
event files land in the store with their steps, exactly once across a take-over."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer_gui.core.joblog import JOB_LOG
from trainer_gui.core.metrics import tensorboard as tb
from trainer_gui.core.runners.local_process import LocalProcessRunner
from trainer_gui.core.spec import JobSpec
from trainer_gui.core.store import Store
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]
WaitUntil = Callable[..., None]
TIMEOUT = 120

# Written by tensorboard 2.21's EventFileWriter with its own protos (not by this project):
# the file_version event; loss=0.75 as simple_value (step 1); acc=0.5 as a DT_FLOAT tensor with
# the `scalars` plugin (step 2); acc=0.625 as a tensor without metadata (step 3); a `text`
# plugin string tensor (no scalar); lr=0.001 as a DT_DOUBLE tensor_content (step 4); and at step
# 2**40 loss=-2.5 (simple_value) and acc=1.0 as a DT_HALF half_val, in one event.
GOLDEN = bytes.fromhex(
    "4800000000000000fe92489d09f887c78a7ec4da411a0d627261696e2e4576656e743a32522e0a2c74656e73"
    "6f72626f6172642e73756d6d6172792e7772697465722e6576656e745f66696c655f777269746572825220a7"
    "1a00000000000000129bd82d090000000000448f4010012a0d0a0b0a046c6f7373150000403ff764e78c2d00"
    "0000000000003c418afb0900000000004a8f4010022a200a1e0a03616363420a080112002a040000003f4a0b"
    "0a090a077363616c617273a090d1e9200000000000000029eda950090000000000508f4010032a130a110a03"
    "616363420a080112002a040000203fd8e95e7f2b00000000000000861bc34b090000000000508f4010032a1e"
    "0a1c0a056e6f74657342090807420568656c6c6f4a080a060a047465787443fcd1172300000000000000b09f"
    "7743090000000000588f4010042a160a140a026c72420e080212002208fca9f1d24d62503f5fe38e5a300000"
    "000000000095f5d05f090000000000608f40108080808080202a1e0a0b0a046c6f737315000020c00a0f0a03"
    "6163634208081312006a028078ea6c5e08"
)
GOLDEN_SCALARS = [
    ("loss", 0.75, 1, 1000.5),
    ("acc", 0.5, 2, 1001.25),
    ("acc", 0.625, 3, 1002.0),
    ("lr", 0.001, 4, 1003.0),
    ("loss", -2.5, 2**40, 1004.0),
    ("acc", 1.0, 2**40, 1004.0),
]


def _scalars(data: bytes) -> list[tuple[str, float, int, float]]:
    found = tb.read_records(data)
    assert not found.problems
    plugins: dict[str, str] = {}
    return [
        (s.tag, s.value, s.step, s.wall_time)
        for record in found.records
        for s in tb.decode_event(record, plugins)
    ]


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert tb.crc32c(b"123456789") == 0xE3069283


def test_scalars_of_a_file_tensorboard_wrote_are_read_with_steps_and_wall_times() -> None:
    assert _scalars(GOLDEN) == GOLDEN_SCALARS


def test_the_writer_for_tests_encodes_events_as_tensorboard_does() -> None:
    records = tb.read_records(GOLDEN).records
    assert tb.encode_scalar_event("loss", 0.75, 1, 1000.5) == records[1]
    assert tb.encode_scalar_event("acc", 0.5, 2, 1001.25, tensor=True) == records[2]


def test_a_truncated_last_record_waits_for_the_rest() -> None:
    for cut in (5, 12, 30, len(GOLDEN) - 1):
        head = tb.read_records(GOLDEN[: len(GOLDEN) - cut])
        assert not head.problems
        rest = tb.read_records(GOLDEN[head.used :], head.used)
        assert head.records + rest.records == tb.read_records(GOLDEN).records


def test_a_record_with_a_bad_crc_is_reported_and_skipped() -> None:
    data = bytearray(GOLDEN)
    second = 12 + 0x48 + 4  # the loss record follows the 72-byte file_version record
    data[second + 12 + 3] ^= 0xFF  # a byte of its payload
    found = tb.read_records(bytes(data))
    assert found.problems == [f"record at byte {second} failed its CRC check; skipped"]
    assert found.used == len(GOLDEN)
    plugins: dict[str, str] = {}
    tags = [s.tag for r in found.records for s in tb.decode_event(r, plugins)]
    assert tags == ["acc", "acc", "lr", "loss", "acc"]  # only the damaged loss is gone


def test_a_damaged_length_skips_to_the_next_record() -> None:
    data = bytearray(GOLDEN)
    data[0] ^= 0x01  # the first record's length no longer matches its CRC
    found = tb.read_records(bytes(data))
    assert len(found.problems) == 1 and "damaged record header at byte 0" in found.problems[0]
    assert len(found.records) == len(tb.read_records(GOLDEN).records) - 1


def test_a_follower_resumes_a_file_written_in_pieces(tmp_path: Path) -> None:
    events = tmp_path / "train"
    events.mkdir()
    path = events / "events.out.tfevents.1.host"
    records = [
        tb.frame_record(tb.encode_scalar_event("loss", i / 2, i, 100.0 + i)) for i in range(4)
    ]
    follower = tb.EventFollower(tb.FolderSource(tmp_path), "algo-1")
    path.write_bytes(records[0] + records[1][:10])
    (batch,) = follower.poll()
    assert [(s.name, s.step, s.value, s.host) for s in batch.samples] == [
        ("tb/train/loss", 0, 0.0, "algo-1")
    ]
    assert batch.offset == len(records[0])
    with open(path, "ab") as fh:
        fh.write(records[1][10:] + records[2])
    (more,) = follower.poll()
    assert [s.step for s in more.samples] == [1, 2]
    with open(path, "ab") as fh:
        fh.write(records[3])
    # Another follower (a take-over) from the offset stored with the first batch.
    again = tb.EventFollower(
        tb.FolderSource(tmp_path),
        "algo-1",
        {tb.stream_key("train/" + path.name): str(batch.offset), "stdout": "99"},
    )
    (rest,) = again.poll()
    assert [s.step for s in rest.samples] == [1, 2, 3]
    assert rest.offset == path.stat().st_size
    assert again.poll() == []


def test_bad_records_of_a_followed_file_are_named_and_skipped(tmp_path: Path) -> None:
    good = tb.frame_record(tb.encode_scalar_event("loss", 1.0, 1, 1.0))
    bad = bytearray(tb.frame_record(tb.encode_scalar_event("loss", 2.0, 2, 2.0)))
    bad[-1] ^= 0xFF
    (tmp_path / "events.out.tfevents.9").write_bytes(good + bytes(bad) + good)
    (batch,) = tb.EventFollower(tb.FolderSource(tmp_path), "algo-1").poll()
    assert [s.name for s in batch.samples] == ["tb/loss", "tb/loss"]
    assert batch.problems == [
        f"events.out.tfevents.9: record at byte {len(good)} failed its CRC check; skipped"
    ]


def test_other_files_and_non_scalar_tensors_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("loss=1")
    tensor = b"\x08\x07" + b"\x42\x05hello"  # a DT_STRING tensor
    assert tb.EventFollower(tb.FolderSource(tmp_path), "h").poll() == []
    assert tb._tensor_scalar(tensor) is None


# -- a real job -------------------------------------------------------------------------------

WRITER = """
    import os, sys, time
    from trainer_gui.core.metrics.tensorboard import encode_scalar_event, frame_record
    folder = os.path.join(os.environ["SM_OUTPUT_DIR"], "tensorboard")
    os.makedirs(folder, exist_ok=True)
    count = int(sys.argv[sys.argv.index("--count") + 1]) if "--count" in sys.argv else 6
    pause = float(sys.argv[sys.argv.index("--pause") + 1]) if "--pause" in sys.argv else 0.0
    with open(os.path.join(folder, "events.out.tfevents.1.algo-1"), "ab") as fh:
        for step in range(count):
            record = frame_record(encode_scalar_event("loss", 1.0 / (step + 1), step, time.time()))
            fh.write(record[:7])  # half a record: the reader must wait for the rest
            fh.flush()
            time.sleep(0.3 if step == 1 else pause / 2)
            fh.write(record[7:])
            fh.flush()
            time.sleep(pause / 2)
        bad = bytearray(frame_record(encode_scalar_event("loss", 99.0, 999, time.time())))
        bad[-1] ^= 0xFF
        fh.write(bytes(bad))
        fh.write(frame_record(encode_scalar_event("acc", 0.5, count, time.time(), tensor=True)))
    print("done")
"""


def test_tensorboard_scalars_of_a_real_job_arrive_with_steps(
    service: JobService, job_spec: SpecFactory
) -> None:
    handle = service.submit(job_spec(WRITER))
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    loss = [s for _, s in service.store.metric_samples(record.id, name="tb/loss")]
    assert [s.step for s in loss] == list(range(6))
    assert [s.value for s in loss] == pytest.approx([1.0 / (i + 1) for i in range(6)])  # float32
    assert all(s.host == "algo-1" and s.wall_time > 1e9 for s in loss)
    acc = [s for _, s in service.store.metric_samples(record.id, name="tb/acc")]
    assert [(s.step, s.value) for s in acc] == [(6, 0.5)]
    log_text = (Path(record.run_dir) / "logs" / JOB_LOG).read_text()
    assert "tensorboard: events.out.tfevents.1.algo-1: record at byte" in log_text
    assert "failed its CRC check; skipped" in log_text


def test_a_follower_that_takes_over_reads_every_tensorboard_scalar_once(
    app_home: Path, job_spec: SpecFactory, wait_until: WaitUntil
) -> None:
    store = Store(app_home / "db.sqlite3")
    first = JobService(store, {"local-process": LocalProcessRunner(grace=3)})
    handle = first.submit(job_spec(WRITER, hyperparameters={"count": 40, "pause": 0.1}))
    wait_until(lambda: len(store.metric_samples(handle.job_id, name="tb/loss")) >= 5)
    first.shutdown()  # as if the app quit: the job keeps running, nobody ingests
    assert not handle.done
    second_store = Store(app_home / "db.sqlite3")
    second = JobService(second_store, {"local-process": LocalProcessRunner(grace=3)})
    try:
        assert second.recover() == [handle.job_id]
        record = second.wait(handle.job_id, timeout=TIMEOUT)
        assert record.status == "Completed", record.failure_reason
        steps = [s.step for _, s in second_store.metric_samples(handle.job_id, name="tb/loss")]
        assert steps == list(range(40))
    finally:
        second.shutdown()
        store.close()
        second_store.close()


def _image_event(size: int) -> bytes:
    """An Event whose one summary value is an image (field 4) of `size` bytes: no scalar."""
    image = b"\x22" + tb._encode_varint(size) + b"\x00" * size  # Image.encoded_image_string
    value = b"\x0a\x03img" + b"\x22" + tb._encode_varint(len(image)) + image
    summary = b"\x0a" + tb._encode_varint(len(value)) + value
    return b"\x10\x07" + b"\x2a" + tb._encode_varint(len(summary)) + summary


def test_big_records_without_scalars_are_not_crc_checked_so_big_files_stay_cheap(
    tmp_path: Path,
) -> None:
    big = tb.frame_record(_image_event(6 * 1024 * 1024))  # ~1.5 s of CRC-32C in Python
    scalar = tb.frame_record(tb.encode_scalar_event("loss", 0.5, 8, 9.0))
    (tmp_path / "events.out.tfevents.3").write_bytes(big + scalar)
    follower = tb.EventFollower(tb.FolderSource(tmp_path), "algo-1")
    began = time.monotonic()
    (batch,) = follower.poll()
    assert time.monotonic() - began < 1.0
    assert [(s.name, s.step) for s in batch.samples] == [("tb/loss", 8)]
    assert batch.problems == []


def test_a_long_damaged_stretch_is_crossed_over_several_reads(tmp_path: Path) -> None:
    good = tb.frame_record(tb.encode_scalar_event("loss", 1.0, 1, 1.0))
    garbage = b"\xff" * (tb.MAX_RESYNC * 2 + 100)
    (tmp_path / "events.out.tfevents.4").write_bytes(good + garbage + good)
    follower = tb.EventFollower(tb.FolderSource(tmp_path), "algo-1")
    steps: list[int | None] = []
    problems: list[str] = []
    for _ in range(5):
        for batch in follower.poll():
            steps += [s.step for s in batch.samples]
            problems += batch.problems
    assert steps == [1, 1]
    assert problems and all("damaged record header" in p for p in problems)
    assert follower.poll() == []
