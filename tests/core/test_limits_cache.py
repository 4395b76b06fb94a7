"""The SageMaker limits a spec is checked against are kept in the data folder per botocore
version, so a new process (a job host, a sweep's trial, `trainer-gui run`) validates without
loading botocore's service model; a missing, corrupt or stale file is written again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer_gui.core.spec import limits

PROBE = """
import json, sys
from trainer_gui.core.spec import limits, sweep
answers = {
    "tags": limits.tag_problems({"team": "vision", "aws:x": "y", "k": "bad\\u0007"}),
    "type": limits.instance_type_problem("ml.m5.xlarg"),
    "hyperparameters": limits.max_hyperparameters(),
    "image": limits.max_image_uri(),
    "groups": limits.max_of("ResourceConfig", "InstanceGroups"),
    "sweep": [sweep.max_ranges_per_type(), sweep.max_categorical_values(),
              sweep.max_value_length(), sweep.max_parameter_name(), sweep.max_metric_name(),
              sweep.min_sweep_runtime()],
}
print(json.dumps({"answers": answers, "model_loaded": "botocore.session" in sys.modules}))
"""


def _probe(home: Path) -> dict[str, object]:
    env = {**os.environ, "TRAINER_GUI_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_second_process_checks_a_spec_from_the_kept_limits_without_loading_the_model(
    tmp_path: Path,
) -> None:
    first = _probe(tmp_path)
    assert first["model_loaded"] is True
    kept = json.loads((tmp_path / limits.CACHE_NAME).read_text())
    assert kept["botocore"] == limits.botocore_version()

    second = _probe(tmp_path)

    assert second["model_loaded"] is False
    assert second["answers"] == first["answers"]
    answers = first["answers"]
    assert isinstance(answers, dict) and len(answers["tags"]) == 2  # reserved prefix, a bell


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff not json",
        b'{"format": 1, "botocore": "VERSION", "facts": {"member|Tags|max": "fifty"}}',
        b'{"format": 1, "botocore": "0.0.1", "facts": {"member|Tags|max": 3}}',
        b'{"format": 1, "botocore": "VERSION", "facts": []}',
        b"[]",
    ],
    ids=["garbage", "a wrong type", "another botocore", "facts not a mapping", "not a mapping"],
)
def test_a_corrupt_or_stale_limits_file_is_ignored_and_written_again(
    app_home: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    monkeypatch.setattr(limits, "_facts", {})  # this process has read no file yet
    path = app_home / limits.CACHE_NAME
    path.write_bytes(content.replace(b"VERSION", limits.botocore_version().encode()))
    from_model = int(limits._member("Tags").metadata["max"])

    assert limits.max_of("Tags") == from_model

    kept = json.loads(path.read_text())
    assert kept["botocore"] == limits.botocore_version()
    assert kept["facts"]["member|Tags|max"] == from_model
    assert set(limits.KNOWN_FACTS) <= set(kept["facts"])
    assert [p.name for p in app_home.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_a_data_folder_that_cannot_be_written_still_gets_the_models_limits(
    app_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "_facts", {})
    monkeypatch.setattr(limits, "cache_path", lambda: app_home / "missing" / limits.CACHE_NAME)

    assert limits.max_of("Tags") == int(limits._member("Tags").metadata["max"])
    assert not (app_home / "missing").exists()


def test_a_data_folder_that_cannot_be_made_still_gets_the_models_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with monkeypatch.context() as env:  # the fixture's own cleanup needs the real folder back
        env.setenv("TRAINER_GUI_HOME", str(blocker / "home"))  # under a file: no mkdir

        assert limits.max_of("Tags") == int(limits._member("Tags").metadata["max"])
        assert limits.min_of("Tags", "[]", "Key") == 1
