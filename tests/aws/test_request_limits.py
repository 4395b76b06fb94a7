"""Issue 16, "SageMaker requests": what CreateTrainingJob refuses is refused when the spec is
validated (`trainer-gui spec validate`), and again before anything is uploaded.

The reference is botocore's SageMaker service model, the service's own statement of its limits:
a request built from a spec that validates satisfies every min/max/pattern/enum there, and each
refused spec breaks one of them.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sm_helpers import BUCKET, make_spec, service

from trainer_gui.cli.main import main
from trainer_gui.core.aws.request import build_request, plan_locations
from trainer_gui.core.errors import SpecError, UserError
from trainer_gui.core.spec import limits, model, spec_from_dict, spec_to_dict

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311"


def _input_shape() -> Any:
    import botocore.session

    sm = botocore.session.get_session().get_service_model("sagemaker")
    return sm.operation_model("CreateTrainingJob").input_shape


def violations(value: Any, shape: Any, where: str = "") -> list[str]:
    """Every constraint of the service model that `value` breaks (a generic walk)."""
    out: list[str] = []
    meta = shape.metadata
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                out += violations(value[name], member, f"{where}.{name}")
        return out
    if shape.type_name in ("list", "map"):
        if not meta.get("min", 0) <= len(value) <= meta.get("max", 10**9):
            out.append(f"{where}: {len(value)} items")
        if shape.type_name == "list":
            for i, item in enumerate(value):
                out += violations(item, shape.member, f"{where}[{i}]")
        else:
            for key, item in value.items():
                out += violations(key, shape.key, f"{where} key {key!r}")
                out += violations(item, shape.value, f"{where}[{key!r}]")
        return out
    if shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            out.append(f"{where}: {value!r} not in the enum")
        if not meta.get("min", 0) <= len(value) <= meta.get("max", 10**9):
            out.append(f"{where}: {len(value)} characters")
        if meta.get("pattern") and not limits.matches(meta["pattern"], value):
            out.append(f"{where}: {value!r} does not match {meta['pattern']}")
    return out


def _request(spec: Any) -> dict[str, Any]:
    role = "arn:aws:iam::123456789012:role/SageMakerRole"
    image = spec.image or IMAGE
    plan = plan_locations(spec, "job-1", "us-east-1", role, image, True, f"s3://{BUCKET}")
    return build_request(spec, plan)


def _bypassed(project: Path, **over: Any) -> dict[str, Any]:
    """The request a spec would give without the app's checks (limits switched off)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(limits, "tag_problems", lambda tags: [])
        mp.setattr(limits, "instance_type_problem", lambda kind: None)
        mp.setattr(limits, "max_image_uri", lambda: 10**6)
        mp.setattr(limits, "max_hyperparameters", lambda: 10**6)
        spec = make_spec(project, **over)
        return _request(spec)


HPS_96 = {"hyperparameters": {f"k{i}": i for i in range(92)}}  # + make_spec's 4
BAD = {
    "96 hyperparameters become 101": (HPS_96, "hyperparameters", "make 101"),
    "a tag key AWS refuses": (
        {"sagemaker": {"tags": {"team#1": "x"}}},
        "sagemaker.tags",
        "'#' is not allowed",
    ),
    "a tag value AWS refuses": (
        {"sagemaker": {"tags": {"team": "a;b"}}},
        "sagemaker.tags",
        "';' is not allowed",
    ),
    "not a training instance type": (
        {"compute": {"backend": "sagemaker", "instance_type": "ml.m5.xlarg"}},
        "compute.instance_type",
        "did you mean ml.m5.xlarge",
    ),
    "an image URI over 255 characters": (
        {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/" + "x" * 220 + ":1"},
        "image",
        "at most 255",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_what_the_service_refuses_is_refused_by_validation(project: Path, case: str) -> None:
    over, field, text = BAD[case]
    # The reference: without the checks, the request breaks the service model.
    assert violations(_bypassed(project, **over), _input_shape())
    with pytest.raises(SpecError) as info:
        make_spec(project, **over)
    (line,) = info.value.problems
    assert line.startswith(field + ":") and text in line, line


@pytest.mark.parametrize("case", sorted(BAD))
def test_spec_validate_reports_it(project: Path, case: str) -> None:
    over, field, text = BAD[case]
    data = spec_to_dict(make_spec(project))
    for key, value in over.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    path = project / "job.yaml"
    path.write_text(json.dumps(data))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["spec", "validate", str(path)])
    assert rc != 0 and out.getvalue() == ""
    assert field in err.getvalue() and text in err.getvalue()


def test_a_spec_that_validates_gives_a_request_the_service_model_accepts(project: Path) -> None:
    spec = make_spec(
        project,
        hyperparameters={f"k{i}": i for i in range(91)},  # 4 + 91 + 5 sagemaker_* = 100
        sagemaker={"tags": {"Team name": "vision/ml", "é:ü": "+=@-_. "}},
    )
    request = _request(spec)
    assert len(request["HyperParameters"]) == 100
    assert violations(request, _input_shape()) == []


def test_the_hyperparameters_file_counts_when_the_spec_is_validated(project: Path) -> None:
    (project / "hp.json").write_text(json.dumps({f"f{i}": i for i in range(60)}))
    over = {"hyperparameters": {f"k{i}": i for i in range(32)}, "hyperparameters_file": "hp.json"}
    with pytest.raises(SpecError, match="96 of yours and the 5 the app adds"):
        make_spec(project, **over)
    (project / "hp.json").write_text(json.dumps({"x" * 300: 1}))
    with pytest.raises(SpecError, match=r"hyperparameters_file: .*1-256 chars"):
        make_spec(project, hyperparameters_file="hp.json")


def test_a_file_that_grew_after_validation_is_refused_before_any_upload(
    aws: Any, project: Path
) -> None:
    (project / "hp.json").write_text(json.dumps({"a": 1}))
    spec = make_spec(project, hyperparameters_file="hp.json")
    (project / "hp.json").write_text(json.dumps({f"f{i}": i for i in range(92)}))
    with pytest.raises(UserError, match="make 101"):
        plan_locations(spec, "j", "us-east-1", "r", IMAGE, True, f"s3://{BUCKET}")
    svc = service()
    handle = svc.submit(spec)
    handle.wait(30)
    record = svc.get(handle.job_id)
    assert record.status == "Failed" and "make 101" in (record.failure_reason or "")
    s3 = aws.client("s3")
    with contextlib.suppress(s3.exceptions.NoSuchBucket):
        assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert aws.requests == {}


def test_the_spec_models_written_limits_are_the_service_models() -> None:
    shape = _input_shape()
    hps = shape.members["HyperParameters"]
    assert hps.metadata["max"] == model.MAX_HYPERPARAMETERS
    assert hps.key.metadata["max"] == model.MAX_HP_KEY
    assert hps.value.metadata["max"] == model.MAX_HP_VALUE
    assert shape.members["Environment"].metadata["max"] == model.MAX_ENVIRONMENT
    assert shape.members["InputDataConfig"].metadata["max"] == model.MAX_CHANNELS
    metrics = shape.members["AlgorithmSpecification"].members["MetricDefinitions"]
    assert metrics.metadata["max"] == model.MAX_METRIC_DEFINITIONS
    assert limits.max_image_uri() == 255


def test_local_backends_keep_any_ml_type_as_a_label() -> None:
    """Locally the instance type only names what the script is told; SageMaker is stricter."""
    spec = spec_from_dict(
        {"name": "x", "source": {"command": ["true"]}, "compute": {"instance_type": "ml.zz9.huge"}}
    )
    assert spec.compute.instance_type == "ml.zz9.huge"


def test_every_training_type_of_the_service_model_is_accepted() -> None:
    """Its names include hyphens (ml.c7i-flex.xlarge), which the old pattern refused."""
    for kind in sorted(limits.training_instance_types()):
        spec_from_dict(
            {
                "name": "x",
                "source": {"command": ["true"]},
                "compute": {"backend": "sagemaker", "instance_type": kind},
            }
        )
