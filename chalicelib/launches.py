"""Launches as the workflows run them: the plan of instance types a job may try, and one
attempt launched, recorded on the job and described for its agent."""

from __future__ import annotations

from dataclasses import replace

from chalicelib import blockvolumes, fleet
from chalicelib.auth import issue_job_token
from chalicelib.errors import IllegalTransition, StaleWrite
from chalicelib.placement import launch_plan
from chalicelib.runtime import Runtime
from chalicelib.status import executed_seconds
from chalicelib.store import JobRecord, Store
from chalicelib.wire.agent import JobLaunch
from chalicelib.wire.specs import CpuRange, Range, VmPolicy
from chalicelib.wire.tasks import Launched, LaunchRequest, Plan, PlanRequest


def plan_launch(runtime: Runtime, store: Store, request: PlanRequest) -> Plan:
    """Every launch the job may try, in order (NoCandidate when nothing fits)."""
    job = store.require_job(request.jobId)
    spec = job.spec
    prefer = request.preferType
    if request.target:
        changes = dict(request.target)
        if "instType" in changes:
            changes.update(cpu=spec.cpu, mem=spec.mem)
        elif "cpu" in changes or "mem" in changes:
            changes["instType"] = None
        spec = spec.model_copy(update=changes)
        if spec != job.spec:
            job = store.record_fields(job, {"spec": spec})
        prefer = None  # the user asked for something new
    attempts = launch_plan(fleet.offers(runtime), CpuRange.model_validate(spec.cpu),
                           Range.model_validate(spec.mem), spec.instType,
                           VmPolicy.model_validate(spec.vmPolicy), prefer=prefer,
                           moving=request.moving, gpus=spec.gpu or 0)
    return Plan(attempts=attempts, count=len(attempts))


def _time_left(runtime: Runtime, job: JobRecord) -> float | None:
    """What is left of the job's time limit, counting only the time it was Executing."""
    if job.spec.timeLimit is None:
        return None
    return round(max(0.0, job.spec.timeLimit - executed_seconds(job.history, runtime.clock())), 3)


def launch_instance(runtime: Runtime, store: Store, request: LaunchRequest) -> Launched:
    """Launch one planned attempt, record the instance (and the type and zone EC2 chose for
    it) on the job, and hand back what the agent needs to start it. InsufficientCapacity
    sends the workflow to the next attempt."""
    job = store.require_job(request.jobId)
    expected = job.status
    token = f"{job.id}-{request.launchNumber}-{request.index}" + (
        f"-r{request.retry}" if request.retry else "")
    queue = fleet.command_queue(runtime, token)
    spec = job.spec
    # A job whose volumes exist goes where they are (they are copied only if it must move on).
    zone = spec.zone or blockvolumes.zone_of(runtime, job)
    options = fleet.InstanceOptions(zone=zone, security_groups=tuple(spec.securityGroups),
                                    root_gb=spec.rootVolSize, image_gb=spec.imageVolSize)
    try:
        instance = fleet.launch(runtime, job.id, token, request.attempt, queue, spec.customTags,
                                options)
    except fleet.InsufficientCapacity:
        if spec.zone is not None or zone is None:
            raise
        # No room where the volumes are, and the job named no zone: any zone will do, and the
        # volumes are copied there through a snapshot before the job starts.
        instance = fleet.launch(runtime, job.id, f"{token}-anyzone", request.attempt, queue,
                                spec.customTags, replace(options, zone=None))
    instance_id = str(instance["InstanceId"])
    chosen = str(instance["InstanceType"])
    zone = instance.get("Placement", {}).get("AvailabilityZone")
    for _ in range(3):
        if job.status != expected:
            # Cancelled (or otherwise moved on) while the instance was booting: it must not
            # be left running without a job.
            fleet.release(runtime, instance_id, queue)
            raise IllegalTransition(f"job {job.id} became {job.status.value} while "
                                    f"{instance_id} was launched for it; released it")
        try:
            job = store.record_fields(job, {"instanceId": instance_id, "commandsQueueUrl": queue,
                                            "instanceType": chosen, "instanceZone": zone})
            break
        except StaleWrite:
            job = store.require_job(job.id)
    else:
        fleet.release(runtime, instance_id, queue)
        raise StaleWrite(f"job {job.id} kept changing while {instance_id} was recorded")
    secret = issue_job_token(runtime, job.id, job.owner) if job.apiUrl else None
    # The container gets the whole instance, as a job has a VM to itself on AWS: a job that
    # outgrows its instance's memory is killed by the kernel, wherever it runs.
    offer = next(o for o in fleet.offers(runtime) if o.instance_type == chosen)
    entry = store.get_image(job.image)
    launch = JobLaunch(
        jobId=job.id, imageUri=job.imageUri, scriptKey=job.scriptKey, env=job.spec.env,
        credentialsSecretId=entry.secretId if entry is not None else None,
        cpus=offer.vcpus, memoryGiB=offer.memory_gib,
        dataVolumes=job.spec.dataVolumes, volumeKeysSecretId=job.volumeKeysSecretId,
        apiUrl=job.apiUrl, apiTokenSecretId=secret,
        timeLimitSeconds=_time_left(runtime, job), gpus=spec.gpu or 0,
        privileged=spec.privileged, withRoot=spec.withRoot, containerOptions=spec.containerOpts,
        dirMaps=spec.dirMaps, checkpointable=not spec.disableMigrate,
        checkpointIntervalSeconds=None if spec.disableMigrate else spec.checkpointInterval or None,
        publish=spec.publish,
        hostInitKey=job.hostInitKey, hostTerminateKey=job.hostTerminateKey)
    return Launched(instanceId=instance_id, instanceType=chosen, zone=zone,
                    market=request.attempt.market, commandsQueueUrl=queue, job=launch,
                    launchedAt=runtime.now_iso())
