"""The reconciler: what no event reports. Run every minute, it compares the jobs (read by status)
with the instances EC2 runs for them, and ends what would otherwise wait forever.

- An Executing job whose instance is gone, or whose agent fell silent, goes Unknown and is
  moved like a reclaim: the last committed checkpoint restored elsewhere, else a rerun, else
  (with --disableRerun) a failure with the reason.
- A job in a transitional status past the workflow limit is ended with the reason.
- An instance tagged for a job that is final or missing, or left over from a move long done,
  is terminated.

Each decision is a pure function of what was read; the pass only carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import blockvolumes, endings, executions, fleet, licensing
from chalicelib.endings import Verdict
from chalicelib.errors import Conflict, IllegalTransition, StaleWrite
from chalicelib.moves import instant
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store
from chalicelib.wire.api import HistoryEntry
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus

logger = Logger(service="openfloat-reconcile")

S = JobStatus
# A job in one of these is in a workflow's hands; past the limit, the workflow is taken as lost
# and the job ends in the status that says where it got stuck.
STUCK_ENDINGS: dict[JobStatus, JobStatus] = {
    S.SUBMITTED: S.FAIL_TO_EXECUTE,
    S.INITIALIZING: S.FAIL_TO_EXECUTE,
    S.STARTING: S.FAIL_TO_EXECUTE,
    S.CAPTURING: S.CHECKPOINT_FAILED,
    S.FLOATING: S.FAIL_TO_EXECUTE,
    S.SUSPENDING: S.CHECKPOINT_FAILED,
    S.RESUMING: S.FAIL_TO_EXECUTE,
    S.UNKNOWN: S.FAIL_TO_EXECUTE,
    # settle ends a Cancelling job Cancelled whatever the verdict says
    S.CANCELLING: S.CANCELLED,
}
WATCHED = (S.EXECUTING, *STUCK_ENDINGS)
# Instance states in which an instance still costs money; the rest are going or gone.
BILLED_STATES = frozenset({"pending", "running"})
GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})


@dataclass(frozen=True)
class Limits:
    # An agent reports every 15 s; this long without a word means it is lost.
    silence_seconds: int
    # No workflow keeps a job in a transitional status longer than this.
    workflow_seconds: int


@dataclass(frozen=True)
class Instance:
    """What the reconciler reads of an instance: enough to decide, nothing more."""

    id: str
    state: str
    job_id: str | None
    launched: datetime


# ---- decisions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Leave:
    why: str


@dataclass(frozen=True)
class Recover:
    """Mark the job Unknown (unless it is already) and move it like a reclaim."""

    why: str
    agent_lost: bool


@dataclass(frozen=True)
class End:
    to: JobStatus
    why: str


@dataclass(frozen=True)
class Terminate:
    why: str


JobAction = Leave | Recover | End
InstanceAction = Leave | Terminate


def last_sign(job: JobRecord) -> datetime | None:
    """When the job was last known alive: its agent's latest heartbeat or its latest change,
    whichever is later (a job restored a moment ago has no heartbeat from its new agent yet)."""
    times = [t for t in (instant(job.heartbeatTime), instant(job.updateTime)) if t is not None]
    return max(times) if times else None


def decide_job(job: JobRecord, instance: Instance | None, now: datetime,
               limits: Limits) -> JobAction:
    """What the reconciler does with a job, given its instance as EC2 describes it (None: EC2
    does not know it)."""
    since = last_sign(job)
    quiet = (now - since).total_seconds() if since is not None else float("inf")
    if job.status == S.EXECUTING:
        if job.instanceId is None or instance is None:
            return Recover(f"its instance {job.instanceId or '(none recorded)'} is gone, "
                           "with no event to say so", agent_lost=True)
        if instance.state in GONE_STATES:
            return Recover(f"its instance {instance.id} is {instance.state}, with no event "
                           "to say so", agent_lost=True)
        if quiet > limits.silence_seconds:
            return Recover(f"the agent on {instance.id} has been silent for {int(quiet)} s",
                           agent_lost=True)
        return Leave("running, its agent heard from")
    if job.status in STUCK_ENDINGS:
        stuck = (now - (instant(job.updateTime) or now)).total_seconds()
        if stuck > limits.workflow_seconds:
            return End(STUCK_ENDINGS[job.status],
                       f"{job.status.value} for {int(stuck)} s, longer than any workflow takes "
                       f"({limits.workflow_seconds} s): its workflow was lost")
        if job.status == S.UNKNOWN:
            # Marked Unknown by an earlier pass whose move did not start, or ended without
            # moving it: start it (again).
            return Recover("still Unknown: its move is started again", agent_lost=True)
        return Leave(f"{job.status.value}, in its workflow's hands")
    return Leave(f"{job.status.value} needs nothing")


def decide_instance(instance: Instance, job: JobRecord | None, now: datetime,
                    limits: Limits) -> InstanceAction:
    """Whether a tagged instance is still needed by its job."""
    if instance.state not in BILLED_STATES:
        return Leave(f"{instance.state}")
    if job is None:
        return Terminate(f"its job {instance.job_id} does not exist")
    if job.status in TERMINAL_STATUSES:
        return Terminate(f"its job {job.id} is {job.status.value}")
    if instance.id == job.instanceId:
        return Leave(f"job {job.id} runs on it")
    age = (now - instance.launched).total_seconds()
    # A replacement is launched before the job moves onto it, and a requested move keeps the
    # job Executing meanwhile: only an instance older than any workflow is left over.
    if job.status in (S.EXECUTING, S.SUSPENDED) and age > limits.workflow_seconds:
        return Terminate(f"launched {int(age)} s ago for job {job.id}, which is "
                         f"{job.status.value} on {job.instanceId or 'no instance'}")
    return Leave(f"may still be job {job.id}'s replacement")


# ---- the pass ------------------------------------------------------------------------------


@dataclass
class Pass:
    """What one reconciler pass did, for its log line and for tests."""

    recovering: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    # Jobs whose volumes this pass deleted (or began to: detached first).
    volumes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Jobs that waited for a license and were started (a new month, or a license applied).
    licensed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"recovering": self.recovering, "ended": self.ended,
                "terminated": self.terminated, "volumes": self.volumes, "failed": self.failed,
                "licensed": self.licensed}


def limits_of(runtime: Runtime) -> Limits:
    config = runtime.config
    return Limits(silence_seconds=config.agent_silence_seconds,
                  workflow_seconds=config.workflow_limit_seconds)


def tagged_instances(runtime: Runtime) -> dict[str, Instance]:
    """Every instance EC2 knows that carries a job tag, by id."""
    found: dict[str, Instance] = {}
    for page in runtime.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag-key", "Values": [fleet.JOB_TAG]}]):
        for reservation in page["Reservations"]:
            for described in reservation["Instances"]:
                instance = _instance(described)
                found[instance.id] = instance
    return found


def _instance(described: dict[str, Any]) -> Instance:
    tags = {tag["Key"]: tag["Value"] for tag in described.get("Tags", [])}
    return Instance(id=str(described["InstanceId"]), state=str(described["State"]["Name"]),
                    job_id=tags.get(fleet.JOB_TAG),
                    launched=described["LaunchTime"].astimezone(UTC))


def _instance_of(runtime: Runtime, job: JobRecord, known: dict[str, Instance]) -> Instance | None:
    if job.instanceId is None:
        return None
    if job.instanceId in known:
        return known[job.instanceId]
    described = fleet.describe(runtime, job.instanceId)  # untagged: launched by hand
    return _instance(described) if described is not None else None


def _recover(runtime: Runtime, store: Store, job: JobRecord, action: Recover) -> str | None:
    """Mark the job Unknown and start its move; the execution started, or None."""
    if job.status != S.UNKNOWN:
        job = store.transition_job(job, S.UNKNOWN, HistoryEntry(
            time=runtime.now_iso(), from_=job.status, to=S.UNKNOWN, reason=action.why,
            instance=job.instanceId))
    name, payload = executions.migrate_start(
        job.id, job.instanceId, job.version, reason=action.why, notice_time=runtime.now_iso(),
        reclaim=True, target=None, timeouts=executions.timeouts(runtime.config),
        agent_lost=action.agent_lost)
    return executions.start_unless_running(runtime, "migrate", name, payload)


def reconcile(runtime: Runtime, store: Store) -> Pass:
    """One pass over every watched job and every tagged instance."""
    now = runtime.clock().astimezone(UTC)
    limits = limits_of(runtime)
    instances = tagged_instances(runtime)
    done = Pass()
    seen: set[str] = set()  # a job this pass moved shows up again under its new status
    for status in WATCHED:
        for listed in store.jobs_with_status(status):
            # The index lags the table: decide on the item itself.
            job = store.get_job(listed.id) if listed.id not in seen else None
            if job is None or job.status != status:
                continue
            seen.add(job.id)
            action = decide_job(job, _instance_of(runtime, job, instances), now, limits)
            try:
                if isinstance(action, Recover):
                    started = _recover(runtime, store, job, action)
                    done.recovering.append(job.id)
                    logger.warning("job lost its agent; moving it", extra={
                        "job_id": job.id, "instance_id": job.instanceId, "reason": action.why,
                        "execution": started})
                elif isinstance(action, End):
                    endings.settle(runtime, store, Verdict(jobId=job.id, to=action.to,
                                                           why=action.why))
                    done.ended.append(job.id)
                    logger.warning("stuck job ended", extra={
                        "job_id": job.id, "status": action.to.value, "reason": action.why})
            except (StaleWrite, IllegalTransition, Conflict):
                pass  # the job moved meanwhile: the next pass sees where it went
            except (BotoCoreError, ClientError) as error:
                done.failed.append(job.id)
                logger.exception("reconciling a job failed", extra={
                    "job_id": job.id, "error": str(error)})
    for instance in instances.values():
        owner = store.get_job(instance.job_id) if instance.job_id else None
        verdict = decide_instance(instance, owner, now, limits)
        if not isinstance(verdict, Terminate):
            continue
        try:
            endings.release(runtime, store, owner, instance.id)
        except (BotoCoreError, ClientError) as error:
            done.failed.append(instance.id)
            logger.exception("terminating a left-over instance failed", extra={
                "instance_id": instance.id, "error": str(error)})
            continue
        done.terminated.append(instance.id)
        logger.warning("left-over instance terminated", extra={
            "instance_id": instance.id, "job_id": instance.job_id, "reason": verdict.why})
    _release_volumes(runtime, store, done)
    try:
        done.licensed = licensing.start_waiting(runtime, store)
    except (BotoCoreError, ClientError) as error:
        logger.exception("starting the jobs waiting for a license failed",
                         extra={"error": str(error)})
    logger.info("reconciled", extra=done.as_dict())
    return done


def _release_volumes(runtime: Runtime, store: Store, done: Pass) -> None:
    """Delete the volumes of jobs that have ended (or are gone): what their ending could not,
    because an instance still held them."""
    for job_id in sorted(blockvolumes.tagged_jobs(runtime)):
        owner = store.get_job(job_id)
        if owner is not None and owner.status not in TERMINAL_STATUSES:
            continue
        try:
            blockvolumes.release(runtime, job_id)
        except (BotoCoreError, ClientError) as error:
            done.failed.append(job_id)
            logger.exception("deleting a job's volumes failed", extra={
                "job_id": job_id, "error": str(error)})
            continue
        done.volumes.append(job_id)
