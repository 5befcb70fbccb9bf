"""Bursts: a Spot capacity event reclaims a thousand instances at once and EventBridge delivers
each warning more than once, in any order, to handlers running side by side. Each reclaim must
start exactly one migration."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from chalicelib import events, executions, workflows
from chalicelib.users import ensure_admin
from chalicelib.wire.status import JobStatus
from tests.conftest import ADMIN, ADMIN_PASSWORD
from tests.functional.jobs_helpers import seed_job
from tests.functional.workflow_helpers import ec2_event, sqs_batch

JOBS = 1000
COPIES = 3
BATCH = 10  # what Lambda's event source mapping hands one invocation
CONCURRENT = 4  # invocations at once


def _warning(instance: str, copy: int) -> str:
    # EventBridge's copies of one event carry its id; a state change follows the warning.
    if copy < 2:
        return ec2_event(events.SPOT_WARNING, instance, f"evt-{instance}-warning",
                         **{"instance-action": "terminate"})
    return ec2_event(events.STATE_CHANGE, instance, f"evt-{instance}-state", state="shutting-down")


def _all_executions(runtime) -> list[dict]:
    sfn = runtime.stepfunctions
    pages = sfn.get_paginator("list_executions").paginate(
        stateMachineArn=runtime.config.workflow_arns[workflows.SETTLE])
    return [execution for page in pages for execution in page["executions"]]


def test_a_thousand_warnings_each_delivered_three_times_start_a_thousand_migrations(runtime, store):
    instances = {f"burst-{n:04d}": f"i-{n:017x}" for n in range(JOBS)}
    for job_id, instance in instances.items():
        seed_job(runtime, store, job_id, JobStatus.EXECUTING, instance=instance)
    bodies = [_warning(instance, copy) for instance in instances.values() for copy in range(COPIES)]
    random.Random(16).shuffle(bodies)
    batches = [sqs_batch(*bodies[at:at + BATCH]) for at in range(0, len(bodies), BATCH)]
    with ThreadPoolExecutor(CONCURRENT) as pool:
        handled = list(pool.map(lambda batch: events.handle_ec2_messages(runtime, store, batch),
                                batches))
    assert all(not h.response["batchItemFailures"] for h in handled)
    started = [name for h in handled for name in h.tally.started]
    duplicates = [name for h in handled for name in h.tally.duplicates]
    expected = {f"{job_id}-migrate-{instance}-1" for job_id, instance in instances.items()}
    assert sorted(started) == sorted(expected)
    assert len(duplicates) == JOBS * (COPIES - 1) and set(duplicates) == expected
    # Step Functions holds one execution per reclaim: none started twice, none missing.
    names = [execution["name"] for execution in _all_executions(runtime)]
    assert sorted(names) == sorted(expected)


def test_of_two_identical_starts_racing_only_one_says_it_started(runtime, monkeypatch):
    # Both look before either starts: Step Functions alone decides, and answers a second
    # start of a name with the same input with the first's execution.
    looked = threading.Barrier(2, timeout=30)
    describe = runtime.stepfunctions.describe_execution

    def describe_then_wait(**kwargs):
        try:
            return describe(**kwargs)
        finally:
            looked.wait()

    monkeypatch.setattr(runtime.stepfunctions, "describe_execution", describe_then_wait)
    payload = {"jobId": "twice", "instanceId": "i-0123456789abcdef0"}
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: executions.start(runtime, "migrate", "twice-migrate", payload),
                                range(2)))
    assert sorted(answers) == [False, True]
    assert [e["name"] for e in _all_executions(runtime)] == ["twice-migrate"]


SUBMITS, CLIENTS = 500, 50


def test_five_hundred_submits_from_fifty_clients_give_five_hundred_jobs_each_launched_once(
        runtime, store, served):
    """Over HTTP, as a pipeline's tasks arrive: each answer names a job of its own, the listing
    shows every one, and each has exactly one launch started (its launch workflow's own
    idempotence is the workflow tests')."""
    ensure_admin(runtime, store, ADMIN, ADMIN_PASSWORD)
    token = requests.post(f"{served}/v1/login", timeout=30, json={
        "username": ADMIN, "password": ADMIN_PASSWORD}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    def submit_ten(client: int) -> list[str]:
        with requests.Session() as session:
            answers = [session.post(f"{served}/v1/jobs", headers=headers, timeout=120, json={
                "image": "docker.io/library/busybox:latest", "jobScript": "true",
                "name": f"task-{client}-{n}"}) for n in range(SUBMITS // CLIENTS)]
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
        return [a.json()["id"] for a in answers]

    with ThreadPoolExecutor(CLIENTS) as pool:
        submitted = [job_id for ids in pool.map(submit_ten, range(CLIENTS)) for job_id in ids]
    assert len(set(submitted)) == SUBMITS
    listed: list[dict] = []
    next_token = None
    while True:
        page = requests.get(f"{served}/v1/jobs", headers=headers, timeout=60, params={
            "limit": 100, **({"nextToken": next_token} if next_token else {})}).json()
        listed += page["items"]
        next_token = page.get("nextToken")
        if not next_token:
            break
    assert sorted(job["id"] for job in listed) == sorted(submitted)
    assert {job["name"] for job in listed} == {f"task-{c}-{n}" for c in range(CLIENTS)
                                               for n in range(SUBMITS // CLIENTS)}
    launches = [e["name"] for e in _all_executions(runtime)]
    assert sorted(launches) == sorted(f"{job_id}-launch" for job_id in submitted)


def test_a_copy_of_a_warning_handled_before_costs_no_call_to_aws(runtime, store):
    seed_job(runtime, store, "copied", JobStatus.EXECUTING, instance="i-00000000000c0b1ed")
    warning = _warning("i-00000000000c0b1ed", 0)
    first = events.handle_ec2_messages(runtime, store, sqs_batch(warning))
    assert first.tally.started == ["copied-migrate-i-00000000000c0b1ed-1"]
    calls: list[str] = []
    for client in (runtime.dynamodb, runtime.stepfunctions):
        client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    again = events.handle_ec2_messages(runtime, store, sqs_batch(warning, warning))
    assert again.tally.duplicates == ["copied-migrate-i-00000000000c0b1ed-1"] * 2
    assert calls == []
    # Another event about the same reclaim is looked up: Step Functions knows it started.
    other = events.handle_ec2_messages(runtime, store, sqs_batch(_warning("i-00000000000c0b1ed", 2)))
    assert other.tally.duplicates == ["copied-migrate-i-00000000000c0b1ed-1"]
    assert "StartExecution" in calls or "DescribeExecution" in calls
