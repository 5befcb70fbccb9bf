"""A job's logs: the parts its agents shipped to S3 (laid out as `wire.logs` says), listed and
read back as one text per stream, whole, from a byte offset or as its last lines, also while
the job still runs; and the output of its host scripts (`hostinit.log`, `hostterminate.log`:
one object per run, `wire.hostscripts`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, NotFound
from chalicelib.jobs import get_record
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.api import LOG_NAMES, LogInfo
from chalicelib.wire.base import parse_whole
from chalicelib.wire.hostscripts import LOG_NAMES as HOST_LOG_NAMES
from chalicelib.wire.hostscripts import HostScript, log_prefix, script_of_log
from chalicelib.wire.logs import (
    LOG_ALIASES,
    LOG_END_HEADER,
    LOG_EPOCH_HEADER,
    LOG_EPOCH_START_HEADER,
    LOG_OFFSET_HEADER,
    LOG_SIZE_HEADER,
    EpochOpening,
    LogPart,
    current_parts,
    listed,
    stream_prefix,
)

# Parts are fetched this many at a time: a long, slow job leaves many small ones.
_READERS = 8


def _listing(s3: Any, bucket: str, job_id: str, stream: str) -> list[LogPart | EpochOpening]:
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=stream_prefix(job_id, stream)):
        for obj in page.get("Contents", []):
            item = listed(job_id, stream, obj["Key"], obj["Size"], obj["LastModified"])
            if item is not None:
                items.append(item)
    return items


def stream_parts(s3: Any, bucket: str, job_id: str, stream: str) -> list[LogPart]:
    """The parts that make up the stream now, in order (none before it wrote anything)."""
    return current_parts(_listing(s3, bucket, job_id, stream))


def _fetch(s3: Any, bucket: str, pieces: list[tuple[LogPart, int]]) -> bytes:
    """Each part from its byte `skip` on, joined. Parts are never rewritten or deleted, so
    every listed one can be read."""
    def body(piece: tuple[LogPart, int]) -> bytes:
        part, skip = piece
        extra = {"Range": f"bytes={skip}-"} if skip else {}
        return bytes(s3.get_object(Bucket=bucket, Key=part.key, **extra)["Body"].read())
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        return b"".join(pool.map(body, pieces))


def read_stream(s3: Any, bucket: str, job_id: str, stream: str) -> bytes | None:
    """The stream's text as shipped so far; None when it has no part yet."""
    parts = stream_parts(s3, bucket, job_id, stream)
    if not parts:
        return None
    return _fetch(s3, bucket, [(part, 0) for part in parts])


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
    # MMCloud's clients ask for `stdout.autosave` and `output`; they are the same stream.
    base = name.removesuffix(".autosave")
    base = LOG_ALIASES.get(base, base)
    if base not in LOG_NAMES:
        names = ", ".join([*LOG_NAMES, *LOG_ALIASES, *HOST_LOG_NAMES.values()])
        raise NotFound(f"job {job_id} has no log named {name!r} (logs: {names}; stdout, stderr "
                       "and output also as NAME.autosave)")
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


@dataclass(frozen=True)
class LogSlice:
    """Part of a stream: its bytes [offset, end), the stream's size, its newest epoch and
    where that epoch's text begins."""

    content: bytes
    offset: int
    size: int
    epoch: int
    epochStart: int

    @property
    def end(self) -> int:
        return self.offset + len(self.content)

    def headers(self) -> dict[str, str]:
        return {LOG_OFFSET_HEADER: str(self.offset), LOG_END_HEADER: str(self.end),
                LOG_SIZE_HEADER: str(self.size), LOG_EPOCH_HEADER: str(self.epoch),
                LOG_EPOCH_START_HEADER: str(self.epochStart)}


def whole_number(text: str | None, name: str, low: int, high: int | None = None) -> int | None:
    """A query parameter that must be a whole number in [low, high]; None when absent."""
    if text is None:
        return None
    number = parse_whole(text)
    if number is None or number < low or (high is not None and number > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BadRequest(f"{name} must be a whole number {bound}, got {text[:40]!r}", field=name)
    return number


def read_slice(runtime: Runtime, store: Store, principal: Principal, job_id: str, name: str,
               offset: int | None, lines: int | None) -> LogSlice:
    """The stream from byte `offset` on, or its last `lines` lines. Only the parts that hold
    them are read. A stream not written yet reads as empty; an offset past the end as nothing.
    The slice begins and ends on UTF-8 character boundaries."""
    if offset is not None and lines is not None:
        raise BadRequest("give offset or lines, not both", field="lines")
    job = get_record(store, principal, job_id)
    stream = _log_name(job.id, name)
    bucket = runtime.config.data_bucket
    items = _listing(runtime.s3, bucket, job.id, stream)
    parts = current_parts(items)
    epoch = max((item.epoch for item in items), default=0)
    starts = [0]
    for part in parts:
        starts.append(starts[-1] + part.size)
    size = starts[-1]
    epoch_start = sum(part.size for part in parts if part.epoch < epoch)
    if lines is not None:
        begin, content = _last_lines(runtime.s3, bucket, parts, starts, lines)
    else:
        begin = min(offset or 0, size)
        pieces = [(part, max(0, begin - start)) for part, start in zip(parts, starts, strict=False)
                  if start + part.size > begin]
        content = _fetch(runtime.s3, bucket, pieces) if pieces else b""
    # Whole characters only: an offset inside one begins after it, the rest of one cut off at
    # the end comes with the next read.
    lead = next((i for i, byte in enumerate(content[:4]) if byte & 0xC0 != 0x80), len(content))
    lead = lead if lead < 4 else 0
    return LogSlice(content=content[lead:_complete_utf8(content)], offset=begin + lead,
                    size=size, epoch=epoch, epochStart=epoch_start)


def _last_lines(s3: Any, bucket: str, parts: list[LogPart], starts: list[int],
                lines: int) -> tuple[int, bytes]:
    """Where the last `lines` lines begin and their bytes, reading parts from the last back
    only until enough newlines are in hand."""
    data = b""
    index = len(parts)
    while index > 0:
        index -= 1
        data = _fetch(s3, bucket, [(parts[index], 0)]) + data
        # A final newline ends the last line; it does not begin another.
        if data.count(b"\n", 0, len(data) - 1) >= lines:
            break
    cut = len(data) - 1
    for _ in range(lines):
        cut = data.rfind(b"\n", 0, cut)
        if cut < 0:
            break
    begin = cut + 1 if cut >= 0 else 0
    return starts[index] + begin, data[begin:]


def _complete_utf8(data: bytes) -> int:
    """The length of `data` without a UTF-8 character cut off at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the last character's lead
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else \
                4 if byte & 0xF8 == 0xF0 else 1
            return len(data) - back if need > back else len(data)
    return len(data)
