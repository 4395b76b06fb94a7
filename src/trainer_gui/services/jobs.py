"""The job service: starts jobs on a backend and turns runner events into stored state.

The in-process implementation of the jobs interface (`services.api.Jobs`): the CLI uses it, and
so does the job host, the child process that follows the window's jobs. Exactly one process
ingests a given job at a time (a lock that the OS drops when the holder dies), so logs and
metrics are stored once, and any process can take over a job whose follower went away,
resuming from the stored offsets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_gui.core.aws.defaults import with_aws_defaults
from trainer_gui.core.errors import UserError
from trainer_gui.core.joblog import JOB_LOG, format_log_line, make_job_id
from trainer_gui.core.locks import ProcessLock
from trainer_gui.core.metrics import MetricsParser
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.paths import runs_home
from trainer_gui.core.resources import (
    GPU_IDS_KEY,
    LOCAL_BACKENDS,
    MAX_PARALLEL_KEY,
    PAUSED_KEY,
    Needs,
    assign_gpus,
    default_max_parallel,
    fits,
    gpus_per_host,
    machine_gpus,
    needs_of,
    too_many_gpus,
)
from trainer_gui.core.runners import warm
from trainer_gui.core.runners.base import JobContext, JobHandle, Runner
from trainer_gui.core.runners.events import (
    AnyEvent,
    ArtifactReady,
    BackendInfo,
    JobEvent,
    JobStatus,
    LogBatch,
    LogLine,
    MetricBatch,
    StatusChanged,
)
from trainer_gui.core.runners.follow import STARTING_DIED, disk_full
from trainer_gui.core.runners.sysmetrics import is_system_metric
from trainer_gui.core.spec import dump_spec
from trainer_gui.core.spec.model import Backend, JobSpec
from trainer_gui.core.store import JobRecord, Store
from trainer_gui.core.store.phases import PhaseRecorder
from trainer_gui.core.store.queue import QueueEntry
from trainer_gui.services.api import EventListener, JobBoard

if TYPE_CHECKING:
    from trainer_gui.core.aws.session import AwsSession

log = logging.getLogger(__name__)

#: In a job's run folder: held by the one process that follows (or starts, or submits) it.
FOLLOWER_LOCK = ".follower.lock"
#: How many parsed specs `JobService.spec_of` keeps.
SPEC_CACHE = 32


def create_runner(backend: str) -> Runner:
    """Backends are imported on first use, so the window opens without docker or boto3."""
    if backend == Backend.LOCAL_PROCESS.value:
        from trainer_gui.core.runners.local_process import LocalProcessRunner

        return LocalProcessRunner()
    if backend == Backend.DOCKER.value:
        from trainer_gui.core.runners.docker import DockerRunner

        return DockerRunner()
    if backend == Backend.SAGEMAKER.value:
        from trainer_gui.core.runners.sagemaker import SageMakerRunner

        return SageMakerRunner()
    raise UserError(f"unknown backend {backend!r}; use local-process, docker or sagemaker")


class _Follower:
    """Per-job ingest state: the parser, the text log and the lock that makes us the writer.

    Exactly once: a LogBatch's job.log lines, metric samples and offsets commit together (the
    store records job.log's length with the offsets), and a follower that takes over first cuts
    job.log back to that length, so a process that died anywhere in a batch leaves nothing
    that the next follower writes again."""

    def __init__(self, service: JobService, record: JobRecord, spec: JobSpec, lock: ProcessLock):
        self.service = service
        self.job_id = record.id
        self.lock = lock
        self.parser = MetricsParser(
            [(m.name, m.regex) for m in spec.metric_definitions],
            auto_detect=True,
            not_metrics=[*spec.hyperparameters, *spec.environment],
        )
        self.log_path = Path(record.run_dir) / "logs" / JOB_LOG
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._io = threading.Lock()
        self.closed = False
        self.phases = PhaseRecorder(service.store, record.id)  # stores PhaseChanged too
        self._cut_log_to_store()

    def _cut_log_to_store(self) -> None:
        """Drop job.log bytes a previous follower wrote but never committed (it died between
        writing and committing): they come again from the stored offsets."""
        store = self.service.store
        committed = store.log_size(self.job_id)
        if committed is None:
            if store.get_offsets(self.job_id):
                return  # ingested by a version that did not record the length: keep it all
            committed = 0  # nothing committed yet, so nothing in job.log counts
        try:
            size = self.log_path.stat().st_size
        except FileNotFoundError:
            return
        if size > committed:
            log.info(
                "job %s: cutting %s from %d to %d bytes (lines of a batch that never committed)",
                self.job_id,
                self.log_path,
                size,
                committed,
            )
            with open(self.log_path, "r+b") as fh:
                fh.truncate(committed)

    def __call__(self, event: JobEvent) -> None:
        if self.closed:  # this process let go; whoever takes over resumes from stored offsets
            return
        try:
            self._handle(event)
        except Exception as exc:
            full = disk_full(exc, self.log_path if isinstance(exc, OSError) else self.db_path)
            if full is not None:  # the runner stops the job and records why (no traceback)
                raise full from None
            log.exception("failed to record %r for job %s", type(event).__name__, self.job_id)

    @property
    def db_path(self) -> Path:
        return self.service.store.path

    def _append(self, lines: list[LogLine]) -> tuple[int, int]:
        """Append to job.log; the length before and after (both the file's real length)."""
        data = "".join(format_log_line(ln.time, ln.host, ln.stream, ln.text) for ln in lines)
        with open(self.log_path, "ab") as fh:
            before = fh.seek(0, 2)
            try:
                fh.write(data.encode("utf-8", "replace"))
                fh.flush()
            except BaseException:
                fh.truncate(before)
                raise
            return before, fh.tell()

    def _store(self, event: JobEvent) -> list[MetricSample]:
        """Write what `event` says to the store (and job.log); the samples a log batch held."""
        store = self.service.store
        samples: list[MetricSample] = []
        if isinstance(event, LogBatch):
            samples = self.parser.parse_lines((ln.text, ln.host, ln.time) for ln in event.lines)
            samples = [*samples, *event.samples] if event.samples else samples
            if not event.lines:
                store.record_batch(self.job_id, event.offsets, samples)
                return samples
            before, after = self._append(event.lines)
            try:
                store.record_batch(self.job_id, event.offsets, samples, log_size=after)
            except BaseException:
                with open(self.log_path, "r+b") as fh:  # job.log holds what the store holds
                    fh.truncate(before)
                raise
        elif isinstance(event, StatusChanged):
            store.set_status(self.job_id, event.status.value, event.message, event.time)
        elif isinstance(event, BackendInfo):
            store.update_backend_ids(self.job_id, dict(event.data))
        elif isinstance(event, ArtifactReady):
            record = store.get_job(self.job_id)
            artifacts = dict((record.backend_ids.get("artifacts") or {}) if record else {})
            artifacts[event.kind] = event.path
            store.update_backend_ids(self.job_id, {"artifacts": artifacts})
        return samples

    def _back_to_the_queue(self, event: JobEvent) -> bool:
        """A queued job whose starter died before anything of it ran goes back to its place
        in the queue, instead of failing: the queue promised to run it."""
        if not (
            isinstance(event, StatusChanged)
            and event.status is JobStatus.FAILED
            and event.message.startswith(STARTING_DIED)
        ):
            return False
        return self.service.store.requeue(self.job_id, "Its start was cut short; queued again")

    def _handle(self, event: JobEvent) -> None:
        if self._back_to_the_queue(event):
            self.service._notify(StatusChanged(self.job_id, JobStatus.QUEUED, ""))
            self.service._release(self.job_id, only=self)
            threading.Thread(
                target=self.service._schedule_quietly, name="queue", daemon=True
            ).start()
            return
        with self._io:
            # Checked again under the lock: once _release has let go, another process may
            # already resume from the stored offsets, and this batch must not land as well.
            if self.closed:
                return
            samples = self._store(event)
            training = [s for s in samples if not is_system_metric(s.name)]
            derived = self.phases.record(event, training)  # first log line, first metric
        for phase in derived:
            self.service._notify(phase)
        self.service._notify(event)
        if samples:
            self.service._notify(MetricBatch(self.job_id, samples))
        if isinstance(event, StatusChanged) and event.status.is_terminal:
            self.service.store.dequeue(self.job_id)  # a row left by a starter that died
            self.service._release(self.job_id, only=self)


class JobService:
    """The `Jobs` interface with the jobs followed in this process (the CLI, the job host)."""

    def __init__(self, store: Store, runners: dict[str, Runner] | None = None) -> None:
        self._board = JobBoard(store)
        self._runners: dict[str, Runner] = dict(runners or {})
        self._followers: dict[str, _Follower] = {}
        self._handles: dict[str, JobHandle] = {}
        self._waiting: dict[str, JobHandle] = {}  # queued here: finished with the real handle
        self._lock = threading.RLock()
        self._schedule_lock = threading.Lock()
        self._shut = False  # shut down: background queue work stops
        self._specs: dict[tuple[str, str], JobSpec] = {}  # see spec_of

    @property
    def store(self) -> Store:
        return self._board.store

    # -- wiring -----------------------------------------------------------------------------

    def runner(self, backend: str) -> Runner:
        with self._lock:
            if backend not in self._runners:
                self._runners[backend] = create_runner(backend)
            return self._runners[backend]

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Listeners run on runner threads; the UI bridge batches them onto the GUI thread."""
        return self._board.subscribe(listener)

    def _notify(self, event: AnyEvent) -> None:
        self._board.notify(event)

    def _release(self, job_id: str, only: _Follower | None = None) -> None:
        """Let go of the job's follower; with `only`, just that one: a job put back in the
        queue may already have a new follower (its new start) that must not be closed."""
        with self._lock:
            follower = self._followers.get(job_id)
        if follower is None or (only is not None and follower is not only):
            return
        with follower._io:
            follower.closed = True
        follower.lock.release()
        # Only now: whoever sees the job as not followed here can also take its lock.
        with self._lock:
            if self._followers.get(job_id) is follower:
                del self._followers[job_id]

    # -- jobs -------------------------------------------------------------------------------

    def get(self, key: str) -> JobRecord:
        return self._board.get(key)

    def spec_of(self, record: JobRecord) -> JobSpec:
        """A copy of the job's spec: its text is parsed once (starting a queued job reads it
        several times, and the YAML parse is what the warm loop's start waited on: issue 18)."""
        key = (record.spec_yaml, str(record.backend_ids.get("spec_base_dir")))
        with self._lock:
            spec = self._specs.get(key)
        if spec is None:
            spec = self._board.spec_of(record)
            with self._lock:
                self._specs[key] = spec
                while len(self._specs) > SPEC_CACHE:
                    del self._specs[next(iter(self._specs))]
        return spec.model_copy(deep=True)

    def context(self, record: JobRecord) -> JobContext:
        return JobContext(
            job_id=record.id,
            spec=self.spec_of(record),
            run_dir=Path(record.run_dir),
            python=_str_or_none(record.backend_ids.get("python")),
            offsets=self.store.get_offsets(record.id),
            backend_ids=dict(record.backend_ids),
            started_at=record.started_at,
        )

    def submit(
        self,
        spec: JobSpec,
        project_id: int | None = None,
        python: str | None = None,
        job_id: str | None = None,
        schedule: bool = True,
    ) -> JobHandle:
        """Check, record and start a job; returns at once with a handle to wait on.

        A local job (local-process, docker) goes through the queue: recorded as Queued, it
        starts when the resources it needs are free (at once on an idle machine); the handle
        is "started" at once, since the queue keeps the job whatever happens to this process.
        A SageMaker job's empty profile/region/role/S3 prefix come from the AWS settings here,
        so the stored spec says where it ran and re-attaching needs no settings. `schedule`
        False leaves starting queued jobs to the caller (the job host answers first)."""
        spec = with_aws_defaults(spec)
        backend = spec.compute.backend.value
        runner = self.runner(backend)
        runner.check(spec, python)
        if backend in LOCAL_BACKENDS:
            # Before anything is recorded: a refused job leaves no record (a Pending one would
            # later be taken for a job whose start died) and no run folder.
            reason = too_many_gpus(spec, machine_gpus())
            if reason is not None:
                raise UserError(reason)
        job_id = job_id or make_job_id(spec.name)
        run_dir = runs_home() / job_id
        run_dir.mkdir(parents=True, exist_ok=False)
        # The job's follower lock before its record: from the record on, the job is active,
        # and until it is queued (or followed) a re-attach, here or in another process (the job
        # host's look for unfollowed jobs), would take it for one whose start died and fail it
        # (a cold machine's first store writes and queue checks can take seconds).
        lock = ProcessLock(run_dir / FOLLOWER_LOCK)
        if not lock.acquire():  # cannot happen for a new folder, but never ingest twice
            raise UserError(f"job {job_id} is already followed by another process")
        follower: _Follower | None = None
        try:
            text = dump_spec(spec)
            (run_dir / "job.yaml").write_text(text, encoding="utf-8")
            self.store.create_job(job_id, spec.name, backend, text, str(run_dir), project_id)
            ids: dict[str, Any] = {"spec_base_dir": str(spec.base_dir) if spec.base_dir else None}
            if python:
                ids["python"] = python
            project = self.store.get_project(project_id) if project_id is not None else None
            if project is not None and not warm.project_allows(project.settings):
                ids["warm"] = False  # the project opted out of warm starts (issue 18)
            if backend in LOCAL_BACKENDS:
                need = needs_of(spec)
                ids["needs"] = [need.gpus, need.slots]
                self.store.update_backend_ids(job_id, ids)
                return self._enqueue(job_id, need, schedule, lock)
            self.store.update_backend_ids(job_id, ids)
            record = self.get(job_id)
            follower = self._take(record, spec, lock)
        finally:
            if follower is None:  # queued (the scheduler takes it over), or failed
                lock.release()
        if follower is None:  # cannot happen for a new folder, but never ingest twice
            raise UserError(f"job {job_id} is already followed by another process")
        ctx = self.context(record)
        ctx.spec = spec
        handle = runner.submit(ctx, follower)
        self._keep(handle)
        return handle

    def _keep(self, handle: JobHandle) -> None:
        """Remember the handle; when following ends without a final status (credentials gone,
        Docker unreachable), let go of the job so a later `recover` can take it again. A job
        that ended frees its resources: queued jobs may start."""
        with self._lock:
            self._handles[handle.job_id] = handle
            follower = self._followers.get(handle.job_id)

        def done(finished: JobHandle) -> None:
            self._release(finished.job_id, only=follower)
            threading.Thread(target=self._schedule_quietly, name="queue", daemon=True).start()

        handle.on_done(done)

    # -- the queue ----------------------------------------------------------------------------

    def _enqueue(
        self, job_id: str, need: Needs, schedule: bool = True, lock: ProcessLock | None = None
    ) -> JobHandle:
        """Queue the recorded job; `lock`, its follower lock held while it was recorded, goes
        once it is queued (the scheduler takes it to start it)."""
        waiting = JobHandle(job_id)
        waiting.mark_started()  # the queue keeps it, whatever happens to this process
        with self._lock:
            self._handles[job_id] = waiting
            self._waiting[job_id] = waiting
        waiting.on_cancel(lambda: self._cancel_soon(job_id))
        self.store.enqueue(job_id, need.gpus, need.slots)
        if lock is not None:
            lock.release()
        self._notify(StatusChanged(job_id, JobStatus.QUEUED, ""))
        if schedule:
            self.schedule()
        with self._lock:  # started at once (an idle machine): the runner's own handle
            return self._handles.get(job_id, waiting)

    def _cancel_soon(self, job_id: str) -> None:
        """Cancel of a handle still in the queue: out of it, or stopped if it started."""
        if not self.cancel_queued(job_id):
            threading.Thread(
                target=self.stop, args=(job_id,), kwargs={"wait": 0}, daemon=True
            ).start()

    def _schedule_quietly(self) -> None:
        if self._shut:
            return
        try:
            self.schedule()
        except Exception:
            if not self._shut:
                log.exception("the queue could not start the next job")

    def _prune(self, entries: list[QueueEntry]) -> list[QueueEntry]:
        """Drop rows of jobs that ended or are gone (their starter died before the row went)."""
        kept = []
        for entry in entries:
            record = self.store.get_job(entry.job_id)
            if record is None or JobStatus(record.status).is_terminal:
                self.store.dequeue(entry.job_id)
            else:
                kept.append(entry)
        return kept

    def _running_needs(self, queued: set[str]) -> list[Needs]:
        """What the local jobs that already left the queue hold."""
        held = []
        for record in self.store.list_jobs(active_only=True):
            if record.backend not in LOCAL_BACKENDS or record.id in queued:
                continue
            stored = record.backend_ids.get("needs")
            if isinstance(stored, list) and len(stored) == 2:
                held.append(Needs(int(stored[0]), int(stored[1])))
            else:  # recorded before the queue
                try:
                    held.append(needs_of(self.spec_of(record)))
                except UserError:
                    held.append(Needs(0, 1))
        return held

    def schedule(self) -> list[str]:
        """Start the queued jobs, in order, while the resources they need are free; returns
        the ids started. Strict order: a job waits while the one ahead of it cannot start."""
        with self._schedule_lock:
            store = self.store
            if store.app_state(PAUSED_KEY, False):
                return []
            entries = self._prune(store.queue_entries())
            waiting = [e for e in entries if e.claimed_at is None]
            if not waiting:
                return []
            slots = int(store.app_state(MAX_PARALLEL_KEY) or default_max_parallel())
            gpus = machine_gpus()
            running = [Needs(e.gpus, e.slots) for e in entries if e.claimed_at is not None]
            running += self._running_needs({e.job_id for e in entries})
            started = []
            for entry in waiting:
                need = Needs(entry.gpus, entry.slots)
                if not fits(need, running, slots, gpus):
                    break
                # The job's follower lock before the claim: while this process starts it, no
                # re-attach (here or elsewhere) can take it for a job that never started; if
                # this process dies, the lock goes with it and a re-attach puts it back.
                follower = self._take_queued(entry.job_id)
                if follower is None:
                    continue  # gone, or another process is starting it
                if not store.claim(entry.job_id):
                    self._release(entry.job_id)
                    continue  # cancelled, or another process's scheduler was first
                self._give_gpus(entry.job_id, gpus)
                running.append(need)
                self._notify(StatusChanged(entry.job_id, JobStatus.STARTING, ""))
                self._start_claimed(entry.job_id, follower)
                started.append(entry.job_id)
            return started

    def _take_queued(self, job_id: str) -> _Follower | None:
        record = self.store.get_job(job_id)
        if record is None or record.status != JobStatus.QUEUED.value:
            return None
        try:
            return self._take(record, self.spec_of(record))
        except UserError as exc:
            log.warning("queued job %s cannot be read: %s", job_id, exc)
            return None

    def _give_gpus(self, job_id: str, machine: int) -> None:
        """Pick the claimed job's devices: distinct from those of the local jobs running, one
        list per host (the runners pass them on: Docker device ids, CUDA_VISIBLE_DEVICES)."""
        record = self.get(job_id)
        try:
            spec = self.spec_of(record)
        except UserError:
            return
        per_host = gpus_per_host(spec)
        if per_host == 0 or machine == 0:
            return
        taken: set[int] = set()
        for other in self.store.list_jobs(active_only=True):
            if other.id != job_id and other.backend in LOCAL_BACKENDS:
                for ids in other.backend_ids.get(GPU_IDS_KEY) or []:
                    taken.update(int(i) for i in ids)
        given = assign_gpus(per_host, spec.compute.host_count, machine, taken)
        if given is None:  # fewer free than counted (a job from before the queue): share
            given = assign_gpus(per_host, spec.compute.host_count, machine, ())
        self.store.update_backend_ids(job_id, {GPU_IDS_KEY: given})

    def _start_claimed(self, job_id: str, follower: _Follower) -> None:
        """Start a job this process claimed from the queue (holding its follower lock)."""
        record = self.get(job_id)
        try:
            spec = self.spec_of(record)
            runner = self.runner(record.backend)
            python = _str_or_none(record.backend_ids.get("python"))
            runner.check(spec, python)  # again: Docker or the interpreter may have gone since
            ctx = self.context(self.get(job_id))
            ctx.spec = spec
            handle = runner.submit(ctx, follower)
        except Exception as exc:
            message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, UserError):
                log.exception("cannot start queued job %s", job_id)
            self.store.dequeue(job_id)
            self.store.set_status(job_id, JobStatus.FAILED.value, message)
            self._notify(StatusChanged(job_id, JobStatus.FAILED, message))
            self._release(job_id)
            with self._lock:
                waiting = self._waiting.pop(job_id, None)
            if waiting is not None:
                waiting._finish(JobStatus.FAILED)
            return
        with self._lock:
            waiting = self._waiting.pop(job_id, None)
        self._keep(handle)
        if waiting is not None:
            handle.on_done(lambda h: waiting._finish(h.status or JobStatus.FAILED))

        def dequeue_once_running() -> None:
            while not handle.wait_started(1.0):
                if self._shut or handle.done:
                    break
            if not self._shut:
                self.store.dequeue(job_id)

        threading.Thread(target=dequeue_once_running, name="queue-start", daemon=True).start()

    def cancel_queued(self, job_id: str) -> bool:
        """Take a job out of the queue before it starts (False when it already started)."""
        if not self.store.cancel_queued(job_id):
            return False
        self._notify(StatusChanged(job_id, JobStatus.STOPPED, "Cancelled while queued"))
        with self._lock:
            waiting = self._waiting.pop(job_id, None)
            self._handles.pop(job_id, None)
        if waiting is not None:
            waiting._finish(JobStatus.STOPPED)
        return True

    def _take(
        self, record: JobRecord, spec: JobSpec, held: ProcessLock | None = None
    ) -> _Follower | None:
        """The job's follower, with its lock (`held`: already taken by the caller)."""
        with self._lock:
            if record.id in self._followers:
                return None
            lock = held or ProcessLock(Path(record.run_dir) / FOLLOWER_LOCK)
            if held is None and not lock.acquire():
                return None
            follower = _Follower(self, record, spec, lock)
            self._followers[record.id] = follower
            return follower

    def handle(self, job_id: str) -> JobHandle | None:
        with self._lock:
            return self._handles.get(job_id)

    def is_followed_here(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._followers

    def followed_ids(self) -> list[str]:
        """The jobs this process ingests now (the job host stays while there are any)."""
        with self._lock:
            return list(self._followers)

    def recover(self, job_ids: list[str] | None = None, cleanup: bool = True) -> list[str]:
        """Re-attach to unfinished jobs nobody else follows; returns the ids taken over.

        `cleanup` also removes what the backends left of jobs no longer active (containers,
        networks); the job host's frequent look for unfollowed jobs skips it."""
        taken = []
        for record in self.store.list_jobs(active_only=True):
            if job_ids is not None and record.id not in job_ids:
                continue
            if record.id in self._followers or record.status == JobStatus.QUEUED.value:
                continue  # queued jobs are the scheduler's
            try:
                spec = self.spec_of(record)
                runner = self.runner(record.backend)
            except UserError as exc:
                log.warning("cannot re-attach %s: %s", record.id, exc)
                continue
            follower = self._take(record, spec)
            if follower is None:
                continue
            record = self.get(record.id)  # re-read after taking the lock: it may have ended
            if JobStatus(record.status).is_terminal:
                self._release(record.id)
                continue
            handle = runner.attach(self.context(record), follower)
            self._keep(handle)
            taken.append(record.id)
        for backend, runner in list(self._runners.items()) if cleanup else []:
            try:
                runner.cleanup_orphans({r.id for r in self.store.list_jobs(active_only=True)})
            except UserError as exc:
                log.info("no orphan cleanup for %s: %s", backend, exc)
        self._schedule_quietly()
        return taken

    def stop(self, key: str, wait: float | None = None) -> JobRecord:
        """Stop a job from any process; the follower (here or elsewhere) records Stopped."""
        record = self.get(key)
        if record.status == JobStatus.QUEUED.value and self.cancel_queued(record.id):
            return self.get(record.id)
        record = self.get(key)  # a scheduler may have started it meanwhile
        if JobStatus(record.status).is_terminal:
            return record
        ctx = self.context(record)
        self.store.set_status(record.id, JobStatus.STOPPING.value, "Stop requested")
        self.runner(record.backend).stop(ctx)
        handle = self.handle(record.id)
        if handle is None and record.id in self.recover([record.id]):
            handle = self.handle(record.id)
        if handle is not None:
            handle.wait(wait)
        elif wait is None or wait > 0:
            return self.wait(record.id, timeout=wait)  # another process follows and records it
        return self.get(record.id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Wait for a job this process follows, or poll the store for one followed elsewhere."""
        handle = self.handle(job_id)
        if handle is not None:
            handle.wait(timeout)
            return self.get(job_id)
        return self._board.wait(job_id, timeout)

    def adopt(
        self,
        name: str,
        profile: str | None = None,
        region: str | None = None,
        project_id: int | None = None,
    ) -> str:
        """Record a training job of the account (once) and follow it; the store id is the
        training job name, and following resumes after restarts like any job."""
        existing = self.store.get_job(name)
        if existing is None or existing.id != name:
            from trainer_gui.core.aws.remote_jobs import adoption

            found = adoption(self._aws_session(profile, region), name)
            text = dump_spec(found.spec)
            run_dir = runs_home() / found.name
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "job.yaml").write_text(text, encoding="utf-8")
            self.store.create_job(
                found.name,
                found.spec.name,
                Backend.SAGEMAKER.value,
                text,
                str(run_dir),
                project_id,
                created_at=found.created_at,
            )
            self.store.update_backend_ids(found.name, found.backend_ids)
        self.recover([name])
        return name

    def _aws_session(self, profile: str | None, region: str | None) -> AwsSession:
        """The SageMaker runner's session for the profile and region (one client cache)."""
        from trainer_gui.core.runners.sagemaker import SageMakerRunner

        runner = self.runner(Backend.SAGEMAKER.value)
        if isinstance(runner, SageMakerRunner):
            return runner.session(profile, region)
        from trainer_gui.core.aws.session import AwsSession

        return AwsSession(profile, region)

    def delete(self, key: str, remove_files: bool = True) -> None:
        import shutil

        record = self.get(key)
        if not JobStatus(record.status).is_terminal:
            raise UserError(f"job {record.id} is still {record.status}; stop it first")
        self.store.delete_job(record.id)
        if remove_files:
            shutil.rmtree(record.run_dir, ignore_errors=True)

    def shutdown(self) -> None:
        """Let go of every job (they keep running); called when the window or CLI exits."""
        self._shut = True
        with self._lock:
            ids = list(self._followers)
        for job_id in ids:
            self._release(job_id)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
