"""CreateTrainingJob's limits as the service states them: botocore's SageMaker service model.

Read from the installed botocore (the request shapes' min/max/pattern/enum), not written out by
hand, so they follow the service as botocore is updated. The few facts the app reads (lengths,
counts, patterns, the training instance types, the tuning limits) are kept in the data folder
per botocore version (`sagemaker-limits.json`), so a new process (a job host, `trainer-gui run`,
a sweep's trial) validates a spec without importing botocore's session and loading its 5 MB
model (about 1 s under load). A missing, corrupt or other version's file is ignored and written
again (atomically) from the model.

AWS writes its patterns in Java's regex dialect; the one feature Python's `re` lacks that the
shapes use here, Unicode classes such as `\\p{L}` inside a character class (tag keys and
values), is checked character by character with `unicodedata`.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer_gui.core.atomic import write_atomic

log = logging.getLogger(__name__)

#: The prefix AWS keeps for its own tags (not in the model; stated in the Tagging docs).
RESERVED_TAG_PREFIX = "aws:"


@functools.lru_cache(maxsize=1)
def sagemaker_model() -> Any:
    """botocore's SageMaker service model, loaded once per process (about 5 MB of JSON) for
    every check that reads it: the job's limits here, the sweep's in core/spec/sweep.py."""
    import botocore.session  # lazily: botocore is heavy, and only SageMaker limits need it

    return botocore.session.get_session().get_service_model("sagemaker")


@functools.lru_cache(maxsize=1)
def _create_training_job() -> Any:
    return sagemaker_model().operation_model("CreateTrainingJob").input_shape


def _member(*path: str) -> Any:
    shape = _create_training_job()
    for name in path:
        shape = shape.member if name == "[]" else shape.members[name]
    return shape


def botocore_version() -> str:
    import botocore  # the package alone: a few ms, not the session's 0.7 s

    return str(botocore.__version__)


# -- the facts, cached on disk per botocore version ---------------------------------------------

CACHE_NAME = "sagemaker-limits.json"
_CACHE_FORMAT = 1
_SEP = "|"
#: Every fact the app reads, written together the first time any is missing (one model load).
#: "member|<CreateTrainingJob path>|<metadata key or enum>", "shape|<shape>|<key or enum>",
#: "shape-member|<shape>|<member>|<key>".
KNOWN_FACTS: tuple[str, ...] = (
    *(
        f"member|{path}|{key}"
        for path in (
            "Tags",
            "Tags|[]|Key",
            "Tags|[]|Value",
            "HyperParameters",
            "AlgorithmSpecification|TrainingImage",
            "ResourceConfig|InstanceGroups",
        )
        for key in ("max", "min", "pattern")
    ),
    "member|ResourceConfig|InstanceType|enum",
    *(
        f"shape|{name}|max"
        for name in (
            "ContinuousParameterRanges",
            "ParameterValues",
            "ParameterValue",
            "ParameterKey",
            "MetricName",
        )
    ),
    "shape-member|ResourceLimits|MaxRuntimeInSeconds|min",
)

_facts_lock = threading.Lock()
#: This process's copy per data folder (`TRAINER_GUI_HOME`, "" for the default): read once; a
#: process that moves to another data folder (the tests, the bench) writes that one's too.
_facts: dict[str, dict[str, Any]] = {}


def cache_path() -> Path:
    from trainer_gui.core.paths import data_home

    return data_home() / CACHE_NAME


def _compute(key: str) -> Any:
    """One fact from botocore's model (loads it)."""
    kind, *parts = key.split(_SEP)
    if kind == "member":
        shape, meta = _member(*parts[:-1]), parts[-1]
    elif kind == "shape":
        shape, meta = sagemaker_model().shape_for(parts[0]), parts[1]
    elif kind == "shape-member":
        shape, meta = sagemaker_model().shape_for(parts[0]).members[parts[1]], parts[2]
    else:
        raise KeyError(key)
    return list(shape.enum) if meta == "enum" else shape.metadata.get(meta)


def _read_cache(version: str) -> dict[str, Any]:
    """The facts the data folder holds for this botocore; {} when none, corrupt or stale."""
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("format") != _CACHE_FORMAT
        or data.get("botocore") != version
        or not isinstance(data.get("facts"), dict)
    ):
        return {}
    return dict(data["facts"])


def _write_cache(version: str, facts: dict[str, Any]) -> None:
    """Atomically; a folder that refuses is no error."""
    text = json.dumps({"format": _CACHE_FORMAT, "botocore": version, "facts": facts})
    path: Path | str = CACHE_NAME
    try:
        path = cache_path()  # makes the data folder, which may fail too
        write_atomic(path, text)
    except OSError as exc:
        log.debug("could not keep the SageMaker limits in %s: %s", path, exc)


def _fact(key: str, valid: Callable[[Any], bool]) -> Any:
    """A fact of the service model: from this process's copy, the data folder's cache, or the
    model itself (then every known fact is computed and the cache written again)."""
    home = os.environ.get("TRAINER_GUI_HOME", "")
    facts = _facts.get(home)
    if facts is not None and key in facts and valid(facts[key]):
        return facts[key]
    with _facts_lock:
        facts = _facts.get(home)
        if facts is None:
            facts = _facts[home] = _read_cache(botocore_version())
        if key in facts and valid(facts[key]):
            return facts[key]
        fresh = {k: _compute(k) for k in (*KNOWN_FACTS, key)}
        facts = _facts[home] = {**{k: v for k, v in facts.items() if k not in fresh}, **fresh}
        _write_cache(botocore_version(), facts)
        return facts[key]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_int_or_none(v: Any) -> bool:
    return v is None or _is_int(v)


def _is_str_or_none(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _member_key(path: tuple[str, ...], meta: str) -> str:
    return _SEP.join(("member", *path, meta))


def shape_fact(name: str, meta: str) -> int | None:
    """A numeric metadata value (`max`, `min`) of a named shape of the model."""
    value = _fact(_SEP.join(("shape", name, meta)), _is_int_or_none)
    return int(value) if value is not None else None


def shape_member_fact(name: str, member: str, meta: str) -> int | None:
    value = _fact(_SEP.join(("shape-member", name, member, meta)), _is_int_or_none)
    return int(value) if value is not None else None


def shape_enum(name: str) -> list[str]:
    return list(_fact(_SEP.join(("shape", name, "enum")), _is_str_list))


def max_of(*path: str) -> int:
    """The `max` the model gives the member at `path` (a count for lists/maps, else length)."""
    return int(_fact(_member_key(path, "max"), _is_int))


def min_of(*path: str) -> int:
    value = _fact(_member_key(path, "min"), _is_int_or_none)
    return int(value) if value is not None else 0


def pattern_of(*path: str) -> str | None:
    pattern = _fact(_member_key(path, "pattern"), _is_str_or_none)
    return str(pattern) if pattern is not None else None


@functools.lru_cache(maxsize=1)
def training_instance_types() -> frozenset[str]:
    """`ResourceConfig.InstanceType`'s enum: every type a training job may ask for."""
    return frozenset(_fact(_member_key(("ResourceConfig", "InstanceType"), "enum"), _is_str_list))


def max_hyperparameters() -> int:
    return max_of("HyperParameters")


def max_image_uri() -> int:
    return max_of("AlgorithmSpecification", "TrainingImage")


def instance_type_problem(instance_type: str) -> str | None:
    """Why SageMaker would refuse `instance_type` for training, or None."""
    known = training_instance_types()
    if instance_type in known:
        return None
    close = difflib.get_close_matches(instance_type, sorted(known), n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]}?" if close else " (e.g. ml.m5.xlarge)"
    return (
        f"{instance_type!r} is not a SageMaker training instance type{hint} "
        f"(botocore {botocore_version()} knows {len(known)})"
    )


# -- AWS patterns --------------------------------------------------------------------------------

_UNICODE_CLASS = re.compile(r"\\p\{(\w+)\}")
# The one shape of pattern these checks need char by char: "^?(?[ ...class... ]*)?$?".
_STARRED_CLASS = re.compile(r"^\^?\(?\[(?P<body>(?:\\.|\\p\{\w+\}|[^\]\\])*)\]\*\)?\$?$")


_Class = tuple[frozenset[str], frozenset[str], tuple[tuple[str, str], ...]]


@functools.lru_cache(maxsize=32)
def _starred_class(pattern: str) -> _Class:
    """(Unicode category prefixes, literal characters, ranges) of a `[...]*` pattern."""
    match = _STARRED_CLASS.match(pattern)
    if match is None:
        raise ValueError(pattern)
    body = match.group("body")
    categories: set[str] = set()
    literals: list[str] = []
    i = 0
    while i < len(body):
        unicode_class = _UNICODE_CLASS.match(body, i)
        if unicode_class:
            categories.add(unicode_class.group(1))
            i = unicode_class.end()
        elif body[i] == "\\":
            literals.append(body[i + 1])
            i += 2
        else:
            literals.append(body[i] if body[i] != "-" else "\0-")  # an unescaped '-': a range
            i += 1
    ranges: list[tuple[str, str]] = []
    chars: set[str] = set()
    j = 0
    while j < len(literals):
        if j + 2 < len(literals) and literals[j + 1] == "\0-":
            ranges.append((literals[j], literals[j + 2]))
            j += 3
        else:
            chars.add("-" if literals[j] == "\0-" else literals[j])
            j += 1
    return frozenset(categories), frozenset(chars), tuple(ranges)


def matches(pattern: str, value: str) -> bool:
    """Whether all of `value` matches an AWS (Java) pattern."""
    if "\\p{" not in pattern:
        return re.fullmatch(pattern, value, flags=re.DOTALL) is not None
    categories, chars, ranges = _starred_class(pattern)
    for ch in value:
        if ch in chars or any(low <= ch <= high for low, high in ranges):
            continue
        category = unicodedata.category(ch)
        if not any(category.startswith(c) for c in categories):
            return False
    return True


def string_problem(value: str, what: str, *path: str) -> str | None:
    """Length and pattern of a string member, checked as the service checks them."""
    low, high = min_of(*path), max_of(*path)
    if not low <= len(value) <= high:
        return f"{what} {_short(value)} is {len(value)} characters; SageMaker takes {low}-{high}"
    pattern = pattern_of(*path)
    if pattern and not matches(pattern, value):
        bad = next((ch for ch in value if not matches(pattern, ch)), None)
        which = f" ({bad!r} is not allowed)" if bad is not None else ""
        return f"{what} {_short(value)} has characters AWS refuses{which}"
    return None


def tag_problems(tags: dict[str, str]) -> list[str]:
    """Every reason CreateTrainingJob would refuse these tags."""
    problems = []
    most = max_of("Tags")
    if len(tags) > most:
        problems.append(f"{len(tags)} tags; SageMaker accepts at most {most}")
    allowed = "letters, digits, spaces and _ . : / = + - @"
    for key, value in tags.items():
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            problems.append(f"tag {_short(key)}: the {RESERVED_TAG_PREFIX} prefix is reserved")
            continue
        for problem in (
            string_problem(key, "tag key", "Tags", "[]", "Key"),
            string_problem(value, f"tag {_short(key)}: value", "Tags", "[]", "Value"),
        ):
            if problem:
                problems.append(problem + (f"; use {allowed}" if "refuses" in problem else ""))
    return problems


def _short(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 50 else text[:47] + "..."
