"""Shipping a container's stdout and stderr to S3 while it runs, so `float log` can read them.

podman writes the container's output in the k8s-file format (`TIME STREAM P|F TEXT`). The
shipper reads that file on from where it last stopped and sends each stream's new complete
lines as one part (`chalicelib.wire.logs` has the layout), so a call costs what the job wrote
since the last one, never the whole log again.

A checkpoint carries the log file along, so a job restored on another instance already holds
what it printed before. Its new shipper lists what is in S3 and goes on from there; the parts
beyond what the restored file holds (an older checkpoint, after the old agent had shipped on)
are left behind by a new epoch that begins below them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from chalicelib.wire.logs import (
    STREAMS,
    EpochOpening,
    LogPart,
    current_parts,
    listed,
    next_epoch,
    opening_key,
    part_key,
    stream_prefix,
)

# At most this much of the k8s-file is read (and held) at once; a backlog goes in several parts.
CHUNK_BYTES = 8 * 1024 * 1024


class K8sLine(NamedTuple):
    """One line of the k8s-file: where it starts in the file, its stream, and its text."""

    offset: int
    stream: str
    text: bytes


class PlannedPart(NamedTuple):
    stream: str
    start: int
    end: int
    body: bytes


def parse_k8s_file(data: bytes, offset: int = 0) -> list[K8sLine]:
    """The lines of `data`, read from `offset` of a k8s-file; a P (partial) line's text carries
    no newline, an F (full) line's ends with one. Other streams, broken lines and a last line
    without its newline are left out."""
    lines = []
    position = offset
    pieces = data.split(b"\n")
    for raw in pieces[:-1]:
        fields = raw.split(b" ", 3)
        stream = fields[1].decode("ascii", "replace") if len(fields) >= 3 else ""
        if stream in STREAMS:
            content = fields[3] if len(fields) == 4 else b""
            lines.append(K8sLine(position, stream, content + (b"\n" if fields[2] == b"F" else b"")))
        position += len(raw) + 1
    return lines


def plan_parts(lines: Iterable[K8sLine], positions: Mapping[str, int],
               end: int) -> tuple[list[PlannedPart], dict[str, int]]:
    """The parts for the lines read up to `end` of the file, and where each stream is then.

    A stream gets the lines from its own position on (after a restore the streams may resume
    at different places) and no part when it has none. Parts are in order of where they
    start: when one is put, every stream is in S3 up to its start, which is how a later
    shipper knows where a stream that had nothing to say stands (`resume_positions`)."""
    texts: dict[str, list[bytes]] = {stream: [] for stream in STREAMS}
    for line in lines:
        if line.offset >= positions[line.stream]:
            texts[line.stream].append(line.text)
    parts = [PlannedPart(stream, positions[stream], end, body) for stream in STREAMS
             if positions[stream] < end and (body := b"".join(texts[stream]))]
    parts.sort(key=lambda part: part.start)
    return parts, {stream: max(positions[stream], end) for stream in STREAMS}


def resume_positions(current: Mapping[str, Sequence[LogPart]], carried: int) -> dict[str, int]:
    """Where each stream goes on when a shipper takes over a log file whose first `carried`
    bytes are the ones already shipped from (0: a fresh log, a rerun).

    Parts ending beyond `carried` are dropped: the file holds other text there, or none yet.
    Each stream resumes after its last kept part, and no earlier than where the last kept part
    of any stream starts, since every stream was in S3 up to there when it was put."""
    kept = {stream: [p for p in current.get(stream, ()) if p.end <= carried] for stream in STREAMS}
    floor = max((part.start for parts in kept.values() for part in parts), default=0)
    return {stream: max([floor, *(part.end for part in kept[stream])]) for stream in STREAMS}


def read_complete_lines(path: Path, offset: int, limit: int = CHUNK_BYTES) -> bytes:
    """Up to `limit` bytes of the file from `offset`, cut after the last newline: a line still
    being written waits for its newline. A line longer than `limit` is read whole."""
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read(limit)
        if b"\n" not in data and len(data) == limit:
            data += file.readline()
    return data[:data.rfind(b"\n") + 1]


class LogShipper:
    """Sends one job's log to S3 from one log file: the container a run or a restore made.

    `carried` is how much of the file a restore brought along (the checkpoint's log size);
    0 for a fresh run, whose earlier parts are then no longer read; None when unknown, taken
    as the file's size when shipping begins.
    """

    def __init__(self, s3: Any, bucket: str, job_id: str, log_path: Path, *,
                 carried: int | None, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._job_id = job_id
        self.log_path = log_path
        self._carried = carried
        self._chunk_bytes = chunk_bytes
        self._lock = threading.Lock()
        self._epoch: int | None = None
        # Where each stream's next part begins, and how far the file has been read.
        self._positions = dict.fromkeys(STREAMS, 0)
        self._read_to = 0
        # (key, body) planned but not yet in S3, in the order they must go.
        self._pending: deque[tuple[str, bytes]] = deque()

    def log_size(self) -> int | None:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return None

    def ship(self) -> None:
        """Send what the job wrote up to now since the last call. A put that fails raises; the
        next call puts the same key with the same bytes before reading on, so no byte is
        skipped and none is sent twice under two keys."""
        with self._lock:
            size = self.log_size()
            if size is None:
                return
            epoch = self._epoch if self._epoch is not None else self._open(size)
            while True:
                self._put_pending()
                # Up to the size seen on entry: a job that writes faster than S3 takes it must
                # not keep the agent in here (and its lock held) for ever.
                if self._read_to >= size:
                    return
                try:
                    data = read_complete_lines(self.log_path, self._read_to,
                                               min(self._chunk_bytes, size - self._read_to))
                except FileNotFoundError:
                    return
                if not data:
                    return
                end = self._read_to + len(data)
                parts, self._positions = plan_parts(
                    parse_k8s_file(data, self._read_to), self._positions, end)
                self._read_to = end
                self._pending.extend(
                    (part_key(self._job_id, part.stream, epoch, part.start, part.end),
                     part.body) for part in parts)

    def _open(self, size: int) -> int:
        """Begin this shipper's epoch where what is in S3 and the file agree; its number."""
        items = {stream: self._listed(stream) for stream in STREAMS}
        carried = size if self._carried is None else min(self._carried, size)
        positions = resume_positions(
            {stream: current_parts(found) for stream, found in items.items()}, carried)
        epoch = next_epoch(item for found in items.values() for item in found)
        # Set only once every listing succeeded; the openings go before any part.
        self._pending.extend((opening_key(self._job_id, stream, epoch, positions[stream]), b"")
                             for stream in STREAMS)
        self._epoch, self._positions = epoch, positions
        self._read_to = min(positions.values())
        return epoch

    def _listed(self, stream: str) -> list[LogPart | EpochOpening]:
        found = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket,
                                       Prefix=stream_prefix(self._job_id, stream)):
            for obj in page.get("Contents", []):
                item = listed(self._job_id, stream, obj["Key"])
                if item is not None:
                    found.append(item)
        return found

    def _put_pending(self) -> None:
        while self._pending:
            key, body = self._pending[0]
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body,
                                ContentType="text/plain; charset=utf-8")
            self._pending.popleft()
