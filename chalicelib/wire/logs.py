"""How a job's stdout and stderr lie in S3: the parts its agents ship as the job writes, and
which of them make up each stream now; and the headers of a log read from an offset.

    jobs/JOB/logs/STREAM/EPOCH/from-OFFSET     an epoch begins: its text starts at OFFSET, and
                                               earlier epochs give what came before
    jobs/JOB/logs/STREAM/EPOCH/START-END       a part: the stream's text among the bytes
                                               [START, END) of the container's k8s-file log

Offsets are positions in the k8s-file podman writes (both streams interleaved, one line each),
so one LIST says where each stream stopped. Every shipper an agent starts (a run, a restore)
opens a new epoch, which may begin below where the last one ended: a restore from an older
checkpoint carries a shorter log, a rerun from the start a new one (from 0). Earlier parts
beyond that point are not read, never deleted, so a late writer on an instance the job has
left cannot reach into the text of the epoch that follows it. Numbers are zero-padded, so keys
sort in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

STREAMS = ("stdout", "stderr")

# A log read from a byte offset (`?offset=N`) or as its last lines (`?lines=N`) answers with
# these headers: where the body begins and ends in the stream (ask for `offset=END` next), the
# stream's size now, and where the text of its newest epoch begins. A follower that sees the
# epoch change to one beginning below its offset knows the text from there was replaced (a
# restore from an older checkpoint, a rerun from the start) and reads on from that point.
LOG_OFFSET_HEADER = "X-Log-Offset"
LOG_END_HEADER = "X-Log-End"
LOG_SIZE_HEADER = "X-Log-Size"
LOG_EPOCH_HEADER = "X-Log-Epoch"
LOG_EPOCH_START_HEADER = "X-Log-Epoch-Start"
# `float log` accepts this name too: the job's standard output, as MMCloud's clients call it.
LOG_ALIASES = {"output": "stdout"}
MAX_LOG_LINES = 100_000

_EPOCH_DIGITS = 6
_OFFSET_DIGITS = 16
_PART = re.compile(r"^(\d+)/(\d+)-(\d+)$")
_OPENING = re.compile(r"^(\d+)/from-(\d+)$")


class LogPart(BaseModel):
    """One shipped part: the stream's text among the k8s-file bytes [start, end)."""

    model_config = ConfigDict(frozen=True)

    key: str
    epoch: int
    start: int
    end: int
    size: int = 0
    modified: datetime | None = None


class EpochOpening(BaseModel):
    """An epoch's first object: its text begins at `start` of the k8s-file."""

    model_config = ConfigDict(frozen=True)

    key: str
    epoch: int
    start: int


def stream_prefix(job_id: str, stream: str) -> str:
    return f"jobs/{job_id}/logs/{stream}/"


def part_key(job_id: str, stream: str, epoch: int, start: int, end: int) -> str:
    return (f"{stream_prefix(job_id, stream)}{epoch:0{_EPOCH_DIGITS}d}/"
            f"{start:0{_OFFSET_DIGITS}d}-{end:0{_OFFSET_DIGITS}d}")


def opening_key(job_id: str, stream: str, epoch: int, start: int) -> str:
    return (f"{stream_prefix(job_id, stream)}{epoch:0{_EPOCH_DIGITS}d}/"
            f"from-{start:0{_OFFSET_DIGITS}d}")


def listed(job_id: str, stream: str, key: str, size: int = 0,
           modified: datetime | None = None) -> LogPart | EpochOpening | None:
    """What a listed key under the stream's prefix is; None for anything else."""
    name = key.removeprefix(stream_prefix(job_id, stream))
    if name == key:
        return None
    if part := _PART.match(name):
        epoch, start, end = (int(group) for group in part.groups())
        if start >= end:
            return None
        return LogPart(key=key, epoch=epoch, start=start, end=end, size=size, modified=modified)
    if opening := _OPENING.match(name):
        return EpochOpening(key=key, epoch=int(opening[1]), start=int(opening[2]))
    return None


def current_parts(items: Iterable[LogPart | EpochOpening]) -> list[LogPart]:
    """The parts that make up the stream now, in order: the newest epoch's, then each earlier
    epoch's that end at or before where every later epoch begins."""
    parts: dict[int, list[LogPart]] = {}
    starts: dict[int, int] = {}
    for item in items:
        if isinstance(item, LogPart):
            parts.setdefault(item.epoch, []).append(item)
        else:
            starts[item.epoch] = item.start
    newest_first: list[list[LogPart]] = []
    limit: int | None = None  # where the text of the later epochs begins
    for epoch in sorted(parts.keys() | starts.keys(), reverse=True):
        own = parts.get(epoch, [])
        # An opening is written before any part; without one, the epoch begins at its first.
        start = starts.get(epoch, min((p.start for p in own), default=0))
        newest_first.append(sorted(
            (p for p in own if p.start >= start and (limit is None or p.end <= limit)),
            key=lambda p: p.start))
        limit = start if limit is None else min(limit, start)
        if limit == 0:
            break
    return [part for epoch_parts in reversed(newest_first) for part in epoch_parts]


def next_epoch(items: Iterable[LogPart | EpochOpening]) -> int:
    return max((item.epoch for item in items), default=0) + 1
