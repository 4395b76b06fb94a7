"""`trainer-gui`: the headless face of the app. Same core as the window.

Bad input gets one clear line and exit code 2; nothing a user does prints a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from trainer_gui.cli import thin_run
from trainer_gui.cli.preflight import add_run_flags as add_preflight_flags
from trainer_gui.cli.thin_run import (
    EXIT_DETACHED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    LinePrinter,
    detached_text,
    duration,
    exit_code,
    fmt_value,
    summary_text,
)
from trainer_gui.core.errors import UserError

if TYPE_CHECKING:
    from trainer_gui.core.aws.session import AwsSession
    from trainer_gui.core.runners.events import AnyEvent
    from trainer_gui.core.serving.launcher import EndpointLauncher, StartProgress
    from trainer_gui.core.store import JobRecord, Store
    from trainer_gui.services.api import Jobs

EXIT_USAGE = 2
__all__ = ["EXIT_DETACHED", "EXIT_FAILED", "EXIT_OK", "EXIT_STOPPED", "EXIT_USAGE", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with `only="run"` the `run` command alone (what `run`
    parses: the other commands' parsers cost its start-up time)."""
    parser = _Parser(
        prog="trainer-gui",
        description="Train PyTorch models on this machine, in local Docker, or on SageMaker. "
        "With no command, opens the app.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    gui = sub.add_parser("gui", help="open the app (the default)")
    gui.add_argument("project", nargs="?", help="a project folder to open")
    gui.add_argument("--example", action="store_true", help="open the bundled example project")

    run = sub.add_parser("run", help="run a job spec and follow it live")
    run.add_argument("spec", help="job spec YAML file")
    run.add_argument(
        "--backend",
        choices=["local-process", "docker", "sagemaker"],
        help="override compute.backend",
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field (compute.instance_count=2) or a hyperparameter (epochs=3)",
    )
    run.add_argument("--python", help="interpreter for the local-process backend")
    run.add_argument("--detach", action="store_true", help="start the job and return")
    run.add_argument("--quiet", "-q", action="store_true", help="no log lines, only metrics")
    add_preflight_flags(run)
    if only == "run":
        return parser

    jobs = sub.add_parser("jobs", help="list jobs")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--active", action="store_true", help="only jobs still running")

    logs = sub.add_parser("logs", help="print a job's logs")
    logs.add_argument("job", help="job id, name (newest) or id prefix")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    logs.add_argument("--host", help="only this host (algo-1, ...)")

    stop = sub.add_parser("stop", help="stop a running job")
    stop.add_argument("job")

    show = sub.add_parser("show", help="a job's status history, metrics and artifacts")
    show.add_argument("job")

    images = sub.add_parser("images", help="build or list the training and inference images")
    images_sub = images.add_subparsers(dest="images_command", parser_class=_Parser)
    build = images_sub.add_parser("build", help="build an image (train-cpu, train-gpu, inference)")
    build.add_argument("kind", choices=["train-cpu", "train-gpu", "inference"])
    build.add_argument("--base-image", help="base image (default: a public Python/CUDA image)")
    build.add_argument("--wheelhouse", help="folder of wheels to install offline")
    build.add_argument("--tag", help="image tag (default: trainer-gui/<kind>:latest)")
    build.add_argument("--no-cache", action="store_true")
    build.add_argument("--verbose", "-v", action="store_true", help="print every build line")
    images_sub.add_parser("list", help="which images are present")

    spec = sub.add_parser("spec", help="work with job spec files")
    spec_sub = spec.add_subparsers(dest="spec_command", parser_class=_Parser)
    validate = spec_sub.add_parser("validate", help="check a spec and print what is wrong")
    validate.add_argument("spec")
    _add_sagemaker_commands(sub)
    _add_serving_commands(sub)
    from trainer_gui.cli import new, preflight, queue, sweep

    new.add_parser(sub)
    queue.add_parser(sub)
    sweep.add_parser(sub)
    preflight.add_parser(sub)
    return parser


class _Version(argparse.Action):
    """--version, with the version read only when asked (importlib.metadata is slow to load)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from trainer_gui import __version__

        sys.stdout.write(f"trainer-gui {__version__}\n")
        parser.exit()


# -- helpers --------------------------------------------------------------------------------------


def _service() -> Jobs:
    """The job host's client (the host owns every job and outlives this command), or this
    process when `TRAINER_GUI_JOB_HOST=0` says so."""
    from trainer_gui.core.store import Store
    from trainer_gui.services.job_host import make_job_service

    return make_job_service(Store())


def _printing(printer: _Printer) -> Callable[[Any], None]:
    """A listener that hands `printer` the events (the job host sends lines and samples in
    columns)."""
    from trainer_gui.services.live_data import as_batches

    def listen(event: Any) -> None:
        printer(as_batches(event))

    return listen


_duration = duration
_fmt_value = fmt_value


class _Printer:
    """Turns job events into terminal lines (thin_run.py `LinePrinter`, which the thin `run`
    prints with too); called from runner threads, so it locks.

    It subscribes after the submit, so on the job's first event the phases the job passed
    before that are read from `store` (the app's store when None) and print first."""

    def __init__(self, job_id: str, out: TextIO, quiet: bool, store: Store | None = None) -> None:
        self.job_id = job_id
        self.store = store
        self.lines = LinePrinter(job_id, out, quiet)
        self._caught_up = quiet

    def _catch_up(self) -> None:
        from trainer_gui.core.store import Store

        self._caught_up = True
        try:
            if self.store is not None:
                entries = self.store.phases(self.job_id)
            else:
                with Store() as store:
                    entries = store.phases(self.job_id)
        except Exception as exc:  # the phase lines are a nicety; the job's lines still print
            import logging

            logging.getLogger("trainer_gui").debug("reading the phases of %s: %s", self.job_id, exc)
            return
        self.lines.catch_up((e.phase.value, e.text, e.at, e.detail) for e in entries)

    def __call__(self, event: AnyEvent) -> None:
        from trainer_gui.services.thin_peer import thin_event

        if getattr(event, "job_id", None) != self.job_id:
            return
        thin = thin_event(event)
        if thin is None:
            return
        with self.lines.lock:
            if not self._caught_up:
                self._catch_up()
            self.lines.print(thin)


def _print_phases(store: Store, record: JobRecord, out: TextIO) -> None:
    """The job's phase timeline: when each phase began (from the queueing) and how long it
    lasted; the current one of a running job is marked. Nothing for jobs from before phases."""
    from trainer_gui.core.store.phases import format_span, timeline

    steps = timeline(store.phases(record.id), record.ended_at, time.time())
    if not steps:
        return
    starts = [format_span(step.at - steps[0].at) for step in steps]
    took = [format_span(step.seconds) for step in steps]
    wide = [max(len(t) for t in column) for column in (starts, [s.label for s in steps], took)]
    out.write("Phases:\n")
    for step, start, spent in zip(steps, starts, took, strict=True):
        now = "  (now)" if step.current else ""
        out.write(f"  {start:>{wide[0]}}  {step.label:<{wide[1]}}  {spent:>{wide[2]}}{now}\n")


def _training_metrics(last: dict[str, float]) -> dict[str, float]:
    """The script's own metrics: system readings (CPU, memory) are for the plots."""
    from trainer_gui.core.runners.sysmetrics import is_system_metric

    return {name: value for name, value in last.items() if not is_system_metric(name)}


def _summary(service: Jobs, record: JobRecord, out: TextIO) -> None:
    from trainer_gui.services.thin_peer import summary_data

    out.write(summary_text(summary_data(service.store, record)))


_exit_code = exit_code


# -- commands -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    if args.python and ("/" in args.python or os.sep in args.python):
        # a path as typed names a file from here, not from the job host's folder
        args.python = os.path.abspath(args.python)
    if thin_run.applies(args):  # a local job: the job host loads and runs the spec
        code = thin_run.cmd_run(args)
        if code is not None:
            return code
    _setup_logging()
    # A SageMaker launch (preflighted first), or no job host. Listening starts the
    # connection to the job host now (and the host, if none runs), so
    # the host comes up while this process validates the spec; the printer joins later. Not
    # for a spec file that is not there: `load_spec` says so, and no host is started for it.
    relay: list[Callable[[Any], None]] = []

    def forward(event: Any) -> None:
        if relay:
            relay[0](event)

    service = _service()
    early = Path(args.spec).is_file()
    if early:
        service.subscribe(forward)
    try:
        from trainer_gui.core.spec import apply_overrides, load_spec

        spec = load_spec(args.spec)
        overrides = list(args.overrides)
        if args.backend:
            overrides.append(f"compute.backend={args.backend}")
        if overrides:
            spec = apply_overrides(spec, overrides)
    except BaseException:
        service.shutdown()
        raise
    if not early:
        service.subscribe(forward)
    out = sys.stdout
    from trainer_gui.cli.preflight import gate

    checked = gate(service, spec, args, out)  # a SageMaker launch is preflighted first
    if not checked.go:
        service.shutdown()
        return EXIT_FAILED
    handle = service.submit(spec, python=args.python)
    job_id = handle.job_id
    if checked.result is not None:  # a SageMaker launch that was preflighted
        from trainer_gui.services.preflight import link_preflight

        link_preflight(service.store, job_id, checked.result)
    out.write(f"Started {job_id} on {spec.compute.backend.value}\n")
    out.flush()
    if args.detach:
        handle.wait_started()
        service.shutdown()
        out.write(f"Follow it with: trainer-gui logs {job_id} --follow\n")
        return EXIT_OK
    ended = threading.Event()  # the job's final status was printed: every line before it too
    printing = _printing(_Printer(job_id, out, args.quiet, store=service.store))

    def listen(event: Any) -> None:
        printing(event)
        status = getattr(event, "status", None)
        if getattr(event, "job_id", None) == job_id and status is not None and status.is_terminal:
            ended.set()

    relay.append(listen)
    try:
        # The final status event ends the wait at once; the store, read every `_STORE_CHECK`
        # seconds, is the fallback (a lost connection, a job that ended before the listener).
        while not ended.wait(_STORE_CHECK) and not handle.done:
            handle.wait(0)
        if not ended.is_set():
            ended.wait(_LAST_EVENTS)  # the final status's batch may still be on its way
    except KeyboardInterrupt:
        service.shutdown()
        out.write(detached_text(job_id))
        return EXIT_DETACHED
    service.shutdown()
    record = service.get(job_id)
    _summary(service, record, out)
    return _exit_code(record.status)


#: After the store said a job ended, how long `run` waits for its final status event (the
#: job host's last event batch) before it prints the summary.
_LAST_EVENTS = 0.15
#: While `run` waits for the job's final status event, how often it reads the store as well.
_STORE_CHECK = 0.25


def cmd_jobs(args: argparse.Namespace) -> int:
    service = _service()
    if service.store.list_jobs(active_only=True):
        # Bring statuses of jobs that ended meanwhile up to date: the job host takes over
        # whatever nobody follows (and starts, if none runs).
        _settle(service, service.recover())
    service.shutdown()
    records = service.store.list_jobs(limit=args.limit, active_only=args.active)
    if not records and args.active:
        print("No running jobs.")
        return EXIT_OK
    if not records:
        print("No jobs yet. Open the example with: trainer-gui gui --example")
        return EXIT_OK
    rows = [("JOB", "BACKEND", "STATUS", "STARTED", "DURATION", "METRICS")]
    for r in records:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at or r.created_at))
        last = _training_metrics(service.store.last_metrics(r.id))
        metrics = " ".join(f"{k}={_fmt_value(v)}" for k, v in list(last.items())[:3])
        rows.append((r.id, r.backend, r.status, started, _duration(r.duration), metrics))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    return EXIT_OK


def _settle(service: Jobs, taken: list[str], timeout: float = 3.0) -> None:
    """Give the followers that just took over a moment to record jobs that already ended."""
    deadline = time.monotonic() + timeout
    for job_id in taken:
        service.wait(job_id, max(0.0, deadline - time.monotonic()) / 5)


def cmd_logs(args: argparse.Namespace) -> int:
    """Print job.log; with --follow, until the job ends and its log is read to the end.

    Only the bytes the store accounts for are printed, so lines of a batch whose follower died
    before committing (and which the next follower writes again) never show twice. While the
    job runs, the job host ingests it (this command starts one if none runs)."""
    service = _service()
    try:
        return _print_logs(service, args)
    finally:
        service.shutdown()


def _print_logs(service: Jobs, args: argparse.Namespace) -> int:
    from trainer_gui.core.joblog import JOB_LOG
    from trainer_gui.core.runners.events import JobStatus
    from trainer_gui.services.jobs import JobService

    record = service.get(args.job)
    if args.follow and not JobStatus(record.status).is_terminal:
        # Someone must ingest what is printed: the job host does (started if none runs, and
        # restarted if it dies); in this process only when told not to use one.
        service.recover([record.id])
    take_over_here = isinstance(service, JobService)
    path = Path(record.run_dir) / "logs" / JOB_LOG
    position = 0
    out = sys.stdout
    take_over_every = _TAKE_OVER_EVERY
    next_take_over = time.monotonic() + take_over_every
    ended = False  # the job was seen terminal before this read: everything is stored
    try:
        while True:
            available = _committed_log_size(service, record.id, path)
            start = position
            position = _print_log(path, position, available, args.host, out)
            if not args.follow:
                return EXIT_OK
            record = service.get(record.id)
            if JobStatus(record.status).is_terminal:
                left = _committed_log_size(service, record.id, path) - position
                # Done when all is read, or when a read after the end only left a broken last
                # line (no newline) that would otherwise be waited for forever.
                if left <= 0 or (ended and position == start):
                    out.write(f"==> {record.status}\n")
                    return _exit_code(record.status)
                ended = True
                continue  # the last lines landed before the final status: read them first
            if take_over_here and time.monotonic() >= next_take_over:
                if not service.is_followed_here(record.id) and service.recover([record.id]):
                    # Taken over; if following it ends without a final status (credentials
                    # gone), each new try logs why again: try less and less often.
                    take_over_every = min(take_over_every * 2, 60.0)
                next_take_over = time.monotonic() + take_over_every
            time.sleep(0.2)
    except KeyboardInterrupt:
        return EXIT_DETACHED


#: How often `logs --follow` checks that some process still ingests the job it shows.
_TAKE_OVER_EVERY = 2.0


def _print_log(path: Path, position: int, end: int, host: str | None, out: TextIO) -> int:
    """Print job.log's whole lines from `position` up to `end` (a few MiB at a time, so a big
    log never sits in memory at once); returns the position after the last line printed."""
    from trainer_gui.core.joblog import parse_log_line

    while position < end:
        with open(path, "rb") as fh:
            fh.seek(position)
            chunk = fh.read(min(end - position, _LOG_READ))
        chunk = chunk[: chunk.rfind(b"\n") + 1]  # whole lines only
        if not chunk:
            break
        position += len(chunk)
        for line in chunk.decode("utf-8", "replace").splitlines():
            parsed = parse_log_line(line)
            if parsed is None or (host and parsed[1] != host):
                continue
            out.write(f"[{parsed[1]}] {parsed[3]}\n")
        out.flush()
    return position


_LOG_READ = 4 * 1024 * 1024


def _committed_log_size(service: Jobs, job_id: str, path: Path) -> int:
    """The length of job.log that the store accounts for; the whole file for a job ingested
    before the store recorded it (no length stored)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    committed = service.store.log_size(job_id)
    return size if committed is None else min(size, committed)


def cmd_stop(args: argparse.Namespace) -> int:
    service = _service()
    record = service.get(args.job)
    if record.status in ("Completed", "Failed", "Stopped"):
        print(f"{record.id} already ended: {record.status}")
        return EXIT_OK
    print(f"Stopping {record.id} ...", flush=True)
    try:
        record = service.stop(record.id, wait=120)
    finally:
        service.shutdown()
    print(f"{record.id}: {record.status}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    service = _service()
    record = service.get(args.job)
    print(f"Job {record.id} ({record.backend})")
    for entry in service.store.status_history(record.id):
        when = time.strftime("%H:%M:%S", time.localtime(entry.at))
        first = entry.message.splitlines()[0] if entry.message else ""
        print(f"  {when}  {entry.status:<10} {first}")
    _print_phases(service.store, record, sys.stdout)
    _summary(service, record, sys.stdout)
    return _exit_code(record.status) if record.status in ("Completed", "Failed", "Stopped") else 0


def cmd_spec_validate(args: argparse.Namespace) -> int:
    from trainer_gui.core.spec import load_spec

    spec = load_spec(args.spec)
    # a file name that is not UTF-8 arrives with surrogates (PEP 383); print it escaped
    shown = args.spec.encode("utf-8", "backslashreplace").decode("utf-8")
    print(f"{shown}: OK ({spec.name}, {spec.compute.backend.value})")
    return EXIT_OK


class _BuildProgress:
    """`Step 3/9 : RUN ...` lines become a one-line progress bar on a terminal."""

    def __init__(self, out: TextIO, verbose: bool) -> None:
        self.out = out
        self.verbose = verbose or not out.isatty()
        self.started = time.monotonic()

    def __call__(self, line: str) -> None:
        import re

        if self.verbose:
            self.out.write(line.rstrip() + "\n")
            self.out.flush()
            return
        match = re.match(r"\s*Step (\d+)/(\d+) : (.*)", line)
        if match:
            done, total, what = int(match[1]), int(match[2]), match[3]
            width = 24
            filled = width * (done - 1) // max(total, 1)
            bar = "#" * filled + "-" * (width - filled)
            elapsed = time.monotonic() - self.started
            self.out.write(f"\r[{bar}] {done}/{total} {elapsed:4.0f}s  {what[:60]:<60}")
            self.out.flush()

    def close(self) -> None:
        if not self.verbose:
            self.out.write("\n")


def cmd_images(args: argparse.Namespace) -> int:
    from trainer_gui.core import images

    if args.images_command == "list":
        for kind in sorted(images.IMAGE_KINDS):
            tag = images.IMAGE_KINDS[kind].tag
            state = "present" if images.image_exists(tag) else "missing"
            print(f"{kind:<10} {tag:<32} {state}")
        return EXIT_OK
    if args.images_command != "build":
        raise UserError("use `trainer-gui images build KIND` or `trainer-gui images list`")
    progress = _BuildProgress(sys.stdout, args.verbose)
    try:
        tag = images.build_image(
            args.kind,
            base_image=args.base_image,
            wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None,
            tag=args.tag,
            on_progress=progress,
            nocache=args.no_cache,
        )
    finally:
        progress.close()
    print(f"Built {tag} in {time.monotonic() - progress.started:.0f}s")
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    from trainer_gui.ui.app import main as gui_main

    project = args.project
    if args.example:
        from trainer_gui.core.paths import example_workspace

        project = str(example_workspace())
    return gui_main(project)


# -- sagemaker (trainer_gui.core.aws; boto3 is imported on first use) -----------------------------


def _add_sagemaker_commands(sub: argparse._SubParsersAction) -> None:
    sm = sub.add_parser("sagemaker", help="training jobs on Amazon SageMaker")
    sm_sub = sm.add_subparsers(dest="sagemaker_command", parser_class=_Parser)

    def aws_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", help="AWS profile (default: boto3's chain)")
        p.add_argument("--region", help="AWS region (default: the profile's)")

    jobs = sm_sub.add_parser("jobs", help="list the account's recent training jobs")
    aws_options(jobs)
    jobs.add_argument("--limit", type=int, default=20)
    attach = sm_sub.add_parser(
        "attach", help="follow any training job's logs and metrics into the local store"
    )
    attach.add_argument("name", help="training job name")
    aws_options(attach)
    attach.add_argument("--detach", action="store_true", help="record it and return")
    attach.add_argument("--quiet", "-q", action="store_true", help="no log lines, only metrics")
    imp = sm_sub.add_parser("import", help="a training job as a local job spec")
    imp.add_argument("name", help="training job name")
    aws_options(imp)
    imp.add_argument("-o", "--output", help="write the spec here (default: print it)")
    imp.add_argument(
        "--no-code", action="store_true", help="keep the code in S3 (do not download it)"
    )
    export = sm_sub.add_parser("export", help="a spec as SageMaker SDK code or request JSON")
    export.add_argument("spec")
    export.add_argument("--format", choices=["v3", "v2", "request"], default="v3")
    export.add_argument("-o", "--output", help="write to this file (default: print)")
    cost = sm_sub.add_parser("cost", help="estimated cost of a spec on SageMaker")
    cost.add_argument("spec")
    cost.add_argument("--region", help="price region (default: the spec's or the profile's)")
    cost.add_argument(
        "--refresh",
        action="store_true",
        help="read the prices from the AWS Price List API now, not from the price cache",
    )
    settings = sm_sub.add_parser(
        "settings",
        help="show or change the AWS settings (profile, region, role, S3 prefix) that SageMaker "
        "jobs use where their spec is empty; the app's AWS settings page edits the same",
    )
    settings.add_argument("--profile", help="named profile ('' for boto3's default chain)")
    settings.add_argument("--region", help="region ('' for the profile's)")
    settings.add_argument("--role", dest="role_arn", help="execution role ARN")
    settings.add_argument("--s3-prefix", help="s3://bucket/prefix ('' for the default bucket)")
    settings.add_argument("--clear", action="store_true", help="forget every setting first")


def cmd_sagemaker(args: argparse.Namespace) -> int:
    handlers = {
        "jobs": _sm_jobs,
        "attach": _sm_attach,
        "import": _sm_import,
        "export": _sm_export,
        "cost": _sm_cost,
        "settings": _sm_settings,
    }
    handler = handlers.get(getattr(args, "sagemaker_command", None) or "")
    if handler is None:
        raise UserError(
            "use `trainer-gui sagemaker jobs|attach|import|export|cost|settings` (see --help)"
        )
    return handler(args)


def _sm_jobs(args: argparse.Namespace) -> int:
    from trainer_gui.core.aws.remote_jobs import list_training_jobs

    session = _aws_session(args)
    jobs = list_training_jobs(session, limit=args.limit)
    if not jobs:
        print(f"No training jobs in {session.region}.")
        return EXIT_OK
    rows = [("NAME", "STATUS", "CREATED", "DURATION")]
    for job in jobs:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created))
        took = _duration(job.ended - job.created) if job.ended else "-"
        rows.append((job.name, job.status, created, took))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return EXIT_OK


def _sm_attach(args: argparse.Namespace) -> int:
    from trainer_gui.core.runners.events import JobStatus

    session = _aws_session(args)
    service = _service()
    out = sys.stdout
    printer = _Printer(args.name, out, args.quiet, store=service.store)
    if not args.detach:
        service.subscribe(_printing(printer))
    job_id = service.adopt(args.name, session.profile, session.region)
    out.write(f"Following {job_id} ({session.region}); Ctrl-C detaches, the job runs on\n")
    out.flush()
    if args.detach:
        service.shutdown()
        return EXIT_OK
    try:
        while not JobStatus(service.wait(job_id, 0.2).status).is_terminal:
            pass
        time.sleep(_LAST_EVENTS)
        service.shutdown()
    except KeyboardInterrupt:
        service.shutdown()
        out.write(f"\nDetached; the job keeps running.\n  follow: trainer-gui logs {job_id} -f\n")
        return EXIT_DETACHED
    record = service.get(job_id)
    _summary(service, record, out)
    return _exit_code(record.status)


def _sm_import(args: argparse.Namespace) -> int:
    from trainer_gui.core.aws.remote_jobs import import_training_job
    from trainer_gui.core.spec import dump_spec

    session = _aws_session(args)
    target = Path(args.output) if args.output else None
    spec = import_training_job(session, args.name, target, download_code=not args.no_code)
    if target is None:
        sys.stdout.write(dump_spec(spec))
    else:
        print(f"Wrote {target} (run it with: trainer-gui run {target})")
    return EXIT_OK


def _sm_export(args: argparse.Namespace) -> int:
    from trainer_gui.core.aws.export import export_spec
    from trainer_gui.core.spec import load_spec

    texts, notes = export_spec(load_spec(args.spec), (args.format,))
    return write_export(texts[args.format], notes, args.output)


def write_export(text: str, notes: Sequence[str], output: str | None) -> int:
    """An export's notes on stderr, its text to `output` or stdout (spec and sweep exports)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"Wrote {output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _sm_cost(args: argparse.Namespace) -> int:
    from trainer_gui.core.aws.defaults import effective_region
    from trainer_gui.core.aws.pricing import estimate_cost, pricing_region
    from trainer_gui.core.spec import load_spec

    spec = load_spec(args.spec)
    region = args.region or effective_region(spec) or pricing_region(spec)
    if args.refresh:
        from trainer_gui.core.aws.pricing import reread_list_price
        from trainer_gui.core.errors import UserError

        for instance_type in spec.compute.instance_types:
            try:
                reread_list_price(instance_type, region, spec.sagemaker.profile)
            except UserError as exc:
                print(
                    f"note: the price of {instance_type} in {region} could not be read from "
                    f"the AWS Price List API ({exc}); the estimate uses the cached or "
                    "shipped price",
                    file=sys.stderr,
                )
    estimate = estimate_cost(spec, region=region)
    print(estimate.summary())
    return EXIT_OK if estimate.known else EXIT_FAILED


def _aws_session(args: argparse.Namespace) -> AwsSession:
    """A session from --profile/--region, else the AWS settings, else boto3's chain."""
    from trainer_gui.core.aws.session import AwsSession

    return AwsSession.from_settings(args.profile, args.region)


def _sm_settings(args: argparse.Namespace) -> int:
    from trainer_gui.core.aws.defaults import (
        KEYS,
        AwsDefaults,
        load_aws_defaults,
        save_aws_defaults,
        settings_path,
    )

    current = {} if args.clear else load_aws_defaults().as_dict()
    changes = {k: getattr(args, k) for k in KEYS if getattr(args, k) is not None}
    if changes or args.clear:
        saved = AwsDefaults.from_mapping({**current, **changes})
        save_aws_defaults(saved)
        print(f"Saved {settings_path()}")
    else:
        saved = load_aws_defaults()
    labels = {"profile": "profile", "region": "region", "role_arn": "role"}
    labels["s3_prefix"] = "S3 prefix"
    empty = {
        "profile": "(boto3's default chain)",
        "region": "(the profile's region)",
        "role_arn": "(none: each spec must name sagemaker.role_arn)",
        "s3_prefix": "(the default bucket sagemaker-<region>-<account>)",
    }
    for key in KEYS:
        print(f"{labels[key] + ':':<11}{getattr(saved, key) or empty[key]}")
    return EXIT_OK


# -- serving: `serve` and `predict` ---------------------------------------------------------------


def _add_serving_commands(sub: argparse._SubParsersAction) -> None:
    """`trainer-gui serve` (local inference endpoints) and `trainer-gui predict` (requests)."""
    serve = sub.add_parser(
        "serve",
        help="serve a trained model in a local inference container",
        description="Serve a model the way SageMaker does: /ping and /invocations on "
        "http://127.0.0.1:<free port>. Stays in the foreground, printing the container log, "
        "until Ctrl+C removes the container (or returns at once with --detach).",
    )
    serve.add_argument(
        "model", nargs="?", help="a job id or name, a model.tar.gz, a model folder or an s3:// URI"
    )
    serve.add_argument(
        "--image",
        default="trainer-gui/inference:latest",
        help="container image: a SageMaker PyTorch inference image runs `serve`, any other "
        "image with Python and torch runs the app's runtime (default: %(default)s)",
    )
    serve.add_argument("--port", type=int, help="host port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--name", help="endpoint name (default: from the job or file)")
    serve.add_argument(
        "--mode",
        choices=["auto", "sagemaker", "runtime"],
        default="auto",
        help="auto (default): from the image; sagemaker: run `serve`; runtime: the app's server",
    )
    serve.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="container environment"
    )
    serve.add_argument(
        "--timeout", type=float, default=240.0, help="seconds for /ping to pass (default 240)"
    )
    serve.add_argument("--detach", action="store_true", help="start the endpoint and return")
    serve.add_argument("--list", action="store_true", help="list local endpoints")
    serve.add_argument("--stop", metavar="NAME", help="stop an endpoint (`all`: every one)")

    predict = sub.add_parser("predict", help="send a request to an endpoint and print the answer")
    predict.add_argument(
        "endpoint", help="a local endpoint's name or URL, or sagemaker:NAME for a deployed one"
    )
    predict.add_argument("--data", required=True, help="file to send as the body (- for stdin)")
    predict.add_argument("--content-type", help="default: from the file's suffix")
    predict.add_argument("--accept", help="response type to ask for (default: the server's)")
    predict.add_argument(
        "--custom-attributes",
        help="sent as X-Amzn-SageMaker-Custom-Attributes (the handler reads it with "
        'context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes"))',
    )
    predict.add_argument("--region", help="AWS region (sagemaker: endpoints)")
    predict.add_argument("--profile", help="AWS profile (sagemaker: endpoints)")
    predict.add_argument("--raw", action="store_true", help="write the body as it came")


def _print_endpoints(launcher: EndpointLauncher) -> int:
    endpoints = launcher.list_endpoints()
    if not endpoints:
        print("No local endpoints. Start one with: trainer-gui serve JOB|MODEL.tar.gz")
        return EXIT_OK
    rows = [("NAME", "URL", "MODE", "STATE", "MODEL")]
    rows += [(e.name, e.url or "-", e.mode, e.state, e.source) for e in endpoints]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    return EXIT_OK


def _env_pairs(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--env wants KEY=VALUE, got {item!r}")
        env[key] = value
    return env


class _ServeProgress:
    """Start progress: one rewritten line on a terminal, a line per stage in a pipe; log lines
    of the container prefixed with '  | '. Called from the launcher's threads, so it locks."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.stage = ""
        self._lock = threading.Lock()

    def __call__(self, progress: StartProgress) -> None:
        with self._lock:
            if progress.stage == "waiting" and (self.tty or self.stage == "waiting"):
                if self.tty:
                    self.out.write(f"\r{progress.message[:100]:<100}")
            else:
                if self.tty and self.stage == "waiting":
                    self.out.write("\n")
                self.out.write(f"{progress.message}\n")
            self.stage = progress.stage
            self.out.flush()

    def log(self, line: str) -> None:
        with self._lock:
            if self.tty and self.stage == "waiting":
                self.out.write("\r" + " " * 100 + "\r")
            self.out.write(f"  | {line}\n")
            self.out.flush()


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    from trainer_gui.core.serving.launcher import EndpointLauncher

    launcher = EndpointLauncher()
    if args.list:
        return _print_endpoints(launcher)
    if args.stop:
        names = [e.name for e in launcher.list_endpoints()] if args.stop == "all" else [args.stop]
        for name in names:
            if not launcher.stop(name):
                raise UserError(f"no local endpoint {name!r} (`trainer-gui serve --list`)")
            print(f"Stopped {name}")
        return EXIT_OK
    if not args.model:
        raise UserError("name what to serve: trainer-gui serve JOB|MODEL.tar.gz|MODEL_DIR")
    out = sys.stdout
    removed = launcher.cleanup_orphans()
    if removed:
        out.write(f"Removed endpoints left by a crashed session: {', '.join(removed)}\n")
    progress = _ServeProgress(out)

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    name = None
    try:
        try:
            endpoint = launcher.start(
                args.model,
                name=args.name,
                image=args.image,
                mode=args.mode,
                port=args.port,
                environment=_env_pairs(args.env),
                timeout=args.timeout,
                on_progress=progress,
                on_log=None if args.detach else progress.log,
                detached=args.detach,
            )
        except KeyboardInterrupt:
            out.write("\nCancelled; the container is removed.\n")
            return EXIT_DETACHED
        name = endpoint.name
        out.write(f"Serving {endpoint.source} at {endpoint.url} (endpoint {name})\n")
        out.write(
            f"  try:  trainer-gui predict {name} --data rows.json\n"
            f"        curl -s {endpoint.url}/invocations -H 'Content-Type: application/json' "
            "-d '[[...]]'\n"
        )
        if args.detach:
            out.write(f"  stop: trainer-gui serve --stop {name}\n")
            out.flush()
            return EXIT_OK
        out.write("Following the container log; Ctrl+C stops the endpoint.\n")
        out.flush()
        while not launcher.wait_exit(name, 0.5):
            pass
        out.write(f"Endpoint {name} ended on its own.\n")
        launcher.stop(name)
        return EXIT_FAILED
    except KeyboardInterrupt:
        if name is not None:
            launcher.stop(name)
            out.write(f"\nStopped {name}\n")
            out.flush()
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)
        launcher.close()


def cmd_predict(args: argparse.Namespace) -> int:
    from trainer_gui.core.serving.client import (
        check_custom_attributes,
        client_for,
        content_type_for,
        format_body,
    )

    attributes = check_custom_attributes(args.custom_attributes)
    if args.data == "-":
        body = sys.stdin.buffer.read()
        content_type = args.content_type or "application/json"
    else:
        path = Path(args.data).expanduser()
        if not path.is_file():
            raise UserError(f"--data {args.data}: no such file")
        body = path.read_bytes()
        content_type = args.content_type or content_type_for(path)
    client = client_for(args.endpoint, region=args.region, profile=args.profile)
    try:
        result = client.invoke(body, content_type, args.accept, attributes)
    finally:
        client.close()
    sys.stderr.write(
        f"{result.status} from {result.target} in {result.latency_ms:.1f} ms "
        f"({result.content_type or 'no content type'})\n"
    )
    if args.raw:
        sys.stdout.buffer.write(result.body)
        sys.stdout.flush()
    else:
        text = format_body(result.body, result.content_type)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK if result.ok else EXIT_FAILED


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """`trainer_gui.cli.<module>.<name>`, imported when called."""

    def call(args: argparse.Namespace) -> int:
        import importlib

        command: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(f"trainer_gui.cli.{module}"), name
        )
        return command(args)

    return call


def _setup_logging() -> None:
    """Log lines as "LEVEL name: message" at TRAINER_GUI_LOG's level (default WARNING).

    Not before a thin `run` (it logs nothing; `logging` is ~6 ms of its start): the full
    way, which `run` falls back to, calls it then.
    """
    import logging

    level = os.environ.get("TRAINER_GUI_LOG", "WARNING").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["_job-host"]:  # hidden: the job host (services/job_host.py)
        from trainer_gui.services.host_keeper import keeper_main

        return keeper_main(args_in[1:])
    if args_in[:1] != ["run"]:
        _setup_logging()
    # `run` (the edit-run loop) parses with its own parser only; `-h` and errors read the same.
    parser = build_parser("run" if args_in[:1] == ["run"] else None)
    try:
        args = parser.parse_args(args_in)
        command = args.command or "gui"
        if command == "gui" and not hasattr(args, "example"):
            args = parser.parse_args(["gui"])
        handlers = {
            "gui": cmd_gui,
            "run": cmd_run,
            "jobs": cmd_jobs,
            "logs": cmd_logs,
            "stop": cmd_stop,
            "show": cmd_show,
            "images": cmd_images,
            "serve": cmd_serve,
            "predict": cmd_predict,
            "new": _lazy("new", "cmd_new"),
            "queue": _lazy("queue", "cmd_queue"),
            "sweep": _lazy("sweep", "cmd_sweep"),
            "preflight": _lazy("preflight", "cmd_preflight"),
        }
        if command == "sagemaker":
            return cmd_sagemaker(args)
        if command == "spec":
            if args.spec_command != "validate":
                raise UserError("use `trainer-gui spec validate SPEC.yaml`")
            return cmd_spec_validate(args)
        return handlers[command](args)
    except UserError as exc:
        print(f"trainer-gui: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_DETACHED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        path = _write_crash_log()
        print(f"trainer-gui: internal error: {exc!r} (details in {path})", file=sys.stderr)
        return EXIT_FAILED


def _write_crash_log() -> str:
    import traceback

    from trainer_gui.core.paths import data_home

    try:
        path = data_home() / "crash.log"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(time.strftime("\n== %Y-%m-%d %H:%M:%S ==\n"))
            fh.write(traceback.format_exc())
        return str(path)
    except OSError:
        return "unavailable"


if __name__ == "__main__":
    raise SystemExit(main())
