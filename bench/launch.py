"""Launch overhead of the Docker backend against plain `docker run`, side by side.

Two trivial jobs, each run both ways on the same image with the same commands:

* single: one container whose script prints one line and writes a file to /opt/ml/model;
* torchrun-2x1: two containers (2 hosts x 1 process), gloo init + one all_reduce.

"ours" is the real path: `JobService.submit` -> `DockerRunner` -> containers -> logs ingested ->
Completed with model.tar.gz/output.tar.gz packed -> containers (and network) removed, timed
until the job's handle returns. "plain" is what a person would type: `docker run --rm` of the
script; for two hosts a user network, two `docker run`s with aliases algo-1/algo-2 running the
same torchrun command lines, started together and waited together, then `docker rm` and
`docker network rm`. Repetitions are interleaved (ours, plain, plain, ours, ...) after one
unmeasured warm-up of each, and the medians are compared ("ratio"; "paired" is the median of
each repetition's ours/plain, which cancels slow drifts of a shared machine's load).

The CLI, end to end: `trainer-gui run job.yaml` of a job whose script prints one line, as a
person types it (a new interpreter: imports, spec, store, job host, containers, the summary),
against `docker run --rm IMAGE python3 -c 'print(1)'`:

* cli-cold: no job host runs yet, the command starts one (a fresh data folder each time);
* cli-warm: a job host runs already (the window is open, or a command ran in the last 10 s);
* cli-inproc: `TRAINER_GUI_JOB_HOST=0`, the command follows the job itself.

    .venv/bin/python bench/launch.py [--reps 7] [--reps-2x1 3] [--only single] [--json out.json]
    .venv/bin/python bench/launch.py --only cli --reps 10
    .venv/bin/python bench/launch.py --only cli --reps 5 --base-src /tmp/old-tree/src

`--base-src`: the cli-* runs also run the code of another source tree ("base", its own data
folders), interleaved with ours and plain, e.g. a worktree of the commit before a change.
The CLI process's own CPU time (user + system, not the job host's) is reported as well.

Needs a Docker engine and trainer-gui/train-cpu:latest (scripts/ci/build-test-images.sh).
Exit status 1 when a ratio misses its target (single <= 1.25, torchrun-2x1 <= 1.15, cli-* <=
1.3).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

IMAGE = "trainer-gui/train-cpu:latest"
TARGETS = {
    "single": 1.25,
    "torchrun-2x1": 1.15,
    "cli-cold": 1.3,
    "cli-warm": 1.3,
    "cli-inproc": 1.3,
}
CLI_KINDS = ("cli-warm", "cli-cold", "cli-inproc")
CLI_SPEC = f"""\
name: launch-bench
image: {IMAGE}
source:
  source_dir: code
  entry_point: train.py
compute:
  backend: docker
"""
BENCH_LABEL = "trainer-gui.bench"

SINGLE = """\
print("hello from the launch benchmark", flush=True)
with open("/opt/ml/model/done.txt", "w") as fh:
    fh.write("ok")
"""

ALL_REDUCE = """\
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
total = torch.ones(1)
dist.all_reduce(total)
print(f"rank {dist.get_rank()} total {total.item()}", flush=True)
dist.destroy_process_group()
"""


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


class Bench:
    def __init__(self, work: Path) -> None:
        os.environ["TRAINER_GUI_HOME"] = str(work / "home")
        # Imported after TRAINER_GUI_HOME is set: runs go under the temporary folder.
        from trainer_gui.core.runners.docker import DockerRunner
        from trainer_gui.core.store import Store
        from trainer_gui.services.jobs import JobService

        self.work = work
        self.runner = DockerRunner(grace=5)
        self.runner.client.ping()
        self.store = Store(work / "home" / "db.sqlite3")
        self.service = JobService(self.store, {"docker": self.runner})
        self.events: list[tuple[float, str]] = []
        self.service.subscribe(self._on_event)
        self.phases: dict[str, list[dict[str, float]]] = {}
        self.cold_runs = 0
        self.base_src: Path | None = None
        self.cpu: dict[str, list[float]] = {}  # per cli way: the CLI process's CPU seconds

    def _on_event(self, event: Any) -> None:
        status = getattr(event, "status", None)
        if status is not None:
            self.events.append((time.perf_counter(), str(status.value)))
        elif type(event).__name__ == "LogBatch" and not any(
            name == "first log" for _, name in self.events
        ):
            self.events.append((time.perf_counter(), "first log"))

    def close(self) -> None:
        from trainer_gui.core.store.db import DB_FILENAME
        from trainer_gui.services.job_host import stop_host

        self.service.shutdown()
        self.store.close()
        stop_host(self.work / "warm" / DB_FILENAME)  # the cli-warm runs' host
        stop_host(self.work / "warm-base" / DB_FILENAME)

    # -- the two ways -------------------------------------------------------------------

    def project(self, name: str, script: str) -> Path:
        folder = self.work / name
        (folder / "code").mkdir(parents=True, exist_ok=True)
        (folder / "code" / "train.py").write_text(script, encoding="utf-8")
        return folder

    def ours(self, kind: str) -> float:
        from trainer_gui.core.spec import spec_from_dict

        if kind == "single":
            folder = self.project("single", SINGLE)
            data: dict[str, Any] = {"compute": {"backend": "docker"}}
        else:
            folder = self.project("torchrun", ALL_REDUCE)
            data = {
                "compute": {"backend": "docker", "instance_count": 2},
                "distribution": {"kind": "torchrun", "processes_per_host": 1},
            }
        spec = spec_from_dict(
            {
                "name": f"bench-{kind}",
                "image": IMAGE,
                "source": {"source_dir": "code", "entry_point": "train.py"},
                **data,
            },
            base_dir=folder,
        )
        self.events.clear()
        start = time.perf_counter()
        handle = self.service.submit(spec)
        handle.wait(600)
        elapsed = time.perf_counter() - start
        record = self.service.get(handle.job_id)
        if record.status != "Completed":
            raise SystemExit(f"ours/{kind}: {record.status}: {record.failure_reason}")
        if not Path(record.backend_ids["artifacts"]["model"]).is_file():
            raise SystemExit(f"ours/{kind}: no model.tar.gz")
        if kind == "single":
            model = Path(record.run_dir) / "hosts" / "algo-1" / "model" / "done.txt"
            assert model.read_text() == "ok"
        phases = {name: when - start for when, name in self.events}
        phases["removed"] = elapsed
        self.phases.setdefault(kind, []).append(phases)
        return elapsed

    def cli(self, kind: str, base: bool = False) -> float:
        """`trainer-gui run job.yaml` in a new process, until it exits (with `base`: the code
        of `base_src`, in data folders of its own)."""
        folder = self.work / "cli"
        suffix = "-base" if base else ""
        if not (folder / "job.yaml").is_file():
            (folder / "code").mkdir(parents=True, exist_ok=True)
            (folder / "code" / "train.py").write_text('print("hello")\n', encoding="utf-8")
            (folder / "job.yaml").write_text(CLI_SPEC, encoding="utf-8")
        env = dict(os.environ)
        if kind == "cli-cold":  # a data folder of its own: no job host runs for it yet
            self.cold_runs += 1
            env["TRAINER_GUI_HOME"] = str(self.work / f"cold-{self.cold_runs}{suffix}")
            env["TRAINER_GUI_HOST_IDLE"] = "1"
        elif kind == "cli-warm":  # one data folder, its job host kept up between runs
            env["TRAINER_GUI_HOME"] = str(self.work / f"warm{suffix}")
            env["TRAINER_GUI_HOST_IDLE"] = "120"
        else:
            env["TRAINER_GUI_HOME"] = str(self.work / f"inproc{suffix}")
            env["TRAINER_GUI_JOB_HOST"] = "0"
        if base:
            assert self.base_src is not None
            env["PYTHONPATH"] = os.pathsep.join([str(self.base_src), env.get("PYTHONPATH", "")])
        command = [str(Path(sys.executable).with_name("trainer-gui")), "run"]
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        out = subprocess.run(
            [*command, str(folder / "job.yaml")], env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime
        self.cpu.setdefault(("base" if base else "ours"), []).append(cpu)
        if out.returncode != 0 or "hello" not in out.stdout or "Completed" not in out.stdout:
            raise SystemExit(f"{kind} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return elapsed

    def plain(self, kind: str) -> float:
        tag = uuid.uuid4().hex[:8]
        label = f"{BENCH_LABEL}=1"
        if kind.startswith("cli"):
            start = time.perf_counter()
            out = _docker("run", "--rm", "--label", label, IMAGE, "python3", "-c", "print(1)")
            elapsed = time.perf_counter() - start
            assert out.stdout.strip() == "1"
            return elapsed
        if kind == "single":
            code = self.project("single", SINGLE) / "code"
            model = Path(tempfile.mkdtemp(dir=self.work))
            start = time.perf_counter()
            out = _docker(
                "run", "--rm", "--label", label,
                "-v", f"{code}:/opt/ml/code:ro", "-v", f"{model}:/opt/ml/model",
                "-w", "/opt/ml/code", IMAGE, "python", "train.py",
            )  # fmt: skip
            elapsed = time.perf_counter() - start
            assert "hello" in out.stdout and (model / "done.txt").read_text() == "ok"
            return elapsed
        code = self.project("torchrun", ALL_REDUCE) / "code"
        network = f"tgbench-{tag}"
        names = [f"tgbench-{tag}-algo-{i}" for i in (1, 2)]
        start = time.perf_counter()
        _docker("network", "create", "--label", label, network)
        procs = []
        for rank, name in enumerate(names):
            host = f"algo-{rank + 1}"
            model = Path(tempfile.mkdtemp(dir=self.work))
            cmd = [
                "docker", "run", "--name", name, "--label", label, "--network", network,
                "--network-alias", host, "--hostname", host,
                "-v", f"{code}:/opt/ml/code:ro", "-v", f"{model}:/opt/ml/model",
                "-w", "/opt/ml/code", IMAGE,
                "torchrun", "--nnodes", "2", "--nproc_per_node", "1", "--master_addr", "algo-1",
                "--master_port", "7777", "--node_rank", str(rank), "train.py",
            ]  # fmt: skip
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        outputs = [proc.communicate()[0].decode() for proc in procs]
        _docker("rm", *names)
        _docker("network", "rm", network)
        elapsed = time.perf_counter() - start
        for proc, output in zip(procs, outputs, strict=True):
            if proc.returncode != 0 or "total 2.0" not in output:
                raise SystemExit(f"plain/{kind} failed:\n{output}")
        return elapsed


def _sweep() -> None:
    """Remove whatever an interrupted earlier run left (only objects with the bench label)."""
    ids = _docker("ps", "-aq", "--filter", f"label={BENCH_LABEL}", check=False).stdout.split()
    if ids:
        _docker("rm", "-f", *ids, check=False)
    nets = _docker("network", "ls", "-q", "--filter", f"label={BENCH_LABEL}", check=False)
    for net in nets.stdout.split():
        _docker("network", "rm", net, check=False)


def measure(bench: Bench, kind: str, reps: int) -> dict[str, Any]:
    ours = bench.cli if kind.startswith("cli") else bench.ours
    ways: dict[str, Callable[[str], float]] = {"ours": ours, "plain": bench.plain}
    if kind.startswith("cli") and bench.base_src is not None:
        ways["base"] = lambda k: bench.cli(k, base=True)
    for warm_up in ways.values():  # page cache, image layers, engine
        warm_up(kind)
    bench.phases.pop(kind, None)
    bench.cpu.clear()
    times: dict[str, list[float]] = {way: [] for way in ways}
    for rep in range(reps):
        order = list(ways) if rep % 2 == 0 else list(reversed(ways))
        for way in order:
            times[way].append(ways[way](kind))
            print(f"  {kind:<13} {way:<5} rep {rep + 1}: {times[way][-1]:.3f}s", flush=True)
    ours_s = statistics.median(times["ours"])
    plain_s = statistics.median(times["plain"])
    phase_names = sorted(
        {name for run in bench.phases.get(kind, []) for name in run},
        key=lambda n: statistics.median(r[n] for r in bench.phases[kind] if n in r),
    )
    phases = {
        name: round(statistics.median(r[name] for r in bench.phases[kind] if name in r), 3)
        for name in phase_names
    }
    # Each repetition's two runs are back to back: their ratio cancels slow drifts of the load.
    paired = statistics.median(o / p for o, p in zip(times["ours"], times["plain"], strict=True))
    extra: dict[str, Any] = {}
    if "base" in times:
        base_s = statistics.median(times["base"])
        extra = {
            "base_median_s": round(base_s, 3),
            "base_ratio": round(base_s / plain_s, 3),
            "base_s": [round(t, 3) for t in times["base"]],
        }
    for way, cpu in bench.cpu.items():
        extra[f"{way}_cli_cpu_median_s"] = round(statistics.median(cpu), 3)
    return {
        "benchmark": kind,
        "reps": reps,
        "ours_median_s": round(ours_s, 3),
        "plain_median_s": round(plain_s, 3),
        "ratio": round(ours_s / plain_s, 3),
        "paired_ratio_median": round(paired, 3),
        "target": TARGETS[kind],
        "ours_s": [round(t, 3) for t in times["ours"]],
        "plain_s": [round(t, 3) for t in times["plain"]],
        "ours_phases_s": phases,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="repetitions of the single job")
    parser.add_argument("--reps-2x1", type=int, default=3, help="repetitions of torchrun-2x1")
    parser.add_argument(
        "--only",
        choices=[*sorted(TARGETS), "cli"],
        default=None,
        help="one benchmark; cli: the three cli-* ones (not run by default)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--base-src",
        type=Path,
        default=None,
        help="cli-*: also run the code of this source tree (e.g. an older worktree's src)",
    )
    opts = parser.parse_args(argv)
    if _docker("image", "inspect", IMAGE, check=False).returncode != 0:
        print(f"{IMAGE} is not built: run scripts/ci/build-test-images.sh", file=sys.stderr)
        return 2
    _sweep()
    # As an installed app has them: pip compiles a wheel's modules at install time, while this
    # machine's PYTHONDONTWRITEBYTECODE=1 left a source tree without any (each command then
    # compiled cli/main.py & co. from source, ~25 ms of CPU before it did anything).
    import trainer_gui

    for tree in [Path(trainer_gui.__file__).parent, opts.base_src]:
        if tree is not None:
            compileall.compile_dir(str(tree), quiet=1)
    results = []
    with tempfile.TemporaryDirectory(prefix="tg-launch-bench-") as tmp:
        bench = Bench(Path(tmp))
        bench.base_src = opts.base_src.resolve() if opts.base_src else None
        try:
            kinds = [("single", opts.reps), ("torchrun-2x1", opts.reps_2x1)]
            kinds += [(kind, opts.reps) for kind in CLI_KINDS]
            for kind, reps in kinds:
                wanted = opts.only == kind or (opts.only == "cli" and kind in CLI_KINDS)
                if wanted or (opts.only is None and kind not in CLI_KINDS):
                    results.append(measure(bench, kind, reps))
        finally:
            bench.close()
            _sweep()
    print()
    print(
        f"{'benchmark':<14} {'ours (s)':>9} {'plain (s)':>10} {'ratio':>6} {'target':>7}"
        f" {'paired':>7}"
    )
    failed = False
    for row in results:
        ok = row["ratio"] <= row["target"]
        failed |= not ok
        print(
            f"{row['benchmark']:<14} {row['ours_median_s']:>9.3f} {row['plain_median_s']:>10.3f}"
            f" {row['ratio']:>6.2f} {'<=' if ok else '>'}{row['target']:>5.2f}"
            f" {row['paired_ratio_median']:>7.2f}"
        )
        if row["ours_phases_s"]:
            print("  ours, median time from submit: " + textwrap.shorten(
                ", ".join(f"{k} {v:.3f}" for k, v in row["ours_phases_s"].items()), 200
            ))  # fmt: skip
        print(
            f"  ours {min(row['ours_s']):.3f}-{max(row['ours_s']):.3f} s, plain "
            f"{min(row['plain_s']):.3f}-{max(row['plain_s']):.3f} s"
        )
        if "base_ratio" in row:
            print(
                f"  base {row['base_median_s']:.3f} s (ratio {row['base_ratio']:.2f}), "
                f"{min(row['base_s']):.3f}-{max(row['base_s']):.3f} s"
            )
        cpu = {k[:4]: v for k, v in row.items() if k.endswith("_cli_cpu_median_s")}
        if cpu:
            print(
                "  CLI process CPU, median: " + ", ".join(f"{k} {v:.3f} s" for k, v in cpu.items())
            )
        print(f"  load average at the end: {row['load_average']}")
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
