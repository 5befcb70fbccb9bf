"""The stack's worker fleet on EC2: the launch template and subnets every worker launches
from, and one worker launched as an instant EC2 Fleet, EC2 choosing its type and zone among
those the launch allows."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.runtime import Runtime
from chalicelib.wire.tasks import Market

# What AWS answers when it has no room for a launch; the next attempt may find some.
CAPACITY_ERRORS = frozenset({
    "InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded",
    "InstanceLimitExceeded", "Unsupported", "InsufficientCapacity",
    "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
})
SUBNETS_CACHE = "worker-subnets"
TEMPLATE_CACHE = "worker-template-data"
# Tags of the stack's own launch template that every launch keeps, as EC2 spells the kinds.
_TAGGED = ("instance", "volume")


class InsufficientCapacity(Exception):
    """EC2 could not launch any of the attempt's types on its market now."""


class LaunchRefused(Exception):
    """EC2 refused the launch for a reason other than capacity: another attempt would fail
    the same way."""


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    zone: str


@dataclass(frozen=True)
class WorkerLaunch:
    """What one launch asks of EC2 beyond the stack's launch template."""

    token: str
    market: Market
    instance_types: tuple[str, ...]
    user_data: str
    tags: dict[str, str]
    # The zone the instance must be in; None: any zone of the stack's subnets.
    zone: str | None = None
    # Replace the template's security groups; (): keep them.
    security_groups: tuple[str, ...] = ()
    block_devices: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class LaunchedWorker:
    instance_id: str
    instance_type: str
    zone: str | None


def subnets(runtime: Runtime) -> list[Subnet]:
    """The subnets workers launch in, one per zone as the stack gives them (by default the
    default subnet of each zone of the default VPC), read once per process."""
    cached = runtime.cache.get(SUBNETS_CACHE)
    if cached is not None:
        return list(cached)
    ec2 = runtime.ec2
    chosen = runtime.config.worker_subnets
    found: list[dict[str, Any]] = []
    if chosen:
        found = ec2.describe_subnets(SubnetIds=list(chosen))["Subnets"]
    else:
        for page in ec2.get_paginator("describe_subnets").paginate(
                Filters=[{"Name": "default-for-az", "Values": ["true"]}]):
            found += page["Subnets"]
    if not found:
        raise LaunchRefused("the region has no default VPC with default subnets: deploy the "
                            "stack with WorkerSubnetIds")
    result = sorted((Subnet(s["SubnetId"], s["AvailabilityZone"]) for s in found),
                    key=lambda s: (s.zone, s.subnet_id))
    runtime.cache[SUBNETS_CACHE] = tuple(result)
    return result


def zones(runtime: Runtime) -> list[str]:
    """The zones workers may be launched in."""
    return sorted({s.zone for s in subnets(runtime)})


def _request_shaped(value: Any, shape: Any) -> Any:
    """`value` (as EC2 describes it) with only what a request of `shape` may carry: a
    description holds read-only fields (a metadata option's state) a request refuses."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _request_shaped(v, shape.members[k]) for k, v in value.items()
                if k in shape.members and v is not None}
    if shape.type_name == "list" and isinstance(value, list):
        return [_request_shaped(v, shape.member) for v in value]
    return value


def template_data(runtime: Runtime) -> dict[str, Any]:
    """The stack's worker launch template (its default version) as a request gives it: what
    every launch starts from. Read once per process."""
    cached = runtime.cache.get(TEMPLATE_CACHE)
    if cached is None:
        ec2 = runtime.ec2
        version = ec2.describe_launch_template_versions(
            LaunchTemplateId=runtime.config.worker_launch_template,
            Versions=["$Default"])["LaunchTemplateVersions"][0]
        shape = ec2.meta.service_model.operation_model("CreateLaunchTemplate").input_shape
        cached = _request_shaped(version["LaunchTemplateData"], shape.members["LaunchTemplateData"])
        runtime.cache[TEMPLATE_CACHE] = cached
    return dict(cached)


def launch_data(runtime: Runtime, launch: WorkerLaunch) -> dict[str, Any]:
    """The stack's template with the launch's user data, disks, tags and security groups."""
    data = template_data(runtime)
    data["ImageId"] = runtime.config.worker_image_id
    data["UserData"] = base64.b64encode(launch.user_data.encode()).decode()
    if launch.block_devices:
        data["BlockDeviceMappings"] = launch.block_devices
    if launch.security_groups:
        data["SecurityGroupIds"] = list(launch.security_groups)
    kept = {spec["ResourceType"]: {t["Key"]: t["Value"] for t in spec.get("Tags", [])}
            for spec in data.get("TagSpecifications", [])}
    data["TagSpecifications"] = [
        {"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in
                                        {**kept.get(kind, {}), **launch.tags}.items()]}
        for kind in _TAGGED]
    return data


def _fleet_request(launch: WorkerLaunch, template: str, allowed: list[Subnet]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "Type": "instant",
        # EC2 answers a repeated token with the first answer: a retry launches nothing new.
        "ClientToken": launch.token,
        "TargetCapacitySpecification": {"TotalTargetCapacity": 1,
                                        "DefaultTargetCapacityType": launch.market},
        "LaunchTemplateConfigs": [{
            "LaunchTemplateSpecification": {"LaunchTemplateName": template, "Version": "1"},
            "Overrides": [{"InstanceType": name, "SubnetId": subnet.subnet_id}
                          for name in launch.instance_types for subnet in allowed]}],
    }
    if launch.market == "spot":
        request["SpotOptions"] = {"AllocationStrategy": "price-capacity-optimized",
                                  "InstanceInterruptionBehavior": "terminate"}
    else:
        request["OnDemandOptions"] = {"AllocationStrategy": "lowest-price"}
    return request


def _what(launch: WorkerLaunch) -> str:
    zone = f" in {launch.zone}" if launch.zone else ""
    return f"{launch.market} {', '.join(launch.instance_types)}{zone}"


def _launched(answer: dict[str, Any], launch: WorkerLaunch, allowed: list[Subnet]) -> LaunchedWorker:
    """The instance an instant fleet's answer launched; its Errors (capacity or not) when it
    launched none."""
    zone_of = {s.subnet_id: s.zone for s in allowed}
    for item in answer.get("Instances", []):
        if item.get("InstanceIds"):
            overrides = item.get("LaunchTemplateAndOverrides", {}).get("Overrides", {})
            return LaunchedWorker(
                instance_id=str(item["InstanceIds"][0]),
                instance_type=str(item.get("InstanceType") or overrides["InstanceType"]),
                zone=zone_of.get(overrides.get("SubnetId", ""), launch.zone))
    errors = answer.get("Errors", [])
    codes = sorted({str(e.get("ErrorCode", "error")) for e in errors})
    detail = "; ".join(codes) or "EC2 launched no instance and gave no reason"
    if not errors or CAPACITY_ERRORS.intersection(codes):
        raise InsufficientCapacity(f"{_what(launch)}: {detail}")
    messages = sorted({str(e.get("ErrorMessage", "")) for e in errors} - {""})
    raise LaunchRefused(f"{_what(launch)}: {detail}" + (f" ({' '.join(messages)})" if messages else ""))


def launch_worker(runtime: Runtime, launch: WorkerLaunch) -> LaunchedWorker:
    """Launch one worker as an instant EC2 Fleet over every (type, subnet of an allowed zone)
    pair: Spot with price-capacity-optimized allocation, On-demand at the lowest price.

    The launch's own user data, disks and tags ride in a launch template of its own, made
    from the stack's and deleted once EC2 has answered: a fleet takes no user data itself."""
    allowed = [s for s in subnets(runtime) if launch.zone in (None, s.zone)]
    if not allowed:
        raise LaunchRefused(f"the stack has no worker subnet in {launch.zone} (its zones: "
                            f"{', '.join(zones(runtime))})")
    ec2 = runtime.ec2
    template = _template_name(runtime.config.queue_prefix, launch.token)
    try:
        ec2.create_launch_template(LaunchTemplateName=template,
                                   LaunchTemplateData=launch_data(runtime, launch))
    except ClientError as error:
        # An earlier try of this launch made it, from the same data.
        if "AlreadyExists" not in error.response["Error"]["Code"]:
            raise
    try:
        answer = ec2.create_fleet(**_fleet_request(launch, template, allowed))
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in CAPACITY_ERRORS:
            raise InsufficientCapacity(f"{_what(launch)}: {code}") from None
        raise
    finally:
        _delete_template(runtime, template)
    return _launched(answer, launch, allowed)


def _template_name(prefix: str, token: str) -> str:
    """The launch's own template: named after the stack and the launch, within EC2's 128
    characters however long the stack's name."""
    name = f"{prefix}{token}"
    if len(name) > 128:
        name = f"openfloat-{hashlib.sha256(prefix.encode()).hexdigest()[:16]}-{token}"
    return name


def _delete_template(runtime: Runtime, name: str) -> None:
    try:
        runtime.ec2.delete_launch_template(LaunchTemplateName=name)
    except ClientError as error:
        if "NotFound" not in error.response["Error"]["Code"]:
            raise
