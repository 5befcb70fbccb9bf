"""`float modify -j ID` (a live job's vmPolicy, migratePolicy and custom tags) and `float rerun
-j ID` (a finished job submitted again as a new job)."""

from __future__ import annotations

import argparse

from chalicelib.wire.api import JobView, ModifyRequest, RerunRequest
from cli import output
from cli.client import segment
from cli.errors import UsageError, validate
from cli.jobs import job_table, pairs
from cli.session import connect


def modify(args: argparse.Namespace) -> None:
    """`float modify -j ID [--vmPolicy SPEC] [--migratePolicy SPEC] [--customTag k:v]...
    [--removeCustomTag k]...`: PATCH /v1/jobs/ID, then the job as it is now."""
    body: dict[str, object] = {}
    if args.vmPolicy is not None:
        body["vmPolicy"] = args.vmPolicy
    if args.migratePolicy is not None:
        body["migratePolicy"] = args.migratePolicy
    if args.customTag:
        body["addCustomTags"] = pairs(args.customTag, ":", "--customTag", "key:value")
    if args.removeCustomTag:
        body["removeCustomTags"] = args.removeCustomTag
    if args.reason:
        body["reason"] = args.reason
    if not set(body) - {"reason"}:
        raise UsageError("nothing to modify: give --vmPolicy, --migratePolicy, --customTag "
                         "or --removeCustomTag")
    validate(ModifyRequest, body)
    job = connect(args).call("PATCH", f"/v1/jobs/{segment(args.job)}", JobView, body=body)
    output.emit(args.format, job, job_table)


def rerun(args: argparse.Namespace) -> None:
    """`float rerun -j ID`: the finished job submitted again; prints the new job as submit
    does (its `id` is the new job's)."""
    body = {"reason": args.reason} if args.reason else {}
    validate(RerunRequest, body)
    job = connect(args).call("POST", f"/v1/jobs/{segment(args.job)}/rerun", JobView, body=body)
    output.emit(args.format, job, job_table)
