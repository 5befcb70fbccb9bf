"""Job commands: submit, list, show, log and cancel, and how a job looks as a table."""

from __future__ import annotations

import argparse
import os

from chalicelib.wire.api import (
    MAX_JOB_SCRIPT_BYTES,
    CancelRequest,
    JobView,
    LogInfo,
    SubmitRequest,
)
from chalicelib.wire.specs import VmPolicy
from cli import filters, output, prompt
from cli.client import segment
from cli.errors import CliError, UsageError, validate
from cli.session import connect


def submit(args: argparse.Namespace) -> None:
    """`float submit -i IMAGE -j SCRIPT ...`: POST /v1/jobs with the script's content.

    cpu, mem, policies and volumes travel as the MMCloud strings typed; the API parses them."""
    body: dict[str, object] = {"image": args.image, "jobScript": _read_script(args.job)}
    given = {"cpu": args.cpu, "mem": args.mem, "instType": args.instType, "name": args.name,
             "vmPolicy": args.vmPolicy, "migratePolicy": args.migratePolicy}
    body.update({key: value for key, value in given.items() if value is not None})
    if args.env:
        body["env"] = _pairs(args.env, "=", "-e", "K=V")
    if args.customTag:
        body["customTags"] = _pairs(args.customTag, ":", "--customTag", "key:value")
    if args.dataVolume:
        body["dataVolumes"] = args.dataVolume
    validate(SubmitRequest, body)
    job = connect(args).call("POST", "/v1/jobs", JobView, body=body)
    output.emit(args.format, job, job_table)


def list_jobs(args: argparse.Namespace) -> None:
    """`float list [-f FILTER]...`: every matching job, newest first, across all pages."""
    query = filters.to_query(args.filter or [])
    jobs = connect(args).pages("/v1/jobs", JobView, query)
    output.emit(args.format, jobs, jobs_table)


def show(args: argparse.Namespace) -> None:
    """`float show -j ID`."""
    job = connect(args).call("GET", f"/v1/jobs/{segment(args.job)}", JobView)
    output.emit(args.format, job, job_table)


def log(args: argparse.Namespace) -> None:
    """`float log -j ID cat stdout|stderr|stdout.autosave` (raw text) or `float log -j ID ls`."""
    if args.action == "cat" and not args.name:
        raise UsageError("say which log: float log -j ID cat stdout (or stderr)")
    if args.action == "ls" and args.name:
        raise UsageError(f"float log ls takes no log name, got {args.name!r}")
    client = connect(args)
    path = f"/v1/jobs/{segment(args.job)}/logs"
    if args.action == "cat":
        output.raw(client.read(f"{path}/{segment(args.name)}"))
        return
    logs = client.call("GET", path, list[LogInfo])
    output.emit(args.format, logs, lambda items: output.table(
        ("NAME", "SIZE", "UPDATE TIME"), ((i.name, i.size, i.updateTime) for i in items)))


def cancel(args: argparse.Namespace) -> None:
    """`float cancel -j ID [-f]`: asks first on a terminal unless -f."""
    body = {"reason": args.reason} if args.reason else {}
    validate(CancelRequest, body)
    client = connect(args)
    if not args.force and prompt.interactive() and not prompt.confirm(
        f"Cancel job {args.job}? [y/N] "
    ):
        raise CliError(f"job {args.job} was not cancelled")
    job = client.call("POST", f"/v1/jobs/{segment(args.job)}/cancel", JobView, body=body)
    output.emit(args.format, job, job_table)


def jobs_table(jobs: list[JobView]) -> str:
    return output.table(
        ("ID", "NAME", "USER", "STATUS", "SUBMIT TIME", "CPU", "MEM"),
        ((j.id, j.name, j.user, j.status, j.submitTime, j.cpu, f"{j.mem} GB") for j in jobs),
    )


def job_table(job: JobView) -> str:
    """The key fields, then the history: when, from → to, why, on which instance."""
    details = [
        ("ID", job.id), ("NAME", job.name), ("USER", job.user), ("STATUS", job.status),
        ("RC", job.rc), ("IMAGE", f"{job.image} ({job.imageUri})"), ("CPU", job.cpu),
        ("MEM", f"{job.mem} GB"), ("INSTANCE TYPE", job.instType), ("INSTANCE", job.instanceId),
        ("VM POLICY", _vm_policy(job.vmPolicy)), ("SUBMIT TIME", job.submitTime),
        ("UPDATE TIME", job.updateTime),
    ]
    if job.customTags:
        details.append(("CUSTOM TAGS", ", ".join(f"{k}:{v}" for k, v in job.customTags.items())))
    if job.portMappings:
        details.append(("PORTS", ", ".join(job.portMappings)))
    details += [("DATA VOLUME", str(volume)) for volume in job.dataVolumes]
    history = output.table(
        ("TIME", "CHANGE", "REASON", "INSTANCE"),
        ((h.time, f"{h.from_ or '-'} → {h.to}", h.reason, h.instance) for h in job.history),
    )
    return f"{output.fields(details)}\n\nHISTORY\n{history}"


def _vm_policy(policy: VmPolicy) -> str:
    if policy.spotFirst:
        return f"spotFirst (retryLimit {policy.retryLimit}, retryInterval {policy.retryInterval}s)"
    return "spotOnly" if policy.spotOnly else "onDemand"


def _read_script(path: str) -> str:
    """The job script's content; the API takes the script itself, not a path."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_JOB_SCRIPT_BYTES:
                raise CliError(f"the job script {path} is {size} bytes; the limit is "
                               f"{MAX_JOB_SCRIPT_BYTES}")
            content = file.read()
    except OSError as error:
        raise CliError(f"cannot read the job script {path}: {error.strerror or error}") from None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"the job script {path} is not UTF-8 text") from None


def _pairs(items: list[str], separator: str, flag: str, shape: str) -> dict[str, str]:
    """`-e K=V` or `--customTag k:v` flags as a dict; a key given twice is an error."""
    pairs: dict[str, str] = {}
    for item in items:
        key, found, value = item.partition(separator)
        if not found:
            raise UsageError(f"{flag} {item!r}: expected {shape}")
        if not key:
            raise UsageError(f"{flag}: expected {shape}, got an empty key")
        if key in pairs:
            raise UsageError(f"{flag} gives {key} twice")
        pairs[key] = value
    return pairs
