"""`trainer-gui new`: a project from a template (core/templates.py), or the list of templates."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import TextIO

from trainer_gui.core.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    new = sub.add_parser(
        "new",
        help="a new project from a template (--list shows them)",
        description="Create a project from a template in a new or empty folder. "
        "The bring-your-script template wraps a folder you already have instead.",
    )
    new.add_argument("folder", nargs="?", help="the project folder to create (new or empty)")
    new.add_argument("--template", "-t", metavar="NAME", help="which template (see --list)")
    new.add_argument("--list", action="store_true", help="list the templates and exit")
    new.add_argument(
        "--source",
        metavar="FOLDER",
        help="bring-your-script: the folder with your SageMaker training script (only read)",
    )
    new.add_argument(
        "--entry-point",
        metavar="SCRIPT",
        help="bring-your-script: the script to run in that folder (default: train.py, main.py, "
        "or the only .py file)",
    )
    new.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="bring-your-script: an input channel and its data folder (repeatable)",
    )
    return new


def _channels(values: list[str]) -> dict[str, str]:
    channels: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UserError(f"--channel {value!r}: write NAME=PATH, e.g. --channel train=data/")
        channels[name.strip()] = path.strip()
    return channels


def print_templates(out: TextIO) -> None:
    from trainer_gui.core.templates import list_templates

    templates = list_templates()
    if not templates:
        out.write("No templates are installed.\n")
        return
    width = max(len(t.name) for t in templates)
    for t in templates:
        out.write(f"{t.name:<{width}}  {t.title}  [{t.backend}]\n")
        for line in textwrap.wrap(t.description, 96 - width):
            out.write(f"{'':<{width}}    {line}\n")
    out.write("\nCreate one with: trainer-gui new --template NAME FOLDER\n")


def cmd_new(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from trainer_gui.core.templates import create_project

    out = out or sys.stdout
    if args.list:
        print_templates(out)
        return 0
    if not args.template:
        raise UserError("name a template: trainer-gui new --template NAME FOLDER (see --list)")
    if not args.folder:
        raise UserError(
            f"name the folder for the new project: trainer-gui new -t {args.template} FOLDER"
        )
    created = create_project(
        args.template,
        args.folder,
        source=args.source,
        entry_point=args.entry_point,
        channels=_channels(args.channel),
    )
    out.write(f"Created {created.folder} from the {created.template.name} template.\n")
    for note in created.notes:
        out.write(f"  - {note}\n")
    out.write(f"Run it:  trainer-gui run {created.spec_path}\n")
    out.write(f"Open it: trainer-gui gui {created.folder}\n")
    return 0
