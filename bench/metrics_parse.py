"""Benchmark: MetricsParser vs the naive SageMaker rule on a synthetic training log.

The naive rule (``naive_parse``) searches every definition's regex on every line; our parser
must give the identical sample list at >= 5x the rate. Auto-detection throughput is printed
too, with no target.

    .venv/bin/python bench/metrics_parse.py [--lines N] [--seed S]
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trainer_gui.core.metrics import MetricSample, MetricsParser, line_position, naive_parse

TARGET_RATIO = 5.0

DEFINITIONS: list[tuple[str, str]] = [
    ("train_loss", r"train_loss=([0-9.]+)"),
    ("train_acc", r"train_acc=([0-9.]+)"),
    ("val_loss", r"val_loss: ([0-9.eE+-]+)"),
    ("val_acc", r"val_acc: ([0-9.eE+-]+)"),
    ("learning_rate", r"lr=([0-9.eE+-]+)"),
    ("grad_norm", r"grad_norm=([0-9.eE+-]+)"),
    ("gpu_mem_gb", r"gpu_mem=([0-9.]+)GB"),
    ("throughput", r"throughput: ([0-9.]+) samples/s"),
    ("epoch_time", r"Epoch \d+ took ([0-9.]+)s"),
    ("f1", r"(?i)f1[-_ ]score: ([0-9.]+)"),
]

Line = tuple[str, str, float]


def _stamp(rng: random.Random) -> str:
    return f"[2026-11-22 {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}]"


def _chatter(rng: random.Random, i: int) -> str:
    k = rng.randrange(1000)
    choice = rng.randrange(12)
    if choice == 0:
        return (
            f"{_stamp(rng)} INFO data: loading shard {k} from /opt/ml/input/data/train/part-{k:05d}"
        )
    if choice == 1:
        done = rng.randrange(101)
        bar = "█" * (done // 10) + " " * (10 - done // 10)
        return (
            f"{done:3d}%|{bar}| {done}/100 [00:{k % 60:02d}<00:{(k * 7) % 60:02d}, {k / 7:.2f}it/s]"
        )
    if choice == 2:
        return f"Epoch {k % 50}/50"
    if choice == 3:
        return f"DataLoader worker {k % 8} started (pid={4000 + k})"
    if choice == 4:
        return (
            '  File "/usr/lib/python3.10/site-packages/torch/nn/modules/module.py", '
            f"line {1000 + k}, in _call_impl"
        )
    if choice == 5:
        return f"{_stamp(rng)} INFO checkpoint: saving to /opt/ml/checkpoints/step-{i}.pt"
    if choice == 6:
        return f"algo-1:{k}:{k + 3} [0] NCCL INFO Channel 00/02 : 0[0] -> 1[100] via P2P/IPC"
    if choice == 7:
        return f"{_stamp(rng)} WARNING torch.distributed: timeout=1800 world_size=8 rank={k % 8}"
    if choice == 8:
        return "Downloading https://example.com/models/resnet50.pth (97.8 MB) version=2.1.0"
    if choice == 9:
        return f"{_stamp(rng)} INFO trainer: computing validation loss over {k} batches"
    if choice == 10:
        return ""
    return f"{_stamp(rng)} DEBUG amp: grad scaler scale {2.0 ** (k % 16):.1f}, skipped {k % 3}"


def _metric_line(rng: random.Random, i: int) -> str:
    epoch, step = i // 10_000, i // 10
    choice = rng.randrange(6)
    if choice == 0:
        return (
            f"{_stamp(rng)} epoch={epoch} step={step} train_loss={rng.random():.4f} "
            f"lr={rng.random() * 1e-3:.2e} grad_norm={rng.random() * 5:.3f}"
        )
    if choice == 1:
        val = f"{rng.random():.4f}" if rng.random() < 0.95 else "-"  # "-" is not a number
        return (
            f"{_stamp(rng)} Validation epoch {epoch}: val_loss: {rng.random():.4e} val_acc: {val}"
        )
    if choice == 2:
        return (
            f"step={step} train_acc={rng.random():.4f} gpu_mem={rng.random() * 80:.1f}GB "
            f"throughput: {rng.random() * 3000:.1f} samples/s"
        )
    if choice == 3:
        return f"Epoch {epoch} took {rng.random() * 600:.1f}s"
    if choice == 4:
        return f"{_stamp(rng)} eval: F1-score: {rng.random():.4f} precision={rng.random():.3f}"
    return f"{rng.randrange(101)}%|█████     | 45/100 [00:01<00:02, 30.1it/s, train_loss={rng.random():.3f}]"


def generate_lines(n: int, seed: int = 0, metric_share: float = 0.15) -> list[Line]:
    """``n`` log lines from two hosts, about ``metric_share`` of them carrying metrics."""
    rng = random.Random(seed)
    out: list[Line] = []
    hosts = ("algo-1", "algo-2")
    t0 = 1_700_000_000.0
    for i in range(n):
        line = _metric_line(rng, i) if rng.random() < metric_share else _chatter(rng, i)
        out.append((line, hosts[(i // 64) % 2], t0 + i * 0.01))
    return out


def run_naive(definitions: Sequence[tuple[str, str]], lines: Sequence[Line]) -> list[MetricSample]:
    out: list[MetricSample] = []
    for line, host, wall_time in lines:
        samples = naive_parse(definitions, line, host, wall_time)
        if samples:
            out.extend(samples)
    return out


def run_naive_precompiled(
    definitions: Sequence[tuple[str, str]], lines: Sequence[Line]
) -> list[MetricSample]:
    """The naive rule without ``re``'s per-call cache lookup: the honest lower bound."""
    compiled = [(name, re.compile(regex)) for name, regex in definitions]
    out: list[MetricSample] = []
    for line, host, wall_time in lines:
        found = []
        for name, pattern in compiled:
            m = pattern.search(line)
            if m is None:
                continue
            try:
                found.append((name, float(m.group(1) if pattern.groups else m.group(0))))
            except (TypeError, ValueError):
                continue
        if found:
            step, epoch = line_position(line)
            out.extend(MetricSample(name, v, host, wall_time, step, epoch) for name, v in found)
    return out


@dataclass(frozen=True)
class BenchResult:
    lines: int
    samples: int
    identical: bool
    naive_rate: float
    naive_precompiled_rate: float
    fast_rate: float
    auto_lines: int
    auto_rate: float
    auto_samples: int

    @property
    def ratio(self) -> float:
        return self.fast_rate / self.naive_rate

    @property
    def ratio_precompiled(self) -> float:
        return self.fast_rate / self.naive_precompiled_rate


SEGMENT_LINES = 250_000


Contender = Callable[[Sequence[Line]], list[MetricSample]]


def _cpu_seconds(fn: Contender, lines: Sequence[Line]) -> tuple[list[MetricSample], float]:
    start = time.process_time()
    result = fn(lines)
    return result, time.process_time() - start


def run(n: int, seed: int = 0) -> BenchResult:
    """Time the contenders on the same ``n`` lines and check they agree.

    The lines are cut into segments and the contenders take turns on each one, so a load
    spike from another process hits them all alike instead of one whole run. Times are CPU
    seconds (steadier than wall time on a shared machine) with the garbage collector off,
    as in timeit, so a full collection of the big input list never lands on one side only.
    Auto-detection has no target and is timed on the first segment only, to keep the run
    short.
    """
    lines = generate_lines(n, seed)
    parser = MetricsParser(DEFINITIONS, auto_detect=False)
    contenders: dict[str, Contender] = {
        "naive": lambda seg: run_naive(DEFINITIONS, seg),
        "precompiled": lambda seg: run_naive_precompiled(DEFINITIONS, seg),
        "fast": parser.parse_lines,
    }
    seconds = dict.fromkeys(contenders, 0.0)
    counts = dict.fromkeys(contenders, 0)
    identical = True
    gc.collect()
    gc.disable()
    try:
        auto_parser = MetricsParser([], auto_detect=True)
        auto, auto_seconds = _cpu_seconds(auto_parser.parse_lines, lines[:SEGMENT_LINES])
        auto_samples = len(auto)
        del auto
        for k, lo in enumerate(range(0, n, SEGMENT_LINES)):
            segment = lines[lo : lo + SEGMENT_LINES]
            names = list(contenders)
            names = names[k % len(names) :] + names[: k % len(names)]  # rotate who goes first
            got: dict[str, list[MetricSample]] = {}
            for name in names:
                got[name], spent = _cpu_seconds(contenders[name], segment)
                seconds[name] += spent
                counts[name] += len(got[name])
            identical = identical and got["fast"] == got["naive"] == got["precompiled"]
            del got  # results are checked per segment, so no run pays for a heap of old ones
            gc.collect()
    finally:
        gc.enable()
    return BenchResult(
        lines=n,
        samples=counts["naive"],
        identical=identical,
        naive_rate=n / seconds["naive"],
        naive_precompiled_rate=n / seconds["precompiled"],
        fast_rate=n / seconds["fast"],
        auto_lines=min(n, SEGMENT_LINES),
        auto_rate=min(n, SEGMENT_LINES) / auto_seconds,
        auto_samples=auto_samples,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    r = run(args.lines, args.seed)
    print(f"lines: {r.lines:,}  samples: {r.samples:,}  identical: {r.identical}")
    print("rates in lines per CPU second:")
    print(f"naive (re.search per definition): {r.naive_rate:12,.0f} lines/s")
    print(f"naive, precompiled regexes:       {r.naive_precompiled_rate:12,.0f} lines/s")
    print(f"MetricsParser (definitions only): {r.fast_rate:12,.0f} lines/s")
    print(
        f"MetricsParser (auto-detect only): {r.auto_rate:12,.0f} lines/s"
        f"  ({r.auto_samples:,} samples from the first {r.auto_lines:,} lines, no target)"
    )
    print(f"vs precompiled naive: {r.ratio_precompiled:.1f}x")
    print(f"metrics_parse: ratio {r.ratio:.1f}x (target >= {TARGET_RATIO:g}x)")
    if not r.identical:
        print("FAIL: MetricsParser samples differ from naive_parse", file=sys.stderr)
        return 1
    if r.ratio < TARGET_RATIO:
        print("FAIL: below target", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
