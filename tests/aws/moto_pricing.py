"""The AWS Price List API (`pricing` GetProducts), which moto does not have, for the `aws` fixture.

Answers below botocore, like the fixture's faults: the product code's real boto3 client builds,
signs and sends the request, and parses a JSON 1.1 response shaped as AWS sends it: PriceList is
a list of JSON *strings*, each a product with its attributes, its On-Demand terms and the
publication date of the price list. The products follow the real AmazonSageMaker price list:
product family "ML Instance", one product per instance type and component (Training, Hosting,
SpotTraining, ...), attributes regionCode, instanceName, instanceType, component,
platoinstancetype and usagetype (`USE1-Train:ml.m5.xlarge`), On-Demand offer term JRTCKXETXF
with rate code 6YS6EN2CT7 and the price per "Hrs" in USD as a decimal string.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

PUBLISHED = "2026-11-20T18:35:00Z"
USAGE_PREFIX = {"us-east-1": "USE1", "us-west-2": "USW2", "eu-west-1": "EU"}
LOCATIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
}
USAGE_KIND = {"Training": "Train", "Hosting": "Host", "SpotTraining": "Train-Spot"}


def product(region: str, instance: str, component: str, price: str) -> str:
    """One PriceList entry (a JSON string), as GetProducts returns it."""
    usage = f"{USAGE_PREFIX.get(region, 'XX1')}-{USAGE_KIND.get(component, component)}:{instance}"
    sku = hashlib.sha1(usage.encode()).hexdigest()[:16].upper()
    term = f"{sku}.JRTCKXETXF"
    item = {
        "product": {
            "productFamily": "ML Instance",
            "attributes": {
                "regionCode": region,
                "servicecode": "AmazonSageMaker",
                "usagetype": usage,
                "locationType": "AWS Region",
                "location": LOCATIONS.get(region, region),
                "servicename": "Amazon SageMaker",
                "instanceName": instance,
                "instanceType": instance,
                "operation": "RunInstance",
                "component": component,
                "platoinstancetype": component,
                "platoinstancename": instance,
                "currentGeneration": "Yes",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonSageMaker",
        "terms": {
            "OnDemand": {
                term: {
                    "priceDimensions": {
                        f"{term}.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": f"${price} per On Demand {instance} {component} hour",
                            "appliesTo": [],
                            "rateCode": f"{term}.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": price},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            }
        },
        "version": PUBLISHED.replace("-", "").replace(":", "").replace("T", "")[:14],
        "publicationDate": PUBLISHED,
    }
    return json.dumps(item)


def _catalogue() -> list[str]:
    """A few instances with every component, so the client must pick the Training one."""
    rows = [
        ("us-east-1", "ml.m5.xlarge", {"Training": "0.2300000000", "Hosting": "0.2300000000"}),
        (
            "us-east-1",
            "ml.g5.16xlarge",
            {"Training": "5.1200000000", "Hosting": "5.6700000000", "SpotTraining": "1.5360"},
        ),
        ("us-east-1", "ml.p4d.24xlarge", {"Hosting": "37.6880000000", "Training": "25.2500"}),
        ("eu-west-1", "ml.g5.xlarge", {"Training": "1.5730000000", "Hosting": "1.6000000000"}),
    ]
    return [product(r, i, c, p) for r, i, prices in rows for c, p in prices.items()]


@dataclass
class PriceList:
    """The fake GetProducts: `products` (PriceList strings), `calls` (request bodies)."""

    products: list[str] = field(default_factory=_catalogue)
    calls: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2  # small pages: the client must follow NextToken
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_products(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append(body)
        if body.get("ServiceCode") != "AmazonSageMaker":
            return {"FormatVersion": "aws_v1", "PriceList": []}
        matching = []
        for raw in self.products:
            attributes = json.loads(raw)["product"]["attributes"]
            if all(
                f.get("Type") == "TERM_MATCH" and attributes.get(f["Field"]) == f["Value"]
                for f in body.get("Filters", [])
            ):
                matching.append(raw)
        start = int(body.get("NextToken") or 0)
        size = min(int(body.get("MaxResults") or 100), self.page_size)
        out: dict[str, Any] = {
            "FormatVersion": "aws_v1",
            "PriceList": matching[start : start + size],
        }
        if start + size < len(matching):
            out["NextToken"] = str(start + size)
        return out

    def answer(self, request: Any) -> Any:
        """The HTTP response for a botocore request to the pricing endpoint."""
        from botocore.awsrequest import AWSResponse

        body = request.body
        text = body.decode() if isinstance(body, bytes) else str(body or "{}")
        payload = json.dumps(self.get_products(json.loads(text or "{}"))).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        return AWSResponse(request.url, 200, headers, _Raw(payload))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body
