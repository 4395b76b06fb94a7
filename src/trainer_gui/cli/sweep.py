"""`trainer-gui sweep`: hyperparameter sweeps from a sweep file (a job spec plus `sweep:`).

validate and export work for any sweep; run starts a SageMaker hyperparameter tuning job for a
sweep whose backend is sagemaker (and follows its trials into the store), or hands a local sweep
to the job service's sweep runner; attach follows any tuning job of the account.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from trainer_gui.core.errors import UserError

if TYPE_CHECKING:
    from trainer_gui.core.aws.tuning import Trial, TuningState
    from trainer_gui.core.spec.sweep import SweepSpec

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_STOPPED = 3
EXIT_DETACHED = 130
DEFAULT_POLL = 10.0  # seconds between ListTrainingJobsForHyperParameterTuningJob calls


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    sweep = sub.add_parser(
        "sweep",
        help="hyperparameter sweeps: validate, export, run, attach",
        description="A sweep file is a job spec with a sweep: section (parameters, strategy, "
        "objective, max_trials, max_parallel, early_stopping). See docs/sweeps.md.",
    )
    verbs = sweep.add_subparsers(dest="sweep_command", parser_class=type(sweep))

    def aws_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", help="AWS profile (default: the AWS settings, boto3's chain)")
        p.add_argument("--region", help="AWS region (default: the profile's)")

    def follow_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--detach", action="store_true", help="return at once; the sweep goes on without you"
        )
        p.add_argument("--poll", type=float, default=DEFAULT_POLL, help=argparse.SUPPRESS)

    validate = verbs.add_parser("validate", help="check a sweep file and say what it will run")
    validate.add_argument("file")
    export = verbs.add_parser(
        "export", help="a SageMaker sweep as SDK V3 or V2 code, or the request JSON"
    )
    export.add_argument("file")
    export.add_argument("--format", choices=["v3", "v2", "json"], default="v3")
    export.add_argument("--name", help="the tuning job name (default: <spec name>-<time>)")
    export.add_argument("-o", "--output", help="write to this file (default: print)")
    run = verbs.add_parser(
        "run",
        help="run a sweep: a SageMaker tuning job (backend sagemaker) or local trials",
    )
    run.add_argument("file")
    run.add_argument("--name", help="SageMaker: the tuning job name (default: <spec>-<time>)")
    follow_options(run)
    attach = verbs.add_parser(
        "attach", help="follow a SageMaker tuning job's trials into the local store"
    )
    attach.add_argument("name", help="the tuning job name")
    aws_options(attach)
    follow_options(attach)
    show = verbs.add_parser("show", help="a sweep's trials in the store, the best one marked")
    show.add_argument("name", help="the sweep (on SageMaker: the tuning job name)")
    stop = verbs.add_parser("stop", help="stop a SageMaker tuning job and its running trials")
    stop.add_argument("name", help="the tuning job name")
    aws_options(stop)
    return sweep


def cmd_sweep(args: argparse.Namespace) -> int:
    verb = getattr(args, "sweep_command", None)
    handlers = {
        "validate": _validate,
        "export": _export,
        "run": _run,
        "attach": _attach,
        "show": _show,
        "stop": _stop,
    }
    handler = handlers.get(verb or "")
    if handler is None:
        raise UserError("use `trainer-gui sweep validate|export|run|attach|show|stop` (see --help)")
    return handler(args)


# -- validate / export ------------------------------------------------------------------------


def describe_sweep(sweep: SweepSpec) -> list[str]:
    """What the sweep will run, in a few lines."""
    from trainer_gui.core.spec.sweep import CategoricalValues, ContinuousRange, value_text

    s = sweep.sweep
    if s.strategy == "grid":
        trials = f"{s.trial_count} trials (every point of the grid)"
    else:
        trials = f"at most {s.max_trials} trials"
    lines = [
        f"Sweep of {sweep.job.name!r} on {sweep.backend.value}: {s.strategy} search, {trials}, "
        f"{s.max_parallel} at a time",
        f"  objective: {s.objective.goal} {s.objective.metric}",
    ]
    for name, p in s.parameters.items():
        if isinstance(p, CategoricalValues):
            shown = ", ".join(value_text(v) for v in p.values)
            lines.append(f"  {name}: one of {shown}")
        else:
            kind = "real" if isinstance(p, ContinuousRange) else "whole number"
            lines.append(f"  {name}: {kind} from {p.min:g} to {p.max:g} ({p.scale} scale)")
    if s.early_stopping == "auto":
        where = (
            "SageMaker stops weak trials"
            if sweep.backend.value == "sagemaker"
            else f"{s.pruner.kind} pruner stops weak trials"
        )
        lines.append(f"  early stopping: {where}")
    return lines


def _validate(args: argparse.Namespace) -> int:
    from trainer_gui.core.spec.sweep import load_sweep

    sweep = load_sweep(args.file)
    print(f"OK: {args.file}")
    for line in describe_sweep(sweep):
        print(line)
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from trainer_gui.cli.main import write_export
    from trainer_gui.core.aws.export import export_sweep
    from trainer_gui.core.spec.sweep import load_sweep

    texts, notes = export_sweep(load_sweep(args.file), (args.format,), args.name)
    return write_export(texts[args.format], notes, args.output)


# -- run / attach ---------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from trainer_gui.core.spec import Backend
    from trainer_gui.core.spec.sweep import load_sweep

    sweep = load_sweep(args.file)
    if sweep.backend != Backend.SAGEMAKER:
        return _run_local(sweep, args)
    return _run_sagemaker(sweep, args)


def _run_local(sweep: SweepSpec, args: argparse.Namespace) -> int:
    """Local trials are the job service's (services/sweeps.py, with the queue and Optuna)."""
    try:
        from trainer_gui.services import sweeps  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise UserError(
            "local sweeps: use the lead's implementation (services/sweeps.py is not in this "
            "build yet); a sweep with compute.backend: sagemaker runs as a tuning job"
        ) from None
    from trainer_gui.cli.main import _service

    service = _service()
    try:
        result = sweeps.run_sweep(service, sweep, detach=args.detach, source=args.file)
    finally:
        service.shutdown()
    return result if isinstance(result, int) else EXIT_OK


def _run_sagemaker(sweep: SweepSpec, args: argparse.Namespace) -> int:
    from trainer_gui.core.aws.defaults import with_aws_defaults
    from trainer_gui.core.aws.tuning import create_tuning_job, tuning_job_name
    from trainer_gui.core.paths import runs_home
    from trainer_gui.core.runners.sagemaker import SageMakerRunner

    job = with_aws_defaults(sweep.job).with_base_dir(sweep.job.base_dir)
    sweep = sweep.model_copy(update={"job": job})
    name = args.name or tuning_job_name(job.name)
    out = sys.stdout
    start = create_tuning_job(
        SageMakerRunner(),
        sweep,
        runs_home() / name,
        name,
        on_status=lambda message: _line(out, f"  {message}"),
    )
    _line(out, f"Created tuning job {start.name} ({start.region})")
    return _follow(start.name, start.profile, start.region, args, out)


def _attach(args: argparse.Namespace) -> int:
    from trainer_gui.cli.main import _aws_session
    from trainer_gui.core.aws.tuning import check_tuning_name, describe_tuning_job

    check_tuning_name(args.name)
    session = _aws_session(args)
    state = describe_tuning_job(session, args.name)  # a clear error for an unknown name
    _line(sys.stdout, f"Tuning job {state.name} ({session.region}): {state.status}")
    return _follow(args.name, session.profile, session.region, args, sys.stdout)


def _follow(
    name: str, profile: str | None, region: str, args: argparse.Namespace, out: TextIO
) -> int:
    """Adopt the trials as they appear (printing each), until the tuning job ends."""
    from trainer_gui.cli.main import _service
    from trainer_gui.core.aws.session import AwsSession
    from trainer_gui.core.aws.tuning import adopt_trials, follow_tuning_job

    session = AwsSession(profile, region)
    if args.detach:
        service = _service()
        try:
            for trial in adopt_trials(service, session, name):
                _line(out, _trial_line(trial))
        finally:
            service.shutdown()
        _line(out, f"Detached; the tuning job runs on.\n  follow: trainer-gui sweep attach {name}")
        return EXIT_OK
    _line(out, "Trials are followed into the store as SageMaker starts them; Ctrl-C detaches")
    service = _service()
    try:
        state = follow_tuning_job(
            service,
            session,
            name,
            on_trial=lambda trial: _line(out, _trial_line(trial)),
            on_state=lambda state: _line(out, _state_line(state)),
            poll=args.poll,
        )
    except KeyboardInterrupt:
        _line(
            out, f"\nDetached; the tuning job runs on.\n  follow: trainer-gui sweep attach {name}"
        )
        return EXIT_DETACHED
    finally:
        service.shutdown()
    _summary(session, name, state, out)
    return {"Completed": EXIT_OK, "Stopped": EXIT_STOPPED}.get(state.status, EXIT_FAILED)


def _trial_line(trial: Trial) -> str:
    from trainer_gui.core.aws.tuning import decoded

    values = ", ".join(f"{k}={v}" for k, v in decoded(trial.parameters).items())
    return f"  trial {trial.name}: {values}"


def _state_line(state: TuningState) -> str:
    counts = ", ".join(f"{v} {k.lower()}" for k, v in state.counters.items() if v)
    return f"  {time.strftime('%H:%M:%S')} {state.name}: {state.status}" + (
        f" ({counts})" if counts else ""
    )


def _summary(session: Any, name: str, state: TuningState, out: TextIO) -> None:
    from trainer_gui.core.aws.tuning import decoded, list_trials

    trials = list_trials(session, name)
    _line(
        out,
        f"Tuning job {name}: {state.status}"
        + (f" ({state.failure_reason})" if state.failure_reason else ""),
    )
    rows = [("TRIAL", "STATUS", state.objective_metric or "OBJECTIVE", "PARAMETERS")]
    for trial in trials:
        objective = "-" if trial.objective is None else f"{trial.objective:g}"
        mark = " *" if trial.name == state.best else ""
        values = ", ".join(f"{k}={v}" for k, v in decoded(trial.parameters).items())
        rows.append((trial.name + mark, trial.status, objective, values))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        _line(
            out, "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        )
    if state.best:
        _line(out, f"Best trial (*): {state.best}  (trainer-gui show {state.best})")


def _line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


# -- show / stop ------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    """The trials the store holds for the sweep (any backend that records `sweep_id`)."""
    from trainer_gui.cli import sweep_local

    if sweep_local.is_local(args.name):
        return sweep_local.show(args)
    from trainer_gui.core.aws.tuning import OBJECTIVE_KEY, PARAMETERS_KEY, SWEEP_KEY
    from trainer_gui.core.store import Store

    store = Store()
    records = [r for r in store.list_jobs() if r.backend_ids.get(SWEEP_KEY) == args.name]
    if not records:
        raise UserError(
            f"no trials of the sweep {args.name!r} in the store (a SageMaker tuning job: "
            f"trainer-gui sweep attach {args.name})"
        )
    records.sort(key=lambda r: (r.created_at, r.id))
    objective: dict[str, Any] = next(
        (r.backend_ids[OBJECTIVE_KEY] for r in records if r.backend_ids.get(OBJECTIVE_KEY)), {}
    )
    metric = str(objective.get("metric", ""))
    values: dict[str, float] = {}
    for record in records:
        value = store.last_metrics(record.id).get(metric) if metric else None
        if value is not None and value == value:  # not NaN
            values[record.id] = value
    best = None
    if values:
        pick = max if objective.get("goal") == "maximize" else min
        best = pick(values, key=lambda job_id: values[job_id])
    out = sys.stdout
    goal = f"{objective.get('goal', '')} {metric}".strip() or "no objective recorded"
    _line(out, f"Sweep {args.name}: {len(records)} trials ({goal})")
    rows = [("TRIAL", "STATUS", metric or "OBJECTIVE", "PARAMETERS")]
    for record in records:
        params = record.backend_ids.get(PARAMETERS_KEY) or {}
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        shown_value = f"{values[record.id]:g}" if record.id in values else "-"
        mark = " *" if record.id == best else ""
        rows.append((record.id + mark, record.status, shown_value, shown))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3]))
        _line(out, f"{cells}  {row[3]}".rstrip())
    if best:
        _line(out, f"Best trial (*): {best}")
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    from trainer_gui.cli import sweep_local

    if sweep_local.is_local(args.name):
        return sweep_local.stop(args)
    from trainer_gui.cli.main import _aws_session
    from trainer_gui.core.aws.session import AwsSession
    from trainer_gui.core.aws.tuning import TUNING_KEY, check_tuning_name, stop_tuning_job
    from trainer_gui.core.store import Store

    check_tuning_name(args.name)
    known = next(
        (r for r in Store().list_jobs() if r.backend_ids.get(TUNING_KEY) == args.name), None
    )
    if known is not None and not (args.profile or args.region):
        ids = known.backend_ids  # where its trials were found
        session = AwsSession(ids.get("profile") or None, ids.get("region") or None)
    else:
        session = _aws_session(args)
    stop_tuning_job(session, args.name)
    _line(sys.stdout, f"Stopping the tuning job {args.name}; SageMaker stops its running trials")
    return EXIT_OK
