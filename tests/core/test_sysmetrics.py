"""System metrics beside training metrics (issue 15, item 4): the process-tree sampler, the
`docker stats` arithmetic, NVML through a fake, and a real local-process job."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners import sysmetrics
from trainer_gui.core.runners.events import LogBatch, Phase
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

SpecFactory = Callable[..., JobSpec]
TIMEOUT = 120

BUSY = """
    import time
    block = bytearray(80 * 1024 * 1024)  # resident: every page written
    for i in range(0, len(block), 4096):
        block[i] = 1
    end = time.time() + 5.5
    while time.time() < end:
        pass
    print("done", len(block))
"""


def test_a_real_job_gets_cpu_and_memory_samples_of_its_process_tree(
    service: JobService, job_spec: SpecFactory
) -> None:
    handle = service.submit(job_spec(BUSY))
    assert handle.wait(TIMEOUT) is not None
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    cpu = [s for _, s in service.store.metric_samples(record.id, name=sysmetrics.CPU_PERCENT)]
    memory = [s for _, s in service.store.metric_samples(record.id, name=sysmetrics.MEMORY_MB)]
    assert len(cpu) >= 2 and len(memory) == len(cpu)  # every 2 s of a ~6 s job
    assert all(s.host == "algo-1" for s in cpu + memory)
    assert max(s.value for s in cpu) > 20  # the script spins a core (its driver is idle)
    assert max(s.value for s in memory) > 80  # the script's 80 MB are in the tree's sum
    times = [s.wall_time for s in cpu]
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(times))
    assert record.started_at is not None and times[0] >= record.started_at
    # System samples are no training metric: the job printed none, so no "first metric".
    assert Phase.FIRST_METRIC not in {e.phase for e in service.store.phases(record.id)}


@pytest.fixture
def family() -> Iterator[subprocess.Popen[bytes]]:
    """A parent that starts a child holding 60 MB, both alive until the test ends."""
    child = textwrap.dedent(
        """
        import time
        block = bytearray(60 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    parent = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    yield proc
    import psutil

    for p in psutil.Process(proc.pid).children(recursive=True):
        p.kill()
    proc.kill()
    proc.wait()


def test_memory_is_summed_over_the_whole_process_tree(
    family: subprocess.Popen[bytes],
) -> None:
    import psutil

    deadline = time.monotonic() + 20
    sampler = sysmetrics.ProcessTreeSampler(family.pid, "algo-1")
    while time.monotonic() < deadline:
        children = psutil.Process(family.pid).children(recursive=True)
        if children and children[0].memory_info().rss > 60 * 1024 * 1024:
            break
        time.sleep(0.1)
    samples = {s.name: s for s in sampler.sample()}
    assert set(samples) == {sysmetrics.CPU_PERCENT, sysmetrics.MEMORY_MB}
    assert samples[sysmetrics.MEMORY_MB].value > 60
    assert samples[sysmetrics.MEMORY_MB].host == "algo-1"


def test_a_tree_that_ended_gives_no_samples() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    sampler = sysmetrics.ProcessTreeSampler(proc.pid, "algo-1")
    proc.wait()
    assert sampler.sample() == []


def test_docker_stats_give_cpu_percent_and_memory_without_the_page_cache() -> None:
    stats: dict[str, Any] = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 20_000_000_000,
            "online_cpus": 4,
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": 1_000_000_000},
            "system_cpu_usage": 10_000_000_000,
        },
        "memory_stats": {"usage": 300 * 2**20, "stats": {"inactive_file": 100 * 2**20}},
    }
    # 2 s of CPU time in 10 s of all 4 CPUs' time: 80 % of one CPU, as `docker stats` says.
    assert sysmetrics.docker_cpu_percent(stats) == pytest.approx(80.0)
    assert sysmetrics.docker_memory_bytes(stats) == 200 * 2**20
    stats["memory_stats"]["stats"] = {"total_inactive_file": 50 * 2**20}  # cgroup v1
    assert sysmetrics.docker_memory_bytes(stats) == 250 * 2**20
    stats["precpu_stats"] = {}  # the first reading of a container: nothing to compare with
    assert sysmetrics.docker_cpu_percent(stats) is None


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int | None


class FakeNvml:
    """pynvml's calls the sampler makes, for two GPUs."""

    def __init__(self) -> None:
        self.processes = {
            0: [_Process(10, 512 * 2**20), _Process(99, 2**30)],
            1: [_Process(11, None)],
        }
        self.util = {0: 30, 1: 70}
        self.shut = False

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[_Process]:
        return self.processes[handle]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return type("Rates", (), {"gpu": self.util[handle], "memory": 0})()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return type("Memory", (), {"used": (handle + 1) * 2**30})()


def test_gpu_samples_cover_the_gpus_the_job_uses_and_its_memory_there() -> None:
    nvml = FakeNvml()
    gpus = sysmetrics.Gpus(nvml)
    found = {s.name: s.value for s in gpus.samples("algo-1", {10, 11}, 5.0)}
    assert found == {sysmetrics.GPU_UTIL: 50.0, sysmetrics.GPU_MEMORY_MB: 512.0}
    only_first = {s.name: s.value for s in gpus.samples("algo-1", {10}, 5.0)}
    assert only_first == {sysmetrics.GPU_UTIL: 30.0, sysmetrics.GPU_MEMORY_MB: 512.0}
    assert gpus.samples("algo-1", {12345}, 5.0) == []  # the job runs on no GPU
    whole = {s.name: s.value for s in gpus.samples("algo-1", None, 5.0)}
    assert whole == {sysmetrics.GPU_UTIL: 50.0, sysmetrics.GPU_MEMORY_MB: 3 * 1024.0}
    gpus.close()
    assert nvml.shut


def test_without_nvml_there_are_no_gpu_samples() -> None:
    gpus = sysmetrics.Gpus()  # pynvml is not installed here (or sees no GPU)
    assert gpus.samples("algo-1", None, 1.0) == []


def test_the_sampler_thread_sends_samples_until_stopped() -> None:
    class Counting:
        interval = 0.05

        def __init__(self) -> None:
            self.calls = 0
            self.closed = False

        def sample(self) -> list[MetricSample]:
            self.calls += 1
            return [MetricSample(sysmetrics.CPU_PERCENT, float(self.calls), "algo-1", time.time())]

        def close(self) -> None:
            self.closed = True

    sent: list[LogBatch] = []
    sampler = Counting()
    thread = sysmetrics.SamplerThread("job", sent.append, sampler).start()
    deadline = time.monotonic() + 10
    while len(sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    thread.stop()
    assert sampler.closed
    count = len(sent)
    time.sleep(0.2)
    assert len(sent) == count >= 3
    assert all(b.lines == [] and b.offsets == {} and len(b.samples) == 1 for b in sent)


def test_system_metric_names_are_recognised() -> None:
    assert sysmetrics.is_system_metric("sys/cpu_percent")
    assert not sysmetrics.is_system_metric("loss")
    assert not sysmetrics.is_system_metric("tb/sys/loss")


def test_the_job_run_folder_is_left_alone(tmp_path: Path) -> None:
    """Reading TensorBoard folders that do not exist creates nothing."""
    followers = sysmetrics.tensorboard_followers({"algo-1": tmp_path / "hosts" / "algo-1"}, {})
    assert sysmetrics.send_tensorboard("job", lambda e: None, followers) == 0
    assert list(tmp_path.iterdir()) == []
