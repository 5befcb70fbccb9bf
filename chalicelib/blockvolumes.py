"""A job's new block volumes (`[size=N]:/mnt/x`) as EBS volumes that follow the job: created in
its first instance's availability zone, attached to every instance it runs on before its
container starts or is restored there, detached from the one it left, and deleted when the job
ends. A replacement that had to go to another zone gets a copy made through a snapshot.

EC2 itself is the record: each volume carries the job's tag and its place in the job's data
volumes, so every step finds what an earlier try did. `attach` does what it can now and raises
VolumesNotReady while EC2 is still busy (a volume being created, detached or copied); the
workflows call it again after a pause, up to their limit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib.fleet import JOB_TAG, describe
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store
from chalicelib.wire.agent import AttachedVolume
from chalicelib.wire.datavolumes import DataVolume
from chalicelib.wire.tasks import AttachedVolumes, VolumesRequest

logger = Logger(service="openfloat-volumes")

# The volume's place among the job's data volumes (its index in dataVolumes).
INDEX_TAG = "openfloat:volume"
# Which OpCenter the volume is of (its queue prefix, unique per stack): the reconciler of one
# never deletes another's volumes in the same account.
OPCENTER_TAG = "openfloat:opcenter"
# A copy made for another zone names the volume it was made from.
COPY_OF_TAG = "openfloat:copy-of"
# Block volumes are attached as /dev/sdg, /dev/sdh, ...: /dev/sdf is the image volume.
FIRST_DEVICE = "g"
MAX_BLOCK_VOLUMES = 20
# A detach still not done after this long is forced: the instance it leaves is gone or hung.
FORCE_DETACH_SECONDS = 120
_LIVE = ["creating", "available", "in-use"]


class VolumesNotReady(Exception):
    """EC2 is still creating, detaching or copying one of the job's volumes; try again."""


class VolumeAttachFailed(Exception):
    """A volume of the job cannot be attached to this instance at all."""


def device_name(position: int) -> str:
    """The device a job's `position`-th block volume is attached as."""
    return f"/dev/sd{chr(ord(FIRST_DEVICE) + position)}"


def job_volumes(runtime: Runtime, job_id: str) -> list[dict[str, Any]]:
    """Every volume of the job EC2 still has, oldest first."""
    found: list[dict[str, Any]] = []
    for page in runtime.ec2.get_paginator("describe_volumes").paginate(Filters=[
            {"Name": f"tag:{JOB_TAG}", "Values": [job_id]},
            {"Name": f"tag:{OPCENTER_TAG}", "Values": [runtime.config.queue_prefix]},
            {"Name": "status", "Values": _LIVE}]):
        found += page["Volumes"]
    return sorted(found, key=lambda v: v["CreateTime"])


def _tags(item: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}


def _index(volume: dict[str, Any]) -> int | None:
    value = _tags(volume).get(INDEX_TAG, "")
    return int(value) if value.isascii() and value.isdigit() else None


def wanted(job: JobRecord) -> list[tuple[int, DataVolume]]:
    """The job's new block volumes, each with its place among its data volumes."""
    volumes = [DataVolume.model_validate(v) for v in job.spec.dataVolumes]
    return [(index, v) for index, v in enumerate(volumes) if v.kind == "block"]


def zone_of(runtime: Runtime, job: JobRecord) -> str | None:
    """The zone the job's volumes are in (where its next instance should go); None when it
    has none yet."""
    if not wanted(job):
        return None
    for volume in job_volumes(runtime, job.id):
        if _index(volume) is not None:
            return str(volume["AvailabilityZone"])
    return None


def _create(runtime: Runtime, job: JobRecord, index: int, size: int, zone: str,
            snapshot: str | None = None, copy_of: str | None = None) -> dict[str, Any]:
    tags = {JOB_TAG: job.id, INDEX_TAG: str(index), OPCENTER_TAG: runtime.config.queue_prefix,
            "Name": f"openfloat-{job.id}-{index}",
            **({COPY_OF_TAG: copy_of} if copy_of else {})}
    request: dict[str, Any] = {
        "AvailabilityZone": zone, "VolumeType": "gp3", "Size": size,
        "TagSpecifications": [{"ResourceType": "volume", "Tags": [
            {"Key": k, "Value": v} for k, v in tags.items()]}]}
    if snapshot:
        request["SnapshotId"] = snapshot
    created = dict(runtime.ec2.create_volume(**request))
    logger.info("volume created", extra={"job_id": job.id, "volume_id": created["VolumeId"],
                                         "zone": zone, "from_snapshot": snapshot})
    return created


def _detach(runtime: Runtime, volume: dict[str, Any], instance_id: str) -> None:
    """Detach the volume from every instance but `instance_id`; forced once it has taken too
    long (the instance it leaves is gone or hung: its checkpoint is committed already)."""
    now = runtime.clock().astimezone(UTC)
    for attachment in volume.get("Attachments", []):
        if attachment["InstanceId"] == instance_id:
            continue
        attached: datetime = attachment.get("AttachTime") or now
        stuck = attachment["State"] == "detaching" and (
            now - attached.astimezone(UTC)).total_seconds() > FORCE_DETACH_SECONDS
        if attachment["State"] == "detaching" and not stuck:
            continue
        try:
            runtime.ec2.detach_volume(VolumeId=volume["VolumeId"],
                                      InstanceId=attachment["InstanceId"], Force=stuck)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("IncorrectState",
                                                       "InvalidAttachment.NotFound"):
                raise
        logger.info("volume detached", extra={"volume_id": volume["VolumeId"], "forced": stuck,
                                              "instance_id": attachment["InstanceId"]})


def _delete(runtime: Runtime, volume_id: str) -> bool:
    """Delete the volume if nothing holds it; whether it is gone."""
    try:
        runtime.ec2.delete_volume(VolumeId=volume_id)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "InvalidVolume.NotFound":
            return True
        if code in ("VolumeInUse", "IncorrectState"):
            return False
        raise
    return True


def _copy_to(runtime: Runtime, job: JobRecord, index: int, source: dict[str, Any],
             zone: str) -> None:
    """One step of copying the volume into `zone`: detach it, snapshot it, make the copy from
    the snapshot, then delete the original and the snapshot. VolumesNotReady until done."""
    volume_id = source["VolumeId"]
    if source.get("Attachments"):
        _detach(runtime, source, "")
        raise VolumesNotReady(f"{volume_id} is being detached before it is copied to {zone}")
    snapshots = runtime.ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": f"tag:{COPY_OF_TAG}", "Values": [volume_id]}])["Snapshots"]
    if not snapshots:
        runtime.ec2.create_snapshot(
            VolumeId=volume_id, Description=f"OpenFloat job {job.id}: volume moving to {zone}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
                {"Key": JOB_TAG, "Value": job.id}, {"Key": COPY_OF_TAG, "Value": volume_id},
                {"Key": OPCENTER_TAG, "Value": runtime.config.queue_prefix}]}])
        raise VolumesNotReady(f"{volume_id} is being snapshotted to move to {zone}")
    snapshot = snapshots[0]
    if snapshot["State"] == "error":
        runtime.ec2.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
        raise VolumeAttachFailed(f"the snapshot of {volume_id} failed: "
                                 f"{snapshot.get('StateMessage', 'no reason given')}")
    if snapshot["State"] != "completed":
        raise VolumesNotReady(f"the snapshot of {volume_id} is {snapshot.get('Progress', '')} done")
    _create(runtime, job, index, int(source["Size"]), zone, snapshot["SnapshotId"], volume_id)
    # The copy is tagged as the job's volume; the original goes once nothing holds it.
    _delete(runtime, volume_id)
    runtime.ec2.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
    raise VolumesNotReady(f"{volume_id} was copied to {zone}; the copy is being created")


def _by_index(runtime: Runtime, job_id: str) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for volume in job_volumes(runtime, job_id):
        index = _index(volume)
        if index is not None:
            found.setdefault(index, []).append(volume)
    return found


def _step(runtime: Runtime, job: JobRecord, index: int, size: int, position: int,
          volumes: list[dict[str, Any]], instance_id: str, zone: str) -> str | None:
    """Move one volume a step towards being attached to the instance; what EC2 is still doing,
    or None when it is attached there."""
    mine = [v for v in volumes if v["AvailabilityZone"] == zone]
    if not mine:
        if volumes:
            _copy_to(runtime, job, index, volumes[0], zone)
        mine = [_create(runtime, job, index, size, zone)]
    for stale in volumes:
        # An original whose copy exists: deleted once nothing holds it.
        if stale["AvailabilityZone"] == zone:
            continue
        if stale.get("Attachments"):
            _detach(runtime, stale, "")
        else:
            _delete(runtime, stale["VolumeId"])
    volume = mine[0]
    volume_id = volume["VolumeId"]
    holders = {a["InstanceId"]: a["State"] for a in volume.get("Attachments", [])}
    if holders.get(instance_id) == "attached":
        return None
    others = sorted(i for i in holders if i != instance_id)
    if others:
        _detach(runtime, volume, instance_id)
        return f"{volume_id} is being detached from {', '.join(others)}"
    if volume["State"] == "creating":
        return f"{volume_id} is being created"
    if instance_id not in holders:
        try:
            runtime.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id,
                                      Device=device_name(position))
        except ClientError as error:
            if error.response["Error"]["Code"] == "IncorrectState":
                return f"{volume_id} is not available yet"
            raise VolumeAttachFailed(f"{volume_id} cannot be attached to {instance_id}: "
                                     f"{error.response['Error'].get('Message', '')}") from None
    return f"{volume_id} is being attached to {instance_id}"


def attach(runtime: Runtime, store: Store, request: VolumesRequest) -> AttachedVolumes:
    """Every block volume of the job attached to the instance, created first when the job has
    none yet: the volumes the agent mounts, by their place in the job's data volumes."""
    job = store.require_job(request.jobId)
    blocks = wanted(job)
    if not blocks:
        return AttachedVolumes(volumes=[])
    if len(blocks) > MAX_BLOCK_VOLUMES:
        raise VolumeAttachFailed(f"job {job.id} has {len(blocks)} new block volumes; an "
                                 f"instance takes at most {MAX_BLOCK_VOLUMES}")
    instance = describe(runtime, request.instanceId)
    state = instance["State"]["Name"] if instance else "gone"
    if state == "pending":
        raise VolumesNotReady(f"{request.instanceId} is still booting")
    if instance is None or state != "running":
        raise VolumeAttachFailed(f"{request.instanceId} is {state}: no volume can be attached")
    zone = str(instance["Placement"]["AvailabilityZone"])
    existing = _by_index(runtime, job.id)
    busy = [note for position, (index, spec) in enumerate(blocks)
            if (note := _step(runtime, job, index, spec.size or 1, position,
                              existing.get(index, []), request.instanceId, zone))]
    if busy:
        # Attaching may be done already (it often takes EC2 a moment): look once more.
        existing = _by_index(runtime, job.id)
    attached: list[AttachedVolume] = []
    for position, (index, _) in enumerate(blocks):
        volume = next((v for v in existing.get(index, []) if any(
            a["InstanceId"] == request.instanceId and a["State"] == "attached"
            for a in v.get("Attachments", []))), None)
        if volume is None:
            raise VolumesNotReady("; ".join(busy) or f"volume {index} is not attached yet")
        attached.append(AttachedVolume(index=index, volumeId=volume["VolumeId"],
                                       device=device_name(position)))
    return AttachedVolumes(volumes=attached)


def release(runtime: Runtime, job_id: str) -> list[str]:
    """Delete the job's volumes, detaching them first; what EC2 still holds (an instance still
    shutting down) is left for the reconciler's next pass. The ids still there."""
    left: list[str] = []
    for volume in job_volumes(runtime, job_id):
        if volume.get("Attachments"):
            _detach(runtime, volume, "")
            left.append(volume["VolumeId"])
        elif not _delete(runtime, volume["VolumeId"]):
            left.append(volume["VolumeId"])
        else:
            logger.info("volume deleted", extra={"job_id": job_id, "volume_id": volume["VolumeId"]})
    snapshots = runtime.ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": f"tag:{JOB_TAG}", "Values": [job_id]},
        {"Name": f"tag:{OPCENTER_TAG}", "Values": [runtime.config.queue_prefix]}])["Snapshots"]
    for snapshot in snapshots:
        runtime.ec2.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
    return left


def tagged_jobs(runtime: Runtime) -> set[str]:
    """The jobs of this OpCenter that still have volumes in EC2."""
    jobs: set[str] = set()
    for page in runtime.ec2.get_paginator("describe_volumes").paginate(Filters=[
            {"Name": f"tag:{OPCENTER_TAG}", "Values": [runtime.config.queue_prefix]}]):
        jobs |= {_tags(v)[JOB_TAG] for v in page["Volumes"]}
    return jobs
