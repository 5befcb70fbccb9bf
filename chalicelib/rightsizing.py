"""Jobs moved by their migratePolicy: every heartbeat's sample joins the job's series, and
WaveRider's rules (`waverider`) read the series to decide whether the job should move.

A decision becomes an ordinary migration — checkpoint, new instance, restore — to the new
cpu/mem ranges, which the job keeps for every later launch; its history names the rule and
the figures. Only the samples taken on the instance the job runs on now count: a job that has
just moved starts a fresh series there.
"""

from __future__ import annotations

from datetime import timedelta

from aws_lambda_powertools import Logger

from chalicelib import fleet, jobs
from chalicelib.auth import Principal
from chalicelib.errors import IllegalTransition, StaleWrite
from chalicelib.moves import instant
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store
from chalicelib.waverider import LastMove, decide
from chalicelib.wire.api import Page
from chalicelib.wire.specs import MigratePolicy
from chalicelib.wire.status import JobStatus
from chalicelib.wire.utilization import UtilizationPoint, UtilizationView

logger = Logger(service="openfloat-rightsizing")

# Read a little more than the longest duration a rule waits, so that its first sample is there.
_WINDOW_MARGIN_SECONDS = 60
# A page of the series: the default is an hour and a half at the agent's 15 s heartbeat.
DEFAULT_SERIES_PAGE = 360
MAX_SERIES_PAGE = 1000


def policy_of(job: JobRecord) -> MigratePolicy | None:
    """The job's rules, if it has any that may move it."""
    if job.spec.disableMigrate or job.spec.migratePolicy is None:
        return None
    policy = MigratePolicy.model_validate(job.spec.migratePolicy)
    return None if policy.disable else policy


def consider(runtime: Runtime, store: Store, job: JobRecord,
             point: UtilizationPoint) -> JobRecord | None:
    """After `point` was recorded for the Executing `job`: move the job if its rules say so.
    The job as moved (Capturing), or None when it stays."""
    policy = policy_of(job)
    if policy is None or job.status != JobStatus.EXECUTING or job.instanceId != point.instanceId:
        return None
    ended = instant(point.time)
    if ended is None:
        return None
    window = max(policy.cpu.upperBoundDuration, policy.cpu.lowerBoundDuration,
                 policy.mem.upperBoundDuration, policy.mem.lowerBoundDuration)
    since = (ended - timedelta(seconds=window + _WINDOW_MARGIN_SECONDS)).isoformat()
    points = [p for p in store.recent_utilization(job.id, since.replace("+00:00", "Z"),
                                                  now=runtime.clock())
              if p.instanceId == job.instanceId and p.time <= point.time]
    if not points or points[-1].time != point.time:
        points.append(point)
    offers = fleet.offers(runtime)
    current = next((o for o in offers if o.instance_type == job.instanceType), None)
    if current is None:
        return None
    last = LastMove(**job.lastAutoMove) if job.lastAutoMove else None  # type: ignore[arg-type]
    move = decide(policy, points, current, offers, last_move=last, gpus=job.spec.gpu or 0)
    if move is None:
        return None
    try:
        moved = jobs.auto_migrate(runtime, store, job, move)
    except (StaleWrite, IllegalTransition):
        # Another heartbeat, a reclaim or the user got there first: this sample is stale.
        return None
    logger.info("moved by WaveRider", extra={"job_id": job.id, "reason": move.reason})
    return moved


def series(runtime: Runtime, store: Store, principal: Principal, job_id: str, limit: int,
           token: str | None) -> Page[UtilizationView]:
    """A page of the job's utilization series, newest first, within the retention."""
    job = jobs.get_record(store, principal, job_id)
    points, next_token = store.utilization_page(job.id, limit, token, now=runtime.clock())
    return Page[UtilizationView](items=[UtilizationView.of(p) for p in points],
                                 nextToken=next_token)
