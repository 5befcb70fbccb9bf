"""Reclaim drills: EC2's part in a Spot reclaim of a job's instance, played on demand — the
interruption warning into EventBridge, the notice in the instance's metadata, and termination
when the notice runs out, whether or not the job has been moved by then.

Only the local OpCenter can play it (its instance manager is the reclaimer). On AWS the same
drill is AWS Fault Injection Service's `aws:ec2:send-spot-instance-interruptions` action.
"""

from __future__ import annotations

from chalicelib import jobs
from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, Conflict
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.api import ReclaimRequest, ReclaimView


def reclaim(runtime: Runtime, store: Store, principal: Principal, job_id: str,
            request: ReclaimRequest) -> ReclaimView:
    principal.require_admin("reclaim instances")
    if runtime.reclaimer is None:
        raise BadRequest("reclaim drills run only on the local OpCenter (make run); on AWS, "
                         "use AWS FIS's aws:ec2:send-spot-instance-interruptions action")
    job = jobs.get_record(store, principal, job_id)
    if job.instanceId is None:
        raise Conflict(f"job {job.id} is {job.status.value} and has no instance to reclaim")
    if request.kind == "vanish":
        return ReclaimView(jobId=job.id, instanceId=job.instanceId, kind="vanish",
                           terminateTime=runtime.reclaimer.vanish(job.instanceId))
    if request.kind == "agent":
        runtime.reclaimer.kill_agent(job.instanceId)
        return ReclaimView(jobId=job.id, instanceId=job.instanceId, kind="agent")
    when = runtime.reclaimer.reclaim(job.instanceId, request.notice)
    return ReclaimView(jobId=job.id, instanceId=job.instanceId, noticeSeconds=request.notice,
                       terminateTime=when)
