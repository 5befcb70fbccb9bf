"""A job's logs: the parts its agents shipped to S3 (laid out as `wire.logs` says), listed and
read back as one text per stream, also while the job still runs; and the output of its host
scripts (`hostinit.log`, `hostterminate.log`: one object per run, `wire.hostscripts`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.auth import Principal
from chalicelib.errors import NotFound
from chalicelib.jobs import get_record
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.api import LOG_NAMES, LogInfo
from chalicelib.wire.hostscripts import LOG_NAMES as HOST_LOG_NAMES
from chalicelib.wire.hostscripts import HostScript, log_prefix, script_of_log
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


def host_runs(s3: Any, bucket: str, job_id: str, script: HostScript) -> list[dict[str, Any]]:
    """The listed objects of each run of the host script, in the order they ran."""
    runs = [obj for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=log_prefix(job_id, script))
            for obj in page.get("Contents", [])]
    return sorted(runs, key=lambda obj: str(obj["Key"]))


def read_host_log(s3: Any, bucket: str, job_id: str, script: HostScript) -> bytes | None:
    """What every run of the script printed, one run after another; None before any ran."""
    runs = host_runs(s3, bucket, job_id, script)
    if not runs:
        return None
    return b"".join(bytes(s3.get_object(Bucket=bucket, Key=run["Key"])["Body"].read())
                    for run in runs)


def _log_name(job_id: str, name: str) -> str:
    # MMCloud's clients ask for `stdout.autosave`; it is the same stream.
    base = name.removesuffix(".autosave")
    if base not in LOG_NAMES:
        names = ", ".join([*LOG_NAMES, *HOST_LOG_NAMES.values()])
        raise NotFound(f"job {job_id} has no log named {name!r} (logs: {names})")
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
    for script, log_name in HOST_LOG_NAMES.items():
        runs = host_runs(runtime.s3, runtime.config.data_bucket, job.id, script)
        if runs:
            modified = max(run["LastModified"] for run in runs)
            infos.append(LogInfo(name=log_name, size=sum(int(run["Size"]) for run in runs),
                                 updateTime=modified.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return infos


def read_log(runtime: Runtime, store: Store, principal: Principal, job_id: str, name: str) -> bytes:
    job = get_record(store, principal, job_id)
    script = script_of_log(name)
    if script is not None:
        text = read_host_log(runtime.s3, runtime.config.data_bucket, job.id, script)
        if text is None:
            given = (job.hostInitKey if script == "hostInit" else job.hostTerminateKey) is not None
            raise NotFound(f"job {job.id} has no {HOST_LOG_NAMES[script]} " + (
                f"yet: its {script} script has not run" if given else f"(no {script} script)"))
        return text
    stream = _log_name(job.id, name)
    content = read_stream(runtime.s3, runtime.config.data_bucket, job.id, stream)
    if content is None:
        raise NotFound(
            f"job {job.id} has no {stream} yet: it is {job.status.value} and has not written any")
    return content
