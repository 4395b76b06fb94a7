"""A reverse_log range in a local sweep is searched as SageMaker's ReverseLogarithmic (issue 14):
`1 - value` evenly on a log scale, so values near 1 get their share of the trials."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_sweeps import write_sweep

from trainer_gui.core.spec.sweep import load_sweep, trial_spec
from trainer_gui.core.store import Store
from trainer_gui.services import sweeps
from trainer_gui.services.jobs import JobService

TRIALS = 60


@pytest.fixture
def service(app_home: Path) -> Iterator[JobService]:
    store = Store()
    svc = JobService(store)
    yield svc
    sweeps.release(svc)
    svc.shutdown()
    store.close()


def momentum_sweep(tmp_path: Path, strategy: str) -> Path:
    path = write_sweep(tmp_path, strategy=strategy, max_trials=TRIALS, seed=3)
    data = yaml.safe_load(path.read_text())
    data["hyperparameters"]["momentum"] = 0.9
    data["sweep"]["parameters"] = {
        "momentum": {"type": "continuous", "min": 0.9, "max": 0.9999, "scale": "ReverseLogarithmic"}
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("strategy", ["random", "bayesian"])
def test_reverse_log_values_fall_evenly_per_decade_of_one_minus_the_value(
    service: JobService, tmp_path: Path, strategy: str
) -> None:
    sweep = load_sweep(momentum_sweep(tmp_path, strategy))
    record = sweeps.start_sweep(service.store, sweep)
    driver = sweeps.driver(service)
    live = driver._open(record.id)
    assert live is not None
    driver.live[record.id] = live
    for _ in range(TRIALS):  # what the driver asks and stores for each trial (no job runs)
        driver._ask(live)

    values = [float(t.params["momentum"]) for t in service.store.trials(record.id)]
    assert len(values) == TRIALS and all(0.9 <= v <= 0.9999 for v in values)
    decades = [min(2, int(-math.log10(1 - v)) - 1) for v in values]  # 0.9x, 0.99x, 0.999x
    for decade in range(3):
        share = decades.count(decade) / TRIALS
        assert 0.15 < share < 0.55, (decade, share, sorted(values))  # linear: 90%, 9%, 1%
    for number in (0, TRIALS - 1):  # the values reach the trial's job as they are stored
        stored = service.store.trials(record.id)[number].params
        assert trial_spec(sweep, stored, number).hyperparameters["momentum"] == stored["momentum"]


def test_a_trial_asked_linearly_before_keeps_its_value_and_the_ends_stay_in_range(
    tmp_path: Path,
) -> None:
    from optuna.distributions import FloatDistribution

    sweep = load_sweep(momentum_sweep(tmp_path, "random"))
    reversed_ = sweeps._distributions(sweep)
    assert reversed_["momentum"] == FloatDistribution(1 - 0.9999, 1 - 0.9, log=True)
    linear = {"momentum": FloatDistribution(0.9, 0.9999)}
    assert sweeps.trial_values(sweep, {"momentum": 0.95}, linear) == {"momentum": 0.95}
    low, high = reversed_["momentum"].low, reversed_["momentum"].high
    assert sweeps.trial_values(sweep, {"momentum": low}, reversed_)["momentum"] <= 0.9999
    assert sweeps.trial_values(sweep, {"momentum": high}, reversed_)["momentum"] >= 0.9
