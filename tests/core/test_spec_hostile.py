"""Hostile spec input: every one gives a `SpecError` naming the problem, fast and in bounded memory.

Each case here crashed the loader ("internal error" in the CLI) or was accepted before.
"""

from __future__ import annotations

import contextlib
import io
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.cli.main import main
from trainer_gui.core.errors import SpecError
from trainer_gui.core.spec import load_spec, spec_from_dict, spec_from_text
from trainer_gui.core.spec.io import MAX_SPEC_BYTES, read_spec_data

HEAD = "name: job-1\nsource: {source_dir: code, entry_point: train.py}\n"

# 9 levels of 9 aliases: ~400 bytes that expand to 9**9 (387 million) strings
BOMB = (
    HEAD
    + 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9))
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('hi')\n")
    (tmp_path / "drivers").mkdir()
    (tmp_path / "drivers" / "driver.py").write_text("print('driver')\n")
    (tmp_path / "data").mkdir()
    return tmp_path


def _problem(text: str, base: Path | None = None) -> str:
    """The one problem line a text gives."""
    with pytest.raises(SpecError) as info:
        spec_from_text(text, base_dir=base)
    assert len(info.value.problems) == 1, info.value.problems
    line = info.value.problems[0]
    assert "\n" not in line and line.isprintable()
    return line


def _dict_problems(data: dict[str, Any], base: Path | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data, base_dir=base)
    return info.value.problems


def _valid(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "job-1",
        "source": {"source_dir": "code", "entry_point": "train.py"},
    }
    data.update(over)
    return data


# -- crashes before ------------------------------------------------------------------------------


def test_deep_nesting_is_refused_naming_the_depth() -> None:
    text = HEAD + "hyperparameters: {x: " + "[" * 3000 + "]" * 3000 + "}\n"
    assert "nests more than 50 levels" in _problem(text)
    assert "line 3" in _problem(text)


def test_deep_nesting_in_plain_data_is_refused() -> None:
    value: Any = 1
    for _ in range(3000):
        value = [value]
    (line,) = _dict_problems(_valid(hyperparameters={"x": value}))
    assert line.startswith("hyperparameters.x") and "nested more than 50 levels" in line


def test_a_list_that_holds_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert _dict_problems(_valid(hyperparameters={"x": loop}))
    assert "refers to a list or mapping that holds it" in _problem(HEAD + "x: &x [1, *x]\n")


@pytest.mark.parametrize("field", ["max_runtime_seconds", "hyperparameters: {x", "description"])
def test_a_5000_digit_integer_is_refused_with_its_line(field: str) -> None:
    close = "}" if "{" in field else ""
    line = _problem(f"{HEAD}{field}: {'9' * 5000}{close}\n")
    assert "a number with 5,000 digits" in line and "line 3" in line


def test_a_5000_digit_integer_in_plain_data_is_refused() -> None:
    (line,) = _dict_problems(_valid(hyperparameters={"seed": 10**5000}))
    assert line.startswith("hyperparameters.seed") and "more than 4,000 digits" in line


@pytest.mark.parametrize(
    "text",
    [
        HEAD + 'description: "\\uD800"\n',
        HEAD + '"\\uDFFF": 1\n',
        HEAD + 'hyperparameters: {x: ["ok", "\\ud83d"]}\n',
    ],
)
def test_a_lone_surrogate_is_refused_with_its_line(text: str) -> None:
    line = _problem(text)
    assert "lone surrogate" in line and "line 3" in line


def test_a_lone_surrogate_in_plain_data_is_refused() -> None:
    (line,) = _dict_problems(_valid(environment={"A": "x\udc80"}))
    assert line.startswith("environment.A") and "lone surrogate" in line
    assert _dict_problems(_valid(environment={"\ud800": "x"}))


@pytest.mark.parametrize(
    "spec_part",
    [
        "source: {source_dir: LONG, entry_point: train.py}",
        "source: {source_dir: code, entry_point: train.py, requirements: LONG}",
        "source: {source_dir: code, entry_point: train.py}\nchannels: {train: LONG}",
        "source: {source_dir: code, entry_point: train.py}\nhyperparameters_file: LONG",
        "source: {source_dir: code, entry_point: LONG}",
        "source: {source_dir: code, entry_point: train.py}\n"
        "distribution: {kind: custom, driver_dir: LONG, driver_script: d.py}",
    ],
)
def test_a_5000_character_path_is_a_problem_line(project: Path, spec_part: str) -> None:
    text = "name: job-1\n" + spec_part.replace("LONG", "x" * 5000) + "\n"
    line = _problem(text, project)
    assert "File name too long" in line or "does not exist" in line or "is not in" in line
    assert len(line) <= 300


def test_a_5000_character_spec_path_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / ("x" * 5000))


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (HEAD + "description: 2001-13-45\n", "is not a date"),
        (HEAD + "max_runtime_seconds: !!int abc\n", "is not a whole number"),
        (HEAD + "description: !!python/object:os.system x\n", "not valid YAML"),
        (HEAD + "description: \x1f\n", "unacceptable character #x001f"),
        ("name: job-1\nsource: {source_dir: ~no-such-user-here/x, entry_point: a.py}\n", "home"),
    ],
)
def test_other_hostile_scalars_are_problem_lines(project: Path, text: str, expect: str) -> None:
    assert expect in _problem(text, project)


# -- the alias bomb ----------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_fast_in_bounded_memory() -> None:
    assert len(BOMB) < 600
    tracemalloc.start()
    started = time.monotonic()
    try:
        line = _problem(BOMB)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "more than 100,000 values once its aliases" in line
    assert elapsed < 2.0
    assert peak < 50 * 1024 * 1024


def test_a_few_aliases_still_work() -> None:
    spec = spec_from_text(
        "name: job-1\nsource: {command: [python, a.py]}\nhyperparameters: {a: &lr [1, 2], b: *lr}\n"
    )
    assert spec.hyperparameters == {"a": [1, 2], "b": [1, 2]}


def test_an_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(HEAD + "description: '" + "x" * MAX_SPEC_BYTES + "'\n")
    with pytest.raises(SpecError, match="larger than 512 KiB"):
        load_spec(big)
    if Path("/dev/zero").exists():  # an endless file: refused after the limit, not read forever
        with pytest.raises(SpecError, match="larger than"):
            load_spec("/dev/zero")


def test_the_forms_reader_refuses_the_bomb_too(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.monotonic()
    with pytest.raises(SpecError, match="aliases"):
        read_spec_data(path)
    assert time.monotonic() - started < 2.0


# -- accepted before -----------------------------------------------------------------------------


def test_duplicate_keys_are_an_error_naming_key_and_lines() -> None:
    line = _problem("name: job-1\nsource: {command: [a]}\nname: job-2\n")
    assert "the key 'name' appears twice (lines 1 and 3)" in line
    nested = _problem("name: job-1\nsource:\n  command: [a]\n  command: [b]\n")
    assert "'command' appears twice (lines 3 and 4)" in nested


def test_a_merge_key_override_is_not_a_duplicate() -> None:
    spec = spec_from_text(
        "name: job-1\nsource: {command: [a]}\nsagemaker: {tags: {<<: {a: b, c: d}, a: c}}\n"
    )
    assert spec.sagemaker.tags == {"a": "c", "c": "d"}


@pytest.mark.parametrize(
    "data",
    [
        {"max_runtime_seconds": True},
        {"compute": {"instance_count": True}},
        {"compute": {"gpus": True}},
        {"compute": {"gpus": False}},
        {"compute": {"volume_size_gb": True}},
        {"distribution": {"kind": "torchrun", "processes_per_host": True}},
    ],
)
def test_true_or_false_is_not_a_count(project: Path, data: dict[str, Any]) -> None:
    (line,) = _dict_problems(_valid(**data), project)
    assert "is not a number; give a whole number" in line


def test_counts_still_take_whole_numbers(project: Path) -> None:
    spec = spec_from_text(
        HEAD + "max_runtime_seconds: 60\ncompute: {gpus: 2, volume_size_gb: 5}\n", project
    )
    assert (spec.max_runtime_seconds, spec.compute.gpus, spec.compute.volume_size_gb) == (60, 2, 5)
    assert spec_from_dict(_valid(compute={"gpus": "all"}), project).compute.gpus == "all"


@pytest.mark.parametrize(
    "script", ["../../etc/passwd", "/bin/sh", "..\\..\\x.py", "C:\\x.py", "\\x.py", "a/../../b"]
)
def test_driver_script_must_stay_inside_its_folder(project: Path, script: str) -> None:
    data = _valid(distribution={"kind": "custom", "driver_dir": "drivers", "driver_script": script})
    problems = _dict_problems(data, project)
    assert any("driver script" in p and "inside the driver folder" in p for p in problems)
    # the rule is entry_point's own
    assert any(
        "inside the source folder" in p
        for p in _dict_problems(_valid(source={"source_dir": "code", "entry_point": script}))
    )


def test_driver_script_must_exist_in_its_folder(project: Path) -> None:
    ok = _valid(
        distribution={"kind": "custom", "driver_dir": "drivers", "driver_script": "driver.py"}
    )
    assert spec_from_dict(ok, project).distribution.driver_script == "driver.py"
    missing = _valid(
        distribution={"kind": "custom", "driver_dir": "drivers", "driver_script": "nope.py"}
    )
    (line,) = _dict_problems(missing, project)
    assert "driver script 'nope.py' is not in the driver folder" in line


# -- the CLI -------------------------------------------------------------------------------------


def _validate(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["spec", "validate", str(path)])
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "text",
    [
        BOMB,
        HEAD + "x: " + "[" * 5000 + "]" * 5000 + "\n",
        HEAD + "max_runtime_seconds: " + "1" * 5000 + "\n",
        HEAD + 'description: "\\uD800"\n',
        "name: job-1\nsource: {source_dir: " + "y" * 5000 + ", entry_point: a.py}\n",
    ],
)
def test_cli_spec_validate_gives_one_line_not_internal_error(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(text)
    rc, out, err = _validate(spec)
    assert rc == 2 and out == ""
    assert err.startswith("trainer-gui: ") and err.count("\n") == 1, err
    assert "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        ("hp.yaml", BOMB.replace(HEAD, ""), "aliases"),
        ("hp.json", '{"x": ' + "[" * 5000 + "]" * 5000 + "}", "not valid JSON"),
        ("hp.json", '{"x": ' + "7" * 5000 + "}", "not valid JSON"),
        ("hp.json", '{"x": "\\ud800"}', "lone surrogate"),
    ],
)
def test_a_hostile_hyperparameters_file_is_a_problem_line(
    project: Path, name: str, text: str, expect: str
) -> None:
    (project / name).write_text(text)
    with pytest.raises(SpecError) as info:  # when the spec is validated, before any upload
        spec_from_dict(_valid(hyperparameters_file=name), project)
    (line,) = info.value.problems
    assert line.startswith("hyperparameters_file: ") and expect in line
