"""SageMaker backend: the same spec as a CreateTrainingJob, followed live, the model brought home.

Submit (on a runner thread, so the window never waits): check credentials, bucket and image,
pack the source folder into sourcedir.tar.gz and upload it, upload local channels to
content-addressed prefixes (`<base>/data/<digest>/`: a job's data never changes under it;
skipping what S3 already has unchanged, resuming interrupted multipart uploads), then
CreateTrainingJob.
Follow: poll DescribeTrainingJob with backoff and turn secondary-status transitions into
StatusChanged events, tail every host's CloudWatch stream into LogBatch events with resumable
offsets (the job service stores them and parses metrics like any local job), record
FinalMetricDataList, then download and safely unpack model.tar.gz and output.tar.gz.

The job lives in the cloud: closing the app changes nothing there, and `attach` (called by the
job service on start) resumes following from the stored offsets and transition count.
Credentials never leave boto3: the store gets the job name, ARN, region and profile name only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from trainer_gui.core import contract
from trainer_gui.core.archives import extract_archive
from trainer_gui.core.aws.errors import AwsCredentialsError, AwsError, aws_errors, translate
from trainer_gui.core.aws.s3 import (
    ChannelManifest,
    Progress,
    S3Uri,
    Uploader,
    channel_manifest,
    download,
    pack_tree,
)
from trainer_gui.core.aws.session import AwsSession
from trainer_gui.core.errors import UserError
from trainer_gui.core.runners import sysmetrics
from trainer_gui.core.runners.base import (
    EventSink,
    JobContext,
    JobHandle,
    Runner,
    emit_logs,
    emit_phase,
    emit_status,
    follow_in_thread,
    max_runtime_reason,
    start_in_thread,
)
from trainer_gui.core.runners.events import (
    ArtifactReady,
    BackendInfo,
    JobStatus,
    LogBatch,
    LogLine,
    Phase,
    PhaseChanged,
    StatusChanged,
    TransferProgress,
)
from trainer_gui.core.runners.follow import DiskFull
from trainer_gui.core.runners.staging import code_entries as source_entries
from trainer_gui.core.runners.staging import keep_code, large_code_message
from trainer_gui.core.spec.model import Backend, JobSpec, is_remote

log = logging.getLogger(__name__)

CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
REQUEST_FILE = "create-training-job.json"

_STARTING = {
    "Starting",
    "Pending",
    "LaunchingMLInstances",
    "PreparingTrainingStack",
    "Downloading",
    "DownloadingTrainingImage",
    "Restarting",
    "Updating",
}
_PRIMARY = {
    "Completed": JobStatus.COMPLETED,
    "Failed": JobStatus.FAILED,
    "Stopped": JobStatus.STOPPED,
}


#: Secondary status -> the phase the run enters, in the app's words.
_PHASES = {
    "Starting": (Phase.STARTING, "starting the training job"),
    "LaunchingMLInstances": (Phase.STARTING, "launching ML instances"),
    "PreparingTrainingStack": (Phase.STARTING, "preparing the training stack"),
    "Downloading": (Phase.STARTING, "downloading the input data"),
    "DownloadingTrainingImage": (Phase.STARTING, "downloading the training image"),
    "Restarting": (Phase.STARTING, "restarting"),
    "Training": (Phase.STARTING, "starting the training container"),
    "Uploading": (Phase.UPLOADING, "uploading the model to S3"),
}

ProgressListener = Callable[[TransferProgress], None]


def status_of_secondary(secondary: str) -> JobStatus | None:
    """The app's status for a SageMaker secondary status; None for the terminal ones."""
    if secondary in _STARTING:
        return JobStatus.STARTING
    if secondary == "Training":
        return JobStatus.TRAINING
    if secondary == "Uploading":
        return JobStatus.UPLOADING
    if secondary == "Stopping":
        return JobStatus.STOPPING
    return None


def phase_of_secondary(secondary: str) -> tuple[Phase, str] | None:
    """The phase (and its words) a SageMaker secondary status starts; None when it starts none."""
    return _PHASES.get(secondary)


def console_url(region: str, job_name: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{job_name}"
    )


class SageMakerRunner(Runner):
    backend = Backend.SAGEMAKER.value

    def __init__(
        self,
        poll_min: float = 2.0,
        poll_max: float = 30.0,
        part_size: int | None = None,
        multipart_threshold: int | None = None,
        retry_delays: tuple[float, ...] = (1.0, 4.0, 10.0),
        on_progress: ProgressListener | None = None,
        session_factory: Callable[[str | None, str | None], AwsSession] | None = None,
        drain_quiet: float | None = None,
        drain_limit: float = 30.0,
    ) -> None:
        self.poll_min = poll_min
        self.poll_max = poll_max
        #: After the job ends: read its logs until nothing new came for this long (default 2.5
        #: polls), at most `drain_limit` seconds in all.
        self.drain_quiet = 2.5 * poll_min if drain_quiet is None else drain_quiet
        self.drain_limit = drain_limit
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.retry_delays = retry_delays
        self.on_progress = on_progress
        #: How long a failed training job's Batch job may take to show whether Batch retries.
        self.batch_settle_seconds = 120.0
        self._session_factory = session_factory or AwsSession
        self._sessions: dict[tuple[str | None, str | None], AwsSession] = {}
        self._lock = threading.Lock()

    # -- sessions ---------------------------------------------------------------------------

    def session(self, profile: str | None, region: str | None) -> AwsSession:
        key = (profile or None, region or None)
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = self._session_factory(*key)
            return self._sessions[key]

    def forget_session(self, profile: str | None, region: str | None) -> None:
        """Drop a cached session, so the next call reads the credentials afresh (after a login)."""
        with self._lock:
            self._sessions.pop((profile or None, region or None), None)

    def _session_for(self, ctx: JobContext) -> AwsSession:
        ids = ctx.backend_ids
        profile = ids.get("profile") if "profile" in ids else ctx.spec.sagemaker.profile
        region = ids.get("region") or ctx.spec.sagemaker.region
        return self.session(str(profile) if profile else None, str(region) if region else None)

    # -- checks -----------------------------------------------------------------------------

    def check(self, spec: JobSpec, python: str | None = None) -> None:
        del python
        for key in spec.environment:
            if key.upper() in CREDENTIAL_ENV:
                raise UserError(
                    f"environment: {key} must not be passed to a SageMaker job (it would be "
                    "stored in the job's description); the job runs with its execution role"
                )
        if not spec.sagemaker.role_arn:
            raise UserError(
                "sagemaker.role_arn: SageMaker needs an execution role to run the job; pick one "
                "in the AWS settings (arn:aws:iam::<account>:role/<name>)"
            )
        from trainer_gui.core.aws.images import resolve_image
        from trainer_gui.core.aws.request import RESERVED_CHANNELS, driver_arguments

        for channel in spec.channels:
            if channel.name in RESERVED_CHANNELS:
                raise UserError(
                    f"channel name {channel.name!r} is used by the app on SageMaker; rename it"
                )
            if not is_remote(channel.source) and not spec.resolve(channel.source).exists():
                raise UserError(f"channel {channel.name!r}: {channel.source} does not exist")
        driver_arguments(spec)
        session = self.session(spec.sagemaker.profile, spec.sagemaker.region)
        if spec.sagemaker.batch_queue:
            from trainer_gui.core.aws.batch import queue_region

            queue_at = queue_region(spec.sagemaker.batch_queue)
            if queue_at and queue_at != session.region:
                raise UserError(
                    f"sagemaker.batch_queue: the queue is in {queue_at} but the job runs in "
                    f"{session.region}; pick a queue of {session.region} or change the region"
                )
        resolve_image(
            spec.image,
            spec.sagemaker.framework_version,
            spec.sagemaker.py_version,
            session.region,
            spec.compute.image_instance_type,
        )
        try:  # no, expired or unknown credentials: say so before anything starts
            session.identity()
        except AwsCredentialsError:
            self.forget_session(spec.sagemaker.profile, spec.sagemaker.region)
            raise

    # -- submit -----------------------------------------------------------------------------

    def submit(self, ctx: JobContext, sink: EventSink) -> JobHandle:
        return start_in_thread(ctx, sink, self._start_and_follow, self.stop)

    def _progress(self, ctx: JobContext, sink: EventSink, what: str) -> Callable[[Progress], None]:
        def report(p: Progress) -> None:
            event = TransferProgress(
                ctx.job_id,
                p.direction,
                what,
                p.done_bytes,
                p.total_bytes,
                p.skipped_bytes,
                p.current,
            )
            sink(event)
            if self.on_progress is not None:
                self.on_progress(event)

        return report

    def _uploader(self, session: AwsSession, ctx: JobContext) -> Uploader:
        kwargs: dict[str, Any] = {"retry_delays": self.retry_delays}
        if self.part_size:
            kwargs["part_size"] = self.part_size
        if self.multipart_threshold:
            kwargs["multipart_threshold"] = self.multipart_threshold
        return Uploader(session.client("s3"), cancelled=ctx.stop_requested, **kwargs)

    def _channel_manifests(self, ctx: JobContext, uploader: Uploader) -> dict[str, ChannelManifest]:
        """Hash each local channel (cached per file): its digest names its S3 prefix."""
        out: dict[str, ChannelManifest] = {}
        for channel in ctx.spec.channels:
            if is_remote(channel.source):
                continue
            out[channel.name] = channel_manifest(
                ctx.spec.resolve(channel.source), uploader.journal, uploader.part_size
            )
        return out

    def prepare(self, ctx: JobContext, sink: EventSink) -> dict[str, Any]:
        """Resolve, upload, and return the CreateTrainingJob request (not sent yet)."""
        from trainer_gui.core.aws.bootstrap import START_PY
        from trainer_gui.core.aws.images import resolve_image
        from trainer_gui.core.aws.request import (
            DRIVER_SCRIPT,
            SOURCE_ARCHIVE,
            START_SCRIPT,
            build_request,
            plan_locations,
        )

        spec = ctx.spec
        session = self._session_for(ctx)
        region = session.region
        emit_status(sink, ctx.job_id, JobStatus.STARTING, "Checking AWS credentials and settings")
        emit_phase(sink, ctx.job_id, Phase.PREPARING, "checking AWS credentials and settings")
        session.identity()
        if spec.sagemaker.s3_prefix:
            base = spec.sagemaker.s3_prefix
            session.check_bucket(S3Uri.parse(base).bucket)
        else:
            base = f"s3://{session.ensure_default_bucket()}"
        if spec.output_path and is_remote(spec.output_path):
            out_bucket = S3Uri.parse(spec.output_path).bucket
            if out_bucket != S3Uri.parse(base).bucket:
                session.check_bucket(out_bucket)
        image, toolkit = resolve_image(
            spec.image,
            spec.sagemaker.framework_version,
            spec.sagemaker.py_version,
            region,
            spec.compute.image_instance_type,
        )
        role = spec.sagemaker.role_arn or ""
        uploader = self._uploader(session, ctx)
        manifests = self._channel_manifests(ctx, uploader)
        digests = {name: m.digest for name, m in manifests.items()}
        plan = plan_locations(spec, ctx.job_id, region, role, image, toolkit, base, digests)
        sink(
            BackendInfo(
                ctx.job_id,
                {
                    "training_job_name": ctx.job_id,
                    "region": region,
                    "profile": session.profile,
                    "image": image,
                    "launch_mode": plan.launch_mode,
                    "s3_base": plan.base_uri,
                    "s3_output": plan.output_uri,
                },
            )
        )
        if plan.code_uri and not (spec.source.source_dir and is_remote(spec.source.source_dir)):
            emit_status(
                sink, ctx.job_id, JobStatus.STARTING, f"Uploading the code to {plan.code_uri}"
            )
            emit_phase(sink, ctx.job_id, Phase.PREPARING, "uploading the code to S3")
            entries = source_entries(spec)
            large = large_code_message(entries)
            if large:
                emit_status(sink, ctx.job_id, JobStatus.STARTING, large)
            archive = pack_tree(entries, ctx.run_dir / SOURCE_ARCHIVE)
            keep_code(spec, entries, ctx.run_dir)  # for run diffs
            uploader.upload_file(
                archive, S3Uri.parse(plan.code_uri), self._progress(ctx, sink, "code")
            )
        for name in plan.local_channels:
            uri = plan.channel_uris[name]
            emit_status(
                sink, ctx.job_id, JobStatus.STARTING, f"Uploading channel {name!r} to {uri}"
            )
            emit_phase(sink, ctx.job_id, Phase.PREPARING, f"uploading channel {name!r} to S3")
            summary = uploader.upload_channel(
                manifests[name], S3Uri.parse(uri), self._progress(ctx, sink, f"channel {name}")
            )
            log.info(
                "channel %s: %d uploaded, %d already in S3",
                name,
                len(summary.uploaded),
                len(summary.skipped),
            )
        if plan.driver_uri:
            drivers = ctx.run_dir / "tg-driver"
            drivers.mkdir(parents=True, exist_ok=True)
            (drivers / START_SCRIPT).write_text(START_PY, encoding="utf-8")
            (drivers / DRIVER_SCRIPT).write_bytes(contract.driver_path().read_bytes())
            uploader.upload_tree(
                drivers, S3Uri.parse(plan.driver_uri), self._progress(ctx, sink, "driver")
            )
        if plan.custom_driver_uri and spec.distribution.driver_dir:
            uploader.upload_tree(
                spec.resolve(spec.distribution.driver_dir),
                S3Uri.parse(plan.custom_driver_uri),
                self._progress(ctx, sink, "custom driver"),
            )
        request = build_request(spec, plan)
        (ctx.run_dir / REQUEST_FILE).write_text(json.dumps(request, indent=2), encoding="utf-8")
        return request

    def _start_and_follow(self, ctx: JobContext, sink: EventSink, handle: JobHandle) -> None:
        try:
            request = self.prepare(ctx, sink)
            if ctx.stop_requested():
                emit_status(sink, ctx.job_id, JobStatus.STOPPED, ctx.stop_reason())
                handle._finish(JobStatus.STOPPED)
                return
            session = self._session_for(ctx)
            if ctx.spec.sagemaker.batch_queue:  # AWS Batch creates the training job later
                self._submit_to_batch(ctx, sink, session, request)
                handle.mark_started()
                self._follow(ctx, sink, handle)
                return
            emit_status(sink, ctx.job_id, JobStatus.STARTING, "Creating the SageMaker training job")
            emit_phase(sink, ctx.job_id, Phase.STARTING, "creating the training job")
            with aws_errors(f"creating the training job {ctx.job_id}"):
                out = session.client("sagemaker").create_training_job(**request)
        except UserError as exc:
            if ctx.stop_requested():  # stopped while uploading: nothing runs in the cloud
                emit_status(sink, ctx.job_id, JobStatus.STOPPED, ctx.stop_reason())
                handle._finish(JobStatus.STOPPED)
                return
            if isinstance(exc, AwsCredentialsError):
                self.forget_session(ctx.spec.sagemaker.profile, ctx.spec.sagemaker.region)
            emit_status(sink, ctx.job_id, JobStatus.FAILED, str(exc))
            handle._finish(JobStatus.FAILED)
            return
        except Exception as exc:
            log.exception("submitting %s failed", ctx.job_id)
            emit_status(sink, ctx.job_id, JobStatus.FAILED, f"Could not submit the job: {exc!r}")
            handle._finish(JobStatus.FAILED)
            return
        arn = str(out.get("TrainingJobArn", ""))
        info: dict[str, object] = {
            "training_job_arn": arn,
            "console_url": console_url(session.region, ctx.job_id),
        }
        sink(BackendInfo(ctx.job_id, info))
        ctx.backend_ids.update(info)
        handle.mark_started()
        self._follow(ctx, sink, handle)

    # -- follow -----------------------------------------------------------------------------

    def attach(self, ctx: JobContext, sink: EventSink) -> JobHandle:
        return follow_in_thread(ctx, sink, self._follow, self.stop)

    def _job_name(self, ctx: JobContext) -> str:
        return str(ctx.backend_ids.get("training_job_name") or ctx.job_id)

    def _follow(self, ctx: JobContext, sink: EventSink, handle: JobHandle) -> None:
        try:
            while True:
                waited = self._wait_in_batch(ctx, sink)  # None: no Batch job, or it has its job
                status = waited if waited is not None else self._follow_loop(ctx, sink)
                if waited is not None or not self._batch_replaces(ctx):
                    break  # else Batch runs the job again: wait for its next training job
        except Exception as exc:
            log.exception("following %s failed", ctx.job_id)
            emit_status(
                sink, ctx.job_id, JobStatus.FAILED, f"Internal error while following: {exc!r}"
            )
            status = JobStatus.FAILED
        handle._finish(status)

    def _follow_loop(self, ctx: JobContext, sink: EventSink) -> JobStatus:
        from botocore.exceptions import ClientError

        from trainer_gui.core.aws.logs import CloudWatchTail

        name = self._job_name(ctx)
        session = self._session_for(ctx)
        sm = session.client("sagemaker")
        tail = CloudWatchTail(session.client("logs"), name, ctx.offsets)
        side = sysmetrics.CloudSideMetrics(
            ctx.job_id, sink, session.client, name, contract.host_names(ctx.spec), ctx.offsets
        )
        seen = int(ctx.backend_ids.get("transitions_seen") or 0)
        delay = self.poll_min
        current = JobStatus.PENDING
        while True:
            changed = False
            try:
                desc = sm.describe_training_job(TrainingJobName=name)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                message = exc.response.get("Error", {}).get("Message", "")
                if code == "ValidationException" and "not find" in message.lower():
                    reason = (
                        f"SageMaker has no training job {name} in {session.region}: the app "
                        "closed before it was created; submit again (uploads resume)"
                    )
                    emit_status(sink, ctx.job_id, JobStatus.FAILED, reason)
                    return JobStatus.FAILED
                if self._fatal(exc, sink, ctx):
                    return current
                time.sleep(delay)
                delay = min(delay * 2, self.poll_max)
                continue
            except Exception as exc:
                if self._fatal(exc, sink, ctx):
                    return current
                time.sleep(delay)
                delay = min(delay * 2, self.poll_max)
                continue
            transitions = desc.get("SecondaryStatusTransitions") or []
            for transition in transitions[seen:]:
                secondary = str(transition.get("Status", ""))
                mapped = status_of_secondary(secondary)
                when = transition.get("StartTime")
                stamp = when.timestamp() if hasattr(when, "timestamp") else time.time()
                if mapped is not None:
                    text = transition.get("StatusMessage") or ""
                    message = f"{transition['Status']}: {text}" if text else transition["Status"]
                    sink(StatusChanged(ctx.job_id, mapped, message, stamp))
                    current = mapped
                phase = phase_of_secondary(secondary)
                if phase is not None:
                    sink(PhaseChanged(ctx.job_id, phase[0], stamp, phase[1]))
                changed = True
            if len(transitions) > seen:
                seen = len(transitions)
                sink(BackendInfo(ctx.job_id, {"transitions_seen": seen}))
            try:
                changed = self._drain(ctx, sink, tail) or changed
            except Exception as exc:
                if self._fatal(exc, sink, ctx):
                    return current
            primary = str(desc.get("TrainingJobStatus", ""))
            side.poll(desc, final=primary in _PRIMARY)  # CloudWatch metrics, TensorBoard files
            if primary == "Failed" and self._batch_retries(ctx, sink, session, desc):
                return JobStatus.PENDING  # not the end: Batch runs the job again
            if primary in _PRIMARY:
                self._drain_to_end(ctx, sink, tail)  # the last lines can lag the status
                return self._finish(ctx, sink, session, desc)
            delay = self.poll_min if changed else min(delay * 1.5, self.poll_max)
            time.sleep(delay)

    def _fatal(self, exc: BaseException, sink: EventSink, ctx: JobContext) -> bool:
        """Credentials gone, or this machine's disk full: stop following (the job runs on in
        the cloud; whoever follows it next resumes from the stored offsets). Anything else:
        retry later."""
        if isinstance(exc, DiskFull):
            log.error(
                "following %s: %s -- the job keeps running on SageMaker; free some space and "
                "the app follows it again from where it stopped",
                ctx.job_id,
                exc,
            )
            return True
        error = translate(exc, "following the job")
        if isinstance(error, AwsCredentialsError):
            line = LogLine(
                "app",
                "system",
                f"{error} -- the job keeps running on SageMaker; the app follows it again "
                "once the credentials work (restart it, or `trainer-gui logs JOB --follow`)",
                time.time(),
            )
            sink(LogBatch(ctx.job_id, [line], {}))
            return True
        log.warning("following %s: %s (retrying)", ctx.job_id, error)
        return False

    def _drain(self, ctx: JobContext, sink: EventSink, tail: Any) -> bool:
        lines, offsets = tail.read()
        if not lines and not offsets:
            return False
        emit_logs(sink, ctx.job_id, lines, offsets)
        return bool(lines)

    def _drain_to_end(self, ctx: JobContext, sink: EventSink, tail: Any) -> None:
        """After the job ended, read its streams until they are drained: no read finds anything
        new (no line, no new stream, no moved token) for `drain_quiet` seconds, or
        `drain_limit` seconds have passed. CloudWatch can show the last lines after the status."""
        start = last_new = time.monotonic()
        while True:
            try:
                new = self._drain(ctx, sink, tail) or bool(getattr(tail, "moved", False))
            except Exception as exc:
                log.warning("last log read of %s failed: %s", ctx.job_id, exc)
                return
            now = time.monotonic()
            if new:
                last_new = now
            elif now - last_new >= self.drain_quiet:
                return
            if now - start >= self.drain_limit:
                log.warning(
                    "%s: its log streams still grew %.0f s after the job ended; stopped reading",
                    ctx.job_id,
                    self.drain_limit,
                )
                return
            time.sleep(self.poll_min)

    def _finish(
        self, ctx: JobContext, sink: EventSink, session: AwsSession, desc: dict[str, Any]
    ) -> JobStatus:
        primary = _PRIMARY[str(desc["TrainingJobStatus"])]
        final = {
            str(m["MetricName"]): float(m["Value"])
            for m in desc.get("FinalMetricDataList") or []
            if "MetricName" in m and "Value" in m
        }
        info: dict[str, Any] = {"final_metrics": final}
        if desc.get("BillableTimeInSeconds") is not None:
            info["billable_seconds"] = int(desc["BillableTimeInSeconds"])
        sink(BackendInfo(ctx.job_id, info))
        self._download_artifacts(ctx, sink, session, desc)
        secondary = str(desc.get("SecondaryStatus", ""))
        if primary is JobStatus.COMPLETED:
            message = "Training job completed"
            if info.get("billable_seconds") is not None:
                message += f" ({info['billable_seconds']} billable seconds)"
        elif primary is JobStatus.FAILED:
            message = str(desc.get("FailureReason") or "the training job failed on SageMaker")
        elif ctx.stop_requested():
            message = ctx.stop_reason()
        elif secondary == "MaxRuntimeExceeded":
            message = max_runtime_reason(ctx.spec)
        else:
            message = f"Stopped on SageMaker ({secondary or 'Stopped'})"
        emit_status(sink, ctx.job_id, primary, message)
        return primary

    def _download_artifacts(
        self, ctx: JobContext, sink: EventSink, session: AwsSession, desc: dict[str, Any]
    ) -> None:
        from trainer_gui.core.aws.request import artifact_uris

        model_uri = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        output_path = (desc.get("OutputDataConfig") or {}).get("S3OutputPath")
        if not model_uri and output_path:
            model_uri = artifact_uris(output_path, self._job_name(ctx))[0]
        if not model_uri:
            return
        model = S3Uri.parse(str(model_uri))
        output = S3Uri(model.bucket, model.key.rsplit("/", 1)[0] + "/output.tar.gz")
        emit_status(
            sink, ctx.job_id, JobStatus.UPLOADING, "Downloading model.tar.gz and output.tar.gz"
        )
        emit_phase(sink, ctx.job_id, Phase.DOWNLOADING)
        s3 = session.client("s3")
        for kind, uri in (("model", model), ("output", output)):
            target = ctx.artifacts_dir / f"{kind}.tar.gz"
            try:
                path = download(s3, uri, target, self._progress(ctx, sink, f"{kind}.tar.gz"))
                if path is None:
                    continue
                extract_archive(path, ctx.artifacts_dir / kind, replace=True)
            except UserError as exc:
                line = LogLine("app", "system", f"{kind}.tar.gz: {exc}", time.time())
                sink(LogBatch(ctx.job_id, [line], {}))
                continue
            sink(ArtifactReady(ctx.job_id, kind, str(path)))

    # -- AWS Batch training queues -----------------------------------------------------------

    def _submit_to_batch(
        self, ctx: JobContext, sink: EventSink, session: AwsSession, request: dict[str, Any]
    ) -> None:
        """Submit the CreateTrainingJob request as a service job of the spec's Batch queue."""
        from trainer_gui.core.aws import batch

        queue = str(ctx.spec.sagemaker.batch_queue)
        submit = batch.spec_submit_request(ctx.spec, request)
        (ctx.run_dir / batch.SUBMIT_FILE).write_text(json.dumps(submit, indent=2), encoding="utf-8")
        emit_status(
            sink, ctx.job_id, JobStatus.STARTING, f"Submitting to the AWS Batch queue {queue}"
        )
        emit_phase(sink, ctx.job_id, Phase.STARTING, f"submitting to the AWS Batch queue {queue}")
        out = batch.submit(session.client("batch"), submit)
        info: dict[str, object] = {
            "batch_job_id": str(out["jobId"]),
            "batch_job_arn": str(out.get("jobArn") or ""),
            "batch_queue": queue,
        }
        sink(BackendInfo(ctx.job_id, info))
        ctx.backend_ids.update(info)

    def _wait_in_batch(self, ctx: JobContext, sink: EventSink) -> JobStatus | None:
        """Follow a Batch service job until it has a training job (None: follow that one, its
        name and ARN now in the backend ids) or ends without one (its final status). None at
        once for jobs created directly, and for Batch jobs whose training job is known."""
        from botocore.exceptions import ClientError

        from trainer_gui.core.aws import batch

        job_id = str(ctx.backend_ids.get("batch_job_id") or "")
        if not job_id or ctx.backend_ids.get("training_job_arn"):
            return None
        session = self._session_for(ctx)
        client = session.client("batch")
        queue = str(ctx.backend_ids.get("batch_queue") or ctx.spec.sagemaker.batch_queue or "")
        seen = str(ctx.backend_ids.get("batch_status") or "")
        stop_seen = False
        delay = self.poll_min
        while True:
            try:
                desc = batch.describe(client, job_id)
            except ClientError as exc:
                message = exc.response.get("Error", {}).get("Message", "")
                if "not found" in message.lower():
                    reason = f"AWS Batch has no job {job_id} in {session.region}: {message}"
                    emit_status(sink, ctx.job_id, JobStatus.FAILED, reason)
                    return JobStatus.FAILED
                if self._fatal(exc, sink, ctx):
                    return JobStatus.PENDING
                time.sleep(delay)
                delay = min(delay * 2, self.poll_max)
                continue
            except Exception as exc:
                if self._fatal(exc, sink, ctx):
                    return JobStatus.PENDING
                time.sleep(delay)
                delay = min(delay * 2, self.poll_max)
                continue
            status = str(desc.get("status") or "")
            found = batch.training_job_of(desc)
            # A stop request normally terminates the Batch job itself (`stop`); one that came
            # while the job was being submitted has not: still running one poll later, end it.
            ended = status in batch.TERMINAL or bool(desc.get("isTerminated"))
            if stop_seen and not ended:
                try:
                    batch.terminate(client, job_id, ctx.stop_reason())
                except UserError as exc:
                    log.warning("terminating %s: %s", job_id, exc)
            stop_seen = ctx.stop_requested() and not ended
            changed = status != seen or stop_seen
            if status != seen:
                seen = status
                if status not in batch.TERMINAL:
                    waiting = status in batch.WAITING
                    mapped = JobStatus.PENDING if waiting else JobStatus.STARTING
                    emit_status(sink, ctx.job_id, mapped, f"Batch: {status}")
                    where = "waiting in" if waiting else "leaving"
                    emit_phase(
                        sink,
                        ctx.job_id,
                        Phase.STARTING,
                        f"{where} the AWS Batch queue {queue} ({status})",
                    )
                sink(BackendInfo(ctx.job_id, {"batch_status": status}))
            replaced = ctx.backend_ids.get("batch_replaced") or []
            if found is not None and status not in batch.WAITING and found[1] not in replaced:
                name, arn = found
                info: dict[str, object] = {
                    "training_job_name": name,
                    "training_job_arn": arn,
                    "console_url": console_url(session.region, name),
                }
                sink(BackendInfo(ctx.job_id, info))
                ctx.backend_ids.update(info)
                return None
            if status == "FAILED":
                if ctx.stop_requested() or desc.get("isTerminated"):
                    emit_status(sink, ctx.job_id, JobStatus.STOPPED, ctx.stop_reason())
                    return JobStatus.STOPPED
                emit_status(sink, ctx.job_id, JobStatus.FAILED, batch.failure_reason(desc))
                return JobStatus.FAILED
            if status == "SUCCEEDED":  # no training job named: nothing to follow or download
                emit_status(sink, ctx.job_id, JobStatus.COMPLETED, "AWS Batch: job succeeded")
                return JobStatus.COMPLETED
            delay = self.poll_min if changed else min(delay * 1.5, self.poll_max)
            time.sleep(delay)

    @staticmethod
    def _batch_replaces(ctx: JobContext) -> bool:
        """A Batch job whose training job `_batch_retries` let go: follow its next one."""
        return bool(ctx.backend_ids.get("batch_job_id")) and not ctx.backend_ids.get(
            "training_job_arn"
        )

    def _batch_retries(
        self, ctx: JobContext, sink: EventSink, session: AwsSession, desc: dict[str, Any]
    ) -> bool:
        """Whether AWS Batch runs a job again after its training job failed (it does, without
        counting an attempt, when SageMaker lacked capacity): then say so, forget that training
        job and return True; False for jobs created directly and for a Batch job that ends."""
        from trainer_gui.core.aws import batch

        job_id = str(ctx.backend_ids.get("batch_job_id") or "")
        arn = str(desc.get("TrainingJobArn") or ctx.backend_ids.get("training_job_arn") or "")
        if not job_id:
            return False
        client = session.client("batch")
        deadline = time.monotonic() + self.batch_settle_seconds  # Batch learns of it later
        while True:
            try:
                state = batch.describe(client, job_id)
            except Exception as exc:
                log.warning("describing %s after its training job failed: %s", job_id, exc)
                return False
            status = str(state.get("status") or "")
            found = batch.training_job_of(state)
            if found is not None and found[1] != arn:
                break  # a newer training job (which may even have ended already)
            if status in batch.TERMINAL:
                return False
            if status in batch.WAITING:
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(self.poll_min)
        reason = str(desc.get("FailureReason") or "it failed")
        text = (
            f"SageMaker: the training job {self._job_name(ctx)} failed ({reason}); AWS Batch "
            "runs the job again"
        )
        sink(LogBatch(ctx.job_id, [LogLine("app", "system", text, time.time())], {}))
        replaced = [*(ctx.backend_ids.get("batch_replaced") or []), arn]
        info: dict[str, object] = {
            "training_job_arn": "",
            "transitions_seen": 0,
            "batch_status": "",
            "batch_replaced": replaced,
        }
        sink(BackendInfo(ctx.job_id, info))
        ctx.backend_ids.update(info)
        return True

    def _stop_batch_job(self, ctx: JobContext, session: AwsSession) -> bool:
        """Stop a Batch job that has no training job yet (TerminateServiceJob); False when
        there is none, or its training job exists (then StopTrainingJob stops it)."""
        from trainer_gui.core.aws import batch

        job_id = str(ctx.backend_ids.get("batch_job_id") or "")
        if not job_id or ctx.backend_ids.get("training_job_arn"):
            return False
        client = session.client("batch")
        try:
            desc = batch.describe(client, job_id)
        except Exception as exc:
            log.info("describing %s before stopping it: %s", job_id, exc)
            desc = {}
        found = batch.training_job_of(desc)
        if found is not None and desc.get("status") not in batch.WAITING:
            ctx.backend_ids["training_job_name"] = found[0]  # the follower has not seen it yet
            return False
        if desc.get("status") in batch.TERMINAL:
            return True
        batch.terminate(client, job_id, ctx.stop_reason())
        return True

    # -- stop -------------------------------------------------------------------------------

    def stop(self, ctx: JobContext) -> None:
        from botocore.exceptions import ClientError

        if not ctx.stop_requested():
            ctx.request_stop()
        session = self._session_for(ctx)
        if self._stop_batch_job(ctx, session):
            return
        try:
            session.client("sagemaker").stop_training_job(TrainingJobName=self._job_name(ctx))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ValidationException", "ResourceNotFound"):
                return  # not created yet (the submit thread sees the marker) or already ended
            raise translate(exc, f"stopping {self._job_name(ctx)}") from exc
        except Exception as exc:
            raise translate(exc, f"stopping {self._job_name(ctx)}") from exc


__all__ = [
    "AwsError",
    "SageMakerRunner",
    "TransferProgress",
    "console_url",
    "phase_of_secondary",
    "source_entries",
    "status_of_secondary",
]
