"""Local inference endpoint: cold start, and request latency against in-process handlers.

One run, one model (the quickstart example, trained here for real in a few seconds):

* cold start: `EndpointLauncher.start` of the model.tar.gz in trainer-gui/inference (the plain
  image: the stdlib runtime, mounted), timed from the moment the container is created to the
  first `/ping` that answers 200 (polled every 50 ms); `--cold-reps` starts, median reported,
  with the runtime's own "model loaded in" time beside it;
* latency: `--requests` small JSON requests (one row of 4 features) sent one after another
  through the container with the app's client (`LocalEndpointClient`, keep-alive), against the
  very same `input_fn -> predict_fn -> output_fn` of the model's inference.py called in this
  process, and against the runtime's HTTP server in a thread of this process (HTTP without
  Docker: what the proxy and the container add is the difference). The three are interleaved
  in blocks of 100 after a warm-up, so a busy machine weighs on all of them alike.

Both sides use `--threads` torch threads (default 1: for a model this small more threads only
add synchronisation, and the container and this process must compute alike).

    .venv/bin/python bench/serving.py [--requests 1000] [--cold-reps 3] [--json out.json]

Needs a Docker engine and trainer-gui/inference:latest (scripts/ci/build-test-images.sh).
Exit status 1 when a target is missed: healthy in < 3 s, p50 overhead over in-process < 2 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "serving"))

COLD_TARGET_S = 3.0
OVERHEAD_TARGET_MS = 2.0
BENCH_LABELS = {"trainer-gui.bench-serving": "1"}  # not bench/launch.py's label: it sweeps those
ROW = [[0.5, -1.2, 0.1, 0.3]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "min": min(values),
    }


def cold_start(launcher: Any, archive: Path, threads: int, name: str, image: str) -> dict[str, Any]:
    marks: dict[str, float] = {}
    lines: list[str] = []

    def progress(p: Any) -> None:
        marks.setdefault(p.stage, time.perf_counter())

    def on_log(line: str) -> None:
        lines.append(line)
        if "listening on" in line:
            marks.setdefault("listening", time.perf_counter())

    begin = time.perf_counter()
    endpoint = launcher.start(
        archive,
        name=name,
        image=image,
        environment={"OMP_NUM_THREADS": str(threads)},
        on_progress=progress,
        on_log=on_log,
    )
    ready = time.perf_counter()
    loaded = next(
        (
            float(line.split("model loaded in ")[1].split("s")[0])
            for line in lines
            if "model loaded in " in line
        ),
        float("nan"),
    )
    created = marks["creating"]
    return {
        "endpoint": endpoint,
        "total_s": ready - begin,
        "unpack_s": created - begin,
        "cold_s": ready - created,
        "listening_s": marks.get("listening", float("nan")) - created,
        "model_load_s": loaded,
    }


def floor(client: Any, image: str, threads: int) -> float:
    """What no server can beat: a container that only starts Python and imports numpy + torch."""
    begin = time.perf_counter()
    container = client.containers.run(
        image,
        ["python", "-c", "import numpy, torch"],
        detach=True,
        labels=BENCH_LABELS,
        environment={"OMP_NUM_THREADS": str(threads)},
    )
    try:
        code = container.wait()["StatusCode"]
        elapsed = time.perf_counter() - begin
    finally:
        container.remove(force=True)
    if code != 0:
        raise SystemExit(f"{image}: python -c 'import numpy, torch' exited with {code}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--cold-reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image", default="trainer-gui/inference:latest")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    work = Path(tempfile.mkdtemp(prefix="tg-bench-serving-"))
    os.environ["TRAINER_GUI_HOME"] = str(work / "home")

    import torch

    torch.set_num_threads(args.threads)
    from serving_helpers import load_handlers, pack, serving_in_thread, train_quickstart

    from trainer_gui.core.serving.client import LocalEndpointClient
    from trainer_gui.core.serving.launcher import EndpointLauncher

    print(f"training the quickstart model in {work} ...", flush=True)
    model_dir = train_quickstart(work / "train")
    archive = pack(model_dir, work / "model.tar.gz")
    handlers = load_handlers(model_dir / "code", "bench_inference")
    model = handlers.model_fn(str(model_dir))
    body = json.dumps(ROW).encode()

    def in_process() -> float:
        start = time.perf_counter()
        handlers.output_fn(
            handlers.predict_fn(handlers.input_fn(body, "application/json"), model),
            "application/json",
        )
        return (time.perf_counter() - start) * 1000.0

    launcher = EndpointLauncher(labels=BENCH_LABELS, home=work / "endpoints")
    launcher.cleanup_orphans()
    results: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    try:
        # -- cold starts: the first one warms the page cache and is reported apart -------------
        colds = []
        for rep in range(args.cold_reps + 1):
            cold = cold_start(launcher, archive, args.threads, f"bench-cold-{rep}", args.image)
            launcher.stop(cold.pop("endpoint").name)
            print(
                f"cold start {rep}{' (warm-up)' if rep == 0 else ''}: container created -> "
                f"healthy {cold['cold_s']:.2f} s (python listening {cold['listening_s']:.2f} s, "
                f"model loaded in {cold['model_load_s']:.2f} s; unpack {cold['unpack_s']:.2f} s)",
                flush=True,
            )
            if rep:
                colds.append(cold)
        results["cold"] = {
            key: statistics.median(c[key] for c in colds)
            for key in ("cold_s", "listening_s", "model_load_s", "unpack_s", "total_s")
        }
        floors = [floor(launcher.client, args.image, args.threads) for _ in range(args.cold_reps)]
        results["cold"]["floor_s"] = statistics.median(floors)
        print(f"floor (container running `import numpy, torch`): {floors}", flush=True)

        # -- latency -------------------------------------------------------------------------
        cold = cold_start(launcher, archive, args.threads, "bench-latency", args.image)
        endpoint = cold["endpoint"]
        container = LocalEndpointClient(endpoint.url)
        with serving_in_thread(model_dir) as (local_url, service):
            assert service.state == "ready", service.error
            local = LocalEndpointClient(local_url)

            def through(client: LocalEndpointClient) -> float:
                result = client.invoke(body, "application/json", "application/json")
                if result.status != 200:
                    raise SystemExit(f"{client.url}: {result.status} {result.text[:200]}")
                return result.latency_ms

            ways = {
                "in_process": in_process,
                "http_in_process": lambda: through(local),
                "container": lambda: through(container),
            }
            for fn in ways.values():  # warm-up
                for _ in range(50):
                    fn()
            times: dict[str, list[float]] = {name: [] for name in ways}
            block = 100
            for start in range(0, args.requests, block):
                for name, fn in ways.items():
                    times[name] += [fn() for _ in range(min(block, args.requests - start))]
            local.close()
        container.close()
        launcher.stop(endpoint.name)
        results["latency_ms"] = {name: summary(values) for name, values in times.items()}
    finally:
        launcher.shutdown_all()

    lat = results["latency_ms"]
    overhead = lat["container"]["p50"] - lat["in_process"]["p50"]
    results["p50_overhead_ms"] = overhead
    results["p50_ratio"] = lat["container"]["p50"] / lat["in_process"]["p50"]
    results["docker_part_ms"] = lat["container"]["p50"] - lat["http_in_process"]["p50"]
    print()
    print(f"{'':18} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}  (ms, {args.requests} requests)")
    for name, row in lat.items():
        print(f"{name:18} {row['p50']:8.3f} {row['p90']:8.3f} {row['p99']:8.3f} {row['mean']:8.3f}")
    c = results["cold"]
    print(
        f"\ncold start (median of {args.cold_reps}): {c['cold_s']:.2f} s container created -> "
        f"healthy (target < {COLD_TARGET_S:.0f} s); python listening at {c['listening_s']:.2f} s, "
        f"model load {c['model_load_s']:.2f} s; unpacking before it {c['unpack_s']:.2f} s\n"
        f"floor: a container that only imports numpy + torch takes {c['floor_s']:.2f} s "
        f"(cold start - floor = {c['cold_s'] - c['floor_s']:.2f} s)"
    )
    print(
        f"p50 overhead over in-process: {overhead:.3f} ms (x{results['p50_ratio']:.2f}; target "
        f"< {OVERHEAD_TARGET_MS:.0f} ms), of which Docker (proxy + container) "
        f"{results['docker_part_ms']:.3f} ms and HTTP {lat['http_in_process']['p50'] - lat['in_process']['p50']:.3f} ms"
    )
    print(f"load average {results['load_average']}, {results['cpus']} CPUs")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    met = c["cold_s"] < COLD_TARGET_S and overhead < OVERHEAD_TARGET_MS
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
