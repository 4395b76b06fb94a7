"""Project templates: ready-to-run starting points, the app's answer to JumpStart's examples.

A template is a folder of package data, `resources/templates/<name>/`: `template.yaml` (title,
description, backend, tags, and how to make the project), a job spec, `code/` with a SageMaker
script-mode `train.py` and `inference.py` handlers, and optionally a standard-library
`make_data.py` whose `generate(project_dir)` draws the data when the project is created, so no
dataset is shipped or downloaded.

`create_project` copies one into a new or empty folder and never writes anywhere else (every
write goes through the same gate as a run's folder, `core.safety.inside_run`); a folder with
anything in it is refused, so a template never overwrites a file. The "bring your SageMaker
script" template is different: it copies no code. It writes a `job.yaml` that points at the
user's existing folder as `source.source_dir`, which is only ever read (a run stages a copy).
"""

from __future__ import annotations

import ast
import csv
import logging
import math
import random
import re
import runpy
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainer_gui.core import safety
from trainer_gui.core.errors import UserError
from trainer_gui.core.paths import remove_tree, resource_path
from trainer_gui.core.spec import Backend, load_spec, spec_from_dict
from trainer_gui.core.spec.model import (
    CHANNEL_NAME_RE,
    JOB_NAME_RE,
    MAX_HYPERPARAMETERS,
    check_script_path,
)

log = logging.getLogger(__name__)

#: The templates' make_data.py scripts import these; naming them here makes a frozen bundle
#: (PyInstaller follows imports, not package data) carry them too.
_FOR_TEMPLATE_SCRIPTS = (csv, math, random)

TEMPLATE_FILE = "template.yaml"
#: Entry scripts tried, in order, when wrapping a folder without naming one.
ENTRY_GUESSES = ("train.py", "training.py", "main.py", "entry_point.py", "run.py")
#: argparse options that are SageMaker's paths or environment, not hyperparameters.
NOT_HYPERPARAMETERS = {
    "model-dir", "model_dir", "output-data-dir", "output_data_dir", "output-dir", "output_dir",
    "data-dir", "data_dir", "train", "training", "test", "validation", "val", "eval",
    "hosts", "current-host", "current_host", "num-gpus", "num_gpus", "checkpoint-dir",
    "checkpoint_dir", "checkpoint-path", "checkpoint_path",
}  # fmt: skip
#: Scanning a wrapped folder for SM_CHANNEL_* names stops after this many .py files / bytes.
SCAN_FILES = 200
SCAN_BYTES = 1 << 20
CHANNEL_ENV_RE = re.compile(r"SM_CHANNEL_([A-Z0-9_]+)")
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
#: What a wrapped script most likely prints (`loss: 0.3`, `val_loss=0.2`, `Accuracy = 0.9`);
#: `key=value` lines are picked up by the metrics parser anyway.
GENERIC_METRICS = [
    {"name": "loss", "regex": r"(?i)(?<![\w-])loss\s*[=:]\s*" + NUMBER},
    {
        "name": "val_loss",
        "regex": r"(?i)\b(?:val|valid|validation|test)[_ -]loss\s*[=:]\s*" + NUMBER,
    },
    {"name": "accuracy", "regex": r"(?i)(?<![\w-])acc(?:uracy)?\s*[=:]\s*" + NUMBER},
    {
        "name": "val_accuracy",
        "regex": r"(?i)\b(?:val|valid|validation|test)[_ -]acc(?:uracy)?\s*[=:]\s*" + NUMBER,
    },
]


class TemplateInfo(BaseModel):
    """template.yaml: what the gallery shows, and how a project is made from the folder."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1)
    backend: Backend
    tags: list[str] = Field(default_factory=list)
    order: int = 100
    spec: str = "job.yaml"
    generate: str | None = None
    wraps_folder: bool = False


@dataclass(frozen=True)
class Template:
    name: str
    folder: Path
    info: TemplateInfo

    @property
    def title(self) -> str:
        return self.info.title

    @property
    def description(self) -> str:
        return " ".join(self.info.description.split())

    @property
    def backend(self) -> str:
        return self.info.backend.value

    @property
    def tags(self) -> list[str]:
        return list(self.info.tags)

    @property
    def wraps_folder(self) -> bool:
        """The "bring your script" kind: needs an existing folder (and maybe an entry script)."""
        return self.info.wraps_folder


@dataclass
class CreatedProject:
    folder: Path
    spec_path: Path
    template: Template
    notes: list[str] = field(default_factory=list)


def templates_root() -> Path:
    return resource_path("templates")


def list_templates(root: Path | None = None) -> list[Template]:
    """Every template under `root` (the bundled ones by default), in gallery order.

    A folder whose template.yaml does not read is left out and logged: it is a packaging bug,
    and one broken template must not empty the gallery.
    """
    root = root or templates_root()
    found: list[Template] = []
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if (p / TEMPLATE_FILE).is_file()):
        try:
            data = yaml.safe_load((folder / TEMPLATE_FILE).read_text(encoding="utf-8"))
            found.append(Template(folder.name, folder, TemplateInfo.model_validate(data)))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            log.error("template %s is broken and left out: %s", folder, exc)
    return sorted(found, key=lambda t: (t.info.order, t.name))


def get_template(name: str, root: Path | None = None) -> Template:
    templates = list_templates(root)
    for template in templates:
        if template.name == name:
            return template
    known = ", ".join(t.name for t in templates) or "none are installed"
    raise UserError(f"no template named {name!r}; choose one of: {known}")


def check_destination(dest: str | Path) -> Path:
    """The folder a project may be created in: new, or an existing empty folder."""
    text = str(dest).strip()
    if not text:
        raise UserError("choose a folder for the new project")
    path = Path(text).expanduser()
    try:
        path = path.resolve()
        if path.exists() and not path.is_dir():
            raise UserError(f"{path} is a file; choose a new or empty folder for the project")
        if path.is_dir():
            entries = sorted(p.name for p in path.iterdir())
            if entries:
                shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
                raise UserError(
                    f"{path} is not empty ({len(entries)} entries: {shown}); a template never "
                    "writes over files, so choose a new or empty folder"
                )
    except OSError as exc:
        raise UserError(f"cannot use {path} for the project: {exc.strerror or exc}") from None
    return path


def job_name_from(text: str, fallback: str) -> str:
    """A valid job name made from a folder name, or the fallback."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:63].strip("-")
    return name if name and JOB_NAME_RE.match(name) else fallback


def create_project(
    template: str | Template,
    dest: str | Path,
    *,
    source: str | Path | None = None,
    entry_point: str | None = None,
    channels: Mapping[str, str | Path] | None = None,
    root: Path | None = None,
) -> CreatedProject:
    """Make a project from a template in `dest` (created, or empty); nothing else is written.

    `source`, `entry_point` and `channels` are for the folder-wrapping template only. On any
    failure what was written is removed again and a UserError says why.
    """
    tmpl = template if isinstance(template, Template) else get_template(template, root)
    if not tmpl.wraps_folder and (source is not None or entry_point or channels):
        raise UserError(
            f"the {tmpl.name} template brings its own code; --source, --entry-point and "
            "--channel are for the bring-your-script template"
        )
    folder = check_destination(dest)
    wrap: _Wrap | None = None
    if tmpl.wraps_folder:
        wrap = _plan_wrap(source, entry_point, channels or {}, folder)
    existed = folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {folder}: {exc.strerror or exc}") from None
    try:
        created = _fill(tmpl, folder, wrap)
    except BaseException:
        _undo(folder, existed)
        raise
    return created


def _fill(tmpl: Template, folder: Path, wrap: _Wrap | None) -> CreatedProject:
    notes: list[str] = []
    try:
        _copy_tree(tmpl.folder, folder)
    except OSError as exc:
        raise UserError(f"cannot copy the template into {folder}: {exc}") from None
    if tmpl.info.generate:
        _generate(tmpl, folder)
    spec_path = safety.inside_run(folder, folder / tmpl.info.spec)
    name = job_name_from(folder.name, tmpl.name)
    if wrap is not None:
        notes = _write_wrapped_spec(wrap, folder, spec_path, name)
    else:
        text = spec_path.read_text(encoding="utf-8")
        text = re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.MULTILINE)
        spec_path.write_text(text, encoding="utf-8")
    load_spec(spec_path)  # a template that does not validate is a bug: undone, and reported
    return CreatedProject(folder, spec_path, tmpl, notes)


def _copy_tree(source: Path, dest: Path) -> None:
    """The template's files (not template.yaml, caches or links) into dest, as new files."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if rel.parts[0] == TEMPLATE_FILE or "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        if path.is_symlink():
            continue
        target = safety.inside_run(dest, dest / rel)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)  # not the package's permissions: the user edits it


def _generate(tmpl: Template, folder: Path) -> None:
    """Run the template's `generate(project_dir)` in this process (works when frozen too)."""
    script = tmpl.folder / str(tmpl.info.generate)
    try:
        namespace = runpy.run_path(str(script), run_name=f"trainer_gui_template_{tmpl.name}")
        namespace["generate"](folder)
    except Exception as exc:
        log.exception("making the data of template %s failed", tmpl.name)
        raise UserError(
            f"making the {tmpl.name} data failed: {type(exc).__name__}: {exc}"
        ) from None


def _undo(folder: Path, existed: bool) -> None:
    """Remove what create_project wrote: the folder it made, or what it put in the empty one."""
    if not existed:
        remove_tree(folder, "a half-made project")
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            remove_tree(child, "a half-made project")
        else:
            child.unlink()


# -- bring your SageMaker script ------------------------------------------------------------------


@dataclass
class _Wrap:
    source: Path
    entry_point: str
    channels: dict[str, Path]
    empty_channels: list[str]
    hyperparameters: dict[str, Any]


def _plan_wrap(
    source: str | Path | None,
    entry_point: str | None,
    channels: Mapping[str, str | Path],
    folder: Path,
) -> _Wrap:
    """Check the user's folder and work out the spec, before anything is written."""
    if source is None or not str(source).strip():
        raise UserError(
            "the bring-your-script template needs the folder with your training script "
            "(--source FOLDER)"
        )
    src = Path(str(source).strip()).expanduser().resolve()
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; give the folder that holds your training script")
    if folder == src or folder.is_relative_to(src):
        raise UserError(
            f"{folder} is inside your script folder {src}; the project goes elsewhere so your "
            "folder is never changed (and not copied into itself at each run)"
        )
    entry = _entry_point(src, entry_point)
    given: dict[str, Path] = {}
    for name, path in channels.items():
        if not CHANNEL_NAME_RE.fullmatch(name) or name in (".", ".."):
            raise UserError(f"channel name {name!r}: use letters, digits, '.', '-' or '_'")
        data = Path(str(path)).expanduser().resolve()
        if not data.exists():
            raise UserError(f"channel {name}: {data} does not exist")
        given[name] = data
    seen = _channel_names(src)
    empty = [c for c in seen if c not in given]
    return _Wrap(src, entry, given, empty, _argparse_defaults(src / entry))


def _entry_point(src: Path, entry_point: str | None) -> str:
    if entry_point and entry_point.strip():
        entry = entry_point.strip()
        try:
            check_script_path(entry, "entry script", "source folder")
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if not (src / entry).is_file():
            raise UserError(f"entry script {entry!r} is not in {src}")
        return entry
    for guess in ENTRY_GUESSES:
        if (src / guess).is_file():
            return guess
    scripts = sorted(p.name for p in src.glob("*.py"))
    if len(scripts) == 1:
        return scripts[0]
    listed = f"one of {', '.join(scripts[:8])}" if scripts else "none found at its top level"
    raise UserError(f"name the entry script in {src} (--entry-point): {listed}")


def _channel_names(src: Path) -> list[str]:
    """Channels the code reads (SM_CHANNEL_TRAIN -> train), in the order first seen."""
    names: list[str] = []
    for count, path in enumerate(sorted(src.rglob("*.py"))):
        if count >= SCAN_FILES:
            break
        try:
            with path.open("rb") as fh:
                text = fh.read(SCAN_BYTES).decode("utf-8", errors="replace")
        except OSError:
            continue
        for match in CHANNEL_ENV_RE.finditer(text):
            name = match.group(1).lower()
            if name and name not in names:
                names.append(name)
    return names


def _argparse_defaults(script: Path) -> dict[str, Any]:
    """`add_argument("--epochs", type=int, default=10)` -> {"epochs": 10}, literals only."""
    try:
        tree = ast.parse(script.read_bytes()[: SCAN_BYTES * 4])
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, Any] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            continue
        options = [
            a.value
            for a in node.args
            if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")
        ]
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if not options or "default" not in keywords or "action" in keywords:
            continue
        try:
            value = ast.literal_eval(keywords["default"])
        except ValueError:
            continue  # os.environ[...] and the like: SageMaker's environment, not a value
        key = options[0][2:]
        if (
            value is None
            or isinstance(value, bool)
            or not isinstance(value, (int, float, str))
            or key in NOT_HYPERPARAMETERS
            or key.startswith("sagemaker_")
        ):
            continue
        found.setdefault(key, value)
        if len(found) >= MAX_HYPERPARAMETERS:
            break
    return found


def _write_wrapped_spec(wrap: _Wrap, folder: Path, spec_path: Path, name: str) -> list[str]:
    notes: list[str] = []
    channels: list[dict[str, str]] = [
        {"name": channel, "source": str(path)} for channel, path in wrap.channels.items()
    ]
    for channel in wrap.empty_channels:
        safety.inside_run(folder, folder / "data" / channel).mkdir(parents=True, exist_ok=True)
        channels.append({"name": channel, "source": f"data/{channel}"})
        notes.append(
            f"your code reads SM_CHANNEL_{channel.upper()}: put that data in data/{channel}/ "
            "(or point the channel at your own folder or an s3:// URI)"
        )
    if wrap.hyperparameters:
        notes.append(
            "hyperparameters start at your script's argparse defaults: "
            + ", ".join(f"{k}={v}" for k, v in wrap.hyperparameters.items())
        )
    data: dict[str, Any] = {
        "name": name,
        "description": f"Your SageMaker script {wrap.entry_point} in {wrap.source}, run as it "
        "is. The folder is only read: every run copies it.",
        "source": {"source_dir": str(wrap.source), "entry_point": wrap.entry_point},
        "compute": {"backend": "local-process", "instance_type": "ml.m5.large"},
        "channels": channels,
        "hyperparameters": wrap.hyperparameters,
        "metric_definitions": GENERIC_METRICS,
        "max_runtime_seconds": 3600,
    }
    spec_from_dict(data, base_dir=folder, source=str(spec_path))  # checked before it is written
    header = (
        "# Made by `trainer-gui new --template bring-your-script`. Your folder is the source;\n"
        "# nothing writes to it. Edit the channels, hyperparameters and metric regexes to fit.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    safety.inside_run(folder, spec_path).write_text(header + body, encoding="utf-8")
    return notes
