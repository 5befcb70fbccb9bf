"""The OpCenter's license: checking a signed document, applying and removing it, what it
allows now, and starting the jobs that waited for it.

A job submitted while no valid license is applied (none, expired, not yet valid, a Pro
month's core-hours used up) waits in WaitingForLicense; jobs already running always go on.
Waiting jobs start, oldest first, as soon as a license allows them: when one is applied, and
at each reconciler pass (a new month gives a Pro quota back).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from decimal import Decimal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from chalicelib import executions, metering, volumes
from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, IllegalTransition, StaleWrite, Unavailable
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, LicenseRecord, Store
from chalicelib.wire.api import HistoryEntry, first_problem
from chalicelib.wire.licenses import LicenseDocument, LicenseTerms, LicenseView, canonical
from chalicelib.wire.status import JobStatus

logger = Logger(service="openfloat-licensing")

# Waiting jobs started in one go, at most (the reconciler's next pass starts more).
_MAX_STARTS = 200


def issuer_key(runtime: Runtime) -> Ed25519PublicKey:
    text = runtime.config.license_issuer_key
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise Unavailable("this OpCenter's license issuer key (LICENSE_ISSUER_KEY) is not an "
                          "Ed25519 public key in base64; no license can be checked") from None


def verify(runtime: Runtime, document: LicenseDocument) -> LicenseTerms:
    """The document's terms, if its signature is the issuer's and it names this OpCenter."""
    try:
        terms = LicenseTerms.model_validate(document.license)
    except ValidationError as error:
        where, why = first_problem(error)
        raise BadRequest(f"the license is malformed: {where + ' ' if where else ''}{why}",
                         field="license") from None
    try:
        signature = base64.b64decode(document.signature, validate=True)
    except binascii.Error:
        raise BadRequest("the license's signature is not base64", field="signature") from None
    try:
        issuer_key(runtime).verify(signature, canonical(document.license))
    except InvalidSignature:
        raise BadRequest(f"license {terms.id} does not carry a valid signature of this "
                         "OpCenter's license issuer: it was changed after it was issued, or "
                         "another issuer signed it", field="signature") from None
    if terms.opcenter != runtime.config.opcenter_id:
        raise BadRequest(f"license {terms.id} is for OpCenter {terms.opcenter}, not this one "
                         f"({runtime.config.opcenter_id})", field="license")
    return terms


def _timing(terms: LicenseTerms, now: datetime) -> str | None:
    """Why the license does not hold at `now`, if it does not."""
    moment = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if moment < terms.start:
        return f"license {terms.id} is not valid until {terms.start}"
    if moment >= terms.end:
        return f"license {terms.id} expired at {terms.end}"
    return None


def apply(runtime: Runtime, store: Store, principal: Principal,
          document: LicenseDocument) -> LicenseView:
    """Apply the license (replacing any other) and start the jobs that waited for one."""
    principal.require_admin("apply a license")
    terms = verify(runtime, document)
    why = _timing(terms, runtime.clock())
    if why is not None:
        raise BadRequest(f"{why}; it cannot be applied", field="license")
    store.put_license(LicenseRecord(document=document.model_dump_json(),
                                    appliedTime=runtime.now_iso(), appliedBy=principal.username))
    logger.info("license applied", extra={"license_id": terms.id, "plan": terms.plan})
    start_waiting(runtime, store)
    return view(runtime, store)


def remove(runtime: Runtime, store: Store, principal: Principal) -> LicenseView:
    """Remove the applied license: running jobs go on, new ones wait for another."""
    principal.require_admin("remove the license")
    store.remove_license()
    return view(runtime, store)


def info(runtime: Runtime, store: Store, principal: Principal) -> LicenseView:
    principal.require_admin("see the license")
    return view(runtime, store)


def _current(runtime: Runtime, store: Store) -> tuple[LicenseRecord, LicenseTerms] | None:
    record = store.current_license()
    if record is None:
        return None
    # Checked again on every read: a changed item or a new issuer key must not slip through.
    return record, verify(runtime, LicenseDocument.model_validate_json(record.document))


def view(runtime: Runtime, store: Store) -> LicenseView:
    now = runtime.clock()
    month = metering.month_of(now)
    used = metering.total(metering.month_use(runtime, store, month))
    base = LicenseView(opcenter=runtime.config.opcenter_id, month=month,
                       coreHoursUsed=str(used))
    try:
        current = _current(runtime, store)
    except BadRequest as error:
        return base.model_copy(update={"hold": f"the applied license is not valid: {error}"})
    if current is None:
        return base.model_copy(update={"hold": hold_reason(runtime, store, used)})
    record, terms = current
    left = None
    if terms.coreHourQuota is not None:
        left = str(max(Decimal(0), Decimal(terms.coreHourQuota) - used))
    timing = _timing(terms, now)
    status = ("expired" if timing and "expired" in timing else "not yet valid" if timing
              else "quota used up" if left is not None and Decimal(left) <= 0 else "valid")
    return base.model_copy(update={
        "id": terms.id, "customer": terms.customer, "plan": terms.plan,
        "contract": terms.contract, "start": terms.start, "end": terms.end,
        "appliedTime": record.appliedTime, "appliedBy": record.appliedBy, "status": status,
        "hold": hold_reason(runtime, store, used), "coreHourQuota": terms.coreHourQuota,
        "coreHoursLeft": left, "pricePerCoreHour": terms.pricePerCoreHour})


def hold_reason(runtime: Runtime, store: Store, used: Decimal | None = None) -> str | None:
    """Why a new job may not start now; None when the license allows it."""
    try:
        current = _current(runtime, store)
    except BadRequest as error:
        return f"the applied license is not valid: {error}"
    if current is None:
        return "no license is applied to this OpCenter (an admin applies one with float " \
               "license apply FILE)"
    _, terms = current
    now = runtime.clock()
    timing = _timing(terms, now)
    if timing is not None:
        return timing
    if terms.coreHourQuota is None:
        return None
    month = metering.month_of(now)
    if used is None:
        used = metering.total(metering.month_use(runtime, store, month))
    if used >= terms.coreHourQuota:
        return (f"license {terms.id}'s {terms.coreHourQuota} core-hours of {month} are used "
                f"up ({used} used); new jobs start next month or with another license")
    return None


def admit(runtime: Runtime, store: Store, job: JobRecord) -> JobRecord:
    """A job just Submitted: start its launch if the license allows it now, or leave it
    WaitingForLicense saying why."""
    why = hold_reason(runtime, store)
    if why is None:
        return start_launch(runtime, store, job)
    entry = HistoryEntry(time=runtime.now_iso(), from_=job.status,
                         to=JobStatus.WAITING_FOR_LICENSE, reason=f"waiting for a license: {why}")
    return store.transition_job(job, JobStatus.WAITING_FOR_LICENSE, entry)


def start_launch(runtime: Runtime, store: Store, job: JobRecord) -> JobRecord:
    """Start the Submitted job's launch workflow. If it cannot be started, nothing will ever
    launch the job: it ends FailToExecute saying so (Unavailable)."""
    try:
        executions.start(runtime, "launch", f"{job.id}-launch", {
            "jobId": job.id, "launchNumber": 1,
            "timeouts": executions.timeouts(runtime.config)})
    except (BotoCoreError, ClientError) as error:
        failed = HistoryEntry(time=runtime.now_iso(), from_=job.status,
                              to=JobStatus.FAIL_TO_EXECUTE,
                              reason=f"the launch workflow could not be started: {error}")
        store.transition_job(job, JobStatus.FAIL_TO_EXECUTE, failed)
        volumes.delete_keys(runtime, job.id)
        raise Unavailable(f"job {job.id} could not be launched: {error}") from error
    return job


def start_waiting(runtime: Runtime, store: Store) -> int:
    """Start the jobs waiting for a license, oldest first, if the license allows it now;
    how many were started."""
    if hold_reason(runtime, store) is not None:
        return 0
    waiting: list[JobRecord] = []
    token: str | None = None
    while len(waiting) < _MAX_STARTS:
        page, token = store.list_jobs(owner=None, statuses=frozenset({
            JobStatus.WAITING_FOR_LICENSE}), name=None, limit=100, token=token)
        waiting += page
        if token is None:
            break
    started = 0
    for job in sorted(waiting, key=lambda j: j.submitTime)[:_MAX_STARTS]:
        entry = HistoryEntry(time=runtime.now_iso(), from_=job.status, to=JobStatus.SUBMITTED,
                             reason="the OpCenter's license allows it to start")
        try:
            submitted = store.transition_job(job, JobStatus.SUBMITTED, entry)
        except (StaleWrite, IllegalTransition):
            continue  # cancelled meanwhile, or started by another pass
        try:
            start_launch(runtime, store, submitted)
        except Unavailable as error:
            logger.warning("a waiting job could not be launched",
                           extra={"job_id": job.id, "error": str(error)})
            continue
        started += 1
    return started
