"""PyTorch training image versions as the SageMaker SDK knows them (issue 16: they stopped at 2.8).

The expected URIs are what `sagemaker.core.image_uris.retrieve("pytorch", region, version,
py_version=..., instance_type=..., image_scope="training")` gives with sagemaker-core 2.27.0
(its image_uri_config/pytorch.json: 2.9.0 for py312, 2.10.0 for py313, me-west-1 from 2.8.0).
When the SDK is importable, every version it lists is compared with it directly.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

from trainer_gui.core.aws.errors import AwsError
from trainer_gui.core.aws.images import (
    DLC_ACCOUNTS,
    VERSION_ALIASES,
    VERSIONS,
    pytorch_training_image,
)


@pytest.mark.parametrize(
    ("version", "py", "region", "instance", "uri"),
    [
        (
            "2.9",
            "py312",
            "us-east-1",
            "ml.g5.xlarge",
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.9.0-gpu-py312",
        ),
        (
            "2.10",
            "py313",
            "eu-west-1",
            "ml.m5.xlarge",
            "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.10.0-cpu-py313",
        ),
        (
            "2.10.0",
            "py313",
            "me-west-1",
            "ml.p4d.24xlarge",
            "124382933778.dkr.ecr.me-west-1.amazonaws.com/pytorch-training:2.10.0-gpu-py313",
        ),
        (
            "2.8",
            "py312",
            "me-west-1",
            "ml.m5.xlarge",
            "124382933778.dkr.ecr.me-west-1.amazonaws.com/pytorch-training:2.8.0-cpu-py312",
        ),
    ],
)
def test_the_newest_versions_resolve_as_the_sdk_does(
    version: str, py: str, region: str, instance: str, uri: str
) -> None:
    assert pytorch_training_image(version, py, region, instance) == uri


def test_a_wrong_python_for_the_newest_version_names_the_right_one() -> None:
    with pytest.raises(AwsError, match="py313"):
        pytorch_training_image("2.10", "py312", "us-east-1", "ml.m5.xlarge")


def test_a_region_that_has_only_newer_images_says_so() -> None:
    with pytest.raises(AwsError, match="not published in me-west-1"):
        pytorch_training_image("2.5", "py311", "me-west-1", "ml.m5.xlarge")


def test_the_aliases_reach_the_newest_version() -> None:
    assert VERSION_ALIASES["2.10"] == "2.10.0" and "2.10.0" in VERSIONS
    newest = max(VERSIONS, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert newest == "2.10.0"


def _sdk_training_config() -> dict | None:
    try:
        files = resources.files("sagemaker.core.image_uri_config")
    except ModuleNotFoundError:
        return None
    data = json.loads(files.joinpath("pytorch.json").read_text())
    return dict(data["training"])


def test_every_version_the_installed_sdk_lists_matches() -> None:
    config = _sdk_training_config()
    if config is None:
        pytest.skip("sagemaker-core is not installed (pip install sagemaker-core to compare)")
    for version, entry in config["versions"].items():
        if version not in VERSIONS:
            assert tuple(int(p) for p in version.split(".")) < (1, 13), version
            continue
        assert set(entry["py_versions"]) == set(VERSIONS[version]), version
        for region, account in entry["registries"].items():
            if region in DLC_ACCOUNTS:
                py = VERSIONS[version][0]
                uri = pytorch_training_image(version, py, region, "ml.m5.xlarge")
                assert uri.startswith(f"{account}.dkr.ecr.{region}."), (version, region)
