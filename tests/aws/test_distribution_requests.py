"""CreateTrainingJob requests for SageMaker's distributions and heterogeneous clusters, field by
field, as the moto server received them (issue 17).

References: the SageMaker Python SDK V2 (`Framework._distribution_configuration`,
`fw_utils.validate_distribution`, `_Job._prepare_resource_config`), botocore's service model
(the request passes its validator: the fixture keeps parameter validation on), and, where an
SDK V2 interpreter is present (`make sdk-envs`), the request V2 itself sends for the same job.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sm_helpers import ROLE_ARN, create_sagemaker_role, make_spec, service

from trainer_gui.core import contract
from trainer_gui.core.errors import SpecError
from trainer_gui.core.spec.model import SMDDP_INSTANCE_TYPES

#: The latest SageMaker PyTorch image with smddp in it (the SDK's list ends at 2.2.0).
SMDDP_IMAGE = {"framework_version": "2.2", "py_version": "py310"}
GROUPS = [
    {"name": "trainers", "instance_type": "ml.p4d.24xlarge", "instance_count": 2},
    {"name": "data-loaders", "instance_type": "ml.c5.18xlarge", "instance_count": 3},
]


def _run(aws: Any, spec: Any) -> tuple[str, dict[str, Any]]:
    svc = service()
    handle = svc.submit(spec)
    assert handle.wait(30) is not None
    record = svc.get(handle.job_id)
    assert record.status == "Completed", record.failure_reason
    return handle.job_id, aws.requests[handle.job_id]


def _ours(spec: Any, job: str, hps: dict[str, str]) -> dict[str, str]:
    return contract.sagemaker_hyperparameters(
        spec, job, json.loads(hps["sagemaker_submit_directory"]), "us-east-1", cloud=True
    )


# -- smddp -----------------------------------------------------------------------------------


def test_smddp_sets_the_sdks_dataparallel_hyperparameters(aws: Any, project: Path) -> None:
    spec = make_spec(
        project,
        compute={"instance_type": "ml.p4d.24xlarge", "instance_count": 2},
        distribution={"kind": "smddp"},
        hyperparameters={"epochs": 1},
        sagemaker=SMDDP_IMAGE,
    )
    job, request = _run(aws, spec)
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.p4d.24xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 30,
    }
    hps = request["HyperParameters"]
    assert hps["sagemaker_distributed_dataparallel_enabled"] == "true"
    assert hps["sagemaker_instance_type"] == '"ml.p4d.24xlarge"'
    assert hps["sagemaker_distributed_dataparallel_custom_mpi_options"] == '""'
    # SageMaker's library, not torchrun: the toolkit picks its SMDataParallel runner.
    assert "sagemaker_torch_distributed_enabled" not in hps
    assert "sagemaker_distribution_instance_groups" not in hps
    assert hps["epochs"] == "1"
    assert hps == _ours(spec, job, hps)
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith(":2.2.0-gpu-py310")


def test_smddp_refuses_a_pytorch_image_without_the_library(aws: Any, project: Path) -> None:
    spec = make_spec(
        project, compute={"instance_type": "ml.p4d.24xlarge"}, distribution={"kind": "smddp"}
    )
    svc = service()
    handle = svc.submit(spec)
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Failed"
    assert "smddp" in (record.failure_reason or "") and "2.5.1" in (record.failure_reason or "")
    assert aws.requests == {}  # refused before anything was sent


@pytest.mark.parametrize("instance_type", SMDDP_INSTANCE_TYPES)
def test_smddp_accepts_every_type_the_sdk_supports(project: Path, instance_type: str) -> None:
    spec = make_spec(
        project, compute={"instance_type": instance_type}, distribution={"kind": "smddp"}
    )
    assert spec.distribution.kind == "smddp"


@pytest.mark.parametrize("instance_type", ["ml.g5.12xlarge", "ml.p5.48xlarge", "ml.m5.xlarge"])
def test_smddp_refuses_types_the_library_does_not_run_on(project: Path, instance_type: str) -> None:
    with pytest.raises(SpecError) as err:
        make_spec(project, compute={"instance_type": instance_type}, distribution={"kind": "smddp"})
    message = str(err.value)
    assert instance_type in message and "smddp" in message
    assert "ml.p4d.24xlarge" in message  # names what would do


def test_smddp_locally_is_torchrun_with_a_note(project: Path) -> None:
    """The local hyperparameters.json asks the toolkit for torchrun (the library is not here)."""
    spec = make_spec(
        project,
        compute={"backend": "docker", "instance_type": "ml.m5.xlarge", "instance_count": 2},
        distribution={"kind": "smddp"},
    )
    local = contract.sagemaker_hyperparameters(spec, "j")
    assert local["sagemaker_torch_distributed_enabled"] == "true"
    assert "sagemaker_distributed_dataparallel_enabled" not in local
    assert "torchrun" in contract.SMDDP_LOCAL_NOTE and "\n" not in contract.SMDDP_LOCAL_NOTE


# -- heterogeneous clusters ------------------------------------------------------------------


def test_instance_groups_replace_the_top_level_type_and_count(aws: Any, project: Path) -> None:
    spec = make_spec(
        project,
        compute={"instance_groups": GROUPS, "volume_size_gb": 50},
        distribution={"kind": "smddp", "instance_groups": ["trainers"]},
        sagemaker=SMDDP_IMAGE,
    )
    job, request = _run(aws, spec)
    assert request["ResourceConfig"] == {
        "VolumeSizeInGB": 50,
        "InstanceGroups": [
            {"InstanceGroupName": "trainers", "InstanceType": "ml.p4d.24xlarge",
             "InstanceCount": 2},
            {"InstanceGroupName": "data-loaders", "InstanceType": "ml.c5.18xlarge",
             "InstanceCount": 3},
        ],
    }  # fmt: skip
    hps = request["HyperParameters"]
    assert hps["sagemaker_distribution_instance_groups"] == '["trainers"]'
    assert hps["sagemaker_distributed_dataparallel_enabled"] == "true"
    # V2 has no top-level type with groups: null, and the toolkit takes the host's own type.
    assert hps["sagemaker_instance_type"] == "null"
    assert hps == _ours(spec, job, hps)
    # The first GPU group's type picks the image, as the SDK's `_get_instance_type` does.
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith("-gpu-py310")
    # The job's hosts: algo-1..5 across the groups.
    assert contract.host_names(spec) == [f"algo-{i}" for i in range(1, 6)]
    described = aws.client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["ResourceConfig"]["InstanceGroups"][1]["InstanceCount"] == 3


def test_torchrun_in_one_group_names_it(aws: Any, project: Path) -> None:
    groups = [
        {"name": "gpu", "instance_type": "ml.g5.xlarge", "instance_count": 2},
        {"name": "cpu", "instance_type": "ml.m5.xlarge", "instance_count": 1},
    ]
    spec = make_spec(
        project,
        compute={"instance_groups": groups},
        distribution={"kind": "torchrun", "instance_groups": ["gpu"]},
    )
    job, request = _run(aws, spec)
    hps = request["HyperParameters"]
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    assert hps["sagemaker_distribution_instance_groups"] == '["gpu"]'
    assert "sagemaker_instance_type" not in hps  # V2's torch_distributed sets none with groups
    assert hps == _ours(spec, job, hps)


def test_a_single_group_runs_the_distribution_without_naming_it(project: Path) -> None:
    spec = make_spec(
        project,
        compute={"instance_groups": [GROUPS[0]]},
        distribution={"kind": "smddp"},
    )
    hps = contract.sagemaker_hyperparameters(spec, "j", cloud=True)
    assert hps["sagemaker_distribution_instance_groups"] == '["trainers"]'


def test_no_distribution_sends_no_distribution_groups(aws: Any, project: Path) -> None:
    spec = make_spec(project, compute={"instance_groups": GROUPS})
    _, request = _run(aws, spec)
    assert "InstanceType" not in request["ResourceConfig"]
    assert not any("distribut" in key for key in request["HyperParameters"])


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"compute": {"instance_count": 2, "instance_groups": GROUPS}}, "exclude each other"),
        ({"compute": {"instance_groups": [GROUPS[0], GROUPS[0]]}}, "used twice"),
        (
            {"compute": {"instance_groups": [{**GROUPS[0], "name": f"g{i}"} for i in range(6)]}},
            "at most 5",
        ),
        (
            {"compute": {"instance_groups": [{**GROUPS[0], "name": "x" * 65}]}},
            "1-64 characters",
        ),
        (
            {"compute": {"instance_groups": [{**GROUPS[0], "instance_type": "ml.p4d.24xlargе"}]}},
            "instance_type",
        ),
        (
            {"compute": {"instance_groups": [{**GROUPS[0], "instance_type": "ml.p9.huge"}]}},
            "not a SageMaker training instance type",
        ),
        (
            {"compute": {"instance_groups": [{**GROUPS[0], "instance_count": 101}]}},
            "instance_count",
        ),
        (
            {"compute": {"instance_groups": GROUPS}, "distribution": {"kind": "smddp"}},
            "name the one group",
        ),
        (
            {
                "compute": {"instance_groups": GROUPS},
                "distribution": {"kind": "smddp", "instance_groups": ["trainers", "data-loaders"]},
            },
            "name the one group",
        ),
        (
            {
                "compute": {"instance_groups": GROUPS},
                "distribution": {"kind": "torchrun", "instance_groups": ["nope"]},
            },
            "'nope' is not one of",
        ),
        (
            {
                "compute": {"instance_groups": GROUPS},
                "distribution": {"instance_groups": ["trainers"]},
            },
            "only applies to a distribution",
        ),
        (
            {
                "compute": {"instance_groups": GROUPS},
                "distribution": {"kind": "smddp", "instance_groups": ["data-loaders"]},
            },
            "does not run on ml.c5.18xlarge",
        ),
        (
            {"compute": {"backend": "local-process", "instance_groups": GROUPS}},
            "local-process backend runs one host",
        ),
    ],
)
def test_bad_instance_groups_are_refused_with_a_clear_message(
    project: Path, over: dict[str, Any], words: str
) -> None:
    with pytest.raises(SpecError) as err:
        make_spec(project, **over)
    assert words in str(err.value)


# -- the same job built by SDK V2 ------------------------------------------------------------

V2_PROGRAM = """
import json, sagemaker
from sagemaker.instance_group import InstanceGroup
from sagemaker.pytorch import PyTorch
session = sagemaker.Session(default_bucket="sagemaker-us-east-1-123456789012")
groups = [InstanceGroup("trainers", "ml.p4d.24xlarge", 2),
          InstanceGroup("data-loaders", "ml.c5.18xlarge", 3)]
est = PyTorch(entry_point="train.py", source_dir="code", role=ROLE, framework_version="2.2.0",
              py_version="py310", instance_groups=groups, volume_size=30,
              sagemaker_session=session, disable_profiler=True,
              distribution={"smdistributed": {"dataparallel": {"enabled": True}},
                            "instance_groups": [groups[0]]})
est.fit(wait=False, logs=False)
"""


def test_sdk_v2_sends_the_same_groups_and_smddp_keys(aws: Any, project: Path) -> None:
    from sdk_envs import run_sdk

    aws.client("s3").create_bucket(Bucket="sagemaker-us-east-1-123456789012")
    before = set(aws.requests)
    run_sdk(2, textwrap.dedent(V2_PROGRAM).replace("ROLE", repr(ROLE_ARN)), cwd=project)
    sent = next(aws.requests[n] for n in aws.requests if n not in before)
    spec = make_spec(
        project,
        compute={"instance_groups": GROUPS},
        distribution={"kind": "smddp", "instance_groups": ["trainers"]},
        sagemaker=SMDDP_IMAGE,
    )
    _, ours = _run(aws, spec)
    assert sent["ResourceConfig"] == ours["ResourceConfig"]
    theirs = sent["HyperParameters"]
    mine = ours["HyperParameters"]
    for key in (
        "sagemaker_distributed_dataparallel_enabled",
        "sagemaker_distributed_dataparallel_custom_mpi_options",
        "sagemaker_distribution_instance_groups",
        "sagemaker_instance_type",
    ):
        assert theirs.get(key) == mine.get(key), key
    assert {k for k in theirs if k.startswith("sagemaker_")} == {
        k for k in mine if k.startswith("sagemaker_")
    }
    assert (
        sent["AlgorithmSpecification"]["TrainingImage"]
        == (ours["AlgorithmSpecification"]["TrainingImage"])
    )


V2_TORCHRUN = """
import sagemaker
from sagemaker.instance_group import InstanceGroup
from sagemaker.pytorch import PyTorch
session = sagemaker.Session(default_bucket="sagemaker-us-east-1-123456789012")
groups = [InstanceGroup("gpu", "ml.g5.xlarge", 2), InstanceGroup("cpu", "ml.m5.xlarge", 1)]
est = PyTorch(entry_point="train.py", source_dir="code", role=ROLE, framework_version="2.5.1",
              py_version="py311", instance_groups=groups, volume_size=30,
              sagemaker_session=session, disable_profiler=True,
              distribution={"torch_distributed": {"enabled": True}, "instance_groups": [groups[0]]})
est.fit(wait=False, logs=False)
"""


def test_torchrun_groups_differ_from_sdk_v2_only_by_naming_the_group(
    aws: Any, project: Path
) -> None:
    """V2 drops `instance_groups` from a torch_distributed distribution (every group would then
    run torchrun on its own); the app sends sagemaker_distribution_instance_groups, and nothing
    else differs."""
    from sdk_envs import run_sdk

    aws.client("s3").create_bucket(Bucket="sagemaker-us-east-1-123456789012")
    before = set(aws.requests)
    run_sdk(2, textwrap.dedent(V2_TORCHRUN).replace("ROLE", repr(ROLE_ARN)), cwd=project)
    sent = next(aws.requests[n] for n in aws.requests if n not in before)
    groups = [
        {"name": "gpu", "instance_type": "ml.g5.xlarge", "instance_count": 2},
        {"name": "cpu", "instance_type": "ml.m5.xlarge", "instance_count": 1},
    ]
    spec = make_spec(
        project,
        compute={"instance_groups": groups},
        distribution={"kind": "torchrun", "instance_groups": ["gpu"]},
    )
    _, ours = _run(aws, spec)
    assert sent["ResourceConfig"] == ours["ResourceConfig"]
    assert (
        sent["AlgorithmSpecification"]["TrainingImage"]
        == (ours["AlgorithmSpecification"]["TrainingImage"])
    )
    theirs = {k: v for k, v in sent["HyperParameters"].items() if k.startswith("sagemaker_")}
    mine = {k: v for k, v in ours["HyperParameters"].items() if k.startswith("sagemaker_")}
    assert mine.pop("sagemaker_distribution_instance_groups") == '["gpu"]'
    assert set(theirs) == set(mine)
    assert (
        theirs["sagemaker_torch_distributed_enabled"] == mine["sagemaker_torch_distributed_enabled"]
    )


# -- the exports, run by the real SDKs -------------------------------------------------------


def _exported_request(aws: Any, project: Path, spec: Any, fmt: str, image: str) -> dict[str, Any]:
    """Run the app's export of `spec` with SDK V2 or V3 against moto; the request it sent."""
    from sdk_envs import run_sdk

    from trainer_gui.core.aws import export
    from trainer_gui.core.aws.request import plan_locations

    aws.client("s3").create_bucket(Bucket="sagemaker-us-east-1-123456789012")
    create_sagemaker_role(aws)
    plan = plan_locations(
        spec, "x", "us-east-1", ROLE_ARN, image, True, "s3://sagemaker-us-east-1-123456789012"
    )
    code = export.export_code(spec, plan, fmt).replace(
        "wait=True, logs=True)", "wait=False, logs=False)"
    )
    before = set(aws.requests)
    run_sdk(2 if fmt == "v2" else 3, code, cwd=project)
    new = [aws.requests[n] for n in aws.requests if n not in before]
    assert len(new) == 1, new
    return new[0]


def _sagemaker_keys(hps: dict[str, str]) -> dict[str, str]:
    skip = {"sagemaker_job_name", "sagemaker_submit_directory", "sagemaker_region"}
    return {k: v for k, v in hps.items() if k.startswith("sagemaker_") and k not in skip}


@pytest.mark.parametrize("kind", ["torchrun", "smddp"])
def test_the_v2_export_sends_the_apps_groups_and_distribution(
    aws: Any, project: Path, kind: str
) -> None:
    smddp = kind == "smddp"
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:" + (
        "2.2.0-gpu-py310" if smddp else "2.5.1-gpu-py311"
    )
    groups = GROUPS if smddp else [{**GROUPS[0], "instance_type": "ml.g5.xlarge"}, GROUPS[1]]
    spec = make_spec(
        project,
        compute={"instance_groups": groups},
        distribution={"kind": kind, "instance_groups": ["trainers"], "processes_per_host": 4},
        sagemaker=SMDDP_IMAGE if smddp else {},
    )
    sent = _exported_request(aws, project, spec, "v2", image)
    _, ours = _run(aws, spec)
    assert sent["ResourceConfig"] == ours["ResourceConfig"]
    assert _sagemaker_keys(sent["HyperParameters"]) == _sagemaker_keys(ours["HyperParameters"])


def test_the_v3_export_sends_the_apps_instance_groups(aws: Any, project: Path) -> None:
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-gpu-py311"
    groups = [{**GROUPS[0], "instance_type": "ml.g5.xlarge"}, GROUPS[1]]
    spec = make_spec(project, compute={"instance_groups": groups, "volume_size_gb": 40})
    sent = _exported_request(aws, project, spec, "v3", image)
    _, ours = _run(aws, spec)
    assert sent["ResourceConfig"] == ours["ResourceConfig"]


# -- import ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["smddp", "torchrun"])
def test_an_imported_job_keeps_its_groups_and_distribution(
    aws: Any, project: Path, kind: str
) -> None:
    from trainer_gui.core.aws.remote_jobs import spec_from_description
    from trainer_gui.core.spec import spec_from_dict

    smddp = kind == "smddp"
    groups = GROUPS if smddp else [{**GROUPS[0], "instance_type": "ml.g5.xlarge"}, GROUPS[1]]
    spec = make_spec(
        project,
        compute={"instance_groups": groups},
        distribution={"kind": kind, "instance_groups": ["trainers"], "processes_per_host": 2},
        sagemaker=SMDDP_IMAGE if smddp else {},
    )
    job, _ = _run(aws, spec)
    desc = aws.client("sagemaker").describe_training_job(TrainingJobName=job)
    imported = spec_from_dict(spec_from_description(desc, "us-east-1"))
    assert imported.compute.instance_groups == spec.compute.instance_groups
    assert imported.compute.host_count == 5
    assert imported.distribution.kind == kind
    assert imported.distribution.instance_groups == ["trainers"]
    assert imported.distribution.processes_per_host == 2


def test_a_v2_torch_distributed_import_names_its_first_gpu_group(project: Path) -> None:
    """V2 leaves the group out for torch_distributed; the import names the first GPU group."""
    from trainer_gui.core.aws.remote_jobs import spec_from_description
    from trainer_gui.core.spec import spec_from_dict

    desc = {
        "TrainingJobName": "v2-hetero",
        "RoleArn": ROLE_ARN,
        "AlgorithmSpecification": {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
            "pytorch-training:2.5.1-gpu-py311",
            "TrainingInputMode": "File",
        },
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://b/v2-hetero/source/sourcedir.tar.gz"',
            "sagemaker_torch_distributed_enabled": "true",
        },
        "ResourceConfig": {
            "VolumeSizeInGB": 30,
            "InstanceGroups": [
                {"InstanceGroupName": "cpu", "InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
                {"InstanceGroupName": "gpu", "InstanceType": "ml.g5.xlarge", "InstanceCount": 2},
            ],
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    imported = spec_from_dict(spec_from_description(desc, "us-east-1"))
    assert [g.name for g in imported.compute.instance_groups] == ["cpu", "gpu"]
    assert imported.distribution.kind == "torchrun"
    assert imported.distribution.instance_groups == ["gpu"]
