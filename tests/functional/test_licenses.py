"""The OpCenter's license through the real routes: only a license this OpCenter's issuer
signed for it, in force, is applied; without one (or with a Pro month used up) new jobs wait
WaitingForLicense and start once a license allows them, while running jobs go on."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chalicelib import licensing, workflows
from chalicelib.reconcile import reconcile
from chalicelib.store import UsageRecord
from chalicelib.wire.status import JobStatus
from infra.license import issue
from localmode import trial
from tests.functional.jobs_helpers import seed_job

JOB = {"image": "docker.io/library/busybox:latest", "jobScript": "#!/bin/sh\necho hi\n"}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _license(runtime, key=None, **changes) -> dict:
    now = runtime.clock()
    terms = {"id": "lic-test-1", "customer": "Genome Lab", "plan": "pro", "coreHourQuota": 500,
             "pricePerCoreHour": "0.012", "start": _stamp(now - timedelta(days=1)),
             "end": _stamp(now + timedelta(days=90)), "opcenter": runtime.config.opcenter_id,
             "issued": _stamp(now - timedelta(days=1))}
    terms.update(changes)
    return issue(key or trial.issuer(), **{k: v for k, v in terms.items() if v is not None})


@pytest.fixture
def unlicensed(store):
    store.remove_license()


def _launches(runtime, job_id: str) -> list[str]:
    """The job's workflows started (each runs inside the settle workflow)."""
    arn = runtime.config.workflow(workflows.SETTLE)
    names = [e["name"] for e in runtime.stepfunctions.list_executions(
        stateMachineArn=arn)["executions"]]
    return [n for n in names if n.startswith(job_id)]


def test_a_license_is_applied_and_shown_with_this_months_core_hours(admin, runtime):
    applied = admin.request("PUT", "/v1/license", body=_license(runtime))
    assert applied.status_code == 200, applied.body
    shown = admin.get("/v1/license").json_body
    assert (shown["id"], shown["plan"], shown["status"], shown["customer"]) == (
        "lic-test-1", "pro", "valid", "Genome Lab")
    assert shown["opcenter"] == runtime.config.opcenter_id and shown["hold"] is None
    assert shown["coreHourQuota"] == 500 and shown["coreHoursUsed"] == "0"
    assert shown["coreHoursLeft"] == "500" and shown["appliedBy"] == "admin"
    assert shown["month"] == runtime.clock().strftime("%Y-%m")


def _refused(admin, document, field, *words):
    response = admin.request("PUT", "/v1/license", body=document)
    assert response.status_code == 400, response.body
    assert response.json_body["field"] == field
    for word in words:
        assert word in response.json_body["message"], response.json_body["message"]
    return response


def test_a_tampered_license_is_refused_and_the_one_applied_stays(admin, runtime):
    before = admin.get("/v1/license").json_body["id"]
    document = _license(runtime)
    tampered = copy.deepcopy(document)
    tampered["license"]["coreHourQuota"] = 500000
    _refused(admin, tampered, "signature", "lic-test-1", "changed after it was issued")
    assert admin.get("/v1/license").json_body["id"] == before


def test_a_license_of_another_issuer_is_refused(admin, runtime):
    _refused(admin, _license(runtime, key=Ed25519PrivateKey.generate()), "signature",
             "valid signature of this OpCenter's license issuer")


def test_expired_not_yet_valid_and_other_opcenter_licenses_are_refused(admin, runtime):
    now = runtime.clock()
    _refused(admin, _license(runtime, start=_stamp(now - timedelta(days=60)),
                             end=_stamp(now - timedelta(days=1))), "license", "expired at")
    _refused(admin, _license(runtime, start=_stamp(now + timedelta(days=2)),
                             end=_stamp(now + timedelta(days=60))), "license",
             "is not valid until")
    _refused(admin, _license(runtime, opcenter="123456789012:eu-west-1:other"), "license",
             "is for OpCenter 123456789012:eu-west-1:other, not this one")


def test_a_malformed_license_names_what_is_wrong(admin, runtime):
    document = _license(runtime)
    document["license"].pop("coreHourQuota")
    _refused(admin, document, "license", "coreHourQuota")
    response = admin.request("PUT", "/v1/license", body={"license": {}, "signature": "***"})
    assert response.status_code == 400
    garbled = _license(runtime)
    garbled["signature"] = "not base64!"
    _refused(admin, garbled, "signature", "not base64")


def test_only_admins_touch_the_license(alice, runtime):
    for method, body in (("GET", None), ("PUT", _license(runtime)), ("DELETE", None)):
        response = alice.request(method, "/v1/license", body=body)
        assert response.status_code == 403, (method, response.body)


def test_a_job_submitted_without_a_license_waits_and_starts_once_one_is_applied(
        admin, alice, runtime, store, unlicensed):
    assert admin.get("/v1/license").json_body["status"] == "none"
    submitted = alice.post("/v1/jobs", JOB)
    assert submitted.status_code == 201, submitted.body
    job = alice.get(f"/v1/jobs/{submitted.json_body['id']}").json_body
    assert job["status"] == "WaitingForLicense"
    assert job["history"][-1]["reason"].startswith(
        "waiting for a license: no license is applied to this OpCenter")
    assert _launches(runtime, job["id"]) == []
    # A reconciler pass with still no license leaves it waiting.
    assert reconcile(runtime, store).licensed == 0

    assert admin.request("PUT", "/v1/license", body=_license(runtime)).status_code == 200
    job = alice.get(f"/v1/jobs/{job['id']}").json_body
    assert [h["to"] for h in job["history"]] == ["Submitted", "WaitingForLicense", "Submitted"]
    assert job["history"][-1]["reason"] == "the OpCenter's license allows it to start"
    assert _launches(runtime, job["id"]) == [f"{job['id']}-launch"]


def test_a_waiting_job_may_be_cancelled_at_once(admin, alice, unlicensed):
    job_id = alice.post("/v1/jobs", JOB).json_body["id"]
    cancelled = alice.post(f"/v1/jobs/{job_id}/cancel", {})
    assert cancelled.status_code in (200, 202), cancelled.body
    assert alice.get(f"/v1/jobs/{job_id}").json_body["status"] == "Cancelled"


def _used(store, owner: str, month: str, core_hours: str, instance: str = "i-0used") -> None:
    store.record_usage(UsageRecord(
        jobId="old-job", recordTime=f"{month}-01T00:00:00+00:00#{instance}#{month}",
        month=month, start=f"{month}-01T00:00:00Z", end=f"{month}-01T10:00:00Z", owner=owner,
        instanceId=instance, instanceType="c5.large", market="spot", vcpus=2, seconds=36000,
        coreHours=core_hours))


def test_a_used_up_pro_quota_holds_new_jobs_not_running_ones_until_the_month_turns(
        admin, alice, runtime, store):
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    runtime.clock = lambda: now
    admin.request("PUT", "/v1/license", body=_license(runtime, coreHourQuota=20))
    running = seed_job(runtime, store, "running", JobStatus.EXECUTING, instance="i-0run")
    _used(store, "bob", "2026-11", "20.0000")

    shown = admin.get("/v1/license").json_body
    assert (shown["status"], shown["coreHoursUsed"], shown["coreHoursLeft"]) == (
        "quota used up", "20.0000", "0")
    job_id = alice.post("/v1/jobs", JOB).json_body["id"]
    job = store.get_job(job_id)
    assert job.status == JobStatus.WAITING_FOR_LICENSE
    assert "20 core-hours of 2026-11 are used up (20.0000 used)" in job.history[-1].reason
    assert licensing.start_waiting(runtime, store) == 0
    assert store.get_job(job_id).status == JobStatus.WAITING_FOR_LICENSE
    # The job already running is left alone: the quota only holds back new ones.
    assert store.get_job(running.id).history == running.history

    later = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    runtime.clock = lambda: later
    assert reconcile(runtime, store).licensed == 1
    assert store.get_job(job_id).status == JobStatus.SUBMITTED
    assert _launches(runtime, job_id) == [f"{job_id}-launch"]


def test_an_applied_license_that_expires_holds_new_jobs(admin, alice, runtime, store):
    admin.request("PUT", "/v1/license", body=_license(runtime))
    end = runtime.clock() + timedelta(days=91)
    runtime.clock = lambda: end
    assert admin.get("/v1/license").json_body["status"] == "expired"
    job_id = alice.post("/v1/jobs", JOB).json_body["id"]
    job = store.get_job(job_id)
    assert job.status == JobStatus.WAITING_FOR_LICENSE
    assert "license lic-test-1 expired at" in job.history[-1].reason


def test_removing_the_license_holds_new_jobs(admin, alice, store):
    removed = admin.delete("/v1/license")
    assert removed.status_code == 200 and removed.json_body["status"] == "none"
    assert admin.delete("/v1/license").status_code == 404
    job_id = alice.post("/v1/jobs", JOB).json_body["id"]
    assert store.get_job(job_id).status == JobStatus.WAITING_FOR_LICENSE


def test_an_item_changed_in_the_table_is_not_taken_for_a_license(admin, runtime, store):
    admin.request("PUT", "/v1/license", body=_license(runtime, coreHourQuota=1))
    record = store.current_license()
    forged = record.model_copy(update={"document": record.document.replace(
        '"coreHourQuota":1', '"coreHourQuota":999999').replace(
        '"coreHourQuota": 1', '"coreHourQuota": 999999')})
    assert forged.document != record.document
    store.put_license(forged)
    assert "the applied license is not valid" in licensing.hold_reason(runtime, store)
    assert "not valid" in admin.get("/v1/license").json_body["hold"]
