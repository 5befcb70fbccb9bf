"""The functions Step Functions calls as tasks (those that launch are in launches.py). Each
takes and returns a model of wire.tasks, its input validated once at the edge (`read_input`);
each is safe to run twice (Step Functions retries), and each failure is an exception whose
class name is the `ErrorEquals` name the workflows catch."""

from __future__ import annotations

from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel, ValidationError

from chalicelib import blockvolumes, endings, fleet, moves, volumes
from chalicelib.auth import revoke_job_token
from chalicelib.errors import IllegalTransition, MalformedTaskInput, NotFound, StaleWrite
from chalicelib.placement import NoCandidate
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store
from chalicelib.wire.api import HistoryEntry
from chalicelib.wire.checkpoints import Restored
from chalicelib.wire.failures import (
    AgentError,
    CheckpointCorrupt,
    CheckpointFailed,
    CheckpointNotFound,
    CheckpointUploadFailed,
    HostInitFailed,
    ImagePullFailed,
    JobStartFailed,
    RegistryAuthFailed,
    RestoreFailed,
)
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus
from chalicelib.wire.tasks import (
    InstanceRef,
    JobInstance,
    JobRef,
    NewInstance,
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
        blockvolumes.VolumesNotReady, blockvolumes.VolumeAttachFailed,
        # reported by agents through SendTaskFailure
        ImagePullFailed, RegistryAuthFailed, JobStartFailed, HostInitFailed, CheckpointFailed,
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
        volumes.delete_keys(runtime, job.id)
    return moved


def set_status(runtime: Runtime, store: Store, change: StatusChange) -> StatusSet:
    """Move the job to a status; a job that moved to a new instance also gets its migration
    (what the checkpoint cost, how long it was away) recorded in the same write."""
    job = store.require_job(change.jobId)
    fields: dict[str, Any] = {}
    reason = change.reason
    moved = change.moved
    if moved is not None:
        launched = change.launched or NewInstance()
        moved = moved.model_copy(update={
            "restored": change.restored,
            "instanceType": launched.instanceType or moved.instanceType,
            "zone": launched.zone or moved.zone,
            "launchedAt": launched.launchedAt or moved.launchedAt})
    if moved is not None and job.status != change.to:
        migration = moves.migration(runtime, change, moved)
        fields["migrations"] = [*job.migrations, migration]
        if migration.checkpointSeq is not None:
            reason += f" (checkpoint {migration.checkpointSeq}" + _on_pre_dump(change) + (
                "" if moved.captured else
                f", the last committed one, {_taken(change)}: no new checkpoint could be "
                "taken") + ")"
    job = _move(runtime, store, job, change.to, reason, change.instanceId, fields)
    return StatusSet(jobId=job.id, status=job.status)


def _on_pre_dump(change: StatusChange) -> str:
    """Which pre-dump a restored dump was written on, if it was."""
    previous = Restored.model_validate(change.restored).manifest.previousSeq
    return "" if previous is None else f" on pre-dump {previous}"


def _taken(change: StatusChange) -> str:
    """What the restored checkpoint was and when it was taken, as its manifest says."""
    manifest = Restored.model_validate(change.restored).manifest
    return f"taken {manifest.createTime} ({manifest.reason})"


def job_instance(runtime: Runtime, store: Store, ref: JobRef) -> JobInstance:
    """The job's instance as workflows need it: id, command queue, type, and whether the job
    may be started again from the beginning when no checkpoint can be restored."""
    job = store.require_job(ref.jobId)
    return JobInstance(jobId=job.id, instanceId=job.instanceId,
                       commandsQueueUrl=job.commandsQueueUrl,
                       instanceType=fleet.instance_type(runtime, job.instanceId),
                       rerunAllowed=not job.spec.disableRerun,
                       captureAllowed=not job.spec.disableMigrate)


def release_instance(runtime: Runtime, store: Store, ref: InstanceRef) -> Released:
    """Terminate one instance of the job, delete its command queue and record its usage."""
    if ref.instanceId is None:
        return Released(released=None)
    endings.release(runtime, store, store.get_job(ref.jobId), ref.instanceId, ref.commandsQueueUrl)
    return Released(released=ref.instanceId)


def settle_job(runtime: Runtime, store: Store, settle: SettleRequest) -> Settled:
    """End the workflow's part in the job: its verdict, every other instance released."""
    return endings.settle(runtime, store, settle.request)
