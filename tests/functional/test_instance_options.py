"""What a job asks of its instance and container besides its size: GPUs, zone, security
groups, volume sizes, privileged or root containers, host directories, and never being
checkpointed (disableMigrate). Each must reach EC2 or the agent, or be refused at submit."""

from __future__ import annotations

import base64

import pytest

from chalicelib import fleet
from chalicelib.placement import NoCandidate, launch_plan
from chalicelib.wire.specs import CpuRange, Range, VmPolicy
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job
from tests.functional.test_migrate_workflow import _kinds, _migrate
from tests.functional.workflow_helpers import move_ready as _move_ready
from tests.functional.workflow_helpers import running_instances, simulated_agent

SUBMIT = {"image": "docker.io/library/python:3.12", "jobScript": "#!/bin/sh\necho hi\n"}


def _plan(flows, gpus, cpu="1:8", mem="1:64"):
    return launch_plan(fleet.offers(flows.runtime), CpuRange.model_validate(cpu),
                       Range.model_validate(mem), None, VmPolicy(spotOnly=True), gpus=gpus)


def _offer(flows, name):
    return next(o for o in fleet.offers(flows.runtime) if o.instance_type == name)


def test_a_gpu_job_lands_on_a_gpu_type_and_a_cpu_job_never_does(flows):
    with_gpus = _plan(flows, 1)
    assert with_gpus and all(_offer(flows, t).gpus >= 1 for a in with_gpus for t in a.instanceTypes)
    without = _plan(flows, 0)
    assert without and all(_offer(flows, t).gpus == 0 for a in without for t in a.instanceTypes)


def test_a_gpu_count_no_type_offers_is_refused_naming_the_gpus(flows):
    with pytest.raises(NoCandidate, match="2 vCPUs and 4 GiB with 1 GPU"):
        _plan(flows, 1, cpu="2", mem="4")


def test_a_gpu_job_no_type_fits_ends_no_available_host_with_the_reason(flows):
    job = seed_job(flows.runtime, flows.store, "gpu-less", JobStatus.SUBMITTED)
    flows.store.record_fields(job, {"spec": job.spec.model_copy(update={
        "gpu": 8, "cpu": {"min": 2, "max": 2}, "mem": {"min": 4, "max": 4}})})
    result = flows.run("launch", "gpu-less-launch-1", {
        "jobId": "gpu-less", "launchNumber": 1, "timeouts": flows.timeouts(startSeconds=5)},
        timeout=60)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("gpu-less")
    assert job.status == JobStatus.NO_AVAILABLE_HOST
    assert "with 8 GPUs" in job.history[-1].reason
    assert running_instances(flows) == []


def test_the_launch_carries_zone_groups_volumes_and_container_options(flows):
    group = flows.runtime.ec2.create_security_group(GroupName="pipeline",
                                                    Description="pipeline")["GroupId"]
    job = seed_job(flows.runtime, flows.store, "dressed", JobStatus.SUBMITTED)
    flows.store.record_fields(job, {"spec": job.spec.model_copy(update={
        "zone": "us-east-1c", "securityGroups": [group], "rootVolSize": 40,
        "imageVolSize": 120, "privileged": True, "withRoot": True, "gpu": None,
        "containerOpts": ["--shm-size=2g"], "dirMaps": [{"hostPath": "/scratch",
                                                         "containerPath": "/mnt/scratch"}],
        "disableMigrate": True, "publish": ["8080:80"]})})
    seen: list = []
    simulated_agent(flows, None, True, seen, job_id="dressed")
    result = flows.run("launch", "dressed-launch-1", {
        "jobId": "dressed", "launchNumber": 1, "timeouts": flows.timeouts(startSeconds=10)},
        timeout=60)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("dressed")
    instance = fleet.describe(flows.runtime, job.instanceId)
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1c"
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group]
    volumes = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
    sizes = {device: flows.runtime.ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0]["Size"]
             for device, volume in volumes.items()}
    assert sizes[fleet.IMAGE_VOLUME_DEVICE] == 120 and 40 in sizes.values()
    data = flows.runtime.ec2.describe_instance_attribute(InstanceId=job.instanceId,
                                                        Attribute="userData")
    boot = base64.b64decode(data["UserData"]["Value"]).decode()
    assert "mount \"$disk\" /var/lib/containers" in boot
    assert boot.index("/var/lib/containers") < boot.index("python3 -m agent")
    (run,) = seen
    assert (run.job.privileged, run.job.withRoot, run.job.checkpointable) == (True, True, False)
    assert run.job.containerOptions == ["--shm-size=2g"]
    assert [str(d) for d in run.job.dirMaps] == ["/scratch:/mnt/scratch"]
    assert run.job.publish == ["8080:80"]


def test_a_job_never_checkpointed_reruns_on_a_reclaim_without_a_checkpoint(flows):
    old, old_seen, new_seen = _move_ready(flows, "plain", True, ["CheckpointNotFound", True])
    job = flows.store.get_job("plain")
    flows.store.record_fields(job, {"spec": job.spec.model_copy(update={"disableMigrate": True})})
    result = _migrate(flows, "plain", checkpoint_seconds=5)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("plain")
    assert job.status == JobStatus.EXECUTING
    assert job.history[-1].reason == (
        f"no checkpoint could be restored: rerun from the start on {job.instanceId}")
    assert old_seen == []  # the old agent was never asked for a checkpoint
    assert [_kinds(s) for s in new_seen] == [["restore", "run"]]
    assert flows.state(old) == "terminated"


# ---- through the API ------------------------------------------------------------------------


def test_instance_and_container_options_show_as_asked(alice, runtime):
    group = runtime.ec2.create_security_group(GroupName="web", Description="web")["GroupId"]
    body = {**SUBMIT, "gpu": 1, "zone": "us-east-1b", "securityGroups": [group],
            "rootVolSize": 30, "imageVolSize": 80, "privileged": True, "withRoot": True,
            "containerOpts": "--cap-add SYS_PTRACE --shm-size 1g", "dirMaps": ["/data:/mnt/d"],
            "disableMigrate": True, "migratePolicy": "[disable=true]",
            "publish": ["8080:80", "5353:53/udp"]}
    submitted = alice.post("/v1/jobs", body)
    assert submitted.status_code == 201, submitted.body
    job = alice.get(f"/v1/jobs/{submitted.json_body['id']}").json_body
    assert (job["gpu"], job["zone"], job["securityGroups"]) == (1, "us-east-1b", [group])
    assert (job["rootVolSize"], job["imageVolSize"]) == (30, 80)
    assert (job["privileged"], job["withRoot"], job["disableMigrate"]) == (True, True, True)
    assert job["containerOpts"] == ["--cap-add=SYS_PTRACE", "--shm-size=1g"]
    assert job["dirMaps"] == [{"hostPath": "/data", "containerPath": "/mnt/d"}]
    assert job["migratePolicy"]["disable"] is True
    assert job["portMappings"] == ["8080:80", "5353:53/udp"]


@pytest.mark.parametrize("change, words", [
    ({"zone": "xx-north-9a"}, "zone xx-north-9a is not an available zone"),
    ({"zone": "nowhere"}, "'nowhere' is not an availability zone name"),
    ({"securityGroups": ["sg-0123456789abcdef0"]}, "security group sg-0123456789abcdef0 does not exist"),
    ({"securityGroups": ["default"]}, "not a security group id"),
    ({"gpu": 0}, "gpu"),
    ({"rootVolSize": 2}, "rootVolSize"),
    ({"containerOpts": "--network host"}, "--network is not allowed"),
    ({"containerOpts": "--shm-size"}, "--shm-size needs a value"),
    ({"containerOpts": "--user 1000", "withRoot": True}, "give one of them"),
    ({"dirMaps": ["relative:/mnt/x"]}, "absolute paths"),
    ({"dirMaps": ["/a:/mnt/x"], "dataVolumes": ["[size=5]:/mnt/x"]}, "mounted at /mnt/x"),
    ({"disableMigrate": True, "migratePolicy": "[enable=true]"}, "disableMigrate forbids"),
    ({"migratePolicy": "[enable=true,disable=true]"}, "enable or disable"),
    ({"publish": ["80"]}, "'80' is not HOST:CONTAINER"),
    ({"publish": ["70000:80"]}, "ports 1-65535"),
    ({"publish": ["8080:80", "8080:81"]}, "published twice"),
])
def test_bad_instance_and_container_options_are_refused(alice, store, change, words):
    before = len(list(store.list_jobs(owner="alice", statuses=frozenset(), name=None, limit=50,
                                      token=None)[0]))
    response = alice.post("/v1/jobs", {**SUBMIT, **change})
    assert response.status_code == 400, response.body
    assert words in response.json_body["message"]
    after = store.list_jobs(owner="alice", statuses=frozenset(), name=None, limit=50, token=None)
    assert len(after[0]) == before


def test_a_job_never_checkpointed_cannot_be_migrated_or_suspended(alice, runtime, store):
    job = seed_job(runtime, store, "pinned", JobStatus.EXECUTING, instance="i-0abc")
    store.record_fields(job, {"spec": job.spec.model_copy(update={"disableMigrate": True})})
    for action in ("migrate", "suspend"):
        response = alice.post(f"/v1/jobs/pinned/{action}", {})
        assert response.status_code == 409, response.body
        assert "disableMigrate" in response.json_body["message"]
    assert store.get_job("pinned").status == JobStatus.EXECUTING
