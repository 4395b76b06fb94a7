"""The metric sample shared by the parser, the store, runners and the UI."""

from __future__ import annotations

from dataclasses import dataclass


# Not frozen: a frozen dataclass's __init__ goes through object.__setattr__ and costs about four
# times as much, which is most of the parser's time on metric-heavy logs. Treat it as read-only.
@dataclass(slots=True)
class MetricSample:
    name: str
    value: float
    host: str
    wall_time: float
    step: int | None = None
    epoch: float | None = None
