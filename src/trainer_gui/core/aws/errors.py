"""AWS failures people meet, each turned into one clear sentence (a `UserError`).

botocore raises `ClientError` (the service answered with an error code) or `BotoCoreError`
(no credentials, no network, ...). `translate` maps both to the classes below, naming the IAM
action that was refused, the quota that was hit, or the bucket that is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from trainer_gui.core.errors import BackendUnavailable, UserError


class AwsError(UserError):
    """Any AWS problem shown to a user."""


class AwsCredentialsError(AwsError):
    """No credentials, expired ones, or ones AWS does not recognise."""


class AwsAccessDenied(AwsError):
    """The identity may not perform an action; `action` is the IAM action (s3:PutObject)."""

    def __init__(self, message: str, action: str) -> None:
        super().__init__(message)
        self.action = action


class AwsBucketMissing(AwsError):
    """The S3 bucket does not exist (or belongs to another account and region)."""


class AwsQuotaExceeded(AwsError):
    """A service quota (e.g. ml.g5.xlarge for training job usage) is used up."""

    def __init__(self, message: str, quota: str | None) -> None:
        super().__init__(message)
        self.quota = quota


class AwsThrottled(AwsError):
    """AWS kept refusing with a rate limit after botocore's adaptive retries."""


class AwsNetworkError(AwsError, BackendUnavailable):
    """AWS (or the configured endpoint) cannot be reached."""


class AwsUploadInterrupted(AwsNetworkError):
    """An upload stopped half way; what was sent is kept, and the next submit resumes."""


class ImageRegionError(AwsError):
    """A training image in another region than the job (SageMaker pulls only same-region ECR)."""


class AwsRequestInvalid(AwsError):
    """SageMaker or S3 rejected the request's content (ValidationException and friends)."""


CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "TokenRefreshRequired",
}
EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
ACCESS_DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "Forbidden",
}
THROTTLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
}

# IAM actions for operations whose name differs from the action (S3 mostly); every other
# operation's action is `<service prefix>:<operation name>`.
_S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "CreateBucket": "s3:CreateBucket",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
    "GetBucketLocation": "s3:GetBucketLocation",
}
_SERVICE_PREFIX = {"logs": "logs", "sagemaker": "sagemaker", "sts": "sts", "iam": "iam", "s3": "s3"}
_PERFORM_RE = re.compile(r"perform:?\s+([a-z0-9-]+:[A-Za-z0-9*]+)")
_QUOTA_RE = re.compile(r"'([^']+)'")


def iam_action(service: str, operation: str) -> str:
    if service == "s3" and operation in _S3_ACTIONS:
        return _S3_ACTIONS[operation]
    return f"{_SERVICE_PREFIX.get(service, service)}:{operation}"


def _code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _message(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")).strip()


def is_throttling(exc: BaseException) -> bool:
    return _code(exc) in THROTTLE_CODES


def is_network_error(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, BotoConnectionError | HTTPClientError)


def translate(exc: BaseException, doing: str = "", bucket: str | None = None) -> UserError:
    """One clear `UserError` for a botocore exception; anything else is returned wrapped."""
    from botocore import exceptions as bx

    lead = f"{doing}: " if doing else ""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, bx.ProfileNotFound):
        return AwsCredentialsError(
            f"{lead}the AWS profile {exc.kwargs.get('profile')!r} is not in your AWS config; "
            "pick one from `aws configure list-profiles` in the settings"
        )
    if isinstance(
        exc, bx.TokenRetrievalError | bx.SSOTokenLoadError | bx.UnauthorizedSSOTokenError
    ):
        return AwsCredentialsError(
            f"{lead}your AWS SSO session has expired or was never started; run "
            "`aws sso login` (with --profile NAME for a named profile) and try again"
        )
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return AwsCredentialsError(
            f"{lead}no AWS credentials found; set up a profile (`aws configure` or "
            "`aws configure sso`) and pick it in the AWS settings, or set AWS_PROFILE"
        )
    if isinstance(exc, bx.NoRegionError):
        return AwsError(f"{lead}no AWS region set; pick one in the AWS settings or the job")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        return AwsNetworkError(
            f"{lead}cannot reach AWS at {getattr(exc, 'kwargs', {}).get('endpoint_url', '?')} "
            "(no network, a proxy, or a wrong AWS_ENDPOINT_URL); check the connection and retry"
        )
    if isinstance(exc, bx.HTTPClientError):
        return AwsNetworkError(f"{lead}the connection to AWS broke ({exc}); retry")
    if isinstance(exc, bx.ClientError):
        return _client_error(exc, lead, bucket)
    if isinstance(exc, bx.BotoCoreError):
        return AwsError(f"{lead}{exc}")
    return AwsError(f"{lead}{exc!r}")


def _client_error(exc: Any, lead: str, bucket: str | None) -> UserError:
    code = _code(exc)
    message = _message(exc)
    operation = str(getattr(exc, "operation_name", "") or "")
    service = service_of(operation)
    detail = f" ({code}: {message})" if message else f" ({code})"
    if code in EXPIRED_CODES:
        return AwsCredentialsError(
            f"{lead}your AWS credentials have expired; refresh them (`aws sso login`, or new "
            f"keys for the profile) and try again{detail}"
        )
    if code in CREDENTIAL_CODES:
        return AwsCredentialsError(
            f"{lead}AWS does not accept these credentials; check the profile's keys or log in "
            f"again{detail}"
        )
    if code in ACCESS_DENIED_CODES or (
        getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") == 403
        and code not in THROTTLE_CODES
    ):
        match = _PERFORM_RE.search(message)
        action = match.group(1) if match else iam_action(service, operation)
        resource = f" on {bucket}" if bucket and action.startswith("s3:") else ""
        return AwsAccessDenied(
            f"{lead}access denied: your AWS identity may not perform {action}{resource}; ask an "
            f"administrator to allow {action} (for the execution role, also iam:PassRole){detail}",
            action,
        )
    if code in ("NoSuchBucket",):
        name = bucket or str(getattr(exc, "response", {}).get("Error", {}).get("BucketName", ""))
        return AwsBucketMissing(
            f"{lead}the S3 bucket {name!r} does not exist; create it or change the S3 prefix "
            "in the SageMaker settings (empty uses sagemaker-<region>-<account>)"
        )
    if code == "ResourceLimitExceeded":
        quota = _QUOTA_RE.search(message)
        quota_name = quota.group(1) if quota else None
        what = f"the quota {quota_name!r}" if quota_name else "a SageMaker quota"
        return AwsQuotaExceeded(
            f"{lead}{what} is used up; request an increase in the Service Quotas console "
            f"(service: Amazon SageMaker), or pick another instance type{detail}",
            quota_name,
        )
    if code in THROTTLE_CODES:
        return AwsThrottled(
            f"{lead}AWS is throttling requests even after retries; wait a minute and try "
            f"again{detail}"
        )
    if code in ("ValidationException", "InvalidRequest", "InvalidArgument", "MalformedXML"):
        return AwsRequestInvalid(f"{lead}AWS rejected the request: {message or code}")
    return AwsError(f"{lead}AWS error{detail}")


_LOGS_OPS = {"GetLogEvents", "DescribeLogStreams", "FilterLogEvents", "DescribeLogGroups"}


def service_of(operation: str) -> str:
    """Which of the services this app calls an operation belongs to (names do not overlap)."""
    if operation in _S3_ACTIONS:
        return "s3"
    if operation in _LOGS_OPS:
        return "logs"
    if operation in ("GetCallerIdentity", "AssumeRole"):
        return "sts"
    if operation in ("ListRoles", "GetRole"):
        return "iam"
    return "sagemaker"


@contextmanager
def aws_errors(doing: str = "", bucket: str | None = None) -> Iterator[None]:
    """Turn any botocore error raised inside into a `UserError` that says what failed."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("botocore") or type(exc).__module__.startswith("boto3"):
            raise translate(exc, doing, bucket) from exc
        raise
