"""Choosing instance types and the order of launches from a job's ranges and vmPolicy."""

import pytest

from chalicelib.placement import NoCandidate, Offer, launch_plan
from chalicelib.wire.specs import CpuRange, Range, VmPolicy

BOTH = ("on-demand", "spot")
OFFERS = [
    Offer("c5.large", 2, 4, ("x86_64",), BOTH, 0.035),
    Offer("m5.large", 2, 8, ("x86_64",), BOTH, 0.040),
    Offer("c5.xlarge", 4, 8, ("x86_64",), BOTH, 0.070),
    Offer("r5.xlarge", 4, 32, ("x86_64",), BOTH, 0.090),
    Offer("m6g.large", 2, 8, ("arm64",), BOTH, 0.030),
    Offer("t2.large", 2, 8, ("x86_64",), ("on-demand",), None),
    Offer("c5.2xlarge", 8, 16, ("x86_64",), BOTH, 0.140),
]


def _plan(cpu, mem, policy="[spotOnly=true]", instance_type=None, **options):
    return [(tuple(a.instanceTypes), a.market, a.waitSeconds) for a in launch_plan(
        OFFERS, CpuRange.model_validate(cpu), Range.model_validate(mem), instance_type,
        VmPolicy.model_validate(policy), **options)]


def test_a_spot_round_offers_ec2_the_cheapest_types_that_fit_at_once():
    assert _plan("2:4", "4:8") == [(("c5.large", "m5.large", "c5.xlarge"), "spot", 0)]


def test_another_architecture_never_qualifies():
    assert all("m6g.large" not in names for names, _, _ in _plan("2", "8", "[onDemand=true]"))


def test_on_demand_tries_types_one_by_one_from_the_low_end_of_the_range():
    assert _plan("2:8", "8:16", "[onDemand=true]") == [
        (("m5.large",), "on-demand", 0), (("t2.large",), "on-demand", 0),
        (("c5.xlarge",), "on-demand", 0)]


def test_spot_first_retries_spot_rounds_then_falls_back_to_the_same_sizes_on_demand():
    plan = _plan("2", "4:8", "[spotFirst=true,retryLimit=2,retryInterval=300s]")
    assert plan == [
        (("c5.large", "m5.large"), "spot", 0),
        (("c5.large", "m5.large"), "spot", 300),
        (("c5.large",), "on-demand", 0), (("m5.large",), "on-demand", 0),
        (("t2.large",), "on-demand", 0),
    ]


def test_a_moving_job_asks_for_its_own_type_alone_before_the_others():
    plan = _plan("2", "4:8", "[spotFirst=true,retryLimit=3,retryInterval=300s]",
                 prefer="m5.large", moving=True)
    assert plan == [
        (("m5.large",), "spot", 0), (("c5.large",), "spot", 0),
        (("m5.large",), "on-demand", 0), (("c5.large",), "on-demand", 0),
        (("t2.large",), "on-demand", 0),
    ]


def test_an_instance_type_overrides_the_ranges():
    assert _plan("1", "1", "[spotOnly=true]", instance_type="r5.xlarge") == [
        (("r5.xlarge",), "spot", 0)]


@pytest.mark.parametrize("cpu, mem, policy, instance_type", [
    ("64:96", "4", "[spotFirst=true]", None),
    ("2", "8", "[spotOnly=true]", "t2.large"),
    ("2", "4", "[onDemand=true]", "x9.huge"),
])
def test_nothing_to_launch_is_a_named_error(cpu, mem, policy, instance_type):
    with pytest.raises(NoCandidate, match="no x86_64 instance type"):
        _plan(cpu, mem, policy, instance_type)
