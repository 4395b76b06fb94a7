"""Cost before launch: SageMaker training list prices, from AWS or the shipped table, dated.

`estimate_cost(spec)` gives the price per hour for the job (instance price x instance count)
and for its max runtime, with the price's date, region and source, so the form and the confirm
dialog can say "about $1.41/h, at most $33.79 for 24 h (list prices of 2025-06-01, us-east-1)".

Where the price comes from, best first:

1. The AWS Price List API (`pricing` GetProducts, service code AmazonSageMaker, the product of
   the region and instance whose component is Training, its On-Demand USD per hour), read
   through the user's own session by `refresh_list_price` (network: call it off the GUI
   thread) and cached in `<data folder>/aws/price-list.json` with the date it was read and
   the date AWS published it; re-read after `CACHE_DAYS` days.
2. The table that ships with the app (resources/aws/prices.json), which says its own date and
   marks the figures that could not be checked as approximate.

`estimate_cost` itself never touches the network: a cache look-up, then the table.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from trainer_gui.core.atomic import write_atomic
from trainer_gui.core.spec.model import JobSpec

log = logging.getLogger(__name__)

FALLBACK_REGION = "us-east-1"
#: The Price List API answers in these two regions only.
PRICING_API_REGION = "us-east-1"
SERVICE_CODE = "AmazonSageMaker"
TRAINING = "Training"
CACHE_DAYS = 7
#: After a failed read (no permission, no network), wait this long before asking again.
RETRY_AFTER_S = 600.0
API_SOURCE = "AWS Price List API (AmazonSageMaker, Training, On-Demand)"


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    currency: str
    source: str
    regions: dict[str, dict[str, float]]
    approximate: dict[str, frozenset[str]] | None = None
    """Per region, the instance types whose figure could not be checked (estimates)."""

    def price(self, region: str, instance_type: str) -> float | None:
        return self.regions.get(region, {}).get(instance_type)

    def is_approximate(self, region: str, instance_type: str) -> bool:
        return instance_type in (self.approximate or {}).get(region, frozenset())

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
    from_api: bool = False
    """True when the price was read from the AWS Price List API (else the shipped table)."""
    approximate: bool = False
    """True when the table marks the figure (any group's) as an estimate it could not check."""

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
        where = "AWS Price List, " if self.from_api else ""
        rough = ", approximate" if self.approximate else ""
        return (
            f"{hosts} in {self.region}: about {money(self.per_hour)}/h, at most "
            f"{money(self.for_max_runtime)} for the max runtime of "
            f"{runtime_text(self.max_runtime_seconds)} "
            f"({where}list prices of {self.as_of}{rough}, {self.currency}, storage and data "
            "transfer extra)"
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
        approximate={r: frozenset(t) for r, t in (data.get("approximate") or {}).items()},
    )


# -- the AWS Price List API --------------------------------------------------------------------


@dataclass(frozen=True)
class ListPrice:
    """A price read from the Price List API (None: AWS lists no such training instance)."""

    price: float | None
    currency: str
    published: str  # the date AWS published the price list it came from
    read_on: str  # the date it was read


def cache_path() -> Path:
    from trainer_gui.core.paths import data_home

    return data_home() / "aws" / "price-list.json"


_cache_lock = threading.Lock()
_failed: dict[tuple[str | None, str, str], float] = {}


def _cache_key(region: str, instance_type: str) -> str:
    return f"{region}|{instance_type}"


def _load_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring the price cache %s: %s", cache_path(), exc)
        return {}


def cached_list_price(region: str, instance_type: str) -> ListPrice | None:
    """The cached Price List answer for a region and instance type, however old."""
    with _cache_lock:
        entry = _load_cache().get(_cache_key(region, instance_type))
    if not isinstance(entry, dict) or "read_on" not in entry:
        return None
    price = entry.get("price")
    return ListPrice(
        float(price) if price is not None else None,
        str(entry.get("currency", "USD")),
        str(entry.get("published") or entry["read_on"]),
        str(entry["read_on"]),
    )


def _store(region: str, instance_type: str, found: ListPrice) -> None:
    with _cache_lock:
        data = _load_cache()
        data[_cache_key(region, instance_type)] = {
            "price": found.price,
            "currency": found.currency,
            "published": found.published,
            "read_on": found.read_on,
        }
        path = cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def _is_training(attributes: dict[str, Any]) -> bool:
    """The Training product of an instance (not Hosting, Processing, Spot training, ...)."""
    for name in ("component", "platoinstancetype"):
        if name in attributes:
            return str(attributes[name]) == TRAINING
    usage = str(attributes.get("usagetype", ""))
    return "-Train:" in usage


def _on_demand_hourly(item: dict[str, Any]) -> tuple[float, str] | None:
    for term in (item.get("terms", {}).get("OnDemand") or {}).values():
        for dimension in (term.get("priceDimensions") or {}).values():
            if str(dimension.get("unit", "")).lower() not in ("hrs", "hours", "hour"):
                continue
            per_unit = dimension.get("pricePerUnit") or {}
            if "USD" in per_unit:
                return float(per_unit["USD"]), "USD"
    return None


def parse_price_list(price_list: list[str], region: str, instance_type: str) -> ListPrice | None:
    """The training On-Demand price among GetProducts' PriceList entries (JSON strings)."""
    today = date.today().isoformat()
    for raw in price_list:
        item = json.loads(raw) if isinstance(raw, str) else raw
        product = item.get("product") or {}
        attributes = product.get("attributes") or {}
        if attributes.get("regionCode", region) != region:
            continue
        name = attributes.get("instanceName") or attributes.get("instanceType")
        if name != instance_type or not _is_training(attributes):
            continue
        found = _on_demand_hourly(item)
        if found is None:
            continue
        published = str(item.get("publicationDate") or today)[:10]
        return ListPrice(found[0], found[1], published, today)
    return None


def _pricing_client(session: Any) -> Any:
    from trainer_gui.core.aws.session import client_config

    return session.boto.client(
        "pricing",
        region_name=PRICING_API_REGION,
        config=client_config(attempts=2, connect_timeout=5, read_timeout=15),
    )


def read_list_price(session: Any, region: str, instance_type: str) -> ListPrice:
    """Ask the Price List API (network). Raises `AwsError` when it cannot be asked."""
    from trainer_gui.core.aws.errors import aws_errors

    client = _pricing_client(session)
    items: list[str] = []
    for field in ("instanceName", "instanceType"):  # the SageMaker products carry both
        filters = [
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": field, "Value": instance_type},
        ]
        kwargs: dict[str, Any] = {"ServiceCode": SERVICE_CODE, "Filters": filters}
        with aws_errors("reading SageMaker prices from the AWS Price List API"):
            for _ in range(20):  # a few pages at most: one product per component
                page = client.get_products(**kwargs)
                items.extend(page.get("PriceList") or [])
                token = page.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        found = parse_price_list(items, region, instance_type)
        if found is not None:
            return found
    return ListPrice(None, "USD", date.today().isoformat(), date.today().isoformat())


def refresh_list_price(
    instance_type: str, region: str, profile: str | None = None, session: Any = None
) -> bool:
    """Read the price from AWS unless the cache has it from the last `CACHE_DAYS` days.

    Network: call it off the GUI thread. Never raises: without credentials, permission
    (pricing:GetProducts) or network the estimate keeps the cached price or the table's.
    Returns whether the cache changed.
    """
    cached = cached_list_price(region, instance_type)
    if cached is not None:
        try:
            age = (date.today() - date.fromisoformat(cached.read_on)).days
        except ValueError:
            age = CACHE_DAYS
        if age < CACHE_DAYS:
            return False
    key = (profile, region, instance_type)
    with _cache_lock:
        failed_at = _failed.get(key)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_S:
            return False
    try:
        reread_list_price(instance_type, region, profile, session)
    except Exception as exc:
        log.info("no live price for %s in %s: %s", instance_type, region, exc)
        with _cache_lock:
            _failed[key] = time.monotonic()
        return False
    return True


def reread_list_price(
    instance_type: str, region: str, profile: str | None = None, session: Any = None
) -> ListPrice:
    """Ask the Price List API now, whatever the cache holds or an earlier failure, and cache
    the answer (`trainer-gui sagemaker cost --refresh`). Network. Raises `UserError` (an
    `AwsError` included) saying why the price could not be read."""
    from trainer_gui.core.errors import UserError

    if session is None:
        from trainer_gui.core.aws.session import AwsSession

        session = AwsSession.from_settings(profile, region)
    if session.boto.get_credentials() is None:  # nothing to ask with: the table it is
        raise UserError("no AWS credentials to read the Price List API with")
    found = read_list_price(session, region, instance_type)
    _store(region, instance_type, found)
    with _cache_lock:
        _failed.pop((profile, region, instance_type), None)
    return found


def forget_failures() -> None:
    """Ask AWS again at the next refresh (after the AWS settings changed)."""
    with _cache_lock:
        _failed.clear()


def estimate(
    instance_type: str, instance_count: int, max_runtime_seconds: int, region: str
) -> CostEstimate:
    """The estimate from the cached Price List answer when there is one, else the table."""
    live = cached_list_price(region, instance_type)
    if live is not None and live.price is not None:
        return CostEstimate(
            instance_type=instance_type,
            instance_count=instance_count,
            region=region,
            price_per_instance_hour=live.price,
            max_runtime_seconds=max_runtime_seconds,
            as_of=live.published,
            currency=live.currency,
            source=f"{API_SOURCE}, read on {live.read_on}",
            from_api=True,
        )
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
        approximate=table.is_approximate(region, instance_type),
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
            first,
            instance_count=compute.host_count,
            price_per_instance_hour=None,
            groups=groups,
            from_api=all(g.from_api for g in groups),
            approximate=any(g.approximate for g in groups),
        )
    return estimate(compute.instance_type, compute.instance_count, spec.max_runtime_seconds, region)
