"""Metering: every instance-second of every job counted once, as vCPUs × hours, split by
calendar month; a repeated or late release records nothing twice, and a month's figure adds
the instances still running, each only for its part in that month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chalicelib import endings, fleet, metering
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job


def _instance(runtime, job_id: str, instance_type: str = "c5.large") -> dict:
    instance_id = runtime.ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType=instance_type,
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": fleet.JOB_TAG, "Value": job_id}]}],
    )["Instances"][0]["InstanceId"]
    return fleet.describe(runtime, instance_id)


def test_a_month_is_cut_at_its_first_instant():
    start = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    cut = metering.pieces(start, start + timedelta(hours=3))
    assert [(p.month, p.seconds) for p in cut] == [("2026-11", 3600), ("2026-12", 7200)]
    year = metering.pieces(datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
                           datetime(2027, 1, 1, 0, 30, tzinfo=UTC))
    assert [(p.month, p.seconds) for p in year] == [("2026-12", 1800), ("2027-01", 1800)]


def test_an_instance_across_a_month_is_recorded_once_per_month(runtime):
    instance = _instance(runtime, "job-1")
    instance["LaunchTime"] = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    records = metering.usage_records(runtime, "job-1", "alice", instance,
                                     datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    assert [(r.month, r.seconds, r.coreHours, r.vcpus) for r in records] == [
        ("2026-11", 3600, "2.0000", 2), ("2026-12", 7200, "4.0000", 2)]
    assert records[0].end == records[1].start == "2026-12-01T00:00:00Z"


def test_a_repeated_release_records_the_instance_once(runtime, store):
    job = seed_job(runtime, store, "job-1", JobStatus.EXECUTING)
    instance = _instance(runtime, "job-1")
    launched = instance["LaunchTime"].astimezone(UTC)
    runtime.clock = lambda: launched + timedelta(hours=1)
    assert endings.record_usage(runtime, store, job, instance["InstanceId"]) is True
    # The same release again, and a late one an hour on (a duplicated or reordered event).
    assert endings.record_usage(runtime, store, job, instance["InstanceId"]) is False
    runtime.clock = lambda: launched + timedelta(hours=2)
    assert endings.record_usage(runtime, store, job, instance["InstanceId"]) is False
    [record] = store.usage_of("job-1")
    assert (record.seconds, record.coreHours, record.owner) == (3600, "2.0000", "alice")


def test_a_month_adds_running_instances_and_counts_each_once(runtime, store):
    seed_job(runtime, store, "moving", JobStatus.EXECUTING, owner="alice")
    seed_job(runtime, store, "other", JobStatus.EXECUTING, owner="bob")
    old = _instance(runtime, "moving")
    _instance(runtime, "moving", "c5.xlarge")  # its next instance, while the move overlaps
    _instance(runtime, "other")
    launched = old["LaunchTime"].astimezone(UTC)
    runtime.clock = lambda: launched + timedelta(minutes=30)
    month = metering.month_of(launched)
    use = metering.month_use(runtime, store, month)
    # 30 min of 2 vCPUs and of 4 vCPUs for alice; 30 min of 2 for bob (moto launches them all
    # within the same second or so: allow one second either way).
    assert abs(use["alice"].coreHours - Decimal(3)) <= Decimal("0.002")
    assert abs(use["bob"].coreHours - Decimal(1)) <= Decimal("0.001")
    # The old instance released: now recorded, and not counted again as running.
    job = store.get_job("moving")
    endings.record_usage(runtime, store, job, old["InstanceId"])
    again = metering.month_use(runtime, store, month, owner="alice")
    assert list(again) == ["alice"]
    assert abs(again["alice"].coreHours - Decimal(3)) <= Decimal("0.002")
    assert metering.month_use(runtime, store, "2020-01") == {}


def test_the_usage_report_is_by_user_and_users_see_only_their_own(admin, alice, runtime, store):
    for owner, job_id in (("alice", "a-1"), ("alice", "a-2"), ("bob", "b-1")):
        seed_job(runtime, store, job_id, JobStatus.EXECUTING, owner=owner)
        instance = _instance(runtime, job_id)
        launched = instance["LaunchTime"].astimezone(UTC)
        runtime.clock = lambda launched=launched: launched + timedelta(hours=1)
        endings.record_usage(runtime, store, store.get_job(job_id), instance["InstanceId"])
    month = metering.month_of(runtime.clock())
    report = admin.get(f"/v1/reports/usage?month={month}").json_body
    assert report["month"] == month and report["coreHours"] == "6.0000"
    assert [(u["user"], u["coreHours"], u["jobs"]) for u in report["users"]] == [
        ("alice", "4.0000", 2), ("bob", "2.0000", 1)]
    own = alice.get(f"/v1/reports/usage?month={month}").json_body
    assert [u["user"] for u in own["users"]] == ["alice"]
    refused = alice.get(f"/v1/reports/usage?user=bob&month={month}")
    assert refused.status_code == 403
    bad = admin.get("/v1/reports/usage?month=2026-13")
    assert bad.status_code == 400 and bad.json_body["field"] == "month"
    assert "month must be YYYY-MM" in bad.json_body["message"]


def _spot(runtime, job_id: str) -> dict:
    instance_id = runtime.ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="c5.large",
        InstanceMarketOptions={"MarketType": "spot"},
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": fleet.JOB_TAG, "Value": job_id}]}],
    )["Instances"][0]["InstanceId"]
    return fleet.describe(runtime, instance_id)


def test_a_job_reclaimed_twice_is_charged_for_every_instance_second_and_shows_its_savings(
        alice, runtime, store):
    job = seed_job(runtime, store, "twice", JobStatus.EXECUTING)
    first, second, third = (_spot(runtime, "twice") for _ in range(3))
    launched = max(i["LaunchTime"] for i in (first, second, third)).astimezone(UTC)
    # Reclaimed after an hour, then again after two; it runs on the third for three.
    for instance, hours in ((first, 1), (second, 2)):
        runtime.clock = lambda hours=hours: launched + timedelta(hours=hours)
        endings.release(runtime, store, job, instance["InstanceId"])
    store.record_fields(store.get_job("twice"), {"instanceId": third["InstanceId"]})
    runtime.clock = lambda: launched + timedelta(hours=3)

    records = sorted(store.usage_of("twice"), key=lambda r: r.seconds)
    assert [(r.instanceId, r.market) for r in records] == [
        (first["InstanceId"], "spot"), (second["InstanceId"], "spot")]
    # moto launches the three within a second or so of each other.
    assert [round(r.seconds / 3600) for r in records] == [1, 2]
    shown = alice.get("/v1/jobs/twice").json_body
    spot = Decimal(records[0].pricePerHour)
    on_demand = Decimal(records[0].onDemandPricePerHour)
    assert spot < on_demand
    seconds = sum(r.seconds for r in records) + 3 * 3600
    cost = Decimal(shown["cost"].removesuffix(" USD"))
    # Every instance-second of all three, the running one up to now, at its price.
    assert abs(cost - spot * seconds / 3600) <= Decimal("0.00001")
    saved = shown["savings"]
    assert abs(Decimal(saved["onDemandCost"].removesuffix(" USD"))
               - on_demand * seconds / 3600) <= Decimal("0.001")
    assert Decimal(saved["savings"].removesuffix(" USD")) > 0
    assert saved["savingsPercent"] > 90 and saved["unpricedSeconds"] == 0


def test_the_cost_report_sums_spend_and_savings_by_user(admin, runtime, store):
    seed_job(runtime, store, "c-1", JobStatus.EXECUTING, owner="alice")
    instance = _spot(runtime, "c-1")
    launched = instance["LaunchTime"].astimezone(UTC)
    runtime.clock = lambda: launched + timedelta(hours=2)
    endings.release(runtime, store, store.get_job("c-1"), instance["InstanceId"])
    [record] = store.usage_of("c-1")
    report = admin.get(f"/v1/reports/cost?month={metering.month_of(launched)}").json_body
    [line] = report["users"]
    assert line["user"] == "alice" and line["cost"] == f"{Decimal(record.cost)} USD"
    assert line["onDemandCost"] == f"{Decimal(record.onDemandCost)} USD"
    assert report["savings"] == (
        f"{Decimal(record.onDemandCost) - Decimal(record.cost)} USD")
