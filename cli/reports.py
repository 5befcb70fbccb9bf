"""`float report usage|cost [--month YYYY-MM] [--user U]`: a month's vCPU core-hours, or its
spend against On-demand, by user."""

from __future__ import annotations

import argparse

from chalicelib.wire.billing import UsageReport
from cli import output
from cli.session import connect


def usage(args: argparse.Namespace) -> None:
    output.emit(args.format, _report(args, "usage"), usage_table)


def cost(args: argparse.Namespace) -> None:
    output.emit(args.format, _report(args, "cost"), cost_table)


def _report(args: argparse.Namespace, kind: str) -> UsageReport:
    query = {key: value for key, value in (("month", args.month), ("user", args.user)) if value}
    report: UsageReport = connect(args).call("GET", f"/v1/reports/{kind}", UsageReport,
                                             query=query)
    return report


def cost_table(report: UsageReport) -> str:
    rows = [(u.user, u.cost, u.onDemandCost, u.savings, u.coreHours, u.unpricedSeconds or None)
            for u in report.users]
    rows.append(("TOTAL", report.cost, report.onDemandCost, report.savings, report.coreHours,
                 sum(u.unpricedSeconds or 0 for u in report.users) or None))
    return f"{report.month}\n" + output.table(
        ("USER", "COST", "ON-DEMAND", "SAVINGS", "CORE-HOURS", "UNPRICED SECONDS"), rows)


def usage_table(report: UsageReport) -> str:
    rows = [(u.user, u.coreHours, u.jobs, u.instanceSeconds) for u in report.users]
    rows.append(("TOTAL", report.coreHours, sum(u.jobs for u in report.users),
                 sum(u.instanceSeconds for u in report.users)))
    return f"{report.month}\n" + output.table(
        ("USER", "CORE-HOURS", "JOBS", "INSTANCE SECONDS"), rows)
