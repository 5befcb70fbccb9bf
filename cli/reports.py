"""`float report usage [--month YYYY-MM] [--user U]`: a month's vCPU core-hours by user."""

from __future__ import annotations

import argparse

from chalicelib.wire.licenses import UsageReport
from cli import output
from cli.session import connect


def usage(args: argparse.Namespace) -> None:
    query = {key: value for key, value in (("month", args.month), ("user", args.user)) if value}
    report = connect(args).call("GET", "/v1/reports/usage", UsageReport, query=query)
    output.emit(args.format, report, usage_table)


def usage_table(report: UsageReport) -> str:
    rows = [(u.user, u.coreHours, u.jobs, u.instanceSeconds) for u in report.users]
    rows.append(("TOTAL", report.coreHours, sum(u.jobs for u in report.users),
                 sum(u.instanceSeconds for u in report.users)))
    return f"{report.month}\n" + output.table(
        ("USER", "CORE-HOURS", "JOBS", "INSTANCE SECONDS"), rows)
