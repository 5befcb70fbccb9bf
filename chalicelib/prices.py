"""What an instance costs an hour: the Spot price EC2 had for its type and zone when it was
launched (describe-spot-price-history), and the On-demand price of its type in this region
(the AWS Price List API), which is what the job would have cost without Spot.

Prices are USD, as Decimal. On-demand prices are read once per type per process; a price
that cannot be found is None, and the figures that need it are left out rather than guessed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.runtime import Runtime

logger = Logger(service="openfloat-prices")

_ON_DEMAND_CACHE = "prices.on-demand"
# How far before the launch to look for the Spot price in force then: EC2 records a price
# when it changes, which may be hours apart.
_SPOT_LOOKBACK = timedelta(days=1)


def spot_price(runtime: Runtime, instance_type: str, zone: str | None,
               at: datetime) -> Decimal | None:
    """The Spot price in force for the type (in the zone, if known) at `at`."""
    request: dict[str, Any] = {
        "InstanceTypes": [instance_type], "ProductDescriptions": ["Linux/UNIX"],
        "StartTime": at - _SPOT_LOOKBACK, "EndTime": at}
    if zone:
        request["AvailabilityZone"] = zone
    best: tuple[datetime, Decimal] | None = None
    try:
        for page in runtime.ec2.get_paginator("describe_spot_price_history").paginate(**request):
            for entry in page["SpotPriceHistory"]:
                if entry.get("InstanceType") != instance_type:
                    continue
                if zone and entry.get("AvailabilityZone") not in (None, zone):
                    continue
                stamp = entry.get("Timestamp") or at
                price = _decimal(entry.get("SpotPrice"))
                if price is None or stamp > at:
                    continue
                if best is None or stamp > best[0]:
                    best = (stamp, price)
    except (BotoCoreError, ClientError) as error:
        logger.warning("no spot price", extra={"instance_type": instance_type,
                                               "error": str(error)})
        return None
    return best[1] if best else None


def on_demand_price(runtime: Runtime, instance_type: str) -> Decimal | None:
    """The type's Linux On-demand price an hour in this region (shared tenancy)."""
    cache: dict[str, Decimal | None] = runtime.cache.setdefault(_ON_DEMAND_CACHE, {})
    if instance_type in cache:
        return cache[instance_type]
    region = runtime.ec2.meta.region_name
    filters = {"instanceType": instance_type, "regionCode": region,
               "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
               "capacitystatus": "Used"}
    try:
        response = runtime.pricing.get_products(
            ServiceCode="AmazonEC2", MaxResults=10,
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()])
    except (BotoCoreError, ClientError) as error:
        logger.warning("no on-demand price", extra={"instance_type": instance_type,
                                                    "error": str(error)})
        return None  # not cached: the next job tries again
    price = None
    for text in response.get("PriceList", []):
        price = _on_demand_of(json.loads(text) if isinstance(text, str) else text)
        if price is not None:
            break
    cache[instance_type] = price
    return price


def _on_demand_of(product: dict[str, Any]) -> Decimal | None:
    """The hourly USD price of a Price List product's On-demand term."""
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            if dimension.get("unit") in ("Hrs", "Hours"):
                price = _decimal(dimension.get("pricePerUnit", {}).get("USD"))
                if price is not None and price > 0:
                    return price
    return None


def _decimal(text: Any) -> Decimal | None:
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() and value >= 0 else None
