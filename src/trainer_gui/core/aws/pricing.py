"""Cost before launch: a shipped, dated price table (resources/aws/prices.json), no network.

`estimate_cost(spec)` gives the price per hour for the job (instance price x instance count)
and for its max runtime, with the table's date and region, so the form and the confirm dialog
can say "about $1.41/h, at most $33.79 for 24 h (list prices of 2025-06-01, us-east-1)".
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass
from typing import Any

from trainer_gui.core.spec.model import JobSpec

log = logging.getLogger(__name__)

FALLBACK_REGION = "us-east-1"


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    currency: str
    source: str
    regions: dict[str, dict[str, float]]

    def price(self, region: str, instance_type: str) -> float | None:
        return self.regions.get(region, {}).get(instance_type)

    def instance_types(self, region: str) -> list[str]:
        return sorted(self.regions.get(region, {}))


@dataclass(frozen=True)
class CostEstimate:
    instance_type: str
    instance_count: int
    region: str
    price_per_instance_hour: float | None
    max_runtime_seconds: int
    as_of: str
    currency: str
    source: str
    #: A heterogeneous cluster: one estimate per instance group, added up.
    groups: tuple[CostEstimate, ...] = ()

    @property
    def known(self) -> bool:
        if self.groups:
            return all(g.known for g in self.groups)
        return self.price_per_instance_hour is not None

    @property
    def hosts(self) -> str:
        """'2 x ml.g5.xlarge', or each group's joined by ' + '."""
        if self.groups:
            return " + ".join(g.hosts for g in self.groups)
        return f"{self.instance_count} x {self.instance_type}"

    @property
    def per_hour(self) -> float | None:
        if self.groups:
            parts = [g.per_hour for g in self.groups]
            return None if None in parts else sum(p for p in parts if p is not None)
        if self.price_per_instance_hour is None:
            return None
        return self.price_per_instance_hour * self.instance_count

    @property
    def for_max_runtime(self) -> float | None:
        per_hour = self.per_hour
        return None if per_hour is None else per_hour * self.max_runtime_seconds / 3600.0

    def summary(self) -> str:
        """One line for a form, a dialog or the CLI."""
        hosts = self.hosts
        if self.per_hour is None or self.for_max_runtime is None:
            return (
                f"{hosts} in {self.region}: no price in the table (list prices of {self.as_of}); "
                "see the SageMaker pricing page"
            )
        return (
            f"{hosts} in {self.region}: about {money(self.per_hour)}/h, at most "
            f"{money(self.for_max_runtime)} for the max runtime of "
            f"{runtime_text(self.max_runtime_seconds)} "
            f"(list prices of {self.as_of}, {self.currency}, storage and data transfer extra)"
        )


def money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.4f}"


def runtime_text(seconds: int) -> str:
    return f"{seconds / 60:.3g} min" if seconds < 3600 else f"{seconds / 3600:.4g} h"


def pricing_region(spec: JobSpec) -> str:
    """The region an estimate for the spec uses: the spec's, the AWS settings', the AWS
    config's, else us-east-1. May import boto3 (slow the first time)."""
    from trainer_gui.core.aws.defaults import effective_region

    return effective_region(spec) or FALLBACK_REGION


@functools.lru_cache(maxsize=1)
def price_table() -> PriceTable:
    from trainer_gui.core.paths import resource_path

    data: dict[str, Any] = json.loads(resource_path("aws", "prices.json").read_text("utf-8"))
    return PriceTable(
        as_of=str(data["as_of"]),
        currency=str(data.get("currency", "USD")),
        source=str(data.get("source", "")),
        regions={r: {k: float(v) for k, v in t.items()} for r, t in data["regions"].items()},
    )


def estimate(
    instance_type: str, instance_count: int, max_runtime_seconds: int, region: str
) -> CostEstimate:
    table = price_table()
    return CostEstimate(
        instance_type=instance_type,
        instance_count=instance_count,
        region=region,
        price_per_instance_hour=table.price(region, instance_type),
        max_runtime_seconds=max_runtime_seconds,
        as_of=table.as_of,
        currency=table.currency,
        source=table.source,
    )


def estimate_cost(spec: JobSpec, region: str | None = None) -> CostEstimate:
    """The estimate for a spec; region: given, else the spec's, the AWS settings', the AWS
    config's, else us-east-1."""
    if region is None:
        region = pricing_region(spec)
    compute = spec.compute
    if compute.instance_groups:
        groups = tuple(
            estimate(g.instance_type, g.instance_count, spec.max_runtime_seconds, region)
            for g in compute.instance_groups
        )
        first = groups[0]
        return dataclasses.replace(
            first, instance_count=compute.host_count, price_per_instance_hour=None, groups=groups
        )
    return estimate(compute.instance_type, compute.instance_count, spec.max_runtime_seconds, region)
