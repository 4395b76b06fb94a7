"""The metric sample shared by the parser, the store, runners and the UI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricSample:
    name: str
    value: float
    host: str
    wall_time: float
    step: int | None = None
    epoch: float | None = None
