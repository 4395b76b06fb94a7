"""Each run keeps one colour: the plots draw a run in the colour derived from its id, in a
single-run view and in a comparison alike, and runs compared side by side never share one."""

from __future__ import annotations

from typing import Any

from trainer_gui.core.metrics import MetricSample
from trainer_gui.core.naming import run_color, run_colors
from trainer_gui.ui.plots.panel import MetricsPanel


def loss(n: int, host: str = "algo-1") -> list[MetricSample]:
    return [MetricSample("loss", 1.0 / (i + 1), host, 1000.0 + i, i) for i in range(n)]


def drawn_color(panel: MetricsPanel, job: str, host: str = "algo-1") -> str:
    panel.redraw()
    return str(panel.curve(job, host, "loss").opts["pen"].color().name())


def make_panel(qtbot: Any) -> MetricsPanel:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    return panel


def test_a_run_is_drawn_in_its_own_colour_alone_and_compared(qtbot: Any) -> None:
    ids = [f"20261203-run-{n}" for n in range(30)]
    # two runs whose own colours differ, and a third listed first that takes neither
    a, b = next((x, y) for x in ids for y in ids if run_color(x) != run_color(y))
    panel = make_panel(qtbot)

    panel.set_jobs([b])
    panel.add_samples(b, loss(5))
    alone = drawn_color(panel, b)

    panel.set_jobs([a, b])
    panel.add_samples(a, loss(5))
    panel.add_samples(b, loss(5))

    assert alone == run_color(b)
    assert drawn_color(panel, a) == run_color(a)
    assert drawn_color(panel, b) == run_color(b)


def test_compared_runs_with_the_same_hashed_colour_still_differ(qtbot: Any) -> None:
    ids = [f"20261203-run-{n}" for n in range(30)]
    a, b = next((x, y) for x in ids for y in ids if x < y and run_color(x) == run_color(y))
    panel = make_panel(qtbot)

    panel.set_jobs([a, b])
    panel.add_samples(a, loss(5))
    panel.add_samples(b, loss(5))

    assert drawn_color(panel, a) == run_colors([a, b])[a]
    assert drawn_color(panel, b) == run_colors([a, b])[b]
    assert drawn_color(panel, a) != drawn_color(panel, b)


def test_a_second_host_of_a_run_gets_another_colour(qtbot: Any) -> None:
    panel = make_panel(qtbot)
    panel.set_jobs(["job-x"])

    panel.add_samples("job-x", loss(5, "algo-1") + loss(5, "algo-2"))

    assert drawn_color(panel, "job-x", "algo-1") == run_color("job-x")
    assert drawn_color(panel, "job-x", "algo-2") != run_color("job-x")
