"""Metering: the vCPU core-hours each job's instances use, counted once per instance-second
and split by calendar month (UTC), as licenses charge and `float report usage` shows them.

An instance is recorded when it is released (endings.record_usage): one usage record per
month it ran in, keyed by its launch, its id and the month, so a repeated or late release of
the same instance stores nothing new. While it still runs, its seconds so far are read from
EC2 instead, so a month's figure includes the instances running now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chalicelib import fleet, prices
from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, Forbidden
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store, UsageRecord
from chalicelib.wire.api import JobView
from chalicelib.wire.billing import Savings, UsageReport, UserUsage, usd

_HOURS = Decimal("0.0001")
_USD = Decimal("0.00000001")
_RATES_CACHE = "metering.rates"
_RATES_KEPT = 4096
# Instance states that are still billed.
_RUNNING = ("pending", "running", "stopping", "shutting-down")


def month_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instant of `month` (YYYY-MM) and of the month after it."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"month must be YYYY-MM such as 2026-12, not {month!r}",
                         field="month") from None
    following = (start.replace(year=start.year + 1, month=1) if start.month == 12
                 else start.replace(month=start.month + 1))
    return start, following


@dataclass(frozen=True)
class Piece:
    """The part of an instance's run that fell in one month."""

    month: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return max(0, int((self.end - self.start).total_seconds()))


def pieces(start: datetime, end: datetime) -> list[Piece]:
    """[start, end) cut at each month's first instant."""
    found: list[Piece] = []
    cursor = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while cursor < end:
        _, following = month_bounds(month_of(cursor))
        stop = min(end, following)
        found.append(Piece(month_of(cursor), cursor, stop))
        cursor = stop
    return found or [Piece(month_of(start), start, start)]


def core_hours(vcpus: int, seconds: int) -> Decimal:
    return (Decimal(vcpus * seconds) / 3600).quantize(_HOURS, ROUND_HALF_UP)


def vcpus_of(runtime: Runtime, instance_type: str, known: dict[str, int] | None = None) -> int:
    """The type's vCPUs (`known` caches them across one pass)."""
    if known is not None and instance_type in known:
        return known[instance_type]
    described = runtime.ec2.describe_instance_types(InstanceTypes=[instance_type])
    vcpus = int(described["InstanceTypes"][0]["VCpuInfo"]["DefaultVCpus"])
    if known is not None:
        known[instance_type] = vcpus
    return vcpus


@dataclass(frozen=True)
class Rates:
    """What an instance costs an hour, as it ran and On-demand (USD; None: not known)."""

    market: str
    price: Decimal | None
    on_demand: Decimal | None


def rates(runtime: Runtime, instance: dict[str, Any]) -> Rates:
    """The instance's prices; an instance's never change, so each is asked for once per
    process (`float show` of a running job asks often)."""
    known: dict[str, Rates] = runtime.cache.setdefault(_RATES_CACHE, {})
    instance_id = str(instance["InstanceId"])
    if instance_id in known:
        return known[instance_id]
    instance_type = str(instance["InstanceType"])
    on_demand = prices.on_demand_price(runtime, instance_type)
    if instance.get("InstanceLifecycle") != "spot":
        rate = Rates("on-demand", on_demand, on_demand)
    else:
        zone = instance.get("Placement", {}).get("AvailabilityZone")
        launched = instance["LaunchTime"].astimezone(UTC)
        rate = Rates("spot", prices.spot_price(runtime, instance_type, zone, launched),
                     on_demand)
    if rate.price is not None and rate.on_demand is not None:
        if len(known) >= _RATES_KEPT:
            known.pop(next(iter(known)))
        known[instance_id] = rate
    return rate


def cost_of(price: Decimal | None, seconds: int) -> Decimal | None:
    return None if price is None else (price * seconds / 3600).quantize(_USD, ROUND_HALF_UP)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def usage_records(runtime: Runtime, job_id: str, owner: str, instance: dict[str, Any],
                  ended: datetime) -> list[UsageRecord]:
    """What the instance used from its launch to `ended`, one record a month."""
    launched = instance["LaunchTime"].astimezone(UTC)
    instance_type = str(instance["InstanceType"])
    vcpus = vcpus_of(runtime, instance_type)
    rate = rates(runtime, instance)
    return [UsageRecord(
        jobId=job_id, recordTime=f"{launched.isoformat()}#{instance['InstanceId']}#{p.month}",
        month=p.month, start=_iso(p.start), end=_iso(p.end), owner=owner,
        instanceId=str(instance["InstanceId"]), instanceType=instance_type, market=rate.market,
        vcpus=vcpus, seconds=p.seconds, coreHours=str(core_hours(vcpus, p.seconds)),
        pricePerHour=_text(rate.price), onDemandPricePerHour=_text(rate.on_demand),
        cost=_text(cost_of(rate.price, p.seconds)),
        onDemandCost=_text(cost_of(rate.on_demand, p.seconds)))
        for p in pieces(launched, max(launched, ended))]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Use:
    """What one user's (or one job's) instances used: core-hours, instance-seconds, the
    jobs, and with prices what they cost and would have cost On-demand (USD). Seconds with
    no known price are counted apart, not in either cost."""

    coreHours: Decimal = Decimal(0)
    instanceSeconds: int = 0
    jobs: set[str] = field(default_factory=set)
    cost: Decimal = Decimal(0)
    onDemandCost: Decimal = Decimal(0)
    unpricedSeconds: int = 0

    def add(self, job_id: str, hours: Decimal, seconds: int, cost: Decimal | None,
            on_demand: Decimal | None) -> None:
        self.coreHours += hours
        self.instanceSeconds += seconds
        self.jobs.add(job_id)
        if cost is None or on_demand is None:
            self.unpricedSeconds += seconds
        else:
            self.cost += cost
            self.onDemandCost += on_demand

    def add_record(self, record: UsageRecord) -> None:
        self.add(record.jobId, Decimal(record.coreHours), record.seconds,
                 None if record.cost is None else Decimal(record.cost),
                 None if record.onDemandCost is None else Decimal(record.onDemandCost))

    def add_running(self, runtime: Runtime, job_id: str, instance: dict[str, Any],
                    begin: datetime, stop: datetime, priced: bool,
                    known: dict[str, int]) -> None:
        """The instance's seconds from `begin` to `stop` (none if stop is not after begin)."""
        if stop <= begin:
            return
        seconds = int((stop - begin).total_seconds())
        vcpus = vcpus_of(runtime, str(instance["InstanceType"]), known)
        rate = rates(runtime, instance) if priced else Rates("", None, None)
        self.add(job_id, core_hours(vcpus, seconds), seconds, cost_of(rate.price, seconds),
                 cost_of(rate.on_demand, seconds))


def month_use(runtime: Runtime, store: Store, month: str, owner: str | None = None,
              priced: bool = False) -> dict[str, Use]:
    """Use by user in `month`: the released instances' records, and the seconds so far of
    each instance still running, for only its part in that month (priced as it runs, if
    `priced`: that asks EC2 and the Price List for each)."""
    start, following = month_bounds(month)
    totals: dict[str, Use] = {}
    recorded: set[str] = set()
    for record in store.usage_in_month(month, owner):
        recorded.add(record.instanceId)
        totals.setdefault(record.owner, Use()).add_record(record)
    now = runtime.clock()
    known: dict[str, int] = {}
    for instance, job_id, job_owner in _running(runtime, store):
        if instance["InstanceId"] in recorded or (owner is not None and job_owner != owner):
            continue
        launched = instance["LaunchTime"].astimezone(UTC)
        use = Use()
        use.add_running(runtime, job_id, instance, max(launched, start), min(now, following),
                        priced, known)
        if use.instanceSeconds:
            mine = totals.setdefault(job_owner, Use())
            mine.add(job_id, use.coreHours, use.instanceSeconds,
                     None if use.unpricedSeconds else use.cost,
                     None if use.unpricedSeconds else use.onDemandCost)
    return dict(sorted(totals.items()))


def job_use(runtime: Runtime, store: Store, job: JobRecord) -> Use:
    """Everything the job's instances used, priced: those released, and the one it runs on
    now up to now."""
    use = Use()
    recorded: set[str] = set()
    for record in store.usage_of(job.id):
        recorded.add(record.instanceId)
        use.add_record(record)
    if job.instanceId is not None and job.instanceId not in recorded:
        instance = fleet.describe(runtime, job.instanceId)
        if instance is not None and instance["State"]["Name"] in _RUNNING:
            use.add_running(runtime, job.id, instance, instance["LaunchTime"].astimezone(UTC),
                            runtime.clock(), True, {})
    return use


def savings_of(use: Use) -> Savings | None:
    """The On-demand comparison of `use`; None before anything was priced."""
    if use.instanceSeconds == use.unpricedSeconds:
        return None
    saved = use.onDemandCost - use.cost
    percent = (round(float(100 * saved / use.onDemandCost), 1) if use.onDemandCost > 0
               else None)
    return Savings(onDemandCost=usd(use.onDemandCost), savings=usd(saved),
                   savingsPercent=percent, unpricedSeconds=use.unpricedSeconds)


def priced_view(view: JobView, use: Use) -> JobView:
    """The job's view with its cost and savings."""
    savings = savings_of(use)
    if savings is None:
        return view
    return view.model_copy(update={"cost": usd(use.cost), "savings": savings})


def _running(runtime: Runtime, store: Store) -> Iterable[tuple[dict[str, Any], str, str]]:
    """Each billed instance launched for a job, with the job and its owner."""
    owners: dict[str, str | None] = {}
    for page in runtime.ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": "tag-key", "Values": [fleet.JOB_TAG]},
            {"Name": "instance-state-name", "Values": list(_RUNNING)}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                job_id = tags.get(fleet.JOB_TAG)
                if job_id is None:
                    continue
                if job_id not in owners:
                    job = store.get_job(job_id)
                    owners[job_id] = job.owner if job is not None else None
                job_owner = owners[job_id]
                if job_owner is not None:
                    yield dict(instance), job_id, job_owner


def total(uses: dict[str, Use]) -> Decimal:
    return sum((use.coreHours for use in uses.values()), Decimal(0))


def report(runtime: Runtime, store: Store, principal: Principal, month: str | None,
           user: str | None, priced: bool = False) -> UsageReport:
    """A month's use by user (this month by default), with its spend if `priced`: admins see
    anyone's, users their own."""
    if not principal.is_admin:
        if user is not None and user != principal.username:
            raise Forbidden("only an admin may see other users' usage")
        user = principal.username
    month = month or month_of(runtime.clock())
    month_bounds(month)  # refuses a malformed month by name
    uses = month_use(runtime, store, month, owner=user, priced=priced)
    users = [UserUsage(user=name, coreHours=str(use.coreHours),
                       instanceSeconds=use.instanceSeconds, jobs=len(use.jobs))
             for name, use in uses.items()]
    made = UsageReport(month=month, coreHours=str(total(uses)), users=users)
    if not priced:
        return made
    for line, use in zip(users, uses.values(), strict=True):
        line.cost, line.onDemandCost = usd(use.cost), usd(use.onDemandCost)
        line.savings, line.unpricedSeconds = usd(use.onDemandCost - use.cost), use.unpricedSeconds
    spent = sum((u.cost for u in uses.values()), Decimal(0))
    on_demand = sum((u.onDemandCost for u in uses.values()), Decimal(0))
    return made.model_copy(update={"cost": usd(spent), "onDemandCost": usd(on_demand),
                                   "savings": usd(on_demand - spent)})
