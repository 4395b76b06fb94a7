"""A local sweep's overhead (issue 14): 20 trials of a 1-second script, two at a time.

Three numbers for the same 20 trials (the values a random sweep picks):

* the queue: a sweep run the way the app runs it (the job host drives it, each trial is a queued
  local-process job with its logs and metrics stored), from `sweep run` to the sweep completed;
* the ideal: the sum of the trials' own run times (start to end, from the store) / 2;
* a shell loop: the same 20 commands run two at a time by `xargs -P 2`, nothing stored.

Target: the queue at most 1.10x the shell loop. Each run has a data folder of its own: a new one
(the local-process runner's torch check imports torch once, 3-7 s) or one that ran a job with
this interpreter before (the check's answer is remembered there). Run:

    .venv/bin/python bench/sweep.py                 # through the job host, both data folders
    .venv/bin/python bench/sweep.py --in-process    # this process drives (TRAINER_GUI_JOB_HOST=0)
    .venv/bin/python bench/sweep.py --repeat 3 --data-folder used --timeline
"""

from __future__ import annotations

import argparse
import compileall
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
#: --host-open: between the short sweep and the measured one (reading its results).
HOST_OPEN_PAUSE = 3.0

SCRIPT = """
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--seconds", type=float)
a, _ = p.parse_known_args()
time.sleep(a.seconds)
print(f"loss={a.lr:.5f}", flush=True)
"""


def write_sweep(folder: Path, trials: int = TRIALS, name: str = "sweep.yaml") -> Path:
    (folder / "code").mkdir(exist_ok=True)
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
            "max_trials": trials,
            "max_parallel": 2,
            "seed": 1,
        },
    }
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def print_timeline(store: object, zero: float, job_ids: list[str]) -> None:
    """Each trial's job from its record to its end, in seconds from the sweep's record: where
    the time between one trial ending and the next starting goes."""
    ends: list[float] = []
    for job_id in job_ids:
        job = store.get_job(job_id)  # type: ignore[attr-defined]
        phases = store.phases(job_id)  # type: ignore[attr-defined]
        steps = " ".join(f"{p.phase.value}={p.at - zero:.2f}" for p in phases)
        gap = ""
        if ends and job.started_at:
            # the free slot: the earlier of the last two ends before this one was created
            done = sorted(e for e in ends if e <= job.created_at + 0.5)[-2:]
            if done:
                gap = f"  (+{job.created_at - done[-1]:.2f} after an end)"
        success = Path(job.run_dir) / "hosts" / "algo-1" / "output" / "success"
        if success.exists():  # written by the driver as it ends
            steps += f" driver-ended={success.stat().st_mtime - zero:.2f}"
        print(
            f"  {job_id[-12:]}: created={job.created_at - zero:.2f} "
            f"started={(job.started_at or zero) - zero:.2f} {steps} "
            f"ended={(job.ended_at or zero) - zero:.2f}{gap}"
        )
        if job.ended_at:
            ends.append(job.ended_at)


def run_queue(
    path: Path, in_process: bool, timeline: bool = False, host_open: bool = False
) -> tuple[float, float, float, list[float]]:
    """Wall time of the sweep, the part before its first trial ran, the ideal, and the lr
    values its trials ran with."""
    from trainer_gui.core.spec.sweep import load_sweep
    from trainer_gui.core.store import Store
    from trainer_gui.services import job_host, sweeps

    store = Store()
    service = job_host.make_job_service(store)
    if not in_process:
        service.ping()  # type: ignore[attr-defined]  # the host is up before the clock starts
    if host_open:  # as with the window open: a short sweep ran, its results were read
        short = load_sweep(write_sweep(path.parent, 2, "warm-up.yaml"))
        assert sweeps.run_sweep(service, short, out=open(os.devnull, "w"), poll=0.05) == 0  # noqa: SIM115
        time.sleep(HOST_OPEN_PAUSE)
        warm_up = {r.id for r in store.list_sweeps()}
    sweep = load_sweep(path)
    started = time.perf_counter()
    code = sweeps.run_sweep(service, sweep, out=open(os.devnull, "w"), poll=0.05)  # noqa: SIM115
    wall = time.perf_counter() - started
    assert code == 0, f"the sweep ended with {code}"
    (record,) = [r for r in store.list_sweeps() if not host_open or r.id not in warm_up]
    trials = store.trials(record.id)
    assert len(trials) == TRIALS and all(t.state == "complete" for t in trials)
    busy = 0.0
    first = min(store.get_job(t.job_id).started_at or 0.0 for t in trials)  # type: ignore[union-attr]
    for t in trials:
        job = store.get_job(t.job_id)
        assert job is not None and job.started_at and job.ended_at
        busy += job.ended_at - job.started_at
    before = first - record.created_at
    if timeline:
        print_timeline(store, record.created_at, [t.job_id for t in trials])
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


def one_run(
    in_process: bool, warm: bool, timeline: bool, host_open: bool = False
) -> tuple[float, float]:
    """One sweep and its shell loop in a new data folder; (queue, shell) wall times."""
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        folder = Path(tmp)
        os.environ["TRAINER_GUI_HOME"] = str(folder / "home")
        if warm:
            # A data folder that ran a job with this interpreter before: the runner's torch
            # check was answered then, and is remembered there (core/pyenv.py).
            from trainer_gui.core import pyenv

            pyenv.forget_torch_probes()
            assert pyenv.has_torch(sys.executable)
            pyenv._TORCH_FOUND.clear()  # this process's memory: the job host is another one
        path = write_sweep(folder)
        wall, before, ideal, values = run_queue(path, in_process, timeline, host_open)
        shell = run_shell(folder, values)
    where = "in process" if in_process else "job host"
    if host_open:
        where += " open (a 2-trial sweep before, as with the window open)"
    kind = "a data folder that ran jobs before" if warm else "a new data folder"
    print(f"{TRIALS} trials of {SECONDS:g} s, 2 at a time ({where}, {kind})")
    steady = wall - before
    print(f"  queue (sweep run to completed): {wall:6.2f} s")
    print(f"    before the first trial ran:   {before:6.2f} s  (imports, the runner's first check)")
    print(f"    first trial to completed:     {steady:6.2f} s")
    print(f"  ideal (sum of trial times / 2): {ideal:6.2f} s  (queue {steady / ideal:.2f}x)")
    print(f"  shell loop (xargs -P 2):        {shell:6.2f} s")
    print(f"  queue / shell loop:             {wall / shell:.2f}x  (target <= 1.10x)")
    print(f"    from the first trial:         {steady / shell:.2f}x", flush=True)
    return wall, shell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true", help="no job host")
    parser.add_argument("--timeline", action="store_true", help="print each trial's phases")
    parser.add_argument(
        "--data-folder",
        choices=["new", "used", "both"],
        default="both",
        help="a new data folder (the torch check runs), one that ran jobs before, or both",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each")
    parser.add_argument(
        "--host-open",
        action="store_true",
        help="the job host runs already (the window is open): a 2-trial sweep first, then a "
        f"{HOST_OPEN_PAUSE:g} s pause, then the measured one (default: a new job host)",
    )
    args = parser.parse_args()
    os.environ["TRAINER_GUI_MAX_PARALLEL"] = "2"
    os.environ["TRAINER_GUI_HOST_IDLE"] = "120" if args.host_open else "1"
    # The app's modules compiled, as pip leaves an installed app (PYTHONDONTWRITEBYTECODE=1 on
    # this machine left a source tree without .pyc files: each job host compiled them).
    import trainer_gui

    compileall.compile_dir(str(Path(trainer_gui.__file__).parent), quiet=1)
    if args.in_process:
        os.environ["TRAINER_GUI_JOB_HOST"] = "0"
    kinds = {"new": [False], "used": [True], "both": [False, True]}[args.data_folder]
    ratios: dict[bool, list[str]] = {k: [] for k in kinds}
    for _ in range(args.repeat):
        for warm in kinds:
            wall, shell = one_run(args.in_process, warm, args.timeline, args.host_open)
            ratios[warm].append(f"{wall:.2f}/{shell:.2f} s = {wall / shell:.2f}x")
    for warm, runs in ratios.items():
        print(f"{'used' if warm else 'new'} data folder: " + ", ".join(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
