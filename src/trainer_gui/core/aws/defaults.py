"""The AWS settings of the app: which profile, region, execution role and S3 prefix a SageMaker job
uses when its spec leaves them empty.

They are names and ARNs, never credentials (those stay with boto3's chain), kept as a small JSON
file in the app's data folder so the window's settings page and the CLI share them. A spec's own
values always win; `with_aws_defaults` fills only what the spec leaves empty, and the job service
applies it at submit, so the job's stored spec says exactly where the job ran.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trainer_gui.core.atomic import write_atomic
from trainer_gui.core.errors import SpecError
from trainer_gui.core.paths import data_home
from trainer_gui.core.spec.io import format_validation_error
from trainer_gui.core.spec.model import Backend, JobSpec, SageMakerSettings

log = logging.getLogger(__name__)

SETTINGS_FILE = "aws-settings.json"
KEYS = ("profile", "region", "role_arn", "s3_prefix")


@dataclass(frozen=True)
class AwsDefaults:
    profile: str | None = None
    region: str | None = None
    role_arn: str | None = None
    s3_prefix: str | None = None

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> AwsDefaults:
        """Checked by the spec's own `SageMakerSettings` rules; `SpecError` names each field."""
        values = {k: (str(data[k]).strip() or None) if data.get(k) else None for k in KEYS}
        try:
            SageMakerSettings.model_validate(values)
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc), source="AWS settings") from None
        return cls(**values)

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


def settings_path() -> Path:
    return data_home() / SETTINGS_FILE


def load_aws_defaults() -> AwsDefaults:
    """The saved settings; a missing or damaged file reads as no settings (never an error)."""
    path = settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AwsDefaults()
    except (OSError, ValueError) as exc:
        log.warning("ignoring the AWS settings in %s: %s", path, exc)
        return AwsDefaults()
    if not isinstance(data, dict):
        log.warning("ignoring the AWS settings in %s: not a JSON object", path)
        return AwsDefaults()
    try:
        return AwsDefaults.from_mapping(data)
    except SpecError as exc:
        log.warning("ignoring the AWS settings in %s: %s", path, exc)
        return AwsDefaults()


def save_aws_defaults(defaults: AwsDefaults) -> Path:
    """Write the file atomically (a crash leaves the old or the new one, never half)."""
    path = settings_path()
    text = json.dumps({k: v for k, v in defaults.as_dict().items() if v}, indent=2) + "\n"
    return write_atomic(path, text, mode=0o600)


def with_aws_defaults(
    spec: JobSpec, defaults: AwsDefaults | None = None, *, any_backend: bool = False
) -> JobSpec:
    """The spec with the settings filled in where its `sagemaker` group leaves a field empty.

    Only SageMaker jobs change (a local job's spec stays as the user wrote it), unless
    `any_backend`: an export or a cost estimate asks what the spec would do on SageMaker.
    """
    if spec.compute.backend != Backend.SAGEMAKER and not any_backend:
        return spec
    defaults = load_aws_defaults() if defaults is None else defaults
    if defaults.is_empty():
        return spec
    current = spec.sagemaker
    update: dict[str, Any] = {}
    for key in KEYS:
        if not getattr(current, key) and getattr(defaults, key):
            update[key] = getattr(defaults, key)
    if not update:
        return spec
    return spec.model_copy(update={"sagemaker": current.model_copy(update=update)})


def effective_region(spec: JobSpec, defaults: AwsDefaults | None = None) -> str | None:
    """The region a SageMaker run of this spec would use (spec, settings, then AWS config)."""
    from trainer_gui.core.aws.session import default_region

    filled = with_aws_defaults(spec, defaults, any_backend=True)
    return filled.sagemaker.region or default_region(filled.sagemaker.profile)


__all__ = [
    "AwsDefaults",
    "effective_region",
    "load_aws_defaults",
    "save_aws_defaults",
    "settings_path",
    "with_aws_defaults",
]
