"""`float log tail [--follow] [-n N] NAME -j ID`: the last lines of a job's log, then (with
--follow) what the job prints next, read from where the last read ended, until the job is
final and everything it printed has been shown."""

from __future__ import annotations

import argparse
import http.client
import sys
import time
from dataclasses import dataclass

from chalicelib.wire.api import JobView
from chalicelib.wire.logs import LOG_END_HEADER, LOG_EPOCH_HEADER, LOG_EPOCH_START_HEADER
from chalicelib.wire.status import TERMINAL_STATUSES
from cli import output
from cli.client import Client, segment
from cli.errors import CliError, UsageError
from cli.session import connect

DEFAULT_LINES = 10
# Between two reads while following: new output shows within about this many seconds.
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Slice:
    content: bytes
    end: int
    epoch: int
    epochStart: int


def tail(args: argparse.Namespace) -> None:
    """Print the last `-n` lines (default 10); with --follow go on printing what the job
    prints, each read asking only for the bytes after the last one, and stop once the job is
    final and a read brings nothing new."""
    if not args.name:
        raise UsageError("say which log: float log tail [--follow] stdout -j ID")
    lines = DEFAULT_LINES if args.lines is None else args.lines
    if lines < 0:
        raise UsageError(f"-n must be 0 or more lines, got {lines}")
    client = connect(args)
    job_path = f"/v1/jobs/{segment(args.job)}"
    log_path = f"{job_path}/logs/{segment(args.name)}"
    last = _read(client, log_path, {"lines": str(max(lines, 1))})
    if lines:
        output.raw(last.content)
    if not args.follow:
        return
    offset, epoch = last.end, last.epoch
    while True:
        # The status is read before the log: output written before the job ended is shipped
        # before it is reported ended, so a final status and then an empty read mean done.
        final = client.call("GET", job_path, JobView).status in TERMINAL_STATUSES
        piece = _read(client, log_path, {"offset": str(offset)})
        if piece.epoch != epoch and piece.epochStart < offset:
            _note(f"{args.name} went back to byte {piece.epochStart} (the job was restored "
                  "from an earlier checkpoint or started again); what follows replaces what "
                  "was shown after it")
            piece = _read(client, log_path, {"offset": str(piece.epochStart)})
        epoch = piece.epoch
        if piece.content:
            output.raw(piece.content)
        elif final:
            return
        offset = piece.end
        if not final:
            time.sleep(POLL_SECONDS)


def _read(client: Client, path: str, query: dict[str, str]) -> Slice:
    content, headers = client.read_with_headers(path, query)
    return Slice(content=content, end=_number(headers, LOG_END_HEADER),
                 epoch=_number(headers, LOG_EPOCH_HEADER),
                 epochStart=_number(headers, LOG_EPOCH_START_HEADER))


def _number(headers: http.client.HTTPMessage, name: str) -> int:
    text = headers.get(name)
    if text is None or not text.isdigit():
        raise CliError(f"the OpCenter's log reply has no {name} header; it may be older than "
                       "this float (float version shows both)")
    return int(text)


def _note(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"float: {message}\n")
    sys.stderr.flush()
