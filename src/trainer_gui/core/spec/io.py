"""YAML/JSON in and out for job specs, with errors that name the field and the fix."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from trainer_gui.core.errors import SpecError
from trainer_gui.core.spec.model import JobSpec

log = logging.getLogger(__name__)


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
    for err in exc.errors(include_url=False):
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
    return lines


def spec_from_dict(
    data: Mapping[str, Any], base_dir: Path | None = None, source: str | None = None
) -> JobSpec:
    """Validate a mapping into a spec; relative paths are checked against `base_dir`."""
    if not isinstance(data, Mapping):
        raise SpecError(["the spec must be a mapping of fields (name:, source:, ...)"], source)
    try:
        spec = JobSpec.model_validate(dict(data), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc), source) from None
    return spec.with_base_dir(base_dir)


def load_spec(path: str | Path) -> JobSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"no such file: {path}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"cannot read {path}: {exc}"]) from None
    return spec_from_text(text, base_dir=path.resolve().parent, source=str(path))


def spec_from_text(text: str, base_dir: Path | None = None, source: str | None = None) -> JobSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([f"not valid YAML{where}: {problem}"], source) from None
    if data is None:
        raise SpecError(["the file is empty; a spec needs at least name: and source:"], source)
    return spec_from_dict(data, base_dir=base_dir, source=source)


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """Plain data with defaults left out, so saved files stay short and readable."""
    return spec.model_dump(mode="json", exclude_defaults=True)


def dump_spec(spec: JobSpec) -> str:
    return yaml.safe_dump(spec_to_dict(spec), sort_keys=False, allow_unicode=True)


def save_spec(spec: JobSpec, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dump_spec(spec), encoding="utf-8")
    tmp.replace(path)
    return path


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
    """A JSON or YAML mapping of hyperparameters."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([f"hyperparameters_file: cannot read {path}: {exc}"]) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError([f"hyperparameters_file: {path} is not valid JSON/YAML: {exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError([f"hyperparameters_file: {path} must hold a mapping of name: value"])
    from trainer_gui.core.spec.model import check_hyperparameters

    try:
        check_hyperparameters(data)
    except ValueError as exc:
        raise SpecError([f"hyperparameters_file: {exc}"]) from None
    return {str(k): v for k, v in data.items()}
