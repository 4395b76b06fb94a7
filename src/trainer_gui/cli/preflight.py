"""`trainer-gui preflight SPEC`, and the preflight `trainer-gui run` does before a SageMaker launch.

A failed preflight refuses the launch with its reason; `--force` launches anyway and
`--no-preflight` skips it (services/preflight.py runs it, core/preflight.py says how)."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, NamedTuple, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable

    from trainer_gui.core.preflight import PreflightLimits, PreflightResult
    from trainer_gui.core.spec import JobSpec
    from trainer_gui.services.api import Jobs


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    from trainer_gui.core.preflight_limits import (
        DEFAULT_MAX_FILES,
        DEFAULT_MAX_MB,
        DEFAULT_TIME_LIMIT,
    )

    parser.add_argument(
        "--preflight-files",
        type=int,
        default=DEFAULT_MAX_FILES,
        metavar="N",
        help=f"preflight: the first N files of each channel (default {DEFAULT_MAX_FILES})",
    )
    parser.add_argument(
        "--preflight-mb",
        type=float,
        default=DEFAULT_MAX_MB,
        metavar="MB",
        help=f"preflight: at most this much of each channel (default {DEFAULT_MAX_MB:g})",
    )
    parser.add_argument(
        "--preflight-time",
        type=float,
        default=DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help=f"preflight: time limit (default {DEFAULT_TIME_LIMIT:g})",
    )


def add_run_flags(run: argparse.ArgumentParser) -> None:
    """`run`'s flags: a SageMaker launch is preflighted unless told otherwise."""
    run.add_argument(
        "--no-preflight",
        action="store_true",
        help="sagemaker: launch without first running the job locally on a slice of its data",
    )
    run.add_argument(
        "--force", action="store_true", help="sagemaker: launch even if the preflight fails"
    )
    add_limit_flags(run)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "preflight",
        help="run a SageMaker spec locally on a slice of its data, until its first metric and "
        "checkpoint",
        description="Runs the spec here (in its image with Docker where it can, else as a local "
        "process) on the first files of each channel, until the first metric and a checkpoint "
        "write or the time limit, then stops it. `run` does this before every SageMaker launch.",
    )
    parser.add_argument("spec", help="job spec YAML file")
    parser.add_argument("--python", help="interpreter when it runs as a local process")
    add_limit_flags(parser)
    return parser


def limits_of(args: argparse.Namespace) -> PreflightLimits:
    from trainer_gui.core.preflight import PreflightLimits

    return PreflightLimits(
        max_files=args.preflight_files, max_mb=args.preflight_mb, time_limit=args.preflight_time
    )


def _printer(out: TextIO) -> Callable[[str], None]:
    """Progress lines, once per stage (not once per second of waiting)."""
    last = [""]

    def say(text: str) -> None:
        stage = re.sub(r"\s*\d+ s$", "", text)
        if stage != last[0]:
            last[0] = stage
            out.write(text + "\n")
            out.flush()

    return say


def run_and_report(
    service: Jobs, spec: JobSpec, args: argparse.Namespace, out: TextIO
) -> PreflightResult:
    from trainer_gui.services.preflight import run_preflight

    result = run_preflight(
        service,
        spec,
        python=getattr(args, "python", None),
        limits=limits_of(args),
        progress=_printer(out),
    )
    out.write(result.summary() + "\n")
    out.flush()
    return result


class Gate(NamedTuple):
    """The preflight's say on a launch: go ahead (linking `result` when there is one) or not.

    (A NamedTuple: `dataclasses` would cost `run`, which imports this module, ~8 ms of start.)
    """

    go: bool
    result: PreflightResult | None = None


def gate(service: Jobs, spec: JobSpec, args: argparse.Namespace, out: TextIO) -> Gate:
    """Preflight a SageMaker launch unless `--no-preflight`; a failure stops it unless
    `--force`."""
    from trainer_gui.core.spec.model import Backend  # pydantic: not for `--help`

    if spec.compute.backend is not Backend.SAGEMAKER or args.no_preflight:
        return Gate(True)
    result = run_and_report(service, spec, args, out)
    if result.ok:
        return Gate(True, result)
    if args.force:
        out.write("Launching anyway (--force).\n")
        return Gate(True, result)
    out.write(
        f"Not launched on SageMaker: the preflight failed: {result.reason}\n"
        "Fix it and run again, or launch anyway with --force (--no-preflight skips the check).\n"
    )
    return Gate(False, result)


def cmd_preflight(args: argparse.Namespace) -> int:
    import sys

    from trainer_gui.cli.main import _service
    from trainer_gui.core.spec import load_spec

    spec = load_spec(args.spec)
    service = _service()
    try:
        result = run_and_report(service, spec, args, sys.stdout)
    finally:
        service.shutdown()
    return 0 if result.ok else 1
