"""Reading an instant fleet's answer, and the worker settings the control plane reads."""

import pytest

from chalicelib.config import RESOURCE_ENV, Config, ConfigError
from chalicelib.workers import (
    InsufficientCapacity,
    LaunchRefused,
    Subnet,
    WorkerLaunch,
    _fleet_request,
    _launched,
)

LAUNCH = WorkerLaunch(token="job-1-1-0", market="spot", instance_types=("c5.large", "m5.large"),
                      user_data="", tags={})
SUBNETS = [Subnet("subnet-0a", "us-east-1a"), Subnet("subnet-0b", "us-east-1b")]


def _error(code, kind="c5.large", subnet="subnet-0a"):
    return {"LaunchTemplateAndOverrides": {"Overrides": {"InstanceType": kind, "SubnetId": subnet}},
            "Lifecycle": "spot", "ErrorCode": code, "ErrorMessage": f"{code} for {kind}"}


def test_a_spot_fleet_asks_for_every_type_in_every_subnet_price_capacity_optimized():
    request = _fleet_request(LAUNCH, "tmpl", SUBNETS)
    assert request["Type"] == "instant" and request["ClientToken"] == "job-1-1-0"
    assert request["SpotOptions"]["AllocationStrategy"] == "price-capacity-optimized"
    assert request["TargetCapacitySpecification"] == {"TotalTargetCapacity": 1,
                                                      "DefaultTargetCapacityType": "spot"}
    (config,) = request["LaunchTemplateConfigs"]
    assert [(o["InstanceType"], o["SubnetId"]) for o in config["Overrides"]] == [
        ("c5.large", "subnet-0a"), ("c5.large", "subnet-0b"),
        ("m5.large", "subnet-0a"), ("m5.large", "subnet-0b")]


def test_the_type_and_zone_ec2_chose_come_from_the_answer():
    answer = {"Instances": [{"InstanceIds": ["i-0abc"], "InstanceType": "m5.large",
                             "Lifecycle": "spot", "LaunchTemplateAndOverrides": {
                                 "Overrides": {"InstanceType": "m5.large",
                                               "SubnetId": "subnet-0b"}}}],
              "Errors": [_error("InsufficientInstanceCapacity")]}
    launched = _launched(answer, LAUNCH, SUBNETS)
    assert (launched.instance_id, launched.instance_type, launched.zone) == (
        "i-0abc", "m5.large", "us-east-1b")


def test_capacity_errors_in_the_answer_send_the_workflow_to_the_next_attempt():
    answer = {"Instances": [], "Errors": [_error("InsufficientInstanceCapacity"),
                                          _error("InvalidFleetConfiguration", "m5.large")]}
    with pytest.raises(InsufficientCapacity, match="InsufficientInstanceCapacity"):
        _launched(answer, LAUNCH, SUBNETS)


def test_other_errors_in_the_answer_are_a_refusal_naming_them():
    answer = {"Instances": [], "Errors": [_error("InvalidParameterValue")]}
    with pytest.raises(LaunchRefused, match="InvalidParameterValue for c5.large"):
        _launched(answer, LAUNCH, SUBNETS)


def _env(**changes):
    env = {name: "x" for name in RESOURCE_ENV}
    env.update({"CHECKPOINT_INTERVAL_SECONDS": "0", "WORKER_SUBNETS": "default", **changes})
    return env


def test_default_worker_subnets_mean_the_default_vpcs():
    assert Config.from_env(_env(WORKER_SUBNETS="default")).worker_subnets == ()
    assert Config.from_env(_env(WORKER_SUBNETS="subnet-0a1,subnet-0b2")).worker_subnets == (
        "subnet-0a1", "subnet-0b2")


def test_a_default_checkpoint_interval_is_none_or_ten_seconds_and_more():
    assert Config.from_env(_env()).checkpoint_interval_seconds == 0
    assert Config.from_env(_env(CHECKPOINT_INTERVAL_SECONDS="600")).checkpoint_interval_seconds == 600
    for wrong in ("5", "-1", "10m", ""):
        with pytest.raises(ConfigError, match="CHECKPOINT_INTERVAL_SECONDS"):
            Config.from_env(_env(CHECKPOINT_INTERVAL_SECONDS=wrong))


def test_a_worker_subnet_that_is_no_subnet_id_is_refused_at_start():
    with pytest.raises(ConfigError, match="'sg-0a1' is not a subnet id"):
        Config.from_env(_env(WORKER_SUBNETS="subnet-0a1,sg-0a1"))
