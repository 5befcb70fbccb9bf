"""Jobs: submit, look up, list, cancel and move them (their logs are `logs.py`).

A user sees and touches only their own jobs; an admin sees all. A job that is not the caller's
is reported as not found, so ids of other users' jobs are not confirmed to exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from chalicelib import executions, fleet, images, licensing, metering, volumes
from chalicelib.auth import Principal, revoke_job_token
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound, StaleWrite, Unavailable
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, JobSpec, Store
from chalicelib.waverider import Move
from chalicelib.wire.api import (
    HistoryEntry,
    JobView,
    MigrateRequest,
    Page,
    SubmitRequest,
)
from chalicelib.wire.hostscripts import HOST_INIT, HOST_TERMINATE, HostScript
from chalicelib.wire.hostscripts import script_key as host_script_key
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus

logger = Logger(service="openfloat-api")

# A job that never got an instance has nothing to tear down and is cancelled at once.
_CANCEL_AT_ONCE = frozenset({JobStatus.SUBMITTED, JobStatus.WAITING_FOR_LICENSE})
# Re-read and decide again this many times when another writer moves the job first.
_CANCEL_ATTEMPTS = 3
_MAX_VOLUMES = 16


# Spec fields the view shows as they were given.
_INSTANCE_AND_CONTAINER = {"gpu", "zone", "securityGroups", "rootVolSize", "imageVolSize",
                           "disableMigrate", "privileged", "withRoot", "containerOpts",
                           "dirMaps"}


def script_key(job_id: str) -> str:
    return f"jobs/{job_id}/script"


def port_mappings(job: JobRecord) -> list[str]:
    """The job's published ports, `ADDRESS:HOST:CONTAINER[/udp]` once the agent of its
    current instance reported that instance's address; as submitted before."""
    if job.address is None or job.addressOf is None or job.addressOf != job.instanceId:
        return list(job.spec.publish)
    return [f"{job.address}:{port}" for port in job.spec.publish]


def view(job: JobRecord) -> JobView:
    """The job as the API shows it. A stored field that cannot be read is shown empty and
    named in `unreadable`: one odd item never makes a listing or a show fail."""
    values = _view_values(job)
    try:
        return JobView(**values)
    except ValidationError as error:
        unreadable = sorted({str(problem["loc"][0]) for problem in error.errors()})
        logger.warning("job has unreadable stored fields",
                       extra={"job": job.id, "fields": unreadable})
        kept = {key: value for key, value in values.items() if key not in unreadable}
        return JobView(**kept, unreadable=unreadable)


def _view_values(job: JobRecord) -> dict[str, Any]:
    spec = job.spec
    return dict(
        id=job.id,
        name=job.name,
        user=job.owner,
        status=job.status,
        rc=job.rc,
        image=job.image,
        imageUri=job.imageUri,
        cpu=spec.cpu,
        mem=spec.mem,
        instType=spec.instType,
        instanceId=job.instanceId,
        instanceType=job.instanceType,
        instanceZone=job.instanceZone,
        env=spec.env,
        customTags=spec.customTags,
        portMappings=port_mappings(job),
        dataVolumes=spec.dataVolumes,
        vmPolicy=spec.vmPolicy,
        migratePolicy=spec.migratePolicy,
        disableRerun=spec.disableRerun,
        timeLimit=spec.timeLimit,
        checkpointInterval=spec.checkpointInterval or None,
        lastCheckpoint=job.lastCheckpoint,
        **spec.model_dump(include=_INSTANCE_AND_CONTAINER),
        hostInitSize=job.hostInitSize,
        hostTerminateSize=job.hostTerminateSize,
        submitTime=job.submitTime,
        updateTime=job.updateTime,
        history=job.history,
        migrations=job.migrations,
        utilization=job.utilization,
    )


def submit(runtime: Runtime, store: Store, principal: Principal, request: SubmitRequest,
           api_url: str | None = None, origin: str | None = None) -> JobView:
    """Keep the script, create the job Submitted and start its launch. `origin` says in its
    first history entry where the job came from (a rerun of another)."""
    image_uri = images.resolve(store, request.image)
    fleet.check_instance_options(runtime, request.zone, request.securityGroups)
    wanted = volumes.resolve(store, runtime, principal.username, request.dataVolumes,
                             request.storage)
    if len(wanted) > _MAX_VOLUMES:
        raise BadRequest(f"{len(wanted)} data volumes asked for (--dataVolume and --storage); "
                         f"at most {_MAX_VOLUMES} are allowed", field="storage")
    job_id = runtime.new_id()
    now = runtime.now_iso()
    key = script_key(job_id)
    hosts = _host_scripts(job_id, request)
    # The scripts go first: a job item always points at scripts that exist.
    stored = {key: request.jobScript, **{k: text for k, text in hosts.values()}}
    for object_key, text in stored.items():
        runtime.s3.put_object(
            Bucket=runtime.config.data_bucket,
            Key=object_key,
            Body=text.encode(),
            ContentType="text/plain; charset=utf-8",
        )
    try:
        kept, keys_secret = volumes.store_keys(runtime, job_id, wanted)
    except Exception:
        for object_key in stored:
            runtime.s3.delete_object(Bucket=runtime.config.data_bucket, Key=object_key)
        raise
    spec = JobSpec.from_request(request)
    spec.dataVolumes = [volume.model_dump(mode="json") for volume in kept]
    if spec.checkpointInterval is None and not spec.disableMigrate:
        # The OpCenter's default as it is now: the job keeps the interval it was submitted with.
        spec.checkpointInterval = runtime.config.checkpoint_interval_seconds
    job = JobRecord(
        id=job_id,
        owner=principal.username,
        status=JobStatus.SUBMITTED,
        version=1,
        name=request.name,
        image=request.image,
        imageUri=image_uri,
        scriptKey=key,
        **{f"{name}Key": k for name, (k, _) in hosts.items()},
        **{f"{name}Size": len(text.encode()) for name, (_, text) in hosts.items()},
        spec=spec,
        apiUrl=api_url,
        volumeKeysSecretId=keys_secret,
        submitTime=now,
        updateTime=now,
        history=[HistoryEntry(time=now, to=JobStatus.SUBMITTED, reason=f"submitted by "
                              f"{principal.username}" + (f" as {origin}" if origin else ""))],
    )
    try:
        store.create_job(job)
    except Exception:
        for object_key in stored:
            runtime.s3.delete_object(Bucket=runtime.config.data_bucket, Key=object_key)
        volumes.delete_keys(runtime, job_id)
        raise
    job = licensing.admit(runtime, store, job)
    return view(job)


def _host_scripts(job_id: str, request: SubmitRequest) -> dict[HostScript, tuple[str, str]]:
    """The host scripts the job was submitted with: each one's S3 key and text."""
    texts = {HOST_INIT: request.hostInit, HOST_TERMINATE: request.hostTerminate}
    return {name: (host_script_key(job_id, name), text) for name, text in texts.items() if text}


def get_record(store: Store, principal: Principal, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    if job is None or not principal.may_touch_job(job_id, job.owner):
        raise NotFound(f"job {job_id} does not exist")
    return job


def show(runtime: Runtime, store: Store, principal: Principal, job_id: str) -> JobView:
    """The job with its history, and what its instances cost so far against On-demand."""
    job = get_record(store, principal, job_id)
    return metering.priced_view(view(job), metering.job_use(runtime, store, job))


def list_jobs(
    store: Store,
    principal: Principal,
    *,
    statuses: frozenset[JobStatus],
    user: str | None,
    name: str | None,
    limit: int,
    token: str | None,
) -> Page[JobView]:
    if not principal.is_admin:
        if user is not None and user != principal.username:
            raise Forbidden("only an admin may list other users' jobs")
        user = principal.username
    records, next_token = store.list_jobs(
        owner=user, statuses=statuses, name=name, limit=limit, token=token
    )
    return Page[JobView](items=[view(r) for r in records], nextToken=next_token)


def cancel(
    runtime: Runtime, store: Store, principal: Principal, job_id: str, reason: str | None
) -> JobView:
    """Cancel the job: Cancelled at once if it has no instance yet, else Cancelling. A job
    still Cancelling gets its cancel workflow again, should the last one have ended."""
    for attempt in range(_CANCEL_ATTEMPTS):
        job = get_record(store, principal, job_id)
        if job.status == JobStatus.CANCELLING:
            _start_cancel(runtime, job)
            return view(job)
        if job.status in TERMINAL_STATUSES:
            raise Conflict(f"job {job.id} is already {job.status.value}: {job.status.value} "
                           "is final and there is nothing to cancel")
        at_once = job.status in _CANCEL_AT_ONCE and job.instanceId is None
        target = JobStatus.CANCELLED if at_once else JobStatus.CANCELLING
        entry = HistoryEntry(
            time=runtime.now_iso(),
            from_=job.status,
            to=target,
            reason=f"cancelled by {principal.username}" + (f": {reason}" if reason else ""),
            instance=job.instanceId,
        )
        try:
            job = store.transition_job(job, target, entry)
        except StaleWrite:
            if attempt == _CANCEL_ATTEMPTS - 1:
                raise
            continue
        if target == JobStatus.CANCELLED:
            revoke_job_token(runtime, job.id)
            volumes.delete_keys(runtime, job.id)
        else:
            _start_cancel(runtime, job)
        return view(job)
    raise AssertionError("unreachable")


def _start_cancel(runtime: Runtime, job: JobRecord) -> None:
    """The cancel workflow stops the container, releases every instance, then Cancelled. A
    second cancel while it runs starts nothing; after one that ended, it starts anew."""
    executions.start_unless_running(runtime, "cancel", f"{job.id}-cancel", {
        "jobId": job.id, "timeouts": executions.timeouts(runtime.config)})


# (the job as it was, the job as moved, the history entry) → execution name and input.
Starter = Callable[[JobRecord, JobRecord, HistoryEntry], tuple[str, dict[str, Any]]]


def _request(runtime: Runtime, store: Store, principal: Principal, job_id: str,
             allowed_from: JobStatus, target: JobStatus, action: str, reason: str | None,
             workflow: str, starter: Starter,
             check: Callable[[JobRecord], None] | None = None) -> JobView:
    """Move the job to `target` at once, so the caller sees it, and start the workflow that
    carries the change out (`starter` names its execution and input); if the workflow cannot
    start, put the job back."""
    job = get_record(store, principal, job_id)
    if job.status != allowed_from:
        raise Conflict(f"job {job.id} is {job.status.value}; only a job that is "
                       f"{allowed_from.value} can be {action}")
    if check is not None:
        check(job)
    who = f"job {principal.job} itself" if principal.job else principal.username
    return view(_carry_out(runtime, store, job, target, action,
                           f"{action} by {who}" + (f": {reason}" if reason else ""),
                           workflow, starter))


def _carry_out(runtime: Runtime, store: Store, job: JobRecord, target: JobStatus, action: str,
               reason: str, workflow: str, starter: Starter,
               fields: dict[str, Any] | None = None) -> JobRecord:
    """Move the job to `target` with `reason` in its history, then start the workflow; put it
    back if the workflow cannot start."""
    entry = HistoryEntry(time=runtime.now_iso(), from_=job.status, to=target, reason=reason,
                         instance=job.instanceId)
    moved = store.transition_job(job, target, entry, fields)
    name, payload = starter(job, moved, entry)
    try:
        executions.start(runtime, workflow, name, payload)
    except (BotoCoreError, ClientError) as error:
        back = HistoryEntry(time=runtime.now_iso(), from_=target, to=job.status,
                            reason=f"{action} failed: its workflow could not be started",
                            instance=job.instanceId)
        store.transition_job(moved, job.status, back)
        raise Unavailable(f"job {job.id} could not be {action}: {error}") from error
    return moved


def _plain(runtime: Runtime, workflow: str) -> Starter:
    """Suspend and resume: one execution per request, named after the job's version."""
    def starter(_: JobRecord, job: JobRecord, entry: HistoryEntry) -> tuple[str, dict[str, Any]]:
        return f"{job.id}-{workflow}-{job.version}", {
            "jobId": job.id, "reason": entry.reason, "launchNumber": job.version,
            "timeouts": executions.timeouts(runtime.config)}
    return starter


def _checkpointable(action: str) -> Callable[[JobRecord], None]:
    def check(job: JobRecord) -> None:
        if job.spec.disableMigrate:
            raise Conflict(f"job {job.id} was submitted with disableMigrate: it is never "
                           f"checkpointed, so it cannot be {action}")
    return check


def suspend(runtime: Runtime, store: Store, principal: Principal, job_id: str,
            reason: str | None) -> JobView:
    """Checkpoint the job and release its instance; it keeps its place until resumed."""
    return _request(runtime, store, principal, job_id, JobStatus.EXECUTING,
                    JobStatus.SUSPENDING, "suspended", reason, "suspend",
                    _plain(runtime, "suspend"), check=_checkpointable("suspended"))


def resume(runtime: Runtime, store: Store, principal: Principal, job_id: str,
           reason: str | None) -> JobView:
    """Launch an instance for a suspended job and restore it there."""
    return _request(runtime, store, principal, job_id, JobStatus.SUSPENDED,
                    JobStatus.RESUMING, "resumed", reason, "resume", _plain(runtime, "resume"))


def migrate(runtime: Runtime, store: Store, principal: Principal, job_id: str,
            request: MigrateRequest) -> JobView:
    """Move a running job to a new instance: another type, other ranges, or (forced) the
    same type again. The job's spec takes the new sizes for every later launch."""
    target = request.model_dump(mode="json", include={"instType", "cpu", "mem", "vmPolicy"},
                                exclude_none=True)

    def same_place(job: JobRecord) -> None:
        _checkpointable("migrated")(job)
        if request.force or request.instType is None or request.vmPolicy is not None:
            return
        current = fleet.instance_type(runtime, job.instanceId)
        if current == request.instType:
            raise Conflict(f"job {job.id} already runs on {current}; "
                           "force the migration to move it to a new instance of that type")

    return _request(runtime, store, principal, job_id, JobStatus.EXECUTING,
                    JobStatus.CAPTURING, "migrated", request.reason, "migrate",
                    _move_starter(runtime, target or None), check=same_place)


def _move_starter(runtime: Runtime, target: dict[str, Any] | None) -> Starter:
    def starter(executing: JobRecord, _: JobRecord,
                entry: HistoryEntry) -> tuple[str, dict[str, Any]]:
        # Named as a reclaim of the same instance would be (the version it had while
        # Executing), so a request and a reclaim racing each other make one execution.
        return executions.migrate_start(
            executing.id, executing.instanceId, executing.version, reason=entry.reason,
            notice_time=entry.time,
            reclaim=False, target=target, timeouts=executions.timeouts(runtime.config))
    return starter


def auto_migrate(runtime: Runtime, store: Store, job: JobRecord, move: Move) -> JobRecord:
    """Start the move WaveRider decided for an Executing job: the same migration as `float
    migrate` to new cpu/mem ranges, its history naming the rule and the figures. StaleWrite if
    the job changed meanwhile (another heartbeat moved it, or it ended)."""
    target = {"cpu": move.cpu.model_dump(mode="json"), "mem": move.mem.model_dump(mode="json")}
    last: dict[str, str] = {"time": runtime.now_iso()}
    for resource, direction in move.directions.items():
        last[resource] = direction
    return _carry_out(runtime, store, job, JobStatus.CAPTURING, "migrated",
                      f"migrated by WaveRider: {move.reason}", "migrate",
                      _move_starter(runtime, target), {"lastAutoMove": last})
