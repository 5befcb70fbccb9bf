"""The AWS Price List API's part, for the local mode and the tests: moto has no pricing
service, so GetProducts on the runtime's pricing client is answered here, in the Price List's
own shape, before the request leaves the client. The code that reads prices runs as on AWS.

The local On-demand price is a rule of thumb fitted to general-purpose types in us-east-1
(USD 0.037 a vCPU-hour plus 0.00275 a GiB-hour, 0.90 a GPU-hour), from the type's vCPUs,
memory and GPUs as moto's EC2 describes them. Spot prices are moto's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from botocore.awsrequest import AWSResponse

from chalicelib.runtime import Runtime

PER_VCPU_HOUR = Decimal("0.037")
PER_GIB_HOUR = Decimal("0.00275")
PER_GPU_HOUR = Decimal("0.90")


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def local_price(described: dict[str, Any]) -> Decimal:
    vcpus = Decimal(described["VCpuInfo"]["DefaultVCpus"])
    gib = Decimal(described["MemoryInfo"]["SizeInMiB"]) / 1024
    gpus = sum(int(g.get("Count", 0)) for g in described.get("GpuInfo", {}).get("Gpus", []))
    price = vcpus * PER_VCPU_HOUR + gib * PER_GIB_HOUR + gpus * PER_GPU_HOUR
    return price.quantize(Decimal("0.0001"))


def _product(instance_type: str, region: str, price: Decimal) -> str:
    sku = f"LOCAL{abs(hash((instance_type, region))) % 10**10:010d}"
    return json.dumps({
        "product": {"sku": sku, "productFamily": "Compute Instance", "attributes": {
            "instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux",
            "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "sku": sku, "offerTermCode": "JRTCKXETXF", "priceDimensions": {
                f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                    "unit": "Hrs", "pricePerUnit": {"USD": str(price)},
                    "description": f"${price} per On Demand Linux {instance_type} Instance Hour",
                }}}}},
    })


def stand_in(runtime: Runtime) -> None:
    """Answer the runtime's pricing client from moto's EC2 instance types."""

    def get_products(request: Any, **_: Any) -> AWSResponse:
        body = json.loads(request.body or b"{}")
        wanted = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
        products: list[str] = []
        instance_type, region = wanted.get("instanceType"), wanted.get("regionCode")
        if body.get("ServiceCode") == "AmazonEC2" and instance_type and region:
            try:
                described = runtime.ec2.describe_instance_types(
                    InstanceTypes=[instance_type])["InstanceTypes"]
            except runtime.ec2.exceptions.ClientError:
                described = []
            if described:
                products.append(_product(instance_type, region, local_price(described[0])))
        data = json.dumps({"FormatVersion": "aws_v1", "PriceList": products}).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"},
                           _Body(data))

    runtime.pricing.meta.events.register_first("before-send.pricing.GetProducts", get_products)
