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
    hosts = spec.compute.host_count
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


GPU_IDS_KEY = "gpu_ids"
"""backend_ids key: the GPUs a local job was given, one list of device indices per host."""


def gpus_per_host(spec: JobSpec) -> int:
    """GPUs each host of `spec` asks for (ALL_GPUS for every GPU of the machine)."""
    gpus = spec.compute.gpus
    return ALL_GPUS if gpus == "all" else int(gpus)


def too_many_gpus(spec: JobSpec, machine: int) -> str | None:
    """Why `spec` can never run here, GPU-wise; None when it can (or asks for none)."""
    per_host = gpus_per_host(spec)
    if per_host in (0, ALL_GPUS) or machine == 0:
        return None  # no GPU here at all: the backend's own check says what to install
    hosts = spec.compute.host_count
    if per_host * hosts > machine:
        ask = f"{per_host} GPU" + ("s" if per_host != 1 else "")
        total = f" ({hosts} hosts x {ask})" if hosts > 1 else ""
        return (
            f"the job asks for {per_host * hosts} GPUs{total}; this machine has {machine}. "
            "Lower compute.gpus or compute.instance_count"
        )
    return None


def assign_gpus(
    per_host: int, hosts: int, machine: int, taken: Iterable[int]
) -> list[list[int]] | None:
    """Distinct device indices for each host, from the ones not `taken`: host 1 gets the
    lowest free ones, host 2 the next (2 hosts x 1 GPU on a 2-GPU machine: GPU 0 and GPU 1).
    Every GPU for each host when `per_host` is ALL_GPUS; [] per host for a CPU job; None when
    not enough are free."""
    if per_host == 0 or machine == 0:
        return [[] for _ in range(hosts)]
    if per_host == ALL_GPUS:
        return [list(range(machine)) for _ in range(hosts)]
    free = [i for i in range(machine) if i not in set(taken)]
    if len(free) < per_host * hosts:
        return None
    return [free[h * per_host : (h + 1) * per_host] for h in range(hosts)]
