"""The EC2 side of placement: the offers placement chooses from, and launching one worker
instance with its command queue, idempotently (the EC2 Fleet call itself is in `workers`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import BadRequest
from chalicelib.placement import Offer
from chalicelib.runtime import Runtime
from chalicelib.wire.tasks import Attempt
from chalicelib.workers import CAPACITY_ERRORS as CAPACITY_ERRORS
from chalicelib.workers import InsufficientCapacity as InsufficientCapacity
from chalicelib.workers import LaunchRefused as LaunchRefused
from chalicelib.workers import WorkerLaunch, launch_worker, zones

LAUNCH_TAG = "openfloat:launch"
JOB_TAG = "openfloat:job"
OFFERS_CACHE = "ec2-offers"


def offers(runtime: Runtime) -> list[Offer]:
    """Every instance type in the region with its latest Spot price, read once per process."""
    cached = runtime.cache.get(OFFERS_CACHE)
    if cached is not None:
        return list(cached)
    ec2 = runtime.ec2
    types: dict[str, dict[str, Any]] = {}
    for page in ec2.get_paginator("describe_instance_types").paginate():
        for described in page["InstanceTypes"]:
            types[described["InstanceType"]] = described
    prices: dict[str, float] = {}
    history = ec2.get_paginator("describe_spot_price_history").paginate(
        ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        StartTime=runtime.clock())
    for page in history:
        for entry in page["SpotPriceHistory"]:
            price = float(entry["SpotPrice"])
            name = entry["InstanceType"]
            prices[name] = min(price, prices.get(name, price))
    found = [
        Offer(
            instance_type=name,
            vcpus=int(described["VCpuInfo"]["DefaultVCpus"]),
            memory_gib=described["MemoryInfo"]["SizeInMiB"] / 1024,
            architectures=tuple(described["ProcessorInfo"]["SupportedArchitectures"]),
            markets=tuple(m for m in ("spot", "on-demand")
                          if m in described.get("SupportedUsageClasses", [])),
            spot_price=prices.get(name),
            gpus=sum(int(g.get("Count", 0)) for g in described.get("GpuInfo", {}).get("Gpus", [])),
        )
        for name, described in types.items()
    ]
    runtime.cache[OFFERS_CACHE] = tuple(found)
    return found


def instance_type(runtime: Runtime, instance_id: str | None) -> str | None:
    """The instance's type; None when there is no instance or EC2 no longer knows it."""
    described = describe(runtime, instance_id) if instance_id is not None else None
    return str(described["InstanceType"]) if described else None


def command_queue(runtime: Runtime, launch_token: str) -> str:
    """The instance's own command queue (created if missing); its URL."""
    name = f"{runtime.config.queue_prefix}cmd-{launch_token}"
    return str(runtime.sqs.create_queue(QueueName=name, Attributes={
        "MessageRetentionPeriod": "86400", "VisibilityTimeout": "900"})["QueueUrl"])


# Device name the image volume is attached as; the worker finds it as the one blank disk.
IMAGE_VOLUME_DEVICE = "/dev/sdf"
# At boot, the image volume (a disk with no file system and nothing mounted, whatever name
# the instance's kernel gives it) becomes podman's storage.
_MOUNT_IMAGE_VOLUME = """\
for disk in $(lsblk -dpno NAME,TYPE | awk '$2 == "disk" {print $1}'); do
  if [ -z "$(lsblk -no FSTYPE,MOUNTPOINT "$disk" | tr -d ' \\n')" ]; then
    mkfs.xfs -q "$disk"; mkdir -p /var/lib/containers; mount "$disk" /var/lib/containers; break
  fi
done
mountpoint -q /var/lib/containers
"""


@dataclass(frozen=True)
class InstanceOptions:
    """What the job asks of its instance besides its type: zone, security groups, and volume
    sizes in GB."""

    zone: str | None = None
    security_groups: tuple[str, ...] = ()
    root_gb: int | None = None
    image_gb: int | None = None


def user_data(runtime: Runtime, commands_queue: str, image_volume: bool = False) -> str:
    """What a worker runs at boot: the agent, told where its commands come from (after
    mounting the image volume when the job asked for one)."""
    config = runtime.config
    args = ["--bucket", config.data_bucket, "--commands-queue", commands_queue,
            "--events-queue", config.agent_events_queue]
    return ("#!/bin/bash\nset -e\n" + (_MOUNT_IMAGE_VOLUME if image_volume else "")
            + "cd /opt/openfloat\nexec python3 -m agent "
            + " ".join(shlex.quote(a) for a in args) + "\n")


def check_instance_options(runtime: Runtime, zone: str | None, groups: list[str]) -> None:
    """BadRequest unless the zone is one of the region's, with a subnet of the stack's workers,
    and every security group exists: a launch that EC2 refuses for them would fail every
    attempt of the plan."""
    if zone is not None:
        available = {z["ZoneName"] for z in runtime.ec2.describe_availability_zones()[
            "AvailabilityZones"] if z.get("State", "available") == "available"}
        if zone not in available:
            raise BadRequest(f"zone {zone} is not an available zone of this region "
                             f"(available: {', '.join(sorted(available))})")
        if zone not in zones(runtime):
            raise BadRequest(f"zone {zone} has no subnet of the OpCenter's workers (their "
                             f"zones: {', '.join(zones(runtime))})")
    for group in groups:
        try:
            runtime.ec2.describe_security_groups(GroupIds=[group])
        except ClientError as error:
            if error.response["Error"]["Code"] in ("InvalidGroup.NotFound", "InvalidGroupId.Malformed"):
                raise BadRequest(f"security group {group} does not exist") from None
            raise


def _root_device(runtime: Runtime) -> str:
    cached = runtime.cache.get("worker-root-device")
    if cached is None:
        found = runtime.ec2.describe_images(ImageIds=[runtime.config.worker_image_id])["Images"]
        cached = str(found[0].get("RootDeviceName") or "/dev/xvda") if found else "/dev/xvda"
        runtime.cache["worker-root-device"] = cached
    return str(cached)


def _block_devices(runtime: Runtime, options: InstanceOptions) -> list[dict[str, Any]]:
    volumes = []
    if options.root_gb:
        volumes.append({"DeviceName": _root_device(runtime), "Ebs": {
            "VolumeSize": options.root_gb, "VolumeType": "gp3", "DeleteOnTermination": True}})
    if options.image_gb:
        volumes.append({"DeviceName": IMAGE_VOLUME_DEVICE, "Ebs": {
            "VolumeSize": options.image_gb, "VolumeType": "gp3", "DeleteOnTermination": True}})
    return volumes


def existing_launch(runtime: Runtime, launch_token: str) -> dict[str, Any] | None:
    """The live instance an earlier try of this same launch created, if any."""
    found = runtime.ec2.describe_instances(Filters=[
        {"Name": f"tag:{LAUNCH_TAG}", "Values": [launch_token]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ])
    for reservation in found["Reservations"]:
        for instance in reservation["Instances"]:
            return dict(instance)
    return None


def launch(runtime: Runtime, job_id: str, launch_token: str, attempt: Attempt,
           commands_queue: str, tags: dict[str, str],
           options: InstanceOptions = InstanceOptions()) -> dict[str, Any]:
    """Launch one instance for the job, of any of the attempt's types (EC2 chooses the type
    and the zone), or find the one a retry of this launch already launched. The instance as
    EC2 describes it: InstanceId, InstanceType and Placement at least."""
    earlier = existing_launch(runtime, launch_token)
    if earlier is not None:
        return earlier
    worker = launch_worker(runtime, WorkerLaunch(
        token=launch_token, market=attempt.market, instance_types=tuple(attempt.instanceTypes),
        user_data=user_data(runtime, commands_queue, image_volume=bool(options.image_gb)),
        tags={**tags, JOB_TAG: job_id, LAUNCH_TAG: launch_token, "Name": f"openfloat-{job_id}"},
        zone=options.zone, security_groups=options.security_groups,
        block_devices=_block_devices(runtime, options)))
    return {"InstanceId": worker.instance_id, "InstanceType": worker.instance_type,
            "Placement": {"AvailabilityZone": worker.zone}}


# States in which an instance still costs money or may come back.
_LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def job_instances(runtime: Runtime, job_id: str) -> list[dict[str, Any]]:
    """Every live instance launched for the job (found by its tag, not by what the job
    records: a launch that failed half-way may have left one the job never heard of)."""
    found: list[dict[str, Any]] = []
    for page in runtime.ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": f"tag:{JOB_TAG}", "Values": [job_id]},
            {"Name": "instance-state-name", "Values": _LIVE_STATES}]):
        for reservation in page["Reservations"]:
            found += [dict(instance) for instance in reservation["Instances"]]
    return found


def describe(runtime: Runtime, instance_id: str) -> dict[str, Any] | None:
    """The instance as EC2 describes it; None when EC2 does not know it."""
    try:
        found = runtime.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as error:
        if error.response["Error"]["Code"] in ("InvalidInstanceID.NotFound",
                                               "InvalidInstanceID.Malformed"):
            return None
        raise
    return dict(found[0]["Instances"][0]) if found and found[0]["Instances"] else None


def _launch_queue(runtime: Runtime, instance: dict[str, Any]) -> str | None:
    """The command queue a launch created for the instance, from its launch tag."""
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
    token = tags.get(LAUNCH_TAG)
    if token is None:
        return None
    try:
        return str(runtime.sqs.get_queue_url(
            QueueName=f"{runtime.config.queue_prefix}cmd-{token}")["QueueUrl"])
    except ClientError as error:
        if "NonExistentQueue" in error.response["Error"]["Code"]:
            return None
        raise


def release(runtime: Runtime, instance_id: str, queue_url: str | None = None) -> None:
    """Terminate the instance and delete its command queue; nothing left to do is fine."""
    try:
        runtime.ec2.terminate_instances(InstanceIds=[instance_id])
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("InvalidInstanceID.NotFound",
                                                   "InvalidInstanceID.Malformed"):
            raise
    if queue_url is None:
        described = describe(runtime, instance_id)
        queue_url = _launch_queue(runtime, described) if described else None
    if queue_url:
        try:
            runtime.sqs.delete_queue(QueueUrl=queue_url)
        except ClientError as error:
            if "NonExistentQueue" not in error.response["Error"]["Code"]:
                raise


def retag(runtime: Runtime, instance_id: str, add: dict[str, str], remove: list[str]) -> None:
    """Bring a running instance's custom tags in line with the job's; OpenFloat's own tags
    stay whatever a custom tag is called."""
    own = {JOB_TAG, LAUNCH_TAG, "Name"}
    added = [{"Key": k, "Value": v} for k, v in add.items() if k not in own]
    removed = [{"Key": k} for k in remove if k not in own]
    if added:
        runtime.ec2.create_tags(Resources=[instance_id], Tags=added)
    if removed:
        runtime.ec2.delete_tags(Resources=[instance_id], Tags=removed)
