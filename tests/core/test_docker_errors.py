"""Docker failures users meet, each turned into one message that says what to do.

The engine is faked at the SDK boundary here; tests/docker runs the real thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.errors import BackendUnavailable, UserError
from trainer_gui.core.runners.docker import (
    DockerRunner,
    _explain_api_error,
    parse_offset,
    parse_timestamp,
)
from trainer_gui.core.spec import spec_from_dict


class _ApiError(Exception):
    def __init__(self, explanation: str, status_code: int = 500) -> None:
        super().__init__(explanation)
        self.explanation = explanation
        self.status_code = status_code


@pytest.mark.parametrize(
    ("explanation", "status", "expected"),
    [
        ('Conflict. The container name "/x-algo-1" is already in use', 409, "already exists"),
        ("write /var/lib/docker/tmp: no space left on device", 500, "disk Docker uses is full"),
        (
            "Bind for 127.0.0.1:8080 failed: port is already allocated",
            500,
            "port this job needs is taken",
        ),
        ('could not select device driver "" with capabilities: [[gpu]]', 500, "compute.gpus to 0"),
        ("something else", 500, "Docker refused to start the job: something else"),
    ],
)
def test_api_errors_become_actionable_messages(
    explanation: str, status: int, expected: str
) -> None:
    assert expected in _explain_api_error(_ApiError(explanation, status))


class _Images:
    def get(self, name: str) -> Any:
        return object()


class _Client:
    images = _Images()

    def info(self) -> dict[str, Any]:
        return {"Runtimes": {"runc": {}}}


def _spec(tmp_path: Path, **over: Any) -> Any:
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "data").mkdir(exist_ok=True)
    data: dict[str, Any] = {
        "name": "d",
        "source": {"source_dir": ".", "entry_point": "train.py"},
        "compute": {"backend": "docker"},
    }
    data.update(over)
    return spec_from_dict(data, base_dir=tmp_path)


def test_s3_channels_are_refused_locally_with_a_way_out(tmp_path: Path) -> None:
    spec = _spec(tmp_path, channels=[{"name": "train", "source": "s3://bucket/data"}])
    with pytest.raises(UserError, match="download it first, or use the sagemaker backend"):
        DockerRunner(client=_Client()).check(spec)  # type: ignore[arg-type]


def test_a_channel_folder_removed_after_validation_is_reported(tmp_path: Path) -> None:
    spec = _spec(tmp_path, channels=[{"name": "train", "source": "data"}])
    (tmp_path / "data").rmdir()
    with pytest.raises(UserError, match="channel 'train': data does not exist"):
        DockerRunner(client=_Client()).check(spec)  # type: ignore[arg-type]


def test_gpu_jobs_need_a_gpu_runtime(tmp_path: Path) -> None:
    spec = _spec(tmp_path, compute={"backend": "docker", "gpus": "all"})
    with pytest.raises(BackendUnavailable, match="NVIDIA Container Toolkit"):
        DockerRunner(client=_Client()).check(spec)  # type: ignore[arg-type]


def test_docker_timestamps_keep_nanoseconds_even_when_trimmed() -> None:
    assert parse_timestamp("2026-11-22T10:00:00.1Z") == (
        parse_timestamp("2026-11-22T10:00:00Z")[0],
        100_000_000,
    )
    assert parse_timestamp("2026-11-22T10:00:00.123456789Z")[1] == 123_456_789
    assert parse_timestamp("2026-11-22T10:00:00.1Z") > parse_timestamp("2026-11-22T10:00:00.09Z")


def test_offsets_round_trip_and_reject_garbage() -> None:
    assert parse_offset("1795315945.000000123:2") == ((1795315945, 123), 2)
    assert parse_offset("garbage") is None
    assert parse_offset(None) is None


class _FakeContainer:
    name = "c"

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def logs(self, **kwargs: Any) -> Any:
        return iter([("\n".join(self.lines) + "\n").encode()])


def _read(lines: list[str], resume: str | None) -> list[tuple[str, str]]:
    import queue

    from trainer_gui.core.runners.docker import _LogReader

    out: queue.Queue[Any] = queue.Queue()
    reader = _LogReader(_FakeContainer(lines), "algo-1", "stdout", out, resume)  # type: ignore[arg-type]
    reader.run()
    got = []
    while not out.empty():
        line, _key, offset = out.get()
        got.append((line.text, offset))
    return got


def test_resuming_docker_logs_never_repeats_or_drops_a_line() -> None:
    lines = [
        "2026-11-22T10:00:01.5Z first",
        "2026-11-22T10:00:02.25Z second",
        "2026-11-22T10:00:02.25Z twin",
        "2026-11-22T10:00:03Z third",
    ]
    everything = _read(lines, None)
    assert [t for t, _ in everything] == ["first", "second", "twin", "third"]
    for i, (_, offset) in enumerate(everything):
        # Docker re-sends from the start of the offset's second; what follows must be exactly the rest.
        second = parse_offset(offset)[0][0]  # type: ignore[index]
        resent = [ln for ln in lines if parse_timestamp(ln.split()[0])[0] >= second]
        assert [t for t, _ in _read(resent, offset)] == [t for t, _ in everything[i + 1 :]]
