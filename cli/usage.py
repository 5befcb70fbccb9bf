"""`float top -j ID`: what a job uses of its instance over time, sample by sample, and the
one-line summary `float show` prints."""

from __future__ import annotations

import argparse
import time

from chalicelib.wire.api import JobView, Page
from chalicelib.wire.status import TERMINAL_STATUSES
from chalicelib.wire.utilization import UtilizationSummary, UtilizationView
from cli import output
from cli.client import Client, segment
from cli.errors import UsageError
from cli.session import connect

DEFAULT_SAMPLES = 20
MAX_SAMPLES = 1000
DEFAULT_WATCH_SECONDS = 5
# While watching, each read asks for this many of the newest samples: more than arrive
# between two reads at the agent's heartbeat.
_WATCH_PAGE = 100


def top(args: argparse.Namespace) -> None:
    """The last `-n` samples, oldest first; with --watch, then each new sample as it arrives
    until the job is final."""
    samples = DEFAULT_SAMPLES if args.samples is None else args.samples
    if not 1 <= samples <= MAX_SAMPLES:
        raise UsageError(f"-n must be from 1 to {MAX_SAMPLES} samples, got {samples}")
    fmt = args.format or "table"
    if args.watch is not None and fmt != "table":
        raise UsageError(f"--watch prints a table as samples arrive; it does not go with "
                         f"--format {fmt}")
    if args.watch is not None and args.watch < 1:
        raise UsageError(f"--watch needs at least 1 second between reads, got {args.watch}")
    client = connect(args)
    job_path = f"/v1/jobs/{segment(args.job)}"
    points = _newest(client, job_path, samples)
    if fmt != "table":
        output.emit(fmt, points, lambda _: "")
        return
    if not points and args.watch is None:
        output.line(f"no utilization samples yet for job {args.job}")
        return
    rows = [_row(point) for point in points]
    text = series_table(rows)
    output.line(text if rows else text.splitlines()[0])
    if args.watch is None:
        return
    seen = {(p.time, p.instanceId) for p in points}
    while True:
        # The status first: a sample sent before the job ended is stored before it ends.
        final = client.call("GET", job_path, JobView).status in TERMINAL_STATUSES
        fresh = [p for p in _newest(client, job_path, _WATCH_PAGE)
                 if (p.time, p.instanceId) not in seen]
        for point in fresh:
            seen.add((point.time, point.instanceId))
            output.line(series_table([_row(point)]).splitlines()[1])
        if final:
            return
        time.sleep(args.watch)


def _newest(client: Client, job_path: str, count: int) -> list[UtilizationView]:
    page = client.call("GET", f"{job_path}/utilization", Page[UtilizationView],
                       query={"limit": str(count)})
    return list(reversed(page.items))


HEADERS = ("TIME", "INSTANCE", "TYPE", "VCPUS", "CPU%", "DEMAND%", "MEM", "LIMIT", "MEM%",
           "SWAP", "PRESSURE")
# Fixed widths, so that rows printed later while watching line up with the first table.
_WIDTHS = (20, 19, 12, 5, 5, 7, 9, 9, 5, 9, 8)


def series_table(rows: list[tuple[str, ...]]) -> str:
    lines = [HEADERS, *rows]
    return "\n".join("  ".join(output.cell(text).ljust(width)
                               for text, width in zip(line, _WIDTHS, strict=True)).rstrip()
                     for line in lines)


def _row(point: UtilizationView) -> tuple[str, ...]:
    return (point.time, point.instanceId, point.instanceType or "-", f"{point.vcpus:g}",
            f"{point.cpuRatio:.0f}", f"{point.cpuDemandRatio:.0f}", size(point.memoryBytes),
            size(point.memoryLimitBytes), f"{point.memoryRatio:.0f}", size(point.swapBytes),
            "-" if point.memoryPressure is None else f"{point.memoryPressure:.1f}%")


def size(count: int) -> str:
    """Bytes as MiB below a GiB, else GiB with one decimal."""
    if count >= 2**30:
        return f"{count / 2**30:.1f} GiB"
    return f"{count / 2**20:.0f} MiB"


def summary(use: UtilizationSummary, job_id: str) -> str:
    """`float show`'s UTILIZATION line: the latest sample, and the job's memory peak."""
    return (f"cpu {use.cpuRatio:.0f}% (demand {use.cpuDemandRatio:.0f}%) of {use.vcpus:g} "
            f"vCPUs, memory {size(use.memoryBytes)} of {size(use.memoryLimitBytes)} "
            f"({use.memoryRatio:.0f}%), peak {size(use.memoryPeakBytes)}"
            + (f", swap {size(use.swapBytes)}" if use.swapBytes else "")
            + f" at {use.time} (float top -j {job_id} for the series)")
