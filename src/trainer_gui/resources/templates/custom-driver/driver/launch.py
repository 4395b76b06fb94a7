"""A custom distribution driver: starts the training workers on this host, instead of torchrun.

The job runs this script (`distribution.kind: custom`) with SageMaker's environment plus:
  SM_ENTRY_SCRIPT, SM_SOURCE_DIR        the entry script and the folder it is in
  SM_HOST_COUNT, SM_CURRENT_HOST_RANK   how many hosts there are and which one this is
  SM_MASTER_ADDR, SM_MASTER_PORT        where rank 0 listens for the rendezvous
  SM_HPS, SM_USER_ARGS                  the hyperparameters, as JSON and as --key value args
It starts `workers-per-host` (a hyperparameter, default 1) copies of the entry script with
RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, passes on the
other hyperparameters, forwards SIGTERM/SIGINT (a stop), and exits with the first failure.
Standard library only: it runs in any image's Python before anything is installed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

WORKERS_KEY = "workers-per-host"


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _worker_args(user_args: list[str]) -> list[str]:
    """The hyperparameters as --key value, without the driver's own."""
    out: list[str] = []
    skip = False
    for arg in user_args:
        if skip:
            skip = False
            continue
        if arg == "--" + WORKERS_KEY:
            skip = True
            continue
        out.append(arg)
    return out


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    source_dir = os.environ.get("SM_SOURCE_DIR") or os.path.join(here, "..", "code")
    entry = os.environ.get("SM_ENTRY_SCRIPT") or "train.py"
    hps = json.loads(os.environ.get("SM_HPS") or "{}")
    user_args = json.loads(os.environ.get("SM_USER_ARGS") or "[]")
    workers = int(hps.get(WORKERS_KEY, 1))
    hosts = int(os.environ.get("SM_HOST_COUNT") or 1)
    host_rank = int(os.environ.get("SM_CURRENT_HOST_RANK") or 0)
    if hosts == 1:  # no peers: any free local port, so two jobs on one machine never collide
        addr, port = "127.0.0.1", _free_port()
    else:
        addr = os.environ.get("SM_MASTER_ADDR") or "algo-1"
        port = os.environ.get("SM_MASTER_PORT") or "7777"
    world = hosts * workers
    print(
        f"launch.py: host {host_rank + 1} of {hosts} starts {workers} workers of {entry} "
        f"(world size {world}, rendezvous {addr}:{port})",
        flush=True,
    )
    children: list[subprocess.Popen[bytes]] = []
    for local_rank in range(workers):
        env = dict(os.environ)
        env.update(
            {
                "RANK": str(host_rank * workers + local_rank),
                "LOCAL_RANK": str(local_rank),
                "WORLD_SIZE": str(world),
                "LOCAL_WORLD_SIZE": str(workers),
                "GROUP_RANK": str(host_rank),
                "MASTER_ADDR": addr,
                "MASTER_PORT": port,
            }
        )
        cmd = [sys.executable, os.path.join(source_dir, entry), *_worker_args(user_args)]
        children.append(subprocess.Popen(cmd, cwd=source_dir, env=env))

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    # Wait for all; the first worker to fail ends the others (they would wait for it forever).
    failed = 0
    while any(child.poll() is None for child in children):
        for rank, child in enumerate(children):
            code = child.poll()
            if code and not failed:
                failed = code if code > 0 else 128 - code
                print(f"launch.py: worker {rank} exited with {code}; stopping the others")
                forward(signal.SIGTERM, None)
        time.sleep(0.1)
    for rank, child in enumerate(children):
        if child.returncode and not failed:
            failed = child.returncode if child.returncode > 0 else 128 - child.returncode
            print(f"launch.py: worker {rank} exited with {child.returncode}", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
