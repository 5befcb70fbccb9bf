"""Changes to a job after its submit: `float modify` (the policies and custom tags of a job
still running or waiting) and `float rerun` (a finished job submitted again as a new one)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import fleet, jobs
from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, Conflict, NotFound, StaleWrite
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store
from chalicelib.wire.api import (
    HistoryEntry,
    JobView,
    ModifyRequest,
    SubmitRequest,
    check_tags,
)
from chalicelib.wire.specs import MigratePolicy, VmPolicy
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus

logger = Logger(service="openfloat-api")

# Re-read and decide again this many times when another writer moves the job first.
_ATTEMPTS = 3


def modify(runtime: Runtime, store: Store, principal: Principal, job_id: str,
           request: ModifyRequest) -> JobView:
    """Change a live job's vmPolicy (the next launch or move uses it), migratePolicy and
    custom tags (kept for later launches, and set on the instance it runs on now). The
    history notes what changed; a change to what the job already has notes nothing."""
    for attempt in range(_ATTEMPTS):
        job = jobs.get_record(store, principal, job_id)
        if job.status in TERMINAL_STATUSES or job.status == JobStatus.CANCELLING:
            raise Conflict(f"job {job.id} is {job.status.value}; only a job that is still "
                           "running or waiting can be modified")
        spec, changes = _changed(job, request)
        if not changes:
            return jobs.view(job)
        last = job.history[-1] if job.history else None
        entry = HistoryEntry(
            time=runtime.now_iso(), from_=job.status, to=job.status,
            reason=f"modified by {principal.username}: {'; '.join(changes)}"
            + (f" ({request.reason})" if request.reason else ""),
            # The instance of the entry before: the status did not move, nor did the job.
            instance=last.instance if last is not None else job.instanceId)
        try:
            modified = store.modify_job(job, entry, {"spec": spec})
        except StaleWrite:
            if attempt == _ATTEMPTS - 1:
                raise
            continue
        _retag(runtime, modified, request)
        return jobs.view(modified)
    raise AssertionError("unreachable")


def _changed(job: JobRecord, request: ModifyRequest) -> tuple[Any, list[str]]:
    """The job's spec with the request applied, and what differs, in words."""
    spec = job.spec
    changes: list[str] = []
    updates: dict[str, Any] = {}
    if request.vmPolicy is not None:
        vm = request.vmPolicy.model_dump(mode="json")
        if vm != VmPolicy.model_validate(spec.vmPolicy).model_dump(mode="json"):
            updates["vmPolicy"] = vm
            changes.append(f"vmPolicy {request.vmPolicy}")
    if request.migratePolicy is not None:
        rules = request.migratePolicy.model_dump(mode="json")
        old = spec.migratePolicy
        if old is None or rules != MigratePolicy.model_validate(old).model_dump(mode="json"):
            updates["migratePolicy"] = rules
            changes.append(f"migratePolicy {request.migratePolicy}")
    tags = dict(spec.customTags)
    for key, value in request.addCustomTags.items():
        if tags.get(key) != value:
            tags[key] = value
            changes.append(f"tag {key}:{value}")
    for key in request.removeCustomTags:
        if key in tags:
            del tags[key]
            changes.append(f"tag {key} removed")
    if tags != spec.customTags:
        try:
            check_tags(tags)
        except ValueError as error:
            raise BadRequest(str(error), field="addCustomTags") from None
        updates["customTags"] = tags
    return spec.model_copy(update=updates), changes


def _retag(runtime: Runtime, job: JobRecord, request: ModifyRequest) -> None:
    if job.instanceId is None or not (request.addCustomTags or request.removeCustomTags):
        return
    try:
        fleet.retag(runtime, job.instanceId, request.addCustomTags, request.removeCustomTags)
    except (BotoCoreError, ClientError) as error:
        # The job's record holds the tags; its next instance carries them whatever happens here.
        logger.warning("could not retag the job's instance", extra={
            "job_id": job.id, "instance_id": job.instanceId, "error": str(error)})


def rerun(runtime: Runtime, store: Store, principal: Principal, job_id: str,
          reason: str | None, api_url: str | None = None) -> JobView:
    """Submit a finished job again: the same image, script and spec, as a new job of the
    caller's whose first history entry names the original."""
    job = jobs.get_record(store, principal, job_id)
    if job.status not in TERMINAL_STATUSES:
        raise Conflict(f"job {job.id} is {job.status.value}; only a finished job can be rerun "
                       "(wait for it to end, or cancel it first)")
    try:
        script = runtime.s3.get_object(Bucket=runtime.config.data_bucket, Key=job.scriptKey)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            raise NotFound(f"job {job.id}'s script is no longer kept; submit it anew") from None
        raise
    request = SubmitRequest.model_validate({
        **job.spec.model_dump(mode="json"), "image": job.image, "name": job.name,
        "jobScript": script["Body"].read().decode(errors="replace")})
    origin = f"a rerun of job {job.id}" + (f" ({reason})" if reason else "")
    return jobs.submit(runtime, store, principal, request, api_url, origin=origin)
