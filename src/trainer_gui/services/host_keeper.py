"""The job host's keeper (services/job_host.py, module notes): starts the host and starts it
again when it dies without saying goodbye.

Apart from the host so that it starts fast: a client that finds no host starts the keeper,
which starts the host, so whatever the keeper imports delays every cold start. It imports the
standard library, psutil and services/host_link.py only; `--worker` hands over to the host.

Started as `python -m trainer_gui.services.host_keeper` (`trainer-gui _job-host` in a frozen
bundle, which has no `python -m`).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from trainer_gui.services.host_link import (
    DB_FILENAME,
    host_dir,
    job_host_command,
    read_endpoint,
    spawn,
)

log = logging.getLogger("trainer_gui.services.job_host")
RESTARTS_ALLOWED = (5, 60.0)  # the keeper gives up after 5 restarts within 60 s (a crash loop)


def keep(store_path: Path, watch: int | None) -> int:
    """Run the host and run it again when it dies without a goodbye; with `watch`, watch
    that running host first (the host started a new keeper when it lost its own)."""
    from trainer_gui.core.runners.proc import pid_alive

    folder = host_dir(store_path)
    base = [*job_host_command(), "--store", str(store_path), "--worker"]
    restarts: deque[float] = deque()
    proc: subprocess.Popen[bytes] | None = None
    pid = watch
    if pid is None:
        proc = spawn([*base, "--kept", str(os.getpid())], folder)
        pid = proc.pid
    while True:
        time.sleep(0.2)
        if proc is not None:
            code = proc.poll()
            if code is None:
                continue
            clean = code == 0
        else:
            if pid_alive(pid):
                continue
            endpoint = read_endpoint(folder)
            clean = endpoint is None or endpoint["pid"] != pid
        if clean:
            return 0
        now = time.monotonic()
        while restarts and now - restarts[0] > RESTARTS_ALLOWED[1]:
            restarts.popleft()
        if len(restarts) >= RESTARTS_ALLOWED[0]:
            log.error(
                "the job host died %d times within %.0f s; not starting it again",
                len(restarts),
                RESTARTS_ALLOWED[1],
            )
            return 1
        restarts.append(now)
        log.warning("the job host (pid %d) died; starting it again", pid)
        proc = spawn([*base, "--kept", str(os.getpid())], folder)
        pid = proc.pid


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="trainer-gui _job-host", add_help=True)
    made.add_argument("--store", type=Path, default=None)
    made.add_argument("--worker", action="store_true")
    made.add_argument("--kept", type=int, default=None)
    made.add_argument("--watch", type=int, default=None)
    return made


def setup_logging(role: str) -> None:
    logging.basicConfig(
        level=getattr(logging, os.environ.get("TRAINER_GUI_LOG", "INFO").upper(), logging.INFO),
        format=f"%(asctime)s {role} {os.getpid()}: %(levelname)s %(message)s",
    )


def keeper_main(argv: list[str] | None = None) -> int:
    """`python -m trainer_gui.services.host_keeper [--store DB] [--worker | --watch PID]`."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.worker:
        from trainer_gui.services.job_host import host_main

        return host_main(argv)
    from trainer_gui.core.paths import data_home

    setup_logging("job host keeper")
    return keep(args.store or data_home() / DB_FILENAME, args.watch)


if __name__ == "__main__":
    sys.exit(keeper_main())
