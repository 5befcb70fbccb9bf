"""EC2 and agent events: one reclaim starts one migration, whatever the duplicates and their
order; events for other instances are dropped and counted."""

from __future__ import annotations

import json
import time

from chalicelib import events, workflows
from chalicelib.wire.agent import EventEnvelope, JobExited, ReclaimNoticed
from tests.functional.workflow_helpers import seed_running


def _ec2(detail_type: str, instance: str, **detail) -> str:
    return json.dumps({"version": "0", "id": f"evt-{time.monotonic_ns()}", "detail-type": detail_type,
                       "source": "aws.ec2", "account": "123456789012", "time": "2026-11-25T10:00:00Z",
                       "region": "us-east-1", "resources": [f"arn:aws:ec2:us-east-1a:instance/{instance}"],
                       "detail": {"instance-id": instance, **detail}})


def _agent(event) -> str:
    return EventEnvelope(event=event).model_dump_json()


def _executions(flows):
    """Every execution started: each is one of settle's, whatever workflow it runs."""
    return flows.sfn.list_executions(stateMachineArn=flows.arns[workflows.SETTLE])["executions"]


def _finish_all(flows):
    """Let the executions a test started end (nobody answers them: they time out) before
    the stand-in AWS goes away."""
    for _ in range(150):
        if all(e["status"] != "RUNNING" for e in _executions(flows)):
            return
        time.sleep(0.1)


def test_a_reclaim_reported_four_ways_out_of_order_starts_one_migration(flows):
    instance, _ = seed_running(flows, "popular")
    terminated = _ec2(events.STATE_CHANGE, instance, state="terminated")
    warning = _ec2(events.SPOT_WARNING, instance, **{"instance-action": "terminate"})
    first = events.handle_ec2_messages(flows.runtime, flows.store, [terminated, warning, warning])
    notice = ReclaimNoticed(instanceId=instance, time="2026-11-25T10:00:01Z", jobId="popular",
                            action="terminate", actionTime="2026-11-25T10:02:00Z")
    second = events.handle_agent_messages(flows.runtime, flows.store, [_agent(notice)])
    try:
        assert first.started == [f"popular-migrate-{instance}-1"]
        assert len(first.duplicates) == 2 and second.duplicates == [f"popular-migrate-{instance}-1"]
        assert len(_executions(flows)) == 1
    finally:
        _finish_all(flows)


def test_events_for_other_instances_are_dropped_and_counted(flows):
    tally = events.handle_ec2_messages(flows.runtime, flows.store, [
        _ec2(events.SPOT_WARNING, "i-0notours", **{"instance-action": "terminate"}),
        _ec2(events.REBALANCE, "i-0notours"),
        "{not json",
    ])
    assert (tally.dropped, tally.unreadable, tally.started) == (2, 1, [])
    assert _executions(flows) == []


def test_a_rebalance_or_a_running_state_needs_no_action(flows):
    instance, _ = seed_running(flows, "calm")
    tally = events.handle_ec2_messages(flows.runtime, flows.store, [
        _ec2(events.REBALANCE, instance), _ec2(events.STATE_CHANGE, instance, state="running")])
    assert (tally.skipped, tally.started, tally.dropped) == (2, [], 0)


def test_eventbridge_delivers_spot_warnings_to_the_handlers_queue(flows):
    instance, _ = seed_running(flows, "routed")
    flows.session.client("events").put_events(Entries=[{
        "Source": "aws.ec2", "DetailType": events.SPOT_WARNING, "Resources": [],
        "Detail": json.dumps({"instance-id": instance, "instance-action": "terminate"})}])
    sqs = flows.runtime.sqs
    messages = sqs.receive_message(QueueUrl=flows.runtime.config.ec2_events_queue,
                                   MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    assert len(messages) == 1
    tally = events.handle_ec2_messages(flows.runtime, flows.store, [m["Body"] for m in messages])
    try:
        assert tally.started == [f"routed-migrate-{instance}-1"]
    finally:
        _finish_all(flows)


def test_a_job_exit_reported_by_its_agent_finishes_the_job(flows):
    instance, _ = seed_running(flows, "exiting")
    exited = _agent(JobExited(instanceId=instance, time="2026-11-25T10:00:00Z", jobId="exiting",
                              exitCode=0))
    tally = events.handle_agent_messages(flows.runtime, flows.store, [exited, exited])
    assert tally.started == [f"exiting-finish-{instance}"] and len(tally.duplicates) == 1
    # Completed is recorded first, then the instance is released.
    for _ in range(100):
        if flows.store.get_job("exiting").status.value == "Completed" \
                and flows.state(instance) == "terminated":
            break
        time.sleep(0.1)
    assert flows.store.get_job("exiting").status.value == "Completed"
    assert flows.state(instance) == "terminated"
