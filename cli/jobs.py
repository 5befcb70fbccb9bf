"""Job commands: submit, list, show, log, cancel, migrate, suspend and resume, and how a job
looks as a table. Inside a job, show and migrate default -j to the job itself (FLOAT_JOB_ID)."""

from __future__ import annotations

import argparse
import os

from pydantic import BaseModel

from chalicelib.wire.api import (
    MAX_JOB_SCRIPT_BYTES,
    CancelRequest,
    JobView,
    LogInfo,
    MigrateRequest,
    MigrationView,
    ReclaimRequest,
    ReclaimView,
    ResumeRequest,
    SubmitRequest,
    SuspendRequest,
)
from chalicelib.wire.hostscripts import MAX_HOST_SCRIPT_BYTES
from chalicelib.wire.specs import VmPolicy
from chalicelib.wire.status import TERMINAL_STATUSES
from cli import filters, follow, output, prompt, usage
from cli.client import segment
from cli.errors import CliError, RefusedError, UsageError, validate
from cli.session import JOB_ID, connect

MIB = 1024 * 1024


def submit(args: argparse.Namespace) -> None:
    """`float submit -i IMAGE -j SCRIPT ...`: POST /v1/jobs with the script's content.

    cpu, mem, policies and volumes travel as the MMCloud strings typed; the API parses them."""
    body: dict[str, object] = {"image": args.image, "jobScript": _read_script(args.job)}
    given = {"cpu": args.cpu, "mem": args.mem, "instType": args.instType, "name": args.name,
             "vmPolicy": args.vmPolicy, "migratePolicy": args.migratePolicy}
    body.update({key: value for key, value in given.items() if value is not None})
    if args.env:
        body["env"] = pairs(args.env, "=", "-e", "K=V")
    if args.customTag:
        body["customTags"] = pairs(args.customTag, ":", "--customTag", "key:value")
    if args.dataVolume:
        body["dataVolumes"] = args.dataVolume
    if args.storage:
        body["storage"] = args.storage
    if args.disableRerun:
        body["disableRerun"] = True
    if args.timeLimit is not None:
        body["timeLimit"] = args.timeLimit
    if args.checkpointInterval is not None:
        body["checkpointInterval"] = args.checkpointInterval
    instance = {"gpu": args.gpu, "zone": args.zone, "securityGroups": args.securityGroup,
                "rootVolSize": args.rootVolSize, "imageVolSize": args.imageVolSize,
                "containerOpts": args.extraContainerOpts, "dirMaps": args.dirMap,
                "publish": args.publish}
    body.update({key: value for key, value in instance.items() if value is not None})
    for flag in ("disableMigrate", "privileged", "withRoot"):
        if getattr(args, flag):
            body[flag] = True
    for flag in ("hostInit", "hostTerminate"):
        if getattr(args, flag) is not None:
            body[flag] = _read_script(getattr(args, flag), f"the {flag} script",
                                      MAX_HOST_SCRIPT_BYTES)
    validate(SubmitRequest, body)
    job = connect(args).call("POST", "/v1/jobs", JobView, body=body)
    output.emit(args.format, job, job_table)


def list_jobs(args: argparse.Namespace) -> None:
    """`float list [-f FILTER]...`: every matching job, newest first, across all pages."""
    query = filters.to_query(args.filter or [])
    jobs = connect(args).pages("/v1/jobs", JobView, query)
    output.emit(args.format, jobs, jobs_table)


def show(args: argparse.Namespace) -> None:
    """`float show -j ID` (inside a job, -j defaults to the job itself)."""
    job_id = _this_job(args)
    job = connect(args).call("GET", f"/v1/jobs/{segment(job_id)}", JobView)
    output.emit(args.format, job, job_table)


def log(args: argparse.Namespace) -> None:
    """`float log -j ID cat stdout|stderr|stdout.autosave|output` (raw text), `float log -j ID
    ls`, or `float log tail [--follow] [-n N] NAME -j ID` (cli.follow)."""
    if args.action != "tail" and (args.follow or args.lines is not None):
        raise UsageError(f"--follow and -n go with float log tail, not {args.action}")
    if args.action == "tail":
        follow.tail(args)
        return
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
    try:
        job = client.call("POST", f"/v1/jobs/{segment(args.job)}/cancel", JobView, body=body)
    except RefusedError as error:
        # As MMCloud does, a job that has already ended is not an error to cancel: it is
        # where the caller wanted it. Any other conflict still fails.
        if error.status != 409:
            raise
        try:
            now = client.call("GET", f"/v1/jobs/{segment(args.job)}", JobView)
        except CliError:
            raise error from None
        if now.status not in TERMINAL_STATUSES:
            raise
        output.line(f"job {now.id} is already {now.status.value}; nothing to cancel")
        return
    output.emit(args.format, job, job_table)


def migrate(args: argparse.Namespace) -> None:
    """`float migrate -j ID [--instType T | -c MIN:MAX -m MIN:MAX] [--vmPolicy [...]] [-f]`:
    checkpoint the running job and restore it on a new instance. Inside a job, -j defaults to
    the job itself, so a job script can move itself (`float migrate -f --instType ...`)."""
    job_id = _this_job(args)
    given = {"instType": args.instType, "cpu": args.cpu, "mem": args.mem,
             "vmPolicy": args.vmPolicy, "reason": args.reason}
    body: dict[str, object] = {key: value for key, value in given.items() if value is not None}
    if args.force:
        body["force"] = True
    validate(MigrateRequest, body)
    job = connect(args).call("POST", f"/v1/jobs/{segment(job_id)}/migrate", JobView, body=body)
    output.emit(args.format, job, job_table)


def suspend(args: argparse.Namespace) -> None:
    """`float suspend -j ID`: checkpoint the job and release its instance until resumed."""
    _act(args, "suspend", SuspendRequest)


def resume(args: argparse.Namespace) -> None:
    """`float resume -j ID`: restore a suspended job on a new instance."""
    _act(args, "resume", ResumeRequest)


def reclaim(args: argparse.Namespace) -> None:
    """`float reclaim -j ID [--kind spot|vanish|agent] [--notice SECONDS]` (admins, local
    OpCenter): the job's instance lost, played for real. spot: EC2's warning, metadata notice,
    termination; vanish: terminated with no warning or event; agent: its agent killed."""
    body: dict[str, object] = {"notice": args.notice} if args.notice is not None else {}
    if args.kind is not None:
        body["kind"] = args.kind
    validate(ReclaimRequest, body)
    result = connect(args).call("POST", f"/v1/jobs/{segment(args.job)}/reclaim", ReclaimView,
                                body=body)
    output.emit(args.format, result, lambda r: output.fields([
        ("JOB", r.jobId), ("INSTANCE", r.instanceId), ("KIND", r.kind),
        ("NOTICE", f"{r.noticeSeconds} s" if r.noticeSeconds is not None else "none"),
        ("TERMINATED AT", r.terminateTime or "not terminated (the agent alone was killed)")]))


def _act(args: argparse.Namespace, action: str, model: type[BaseModel]) -> None:
    """POST /v1/jobs/ID/ACTION with the optional reason, then the job as it is now."""
    body = {"reason": args.reason} if args.reason else {}
    validate(model, body)
    job = connect(args).call("POST", f"/v1/jobs/{segment(args.job)}/{action}", JobView,
                             body=body)
    output.emit(args.format, job, job_table)


def _this_job(args: argparse.Namespace) -> str:
    """-j, or inside a job the job itself (FLOAT_JOB_ID)."""
    job_id: str = args.job or os.environ.get(JOB_ID, "").strip()
    if not job_id:
        raise UsageError(f"give the job with -j ID (or run it inside a job, where {JOB_ID} is set)")
    return job_id


def jobs_table(jobs: list[JobView]) -> str:
    return output.table(
        ("ID", "NAME", "USER", "STATUS", "SUBMIT TIME", "CPU", "MEM"),
        ((j.id, j.name, j.user, j.status, j.submitTime, j.cpu, _memory(j)) for j in jobs),
    )


def job_table(job: JobView) -> str:
    """The key fields, then the history: when, from → to, why, on which instance."""
    details = [
        ("ID", job.id), ("NAME", job.name), ("USER", job.user), ("STATUS", job.status),
        ("RC", job.rc), ("IMAGE", f"{job.image} ({job.imageUri})"), ("CPU", job.cpu),
        ("MEM", _memory(job)), ("INSTANCE TYPE", job.instType), ("INSTANCE", _instance(job)),
        ("VM POLICY", _vm_policy(job.vmPolicy)), ("SUBMIT TIME", job.submitTime),
        ("UPDATE TIME", job.updateTime),
    ]
    if job.unreadable:
        details.append(("UNREADABLE", ", ".join(job.unreadable)))
    if job.migratePolicy is not None:
        details.append(("MIGRATE POLICY", str(job.migratePolicy)))
    if job.utilization is not None:
        details.append(("UTILIZATION", usage.summary(job.utilization, job.id)))
    if job.cost is not None:
        details.append(("COST", _cost(job)))
    if job.customTags:
        details.append(("CUSTOM TAGS", ", ".join(f"{k}:{v}" for k, v in job.customTags.items())))
    if job.portMappings:
        details.append(("PORTS", ", ".join(job.portMappings)))
    details += [("DATA VOLUME", str(volume)) for volume in job.dataVolumes]
    if job.timeLimit is not None:
        details.append(("TIME LIMIT", f"{job.timeLimit} s of running (moves and suspensions "
                                      "not counted)"))
    if job.checkpointInterval is not None:
        details.append(("CHECKPOINT INTERVAL", f"{job.checkpointInterval} s (taken with the job "
                                               "running)"))
    if job.lastCheckpoint is not None:
        last = job.lastCheckpoint
        details.append(("LAST CHECKPOINT", f"{last.seq} at {last.time} on {last.instanceId} "
                                           f"({last.reason}): {last.imageBytes / MIB:.1f} MiB, "
                                           f"{last.storedBytes / MIB:.1f} MiB stored"
                                           + (f", on pre-dump {last.previousSeq}"
                                              if last.previousSeq is not None else "")))
    for label, size in (("HOST INIT", job.hostInitSize), ("HOST TERMINATE", job.hostTerminateSize)):
        if size is not None:
            details.append((label, f"{size} bytes (float log cat {label.lower().replace(' ', '')}"
                                   ".log shows what it printed)"))
    if job.disableRerun:
        details.append(("RERUN", "disabled (a failed restore ends the job CheckpointFailed)"))
    history = output.table(
        ("TIME", "CHANGE", "REASON", "INSTANCE"),
        ((h.time, f"{h.from_ or '-'} → {h.to}", h.reason, h.instance) for h in job.history),
    )
    text = f"{output.fields(details)}\n\nHISTORY\n{history}"
    if job.migrations:
        text += f"\n\nMIGRATIONS\n{migrations_table(job.migrations)}"
    return text


def _cost(job: JobView) -> str:
    """`0.0017 USD (On-demand 0.0140 USD: saved 0.0123 USD, 87.9%)`."""
    text = str(job.cost)
    if job.savings is not None:
        saved = job.savings
        percent = f", {saved.savingsPercent:g}%" if saved.savingsPercent is not None else ""
        text += f" (On-demand {saved.onDemandCost}: saved {saved.savings}{percent})"
        if saved.unpricedSeconds:
            text += f"; {saved.unpricedSeconds} instance-seconds had no price"
    return text


def _instance(job: JobView) -> str | None:
    """The instance with the type and zone EC2 chose for it: `i-0abc (c5.large, us-east-1b)`."""
    chosen = ", ".join(part for part in (job.instanceType, job.instanceZone) if part)
    return f"{job.instanceId} ({chosen})" if job.instanceId and chosen else job.instanceId


def migrations_table(migrations: list[MigrationView]) -> str:
    """Each move: when, from which instance to which, its type and zone, the checkpoint image's
    size, how long the job was frozen, how long until it was Executing again, whether it was
    rerun from the start instead of restored, and why it moved."""
    return output.table(
        ("TIME", "MOVE", "INSTANCE TYPE", "ZONE", "IMAGE MiB", "FREEZE s", "TO EXECUTING s",
         "RERUN", "REASON"),
        ((m.time, f"{m.fromInstance or '-'} → {m.toInstance}", m.instanceType, m.zone,
          _number(m.imageBytes / MIB if m.imageBytes is not None else None),
          _number(m.freezeSeconds), _number(m.secondsToExecuting), "yes" if m.rerun else "no",
          m.cause or m.reason) for m in migrations),
    )


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"


def _memory(job: JobView) -> str | None:
    return None if job.mem is None else f"{job.mem} GB"


def _vm_policy(policy: VmPolicy | None) -> str | None:
    if policy is None:
        return None
    if policy.spotFirst:
        return f"spotFirst (retryLimit {policy.retryLimit}, retryInterval {policy.retryInterval}s)"
    return "spotOnly" if policy.spotOnly else "onDemand"


def _read_script(path: str, what: str = "the job script", limit: int = MAX_JOB_SCRIPT_BYTES) -> str:
    """A script's content (`what` names it in errors); the API takes the script, not a path."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limit:
                raise CliError(f"{what} {path} is {size} bytes; the limit is {limit}")
            content = file.read()
    except OSError as error:
        raise CliError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{what} {path} is not UTF-8 text") from None


def pairs(items: list[str], separator: str, flag: str, shape: str) -> dict[str, str]:
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
