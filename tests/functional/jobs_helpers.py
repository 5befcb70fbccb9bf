"""Seeding jobs straight into the store, for tests that need a job in a given status."""

from __future__ import annotations

from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, JobSpec, Store
from chalicelib.wire.api import HistoryEntry, SubmitRequest
from chalicelib.wire.status import JobStatus


def seed_job(runtime: Runtime, store: Store, job_id: str, status: JobStatus,
             owner: str = "alice", instance: str | None = None,
             name: str | None = None) -> JobRecord:
    now = runtime.now_iso()
    request = SubmitRequest(image="docker.io/library/busybox:latest", jobScript="true")
    job = JobRecord(
        id=job_id, owner=owner, status=status, version=1, name=name, image=request.image,
        imageUri=request.image, scriptKey=f"jobs/{job_id}/script",
        spec=JobSpec.from_request(request), instanceId=instance, submitTime=now, updateTime=now,
        history=[HistoryEntry(time=now, to=status, reason="seeded")],
    )
    store.create_job(job)
    return job


def entry(runtime: Runtime, current: JobStatus, target: JobStatus, reason: str) -> HistoryEntry:
    return HistoryEntry(time=runtime.now_iso(), from_=current, to=target, reason=reason)
