"""What this machine can run at once, and what a job needs: the queue's arithmetic.

A job needs GPUs (its `compute.gpus` per host times its hosts; "all" takes every GPU) and CPU
slots (one per host). The machine has its GPUs (`nvidia-smi`, once per process) and
`max_parallel` slots: a setting in the store, else `TRAINER_GUI_MAX_PARALLEL`, else one per GPU
(at least 1), so a CPU-only machine runs one local job at a time by default. A job larger than
the machine runs alone when nothing else does, rather than waiting for ever.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass

from trainer_gui.core.spec.model import Backend, JobSpec
from trainer_gui.core.store.queue import ALL_GPUS

LOCAL_BACKENDS = frozenset({Backend.LOCAL_PROCESS.value, Backend.DOCKER.value})
MAX_PARALLEL_KEY = "queue.max_parallel"
PAUSED_KEY = "queue.paused"


@dataclass(frozen=True)
class Needs:
    gpus: int  # ALL_GPUS for every GPU of the machine
    slots: int


def needs_of(spec: JobSpec) -> Needs:
    hosts = spec.compute.instance_count
    gpus = spec.compute.gpus
    return Needs(ALL_GPUS if gpus == "all" else int(gpus) * hosts, hosts)


@functools.lru_cache(maxsize=1)
def _detected_gpus() -> int:
    from trainer_gui.core.contract.toolkit import count_gpus

    return count_gpus()


def machine_gpus() -> int:
    """GPUs of this machine (`TRAINER_GUI_GPUS` overrides, for tests and odd drivers)."""
    override = os.environ.get("TRAINER_GUI_GPUS", "").strip()
    if override.isdigit():
        return int(override)
    return _detected_gpus()


def default_max_parallel() -> int:
    override = os.environ.get("TRAINER_GUI_MAX_PARALLEL", "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    return max(1, machine_gpus())


def fits(need: Needs, running: Iterable[Needs], slots: int, gpus: int) -> bool:
    """Whether a job with `need` may start beside the `running` ones."""
    running = list(running)
    if not running:
        return True  # even a job larger than the machine runs, alone
    if sum(r.slots for r in running) + need.slots > slots:
        return False
    if need.gpus == 0:
        return True
    if any(r.gpus == ALL_GPUS for r in running):
        return False
    used = sum(r.gpus for r in running)
    if need.gpus == ALL_GPUS:
        return used == 0
    return used + need.gpus <= gpus or used == 0
