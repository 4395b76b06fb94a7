"""AWS for the SageMaker backend: sessions, S3 transfers, images, requests, logs, cost, export.

Nothing here imports boto3 or botocore at module level (the window opens without them); every
function imports them on first use. Public API for the GUI and the CLI:

* `list_profiles()`, `list_regions()`, `default_region(profile)`,
  `list_execution_roles(profile, region)` (None when the identity may not list roles),
  `AwsSession(profile, region)` with `.identity()`, `.default_bucket()`;
* `estimate_cost(spec, region=None)` -> `CostEstimate` (`.per_hour`, `.for_max_runtime`,
  `.summary()`, `.as_of`, `.region`), from the shipped price table `price_table()`;
* `resolve_image(...)`, `pytorch_training_image(...)`;
* `aws.export.export_code(spec, plan, fmt)` (v3 | v2 | request) with
  `aws.remote_jobs.plan_for_export(spec, job_name)`; `aws.remote_jobs.list_training_jobs`,
  `import_training_job`, `adoption` (what the jobs service's `adopt` records and follows);
* errors: `AwsError` and its subclasses in `trainer_gui.core.aws.errors`.

Upload/download progress of a job reaches the jobs service's listeners as
`trainer_gui.core.runners.events.TransferProgress` events.
"""

from __future__ import annotations

from trainer_gui.core.aws.errors import (
    AwsAccessDenied,
    AwsBucketMissing,
    AwsCredentialsError,
    AwsError,
    AwsNetworkError,
    AwsQuotaExceeded,
    AwsThrottled,
    AwsUploadInterrupted,
    ImageRegionError,
)
from trainer_gui.core.aws.images import pytorch_training_image, resolve_image
from trainer_gui.core.aws.pricing import CostEstimate, estimate, estimate_cost, price_table
from trainer_gui.core.aws.session import (
    AwsSession,
    default_region,
    list_execution_roles,
    list_profiles,
    list_regions,
)

__all__ = [
    "AwsAccessDenied",
    "AwsBucketMissing",
    "AwsCredentialsError",
    "AwsError",
    "AwsNetworkError",
    "AwsQuotaExceeded",
    "AwsSession",
    "AwsThrottled",
    "AwsUploadInterrupted",
    "CostEstimate",
    "ImageRegionError",
    "default_region",
    "estimate",
    "estimate_cost",
    "list_execution_roles",
    "list_profiles",
    "list_regions",
    "price_table",
    "pytorch_training_image",
    "resolve_image",
]
