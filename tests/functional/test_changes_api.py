"""`PATCH /v1/jobs/{id}` (float modify) and `POST /v1/jobs/{id}/rerun` (float rerun) through
the real routes, and what a later launch or move makes of a modified job."""

from __future__ import annotations

import pytest
from chalice.test import Client

from app import app
from chalicelib import launches
from chalicelib.users import ensure_admin
from chalicelib.wire.api import RELEASE
from chalicelib.wire.status import JobStatus
from chalicelib.wire.tasks import PlanRequest
from tests.conftest import ADMIN, ADMIN_PASSWORD, log_in
from tests.functional.jobs_helpers import seed_job
from tests.functional.workflow_helpers import seed_running

SUBMIT = {"image": "docker.io/library/busybox:latest", "jobScript": "#!/bin/sh\necho hi\n",
          "cpu": "2:4", "mem": "4", "name": "align", "env": {"REF": "hg38"},
          "customTags": {"team": "genomics"}, "vmPolicy": "[spotOnly=true]",
          "migratePolicy": "[cpu.upperBoundRatio=80]", "timeLimit": "2h"}


@pytest.fixture
def alice(flows):
    with Client(app) as client:
        ensure_admin(flows.runtime, flows.store, ADMIN, ADMIN_PASSWORD)
        admin = log_in(client, ADMIN, ADMIN_PASSWORD)
        for name in ("alice", "bob"):
            response = admin.post("/v1/users", {"username": name, "password": f"{name}-password-1"})
            assert response.status_code == 201, response.body
        yield log_in(client, "alice", "alice-password-1")


def _tags(flows, instance_id):
    [reservation] = flows.runtime.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return {tag["Key"]: tag["Value"] for tag in reservation["Instances"][0].get("Tags", [])}


def test_modify_changes_the_vm_policy_that_the_next_move_plans_with(flows, alice):
    seed_running(flows, "grow")

    response = alice.patch("/v1/jobs/grow", {"vmPolicy": "[onDemand=true]", "reason": "deadline"})

    assert response.status_code == 200, response.body
    job = response.json_body
    assert job["status"] == "Executing" and job["vmPolicy"]["onDemand"] is True
    last = job["history"][-1]
    assert (last["from"], last["to"]) == ("Executing", "Executing")
    assert last["reason"] == "modified by alice: vmPolicy [onDemand=true] (deadline)"
    plan = launches.plan_launch(flows.runtime, flows.store,
                                PlanRequest(jobId="grow", moving=True))
    assert plan.attempts and {a.market for a in plan.attempts} == {"on-demand"}


def test_modify_keeps_the_migrate_policy_and_shows_it(flows, alice):
    seed_running(flows, "grow")

    alice.patch("/v1/jobs/grow", {"migratePolicy": "[cpu.upperBoundRatio=70,evadeOOM=true]"})

    shown = alice.get("/v1/jobs/grow").json_body
    assert shown["migratePolicy"]["cpu"]["upperBoundRatio"] == 70
    assert shown["migratePolicy"]["evadeOOM"] is True
    assert shown["history"][-1]["reason"] == (
        "modified by alice: migratePolicy [cpu.upperBoundRatio=70,evadeOOM=true]")


def test_modify_adds_and_removes_custom_tags_on_the_job_and_its_instance(flows, alice):
    instance, _ = seed_running(flows, "grow")
    alice.patch("/v1/jobs/grow", {"addCustomTags": {"team": "genomics", "run": "r1"}})

    response = alice.patch("/v1/jobs/grow", {"addCustomTags": {"run": "r2"},
                                             "removeCustomTags": ["team"]})

    assert response.json_body["customTags"] == {"run": "r2"}
    tags = _tags(flows, instance)
    assert tags.get("run") == "r2" and "team" not in tags


def test_a_modify_that_changes_nothing_leaves_no_history(flows, alice):
    seed_running(flows, "grow")
    before = alice.get("/v1/jobs/grow").json_body

    response = alice.patch("/v1/jobs/grow", {"vmPolicy": "[spotFirst=true]"})

    assert response.status_code == 200
    assert response.json_body["history"] == before["history"]


@pytest.mark.parametrize("status", ["Completed", "Cancelled", "NoAvailableHost", "Cancelling"])
def test_a_finished_job_cannot_be_modified_and_the_answer_names_its_status(flows, alice, status):
    seed_job(flows.runtime, flows.store, "done", JobStatus(status))

    response = alice.patch("/v1/jobs/done", {"vmPolicy": "[onDemand=true]"})

    assert response.status_code == 409
    assert f"is {status}" in response.json_body["message"]
    assert flows.store.get_job("done").version == 1


@pytest.mark.parametrize("body, field, words", [
    ({}, None, "nothing to modify"),
    ({"vmPolicy": "[spotOnly=maybe]"}, "vmPolicy", "true or false"),
    ({"migratePolicy": "[cpu.upperBound=1]"}, "migratePolicy", "unknown migratePolicy key"),
    ({"addCustomTags": {"aws:x": "1"}}, "addCustomTags", "aws:"),
    ({"addCustomTags": {"a": "1"}, "removeCustomTags": ["a"]}, None, "both added and removed"),
    ({"status": "Completed"}, "status", "not a known field"),
])
def test_a_bad_modify_is_refused_naming_the_problem(flows, alice, body, field, words):
    seed_running(flows, "grow")

    response = alice.patch("/v1/jobs/grow", body)

    assert response.status_code == 400
    assert response.json_body.get("field") == field and words in response.json_body["message"]


def test_another_users_job_cannot_be_modified(flows, alice):
    seed_running(flows, "grow")
    bob = log_in(alice.client, "bob", "bob-password-1")

    assert bob.patch("/v1/jobs/grow", {"vmPolicy": "[onDemand=true]"}).status_code == 404


def test_rerun_submits_the_same_spec_as_a_new_job_naming_the_original(flows, alice):
    first = alice.post("/v1/jobs", SUBMIT)
    assert first.status_code == 201, first.body
    original = first.json_body
    alice.post(f"/v1/jobs/{original['id']}/cancel")

    response = alice.post(f"/v1/jobs/{original['id']}/rerun", {"reason": "new reference"})

    assert response.status_code == 201, response.body
    again = response.json_body
    assert again["id"] != original["id"] and again["status"] == "Submitted"
    same = ("name", "image", "imageUri", "cpu", "mem", "env", "customTags", "vmPolicy",
            "migratePolicy", "timeLimit", "dataVolumes", "disableRerun")
    assert {k: again[k] for k in same} == {k: original[k] for k in same}
    assert again["history"][0]["reason"] == (
        f"submitted by alice as a rerun of job {original['id']} (new reference)")
    script = flows.runtime.s3.get_object(Bucket=flows.runtime.config.data_bucket,
                                         Key=f"jobs/{again['id']}/script")["Body"].read()
    assert script == SUBMIT["jobScript"].encode()


def test_a_live_job_cannot_be_rerun(flows, alice):
    seed_running(flows, "grow")

    response = alice.post("/v1/jobs/grow/rerun")

    assert response.status_code == 409
    assert "is Executing; only a finished job can be rerun" in response.json_body["message"]


def test_health_names_the_release(flows, alice):
    body = alice.client.http.get("/v1/health").json_body

    assert body == {"status": "ok", "version": "v1", "release": RELEASE}


def test_cancelling_a_finished_job_says_it_is_already_in_that_status(flows, alice):
    seed_job(flows.runtime, flows.store, "done", JobStatus.COMPLETED)

    response = alice.post("/v1/jobs/done/cancel")

    assert response.status_code == 409
    assert response.json_body["message"].startswith("job done is already Completed")
