"""`trainer-gui queue` from a terminal: what people see and type."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trainer_gui.cli.main import main
from trainer_gui.core.store import Store


def _spec(tmp_path: Path, seconds: float) -> Path:
    script = tmp_path / "sleep.py"
    script.write_text(f"import time\ntime.sleep({seconds})\nprint('loss=1', flush=True)\n")
    path = tmp_path / "job.yaml"
    path.write_text(
        f"name: cli-queue\nsource: {{command: [{sys.executable!r}, {str(script)!r}]}}\n"
        "compute: {backend: local-process}\n"
    )
    return path


def test_queue_list_move_pause_resume_cancel_and_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINER_GUI_MAX_PARALLEL", "1")
    spec = _spec(tmp_path, 3)
    assert main(["queue", "pause"]) == 0
    for _ in range(3):
        assert main(["run", "--detach", str(spec)]) == 0
    capsys.readouterr()
    ids = [r.id for r in reversed(Store().list_jobs())]

    assert main(["queue", "list"]) == 0
    out = capsys.readouterr().out
    assert "Queue paused" in out and all(i in out for i in ids)

    assert main(["queue", "move", ids[2], "--top"]) == 0
    out = capsys.readouterr().out
    assert out.index(ids[2]) < out.index(ids[0])

    assert main(["queue", "cancel", ids[1]]) == 0
    assert f"{ids[1]}: Stopped" in capsys.readouterr().out

    assert main(["queue", "limit", "2"]) == 0
    assert "Local jobs at once: 2" in capsys.readouterr().out
    assert main(["queue", "resume"]) == 0
    assert main(["logs", ids[0], "--follow"]) == 0
    assert main(["logs", ids[2], "--follow"]) == 0
    statuses = {r.id: r.status for r in Store().list_jobs()}
    assert statuses == {ids[0]: "Completed", ids[1]: "Stopped", ids[2]: "Completed"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["queue", "move", "nope", "--top"], "no job 'nope'"),
        (["queue", "limit", "lots"], "a number or 'default'"),
        (["queue", "limit", "0"], "between 1 and 256"),
        (["queue", "move", "x", "--to", "0"], "--to takes a position from 1"),
    ],
)
def test_bad_queue_input_gets_one_line_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
