"""Launching workers from the stack's launch template as instant EC2 Fleets: what reaches the
instance, where EC2 may put it, and what a retry or a refusal does."""

from __future__ import annotations

import base64

import pytest

from chalicelib import fleet, workers
from chalicelib.wire.tasks import Attempt
from localmode.instances import agent_arguments

SPOT = Attempt(instanceTypes=["c5.large", "m5.large"], market="spot")


def _launch(runtime, token="job-1-1-0", attempt=SPOT, **options):
    queue = fleet.command_queue(runtime, token)
    instance = fleet.launch(runtime, "job-1", token, attempt, queue, {"team": "genomics"},
                            fleet.InstanceOptions(**options))
    return instance, queue


def _tagged(runtime, job_id="job-1"):
    return fleet.job_instances(runtime, job_id)


def test_the_instance_carries_the_user_data_that_starts_its_agent_on_its_queue(runtime):
    instance, queue = _launch(runtime)
    raw = runtime.ec2.describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="userData")["UserData"]["Value"]
    flags = agent_arguments(base64.b64decode(raw).decode())
    assert flags[flags.index("--commands-queue") + 1] == queue
    assert flags[flags.index("--bucket") + 1] == runtime.config.data_bucket
    (described,) = _tagged(runtime)
    assert described["InstanceLifecycle"] == "spot"
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags["team"] == "genomics" and tags[fleet.JOB_TAG] == "job-1"


def test_a_retried_launch_finds_the_instance_the_first_try_launched(runtime):
    first, _ = _launch(runtime)
    again, _ = _launch(runtime)
    assert again["InstanceId"] == first["InstanceId"]
    assert [i["InstanceId"] for i in _tagged(runtime)] == [first["InstanceId"]]


def test_a_zone_keeps_the_launch_to_that_zones_subnets(runtime):
    zone = workers.zones(runtime)[2]
    instance, _ = _launch(runtime, zone=zone)
    assert instance["Placement"]["AvailabilityZone"] == zone
    (described,) = _tagged(runtime)
    assert described["Placement"]["AvailabilityZone"] == zone
    assert described["SubnetId"] in {s.subnet_id for s in workers.subnets(runtime) if s.zone == zone}


def test_a_launch_starts_from_the_stacks_template_with_its_own_disks_tags_and_groups(runtime):
    group = runtime.ec2.create_security_group(GroupName="job-group",
                                              Description="a job's own")["GroupId"]
    data = workers.launch_data(runtime, workers.WorkerLaunch(
        token="t", market="spot", instance_types=("c5.large",), user_data="#!/bin/bash\n",
        tags={"team": "genomics"}, security_groups=(group,),
        block_devices=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 50}}]))
    # What keeps a job's container from the host's credentials: IMDSv2, one hop.
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert "State" not in data["MetadataOptions"]  # read-only in a description
    assert data["IamInstanceProfile"]["Arn"].startswith("arn:aws:iam::")
    assert data["SecurityGroupIds"] == [group]
    assert data["BlockDeviceMappings"] == [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 50}}]
    assert base64.b64decode(data["UserData"]) == b"#!/bin/bash\n"
    for spec in data["TagSpecifications"]:
        tags = {t["Key"]: t["Value"] for t in spec["Tags"]}
        assert tags["team"] == "genomics" and "openfloat:stack" in tags


def test_without_job_groups_the_stacks_own_security_group_stays(runtime):
    data = workers.launch_data(runtime, workers.WorkerLaunch(
        token="t", market="spot", instance_types=("c5.large",), user_data="", tags={}))
    (group,) = data["SecurityGroupIds"]
    described = runtime.ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    assert described["IpPermissions"] == []  # no ingress


def test_capacity_errors_in_the_fleets_answer_are_insufficient_capacity(runtime, no_capacity):
    no_capacity.update({("spot", "c5.large"), ("spot", "m5.large")})
    with pytest.raises(fleet.InsufficientCapacity, match="InsufficientInstanceCapacity"):
        _launch(runtime)
    assert _tagged(runtime) == []
    # The launch's own template is gone all the same.
    templates = runtime.ec2.describe_launch_templates()["LaunchTemplates"]
    assert [t["LaunchTemplateId"] for t in templates] == [runtime.config.worker_launch_template]


def test_an_on_demand_launch_is_a_fleet_of_its_one_type(runtime):
    instance, _ = _launch(runtime, token="job-1-1-3",
                          attempt=Attempt(instanceTypes=["m5.large"], market="on-demand"))
    assert instance["InstanceType"] == "m5.large"
    (described,) = _tagged(runtime)
    assert "InstanceLifecycle" not in described
