"""`POST /v1/jobs/{id}/migrate|suspend|resume` end to end through the real routes and the real
workflows, and the token a job gets to call them on itself."""

from __future__ import annotations

import time

import pytest
from chalice.test import Client

from app import app
from chalicelib import events, executions, workflows
from chalicelib.auth import issue_job_token
from chalicelib.users import ensure_admin
from chalicelib.wire.status import JobStatus
from tests.conftest import ADMIN, ADMIN_PASSWORD, Caller, log_in
from tests.functional.jobs_helpers import entry, seed_job
from tests.functional.workflow_helpers import manifest, restored, seed_running, simulated_agent


@pytest.fixture
def alice(flows):
    with Client(app) as client:
        ensure_admin(flows.runtime, flows.store, ADMIN, ADMIN_PASSWORD)
        admin = log_in(client, ADMIN, ADMIN_PASSWORD)
        for name in ("alice", "bob"):
            response = admin.post("/v1/users", {"username": name, "password": f"{name}-password-1"})
            assert response.status_code == 201, response.body
        yield log_in(client, "alice", "alice-password-1")


def _wait_for(flows, job_id, status, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = flows.store.get_job(job_id)
        if job.status == status:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is {job.status.value}, never {status.value}")


def _agent_on_next_queue(flows, job_id, answer, seen, known):
    """An agent for the next instance launched for the job (a queue not in `known`)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queue = flows.store.get_job(job_id).commandsQueueUrl
        if queue and queue not in known:
            return simulated_agent(flows, queue, answer, seen)
        time.sleep(0.05)
    raise AssertionError("no instance was launched")


def test_float_migrate_moves_an_executing_job_to_the_requested_type(flows, alice):
    old, queue = seed_running(flows, "grow")
    simulated_agent(flows, queue, manifest("grow", 1), [])
    response = alice.post("/v1/jobs/grow/migrate", {"instType": "c5.2xlarge", "reason": "more"})
    assert response.status_code == 202, response.body
    assert response.json_body["status"] == "Capturing"
    assert response.json_body["history"][-1]["reason"] == "migrated by alice: more"
    _agent_on_next_queue(flows, "grow", restored("grow", 1), [], {queue})
    job = _wait_for(flows, "grow", JobStatus.EXECUTING)
    shown = alice.get("/v1/jobs/grow").json_body
    assert shown["instanceId"] == job.instanceId != old
    assert shown["instType"] == "c5.2xlarge"
    [move] = shown["migrations"]
    assert (move["fromInstance"], move["toInstance"], move["instanceType"]) == (
        old, job.instanceId, "c5.2xlarge")
    assert (move["imageBytes"], move["freezeSeconds"], move["rerun"]) == (64 * 2**20, 0.25, False)


def test_suspend_then_resume_brings_the_job_back_on_a_new_instance(flows, alice):
    old, queue = seed_running(flows, "pause")
    simulated_agent(flows, queue, manifest("pause", 2), [])
    response = alice.post("/v1/jobs/pause/suspend", {})
    assert (response.status_code, response.json_body["status"]) == (202, "Suspending")
    suspended = _wait_for(flows, "pause", JobStatus.SUSPENDED)
    assert suspended.instanceId is None and flows.state(old) == "terminated"

    seen: list = []
    response = alice.post("/v1/jobs/pause/resume", {"reason": "data is ready"})
    assert (response.status_code, response.json_body["status"]) == (202, "Resuming")
    _agent_on_next_queue(flows, "pause", restored("pause", 2), seen, {queue})
    job = _wait_for(flows, "pause", JobStatus.EXECUTING)
    assert [c.kind for c in seen] == ["restore"] and flows.state(job.instanceId) == "running"
    assert [h.to for h in job.history] == [
        JobStatus.EXECUTING, JobStatus.SUSPENDING, JobStatus.SUSPENDED, JobStatus.RESUMING,
        JobStatus.RESUMING, JobStatus.EXECUTING]
    assert job.history[3].reason == "resumed by alice: data is ready"
    assert job.history[4].reason == f"restoring on {job.instanceId}"


@pytest.mark.parametrize("path, status", [
    ("migrate", JobStatus.SUSPENDED), ("suspend", JobStatus.SUSPENDED),
    ("resume", JobStatus.EXECUTING), ("migrate", JobStatus.COMPLETED)])
def test_a_move_from_the_wrong_status_is_refused_and_changes_nothing(flows, alice, path, status):
    seed_job(flows.runtime, flows.store, "still", status)
    response = alice.post(f"/v1/jobs/still/{path}", {})
    assert response.status_code == 409
    assert response.json_body["message"].startswith(f"job still is {status.value}; only a job")
    assert flows.store.get_job("still").version == 1


def test_migrating_to_the_type_it_runs_on_needs_force(flows, alice):
    seed_running(flows, "same")
    response = alice.post("/v1/jobs/same/migrate", {"instType": "c5.large"})
    assert response.status_code == 409
    assert "already runs on c5.large" in response.json_body["message"]
    assert flows.store.get_job("same").status == JobStatus.EXECUTING


@pytest.mark.parametrize("body, field", [
    ({"instType": "huge"}, "instType"),
    ({"instType": "c5.large", "cpu": "2:4"}, "instType or cpu/mem"),
    ({"cpu": "8:2"}, "cpu"),
    ({"vmPolicy": "[spotOnly=maybe]"}, "vmPolicy"),
    ({"speed": "fast"}, "speed"),
])
def test_a_bad_migrate_body_is_refused_naming_the_problem(flows, alice, body, field):
    seed_running(flows, "picky")
    response = alice.post("/v1/jobs/picky/migrate", body)
    assert response.status_code == 400
    assert field in response.json_body["message"]
    assert flows.store.get_job("picky").status == JobStatus.EXECUTING


def test_another_users_job_cannot_be_moved(flows, alice):
    seed_running(flows, "bobs")
    job = flows.store.get_job("bobs")
    flows.runtime.dynamodb.update_item(
        TableName=flows.runtime.config.jobs_table, Key={"id": {"S": job.id}},
        UpdateExpression="SET #o = :o", ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": {"S": "bob"}})
    for path in ("migrate", "suspend", "resume"):
        assert alice.post(f"/v1/jobs/bobs/{path}", {}).status_code == 404
    assert flows.store.get_job("bobs").status == JobStatus.EXECUTING


def test_a_jobs_own_token_may_show_and_migrate_that_job_only(flows, alice):
    old, queue = seed_running(flows, "self")
    seed_running(flows, "other")
    secret = issue_job_token(flows.runtime, "self", "alice")
    token = flows.runtime.secrets.get_secret_value(SecretId=secret)["SecretString"]
    job = Caller(alice.client, token)

    assert job.get("/v1/jobs/self").json_body["id"] == "self"
    assert job.get("/v1/jobs/other").status_code == 404
    for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs/self/suspend"),
                         ("GET", "/v1/images"), ("GET", "/v1/jobs/self/logs")):
        refused = job.request(method, path, body={} if method == "POST" else None)
        assert refused.status_code == 403, (path, refused.body)
        assert "may only show or migrate that job" in refused.json_body["message"]

    simulated_agent(flows, queue, manifest("self", 1), [])
    moved = job.post("/v1/jobs/self/migrate", {"force": True})
    assert moved.status_code == 202, moved.body
    assert moved.json_body["history"][-1]["reason"] == "migrated by job self itself"
    _agent_on_next_queue(flows, "self", restored("self", 1), [], {queue})
    _wait_for(flows, "self", JobStatus.EXECUTING)

    ended = flows.store.get_job("self")
    flows.store.transition_job(ended, JobStatus.COMPLETED,
                               entry(flows.runtime, ended.status, JobStatus.COMPLETED, "done"))
    refused = job.get("/v1/jobs/self")
    assert refused.status_code == 401 and "has ended" in refused.json_body["message"]


def test_a_request_and_a_reclaim_of_the_same_instance_make_one_execution(flows, alice):
    old, queue = seed_running(flows, "race")
    executing = flows.store.get_job("race")
    assert alice.post("/v1/jobs/race/migrate", {"force": True}).status_code == 202
    # The warning was read while the job was still Executing: it asks for the same execution.
    warning = events.Ec2Event.model_validate({
        "version": "0", "id": "evt-1", "detail-type": events.SPOT_WARNING, "source": "aws.ec2",
        "account": "123456789012", "time": "2026-11-25T10:00:00Z", "region": "us-east-1",
        "resources": [f"arn:aws:ec2:us-east-1a:instance/{old}"],
        "detail": {"instance-id": old, "instance-action": "terminate"}})
    action = events.decide_ec2(warning, executing, executions.timeouts(flows.runtime.config))
    assert not executions.start(flows.runtime, action.workflow, action.name, action.input)
    found = flows.sfn.list_executions(stateMachineArn=flows.arns[workflows.SETTLE])["executions"]
    assert [e["name"] for e in found] == [action.name] == [f"race-migrate-{old}-1"]
    # Nobody answers: let the workflow run out its (short) timeouts before moto goes away.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and flows.sfn.describe_execution(
            executionArn=found[0]["executionArn"])["status"] == "RUNNING":
        time.sleep(0.2)


def test_reclaim_drills_are_for_admins_of_a_local_opcenter_only(flows, alice):
    seed_running(flows, "drill")
    refused = alice.post("/v1/jobs/drill/reclaim", {"notice": 30})
    assert refused.status_code == 403 and "only an admin" in refused.json_body["message"]
    admin = log_in(alice.client, ADMIN, ADMIN_PASSWORD)
    elsewhere = admin.post("/v1/jobs/drill/reclaim", {"notice": 30})
    assert elsewhere.status_code == 400
    assert "aws:ec2:send-spot-instance-interruptions" in elsewhere.json_body["message"]
    assert admin.post("/v1/jobs/drill/reclaim", {"notice": 0}).status_code == 400
    assert flows.store.get_job("drill").status == JobStatus.EXECUTING


class _Drills:
    """The local OpCenter's part in a drill, as far as the API can tell: what it was asked."""

    def __init__(self):
        self.asked: list[tuple] = []

    def reclaim(self, instance_id, notice_seconds):
        self.asked.append(("spot", instance_id, notice_seconds))
        return "2026-12-02T10:00:30Z"

    def vanish(self, instance_id):
        self.asked.append(("vanish", instance_id))
        return "2026-12-02T10:00:00Z"

    def kill_agent(self, instance_id):
        self.asked.append(("agent", instance_id))


def test_each_kind_of_drill_reaches_the_local_opcenter_and_a_notice_needs_a_warning(flows, alice):
    instance, _ = seed_running(flows, "drilled")
    drills = flows.runtime.reclaimer = _Drills()
    admin = log_in(alice.client, ADMIN, ADMIN_PASSWORD)
    vanished = admin.post("/v1/jobs/drilled/reclaim", {"kind": "vanish"})
    assert vanished.status_code == 202, vanished.json_body
    assert (vanished.json_body["kind"], vanished.json_body["noticeSeconds"]) == ("vanish", None)
    killed = admin.post("/v1/jobs/drilled/reclaim", {"kind": "agent"})
    assert killed.json_body["terminateTime"] is None
    admin.post("/v1/jobs/drilled/reclaim", {"notice": 30})
    refused = admin.post("/v1/jobs/drilled/reclaim", {"kind": "agent", "notice": 30})
    assert refused.status_code == 400 and "notice is for kind spot" in refused.json_body["message"]
    assert admin.post("/v1/jobs/drilled/reclaim", {"kind": "meteor"}).status_code == 400
    assert drills.asked == [("vanish", instance), ("agent", instance), ("spot", instance, 30)]
