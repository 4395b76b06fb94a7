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
from trainer_gui.core.runners.follow import disk_full
from trainer_gui.core.spec import dump_spec
from trainer_gui.core.spec.model import Backend, JobSpec
from trainer_gui.core.store import JobRecord, Store
from trainer_gui.core.store.phases import PhaseRecorder
from trainer_gui.services.api import EventListener, JobBoard

if TYPE_CHECKING:
    from trainer_gui.core.aws.session import AwsSession

log = logging.getLogger(__name__)


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

    def _handle(self, event: JobEvent) -> None:
        with self._io:
            # Checked again under the lock: once _release has let go, another process may
            # already resume from the stored offsets, and this batch must not land as well.
            if self.closed:
                return
            samples = self._store(event)
            derived = self.phases.record(event, samples)  # first log line, first metric
        for phase in derived:
            self.service._notify(phase)
        self.service._notify(event)
        if samples:
            self.service._notify(MetricBatch(self.job_id, samples))
        if isinstance(event, StatusChanged) and event.status.is_terminal:
            self.service._release(self.job_id)


class JobService:
    """The `Jobs` interface with the jobs followed in this process (the CLI, the job host)."""

    def __init__(self, store: Store, runners: dict[str, Runner] | None = None) -> None:
        self._board = JobBoard(store)
        self._runners: dict[str, Runner] = dict(runners or {})
        self._followers: dict[str, _Follower] = {}
        self._handles: dict[str, JobHandle] = {}
        self._lock = threading.RLock()

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

    def _release(self, job_id: str) -> None:
        with self._lock:
            follower = self._followers.get(job_id)
        if follower is None:
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
        return self._board.spec_of(record)

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
    ) -> JobHandle:
        """Check, record and start a job; returns at once with a handle to wait on.

        A SageMaker job's empty profile/region/role/S3 prefix come from the AWS settings here,
        so the stored spec says where it ran and re-attaching needs no settings."""
        spec = with_aws_defaults(spec)
        backend = spec.compute.backend.value
        runner = self.runner(backend)
        runner.check(spec, python)
        job_id = job_id or make_job_id(spec.name)
        run_dir = runs_home() / job_id
        run_dir.mkdir(parents=True, exist_ok=False)
        (run_dir / "job.yaml").write_text(dump_spec(spec), encoding="utf-8")
        self.store.create_job(job_id, spec.name, backend, dump_spec(spec), str(run_dir), project_id)
        ids: dict[str, Any] = {"spec_base_dir": str(spec.base_dir) if spec.base_dir else None}
        if python:
            ids["python"] = python
        self.store.update_backend_ids(job_id, ids)
        record = self.get(job_id)
        follower = self._take(record, spec)
        if follower is None:  # cannot happen for a new folder, but never ingest twice
            raise UserError(f"job {job_id} is already followed by another process")
        ctx = self.context(record)
        ctx.spec = spec
        handle = runner.submit(ctx, follower)
        self._keep(handle)
        return handle

    def _keep(self, handle: JobHandle) -> None:
        """Remember the handle; when following ends without a final status (credentials gone,
        Docker unreachable), let go of the job so a later `recover` can take it again."""
        with self._lock:
            self._handles[handle.job_id] = handle
        handle.on_done(lambda done: self._release(done.job_id))

    def _take(self, record: JobRecord, spec: JobSpec) -> _Follower | None:
        with self._lock:
            if record.id in self._followers:
                return None
            lock = ProcessLock(Path(record.run_dir) / ".follower.lock")
            if not lock.acquire():
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
            if record.id in self._followers:
                continue
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
        return taken

    def stop(self, key: str, wait: float | None = None) -> JobRecord:
        """Stop a job from any process; the follower (here or elsewhere) records Stopped."""
        record = self.get(key)
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
        with self._lock:
            ids = list(self._followers)
        for job_id in ids:
            self._release(job_id)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
