"""Metric samples from training logs: SageMaker metric definitions plus auto-detection."""

from trainer_gui.core.metrics.parser import (
    DefinitionLike,
    MetricsParser,
    line_position,
    naive_parse,
)
from trainer_gui.core.metrics.types import MetricSample

__all__ = ["DefinitionLike", "MetricSample", "MetricsParser", "line_position", "naive_parse"]
