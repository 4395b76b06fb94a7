"""YAML/JSON in and out for job specs, with errors that name the field and the fix."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from trainer_gui.core.atomic import write_atomic
from trainer_gui.core.errors import SpecError
from trainer_gui.core.spec.model import JobSpec

log = logging.getLogger(__name__)

# A job spec is a few KB; these bounds are far above any real one and far below what hurts.
# SageMaker's own limits (100 hyperparameters of 2.5 KB, 100 variables, 20 channels, ...) keep a
# spec under ~400 KB; PyYAML reads ~200 KB/s, so this also bounds the time a file can take.
MAX_SPEC_BYTES = 512 * 1024
MAX_VALUES = 100_000  # scalars, lists and mappings, counted with every alias expanded
MAX_DEPTH = 50  # nesting of lists and mappings, aliases expanded
MAX_INT_DIGITS = 4000  # below Python's int/str conversion limit (4300)
MAX_LINE = 300  # a problem line longer than this is cut (a 5,000-char path is not read whole)

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(yaml.YAMLError):
    """Input refused before it is turned into Python objects (too big, too deep, a loop)."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that measures the node graph while composing it.

    Aliases make the graph a DAG whose expansion can be exponential (a 590-byte "billion laughs"
    file): each node's expanded size and depth are known from its children's the moment it is
    composed, so such a file is refused before one Python object is built. Duplicate keys and
    numbers Python cannot convert are refused with their line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nesting = 0
        self._composed = 0
        self._measures: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) expanded

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        is_alias = isinstance(event, yaml.AliasEvent)
        self._nesting += 1
        try:
            if self._nesting > MAX_DEPTH:
                raise _Refused(
                    f"the YAML nests more than {MAX_DEPTH} levels deep", event.start_mark
                )
            self._composed += 1
            if self._composed > MAX_VALUES:
                raise _Refused(f"the YAML holds more than {MAX_VALUES:,} values", event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._nesting -= 1
        if node is not None and id(node) not in self._measures:
            if is_alias:
                raise _Refused(
                    "an alias (*name) refers to a list or mapping that holds it", event.start_mark
                )
            self._measure(node)
        return node

    def _measure(self, node: Node) -> None:
        if isinstance(node, ScalarNode):
            if _has_surrogate(node.value):
                raise _Refused(
                    "a string holds a lone surrogate (e.g. \\uD800), which is not text; remove it",
                    node.start_mark,
                )
            self._measures[id(node)] = (1, 1)
            return
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                children += [key, value]
        values, depth = 1, 1
        for child in children:
            child_values, child_depth = self._measures[id(child)]
            values += child_values
            depth = max(depth, child_depth + 1)
        if values > MAX_VALUES:
            raise _Refused(
                f"the YAML holds more than {MAX_VALUES:,} values once its aliases (*name) "
                "are expanded",
                node.start_mark,
            )
        if depth > MAX_DEPTH:
            raise _Refused(
                f"the YAML nests more than {MAX_DEPTH} levels deep once its aliases are expanded",
                node.start_mark,
            )
        self._measures[id(node)] = (values, depth)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable; the base class names that
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"the key {_short(key)} appears twice (lines {first} and {line}); keep one",
                        key_node.start_mark,
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = sum(ch.isdigit() for ch in node.value)
        if digits > MAX_INT_DIGITS:
            raise _Refused(
                f"a number with {digits:,} digits; at most {MAX_INT_DIGITS:,} (quote it to keep "
                "it as text)",
                node.start_mark,
            )
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # !!int abc
            raise _Refused(f"{_short(node.value)} is not a whole number", node.start_mark) from None

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:  # 2001-13-45 matches the pattern but is no date
            raise _Refused(
                f"{_short(node.value)} is not a date: {exc} (quote it to keep it as text)",
                node.start_mark,
            ) from None


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)
_SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", _SpecLoader.construct_yaml_timestamp)


def _short(value: Any) -> str:
    """A value as it reads in a message: repr (which escapes control chars), cut when long."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**100 else "(a huge number)"
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    """A problem line fit for any terminal: one line, printable, not too long."""
    text = text[: MAX_LINE * 2].encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."


def _spec_error(problems: list[str], source: str | None) -> SpecError:
    return SpecError(
        [_one_line(p) for p in problems], _one_line(source) if source is not None else None
    )


def _check_plain_data(data: Any) -> list[str]:
    """Problems in plain data that pydantic or Python would fail on other than cleanly.

    Data from `_SpecLoader` already passed; data from elsewhere (forms, imports, code) is walked
    here with the same bounds: size and depth (a cycle exceeds both), lone surrogates, huge ints.
    """
    problems: list[str] = []
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    seen = 0
    max_bits = int(MAX_INT_DIGITS * 3.32)
    while stack and not problems:
        value, depth, where = stack.pop()
        seen += 1
        at = f"{where}: " if where else ""
        if seen > MAX_VALUES:
            return [f"the spec holds more than {MAX_VALUES:,} values"]
        if depth > MAX_DEPTH:
            problems.append(f"{at}nested more than {MAX_DEPTH} levels deep")
        elif isinstance(value, str):
            if _has_surrogate(value):
                problems.append(f"{at}a string holds a lone surrogate (e.g. \\uD800); remove it")
        elif isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > max_bits:
                problems.append(f"{at}a number with more than {MAX_INT_DIGITS:,} digits")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                name = key if isinstance(key, str) else _short(key)
                path = f"{where}.{name}" if where else str(name)
                stack.append((key, depth + 1, path))
                stack.append((item, depth + 1, path))
        elif isinstance(value, (list, tuple, set, frozenset)):
            for i, item in enumerate(value):
                stack.append((item, depth + 1, f"{where}[{i}]"))
    return problems


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem: `field.path: what is wrong and how to fix it`."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = _loc_to_path(tuple(err.get("loc", ())))
        msg = err.get("msg", "invalid")
        msg = msg.removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif err.get("type") == "missing":
            msg = "required; add it"
        if msg.startswith(where + ":"):
            lines.append(msg)
        else:
            lines.append(f"{where}: {msg}" if where else msg)
    return [_one_line(line) for line in lines]


def spec_from_dict(
    data: Mapping[str, Any], base_dir: Path | None = None, source: str | None = None
) -> JobSpec:
    """Validate a mapping into a spec; relative paths are checked against `base_dir`.

    Any input gives a spec or a `SpecError` whose lines name the problem, never another error.
    """
    if not isinstance(data, Mapping):
        raise _spec_error(["the spec must be a mapping of fields (name:, source:, ...)"], source)
    problems = _check_plain_data(data)
    if problems:
        raise _spec_error(problems, source)
    try:
        spec = JobSpec.model_validate(dict(data), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _spec_error(format_validation_error(exc), source) from None
    except Exception as exc:  # a check that failed other than by ValueError: a bug, but the
        # user still gets a line, and the traceback goes to the log
        log.error("spec validation raised %s", type(exc).__name__, exc_info=True)
        problem = f"the spec cannot be checked: {type(exc).__name__}: {exc}"
        raise _spec_error([problem], source) from None
    return spec.with_base_dir(base_dir)


def load_spec(path: str | Path) -> JobSpec:
    path = Path(path)
    text = _read_spec_text(path)
    try:
        base_dir = path.resolve().parent
    except (OSError, RuntimeError) as exc:
        raise _spec_error([f"cannot read {path}: {exc}"], None) from None
    return spec_from_text(text, base_dir=base_dir, source=str(path))


def read_spec_data(path: str | Path) -> Any:
    """A spec file's plain data, not yet validated (the form shows its problems inline)."""
    path = Path(path)
    return parse_spec_yaml(_read_spec_text(path), str(path))


def _read_spec_text(path: Path) -> str:
    """The file's text, read no further than the size limit (`/dev/zero` is refused too)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise _spec_error([f"no such file: {path}"], None) from None
    except OSError as exc:
        raise _spec_error([f"cannot read {path}: {exc}"], None) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise _spec_error([_too_big()], str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _spec_error([f"cannot read {path}: not UTF-8 text ({exc.reason})"], None) from None


def _too_big() -> str:
    return f"the file is larger than {MAX_SPEC_BYTES // 1024} KiB; a job spec is a few KB"


def parse_spec_yaml(text: str, source: str | None = None) -> Any:
    """YAML text to plain data, refusing what no spec needs before it costs time or memory.

    Size, nesting and alias expansion are bounded while the YAML is composed; duplicate keys,
    unconvertible numbers and lone surrogates are refused with their line.
    """
    if len(text) > MAX_SPEC_BYTES:
        raise _spec_error([_too_big()], source)
    try:
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader subclass
    except _Refused as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise _spec_error([f"refused{where}: {exc.problem}"], source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # a ReaderError has no problem, and its str() goes on with '  in "<unicode string>"'
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
        raise _spec_error([f"not valid YAML{where}: {problem}"], source) from None
    except Exception as exc:  # PyYAML lets some constructor errors through as they are
        log.warning("YAML load raised %s", type(exc).__name__, exc_info=True)
        raise _spec_error([f"not valid YAML: {type(exc).__name__}: {exc}"], source) from None


def spec_from_text(text: str, base_dir: Path | None = None, source: str | None = None) -> JobSpec:
    data = parse_spec_yaml(text, source)
    if data is None:
        raise _spec_error(["the file is empty; a spec needs at least name: and source:"], source)
    return spec_from_dict(data, base_dir=base_dir, source=source)


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """Plain data with defaults left out, so saved files stay short and readable."""
    return spec.model_dump(mode="json", exclude_defaults=True)


def dump_spec(spec: JobSpec) -> str:
    return yaml.safe_dump(spec_to_dict(spec), sort_keys=False, allow_unicode=True)


def save_spec(spec: JobSpec, path: str | Path) -> Path:
    """Write the spec as YAML; over a spec file, only what changed is rewritten.

    People comment their spec files and order their keys; a save from the form keeps the
    comments, the order and the spelling of every value that did not change (ruamel.yaml's
    round trip), and writes a fresh file only where the old one is no valid spec.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, _updated_yaml(spec, path) or dump_spec(spec))


def _updated_yaml(spec: JobSpec, path: Path) -> str | None:
    """The YAML of the spec file at `path` with `spec`'s values put in, or None."""
    try:
        old = load_spec(path)  # bounded and checked before the round-trip parser sees the text
        text = path.read_text(encoding="utf-8")
    except (SpecError, OSError):
        return None
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    rt = YAML()
    rt.preserve_quotes = True
    try:
        doc = rt.load(text)
    except Exception as exc:  # PyYAML read it; a file ruamel cannot is written afresh
        log.info("rewriting %s without its comments: %s", path, exc)
        return None
    if not isinstance(doc, CommentedMap):
        return None
    new_full = spec.model_dump(mode="json")
    _put_changes(doc, old.model_dump(mode="json"), new_full, spec_to_dict(spec), CommentedMap)
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def _put_changes(
    node: Any, old: dict[str, Any], new: dict[str, Any], short: dict[str, Any], mapping: type
) -> None:
    """Change `node` (the file's mapping) where `new` differs from `old` (both whole dumps).

    A key whose value did not change keeps the file's node as written (shorthand, quotes,
    comments); a changed one gets the short form (defaults left out), or the default itself
    where the file named the key; a key the spec no longer has (or an alias) goes.
    """
    for key in list(node):
        if key not in new:
            del node[key]
        elif old.get(key) == new[key]:
            continue
        elif (
            isinstance(node[key], mapping)
            and isinstance(old.get(key), dict)
            and isinstance(new[key], dict)
        ):
            _put_changes(node[key], old[key], new[key], short.get(key) or {}, mapping)
        else:
            node[key] = short.get(key, new[key])
    for key, value in short.items():
        if key not in node:
            node[key] = value


def apply_overrides(spec: JobSpec, overrides: list[str]) -> JobSpec:
    """Apply `key=value` overrides (CLI --set); dotted keys reach nested fields.

    A bare key that is not a spec field is taken as a hyperparameter; values are parsed as YAML
    scalars so `epochs=3` is an int and `lr=1e-3` a float.
    """
    data = spec_to_dict(spec)
    top_fields = set(JobSpec.model_fields)
    for item in overrides:
        if "=" not in item:
            raise SpecError([f"--set {item!r}: use key=value, e.g. --set epochs=3"])
        key, raw = item.split("=", 1)
        key = key.strip()
        value = parse_scalar(raw)
        parts = key.split(".")
        if parts[0] not in top_fields:
            parts = ["hyperparameters", *parts]
        node: dict[str, Any] = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError([f"--set {key}: {part} is not a group of fields"])
            node = child
        node[parts[-1]] = value
    return spec_from_dict(data, base_dir=spec.base_dir)


def parse_scalar(raw: str) -> Any:
    """`3` -> 3, `1e-3` -> 0.001 (YAML 1.1 would keep that a string), `[1, 2]` -> list, else str."""
    text = raw.strip()
    if not text:
        return ""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return raw


def load_hyperparameters_file(path: Path) -> dict[str, Any]:
    """A JSON or YAML mapping of hyperparameters, read with the spec file's bounds."""
    where = "hyperparameters_file"
    try:
        text = _read_spec_text(path)
    except SpecError as exc:
        raise _spec_error([f"{where}: {p}" for p in exc.problems], None) from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, 5,000-digit ints, depth
            problem = f"{where}: {path} is not valid JSON: {exc}"
            raise _spec_error([problem], None) from None
        problems = _check_plain_data(data)
        if problems:
            raise _spec_error([f"{where}: {path}: {p}" for p in problems], None)
    else:
        try:
            data = parse_spec_yaml(text)
        except SpecError as exc:
            raise _spec_error([f"{where}: {path}: {p}" for p in exc.problems], None) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _spec_error([f"{where}: {path} must hold a mapping of name: value"], None)
    from trainer_gui.core.spec.model import check_hyperparameters

    try:
        check_hyperparameters(data)
    except ValueError as exc:
        raise _spec_error([f"{where}: {exc}"], None) from None
    return {str(k): v for k, v in data.items()}
