"""A local sweep's overhead (issue 14): 20 trials of a 1-second script, two at a time.

Three numbers for the same 20 trials (the values a random sweep picks):

* the queue: a sweep run the way the app runs it (the job host drives it, each trial is a queued
  local-process job with its logs and metrics stored), from `sweep run` to the sweep completed;
* the ideal: the sum of the trials' own run times (start to end, from the store) / 2;
* a shell loop: the same 20 commands run two at a time by `xargs -P 2`, nothing stored.

Target: the queue at most 1.10x the shell loop. Run:

    .venv/bin/python bench/sweep.py                 # through the job host
    .venv/bin/python bench/sweep.py --in-process    # this process drives (TRAINER_GUI_JOB_HOST=0)
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TRIALS = 20
SECONDS = 1.0

SCRIPT = """
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--seconds", type=float)
a, _ = p.parse_known_args()
time.sleep(a.seconds)
print(f"loss={a.lr:.5f}", flush=True)
"""


def write_sweep(folder: Path) -> Path:
    (folder / "code").mkdir()
    (folder / "code" / "train.py").write_text(SCRIPT, encoding="utf-8")
    data = {
        "name": "bench",
        "source": {"source_dir": "code", "entry_point": "train.py"},
        "hyperparameters": {"lr": 0.1, "seconds": SECONDS},
        "metric_definitions": [{"name": "loss", "regex": r"loss=([0-9.]+)"}],
        "compute": {"backend": "local-process"},
        "sweep": {
            "parameters": {"lr": {"type": "continuous", "min": 0.001, "max": 1.0}},
            "strategy": "random",
            "objective": {"metric": "loss", "goal": "minimize"},
            "max_trials": TRIALS,
            "max_parallel": 2,
            "seed": 1,
        },
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_queue(path: Path, in_process: bool) -> tuple[float, float, float, list[float]]:
    """Wall time of the sweep, the part before its first trial ran, the ideal, and the lr
    values its trials ran with."""
    from trainer_gui.core.spec.sweep import load_sweep
    from trainer_gui.core.store import Store
    from trainer_gui.services import job_host, sweeps

    store = Store()
    service = job_host.make_job_service(store)
    if not in_process:
        service.ping()  # type: ignore[attr-defined]  # the host is up before the clock starts
    sweep = load_sweep(path)
    started = time.perf_counter()
    code = sweeps.run_sweep(service, sweep, out=open(os.devnull, "w"), poll=0.05)  # noqa: SIM115
    wall = time.perf_counter() - started
    assert code == 0, f"the sweep ended with {code}"
    (record,) = store.list_sweeps()
    trials = store.trials(record.id)
    assert len(trials) == TRIALS and all(t.state == "complete" for t in trials)
    busy = 0.0
    first = min(store.get_job(t.job_id).started_at or 0.0 for t in trials)  # type: ignore[union-attr]
    for t in trials:
        job = store.get_job(t.job_id)
        assert job is not None and job.started_at and job.ended_at
        busy += job.ended_at - job.started_at
    before = first - record.created_at
    service.shutdown()
    if not in_process:
        job_host.stop_host(store.path)
    store.close()
    return wall, before, busy / 2, [float(t.params["lr"]) for t in trials]


def run_shell(folder: Path, values: list[float]) -> float:
    script = folder / "code" / "train.py"
    lines = "".join(
        f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} --lr {v} --seconds {SECONDS}\n"
        for v in values
    )
    started = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", "2", "-I", "{}", "sh", "-c", "{}"],
        input=lines.encode(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true", help="no job host")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        folder = Path(tmp)
        os.environ["TRAINER_GUI_HOME"] = str(folder / "home")
        os.environ["TRAINER_GUI_MAX_PARALLEL"] = "2"
        os.environ["TRAINER_GUI_HOST_IDLE"] = "1"
        if args.in_process:
            os.environ["TRAINER_GUI_JOB_HOST"] = "0"
        path = write_sweep(folder)
        wall, before, ideal, values = run_queue(path, args.in_process)
        shell = run_shell(folder, values)
    where = "in process" if args.in_process else "job host"
    print(f"{TRIALS} trials of {SECONDS:g} s, 2 at a time ({where})")
    steady = wall - before
    print(f"  queue (sweep run to completed): {wall:6.2f} s")
    print(f"    before the first trial ran:   {before:6.2f} s  (imports, the runner's first check)")
    print(f"    first trial to completed:     {steady:6.2f} s")
    print(f"  ideal (sum of trial times / 2): {ideal:6.2f} s  (queue {steady / ideal:.2f}x)")
    print(f"  shell loop (xargs -P 2):        {shell:6.2f} s")
    print(f"  queue / shell loop:             {wall / shell:.2f}x  (target <= 1.10x)")
    print(f"    from the first trial:         {steady / shell:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
