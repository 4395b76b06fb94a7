"""AWS sessions from boto3's standard credential chain, and nothing else.

Credentials come from wherever boto3 finds them (environment, the named profile in the AWS
config, SSO, container and instance roles) and stay in memory: nothing here ever writes them.
Endpoints are botocore's business too: `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>` and the
config file's `endpoint_url`/`services` settings apply because no client is ever created with an
`endpoint_url` of ours. Every client retries in botocore's adaptive mode (client-side rate
limiting on throttling errors).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer_gui.core.aws.errors import (
    AwsAccessDenied,
    AwsCredentialsError,
    AwsError,
    aws_errors,
    translate,
)

if TYPE_CHECKING:
    import boto3

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 10
SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"


def max_attempts() -> int:
    """Attempts per call, first one included (`TRAINER_GUI_AWS_MAX_ATTEMPTS` overrides)."""
    try:
        return max(1, int(os.environ.get("TRAINER_GUI_AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)))
    except ValueError:
        return DEFAULT_MAX_ATTEMPTS


def client_config(attempts: int | None = None, **extra: Any) -> Any:
    """Adaptive retries (`attempts` per call, default `max_attempts()`) and our timeouts."""
    from botocore.config import Config

    options: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60}
    options.update(extra)
    return Config(
        retries={"mode": "adaptive", "total_max_attempts": attempts or max_attempts()},
        user_agent_extra="trainer-gui",
        **options,
    )


_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def _shared_loader() -> Any:
    """One botocore data loader for every session: service models are parsed once per process
    (a SageMaker model takes ~0.2 s), not once per profile/region."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            from botocore.loaders import create_loader

            _LOADER = create_loader()
        return _LOADER


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    user_id: str


class AwsSession:
    """One profile + region. Thread-safe: clients are created once under a lock and shared.

    Everything in the app that talks to AWS gets its clients here. `attempts` and the timeouts
    are for quick checks (the status bar's probe) that must answer soon rather than retry long.
    """

    def __init__(
        self,
        profile: str | None = None,
        region: str | None = None,
        *,
        attempts: int | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self.profile = profile or None
        self._region = region or None
        self._config: dict[str, Any] = {"attempts": attempts}
        if connect_timeout is not None:
            self._config["connect_timeout"] = connect_timeout
        if read_timeout is not None:
            self._config["read_timeout"] = read_timeout
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}
        self._identity: Identity | None = None

    @classmethod
    def from_settings(
        cls, profile: str | None = None, region: str | None = None, **options: Any
    ) -> AwsSession:
        """The app's session: the profile and region given, else those of the AWS settings.

        A profile given without a region takes that profile's own region (from the AWS config),
        not the settings' one, which belongs to the settings' profile.
        """
        from trainer_gui.core.aws.defaults import load_aws_defaults

        saved = load_aws_defaults()
        chosen_profile = profile if profile is not None else saved.profile
        chosen_region = region or (saved.region if profile is None else None)
        return cls(chosen_profile, chosen_region, **options)

    @property
    def boto(self) -> boto3.Session:
        with self._lock:
            if self._session is None:
                import boto3
                import botocore.session

                with aws_errors("opening the AWS session"):
                    core = botocore.session.Session(profile=self.profile)
                    core.register_component("data_loader", _shared_loader())
                    self._session = boto3.Session(botocore_session=core, region_name=self._region)
            return self._session

    @property
    def region(self) -> str:
        region = self._region or self.boto.region_name
        if not region:
            raise AwsError(
                "no AWS region: set one in the AWS settings or the job (sagemaker.region), "
                "or in your AWS config"
            )
        return region

    def client(self, service: str) -> Any:
        session = self.boto
        region = self.region
        with self._lock:
            if service not in self._clients:
                with aws_errors(f"creating the {service} client"):
                    self._clients[service] = session.client(
                        service, region_name=region, config=client_config(**self._config)
                    )
            return self._clients[service]

    def identity(self) -> Identity:
        """Who the credentials belong to; the cheapest call that proves they work."""
        if self._identity is None:
            try:
                with aws_errors("checking your AWS credentials"):
                    out = self.client("sts").get_caller_identity()
            except AwsCredentialsError as exc:
                if self.profile and "no AWS credentials" in str(exc):
                    # boto3 reads no environment keys once a profile is named: say so.
                    raise AwsCredentialsError(
                        f"{exc} (the profile {self.profile!r} has no credentials of its own; "
                        "keys in the environment are only used with the default credential "
                        "chain)"
                    ) from exc
                raise
            self._identity = Identity(out["Account"], out["Arn"], out["UserId"])
        return self._identity

    @property
    def account(self) -> str:
        return self.identity().account

    def default_bucket(self) -> str:
        """The SageMaker SDK's default bucket name: sagemaker-<region>-<account>."""
        return f"sagemaker-{self.region}-{self.account}"

    def ensure_default_bucket(self) -> str:
        """Create the default bucket if it is missing, as the SageMaker SDK does."""
        from botocore.exceptions import ClientError

        bucket = self.default_bucket()
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=bucket)
            return bucket
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise translate(exc, f"checking the bucket {bucket}", bucket) from exc
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise translate(exc, f"creating the default bucket {bucket}", bucket) from exc
        return bucket

    def check_bucket(self, bucket: str) -> None:
        """A clear error now for a bucket that is missing or not ours, not half way through."""
        from botocore.exceptions import ClientError

        try:
            self.client("s3").head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                exc.response.setdefault("Error", {})["Code"] = "NoSuchBucket"
            if code == "403":
                exc.response.setdefault("Error", {})["Code"] = "AccessDenied"
            raise translate(exc, f"checking the bucket {bucket}", bucket) from exc
        except Exception as exc:
            raise translate(exc, f"checking the bucket {bucket}", bucket) from exc

    def list_execution_roles(self) -> list[str]:
        """ARNs of roles SageMaker may assume; `AwsAccessDenied` when listing is not allowed."""
        from urllib.parse import unquote

        roles: list[str] = []
        with aws_errors("listing IAM roles"):
            paginator = self.client("iam").get_paginator("list_roles")
            for page in paginator.paginate():
                for role in page.get("Roles", []):
                    doc = role.get("AssumeRolePolicyDocument") or {}
                    if isinstance(doc, str):
                        import json

                        doc = json.loads(unquote(doc))
                    if _trusts_sagemaker(doc):
                        roles.append(role["Arn"])
        return sorted(roles)


def _trusts_sagemaker(doc: dict[str, Any]) -> bool:
    for statement in doc.get("Statement", []) or []:
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        if isinstance(services, str):
            services = [services]
        if SAGEMAKER_PRINCIPAL in services and statement.get("Effect", "Allow") == "Allow":
            return True
    return False


def list_profiles() -> list[str]:
    """Named profiles in the user's AWS config and credentials files (names only)."""
    try:
        return sorted(AwsSession().boto.available_profiles)
    except AwsError:
        raise
    except Exception as exc:  # a broken config file
        raise translate(exc, "reading your AWS config") from exc


def list_regions() -> list[str]:
    """Regions where SageMaker is offered (from botocore's bundled endpoint data, no network)."""
    return sorted(AwsSession().boto.get_available_regions("sagemaker"))


def default_region(profile: str | None = None) -> str | None:
    """The region boto3 would pick for a profile (AWS_REGION, AWS_DEFAULT_REGION, config)."""
    try:
        return AwsSession(profile).boto.region_name
    except Exception as exc:  # an unknown profile or a broken config: no region to offer
        log.debug("no default region for the profile %s: %s", profile, exc)
        return None


def list_execution_roles(profile: str | None = None, region: str | None = None) -> list[str] | None:
    """Roles for the picker, or None when this identity may not list roles (type an ARN)."""
    try:
        return AwsSession(profile, region).list_execution_roles()
    except AwsAccessDenied:
        return None


__all__ = [
    "AwsSession",
    "Identity",
    "client_config",
    "default_region",
    "list_execution_roles",
    "list_profiles",
    "list_regions",
]
