"""Prices from the AWS Price List API through the user's session, cached with their date, and the
shipped table as the fallback that says its date (issue 16).

moto has no Price List API: the `aws` fixture answers GetProducts (tests/aws/moto_pricing.py)
with PriceList JSON strings shaped as AWS sends them, several components per instance type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from moto_support import capture_requests, signed_for

from trainer_gui.core.aws import pricing
from trainer_gui.core.aws.pricing import (
    cache_path,
    estimate,
    price_table,
    refresh_list_price,
)


@pytest.fixture(autouse=True)
def _fresh_failures() -> Iterator[None]:
    pricing.forget_failures()
    yield
    pricing.forget_failures()


def test_the_training_price_is_read_from_the_price_list_and_cached_with_its_date(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = capture_requests(aws, monkeypatch)
    assert refresh_list_price("ml.g5.16xlarge", "us-east-1") is True
    cost = estimate("ml.g5.16xlarge", 2, 3600, "us-east-1")
    # the Training product: not Hosting (5.67) nor Spot training, nor EC2's 4.096
    assert cost.price_per_instance_hour == pytest.approx(5.12)
    assert cost.per_hour == pytest.approx(10.24)
    assert cost.from_api and cost.as_of == "2026-11-20"
    assert "AWS Price List, list prices of 2026-11-20" in cost.summary()
    assert f"read on {date.today().isoformat()}" in cost.source
    body = aws.pricing.calls[0]
    assert body["ServiceCode"] == "AmazonSageMaker"
    assert {f["Field"]: f["Value"] for f in body["Filters"]} == {
        "regionCode": "us-east-1",
        "instanceName": "ml.g5.16xlarge",
    }
    # the request went to the Price List API's own region with the session's credentials
    priced = [
        r for r in sent if r.headers.get("X-Amz-Target") == b"AWSPriceListService.GetProducts"
    ]
    assert priced and signed_for(priced[0])[1:] == ("us-east-1", "pricing")
    cached = json.loads(cache_path().read_text())["us-east-1|ml.g5.16xlarge"]
    assert cached["price"] == 5.12 and cached["read_on"] == date.today().isoformat()
    calls = len(aws.pricing.calls)
    assert refresh_list_price("ml.g5.16xlarge", "us-east-1") is False  # fresh: not asked again
    assert len(aws.pricing.calls) == calls


def test_pages_are_followed_and_a_job_in_another_region_asks_for_that_region(aws: Any) -> None:
    aws.pricing.page_size = 1
    assert refresh_list_price("ml.g5.xlarge", "eu-west-1", session=None) is True
    cost = estimate("ml.g5.xlarge", 1, 7200, "eu-west-1")
    assert cost.price_per_instance_hour == pytest.approx(1.573)
    assert cost.for_max_runtime == pytest.approx(3.146)
    assert all(
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"} in c["Filters"]
        for c in aws.pricing.calls
    )
    assert any("NextToken" in c for c in aws.pricing.calls)


def test_a_stale_cache_is_read_again(aws: Any) -> None:
    assert refresh_list_price("ml.m5.xlarge", "us-east-1")
    data = json.loads(cache_path().read_text())
    old = (date.today() - timedelta(days=pricing.CACHE_DAYS + 1)).isoformat()
    data["us-east-1|ml.m5.xlarge"]["read_on"] = old
    cache_path().write_text(json.dumps(data))
    calls = len(aws.pricing.calls)
    assert refresh_list_price("ml.m5.xlarge", "us-east-1") is True
    assert len(aws.pricing.calls) > calls
    assert pricing.cached_list_price("us-east-1", "ml.m5.xlarge").read_on == (  # type: ignore[union-attr]
        date.today().isoformat()
    )


def test_without_permission_the_shipped_table_is_used_and_says_its_date(aws: Any) -> None:
    aws.faults.error(
        "pricing:GetProducts", 400, "AccessDeniedException", "not allowed: pricing:GetProducts", 10
    )
    assert refresh_list_price("ml.m5.xlarge", "us-east-1") is False
    cost = estimate("ml.m5.xlarge", 1, 3600, "us-east-1")
    table = price_table()
    assert not cost.from_api and cost.as_of == table.as_of
    assert cost.price_per_instance_hour == table.price("us-east-1", "ml.m5.xlarge")
    assert f"list prices of {table.as_of}" in cost.summary()
    assert "AWS Price List" not in cost.summary()
    sent = aws.faults.count("pricing:GetProducts")
    assert refresh_list_price("ml.m5.xlarge", "us-east-1") is False
    assert aws.faults.count("pricing:GetProducts") == sent  # not asked again at once


def test_an_instance_aws_does_not_list_falls_back_to_the_table(aws: Any) -> None:
    assert refresh_list_price("ml.c5.xlarge", "us-east-1") is True  # asked, nothing listed
    cost = estimate("ml.c5.xlarge", 1, 3600, "us-east-1")
    assert not cost.from_api
    assert cost.price_per_instance_hour == price_table().price("us-east-1", "ml.c5.xlarge")


def test_without_credentials_nothing_is_asked(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    assert refresh_list_price("ml.m5.xlarge", "us-east-1") is False
    assert aws.pricing.calls == []


# -- the shipped table -----------------------------------------------------------------------


def test_the_shipped_table_has_sagemaker_prices_not_ec2_ones() -> None:
    table = price_table()
    # ml.g5.16xlarge carried EC2's g5.16xlarge price (4.096); SageMaker's is 1.25x like its
    # neighbours (g5.8xlarge 3.06 vs EC2 2.448)
    assert table.price("us-east-1", "ml.g5.16xlarge") == pytest.approx(5.12)
    for region in table.regions:
        g5 = table.regions[region]
        if "ml.g5.16xlarge" in g5 and "ml.g5.8xlarge" in g5:
            assert g5["ml.g5.16xlarge"] > g5["ml.g5.8xlarge"], region


def test_eu_west_1_has_gpu_types_and_they_say_they_are_approximate() -> None:
    table = price_table()
    gpus = [t for t in table.instance_types("eu-west-1") if t.split(".")[1][0] in "gp"]
    assert {"ml.g5.xlarge", "ml.g4dn.xlarge", "ml.p3.2xlarge"} <= set(gpus)
    cost = estimate("ml.g5.xlarge", 1, 3600, "eu-west-1")
    assert cost.known and cost.approximate
    assert "approximate" in cost.summary()


def test_p4d_is_after_the_2025_price_cut_and_marked_approximate() -> None:
    table = price_table()
    assert table.price("us-east-1", "ml.p4d.24xlarge") < 37.688  # the price before June 2025
    assert table.is_approximate("us-east-1", "ml.p4d.24xlarge")
    assert not table.is_approximate("us-east-1", "ml.m5.xlarge")


# -- in the job form ---------------------------------------------------------------------------


def test_the_cost_line_shows_the_aws_price_and_its_date_when_it_arrives(
    aws: Any, qtbot: Any, project: Any
) -> None:
    from moto_pricing import product
    from PySide6.QtCore import QThreadPool
    from sm_helpers import make_spec

    from trainer_gui.ui.form.cost import CostLabel, cloud_run_message

    aws.pricing.products = [
        product("us-east-1", "ml.m5.xlarge", "Hosting", "0.2800000000"),
        product("us-east-1", "ml.m5.xlarge", "Training", "0.2400000000"),
    ]
    label = CostLabel()
    qtbot.addWidget(label)
    spec = make_spec(project, compute={"instance_count": 2})
    label.set_spec(spec)
    # at once: the shipped table's figure, with the table's date
    assert label.estimate is not None and not label.estimate.from_api
    assert "<b>$0.46/h</b>" in label.text() and price_table().as_of in label.text()
    # then AWS's, with the price list's date
    qtbot.waitUntil(lambda: label.estimate is not None and label.estimate.from_api, timeout=15_000)
    assert "<b>$0.48/h</b>" in label.text()
    assert "AWS Price List, list prices of 2026-11-20" in label.text()
    assert "AWS Price List" in label.toolTip() and "2026-11-20" in label.toolTip()
    _, text = cloud_run_message(spec, "us-east-1")
    assert "$0.48 per hour" in text and "AWS Price List, list prices of 2026-11-20" in text
    calls = len(aws.pricing.calls)
    label.set_spec(spec.model_copy(update={"max_runtime_seconds": 7200}))
    assert len(aws.pricing.calls) == calls  # asked once per region and instance type
    assert QThreadPool.globalInstance().waitForDone(10_000)


# -- trainer-gui sagemaker cost --refresh ----------------------------------------------------------


def test_cli_cost_refresh_reads_the_price_list_again_past_a_fresh_cache(
    aws: Any, project: Any, capsys: Any
) -> None:
    from sm_helpers import make_spec

    from trainer_gui.cli.main import main
    from trainer_gui.core.spec import save_spec

    spec = make_spec(project, compute={"instance_type": "ml.g5.16xlarge"}, max_runtime_seconds=3600)
    path = save_spec(spec, project / "job.yaml")
    today = date.today().isoformat()
    stale_price = {"price": 9.99, "currency": "USD", "published": "2025-01-01", "read_on": today}
    cache_path().parent.mkdir(parents=True, exist_ok=True)
    cache_path().write_text(json.dumps({"us-east-1|ml.g5.16xlarge": stale_price}))

    assert main(["sagemaker", "cost", str(path)]) == 0
    assert "$9.99/h" in capsys.readouterr().out  # the cache, read today: not asked
    assert aws.pricing.calls == []

    assert main(["sagemaker", "cost", str(path), "--refresh"]) == 0
    out = capsys.readouterr().out
    assert aws.pricing.calls  # asked although the cache was fresh
    assert "$5.12/h" in out and "AWS Price List, list prices of 2026-11-20" in out
    assert pricing.cached_list_price("us-east-1", "ml.g5.16xlarge").price == 5.12  # type: ignore[union-attr]

    # AWS refusing: a note saying why, and the estimate from what is known, never a traceback
    aws.faults.error(
        "pricing:GetProducts", 400, "AccessDeniedException", "not allowed: pricing:GetProducts", 10
    )
    assert main(["sagemaker", "cost", str(path), "--refresh"]) == 0
    captured = capsys.readouterr()
    assert "$5.12/h" in captured.out
    assert "could not be read from the AWS Price List API" in captured.err
    assert "pricing:GetProducts" in captured.err and "Traceback" not in captured.err
