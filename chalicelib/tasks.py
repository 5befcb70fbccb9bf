"""The functions Step Functions calls as tasks. Each takes and returns a model of wire.tasks,
its input validated once at the edge (`read_input`); each is safe to run twice (Step Functions
retries), and each failure is an exception whose class name is the `ErrorEquals` name the
workflows catch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel, ValidationError

from chalicelib import endings, fleet
from chalicelib.auth import issue_job_token, revoke_job_token
from chalicelib.errors import IllegalTransition, MalformedTaskInput, NotFound, StaleWrite
from chalicelib.placement import NoCandidate, launch_plan
from chalicelib.runtime import Runtime
from chalicelib.status import executed_seconds
from chalicelib.store import JobRecord, Store
from chalicelib.wire.agent import JobLaunch
from chalicelib.wire.api import HistoryEntry, MigrationView
from chalicelib.wire.checkpoints import Restored
from chalicelib.wire.failures import (
    AgentError,
    CheckpointCorrupt,
    CheckpointFailed,
    CheckpointNotFound,
    CheckpointUploadFailed,
    ImagePullFailed,
    JobStartFailed,
    RegistryAuthFailed,
    RestoreFailed,
)
from chalicelib.wire.specs import CpuRange, Range, VmPolicy
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus
from chalicelib.wire.tasks import (
    InstanceRef,
    JobInstance,
    JobRef,
    Launched,
    LaunchRequest,
    Moved,
    NewInstance,
    Plan,
    PlanRequest,
    Released,
    Settled,
    SettleRequest,
    StatusChange,
    StatusSet,
)

# Error names the workflows catch and where they come from: the test of statemachines/ checks
# every ErrorEquals against this table, AWS's own `States.*` names aside.
TASK_ERRORS: dict[str, type[Exception]] = {
    error.__name__: error for error in (
        IllegalTransition, StaleWrite, NotFound, NoCandidate, fleet.InsufficientCapacity,
        # reported by agents through SendTaskFailure
        ImagePullFailed, RegistryAuthFailed, JobStartFailed, CheckpointFailed,
        CheckpointUploadFailed, CheckpointNotFound, CheckpointCorrupt, RestoreFailed,
        AgentError,
        # caught by every task's States.ALL and retried by none: a wrong input stays wrong
        MalformedTaskInput,
    )
}

Input = TypeVar("Input", bound=BaseModel)


def read_input(model: type[Input], event: Any) -> Input:
    """The event a workflow handed a task, as the task's input model: validated once, at the
    edge, so the task works with models only."""
    try:
        return parse(event=event, model=model)
    except ValidationError as error:
        wrong = "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'input'}: {e['msg']}"
                          for e in error.errors())
        raise MalformedTaskInput(f"not a {model.__name__}: {wrong}") from error


def _job(store: Store, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


def _move(runtime: Runtime, store: Store, job: JobRecord, target: JobStatus, reason: str,
          instance_id: str | None, fields: dict[str, Any] | None = None) -> JobRecord:
    instance = instance_id or job.instanceId
    last = job.history[-1] if job.history else None
    if job.status == target and (last is None or (last.to, last.instance) == (target, instance)):
        return job  # a retried task, or the API made the change already
    entry = HistoryEntry(time=runtime.now_iso(), from_=job.status, to=target, reason=reason,
                         instance=instance)
    moved = store.transition_job(job, target, entry, fields)
    if target in TERMINAL_STATUSES:
        revoke_job_token(runtime, job.id)
    return moved


def _instant(iso: str | None) -> datetime | None:
    if iso is None:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


def _migration(runtime: Runtime, change: StatusChange, moved: Moved) -> MigrationView:
    restored: Restored | None = None
    if moved.restored is not None:
        try:
            restored = Restored.model_validate(moved.restored)
        except ValidationError:
            restored = None  # an agent's reply without figures: the move still counts
    checkpoint = restored.manifest if restored else None
    frozen = checkpoint.stats.frozenTimeUs / 1e6 if checkpoint and checkpoint.stats.frozenTimeUs \
        else None
    notice = _instant(moved.noticeTime)
    return MigrationView(
        time=runtime.now_iso(), reason=change.reason, fromInstance=moved.fromInstance,
        toInstance=change.instanceId or "", instanceType=moved.instanceType,
        checkpointSeq=checkpoint.seq if checkpoint else None,
        imageBytes=checkpoint.archiveSize if checkpoint else None,
        freezeSeconds=frozen,
        checkpointSeconds=round(checkpoint.checkpointSeconds, 3) if checkpoint else None,
        uploadSeconds=round(checkpoint.uploadSeconds, 3) if checkpoint else None,
        launchSeconds=_seconds_between(notice, _instant(moved.launchedAt)),
        downloadSeconds=restored.downloadSeconds if restored else None,
        restoreSeconds=restored.restoreSeconds if restored else None,
        secondsToExecuting=_seconds_between(notice, runtime.clock().astimezone(UTC)),
        rerun=moved.restored is None)


def set_status(runtime: Runtime, store: Store, change: StatusChange) -> StatusSet:
    """Move the job to a status; a job that moved to a new instance also gets its migration
    (what the checkpoint cost, how long it was away) recorded in the same write."""
    job = _job(store, change.jobId)
    fields: dict[str, Any] = {}
    reason = change.reason
    moved = change.moved
    if moved is not None:
        launched = change.launched or NewInstance()
        moved = moved.model_copy(update={
            "restored": change.restored,
            "instanceType": launched.instanceType or moved.instanceType,
            "launchedAt": launched.launchedAt or moved.launchedAt})
    if moved is not None and job.status != change.to:
        migration = _migration(runtime, change, moved)
        fields["migrations"] = [*job.migrations, migration]
        if migration.checkpointSeq is not None:
            reason += f" (checkpoint {migration.checkpointSeq}" + (
                "" if moved.captured else
                ", the last committed one: no new checkpoint could be taken") + ")"
    job = _move(runtime, store, job, change.to, reason, change.instanceId, fields)
    return StatusSet(jobId=job.id, status=job.status)


def job_instance(runtime: Runtime, store: Store, ref: JobRef) -> JobInstance:
    """The job's instance as workflows need it: id, command queue, type, and whether the job
    may be started again from the beginning when no checkpoint can be restored."""
    job = _job(store, ref.jobId)
    return JobInstance(jobId=job.id, instanceId=job.instanceId,
                       commandsQueueUrl=job.commandsQueueUrl,
                       instanceType=fleet.instance_type(runtime, job.instanceId),
                       rerunAllowed=not job.spec.disableRerun)


def release_instance(runtime: Runtime, store: Store, ref: InstanceRef) -> Released:
    """Terminate one instance of the job, delete its command queue and record its usage."""
    if ref.instanceId is None:
        return Released(released=None)
    endings.release(runtime, store, store.get_job(ref.jobId), ref.instanceId, ref.commandsQueueUrl)
    return Released(released=ref.instanceId)


def settle_job(runtime: Runtime, store: Store, settle: SettleRequest) -> Settled:
    """End the workflow's part in the job: its verdict, every other instance released."""
    return endings.settle(runtime, store, settle.request)


def plan_launch(runtime: Runtime, store: Store, request: PlanRequest) -> Plan:
    """Every launch the job may try, in order (NoCandidate when nothing fits)."""
    job = _job(store, request.jobId)
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
                           moving=request.moving)
    return Plan(attempts=attempts, count=len(attempts))


def _time_left(runtime: Runtime, job: JobRecord) -> float | None:
    """What is left of the job's time limit, counting only the time it was Executing."""
    if job.spec.timeLimit is None:
        return None
    return round(max(0.0, job.spec.timeLimit - executed_seconds(job.history, runtime.clock())), 3)


def launch_instance(runtime: Runtime, store: Store, request: LaunchRequest) -> Launched:
    """Launch one planned attempt, record the instance on the job, and hand back what the
    agent needs to start it. InsufficientCapacity sends the workflow to the next attempt."""
    job = _job(store, request.jobId)
    expected = job.status
    token = f"{job.id}-{request.launchNumber}-{request.index}" + (
        f"-r{request.retry}" if request.retry else "")
    queue = fleet.command_queue(runtime, token)
    instance = fleet.launch(runtime, job.id, token, request.attempt, queue, job.spec.customTags)
    instance_id = str(instance["InstanceId"])
    for _ in range(3):
        if job.status != expected:
            # Cancelled (or otherwise moved on) while the instance was booting: it must not
            # be left running without a job.
            fleet.release(runtime, instance_id, queue)
            raise IllegalTransition(f"job {job.id} became {job.status.value} while "
                                    f"{instance_id} was launched for it; released it")
        try:
            job = store.record_fields(job, {"instanceId": instance_id, "commandsQueueUrl": queue})
            break
        except StaleWrite:
            job = _job(store, job.id)
    else:
        fleet.release(runtime, instance_id, queue)
        raise StaleWrite(f"job {job.id} kept changing while {instance_id} was recorded")
    secret = issue_job_token(runtime, job.id, job.owner) if job.apiUrl else None
    offer = next(o for o in fleet.offers(runtime) if o.instance_type == request.attempt.instanceType)
    mem = Range.model_validate(job.spec.mem)
    entry = store.get_image(job.image)
    launch = JobLaunch(
        jobId=job.id, imageUri=job.imageUri, scriptKey=job.scriptKey, env=job.spec.env,
        credentialsSecretId=entry.secretId if entry is not None else None,
        cpus=offer.vcpus, memoryGiB=min(mem.max, offer.memory_gib),
        dataVolumes=job.spec.dataVolumes, apiUrl=job.apiUrl, apiTokenSecretId=secret,
        timeLimitSeconds=_time_left(runtime, job))
    return Launched(instanceId=instance_id, instanceType=request.attempt.instanceType,
                    market=request.attempt.market, commandsQueueUrl=queue, job=launch,
                    launchedAt=runtime.now_iso())
