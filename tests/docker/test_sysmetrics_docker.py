"""System metrics and TensorBoard scalars of a real docker job (issue 15, items 4 and 5): Docker's
stats API per host container, the event files each container writes under /opt/ml."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trainer_gui.core.metrics import tensorboard as tb
from trainer_gui.core.runners import sysmetrics
from trainer_gui.core.spec import JobSpec
from trainer_gui.services.jobs import JobService

pytestmark = pytest.mark.docker

SpecFactory = Callable[..., JobSpec]
TIMEOUT = 240

# The event file is written in the container (no trainer_gui there): its bytes come from here.
BUSY = """
    import os, time
    block = bytearray(64 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    folder = "/opt/ml/output/tensorboard"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "events.out.tfevents.1." + os.environ["SM_CURRENT_HOST"]), "wb") as fh:
        fh.write(bytes.fromhex("{records}"))
    end = time.time() + 8.5
    while time.time() < end:
        pass
    print("done", len(block))
"""


def test_a_docker_job_gets_system_metrics_per_host_container_and_its_tensorboard_scalars(
    service: JobService, job_spec: SpecFactory
) -> None:
    records = b"".join(
        tb.frame_record(tb.encode_scalar_event("loss", 1.0 / (step + 1), step, 1000.0 + step))
        for step in range(3)
    )
    spec = job_spec(
        BUSY.replace("{records}", records.hex()),
        compute={"backend": "docker", "instance_count": 2},
    )
    handle = service.submit(spec)
    handle.wait(TIMEOUT)
    record = service.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    store = service.store
    for host in ("algo-1", "algo-2"):
        cpu = [s for _, s in store.metric_samples(record.id, sysmetrics.CPU_PERCENT, host)]
        memory = [s for _, s in store.metric_samples(record.id, sysmetrics.MEMORY_MB, host)]
        assert len(cpu) >= 2, host  # every 2 s of a ~9 s run
        assert max(s.value for s in cpu) > 10, host  # each spins a core (on a shared machine)
        assert max(s.value for s in memory) > 60, host  # its 64 MB, without the page cache
        loss = [s for _, s in store.metric_samples(record.id, "tb/loss", host)]
        assert [(s.step, s.wall_time) for s in loss] == [(0, 1000.0), (1, 1001.0), (2, 1002.0)]
