"""MetricsParser: SageMaker metric definitions, auto-detection, step/epoch, speed-up safety."""

from __future__ import annotations

import importlib.util
import math
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import trainer_gui.core.metrics.parser as parser_module
from trainer_gui.core.metrics import MetricSample, MetricsParser, line_position, naive_parse
from trainer_gui.core.spec.model import MetricDefinition

HOST = "algo-1"
T = 1700000000.0


def values(samples: list[MetricSample]) -> list[tuple[str, float]]:
    return [(s.name, s.value) for s in samples]


def auto(line: str) -> list[MetricSample]:
    return MetricsParser([], auto_detect=True).parse_line(line, HOST, T)


# -- metric definitions ----------------------------------------------------------------------


def test_definition_value_is_capture_group_one() -> None:
    p = MetricsParser([("loss", r"loss=([0-9.]+)")], auto_detect=False)
    assert p.parse_line("[12:00:01] loss=0.25 acc=0.5", HOST, T) == [
        MetricSample("loss", 0.25, HOST, T)
    ]


def test_definition_without_group_uses_the_whole_match() -> None:
    p = MetricsParser([("secs", r"[0-9]+\.[0-9]+(?=s/it)")], auto_detect=False)
    assert values(p.parse_line("12%| 3/25 [00:04, 1.35s/it]", HOST, T)) == [("secs", 1.35)]


def test_non_numeric_capture_is_skipped() -> None:
    p = MetricsParser([("loss", r"loss=(\S+)")], auto_detect=False)
    assert p.parse_line("loss=diverged", HOST, T) == []


def test_capture_group_that_took_no_part_is_skipped() -> None:
    p = MetricsParser([("v", r"(?:a=(\d+)|b=\d+)")], auto_detect=False)
    assert p.parse_line("b=3", HOST, T) == []
    assert values(p.parse_line("a=3", HOST, T)) == [("v", 3.0)]


def test_nan_and_inf_are_kept_as_floats() -> None:
    p = MetricsParser([("loss", r"loss=(\S+)")], auto_detect=False)
    (nan,) = p.parse_line("loss=nan", HOST, T)
    (inf,) = p.parse_line("loss=-inf", HOST, T)
    assert math.isnan(nan.value)
    assert inf.value == -math.inf


def test_every_matching_definition_gives_a_sample_in_definition_order() -> None:
    defs = [("acc", r"acc=([0-9.]+)"), ("loss", r"loss=([0-9.]+)"), ("lr", r"lr=([0-9.e-]+)")]
    p = MetricsParser(defs, auto_detect=False)
    line = "loss=0.5 acc=0.9 lr=1e-3"
    assert values(p.parse_line(line, HOST, T)) == [("acc", 0.9), ("loss", 0.5), ("lr", 0.001)]


def test_samples_carry_their_host_and_time() -> None:
    p = MetricsParser([("loss", r"loss=([0-9.]+)")], auto_detect=False)
    got = p.parse_lines([("loss=1", "algo-1", 1.0), ("loss=2", "algo-2", 2.0)])
    assert [(s.host, s.wall_time, s.value) for s in got] == [
        ("algo-1", 1.0, 1.0),
        ("algo-2", 2.0, 2.0),
    ]


def test_spec_model_objects_and_sagemaker_dicts_work_as_definitions() -> None:
    line = "loss=0.5 acc=0.75"
    from_model = MetricsParser([MetricDefinition(name="loss", regex=r"loss=([0-9.]+)")])
    from_dict = MetricsParser([{"Name": "acc", "Regex": r"acc=([0-9.]+)"}])
    assert values(from_model.parse_line(line, HOST, T)) == [("loss", 0.5)]
    assert values(from_dict.parse_line(line, HOST, T)) == [("acc", 0.75)]


def test_regex_that_does_not_compile_is_refused() -> None:
    with pytest.raises(re.error):
        MetricsParser([("bad", r"loss=([0-9.]+")])


def test_auto_detection_only_looks_at_lines_no_definition_matched() -> None:
    p = MetricsParser([("train_loss", r"loss=([0-9.]+)")], auto_detect=True)
    assert values(p.parse_line("loss=0.5 acc=0.9", HOST, T)) == [("train_loss", 0.5)]
    assert values(p.parse_line("acc=0.9", HOST, T)) == [("acc", 0.9)]


def test_auto_detection_can_be_switched_off() -> None:
    assert MetricsParser([], auto_detect=False).parse_line("loss=0.5", HOST, T) == []


def test_parse_lines_takes_any_iterable() -> None:
    p = MetricsParser([("loss", r"loss=([0-9.]+)")], auto_detect=False)
    lines = ((f"loss={i}", HOST, float(i)) for i in range(3))
    assert [s.value for s in p.parse_lines(lines)] == [0.0, 1.0, 2.0]


# -- step and epoch ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "step", "epoch"),
    [
        ("epoch=2 step=30 loss=0.5", 30, 2.0),
        ("Epoch 3/10 loss=0.5", None, 3.0),
        ("Epoch [3/10], Step [100/600], Loss: 0.2134", 100, 3.0),
        ("Train Epoch: 1 [640/60000 (1%)]\tLoss: 0.301429", None, 1.0),
        ("Epoch 0:  45%|████▌     | 45/100 [00:01<00:02, 30.10it/s, loss=0.42]", None, 0.0),
        ("global_step=7 loss=1", 7, None),
        ("iteration 30 loss=2", 30, None),
        ("iter: 5, loss: 0.1", 5, None),
        ("batch=12 loss=1", 12, None),
        ("STEP = 9 loss=1", 9, None),
        ("{'loss': 0.5, 'learning_rate': 5e-05, 'epoch': 0.25}", None, 0.25),
        ('{"step": 3, "loss": 0.2}', 3, None),
        ("INFO:__main__:epoch=1 step=5 loss=0.5", 5, 1.0),
        ("Epoch 3/10 epoch=4 loss=1", None, 4.0),  # a key=value pair beats the word form
        ("step=0.5 Step 4 loss=1", 4, None),  # a step must be whole
        ("loss=0.5 acc=0.9", None, None),
    ],
)
def test_step_and_epoch_are_attached_to_every_sample_of_the_line(
    line: str, step: int | None, epoch: float | None
) -> None:
    samples = auto(line)
    assert samples
    assert all(s.step == step and s.epoch == epoch for s in samples)
    assert line_position(line) == (step, epoch)


def test_definition_matched_samples_get_the_line_step_and_epoch() -> None:
    p = MetricsParser([("loss", r"loss=([0-9.]+)")], auto_detect=False)
    (sample,) = p.parse_line("[12:00:01] epoch=2 step=40 loss=0.5", HOST, T)
    assert (sample.step, sample.epoch) == (40, 2.0)


def test_step_and_epoch_are_not_reported_as_metrics() -> None:
    assert [s.name for s in auto("epoch=1 global_step=20 iteration=20 batch=3 loss=0.5")] == [
        "loss"
    ]
    assert auto("epoch=1 step=20") == []


def test_position_words_in_other_keys_are_not_positions() -> None:
    (sample,) = auto("my_epoch=3 steps=7 loss=1")[-1:]
    assert (sample.step, sample.epoch) == (None, None)


# -- auto-detection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("epoch=1 step=20 loss=0.53 acc=0.81", [("loss", 0.53), ("acc", 0.81)]),
        ("loss=0.5, acc=0.9; lr=1e-3", [("loss", 0.5), ("acc", 0.9), ("lr", 0.001)]),
        ("loss = 0.5", [("loss", 0.5)]),
        ("loss: 0.53, accuracy: 0.9", [("loss", 0.53), ("accuracy", 0.9)]),
        ("Loss: 0.53 | Acc: 0.9", [("Loss", 0.53), ("Acc", 0.9)]),
        (
            "1875/1875 [====] - 3s 2ms/step - loss: 0.2954 - accuracy: 0.9145",
            [("loss", 0.2954), ("accuracy", 0.9145)],
        ),
        (
            "train/loss=0.5 val:acc=0.7 top-1=0.9",
            [("train/loss", 0.5), ("val:acc", 0.7), ("top-1", 0.9)],
        ),
        ("val:acc: 0.9", [("val:acc", 0.9)]),
        (
            "lr.group0=0.1 reward=-1.5 big=5.2E+01",
            [("lr.group0", 0.1), ("reward", -1.5), ("big", 52.0)],
        ),
        ("[INFO] 2024-01-01 12:00:00 loss=0.3", [("loss", 0.3)]),
        ("45%|████      | 45/100 [00:01<00:02, 30.1it/s, loss=0.42]", [("loss", 0.42)]),
        (
            "{'loss': 0.5, 'grad_norm': 1.25, 'learning_rate': 5e-05, 'epoch': 0.1}",
            [("loss", 0.5), ("grad_norm", 1.25), ("learning_rate", 5e-05)],
        ),
        ("loss=nan", [("loss", math.nan)]),
        ("Saved. loss=0.25.", [("loss", 0.25)]),
    ],
)
def test_auto_detects_key_value_pairs(line: str, expected: list[tuple[str, float]]) -> None:
    got = values(auto(line))
    assert [n for n, _ in got] == [n for n, _ in expected]
    for (_, a), (_, b) in zip(got, expected, strict=True):
        assert a == b or (math.isnan(a) and math.isnan(b))


def test_auto_detects_json_lines_numbers_only_with_nested_names() -> None:
    line = '{"step": 3, "loss": 0.2, "name": "run-1", "ok": true, "eval": {"acc": 1}}'
    assert [(s.name, s.value, s.step) for s in auto(line)] == [
        ("loss", 0.2, 3),
        ("eval/acc", 1.0, 3),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "12:30:01",
        "[INFO] 2024-01-01 12:00:00 Starting training",
        "time: 12:30:01",
        "elapsed=0:01:23",
        "date=2024-01-01",
        "Downloading https://host:8080/models/x.pt?rev=2&part=1",
        "torch=2.1.0",
        "torch: 2.1.0",
        "ip=10.0.0.1",
        "Using device: cuda:0",
        "Note: 3 workers started",
        "Epoch 3/10",
        "Saving checkpoint to /opt/ml/checkpoints/step-300.pt",
        "45%|████      | 45/100 [00:01<00:02, 30.1it/s]",
        "Python 3.11.7 (main, May  9 2026, 07:35:25)",
        "running: python train.py --lr=0.01 --epochs=3",
        "Test set: Accuracy: 9889/10000 (99%)",
        "loss=0.5abc",
        "",
    ],
)
def test_auto_detection_ignores_ordinary_log_text(line: str) -> None:
    assert auto(line) == []


# -- the fast path gives exactly what the naive SageMaker rule gives --------------------------

TRICKY_DEFINITIONS = [
    ("anchored", r"^loss=([0-9.]+)"),
    ("either_loss", r"(?:train|val)_loss[=:] ?([0-9.eE+-]+)"),
    ("acc_any_case", r"(?i)ACC(?:uracy)?: ([0-9.]+)"),
    ("step_lookahead", r"step (\d+)(?= )"),
    ("lr_lookbehind", r"(?<=lr=)[0-9.e-]+"),
    ("f1", r"(?i)f1[-_ ]score: ([0-9.]+)"),
    ("folds", r"(?i)sk=(\d+)"),
    ("local_flag", r"(?i:KL)_div=([0-9.]+)"),
    ("optional_group", r"x(\d)?y=(\d+)"),
    ("named", r"(?P<v>\d+\.\d+)s/it"),
    ("no_literal", r"(\d+)$"),
    ("repeat", r"(?:ab)+=(\d+)"),
    ("verbose", r"(?x) gpu \s* = \s* (\d+) GB"),
    ("non_ascii_any_case", r"(?i)naïve=(\d+)"),
    ("dotted_iter", r"(?i)İter=(\d+)"),
    ("word_bound", r"\bgrad_norm=([0-9.]+)\b"),
    ("dotall", r"(?s)a.b=(\d)"),
    ("multiline", r"(?m)^val=(\d)$"),
    ("contains", r"(?=.*warmup)lr_scale=([0-9.]+)"),
    ("not_after", r"(?<!no_)val=(\d)"),
    ("conditional", r"(<)?tag=(\d+)(?(1)>)"),
    ("ascii_any_case", r"(?ai)ſk=(\d+)"),
    ("empty_match", r"(\d*)"),
]

FRAGMENTS = [
    "loss=0.5",
    "train_loss=1.25",
    "val_loss: 3e-2",
    "ACCURACY: 0.91",
    "acc: 0.5",
    "Acc: .3",
    "step 12 ",
    "step 13",
    "lr=1e-3",
    "lr=",
    "F1-score: 0.8",
    "f1 score: 0.75",
    "F1_SCORE: 1",
    "sk=1",
    "ſk=2",
    "SK=3",
    "sK=4",
    "ſK=5",
    "kl_div=0.1",
    "KL_div=0.2",
    "Kl_div=0.3",
    "xy=5",
    "x7y=6",
    "1.5s/it",
    "99",
    "abab=3",
    "ab=4",
    "gpu = 12 GB",
    "gpu=3GB",
    "NAÏVE=1",
    "naïve=2",
    "iter=1",
    "İter=2",
    "ITER=3",
    "grad_norm=2.5",
    "xgrad_norm=1",
    "a\nb=1",
    "a-b=2",
    "val=1",
    "warmup lr_scale=0.5",
    "lr_scale=0.25",
    "<tag=1>",
    "tag=2",
    "<tag=3",
    "█████",
    "[2026-11-22 12:00:00]",
    "INFO",
    "epoch=3",
    "Epoch 4/10",
    "global_step=9",
    " ",
    "\t",
    "é",
    "ı",
    "K",
    "\n",
    "val=2\n",
    "\r",
]


def corpus(n: int, seed: int) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        parts = rng.choices(FRAGMENTS, k=rng.randrange(0, 5))
        lines.append(((" " if rng.random() < 0.7 else "").join(parts), f"algo-{i % 3}", float(i)))
    return lines


def naive_all(
    defs: list[tuple[str, str]], lines: list[tuple[str, str, float]]
) -> list[MetricSample]:
    return [s for line, host, t in lines for s in naive_parse(defs, line, host, t)]


@pytest.mark.parametrize("batch_lines", [parser_module._BATCH_LINES, 7])
def test_fast_path_equals_naive_sagemaker_rule(
    monkeypatch: pytest.MonkeyPatch, batch_lines: int
) -> None:
    monkeypatch.setattr(parser_module, "_BATCH_LINES", batch_lines)
    lines = corpus(5000, seed=batch_lines)
    expected = naive_all(TRICKY_DEFINITIONS, lines)
    assert len(expected) > 1000  # the corpus really exercises the definitions
    fast = MetricsParser(TRICKY_DEFINITIONS, auto_detect=False)
    assert fast.parse_lines(lines) == expected
    assert [s for t in lines for s in fast.parse_line(*t)] == expected


@pytest.mark.parametrize(("name", "regex"), TRICKY_DEFINITIONS)
def test_prefilter_never_rules_out_a_line_the_regex_matches(name: str, regex: str) -> None:
    (d,) = MetricsParser([(name, regex)], auto_detect=False)._defs
    pattern = re.compile(regex)
    for line, _, _ in corpus(3000, seed=1):
        if pattern.search(line):
            assert d.may_match(line), (regex, line)


def test_each_definition_with_a_literal_is_prefiltered() -> None:
    """Guards the speed-up itself: only regexes with no required text run on every line."""
    p = MetricsParser(TRICKY_DEFINITIONS, auto_detect=False)
    unfiltered = {d.name for d in p._defs if d.literals is None}
    assert unfiltered == {"no_literal", "empty_match"}


def test_fold_characters_are_those_re_treats_as_ascii_letters() -> None:
    folds = parser_module._fold_chars(re.IGNORECASE | re.UNICODE, "iks")
    assert {"ſ", "\u212a", "ı", "İ"} <= set(folds)  # long s, Kelvin sign, dotless and dotted i
    assert all(not c.isascii() for c in folds)
    assert parser_module._fold_chars(re.IGNORECASE | re.ASCII, "iks") == ()


# -- the benchmark stays runnable ---------------------------------------------------------------


def load_bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "metrics_parse.py"
    spec = importlib.util.spec_from_file_location("bench_metrics_parse", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench() -> Iterator[ModuleType]:
    module = load_bench()
    yield module
    sys.modules.pop("bench_metrics_parse", None)


def test_bench_generator_and_comparison_run_on_a_small_log(bench: ModuleType) -> None:
    result = bench.run(2000)
    assert result.identical
    assert result.samples > 100
    assert result.auto_samples > 100
    assert min(result.naive_rate, result.fast_rate, result.auto_rate) > 0
