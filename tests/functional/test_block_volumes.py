"""New block volumes (`[size=N]:/mnt/x`) are EBS volumes that follow their job: created in the
first instance's zone and attached before the job starts, moved to the replacement on a
reclaim (the same volume, the replacement in its zone), copied through a snapshot when the job
had to go to another zone, and deleted when the job ends."""

from __future__ import annotations

import pytest

from chalicelib import blockvolumes, endings, fleet, launches
from chalicelib import reconcile as reconciler
from chalicelib.wire.datavolumes import DataVolume
from chalicelib.wire.status import JobStatus
from chalicelib.wire.tasks import Attempt, LaunchRequest, Verdict, VolumesRequest
from tests.functional.jobs_helpers import seed_job
from tests.functional.test_migrate_workflow import _kinds, _migrate
from tests.functional.workflow_helpers import manifest, restored, simulated_agent
from tests.functional.workflow_helpers import move_ready as _move_ready

SCRATCH = "[size=5]:/mnt/scratch"


def _with_volumes(flows, job_id, *volumes, status=JobStatus.SUBMITTED):
    job = flows.store.get_job(job_id) or seed_job(flows.runtime, flows.store, job_id, status)
    return flows.store.record_fields(job, {"spec": job.spec.model_copy(update={
        "dataVolumes": [DataVolume.model_validate(v) for v in volumes]})})


def _ours(flows):
    return [{"Key": blockvolumes.OPCENTER_TAG, "Value": flows.runtime.config.queue_prefix}]


def _volumes(flows, job_id):
    return blockvolumes.job_volumes(flows.runtime, job_id)


def _attached_to(volume):
    return [a["InstanceId"] for a in volume.get("Attachments", []) if a["State"] == "attached"]


def _attach_until_done(flows, job_id, instance_id, tries=10):
    for _ in range(tries):
        try:
            return blockvolumes.attach(flows.runtime, flows.store,
                                       VolumesRequest(jobId=job_id, instanceId=instance_id))
        except blockvolumes.VolumesNotReady:
            continue
    raise AssertionError(f"the volumes of {job_id} were never attached to {instance_id}")


def test_a_launch_creates_the_volume_in_the_instances_zone_and_attaches_it_first(flows):
    _with_volumes(flows, "fresh", "s3://data/in:/mnt/in", SCRATCH)
    seen: list = []
    simulated_agent(flows, None, True, seen, job_id="fresh")
    result = flows.run("launch", "fresh-launch-1", {
        "jobId": "fresh", "launchNumber": 1, "timeouts": flows.timeouts(startSeconds=10)},
        timeout=60)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("fresh")
    assert job.status == JobStatus.EXECUTING
    (volume,) = _volumes(flows, "fresh")
    zone = fleet.describe(flows.runtime, job.instanceId)["Placement"]["AvailabilityZone"]
    assert (volume["Size"], volume["VolumeType"], volume["AvailabilityZone"]) == (5, "gp3", zone)
    assert _attached_to(volume) == [job.instanceId]
    assert volume["Attachments"][0]["Device"] == "/dev/sdg"
    (run,) = seen
    # The second of the job's data volumes; the S3 one has no EBS volume.
    assert [(v.index, v.volumeId, v.device) for v in run.volumes] == [
        (1, volume["VolumeId"], "/dev/sdg")]


def test_a_reclaimed_job_takes_its_volume_to_the_replacement_in_the_same_zone(flows):
    old, old_seen, new_seen = _move_ready(flows, "carrier", manifest("carrier", 2),
                                          restored("carrier", 2))
    _with_volumes(flows, "carrier", SCRATCH)
    first = _attach_until_done(flows, "carrier", old).volumes[0]
    zone = _volumes(flows, "carrier")[0]["AvailabilityZone"]
    result = _migrate(flows, "carrier")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("carrier")
    assert job.status == JobStatus.EXECUTING and job.instanceId != old
    (volume,) = _volumes(flows, "carrier")
    assert volume["VolumeId"] == first.volumeId
    assert _attached_to(volume) == [job.instanceId]
    assert fleet.describe(flows.runtime, job.instanceId)["Placement"]["AvailabilityZone"] == zone
    (replacement,) = new_seen
    assert _kinds(replacement) == ["restore"]
    assert [v.volumeId for v in replacement[0].volumes] == [first.volumeId]


def test_a_volume_is_detached_from_the_instance_the_job_left_before_it_is_attached(flows):
    old, _ = flows.instance("hopper")
    new, _ = flows.instance("hopper")
    _with_volumes(flows, "hopper", SCRATCH, status=JobStatus.EXECUTING)
    volume_id = _attach_until_done(flows, "hopper", old).volumes[0].volumeId
    moved = _attach_until_done(flows, "hopper", new).volumes[0]
    assert moved.volumeId == volume_id
    (volume,) = _volumes(flows, "hopper")
    assert _attached_to(volume) == [new]


def test_a_job_that_had_to_change_zone_gets_a_copy_of_its_volume_there(flows):
    ec2 = flows.runtime.ec2
    _with_volumes(flows, "traveller", "[size=3]:/mnt/a", status=JobStatus.EXECUTING)
    job = flows.store.get_job("traveller")
    original = ec2.create_volume(AvailabilityZone="us-east-1b", Size=3, VolumeType="gp3",
                                 TagSpecifications=[{"ResourceType": "volume", "Tags": [
                                     {"Key": fleet.JOB_TAG, "Value": job.id},
                                     {"Key": blockvolumes.INDEX_TAG, "Value": "0"},
                                     *_ours(flows)]}])
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                 InstanceType="c5.large",
                                 Placement={"AvailabilityZone": "us-east-1c"})["Instances"][0]
    attached = _attach_until_done(flows, job.id, instance["InstanceId"]).volumes[0]
    (copy,) = _volumes(flows, job.id)
    assert copy["VolumeId"] == attached.volumeId != original["VolumeId"]
    assert (copy["AvailabilityZone"], copy["Size"]) == ("us-east-1c", 3)
    assert copy["SnapshotId"]  # made from the original's snapshot
    assert _attached_to(copy) == [instance["InstanceId"]]
    assert ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": f"tag:{fleet.JOB_TAG}", "Values": [job.id]}])["Snapshots"] == []


def test_a_job_whose_volumes_exist_launches_in_their_zone_or_anywhere_when_it_is_full(
        flows, monkeypatch):
    _with_volumes(flows, "pinned", SCRATCH, status=JobStatus.FLOATING)
    flows.runtime.ec2.create_volume(
        AvailabilityZone="us-east-1d", Size=5, VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [
            {"Key": fleet.JOB_TAG, "Value": "pinned"}, {"Key": blockvolumes.INDEX_TAG, "Value": "0"},
            *_ours(flows)]}])
    request = LaunchRequest(jobId="pinned", launchNumber=2, index=0,
                            attempt=Attempt(instanceTypes=["c5.large"], market="spot"))
    launched = launches.launch_instance(flows.runtime, flows.store, request)
    zone = fleet.describe(flows.runtime, launched.instanceId)["Placement"]["AvailabilityZone"]
    assert zone == "us-east-1d"

    original = fleet.launch
    zones: list = []

    def full_in_volume_zone(runtime, job_id, token, attempt, queue, tags, options):
        zones.append(options.zone)
        if options.zone == "us-east-1d":
            raise fleet.InsufficientCapacity("spot c5.large: InsufficientInstanceCapacity")
        return original(runtime, job_id, token, attempt, queue, tags, options)

    monkeypatch.setattr(fleet, "launch", full_in_volume_zone)
    again = launches.launch_instance(flows.runtime, flows.store,
                                     request.model_copy(update={"launchNumber": 3}))
    assert zones == ["us-east-1d", None] and again.instanceId != launched.instanceId


def test_a_zone_the_user_named_is_never_left_for_the_volumes(flows, monkeypatch):
    job = _with_volumes(flows, "fixed", SCRATCH, status=JobStatus.FLOATING)
    flows.store.record_fields(job, {"spec": job.spec.model_copy(update={"zone": "us-east-1b"})})

    def full(*args, **kwargs):
        raise fleet.InsufficientCapacity("spot c5.large: InsufficientInstanceCapacity")

    monkeypatch.setattr(fleet, "launch", full)
    with pytest.raises(fleet.InsufficientCapacity):
        launches.launch_instance(flows.runtime, flows.store, LaunchRequest(
            jobId="fixed", launchNumber=2, index=0,
            attempt=Attempt(instanceTypes=["c5.large"], market="spot")))


def test_an_ended_job_loses_its_volumes_and_the_reconciler_deletes_what_was_left(flows):
    instance, _ = flows.instance("ender")
    _with_volumes(flows, "ender", SCRATCH, "[size=2]:/mnt/b", status=JobStatus.EXECUTING)
    _attach_until_done(flows, "ender", instance)
    assert len(_volumes(flows, "ender")) == 2
    endings.settle(flows.runtime, flows.store, Verdict(jobId="ender", exitCode=0, why="done"))
    assert flows.store.get_job("ender").status == JobStatus.COMPLETED
    assert _volumes(flows, "ender") == []

    # A volume its ending could not delete (EC2 still held it) goes on the next pass.
    flows.runtime.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, TagSpecifications=[{
        "ResourceType": "volume", "Tags": [{"Key": fleet.JOB_TAG, "Value": "ender"}, *_ours(flows)]}])
    # Another OpCenter's volume in the same account is not this one's to delete.
    theirs = flows.runtime.ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=1, TagSpecifications=[{"ResourceType": "volume", "Tags": [
            {"Key": fleet.JOB_TAG, "Value": "ender"},
            {"Key": blockvolumes.OPCENTER_TAG, "Value": "openfloat-other-"}]}])
    done = reconciler.reconcile(flows.runtime, flows.store)
    assert "ender" in done.volumes and _volumes(flows, "ender") == []
    kept = flows.runtime.ec2.describe_volumes(VolumeIds=[theirs["VolumeId"]])["Volumes"]
    assert kept[0]["State"] == "available"


def test_a_running_jobs_volumes_are_left_alone_by_the_reconciler(flows):
    instance, _ = flows.instance("keeper")
    _with_volumes(flows, "keeper", SCRATCH, status=JobStatus.EXECUTING)
    _attach_until_done(flows, "keeper", instance)
    reconciler.reconcile(flows.runtime, flows.store)
    (volume,) = _volumes(flows, "keeper")
    assert _attached_to(volume) == [instance]


def test_no_volume_can_be_attached_to_an_instance_that_is_gone(flows):
    instance, _ = flows.instance("late")
    _with_volumes(flows, "late", SCRATCH, status=JobStatus.EXECUTING)
    flows.runtime.ec2.terminate_instances(InstanceIds=[instance])
    with pytest.raises(blockvolumes.VolumeAttachFailed, match="terminated"):
        blockvolumes.attach(flows.runtime, flows.store,
                            VolumesRequest(jobId="late", instanceId=instance))
