"""Which container image a SageMaker job runs, and in which launch mode.

No image in the spec: the SageMaker PyTorch training image (Deep Learning Container) for the
spec's framework and Python versions, the job's region, and CPU or GPU from the instance type,
resolved exactly like the SageMaker Python SDK's `image_uris.retrieve("pytorch", ...)`:
`<account>.dkr.ecr.<region>.<dns suffix>/pytorch-training:<version>-<cpu|gpu>-<pyXY>`.
The accounts and versions below come from the SDK's `image_uri_config/pytorch.json`
(aws/sagemaker-python-sdk, sagemaker-core 2.27.0 on PyPI, training scope: versions up to 2.10.0;
the isolated and sovereign partitions' regions are left out).

A custom image URI is used as it is. SageMaker pulls only from ECR in the job's own region, so
an ECR URI of another region is refused before anything is uploaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trainer_gui.core.aws.errors import AwsError, ImageRegionError

REPOSITORY = "pytorch-training"

# region -> account of the PyTorch training DLC registry (SageMaker SDK pytorch.json).
DLC_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "763104351884",
    "ap-south-2": "772153158452",
    "ap-southeast-1": "763104351884",
    "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437",
    "ca-central-1": "763104351884",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-1": "763104351884",
    "eu-central-2": "380420809688",
    "eu-north-1": "763104351884",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-west-1": "763104351884",
    "eu-west-2": "763104351884",
    "eu-west-3": "763104351884",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "me-west-1": "124382933778",
    "mx-central-1": "637423239942",
    "sa-east-1": "763104351884",
    "us-east-1": "763104351884",
    "us-east-2": "763104351884",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
    "us-west-1": "763104351884",
    "us-west-2": "763104351884",
}

# Full framework version -> the Python versions its training image exists for.
VERSIONS: dict[str, tuple[str, ...]] = {
    "1.13.1": ("py39",),
    "2.0.0": ("py310",),
    "2.0.1": ("py310",),
    "2.1.0": ("py310",),
    "2.2.0": ("py310",),
    "2.3.0": ("py311",),
    "2.4.0": ("py311",),
    "2.5.1": ("py311",),
    "2.6.0": ("py312",),
    "2.7.1": ("py312",),
    "2.8.0": ("py312",),
    "2.9.0": ("py312",),
    "2.10.0": ("py313",),
}
# Regions whose registry has the image only from a version on (the SDK lists them per version).
REGION_SINCE: dict[str, str] = {"me-west-1": "2.8.0"}
# What "2.5" means, as in the SDK's version_aliases.
VERSION_ALIASES: dict[str, str] = {
    "1.13": "1.13.1",
    "2.0": "2.0.1",
    "2.1": "2.1.0",
    "2.2": "2.2.0",
    "2.3": "2.3.0",
    "2.4": "2.4.0",
    "2.5": "2.5.1",
    "2.6": "2.6.0",
    "2.7": "2.7.1",
    "2.8": "2.8.0",
    "2.9": "2.9.0",
    "2.10": "2.10.0",
}

ECR_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.amazonaws\.com(?:\.cn)?/(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?$"
)
DLC_TAG_RE = re.compile(r"^(?P<version>\d+\.\d+(?:\.\d+)?)-(?P<processor>cpu|gpu)-(?P<py>py\d+)")


def dns_suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def processor(instance_type: str) -> str:
    """The SDK's rule: ml.g*/ml.p* families are GPU, everything else CPU."""
    parts = instance_type.split(".")
    family = parts[1] if len(parts) >= 2 else ""
    return "gpu" if family[:1] in ("g", "p") else "cpu"


def full_version(version: str) -> str:
    if version in VERSIONS:
        return version
    if version in VERSION_ALIASES:
        return VERSION_ALIASES[version]
    known = ", ".join(sorted(VERSION_ALIASES, key=_version_key))
    raise AwsError(
        f"there is no SageMaker PyTorch training image for PyTorch {version}; pick one of "
        f"{known}, or give a custom image URI"
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def pytorch_training_image(
    framework_version: str, py_version: str, region: str, instance_type: str
) -> str:
    """The DLC URI the SageMaker SDK would pick (see the module doc)."""
    version = full_version(framework_version)
    pys = VERSIONS[version]
    if py_version not in pys:
        raise AwsError(
            f"the SageMaker PyTorch {version} training image exists for {', '.join(pys)}, not "
            f"{py_version}; set sagemaker.py_version to {pys[0]}"
        )
    account = DLC_ACCOUNTS.get(region)
    since = REGION_SINCE.get(region)
    if account is not None and since is not None and _version_key(version) < _version_key(since):
        raise AwsError(
            f"the SageMaker PyTorch {version} training image is not published in {region} "
            f"(from PyTorch {since} on); pick a newer framework_version or another region"
        )
    if account is None:
        raise AwsError(
            f"no SageMaker PyTorch training image is published in {region}; pick another "
            "region or give a custom image URI"
        )
    tag = f"{version}-{processor(instance_type)}-{py_version}"
    return f"{account}.dkr.ecr.{region}.{dns_suffix(region)}/{REPOSITORY}:{tag}"


@dataclass(frozen=True)
class EcrImage:
    account: str
    region: str
    repository: str
    tag: str | None


def parse_ecr(uri: str) -> EcrImage | None:
    match = ECR_RE.match(uri)
    if not match:
        return None
    return EcrImage(match["account"], match["region"], match["repo"], match["tag"])


def is_toolkit_image(uri: str) -> bool:
    """AWS framework training images carry the SageMaker training toolkit (`train` works).

    Recognised by registry and repository: a DLC account's `*-training` repository. Any other
    image runs the app's stdlib driver (launch mode b), which works in every image with Python.
    """
    ecr = parse_ecr(uri)
    if ecr is None:
        return False
    return ecr.account in set(DLC_ACCOUNTS.values()) and ecr.repository.endswith("-training")


def check_image_region(uri: str, region: str) -> None:
    ecr = parse_ecr(uri)
    if ecr is not None and ecr.region != region:
        raise ImageRegionError(
            f"the image {uri} is in {ecr.region} but the job runs in {region}; SageMaker pulls "
            f"images only from ECR in the job's region: copy the image to {region} (or use that "
            f"registry's {region} URI), or run the job in {ecr.region}"
        )


def check_image_usable(uri: str) -> None:
    """SageMaker training pulls from Amazon ECR; a local or Docker Hub name cannot work there."""
    if parse_ecr(uri) is None:
        raise AwsError(
            f"the image {uri!r} is not an Amazon ECR image URI "
            "(<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>); SageMaker pulls "
            "training images from ECR: push it there and give that URI, or leave the image "
            "empty for the SageMaker PyTorch image"
        )


def resolve_image(
    image: str | None, framework_version: str, py_version: str, region: str, instance_type: str
) -> tuple[str, bool]:
    """(image URI, whether it has the training toolkit) for a job in `region`."""
    if image:
        check_image_usable(image)
        check_image_region(image, region)
        return image, is_toolkit_image(image)
    return pytorch_training_image(framework_version, py_version, region, instance_type), True


def versions_from_image(uri: str) -> tuple[str, str] | None:
    """(framework version, py version) of a PyTorch DLC URI, for importing jobs."""
    ecr = parse_ecr(uri)
    if ecr is None or ecr.repository != REPOSITORY or not ecr.tag:
        return None
    match = DLC_TAG_RE.match(ecr.tag)
    if not match:
        return None
    return match["version"], match["py"]
