"""Local sweeps: trials are queued jobs on the spec's backend; Optuna picks their values and
decides which to prune.

Who drives a sweep: whoever calls `tick(service)` and holds the sweep's lock
(`<data>/sweeps/<id>.lock`, dropped by the OS when the holder dies): the job host on every pass
of its upkeep, or the CLI itself when it runs without a job host (`TRAINER_GUI_JOB_HOST=0`).
So a sweep goes on when the window or the CLI closes, and one process at a time drives it.

Optuna's state lives in `<data>/sweeps/<id>.journal` (its JournalStorage: an append-only file
it replays on load), so a driver that died is replaced by one that loads the same study:
finished trials, intermediate values and the grid points already handed out stay where they
were. Not its RDBStorage: setting up a SQLite file through SQLAlchemy and alembic took 0.7-3 s
per sweep here, the journal a few milliseconds. A trial goes through three steps, in an order a
crash anywhere cannot turn into a lost or repeated trial:

1. Optuna is asked (the trial is RUNNING in the study's file);
2. the trial row is stored, with the job id it will have (`core/store/sweeps.py`);
3. the job is submitted to the queue with that id.

A new driver first adopts study trials with no row (died after 1) and submits rows with no job
(died after 2); a row whose job exists is only ever followed.

The objective of a trial is the last value of the objective metric the job reported, as
SageMaker takes the final value; a trial that ends without one counts as failed. Pruning reads
the same metric as it is stored: each new sample is reported to the trial at its step (the
sample's step, else its position), and a trial Optuna says to prune is stopped with a reason
starting "Pruned": its job is Stopped, the trial is pruned.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from trainer_gui.core.errors import UserError
from trainer_gui.core.joblog import make_job_id
from trainer_gui.core.locks import ProcessLock
from trainer_gui.core.paths import runs_home
from trainer_gui.core.runners.events import JobStatus, StatusChanged
from trainer_gui.core.spec.sweep import (
    CategoricalValues,
    ContinuousRange,
    IntegerRange,
    SweepSpec,
    dump_sweep,
    sweep_from_text,
    trial_name,
    trial_spec,
)
from trainer_gui.core.store import Store
from trainer_gui.core.store.sweeps import (
    ACTIVE_TRIAL,
    COMPLETED,
    RUNNING,
    STOPPED,
    STOPPING,
    T_COMPLETE,
    T_FAILED,
    T_PRUNED,
    T_QUEUED,
    T_RUNNING,
    T_STOPPED,
    SweepRecord,
    TrialRecord,
)
from trainer_gui.services.api import Jobs
from trainer_gui.services.jobs import JobService

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

PRUNED = "Pruned"
"""How the stop reason of a pruned trial's job starts."""
EXIT_OK, EXIT_FAILED, EXIT_STOPPED, EXIT_DETACHED = 0, 1, 3, 130
_WAITING = (JobStatus.PENDING.value, JobStatus.QUEUED.value, JobStatus.STARTING.value)


def sweeps_dir(store: Store) -> Path:
    """Beside the store: the studies and the drivers' locks."""
    return store.path.parent / "sweeps"


def stored_sweep(record: SweepRecord) -> SweepSpec:
    """The sweep a record was started with (its file may have changed or gone since)."""
    base = Path(record.base_dir) if record.base_dir else None
    return sweep_from_text(record.sweep_yaml, base_dir=base, source=f"sweep {record.id}")


def start_sweep(
    store: Store, sweep: SweepSpec, source: str | Path | None = None, project_id: int | None = None
) -> SweepRecord:
    """Record a local sweep as running; its driver starts the trials on its next pass."""
    if sweep.backend.value == "sagemaker":
        raise UserError("a sweep with compute.backend: sagemaker runs as a SageMaker tuning job")
    if sweep.sweep.trial_count < 1:
        raise UserError("sweep.max_trials: the sweep would run no trial")
    objective = sweep.sweep.objective
    return store.create_sweep(
        make_job_id(sweep.name),
        sweep.name,
        sweep.backend.value,
        dump_sweep(sweep),
        objective.metric,
        objective.goal,
        base_dir=str(sweep.base_dir) if sweep.base_dir else None,
        source=str(Path(source).resolve()) if source else None,
        project_id=project_id,
    )


def best_trial(record: SweepRecord, trials: list[TrialRecord]) -> TrialRecord | None:
    """The completed trial with the best objective (ties: the earlier one)."""
    done = [t for t in trials if t.state == T_COMPLETE and t.value is not None]
    if not done:
        return None
    sign = -1.0 if record.goal == "maximize" else 1.0
    return min(done, key=lambda t: (sign * (t.value or 0.0), t.number))


# -- Optuna ---------------------------------------------------------------------------------


def _distributions(sweep: SweepSpec) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in sweep.sweep.parameters.items():
        if isinstance(p, CategoricalValues):
            out[name] = CategoricalDistribution(list(p.values))
        elif isinstance(p, IntegerRange):
            out[name] = IntDistribution(p.min, p.max, log=p.scale == "log")
        elif isinstance(p, ContinuousRange) and p.scale == "reverse_log":
            out[name] = _reversed(p)
        elif isinstance(p, ContinuousRange):  # auto is searched linearly
            out[name] = FloatDistribution(p.min, p.max, log=p.scale == "log")
    return out


def _reversed(p: ContinuousRange) -> Any:
    """SageMaker's ReverseLogarithmic: `1 - value` is spread evenly on a log scale, so values
    near 1 (0.99, 0.999, 0.9999) get as many trials as 0.9. Optuna searches `1 - value` on its
    log scale (positive: the range lies in [0, 1)); `trial_values` turns it back."""
    from optuna.distributions import FloatDistribution

    return FloatDistribution(1.0 - p.max, 1.0 - p.min, log=True)


def trial_values(
    sweep: SweepSpec, params: dict[str, Any], distributions: dict[str, Any]
) -> dict[str, Any]:
    """A trial's hyperparameter values from what Optuna picked (`params`, with the
    `distributions` it picked them from): a reverse_log value comes back from `1 - value`,
    inside the range despite rounding. A study asked by a version that searched it linearly
    keeps its values."""
    out = dict(params)
    for name, p in sweep.sweep.parameters.items():
        if not (isinstance(p, ContinuousRange) and p.scale == "reverse_log" and name in out):
            continue
        if distributions.get(name) == _reversed(p):
            out[name] = min(float(p.max), max(float(p.min), 1.0 - float(out[name])))
    return out


def _sampler(sweep: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    from optuna import samplers

    s = sweep.sweep
    if s.strategy == "grid":
        space: dict[str, list[Any]] = {}
        for name, p in s.parameters.items():
            if isinstance(p, CategoricalValues):
                space[name] = list(p.values)
            elif isinstance(p, IntegerRange):
                space[name] = list(range(p.min, p.max + 1))
        return samplers.GridSampler(space, seed=seed)
    if s.strategy == "random":
        return samplers.RandomSampler(seed=seed)
    # bayesian and hyperband: TPE, after a few random trials (fewer in a small sweep)
    startup = max(1, min(10, s.trial_count // 3))
    return samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _pruner(sweep: SweepSpec) -> optuna.pruners.BasePruner | None:
    from optuna import pruners

    s = sweep.sweep
    if s.strategy == "hyperband":
        return pruners.HyperbandPruner(
            min_resource=s.hyperband.min_resource or 1,
            max_resource=s.hyperband.max_resource or "auto",
        )
    if s.early_stopping != "auto":
        return None
    p = s.pruner
    if p.kind == "hyperband":
        return pruners.HyperbandPruner(
            min_resource=p.min_resource,
            max_resource=p.max_resource,
            reduction_factor=p.reduction_factor,
        )
    return pruners.MedianPruner(
        n_startup_trials=p.startup_trials,
        n_warmup_steps=p.warmup_steps,
        interval_steps=p.interval_steps,
    )


def _probe_ahead(sweep: SweepSpec) -> None:
    """Start the local-process runner's torch check of the trials' interpreter now, on a
    thread of its own, when the trials will need it (the check in `JobService.submit` then
    joins it or finds its answer)."""
    job = sweep.job
    if sweep.backend.value != "local-process":
        return
    if job.source.command is not None and job.distribution.kind == "none":
        return
    from trainer_gui.core import pyenv
    from trainer_gui.core.runners.local_process import default_python

    pyenv.probe_ahead(default_python())


# -- the driver -----------------------------------------------------------------------------


@dataclass
class _Watch:
    """What the driver follows of one active trial's metric stream."""

    trial: optuna.trial.Trial
    after_id: int = 0
    index: int = 0
    steps: set[int] = field(default_factory=set)
    stopping: bool = False


@dataclass
class _Live:
    record: SweepRecord
    sweep: SweepSpec
    study: optuna.study.Study
    lock: ProcessLock
    pruning: bool
    watches: dict[int, _Watch] = field(default_factory=dict)
    stops_sent: set[int] = field(default_factory=set)


class SweepDriver:
    """Drives the active sweeps this process holds the lock of (module notes)."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        # A trial that ends is replaced at once, not on the next pass: the queue's wall time
        # stays close to a shell loop's (bench/sweep.py).
        self._unsubscribe = service.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, StatusChanged) and event.status.is_terminal and self.live:
            threading.Thread(target=self._tick_quietly, name="sweep-tick", daemon=True).start()

    def _tick_quietly(self) -> None:
        try:
            self.tick()
        except Exception:
            log.exception("sweeps: a pass failed")

    @property
    def store(self) -> Store:
        return self.service.store

    def tick(self) -> None:
        with self._lock:
            ids = self.store.active_sweep_ids()
            for gone in [s for s in self.live if s not in ids]:
                self._close(gone)
            submitted = False
            for sweep_id in ids:
                try:
                    submitted |= self._drive(sweep_id)
                except UserError as exc:
                    log.warning("sweep %s: %s", sweep_id, exc)
                    self._close(sweep_id)
                    self.store.set_sweep_status(sweep_id, STOPPED, str(exc))
                except Exception:
                    log.exception("sweep %s: could not drive it", sweep_id)
            if submitted:
                self.service._schedule_quietly()

    def close(self) -> None:
        self._unsubscribe()
        with self._lock:
            for sweep_id in list(self.live):
                self._close(sweep_id)

    def _close(self, sweep_id: str) -> None:
        live = self.live.pop(sweep_id, None)
        if live is not None:
            live.lock.release()

    # -- opening a sweep ---------------------------------------------------------------------

    def _open(self, sweep_id: str) -> _Live | None:
        folder = sweeps_dir(self.store)
        folder.mkdir(parents=True, exist_ok=True)
        lock = ProcessLock(folder / f"{sweep_id}.lock")
        if not lock.acquire():
            return None  # another process drives it
        try:
            record = self.store.get_sweep(sweep_id)
            if record is None:
                raise UserError("its record is gone")
            sweep = stored_sweep(record)
            _probe_ahead(sweep)  # while Optuna loads: the first trial's check finds the answer
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

            journal = str(folder / f"{sweep_id}.journal")
            # Only the holder of the sweep's lock writes, so a journal lock left by a killed
            # driver is stale after 3 s (Optuna's shortest without a warning), not 30.
            backend = JournalFileBackend(journal, JournalFileSymlinkLock(journal, grace_period=3))
            storage = optuna.storages.JournalStorage(backend)
            rows = self.store.trials(sweep_id)
            seed = (sweep.sweep.seed or 0) + len(rows)  # a restart does not replay the values
            pruner = _pruner(sweep)
            study = optuna.create_study(
                storage=storage,
                study_name=sweep_id,
                direction="maximize" if record.goal == "maximize" else "minimize",
                sampler=_sampler(sweep, seed),
                pruner=pruner,
                load_if_exists=True,
            )
        except BaseException:
            lock.release()
            raise
        live = _Live(record, sweep, study, lock, pruning=pruner is not None)
        self._adopt(live, rows)
        return live

    def _adopt(self, live: _Live, rows: list[TrialRecord]) -> None:
        """Rows for study trials asked by a driver that died before storing them, and a
        watch on every active trial."""
        import optuna

        known = {r.number for r in rows}
        for frozen in live.study.get_trials(deepcopy=False):
            if frozen.state == optuna.trial.TrialState.RUNNING and frozen.number not in known:
                log.info(
                    "sweep %s: trial %d was asked but never stored", live.record.id, frozen.number
                )
                values = trial_values(live.sweep, frozen.params, frozen.distributions)
                self._store_trial(live, frozen.number, values)
        for frozen in live.study.get_trials(deepcopy=False):
            if frozen.state == optuna.trial.TrialState.RUNNING:
                trial = optuna.trial.Trial(live.study, frozen._trial_id)
                live.watches[frozen.number] = _Watch(trial, steps=set(frozen.intermediate_values))

    def _store_trial(self, live: _Live, number: int, params: dict[str, Any]) -> TrialRecord:
        trial_spec(live.sweep, params, number)  # the values fit the ranges
        job_id = make_job_id(trial_name(live.sweep.name, number))
        self.store.add_trial(live.record.id, number, job_id, params)
        trial = next(t for t in self.store.trials(live.record.id) if t.number == number)
        return trial

    # -- one pass ----------------------------------------------------------------------------

    def _drive(self, sweep_id: str) -> bool:
        """One look at a sweep; whether a job was submitted."""
        live = self.live.get(sweep_id)
        if live is None:
            live = self._open(sweep_id)
            if live is None:
                return False
            self.live[sweep_id] = live
        record = self.store.get_sweep(sweep_id)
        if record is None or not record.is_active:
            self._close(sweep_id)
            return False
        live.record = record
        submitted = False
        trials = self.store.trials(sweep_id)
        for trial in trials:
            if trial.is_active:
                submitted |= self._follow(live, trial)
        trials = self.store.trials(sweep_id)
        active = [t for t in trials if t.is_active]
        s = live.sweep.sweep
        runtime = s.max_runtime_seconds
        if record.status == RUNNING and runtime and time.time() - record.created_at > runtime:
            self.store.set_sweep_status(sweep_id, STOPPING, "Its max_runtime_seconds passed")
            return submitted
        if record.status == STOPPING:
            for trial in active:
                if trial.number not in live.stops_sent:
                    live.stops_sent.add(trial.number)
                    self._stop_job(trial.job_id, record.message or "Stopped with the sweep")
            if not active:
                self.store.set_sweep_status(sweep_id, STOPPED, record.message)
                self._close(sweep_id)
            return submitted
        total = len(trials)
        while len(active) < s.max_parallel and total < s.trial_count:
            new = self._ask(live)
            active.append(new)
            total += 1
            self._submit(live, new)
            submitted = True
        if not active and total >= s.trial_count:
            best = best_trial(record, trials)
            note = f"best: trial {best.number} ({best.value:g})" if best else "no trial completed"
            self.store.set_sweep_status(sweep_id, COMPLETED, note)
            self._close(sweep_id)
        return submitted

    def _ask(self, live: _Live) -> TrialRecord:
        trial = live.study.ask(_distributions(live.sweep))
        live.watches[trial.number] = _Watch(trial)
        values = trial_values(live.sweep, trial.params, trial.distributions)
        return self._store_trial(live, trial.number, values)

    def _submit(self, live: _Live, trial: TrialRecord) -> None:
        """Submit a stored trial's job (again, if a submit was cut short before its record)."""
        spec = trial_spec(live.sweep, trial.params, trial.number)
        leftover = runs_home() / trial.job_id
        if leftover.is_dir() and self.store.get_job(trial.job_id) is None:
            shutil.rmtree(leftover)  # the folder of a submit that died before recording it
        try:
            self.service.submit(
                spec, project_id=live.record.project_id, job_id=trial.job_id, schedule=False
            )
        except UserError as exc:  # the backend refuses it (Docker gone, a bad interpreter)
            log.warning("sweep %s: trial %d cannot start: %s", live.record.id, trial.number, exc)
            self._finish(live, trial, T_FAILED, None)
            return
        self._label(live, trial)

    def _label(self, live: _Live, trial: TrialRecord) -> None:
        """The sweep in the trial job's backend ids, as SageMaker trials carry it
        (`core.aws.tuning`: sweep_id, sweep_parameters, sweep_objective) and as the runs table
        groups by it (`sweep`)."""
        record = live.record
        self.store.update_backend_ids(
            trial.job_id,
            {
                "sweep": record.id,
                "sweep_id": record.id,
                "sweep_trial": trial.number,
                "sweep_parameters": trial.params,
                "sweep_objective": {"metric": record.objective, "goal": record.goal},
            },
        )

    def _follow(self, live: _Live, trial: TrialRecord) -> bool:
        """Bring an active trial up to date with its job; whether it was submitted now."""
        job = self.store.get_job(trial.job_id)
        if job is None:
            self._submit(live, trial)
            return True
        if "sweep_id" not in job.backend_ids:  # submitted by a driver that died right after
            self._label(live, trial)
        if not job.is_terminal and job.status not in _WAITING and trial.state == T_QUEUED:
            self.store.set_trial_state(live.record.id, trial.number, T_RUNNING)
        self._report(live, trial)
        if not job.is_terminal:
            return False
        self._report(live, trial)  # samples stored with the final status
        value = self.store.last_metrics(job.id).get(live.record.objective)
        if value is not None and not math.isfinite(value):
            value = None
        reason = job.failure_reason or ""
        if job.status == JobStatus.COMPLETED.value:
            self._finish(live, trial, T_COMPLETE if value is not None else T_FAILED, value)
        elif job.status == JobStatus.STOPPED.value and reason.startswith(PRUNED):
            self._finish(live, trial, T_PRUNED, value)
        elif job.status == JobStatus.STOPPED.value:
            self._finish(live, trial, T_STOPPED, value)
        else:
            self._finish(live, trial, T_FAILED, value)
        return False

    def _report(self, live: _Live, trial: TrialRecord) -> None:
        """New samples of the objective to Optuna; stop the trial if it says to prune."""
        watch = live.watches.get(trial.number)
        if watch is None:
            return
        samples = self.store.metric_samples(
            trial.job_id, name=live.record.objective, after_id=watch.after_id
        )
        reported = False
        for row_id, sample in samples:
            watch.after_id = row_id
            step = sample.step if sample.step is not None else watch.index
            watch.index += 1
            if step in watch.steps or not math.isfinite(sample.value):
                continue
            watch.steps.add(step)
            watch.trial.report(sample.value, step)
            reported = True
        if not (reported and live.pruning and not watch.stopping):
            return
        if watch.trial.should_prune():
            watch.stopping = True
            step = max(watch.steps)
            kind = (
                "hyperband"
                if live.sweep.sweep.strategy == "hyperband"
                else (live.sweep.sweep.pruner.kind)
            )
            self._stop_job(trial.job_id, f"{PRUNED} by the {kind} pruner at step {step}")

    def _stop_job(self, job_id: str, reason: str) -> None:
        """Stop a trial's job with `reason` as its stop reason, off the driver's thread
        (a process gets a grace period to exit)."""
        service = self.service

        def stop() -> None:
            try:
                record = service.get(job_id)
                if record.is_terminal:
                    return
                if record.status != JobStatus.QUEUED.value:
                    service.context(record).request_stop(reason)
                service.stop(job_id, wait=0)
            except Exception:
                log.exception("could not stop trial job %s", job_id)

        threading.Thread(target=stop, name=f"sweep-stop-{job_id}", daemon=True).start()

    def _finish(self, live: _Live, trial: TrialRecord, state: str, value: float | None) -> None:
        """Tell Optuna first, then the row: a crash in between tells Optuna again (refused
        quietly), never the other way round."""
        from optuna.trial import TrialState

        watch = live.watches.pop(trial.number, None)
        try:
            if state == T_COMPLETE:
                live.study.tell(trial.number, value)
            elif state == T_PRUNED:
                live.study.tell(trial.number, state=TrialState.PRUNED)
            else:
                live.study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError) as exc:  # already told (before a crash)
            log.debug("sweep %s: trial %d: %s", live.record.id, trial.number, exc)
        if watch is not None and watch.stopping and state != T_PRUNED:
            log.info("sweep %s: trial %d ended before its pruning", live.record.id, trial.number)
        self.store.set_trial_state(live.record.id, trial.number, state, value)


_DRIVERS: weakref.WeakKeyDictionary[JobService, SweepDriver] = weakref.WeakKeyDictionary()
_DRIVERS_LOCK = threading.Lock()


def driver(service: JobService) -> SweepDriver:
    with _DRIVERS_LOCK:
        found = _DRIVERS.get(service)
        if found is None:
            found = _DRIVERS[service] = SweepDriver(service)
        return found


def tick(service: JobService) -> None:
    """Drive every active sweep one step (the job host calls this on each pass; one query
    when there is none)."""
    if not service.store.active_sweep_ids() and service not in _DRIVERS:
        return
    driver(service).tick()


def active(store: Store) -> bool:
    """Whether a sweep still has work (the job host stays while one does)."""
    return bool(store.active_sweep_ids())


def release(service: JobService) -> None:
    """Let go of the sweeps this process drives (another process takes them over)."""
    with _DRIVERS_LOCK:
        found = _DRIVERS.pop(service, None)
    if found is not None:
        found.close()


# -- commands -------------------------------------------------------------------------------


def stop_sweep(service: Jobs, key: str) -> SweepRecord:
    """No new trials; the running ones are stopped by the driver (the job host, or the
    caller's own `tick` without one)."""
    store = service.store
    record = require_sweep(store, key)
    if record.status == RUNNING:
        store.set_sweep_status(record.id, STOPPING, "Stopped by the user")
    if isinstance(service, JobService):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tick(service)
            found = store.get_sweep(record.id)
            if found is None or not found.is_active or record.id not in driver(service).live:
                break
            time.sleep(0.2)
    else:
        ping = getattr(service, "ping", None)
        if ping is not None:
            ping()  # a job host runs, to drive it
    found = store.get_sweep(record.id)
    assert found is not None
    return found


def require_sweep(store: Store, key: str) -> SweepRecord:
    record = store.get_sweep(key)
    if record is None:
        raise UserError(f"No sweep with id or name {key!r} (trainer-gui sweep show lists them)")
    return record


def trial_line(record: SweepRecord, trial: TrialRecord, best: TrialRecord | None) -> str:
    values = ", ".join(f"{k}={v}" for k, v in trial.params.items())
    value = "-" if trial.value is None else f"{trial.value:.6g}"
    mark = " *" if best is not None and best.number == trial.number else ""
    return f"  trial {trial.number}{mark}: {trial.state}  {record.objective}={value}  {values}"


def run_sweep(
    service: Jobs,
    sweep: SweepSpec,
    *,
    detach: bool = False,
    source: str | Path | None = None,
    project_id: int | None = None,
    out: TextIO | None = None,
    poll: float = 0.5,
) -> int:
    """Start a local sweep; unless detached, print trials as they end until it is done.

    With the job host (`JobHostClient`) the host drives it and this only watches; in this
    process (`JobService`) this drives it, and a detached sweep waits for the next driver."""
    out = out or sys.stdout
    record = start_sweep(service.store, sweep, source, project_id)
    hosted = not isinstance(service, JobService)
    s = sweep.sweep
    _line(out, f"Sweep {record.id}: {s.strategy}, {s.trial_count} trials, {s.max_parallel} at once")
    if hosted:
        ping = getattr(service, "ping", None)
        if ping is not None:
            ping()  # the job host runs: it drives the sweep from now on
    if detach:
        where = "the job host drives it" if hosted else "a job host drives it when one runs"
        _line(out, f"Detached; {where}.\n  follow: trainer-gui sweep show {record.id}")
        return EXIT_OK
    told: set[int] = set()
    try:
        while True:
            if not hosted:
                tick(service)  # type: ignore[arg-type]
            now = service.store.get_sweep(record.id)
            assert now is not None
            trials = service.store.trials(record.id)
            for trial in trials:
                if not trial.is_active and trial.number not in told:
                    told.add(trial.number)
                    _line(out, trial_line(now, trial, None))
            if not now.is_active:
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        _line(out, f"\nDetached; the sweep goes on.\n  stop: trainer-gui sweep stop {record.id}")
        return EXIT_DETACHED
    finally:
        if not hosted:
            release(service)  # type: ignore[arg-type]
    best = best_trial(now, trials)
    _line(out, f"Sweep {record.id}: {now.status}" + (f" ({now.message})" if now.message else ""))
    if best is not None:
        _line(out, f"Best trial: {best.number} ({best.job_id})")
    return {COMPLETED: EXIT_OK, STOPPED: EXIT_STOPPED}.get(now.status, EXIT_FAILED)


def _line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


__all__ = [
    "ACTIVE_TRIAL",
    "PRUNED",
    "SweepDriver",
    "run_sweep",
    "start_sweep",
    "stop_sweep",
    "tick",
]
