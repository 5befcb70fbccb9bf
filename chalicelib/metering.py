"""Metering: the vCPU core-hours each job's instances use, counted once per instance-second
and split by calendar month (UTC), as licenses charge and `float report usage` shows them.

An instance is recorded when it is released (endings.record_usage): one usage record per
month it ran in, keyed by its launch, its id and the month, so a repeated or late release of
the same instance stores nothing new. While it still runs, its seconds so far are read from
EC2 instead, so a month's figure includes the instances running now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chalicelib import fleet
from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, Forbidden
from chalicelib.runtime import Runtime
from chalicelib.store import Store, UsageRecord
from chalicelib.wire.licenses import UsageReport, UserUsage

_HOURS = Decimal("0.0001")
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


def usage_records(runtime: Runtime, job_id: str, owner: str, instance: dict[str, Any],
                  ended: datetime) -> list[UsageRecord]:
    """What the instance used from its launch to `ended`, one record a month."""
    launched = instance["LaunchTime"].astimezone(UTC)
    instance_type = str(instance["InstanceType"])
    vcpus = vcpus_of(runtime, instance_type)
    market = "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"
    return [UsageRecord(
        jobId=job_id, recordTime=f"{launched.isoformat()}#{instance['InstanceId']}#{p.month}",
        month=p.month, start=_iso(p.start), end=_iso(p.end), owner=owner,
        instanceId=str(instance["InstanceId"]), instanceType=instance_type, market=market,
        vcpus=vcpus, seconds=p.seconds, coreHours=str(core_hours(vcpus, p.seconds)))
        for p in pieces(launched, max(launched, ended))]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Use:
    """One user's core-hours in a month, the instance-seconds they came from, and the jobs."""

    coreHours: Decimal
    instanceSeconds: int
    jobs: frozenset[str]


def month_use(runtime: Runtime, store: Store, month: str,
              owner: str | None = None) -> dict[str, Use]:
    """Core-hours by user in `month`: the released instances' records, and the seconds so far
    of each instance still running, for only its part in that month."""
    start, following = month_bounds(month)
    totals: dict[str, tuple[Decimal, int, frozenset[str]]] = {}

    def add(user: str, hours: Decimal, seconds: int, job_id: str) -> None:
        before = totals.get(user, (Decimal(0), 0, frozenset()))
        totals[user] = (before[0] + hours, before[1] + seconds, before[2] | {job_id})

    recorded: set[str] = set()
    for record in store.usage_in_month(month, owner):
        recorded.add(record.instanceId)
        add(record.owner, Decimal(record.coreHours), record.seconds, record.jobId)
    now = runtime.clock()
    known: dict[str, int] = {}
    for instance, job_id, job_owner in _running(runtime, store):
        if instance["InstanceId"] in recorded or (owner is not None and job_owner != owner):
            continue
        launched = instance["LaunchTime"].astimezone(UTC)
        begin, stop = max(launched, start), min(now, following)
        if stop <= begin:
            continue
        seconds = int((stop - begin).total_seconds())
        vcpus = vcpus_of(runtime, str(instance["InstanceType"]), known)
        add(job_owner, core_hours(vcpus, seconds), seconds, job_id)
    return {user: Use(*figures) for user, figures in sorted(totals.items())}


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
           user: str | None) -> UsageReport:
    """A month's use by user (this month by default): admins see anyone's, users their own."""
    if not principal.is_admin:
        if user is not None and user != principal.username:
            raise Forbidden("only an admin may see other users' usage")
        user = principal.username
    month = month or month_of(runtime.clock())
    month_bounds(month)  # refuses a malformed month by name
    uses = month_use(runtime, store, month, owner=user)
    return UsageReport(month=month, coreHours=str(total(uses)), users=[
        UserUsage(user=name, coreHours=str(use.coreHours), instanceSeconds=use.instanceSeconds,
                  jobs=len(use.jobs)) for name, use in uses.items()])
