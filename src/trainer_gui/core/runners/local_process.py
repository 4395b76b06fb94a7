"""The embedded default backend: the job runs as a process on this machine, no Docker needed.

The run folder holds one host's /opt/ml tree (`hosts/algo-1`), and the stdlib driver from
`core.contract.toolkit` runs the user's script inside it, so the script sees the same SM_*
variables and argv as in a container. Output goes straight to files, so the job outlives the
app; any later process re-attaches by tailing those files from the stored offsets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from trainer_gui.core import contract, safety
from trainer_gui.core.contract import HostLayout
from trainer_gui.core.errors import BackendUnavailable, TorchMissing, UserError
from trainer_gui.core.pyenv import CPU_INDEX, TORCH_VERSION, has_torch
from trainer_gui.core.resources import GPU_IDS_KEY
from trainer_gui.core.runners import channels, proc, sysmetrics, warm
from trainer_gui.core.runners.base import (
    EventSink,
    JobContext,
    JobHandle,
    Runner,
    emit_logs,
    emit_phase,
    emit_status,
    follow_in_thread,
    start_in_thread,
    stop_grace_seconds,
)
from trainer_gui.core.runners.events import BackendInfo, JobStatus, LogLine, Phase, PhaseChanged
from trainer_gui.core.runners.follow import (
    POLL_SECONDS,
    STARTING_DIED,
    DiskFull,
    Ending,
    Watch,
    follow_and_finish,
    read_start_marker,
    start_and_follow,
    stop_for_disk_full,
    write_start_marker,
)
from trainer_gui.core.runners.staging import stage_code
from trainer_gui.core.runners.tail import FileTail, FolderChanges
from trainer_gui.core.spec.model import Backend, JobSpec

log = logging.getLogger(__name__)

HOST = "algo-1"
#: The driver writes its pid here first thing (see `toolkit.write_pid_file`).
DRIVER_PID = "driver.pid"
#: How long a re-attach waits for that file when the process before it died while spawning.
DRIVER_PID_WAIT = 3.0
#: SIGTERM-to-SIGKILL grace for a script found running after its driver ended.
ORPHAN_GRACE = 5.0
#: Looks at the logs woken by new bytes (issue 18) after a quiet spell of this many seconds,
#: before a steady stream is read at the poll's pace again (POLL_SECONDS apart).
QUICK_LOOKS = 4
QUIET_SPELL = 2 * POLL_SECONDS
#: The driver's process: ours (cold), or forked by the warm interpreter and watched alike.
_Driver = subprocess.Popen[bytes] | warm.WarmProcess


def default_python() -> str:
    """The interpreter running the app, unless frozen (then whatever `python3` is on PATH)."""
    if getattr(sys, "frozen", False):
        return shutil.which("python3") or shutil.which("python") or "python3"
    return sys.executable


def _check_mpi(spec: JobSpec, python: str) -> None:
    """An MPI job runs `mpirun -np P ... python -m mpi4py script` here, as the toolkit's
    MasterRunner does: Open MPI on this machine, and mpi4py in the job's Python."""
    if shutil.which("mpirun") is None:
        raise BackendUnavailable(contract.toolkit.MPI_MISSING)
    if not (spec.source.entry_point or "").endswith(".py"):
        return  # a shell entry point runs under mpirun without mpi4py
    try:
        found = subprocess.run(
            [python, "-c", "import mpi4py"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return  # the job's own start reports it
    if found.returncode != 0:
        raise BackendUnavailable(
            f"distribution kind mpi runs the script with `python -m mpi4py`, and {python} has "
            f"no mpi4py: install it there ({python} -m pip install mpi4py, which builds against "
            "the Open MPI installed here), or pick another interpreter"
        )


class LocalProcessRunner(Runner):
    backend = Backend.LOCAL_PROCESS.value

    def __init__(self, grace: float | None = None) -> None:
        self.grace = stop_grace_seconds() if grace is None else grace

    # -- checks -----------------------------------------------------------------------------

    def check(self, spec: JobSpec, python: str | None = None) -> None:
        python = python or default_python()
        if spec.compute.host_count != 1:
            raise UserError(
                "the local-process backend runs one host; use the docker backend for "
                f"{spec.compute.host_count} hosts"
            )
        resolved = shutil.which(python) if not os.path.isabs(python) else python
        if not resolved or not os.path.exists(resolved):
            raise BackendUnavailable(
                f"Python interpreter {python!r} not found; pick another in the project settings"
            )
        if spec.distribution.kind == "mpi":
            _check_mpi(spec, resolved)
        if spec.source.command is not None and spec.distribution.kind == "none":
            return
        if not has_torch(resolved) and not spec.source.requirements:
            raise TorchMissing(
                resolved,
                f"PyTorch is not installed for {resolved}; install it there "
                f"({resolved} -m pip install torch=={TORCH_VERSION}, on a machine without an "
                f"NVIDIA GPU the smaller CPU build with --index-url {CPU_INDEX}), pick another "
                "interpreter in the project settings, or add torch to the job's requirements.txt",
            )

    # -- start ------------------------------------------------------------------------------

    def _prepare(self, ctx: JobContext, sink: EventSink) -> HostLayout:
        spec = ctx.spec
        root = ctx.run_dir / "hosts" / HOST
        run_dir = ctx.run_dir
        layout = contract.materialise_host(
            spec, ctx.job_id, HOST, root, seen_as=str(root), run_dir=run_dir
        )

        def warn(message: str) -> None:
            emit_status(sink, ctx.job_id, JobStatus.STARTING, message)

        if spec.distribution.kind == "smddp":
            warn(contract.SMDDP_LOCAL_NOTE)
        stage_code(spec, layout.code_dir, run_dir=run_dir, warn=warn)
        # Private copies, as SageMaker downloads them: the script may write into them.
        progress = channels.reporter(ctx.job_id, sink)
        channels.snapshot_channels(spec, run_dir, layout.channel_dir, warn=warn, progress=progress)
        if spec.distribution.kind == "custom" and spec.distribution.driver_dir:
            _link(
                run_dir,
                spec.resolve(spec.distribution.driver_dir),
                layout.channel_dir(contract.DRIVERS_CHANNEL),
            )
        if spec.checkpoint_dir and not spec.checkpoint_dir.startswith("s3://"):
            persistent = spec.resolve(spec.checkpoint_dir)
            persistent.mkdir(parents=True, exist_ok=True)  # the user's own folder, by design
            _link(run_dir, persistent, layout.checkpoints_dir)
        safety.make_dirs(run_dir, run_dir / "logs")
        return layout

    def _python_for(self, ctx: JobContext, layout: HostLayout, sink: EventSink) -> str:
        """A per-job venv (seeing the base interpreter's packages) only when requirements exist."""
        python = ctx.python or default_python()
        requirements = layout.code_dir / "requirements.txt"
        if not requirements.is_file():
            return python
        venv = ctx.run_dir / "venv"
        emit_status(sink, ctx.job_id, JobStatus.STARTING, "Installing requirements.txt")
        emit_phase(sink, ctx.job_id, Phase.PREPARING, "installing requirements.txt")
        bindir = "Scripts" if os.name == "nt" else "bin"
        venv_python = venv / bindir / ("python.exe" if os.name == "nt" else "python")
        log_path = ctx.run_dir / "logs" / f"{HOST}.setup"
        with open(log_path, "ab") as setup_log:
            steps = [
                [python, "-m", "venv", "--system-site-packages", str(venv)],
                [
                    str(venv_python),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-r",
                    str(requirements),
                ],
            ]
            for i, step in enumerate(steps):
                # Dies with this process: a job host killed mid-install must not leave a pip
                # running beside the one its successor starts for the same job.
                code = subprocess.run(
                    step,
                    stdout=setup_log,
                    stderr=subprocess.STDOUT,
                    check=False,
                    preexec_fn=proc.helper_preexec(),
                ).returncode
                if i == 0 and code == 0:
                    _inherit_site_packages(python, venv_python)
                if code != 0:
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                    raise UserError("installing requirements.txt failed:\n" + "\n".join(tail))
        return str(venv_python)

    def submit(self, ctx: JobContext, sink: EventSink) -> JobHandle:
        return start_in_thread(ctx, sink, self._start_and_follow, self.stop)

    def _start_and_follow(self, ctx: JobContext, sink: EventSink, handle: JobHandle) -> None:
        def start() -> Watch:
            layout = self._prepare(ctx, sink)
            python = self._python_for(ctx, layout, sink)
            at = time.time()
            try:
                popen = self._spawn(ctx, layout, python)
            except BaseException:
                sink(PhaseChanged(ctx.job_id, Phase.STARTING, at, "starting the interpreter"))
                raise
            # Where the start-up time goes: a fork of the warm interpreter (torch imported) or
            # a new interpreter (issue 18).
            warmed = isinstance(popen, warm.WarmProcess)
            detail = "warm start" if warmed else "starting the interpreter"
            sink(PhaseChanged(ctx.job_id, Phase.STARTING, at, detail))
            try:
                # The marker first: a process that dies after this line leaves the job
                # findable (and the driver's own pid file covers a death inside Popen).
                marker = proc.start_marker(popen.pid)
                ids = {"pid": popen.pid, "pgid": popen.pid, "start_marker": marker}
                ctx.backend_ids.update(ids)
                write_start_marker(ctx.run_dir, ids)
                sink(BackendInfo(ctx.job_id, {**ids, "python": python}))
            except BaseException:
                # Not recorded anywhere: no other process could ever stop it, so it must not run.
                proc.terminate_tree(popen.pid, 0, proc.start_marker(popen.pid), pgid=popen.pid)
                popen.wait()
                raise
            return _ProcessWatch(ctx, sink, popen)

        start_and_follow(
            ctx, sink, handle, preparing="Preparing the run folder", start=start, stop=self.stop
        )

    def _spawn(self, ctx: JobContext, layout: HostLayout, python: str) -> _Driver:
        spec = ctx.spec
        cmd = [
            python,
            str(contract.driver_path()),
            "--base-dir",
            str(layout.root),
            "--host-mode",
            "--skip-requirements",
            "--pid-file",
            str(ctx.run_dir / DRIVER_PID),
            *contract.driver_arguments(spec, layout.channel_dir(contract.DRIVERS_CHANNEL)),
        ]
        env = dict(os.environ)
        env.update(spec.environment)
        env["TRAINING_JOB_NAME"] = ctx.job_id
        env["PYTHONUNBUFFERED"] = "1"
        given = ctx.backend_ids.get(GPU_IDS_KEY)
        if isinstance(given, list) and given and given[0]:
            # The queue's pick for this job; SM_NUM_GPUS and torchrun follow it.
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in given[0])
        logs = ctx.run_dir / "logs"
        requirements = (layout.code_dir / "requirements.txt").is_file()
        cold = warm.cold_reason(spec, requirements, ctx.backend_ids)
        with open(logs / f"{HOST}.stdout", "ab") as out, open(logs / f"{HOST}.stderr", "ab") as err:
            if cold is None:  # the same driver, forked from the warm interpreter (issue 18)
                fds = warm.open_std(out, err)
                try:
                    started = warm.POOL.launch(
                        python, cmd[1:], str(layout.code_dir), env, fds, ctx.run_dir
                    )
                finally:
                    os.close(fds[0])
                if started is not None:
                    return started
            kwargs: dict[str, object] = {}
            if os.name == "nt":
                kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
            else:
                kwargs["start_new_session"] = True
            return subprocess.Popen(  # type: ignore[call-overload]
                cmd,
                cwd=str(layout.code_dir),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                **kwargs,
            )

    # -- follow -----------------------------------------------------------------------------

    def attach(self, ctx: JobContext, sink: EventSink) -> JobHandle:
        def follow(ctx: JobContext, sink: EventSink, handle: JobHandle) -> None:
            found = _recover_ids(ctx, wait=DRIVER_PID_WAIT)
            try:
                if found:
                    sink(BackendInfo(ctx.job_id, found))  # `stop` from any process reaches it
                    marker = found.get("start_marker")
                    if proc.pid_alive(int(found.get("pid") or 0), marker):  # was "Starting"
                        emit_status(sink, ctx.job_id, JobStatus.TRAINING, "Training in progress")
                if not ctx.backend_ids.get("started") and not ctx.backend_ids.get("pid"):
                    layout = HostLayout(HOST, ctx.run_dir / "hosts" / HOST)
                    if not (layout.succeeded() or layout.failure_reason()):
                        stopped = ctx.stop_requested()
                        status = JobStatus.STOPPED if stopped else JobStatus.FAILED
                        reason = ctx.stop_reason() if stopped else STARTING_DIED
                        emit_status(sink, ctx.job_id, status, reason)
                        handle._finish(status)
                        return
            except DiskFull as exc:
                handle._finish(stop_for_disk_full(ctx, sink, self.stop, exc))
                return
            follow_and_finish(ctx, sink, handle, _ProcessWatch(ctx, sink, None), self.stop)

        return follow_in_thread(ctx, sink, follow, self.stop)

    # -- stop -------------------------------------------------------------------------------

    def stop(self, ctx: JobContext) -> None:
        if not ctx.stop_requested():
            ctx.request_stop()
        _recover_ids(ctx)  # after the stop marker: a start that stores its pid now sees it
        pid = int(ctx.backend_ids.get("pid") or 0)
        pgid = int(ctx.backend_ids.get("pgid") or pid)
        marker = ctx.backend_ids.get("start_marker")
        if pid and proc.pid_alive(pid, str(marker) if marker else None):
            proc.terminate_tree(pid, self.grace, str(marker) if marker else None, pgid=pgid)
        _end_orphaned_script(ctx, self.grace)


class _ProcessWatch(Watch):
    """The job's driver process (ours, or found again by pid) and its three log files."""

    def __init__(self, ctx: JobContext, sink: EventSink, popen: _Driver | None) -> None:
        self.ctx = ctx
        self.sink = sink
        self.popen = popen
        self._pidfd: int | None = None  # see _exit_fd
        logs = ctx.run_dir / "logs"
        self.tails = [
            FileTail(logs / f"{HOST}.setup", HOST, "system", _offset(ctx, "system")),
            FileTail(logs / f"{HOST}.stdout", HOST, "stdout", _offset(ctx, "stdout")),
            FileTail(logs / f"{HOST}.stderr", HOST, "stderr", _offset(ctx, "stderr")),
        ]
        self._changes: FolderChanges | None = None  # see _notices
        self._busy_until = 0.0  # no wake for new log bytes before (see pump)
        self._burst = 0  # looks that found lines since the last quiet spell
        self._last_lines = -QUIET_SPELL  # when a look last found lines (monotonic)

    def running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        pid = int(self.ctx.backend_ids.get("pid") or 0)
        marker = self.ctx.backend_ids.get("start_marker")
        return proc.pid_alive(pid, str(marker) if marker else None)

    def pause(self, seconds: float) -> None:
        """Until the next look, or sooner when our driver exits (the job ends, and the queue's
        next job starts, without waiting out the poll: issue 14) or writes to its logs (its
        first lines and metrics show at once: issue 18)."""
        if self.popen is None or self.ctx.stop_requested() or self.popen.poll() is not None:
            # Exited already: its pidfd stays readable, and a wait on it would return at once,
            # turning the callers' timed loops into a spin. While a stop runs, the job ends at
            # the poll's pace, as before: the stop's tree walk finds what the script starts.
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        exit_fd = self._exit_fd()
        notices = self._notices()
        log_fd = notices.fileno()
        if exit_fd is None:  # no pidfd (not Linux, an old kernel): the poll's pace, as before
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=seconds)  # a Popen polls every 50 ms here
            return
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            poller = select.poll()  # not select.select: no limit on the fds' numbers
            poller.register(exit_fd, select.POLLIN)  # readable once the process has exited
            # The first lines after a quiet spell are read at once; a steady stream no more
            # often than the poll's pace (one store batch per look, as before).
            until = deadline
            if log_fd is not None and now >= self._busy_until:
                poller.register(log_fd, select.POLLIN)
            elif log_fd is not None:
                until = min(deadline, self._busy_until)
            ready = {fd for fd, _ in poller.poll(max(0.0, until - now) * 1000)}
            if exit_fd in ready:
                if self.popen.poll() is None:  # a warm driver: its status is on its way
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
                return
            if log_fd in ready and notices.relevant():
                return

    def _exit_fd(self) -> int | None:
        """A pidfd of our driver process (Linux 5.3+; the warm interpreter's fork too),
        opened once; None elsewhere."""
        if self._pidfd is None:
            self._pidfd = -1
            pid = self.popen.pid if self.popen is not None else 0
            if pid > 0 and hasattr(os, "pidfd_open"):
                with contextlib.suppress(OSError):  # an old kernel, or ended already
                    self._pidfd = os.pidfd_open(pid)
        return self._pidfd if self._pidfd >= 0 else None

    def _notices(self) -> FolderChanges:
        """What says when the driver writes its logs (`fileno()` None where nothing can)."""
        if self._changes is None:
            self._changes = FolderChanges(
                self.ctx.run_dir / "logs", [tail.path.name for tail in self.tails]
            )
        return self._changes

    def pump(self, final: bool) -> None:
        if self.popen is not None:
            # Watched from the first look on (a line written between a look and the watch
            # would wait for the poll); the notices up to now are what the reads below see.
            self._notices().relevant()
        while True:
            marked: list[tuple[LogLine, int]] = []
            for tail in self.tails:
                marked.extend(tail.read_marked(final=final))
            if not marked:
                return
            now = time.monotonic()
            if now - self._last_lines >= QUIET_SPELL:
                self._burst = 0
            self._burst += 1
            self._last_lines = now
            if self._burst >= QUICK_LOOKS:
                self._busy_until = now + POLL_SECONDS
            marked.sort(key=lambda pair: pair[0].time)  # stable: each stream keeps its order
            offsets = {tail.key: str(tail.offset) for tail in self.tails}
            lines = [line for line, _ in marked]
            emit_logs(self.sink, self.ctx.job_id, lines, offsets, [str(end) for _, end in marked])

    def system_sampler(self) -> sysmetrics.Sampler | None:
        """The driver's process tree (the script and whatever it spawned)."""
        pid = self.popen.pid if self.popen else int(self.ctx.backend_ids.get("pid") or 0)
        return sysmetrics.process_sampler(pid, HOST) if pid and self.running() else None

    def settle(self) -> Ending:
        _end_orphaned_script(self.ctx, ORPHAN_GRACE)
        if self.popen is None:  # re-attached: the files the driver wrote tell how it ended
            return Ending()
        code = self.popen.wait()
        return Ending({HOST: code}, first_failure=HOST if code else None)

    def release(self) -> None:
        if self._pidfd is not None and self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        if self._changes is not None:
            self._changes.close()
        if not self.running():  # ended: its channel copies go, as an instance's disk does
            channels.discard(self.ctx.spec, self.ctx.run_dir)


def _inherit_site_packages(parent: str, venv_python: Path) -> None:
    """Let the job venv see the project's interpreter's packages (torch!), even a venv's.

    `--system-site-packages` only reaches the base installation, not a parent venv.
    """
    query = "import json, site, sysconfig; print(json.dumps([sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib'], *site.getsitepackages()]))"  # noqa: E501
    parent_paths = subprocess.run([parent, "-c", query], capture_output=True, text=True, check=True)
    child_paths = subprocess.run(
        [str(venv_python), "-c", query], capture_output=True, text=True, check=True
    )
    mine = json.loads(child_paths.stdout)
    extra = [p for p in dict.fromkeys(json.loads(parent_paths.stdout)) if p not in mine]
    if extra:
        Path(mine[0], "_trainer_gui_parent.pth").write_text(
            "\n".join(extra) + "\n", encoding="utf-8"
        )


def _recover_ids(ctx: JobContext, wait: float = 0.0) -> dict[str, Any]:
    """The driver's pid when the store lacks it (the process that started the job died before
    it stored it), from the start marker or the driver's own pid file; also put in
    `ctx.backend_ids`. Returns what was found, empty when nothing new."""
    if ctx.backend_ids.get("pid"):
        return {}
    data = read_start_marker(ctx.run_dir) or {}
    pid = data.get("pid")
    if isinstance(pid, int) and pid > 0:
        marker = data.get("start_marker")
        ids: dict[str, Any] = {
            "pid": pid,
            "pgid": data.get("pgid") or pid,
            "start_marker": marker if isinstance(marker, str) else None,
        }
        ctx.backend_ids.update(ids)
        return ids
    pid_file = ctx.run_dir / DRIVER_PID
    if not pid_file.exists() and (ctx.run_dir / "logs" / f"{HOST}.stdout").exists():
        # Spawning had begun: the driver may still be on its way to writing the file.
        deadline = time.monotonic() + wait
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    if not pid_file.exists():
        return {}
    pid, marker = _from_pid_file(ctx, 0)
    if not pid:
        ids = {"started": True}  # the driver ran and is gone: its files tell how it ended
    else:
        ids = {"pid": pid, "pgid": pid, "start_marker": marker, "started": True}
    ctx.backend_ids.update(ids)
    return ids


def _from_pid_file(ctx: JobContext, line: int) -> tuple[int, str | None]:
    """(pid, start marker) of the driver (line 0) or the script (line 1) from the driver's pid
    file while that process runs; (0, None) otherwise. A process created after the file was
    last written is another one on a reused pid."""
    path = ctx.run_dir / DRIVER_PID
    try:
        lines = path.read_text(encoding="utf-8").split()
        written = path.stat().st_mtime
        pid = int(lines[line]) if len(lines) > line else 0
    except (OSError, ValueError):
        return 0, None
    marker = proc.start_marker(pid) if pid > 0 else None
    if marker is None or float(marker) > written + 1.0 or not proc.pid_alive(pid, marker):
        return 0, None
    return pid, marker


def _end_orphaned_script(ctx: JobContext, grace: float) -> None:
    """The script runs in a session of its own: when its driver was killed (SIGKILL, the OOM
    killer), only the pid the driver recorded still leads to it."""
    pid, marker = _from_pid_file(ctx, 1)
    if pid:
        log.warning("job %s: its script (pid %d) outlived the driver; ending it", ctx.job_id, pid)
        proc.terminate_tree(pid, grace, marker, pgid=pid)


def _offset(ctx: JobContext, stream: str) -> int:
    try:
        return int(ctx.offsets.get((HOST, stream), "0"))
    except ValueError:
        return 0


def _link(run_dir: Path, source: Path, target: Path) -> None:
    """Expose a host folder inside the tree; a copy where symlinks are not allowed (Windows).

    Only `target` inside `run_dir` is replaced (`safety.link` refuses anything else).
    """
    if source.is_file():  # a channel is always a folder; a single file goes inside it
        safety.remove(run_dir, target)
        target = safety.make_dirs(run_dir, target) / source.name
    safety.link(run_dir, source, target)
