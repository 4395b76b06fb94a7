"""CreateTrainingJob's limits as the service states them: botocore's SageMaker service model.

Read from the installed botocore (the request shapes' min/max/pattern/enum), not written out by
hand, so they follow the service as botocore is updated. Loaded once, on first use (~0.1 s).

AWS writes its patterns in Java's regex dialect; the one feature Python's `re` lacks that the
shapes use here, Unicode classes such as `\\p{L}` inside a character class (tag keys and
values), is checked character by character with `unicodedata`.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from typing import Any

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
    import botocore

    return str(botocore.__version__)


def max_of(*path: str) -> int:
    """The `max` the model gives the member at `path` (a count for lists/maps, else length)."""
    return int(_member(*path).metadata["max"])


def min_of(*path: str) -> int:
    return int(_member(*path).metadata.get("min", 0))


def pattern_of(*path: str) -> str | None:
    pattern = _member(*path).metadata.get("pattern")
    return str(pattern) if pattern is not None else None


@functools.lru_cache(maxsize=1)
def training_instance_types() -> frozenset[str]:
    """`ResourceConfig.InstanceType`'s enum: every type a training job may ask for."""
    return frozenset(_member("ResourceConfig", "InstanceType").enum)


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
