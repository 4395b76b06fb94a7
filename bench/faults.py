"""The kill -9 matrix (issue 13): jobs survive the death of whoever follows them, exactly once.

Each try runs a real job (local-process or docker) that prints `step=i loss=i` for i < LINES,
submitted by a client process (as the window or `trainer-gui run` would) to the job host, and
SIGKILLs one of them at a chosen point:

* `host@<point>`: the job host while it starts the job (before the process is spawned, after it
  is spawned but before its pid is stored, while the containers are created, after they are
  created but before they start), injected by a `sitecustomize` that only this benchmark puts
  on the host's path (the product has no fault hooks);
* `host@mid-run`: the job host at a random line of the run (the follower and ingester);
* `host+keeper@mid-run`: the job host and the keeper that restarts it, so that only the client
  (which connects again and starts a new host) brings the job back;
* `client@mid-run`: the client (the window crashing, the terminal closed).

A try **held** when the job ended Completed (one killed before anything of it ran goes back to
the queue and runs: the fault fires once), the store holds every sample once (0 duplicates, 0
missing), job.log holds every line once, and nothing of the job is left running (no process, no
container). Run:

    .venv/bin/python bench/faults.py            # 20 tries per cell, both backends
    .venv/bin/python bench/faults.py --tries 3 --backends local-process

and it prints held/tried per cell. Needs Docker with trainer-gui/train-cpu for the docker cells.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

LINES = 150
PAUSE = 0.01

TRAIN = f"""
import time
for i in range({LINES}):
    print(f"step={{i}} loss={{i}}", flush=True)
    time.sleep({PAUSE})
"""

# The client: submits the spec to the job host, says the job id, then waits for its end.
CLIENT = """
import sys, time
from trainer_gui.core.spec import load_spec
from trainer_gui.core.store import Store
from trainer_gui.services.job_host import JobHostClient
client = JobHostClient(Store())
handle = client.submit(load_spec(sys.argv[1]))
print(handle.job_id, flush=True)
handle.wait(300)
client.shutdown()
"""

# Put on the job host's path (PYTHONPATH): kills the host once at BENCH_FAULT_POINT.
SITECUSTOMIZE = """
import os, signal, sys

point = os.environ.get("BENCH_FAULT_POINT", "")
once = os.environ.get("BENCH_FAULT_ONCE", "")


def _die(*args, **kwargs):
    if once and not os.path.exists(once):
        open(once, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


if "--worker" in sys.argv and point:
    if point in ("before-spawn", "after-spawn"):
        from trainer_gui.core.runners.local_process import LocalProcessRunner

        spawn = LocalProcessRunner._spawn

        def _spawn(self, *args, **kwargs):
            if point == "before-spawn":
                _die()
            popen = spawn(self, *args, **kwargs)
            _die()
            return popen

        LocalProcessRunner._spawn = _spawn
    elif point == "while-creating":
        from docker.models.containers import ContainerCollection

        create = ContainerCollection.create

        def _create(self, *args, **kwargs):
            _die()
            return create(self, *args, **kwargs)

        ContainerCollection.create = _create
    elif point == "before-start":
        from docker.models.containers import Container

        start = Container.start

        def _start(self, *args, **kwargs):
            _die()
            return start(self, *args, **kwargs)

        Container.start = _start
"""

START_POINTS = {
    "local-process": ["before-spawn", "after-spawn"],
    "docker": ["while-creating", "before-start"],
}


@dataclass
class Cell:
    backend: str
    victim: str  # host, host+keeper, client
    point: str  # a start point, or mid-run
    tried: int = 0
    held: int = 0
    duplicates: int = 0
    missing: int = 0
    orphans: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.victim}@{self.point}"


def _spec(folder: Path, backend: str) -> Path:
    code = folder / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text(TRAIN, encoding="utf-8")
    spec = folder / "job.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""\
            name: faults
            source: {{source_dir: code, entry_point: train.py}}
            compute: {{backend: {backend}, instance_type: ml.m5.large}}
            metric_definitions: [{{name: loss, regex: 'loss=([0-9.]+)'}}]
            """
        ),
        encoding="utf-8",
    )
    return spec


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _read(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            return conn.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []


def _endpoint_pid(home: Path) -> int | None:
    import json

    try:
        return int(json.loads((home / "job-host" / "endpoint.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def _kill(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _job_processes(run_dir: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
            if run_dir in text:
                found.append(proc)
    return found


def _job_containers(job_id: str) -> list[object]:
    import docker
    from trainer_gui.core.runners.docker import LABEL_JOB

    client = docker.from_env()
    return list(client.containers.list(all=True, filters={"label": f"{LABEL_JOB}={job_id}"}))


def one_try(cell: Cell, root: Path, rng: random.Random) -> None:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=root))
    inject = root / "inject"
    env = dict(os.environ)
    env.update(
        TRAINER_GUI_HOME=str(home),
        TRAINER_GUI_HOST_IDLE="1",
        TRAINER_GUI_STOP_GRACE="3",
        PYTHONPATH=os.pathsep.join([str(inject), env.get("PYTHONPATH", "")]),
        BENCH_FAULT_POINT=cell.point if cell.point != "mid-run" else "",
        BENCH_FAULT_ONCE=str(home / "fault-done"),
    )
    spec = _spec(home / "project", cell.backend)
    db = home / "trainer-gui.sqlite3"
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(spec)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert client.stdout is not None
    job_id = client.stdout.readline().strip()
    cell.tried += 1
    if not job_id:
        cell.notes.append("the client got no job id")
        client.kill()
        return
    if cell.point == "mid-run":
        at = rng.randint(5, LINES - 20)
        reached = _wait(
            lambda: (
                _read(db, "select count(*) from metric_samples where job_id=?", job_id)[0][0] >= at
            ),
            120,
        )
        if not reached:
            cell.notes.append(f"{job_id}: never reached line {at}")
        host = _endpoint_pid(home)
        if cell.victim == "client":
            _kill(client.pid)
        elif cell.victim == "host":
            _kill(host)
        else:  # host+keeper
            keeper = None
            with contextlib.suppress(psutil.Error):
                keeper = psutil.Process(host).ppid() if host else None
            _kill(keeper)
            _kill(host)
    ended = _wait(
        lambda: (
            (row := _read(db, "select status from jobs where id=?", job_id))
            and row[0][0] in ("Completed", "Failed", "Stopped")
        ),
        180,
    )
    client.wait(60) if client.poll() is None and cell.victim != "client" else None
    with contextlib.suppress(ProcessLookupError):
        client.kill()
    rows = _read(db, "select status, failure_reason, run_dir from jobs where id=?", job_id)
    if not ended or not rows:
        cell.notes.append(f"{job_id}: did not end")
        return
    status, reason, run_dir = (str(v) if v is not None else "" for v in rows[0])
    values = [
        int(float(v[0]))  # type: ignore[arg-type]
        for v in _read(
            db, "select value from metric_samples where job_id=? and name='loss'", job_id
        )
    ]
    log_path = Path(run_dir) / "logs" / "job.log"
    log_lines = [
        ln
        for ln in (log_path.read_text(errors="replace") if log_path.exists() else "").splitlines()
        if "step=" in ln
    ]
    if cell.point != "mid-run" and not (home / "fault-done").exists():
        cell.notes.append(f"{job_id}: the fault at {cell.point} never fired")
        return
    # Every job ends Completed: one killed before anything of it ran goes back to the queue
    # and runs (the fault fires once).
    duplicates = len(values) - len(set(values)) + len(log_lines) - len(set(log_lines))
    missing = len(set(range(LINES)) - set(values))
    right = status == "Completed"
    time.sleep(0.5)  # the runner removes containers as it finishes
    leftovers = len([p for p in _job_processes(run_dir) if p.pid != os.getpid()])
    if cell.backend == "docker":
        leftovers += len(_job_containers(job_id))
    cell.duplicates += duplicates
    cell.missing += missing
    cell.orphans += leftovers
    if right and not duplicates and not missing and not leftovers:
        cell.held += 1
    else:
        cell.notes.append(
            f"{job_id}: {status} ({reason[:80]}), {len(values)} samples, {len(log_lines)} log "
            f"lines, {duplicates} duplicates, {missing} missing, {leftovers} left running"
        )
    # Let the host go (idle), so tries do not pile up processes.
    _wait(lambda: _endpoint_pid(home) is None, 15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--backends", nargs="+", default=["local-process", "docker"])
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cells = []
    for backend in args.backends:
        for point in START_POINTS[backend]:
            cells.append(Cell(backend, "host", point))
        for victim in ("host", "host+keeper", "client"):
            cells.append(Cell(backend, victim, "mid-run"))
    with tempfile.TemporaryDirectory(prefix="trainer-faults-") as tmp:
        root = Path(tmp)
        (root / "inject").mkdir()
        (root / "inject" / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        started = time.monotonic()
        for cell in cells:
            for _ in range(args.tries):
                one_try(cell, root, rng)
            print(
                f"{cell.backend:14} {cell.name:24} held {cell.held}/{cell.tried}  "
                f"duplicates {cell.duplicates}  missing {cell.missing}  orphans {cell.orphans}",
                flush=True,
            )
            for note in cell.notes[:5]:
                print(f"    {note}", flush=True)
    total = sum(c.tried for c in cells)
    held = sum(c.held for c in cells)
    print(f"held {held}/{total} in {time.monotonic() - started:.0f} s")
    return 0 if held == total else 1


if __name__ == "__main__":
    sys.exit(main())
