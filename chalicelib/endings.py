"""How a workflow ends a job: its verdict (a status and the reason), every instance launched
for the job that it no longer runs on released, and what those instances used recorded.

Every workflow runs inside the settle workflow, which ends it in `settle` with its verdict, on
success and on every failure alike, so no ending can forget an instance: the instances are
found by the job's tag, not by what the job records.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import blockvolumes, fleet, metering, volumes
from chalicelib.auth import revoke_job_token
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store
from chalicelib.wire.api import HistoryEntry
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus
from chalicelib.wire.tasks import Settled, Verdict

logger = Logger(service="openfloat-endings")

CANCELLED_REASON = "cancelled; its instance was released"


def record_usage(runtime: Runtime, store: Store, job: JobRecord, instance_id: str) -> bool:
    """Record the instance's core-hours against the job, once per instance and month
    (chalicelib.metering); True if anything new was stored."""
    instance = fleet.describe(runtime, instance_id)
    if instance is None:
        return False
    stored = False
    for record in metering.usage_records(runtime, job.id, job.owner, instance, runtime.clock()):
        stored = store.record_usage(record) or stored
    return stored


def release(runtime: Runtime, store: Store, job: JobRecord | None, instance_id: str,
            queue_url: str | None = None) -> None:
    """Terminate one instance of the job, delete its queue, and record what it used."""
    if queue_url is None and job is not None and job.instanceId == instance_id:
        queue_url = job.commandsQueueUrl
    fleet.release(runtime, instance_id, queue_url)
    if job is None:
        return
    try:
        record_usage(runtime, store, job, instance_id)
    except (BotoCoreError, ClientError) as error:
        # Billing is recorded again by the next ending that sees the instance; releasing it
        # is what must not fail.
        logger.warning("usage not recorded", extra={"job_id": job.id, "instance_id": instance_id,
                                                    "error": str(error)})


def release_all(runtime: Runtime, store: Store, job_id: str, job: JobRecord | None,
                keep: str | None) -> list[str]:
    """Release every live instance launched for the job but `keep`; the ids released."""
    ids = {str(i["InstanceId"]) for i in fleet.job_instances(runtime, job_id)}
    if job is not None and job.instanceId is not None:
        ids.add(job.instanceId)  # recorded but untagged: one made by hand, or by a test
    released = sorted(ids - {keep} if keep else ids)
    for instance_id in released:
        release(runtime, store, job, instance_id)
    return released


def settle(runtime: Runtime, store: Store, verdict: Verdict) -> Settled:
    """Leave the job in the verdict's status on the instance it keeps (an Executing job only),
    with every other instance released. A job being cancelled ends Cancelled instead; a job
    already final keeps its status. Safe to run again."""
    job = store.get_job(verdict.jobId)
    if job is None:
        released = release_all(runtime, store, verdict.jobId, None, None)
        return Settled(jobId=verdict.jobId, status=None, released=released)
    target = verdict.status()
    reason = verdict.reason()
    if job.status == JobStatus.CANCELLING:
        target, reason = JobStatus.CANCELLED, CANCELLED_REASON
    final = job.status in TERMINAL_STATUSES
    keep = None
    if target == JobStatus.EXECUTING and not final:
        keep = verdict.keep or job.instanceId
    released = release_all(runtime, store, job.id, job, keep)
    if final:
        if blockvolumes.wanted(job):
            blockvolumes.release(runtime, job.id)
        return Settled(jobId=job.id, status=job.status, released=released, alreadyFinal=True)
    last = job.history[-1] if job.history else None
    instance = keep or job.instanceId
    if job.status == target and (verdict.why is None or (
            last is not None and (last.to, last.instance, last.reason) == (target, instance, reason))):
        # Nothing new, or a retry of this write.
        return Settled(jobId=job.id, status=job.status, released=released)
    fields: dict[str, Any] = {}
    if target == JobStatus.EXECUTING:
        queue = verdict.keepQueue if verdict.keep else job.commandsQueueUrl
        fields.update(instanceId=keep, commandsQueueUrl=queue)
        if keep != job.instanceId:
            # The job stays where it was: the type and zone recorded are the replacement's.
            kept = fleet.describe(runtime, keep) if keep else None
            fields.update(instanceType=kept["InstanceType"] if kept else None,
                          instanceZone=kept["Placement"]["AvailabilityZone"] if kept else None)
    elif target == JobStatus.SUSPENDED:
        fields.update(instanceId=None, commandsQueueUrl=None, instanceType=None,
                      instanceZone=None)
    if verdict.exitCode is not None:
        fields["rc"] = verdict.exitCode
    entry = HistoryEntry(time=runtime.now_iso(), from_=job.status, to=target, reason=reason,
                         instance=instance)
    job = store.transition_job(job, target, entry, fields)
    if target in TERMINAL_STATUSES:
        revoke_job_token(runtime, job.id)
        volumes.delete_keys(runtime, job.id)
        # What an instance still shutting down holds goes on the reconciler's next pass.
        if blockvolumes.wanted(job):
            blockvolumes.release(runtime, job.id)
    logger.info("job settled", extra={"job_id": job.id, "status": target.value,
                                      "reason": reason, "released": released})
    return Settled(jobId=job.id, status=job.status, released=released)
