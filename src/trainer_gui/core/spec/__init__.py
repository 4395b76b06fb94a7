"""The job spec (pydantic v2) and its YAML form."""

from trainer_gui.core.spec.io import (
    apply_overrides,
    dump_spec,
    format_validation_error,
    load_spec,
    save_spec,
    spec_from_dict,
    spec_from_text,
    spec_to_dict,
)
from trainer_gui.core.spec.model import (
    Backend,
    ChannelSpec,
    ComputeSpec,
    DistributionSpec,
    JobSpec,
    MetricDefinition,
    SageMakerSettings,
    SourceSpec,
)

__all__ = [
    "Backend",
    "ChannelSpec",
    "ComputeSpec",
    "DistributionSpec",
    "JobSpec",
    "MetricDefinition",
    "SageMakerSettings",
    "SourceSpec",
    "apply_overrides",
    "dump_spec",
    "format_validation_error",
    "load_spec",
    "save_spec",
    "spec_from_dict",
    "spec_from_text",
    "spec_to_dict",
]
