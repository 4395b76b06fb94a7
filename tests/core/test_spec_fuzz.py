"""Property-based fuzzing of the spec loader and `trainer-gui spec validate`.

Whatever the input (random YAML text, random nested data, the hostile values that once crashed
the loader), the outcome is a spec or a `SpecError` whose lines are single printable lines;
never another exception, never a traceback in front of the user.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer_gui.cli.main import main
from trainer_gui.core.errors import SpecError
from trainer_gui.core.spec import JobSpec, spec_from_dict, spec_from_text
from trainer_gui.core.spec.io import MAX_LINE

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FIELD_NAMES = [
    "name", "description", "source", "source_dir", "entry_point", "requirements", "command",
    "dependencies", "image", "compute", "backend", "instance_type", "instance_count", "gpus",
    "volume_size_gb", "distribution", "kind", "processes_per_host", "driver_dir",
    "driver_script", "channels", "content_type", "input_mode", "hyperparameters",
    "hyperparameters_file", "environment", "max_runtime_seconds", "checkpoint_dir",
    "checkpoint_s3_uri", "metric_definitions", "regex", "output_path", "sagemaker", "role_arn",
    "region", "profile", "tags", "framework_version", "py_version", "s3_prefix", "<<",
]  # fmt: skip


class _Huge(int):
    """A number too long for str(): its repr is short, so hypothesis can report it."""

    def __repr__(self) -> str:
        return f"<int of {self.bit_length()} bits>"


HOSTILE: list[Any] = [
    "\ud800", "x\udfffy", _Huge(10**5000), _Huge(-(10**4400)), "x" * 5000, "/" + "y" * 5000, True, False,
    None, -1, 0, 1, 2**63, 1.5, float("nan"), float("inf"), "", " ", ".", "..", "/bin/sh",
    "../../etc/passwd", "C:\\x", "~no-such-user-xyz/x", "a\x00b", "line\nbreak", "s3://",
    "s3://bucket/x", "all", "local-process", "docker", "sagemaker", "torchrun", "custom",
    "none", "File", "Pipe", "train.py", "code", "data", "job-1", "loss=([0-9.]+)", "(",
    "ml.m5.xlarge", b"bytes", (1, 2), frozenset({1}),
]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(range(len(HOSTILE))).map(HOSTILE.__getitem__),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10), st.integers(-2, 2))
data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)
spec_like = st.fixed_dictionaries(
    {"name": st.one_of(st.just("job-1"), scalars), "source": data},
    optional={name: data for name in FIELD_NAMES if name not in ("name", "source")},
)


def _nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


deep = st.builds(_nested, st.integers(40, 400), scalars)

VALID_YAML = (
    "name: job-1\n"
    "source: {source_dir: code, entry_point: train.py}\n"
    "compute: {backend: local-process, gpus: 0}\n"
    "channels: {train: data}\n"
    "hyperparameters: {epochs: 3, lr: 0.1}\n"
    "max_runtime_seconds: 60\n"
)
SNIPPETS = [
    "[", "]", "{", "}", ": ", "- ", "&a ", "*a", "<<: *a", "!!int ", "!!float ", "!!bool ",
    "!!timestamp ", "!!binary ", "!!set ", "!!omap ", "!!python/object:os.system ", '"\\uD800"',
    "'", '"', "\n", "  ", "#", "|", ">", "?", "%YAML 1.1\n", "---\n", "...\n", "\t", "9" * 5000,
    "[" * 200, "2001-13-45", "~", "true", ".inf", "0x1F", "0o17", "1_000", "1:20:30", "\ufeff",
    "name: again\n", "a: &a [1,2]\nb: [*a,*a,*a]\n", "\x85", "\u2028",
]  # fmt: skip


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    """The valid spec with random YAML pieces spliced in, or plain random text."""
    if draw(st.booleans()):
        return draw(st.text(alphabet=st.sampled_from("[]{}:,-&*!?|>'\"#\n ab1.\\"), max_size=80))
    text = VALID_YAML
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=8)))
        text = text[:at] + piece + text[at:]
    return text


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "code").mkdir()
    (root / "code" / "train.py").write_text("print('hi')\n")
    (root / "data").mkdir()
    return root


def _check_error(err: SpecError) -> None:
    """The only error: problem lines a person can read on any terminal."""
    assert err.problems
    for line in err.problems:
        assert line and "\n" not in line and "\r" not in line, repr(line)
        assert line.isprintable(), repr(line)
        assert len(line) <= MAX_LINE, repr(line)
        assert "cannot be checked" not in line, line  # the safety net is for bugs only
    str(err).encode("utf-8")  # printable as UTF-8: no lone surrogates


def _outcome_of(call: Any, *args: Any, **kwargs: Any) -> None:
    try:
        spec = call(*args, **kwargs)
    except SpecError as err:
        _check_error(err)
    else:
        assert isinstance(spec, JobSpec)


@FUZZ
@given(text=yaml_texts())
def test_any_yaml_text_gives_a_spec_or_clear_problems(project: Path, text: str) -> None:
    _outcome_of(spec_from_text, text, base_dir=project, source="job.yaml")


@FUZZ
@given(value=spec_like)
def test_any_nested_data_gives_a_spec_or_clear_problems(project: Path, value: Any) -> None:
    _outcome_of(spec_from_dict, value, base_dir=project)


@FUZZ
@given(value=st.one_of(data, deep), field=st.sampled_from(FIELD_NAMES))
def test_any_value_in_any_field_gives_a_spec_or_clear_problems(
    project: Path, value: Any, field: str
) -> None:
    base: dict[str, Any] = {
        "name": "job-1",
        "source": {"source_dir": "code", "entry_point": "train.py"},
    }
    _outcome_of(spec_from_dict, {**base, field: value}, base_dir=project)
    _outcome_of(
        spec_from_dict,
        {**base, "source": {"source_dir": "code", "entry_point": "train.py", field: value}},
        base_dir=project,
    )


@settings(FUZZ, max_examples=100)
@given(text=yaml_texts())
def test_cli_spec_validate_exits_0_or_2_with_one_clear_message(project: Path, text: str) -> None:
    spec = project / "fuzz.yaml"
    spec.write_text(text, encoding="utf-8", errors="surrogateescape")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["spec", "validate", str(spec)])
    if rc == 0:
        assert ": OK (" in out.getvalue()
        assert err.getvalue() == ""
        return
    assert rc == 2, err.getvalue()
    message = err.getvalue()
    assert message.startswith("trainer-gui: ") and message.endswith("\n")
    assert "internal error" not in message and "Traceback" not in message
    for line in message.splitlines()[1:]:  # "N problems:" then one "  - " line each
        assert line.startswith("  - "), message
