"""A job's logs: the parts its agents shipped to S3 (laid out as `wire.logs` says), listed and
read back as one text per stream, also while the job still runs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.auth import Principal
from chalicelib.errors import NotFound
from chalicelib.jobs import get_record
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.api import LOG_NAMES, LogInfo
from chalicelib.wire.logs import LogPart, current_parts, listed, stream_prefix

# Parts are fetched this many at a time: a long, slow job leaves many small ones.
_READERS = 8


def stream_parts(s3: Any, bucket: str, job_id: str, stream: str) -> list[LogPart]:
    """The parts that make up the stream now, in order (none before it wrote anything)."""
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=stream_prefix(job_id, stream)):
        for obj in page.get("Contents", []):
            item = listed(job_id, stream, obj["Key"], obj["Size"], obj["LastModified"])
            if item is not None:
                items.append(item)
    return current_parts(items)


def read_stream(s3: Any, bucket: str, job_id: str, stream: str) -> bytes | None:
    """The stream's text as shipped so far; None when it has no part yet."""
    parts = stream_parts(s3, bucket, job_id, stream)
    if not parts:
        return None
    # Parts are never rewritten or deleted, so every listed one can be read.
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        bodies = list(pool.map(
            lambda part: bytes(s3.get_object(Bucket=bucket, Key=part.key)["Body"].read()), parts))
    return b"".join(bodies)


def _log_name(job_id: str, name: str) -> str:
    # MMCloud's clients ask for `stdout.autosave`; it is the same stream.
    base = name.removesuffix(".autosave")
    if base not in LOG_NAMES:
        raise NotFound(f"job {job_id} has no log named {name!r} (logs: {', '.join(LOG_NAMES)})")
    return base


def list_logs(runtime: Runtime, store: Store, principal: Principal, job_id: str) -> list[LogInfo]:
    """The streams the job has written to, each with its size as `float log cat` prints it."""
    job = get_record(store, principal, job_id)
    infos = []
    for stream in LOG_NAMES:
        parts = stream_parts(runtime.s3, runtime.config.data_bucket, job.id, stream)
        if not parts:
            continue
        modified = max(part.modified for part in parts if part.modified is not None)
        infos.append(LogInfo(name=stream, size=sum(part.size for part in parts),
                             updateTime=modified.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return infos


def read_log(runtime: Runtime, store: Store, principal: Principal, job_id: str, name: str) -> bytes:
    job = get_record(store, principal, job_id)
    stream = _log_name(job.id, name)
    content = read_stream(runtime.s3, runtime.config.data_bucket, job.id, stream)
    if content is None:
        raise NotFound(
            f"job {job.id} has no {stream} yet: it is {job.status.value} and has not written any")
    return content
