"""The edit-run loop (issue 18): from Run to the first metric sample, cold and warm.

The example project's script (resources/examples/quickstart) with a metric line printed right
after its imports (`epoch=0 ... train_loss=...`), edited (a comment changes) and run N times in
a row, as a person iterating on it would. Each run is timed from `JobService.submit` (what the
window's Run and the job host call) to its first metric sample stored (the plot draws from the
same event). Columns:

* `local-process cold`: `TRAINER_GUI_WARM=0`: a new interpreter per run (driver + script);
* `local-process warm`: the default: run 1 starts the warm interpreter (torch imported), runs
  2..N fork from it (run 1 is left out of the median);
* `docker cold/warm`: the docker backend as it is (`--backends docker`; cold is the first run
  after the image's containers are gone, warm the later ones);
* the floor: `python train.py` as typed in a shell in the code folder, to its first metric line
  (with torch), and to its first line with the torch imports taken out (the interpreter alone).

The phase line of each warm run (Preparing / Starting / Running / First metric) says where the
time goes. Run it from a snapshot, never the live tree:

    git worktree add /tmp/loop-tree HEAD
    PYTHONPATH=/tmp/loop-tree/src .venv/bin/python bench/loop.py [--runs 10] [--backends local-process,docker] [--modes warm]

Targets: warm local-process <= 1 s and <= 1.2x the shell's no-torch first line; warm docker
<= 1.5 s. Prints a Markdown table (bench/README.md keeps the last one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARK = "# -- first metric (bench/loop.py) --"
FIRST = f"{MARK}\nprint('epoch=0 step=0 train_loss=1.0 test_loss=1.0 test_acc=0.0', flush=True)\n"


def make_project(root: Path) -> Path:
    from trainer_gui.core.paths import example_project

    project = root / "quickstart"
    shutil.copytree(example_project(), project)
    script = project / "code" / "train.py"
    text = script.read_text()
    anchor = "from model_def import CONFIG_FILE, MLP, WEIGHTS_FILE\n"
    assert anchor in text, "the example's imports changed; update bench/loop.py"
    script.write_text(text.replace(anchor, anchor + FIRST, 1))
    return project


def edit(project: Path, i: int) -> None:
    script = project / "code" / "train.py"
    script.write_text(script.read_text().replace(MARK, f"{MARK} edit {i}", 1))


def no_torch_copy(project: Path) -> Path:
    """The script cut right after its first print, without the torch imports."""
    text = (project / "code" / "train.py").read_text()
    head = text[: text.index("print('epoch=0")]
    keep = [line for line in head.splitlines() if "torch" not in line and "model_def" not in line]
    out = project / "code" / "first_line_no_torch.py"
    out.write_text("\n".join(keep) + "\nprint('epoch=0 step=0 train_loss=1.0', flush=True)\n")
    return out


def shell_first_line(script: Path, python: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "PYTHONPATH"))}
    start = time.perf_counter()
    child = subprocess.Popen(
        [python, script.name], cwd=script.parent, stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    for line in child.stdout:
        if "train_loss=" in line:
            elapsed = time.perf_counter() - start
            break
    else:
        raise RuntimeError(f"{script} printed no metric")
    child.kill()
    child.wait()
    return elapsed


def run_once(service: Any, spec: Any) -> tuple[float, dict[str, float], str]:
    """Seconds from submit to the first metric stored, the phase durations, the start detail."""
    start_wall = time.time()
    start = time.perf_counter()
    handle = service.submit(spec)
    store = service.store
    while not store.metric_samples(handle.job_id):
        if handle.wait(0.005) is not None and not store.metric_samples(handle.job_id):
            raise RuntimeError(
                f"{handle.job_id} ended without a metric: {service.get(handle.job_id)}"
            )
    elapsed = time.perf_counter() - start
    handle.cancel()  # the loop re-runs at once; the rest of the training is not measured
    handle.wait(120)
    phases = store.phases(handle.job_id)
    spans: dict[str, float] = {}
    marks = [(p.phase.value, p.at) for p in phases]
    first_metric = next((at for name, at in marks if name == "first_metric"), None)
    order = [m for m in marks if m[0] in ("preparing", "starting", "running")]
    ends = [at for _, at in order[1:]] + [first_metric or start_wall + elapsed]
    for (name, at), end in zip(order, ends, strict=False):
        spans[name] = end - at
    detail = next((p.detail for p in phases if p.phase.value == "starting"), "")
    spans["before preparing"] = (order[0][1] - start_wall) if order else 0.0
    return elapsed, spans, detail


def loop(
    backend: str,
    warm_on: bool,
    runs: int,
    floor: Callable[[], float],
    back_to_back: bool = False,
) -> dict[str, Any]:
    from trainer_gui.core.runners import docker_warm, warm
    from trainer_gui.core.spec import load_spec
    from trainer_gui.core.spec.model import Backend
    from trainer_gui.core.store import Store
    from trainer_gui.services.jobs import JobService

    os.environ["TRAINER_GUI_WARM"] = "1" if warm_on else "0"
    root = Path(tempfile.mkdtemp(prefix="loop-"))
    os.environ["TRAINER_GUI_HOME"] = str(root / "home")
    project = make_project(root)
    store = Store(root / "home" / "db.sqlite3")
    service = JobService(store)
    times: list[float] = []
    spans: list[dict[str, float]] = []
    details: list[str] = []
    floors: list[float] = []  # the shell's no-torch first line right after each run (paired)
    try:
        for i in range(runs):
            edit(project, i)
            spec = load_spec(project / "job.yaml")
            if backend != "local-process":
                compute = spec.compute.model_copy(update={"backend": Backend(backend)})
                spec = spec.model_copy(update={"compute": compute})
            elapsed, span, detail = run_once(service, spec)
            times.append(elapsed)
            spans.append(span)
            details.append(detail)
            floors.append(floor())
            print(
                f"  {backend} {'warm' if warm_on else 'cold'} run {i + 1}: {elapsed:.3f} s ({detail})",
                flush=True,
            )
            if warm_on and i == 0 and backend == "local-process":
                warm.POOL.wait_ready(300)  # the next runs find it ready, as after a first Run
            if warm_on and backend == "docker" and not back_to_back:
                # The next edit takes the person longer than the spare's torch import; with
                # --back-to-back the next run starts at once (and may wait for the spare).
                began = time.perf_counter()
                docker_warm.POOL.wait_ready(300)
                print(
                    f"    spare ready {time.perf_counter() - began:.2f} s after the run", flush=True
                )
    finally:
        service.shutdown()
        warm.POOL.close()
        docker_warm.POOL.close()
        store.close()
        shutil.rmtree(root, ignore_errors=True)
    skip = 1 if warm_on and len(times) > 1 else 0
    measured = times[skip:]
    kept = spans[1:] if warm_on and len(spans) > 1 else spans
    names = sorted({k for s in kept for k in s})
    return {
        "median": statistics.median(measured),
        "paired": statistics.median(t / f for t, f in zip(measured, floors[skip:], strict=True)),
        "floor": statistics.median(floors[skip:]),
        "min": min(measured),
        "runs": len(measured),
        "phases": {n: statistics.median([s.get(n, 0.0) for s in kept]) for n in names},
        "details": sorted(set(details[1:] if warm_on else details)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--backends", default="local-process")
    parser.add_argument(
        "--modes", default="cold,warm", help="cold, warm or both (default: cold,warm)"
    )
    parser.add_argument(
        "--back-to-back",
        action="store_true",
        help="docker warm: start each run as the last one ends, not once its spare is ready",
    )
    args = parser.parse_args()
    python = sys.executable
    root = Path(tempfile.mkdtemp(prefix="loop-floor-"))
    project = make_project(root)
    script = project / "code" / "train.py"
    no_torch = no_torch_copy(project)
    shell_torch = statistics.median(shell_first_line(script, python) for _ in range(5))
    shell_bare = statistics.median(shell_first_line(no_torch, python) for _ in range(5))
    rows: list[tuple[str, float, dict[str, Any] | None]] = [
        ("shell `python train.py` (floor)", shell_torch, None),
        ("shell, first line without torch import", shell_bare, None),
    ]
    results: dict[str, dict[str, Any]] = {}
    for backend in args.backends.split(","):
        for warm_on in [mode == "warm" for mode in args.modes.split(",")]:
            label = f"{backend} {'warm' if warm_on else 'cold'}"
            print(f"{label}:", flush=True)
            try:
                results[label] = loop(
                    backend,
                    warm_on,
                    args.runs,
                    lambda: shell_first_line(no_torch, python),
                    args.back_to_back,
                )
            except Exception as exc:  # one backend failing still prints the others
                print(f"  {label} failed: {exc}", flush=True)
                continue
            rows.append((label, results[label]["median"], results[label]))
    shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        "| path | median s to first metric | vs shell with torch | vs shell no torch "
        "| paired vs shell no torch (its median) | start |"
    )
    print("|---|---|---|---|---|---|")
    for label, value, result in rows:
        detail = ", ".join(result["details"]) if result else ""
        paired = f"{result['paired']:.2f}x ({result['floor']:.3f} s)" if result else ""
        print(
            f"| {label} | {value:.3f} | {value / shell_torch:.2f}x | {value / shell_bare:.2f}x "
            f"| {paired} | {detail} |"
        )
    print()
    for label, result in results.items():
        phases = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result["phases"].items())
        print(f"- {label} phases (median): {phases}")
    ok = True
    warm_lp = results.get("local-process warm")
    if warm_lp is not None:
        ok &= warm_lp["median"] <= 1.0
        print(
            f"\nwarm local-process: {warm_lp['median']:.3f} s (target <= 1 s), "
            f"{warm_lp['paired']:.2f}x the shell's no-torch first line, paired (target <= 1.2x)"
        )
        ok &= warm_lp["paired"] <= 1.2
    warm_docker = results.get("docker warm")
    if warm_docker is not None:
        print(f"warm docker: {warm_docker['median']:.3f} s (target <= 1.5 s)")
        ok &= warm_docker["median"] <= 1.5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
