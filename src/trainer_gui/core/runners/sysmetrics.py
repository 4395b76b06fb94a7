"""System metrics beside the training metrics, per host: CPU, memory, GPU.

A sampler per backend, no Qt: the driver's process tree (psutil) for local-process, Docker's
stats API for docker, CloudWatch's `/aws/sagemaker/TrainingJobs` instance metrics for SageMaker;
GPUs through NVML (`nvidia-ml-py`) only where it imports and finds a device.

Samples are metric samples with reserved `sys/` names, sent as a `LogBatch` without lines, so
the follower stores them like any sample. Local samples are taken now and stamped now: a
follower that takes over samples again from then on and never repeats one. CloudWatch's
datapoints come late and by the minute, so their last timestamp is stored as an offset
(`(host, "sys:cloudwatch")`) with them, in one transaction.

`SideMetrics` runs beside a local runner's follow loop: the system sampler in a thread of its
own (a Docker stats call blocks about a second), and the TensorBoard event files of every
host's `output/tensorboard` folder read from stored offsets.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from trainer_gui.core.metrics import tensorboard
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.events import LogBatch, LogLine

log = logging.getLogger(__name__)

PREFIX = "sys/"
CPU_PERCENT = "sys/cpu_percent"  # 100 = one core busy (as `top` and `docker stats` count)
MEMORY_MB = "sys/memory_mb"
MEMORY_PERCENT = "sys/memory_percent"  # CloudWatch reports memory as a share only
GPU_UTIL = "sys/gpu_util"  # percent, averaged over the GPUs the job uses
GPU_MEMORY_MB = "sys/gpu_memory_mb"
GPU_MEMORY_PERCENT = "sys/gpu_memory_percent"

#: Seconds between two local samples.
INTERVAL = 2.0
#: CloudWatch's instance metrics come by the minute.
CLOUDWATCH_INTERVAL = 60.0
CLOUDWATCH_NAMESPACE = "/aws/sagemaker/TrainingJobs"
CLOUDWATCH_STREAM = "sys:cloudwatch"
#: Seconds between two looks at the TensorBoard folders.
TENSORBOARD_INTERVAL = 1.0

_MIB = 1024 * 1024


def is_system_metric(name: str) -> bool:
    """Whether a metric is one of these (kept out of training plots and the runs table)."""
    return name.startswith(PREFIX)


Sink = Callable[[Any], None]


class Sampler(Protocol):
    interval: float

    def sample(self) -> list[MetricSample]: ...

    def close(self) -> None: ...


# -- GPUs ---------------------------------------------------------------------------------------


class Gpus:
    """NVML, when `pynvml` (nvidia-ml-py) imports and sees a device; else nothing at all.

    `nvml` may be handed in (a fake, in tests)."""

    def __init__(self, nvml: Any = None) -> None:
        self.nvml = nvml if nvml is not None else _load_nvml()
        self.count = 0
        if self.nvml is not None:
            try:
                self.nvml.nvmlInit()
                self.count = int(self.nvml.nvmlDeviceGetCount())
            except Exception as exc:
                log.debug("NVML unusable: %s", exc)
                self.nvml = None

    def samples(self, host: str, pids: set[int] | None, now: float) -> list[MetricSample]:
        """Utilisation of the GPUs any of `pids` runs on (all GPUs when None) and the memory
        those processes hold there (the whole device's used memory when None)."""
        if self.nvml is None or not self.count:
            return []
        nvml = self.nvml
        utils: list[float] = []
        memory = 0.0
        try:
            for index in range(self.count):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                if pids is None:
                    used = float(nvml.nvmlDeviceGetMemoryInfo(handle).used)
                else:
                    mine = [
                        p
                        for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                        if int(p.pid) in pids
                    ]
                    if not mine:
                        continue
                    used = float(sum(int(p.usedGpuMemory or 0) for p in mine))
                utils.append(float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
                memory += used
        except Exception as exc:
            log.debug("NVML sample failed: %s", exc)
            return []
        if not utils:
            return []
        return [
            MetricSample(GPU_UTIL, sum(utils) / len(utils), host, now),
            MetricSample(GPU_MEMORY_MB, memory / _MIB, host, now),
        ]

    def close(self) -> None:
        if self.nvml is not None:
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()


def _load_nvml() -> Any:
    try:
        import pynvml  # type: ignore[import-not-found]
    except Exception:
        return None
    return pynvml


# -- local-process --------------------------------------------------------------------------------


class ProcessTreeSampler:
    """CPU and resident memory summed over a process and all its descendants."""

    interval = INTERVAL

    def __init__(self, pid: int, host: str, gpus: Gpus | None = None) -> None:
        import psutil

        self.host = host
        self.gpus = gpus
        self.root = psutil.Process(pid)
        self._known: dict[int, Any] = {}  # pid -> Process: cpu_percent measures between calls
        self.sample()  # the first CPU reading of a process is always 0: take it now

    def sample(self) -> list[MetricSample]:
        import psutil

        now = time.time()
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []
        cpu = 0.0
        rss = 0
        alive: dict[int, Any] = {}
        for found in tree:
            process = self._known.get(found.pid, found)
            try:
                cpu += process.cpu_percent(None)  # 0.0 the first time a process is seen
                rss += process.memory_info().rss
            except psutil.Error:
                continue
            alive[found.pid] = process
        self._known = alive
        if not alive:
            return []
        samples = [
            MetricSample(CPU_PERCENT, round(cpu, 2), self.host, now),
            MetricSample(MEMORY_MB, round(rss / _MIB, 2), self.host, now),
        ]
        if self.gpus is not None:
            samples += self.gpus.samples(self.host, set(alive), now)
        return samples

    def close(self) -> None:
        if self.gpus is not None:
            self.gpus.close()


# -- docker ---------------------------------------------------------------------------------------


def docker_cpu_percent(stats: Mapping[str, Any]) -> float | None:
    """CPU % as `docker stats` computes it: the container's share of the host's CPU time
    between two readings, times the CPUs it may use (100 = one core busy)."""
    cpu = stats.get("cpu_stats") or {}
    pre = stats.get("precpu_stats") or {}
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    if system_delta <= 0 or cpu_delta < 0:
        return None
    cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
    return cpu_delta / system_delta * cpus * 100.0


def docker_memory_bytes(stats: Mapping[str, Any]) -> float | None:
    """Memory in use as `docker stats` shows it: usage less the page cache."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:
        return None
    detail = memory.get("stats") or {}
    for key in ("inactive_file", "total_inactive_file", "cache"):  # cgroup v2, v1, older
        if key in detail:
            return float(max(0, usage - detail[key]))
    return float(usage)


class DockerStatsSampler:
    """One stats reading per host container (the API's one-shot form, no stream)."""

    interval = INTERVAL

    def __init__(self, client: Any, containers: Mapping[str, str], gpus: Gpus | None = None):
        self.client = client
        self.containers = dict(containers)  # host -> container id
        self.gpus = gpus

    def sample(self) -> list[MetricSample]:
        # A reading takes Docker about a second (it compares two): all hosts at once.
        hosts = list(self.containers.items())
        if len(hosts) == 1:
            return self._sample(*hosts[0])
        with ThreadPoolExecutor(min(len(hosts), 8), thread_name_prefix="stats") as pool:
            found = pool.map(lambda pair: self._sample(*pair), hosts)
        return [s for samples in found for s in samples]

    def _sample(self, host: str, ident: str) -> list[MetricSample]:
        samples: list[MetricSample] = []
        try:
            container = self.client.containers.get(ident)
            stats = container.stats(stream=False)
        except Exception as exc:  # gone, or Docker briefly unreachable: next time
            log.debug("docker stats of %s: %s", ident, exc)
            return []
        now = time.time()
        cpu = docker_cpu_percent(stats)
        if cpu is not None:
            samples.append(MetricSample(CPU_PERCENT, round(cpu, 2), host, now))
        memory = docker_memory_bytes(stats)
        if memory is not None:
            samples.append(MetricSample(MEMORY_MB, round(memory / _MIB, 2), host, now))
        if self.gpus is not None and self.gpus.count:
            try:
                pids = {int(row[1]) for row in container.top().get("Processes") or []}
            except Exception:
                pids = set()
            if pids:
                samples += self.gpus.samples(host, pids, now)
        return samples

    def close(self) -> None:
        if self.gpus is not None:
            self.gpus.close()


# -- SageMaker ------------------------------------------------------------------------------------

_CLOUDWATCH_METRICS = {
    "CPUUtilization": CPU_PERCENT,
    "MemoryUtilization": MEMORY_PERCENT,
    "GPUUtilization": GPU_UTIL,
    "GPUMemoryUtilization": GPU_MEMORY_PERCENT,
}


class CloudWatchSampler:
    """The instance metrics SageMaker publishes per host (`Host` = `<job>/<host>`).

    `poll` returns the datapoints newer than the last one stored (per host, from `offsets`)
    and the offsets to store with them."""

    interval = CLOUDWATCH_INTERVAL

    def __init__(
        self,
        client: Any,
        job_name: str,
        hosts: Iterable[str],
        offsets: Mapping[tuple[str, str], str] | None = None,
        lookback: float = 3 * 3600.0,
    ) -> None:
        self.client = client
        self.job_name = job_name
        self.hosts = list(hosts)
        self.since: dict[str, float] = {}
        for host in self.hosts:
            try:
                self.since[host] = float((offsets or {}).get((host, CLOUDWATCH_STREAM), ""))
            except ValueError:
                self.since[host] = 0.0
        self.lookback = lookback

    def poll(
        self, now: float | None = None
    ) -> tuple[list[MetricSample], dict[tuple[str, str], str]]:
        now = time.time() if now is None else now
        queries = []
        index: dict[str, tuple[str, str]] = {}
        for h, host in enumerate(self.hosts):
            for m, (metric, name) in enumerate(_CLOUDWATCH_METRICS.items()):
                ident = f"m{h}x{m}"
                index[ident] = (host, name)
                queries.append(
                    {
                        "Id": ident,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": CLOUDWATCH_NAMESPACE,
                                "MetricName": metric,
                                "Dimensions": [
                                    {"Name": "Host", "Value": f"{self.job_name}/{host}"}
                                ],
                            },
                            "Period": 60,
                            "Stat": "Average",
                        },
                        "ReturnData": True,
                    }
                )
        oldest = min(self.since.values(), default=0.0)
        start = max(oldest, now - self.lookback)
        if not queries:
            return [], {}
        samples: list[MetricSample] = []
        newest = dict(self.since)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "MetricDataQueries": queries,
                "StartTime": datetime.fromtimestamp(start, timezone.utc) - timedelta(seconds=1),
                "EndTime": datetime.fromtimestamp(now, timezone.utc) + timedelta(seconds=60),
                "ScanBy": "TimestampAscending",
            }
            if token:
                kwargs["NextToken"] = token
            reply = self.client.get_metric_data(**kwargs)
            for result in reply.get("MetricDataResults") or []:
                host, name = index.get(str(result.get("Id")), ("", ""))
                if not host:
                    continue
                for stamp, value in zip(
                    result.get("Timestamps") or [], result.get("Values") or [], strict=False
                ):
                    at = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
                    if at <= self.since[host]:
                        continue  # stored already
                    samples.append(MetricSample(name, float(value), host, at))
                    newest[host] = max(newest[host], at)
            token = reply.get("NextToken")
            if not token:
                break
        samples.sort(key=lambda s: s.wall_time)
        offsets = {
            (host, CLOUDWATCH_STREAM): repr(at)
            for host, at in newest.items()
            if at > self.since[host]
        }
        return samples, offsets

    def commit(self, offsets: Mapping[tuple[str, str], str]) -> None:
        """The batch with these offsets was handed to the sink: go on from there."""
        for (host, _), value in offsets.items():
            self.since[host] = float(value)


# -- beside the follow loop ---------------------------------------------------------------------


class SamplerThread:
    """Calls a sampler every `interval` seconds and sends what it returns, until stopped."""

    def __init__(self, job_id: str, sink: Sink, sampler: Sampler) -> None:
        self.job_id = job_id
        self.sink = sink
        self.sampler = sampler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sys-{job_id}", daemon=True)

    def start(self) -> SamplerThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        try:
            # The first reading one interval in: a job shorter than that gets none, and CPU
            # percentages need a reading before them to compare with.
            wait = self.sampler.interval
            while not self._stop.wait(wait):
                began = time.monotonic()
                try:
                    samples = self.sampler.sample()
                    if samples and not self._stop.is_set():
                        self.sink(LogBatch(self.job_id, [], {}, samples))
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.log(
                        logging.WARNING if failures == 1 else logging.DEBUG,
                        "system metrics of %s: %s",
                        self.job_id,
                        exc,
                    )
                    if type(exc).__name__ == "DiskFull":
                        return  # the follow loop stops the job and says why
                wait = max(0.0, self.sampler.interval - (time.monotonic() - began))
        finally:
            try:
                self.sampler.close()
            except Exception:
                log.debug("closing the sampler of %s", self.job_id, exc_info=True)

    def stop(self, wait: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(wait)


def tensorboard_followers(
    host_roots: Mapping[str, Path], offsets: Mapping[tuple[str, str], str]
) -> list[tensorboard.EventFollower]:
    """One follower per host's /opt/ml tree (`output/tensorboard` in it)."""
    return [
        tensorboard.EventFollower(
            tensorboard.FolderSource(root / tensorboard.LOCAL_DIR),
            host,
            {s: off for (h, s), off in offsets.items() if h == host},
        )
        for host, root in host_roots.items()
    ]


def send_tensorboard(
    job_id: str, sink: Sink, followers: Iterable[tensorboard.EventFollower]
) -> int:
    """Read what the event files gained and send it, one batch per file with its offset and
    a system log line per damaged spot; returns the number of samples sent."""
    sent = 0
    for follower in followers:
        for batch in follower.poll():
            key = (follower.host, tensorboard.stream_key(batch.relative))
            now = time.time()
            lines = [
                LogLine(follower.host, "system", f"tensorboard: {problem}", now)
                for problem in batch.problems
            ]
            for problem in batch.problems:
                log.warning("job %s: tensorboard %s", job_id, problem)
            sink(LogBatch(job_id, lines, {key: str(batch.offset)}, batch.samples))
            sent += len(batch.samples)
    return sent


class SideMetrics:
    """What a local follow loop reads besides the logs: system metrics and TensorBoard."""

    def __init__(
        self,
        job_id: str,
        sink: Sink,
        sampler: Sampler | None,
        host_roots: Mapping[str, Path],
        offsets: Mapping[tuple[str, str], str],
    ) -> None:
        self.job_id = job_id
        self.sink = sink
        self.thread = SamplerThread(job_id, sink, sampler).start() if sampler else None
        self.followers = tensorboard_followers(host_roots, offsets)
        self._next = 0.0

    def pump(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now < self._next:
            return
        self._next = now + TENSORBOARD_INTERVAL
        try:
            send_tensorboard(self.job_id, self.sink, self.followers)
        except Exception as exc:
            if type(exc).__name__ == "DiskFull":
                raise
            log.warning("reading the TensorBoard files of %s: %s", self.job_id, exc)

    def close(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None


class CloudSideMetrics:
    """What a SageMaker follow loop reads besides the logs: CloudWatch's instance metrics (by
    the minute) and, when the job has a TensorBoardOutputConfig, the event files it uploads.

    `poll` is called on every turn of the loop with the latest DescribeTrainingJob answer;
    nothing here raises but a full disk (the job's logs are what matter)."""

    def __init__(
        self,
        job_id: str,
        sink: Sink,
        client: Callable[[str], Any],
        job_name: str,
        hosts: Iterable[str],
        offsets: Mapping[tuple[str, str], str],
    ) -> None:
        self.job_id = job_id
        self.sink = sink
        self.client = client
        self.hosts = list(hosts)
        self.offsets = dict(offsets)
        self.cloudwatch = CloudWatchSampler(client("cloudwatch"), job_name, self.hosts, offsets)
        self.followers: list[tensorboard.EventFollower] | None = None
        self._next_cloudwatch = 0.0

    def poll(self, describe: Mapping[str, Any], final: bool = False) -> None:
        for step in (self._tensorboard, self._cloudwatch):
            try:
                step(describe, final)
            except Exception as exc:
                if type(exc).__name__ == "DiskFull":
                    raise
                if "AccessDenied" in str(exc) or "UnauthorizedOperation" in str(exc):
                    # No permission (cloudwatch:GetMetricData, s3:GetObject): ask no more.
                    log.warning("job %s: %s; not read for this job", self.job_id, exc)
                    if step == self._cloudwatch:
                        self._next_cloudwatch = math.inf
                    else:
                        self.followers = []
                    continue
                log.warning("system metrics or TensorBoard files of %s: %s", self.job_id, exc)

    def _cloudwatch(self, describe: Mapping[str, Any], final: bool) -> None:
        now = time.monotonic()
        if now < self._next_cloudwatch and not (final and self._next_cloudwatch < math.inf):
            return
        self._next_cloudwatch = now + self.cloudwatch.interval
        samples, offsets = self.cloudwatch.poll()
        if samples or offsets:
            self.sink(LogBatch(self.job_id, [], offsets, samples))
            self.cloudwatch.commit(offsets)

    def _tensorboard(self, describe: Mapping[str, Any], final: bool = False) -> None:
        uri = (describe.get("TensorBoardOutputConfig") or {}).get("S3OutputPath")
        if not uri:
            return
        if self.followers is None:
            # SageMaker uploads every host's files to the one path: they count as algo-1's.
            host = self.hosts[0] if self.hosts else "algo-1"
            stored = {s: off for (h, s), off in self.offsets.items() if h == host}
            name = describe.get("TrainingJobName")
            source = tensorboard.S3Source(self.client("s3"), str(uri), str(name) if name else None)
            self.followers = [tensorboard.EventFollower(source, host, stored)]
        send_tensorboard(self.job_id, self.sink, self.followers)


def process_sampler(pid: int, host: str) -> Sampler | None:
    """The sampler of a local-process job's driver, or None when it is gone already."""
    try:
        return ProcessTreeSampler(pid, host, Gpus())
    except Exception as exc:  # psutil.NoSuchProcess, AccessDenied
        log.debug("no system metrics for pid %d: %s", pid, exc)
        return None


__all__ = [
    "CLOUDWATCH_NAMESPACE",
    "CLOUDWATCH_STREAM",
    "CPU_PERCENT",
    "GPU_MEMORY_MB",
    "GPU_MEMORY_PERCENT",
    "GPU_UTIL",
    "INTERVAL",
    "MEMORY_MB",
    "MEMORY_PERCENT",
    "PREFIX",
    "CloudSideMetrics",
    "CloudWatchSampler",
    "DockerStatsSampler",
    "Gpus",
    "ProcessTreeSampler",
    "Sampler",
    "SamplerThread",
    "SideMetrics",
    "docker_cpu_percent",
    "docker_memory_bytes",
    "is_system_metric",
    "process_sampler",
    "send_tensorboard",
    "tensorboard_followers",
]
