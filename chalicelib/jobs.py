"""Jobs: submit, look up, list, cancel, and read their logs.

A user sees and touches only their own jobs; an admin sees all. A job that is not the caller's
is reported as not found, so ids of other users' jobs are not confirmed to exist.
"""

from __future__ import annotations

from chalicelib import images
from chalicelib.auth import Principal
from chalicelib.errors import Forbidden, NotFound, StaleWrite
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, JobSpec, Store
from chalicelib.wire.api import LOG_NAMES, HistoryEntry, JobView, LogInfo, Page, SubmitRequest
from chalicelib.wire.status import JobStatus

# A job that never got an instance has nothing to tear down and is cancelled at once.
_CANCEL_AT_ONCE = frozenset({JobStatus.SUBMITTED, JobStatus.WAITING_FOR_LICENSE})
# Re-read and decide again this many times when another writer moves the job first.
_CANCEL_ATTEMPTS = 3


def script_key(job_id: str) -> str:
    return f"jobs/{job_id}/script"


def log_key(job_id: str, name: str) -> str:
    return f"jobs/{job_id}/logs/{name}"


def view(job: JobRecord) -> JobView:
    spec = job.spec
    return JobView(
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
        env=spec.env,
        customTags=spec.customTags,
        dataVolumes=spec.dataVolumes,
        vmPolicy=spec.vmPolicy,
        migratePolicy=spec.migratePolicy,
        submitTime=job.submitTime,
        updateTime=job.updateTime,
        history=job.history,
    )


def submit(runtime: Runtime, store: Store, principal: Principal, request: SubmitRequest) -> JobView:
    image_uri = images.resolve(store, request.image)
    job_id = runtime.new_id()
    now = runtime.now_iso()
    key = script_key(job_id)
    # The script goes first: a job item always points at a script that exists.
    runtime.s3.put_object(
        Bucket=runtime.config.data_bucket,
        Key=key,
        Body=request.jobScript.encode(),
        ContentType="text/plain; charset=utf-8",
    )
    job = JobRecord(
        id=job_id,
        owner=principal.username,
        status=JobStatus.SUBMITTED,
        version=1,
        name=request.name,
        image=request.image,
        imageUri=image_uri,
        scriptKey=key,
        spec=JobSpec.from_request(request),
        submitTime=now,
        updateTime=now,
        history=[HistoryEntry(time=now, to=JobStatus.SUBMITTED, reason=f"submitted by {principal.username}")],
    )
    try:
        store.create_job(job)
    except Exception:
        runtime.s3.delete_object(Bucket=runtime.config.data_bucket, Key=key)
        raise
    return view(job)


def get_record(store: Store, principal: Principal, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    if job is None or not principal.may_touch(job.owner):
        raise NotFound(f"job {job_id} does not exist")
    return job


def show(store: Store, principal: Principal, job_id: str) -> JobView:
    return view(get_record(store, principal, job_id))


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
    """Cancel the job: Cancelled at once if it has no instance yet, else Cancelling."""
    for attempt in range(_CANCEL_ATTEMPTS):
        job = get_record(store, principal, job_id)
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
            return view(store.transition_job(job, target, entry))
        except StaleWrite:
            if attempt == _CANCEL_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _log_name(job_id: str, name: str) -> str:
    # MMCloud's clients ask for `stdout.autosave`; it is the same stream.
    base = name.removesuffix(".autosave")
    if base not in LOG_NAMES:
        raise NotFound(f"job {job_id} has no log named {name!r} (logs: {', '.join(LOG_NAMES)})")
    return base


def list_logs(runtime: Runtime, store: Store, principal: Principal, job_id: str) -> list[LogInfo]:
    job = get_record(store, principal, job_id)
    response = runtime.s3.list_objects_v2(
        Bucket=runtime.config.data_bucket, Prefix=log_key(job.id, "")
    )
    return [
        LogInfo(
            name=obj["Key"].rsplit("/", 1)[-1],
            size=obj["Size"],
            updateTime=obj["LastModified"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for obj in response.get("Contents", [])
    ]


def read_log(runtime: Runtime, store: Store, principal: Principal, job_id: str, name: str) -> bytes:
    job = get_record(store, principal, job_id)
    base = _log_name(job.id, name)
    s3 = runtime.s3
    try:
        response = s3.get_object(Bucket=runtime.config.data_bucket, Key=log_key(job.id, base))
    except s3.exceptions.NoSuchKey:
        raise NotFound(
            f"job {job.id} has no {base} yet: it is {job.status.value} and has not written any"
        ) from None
    return bytes(response["Body"].read())
