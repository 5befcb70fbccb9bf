"""EC2 and agent events: one reclaim starts one migration, whatever the duplicates and their
order; events for other instances are dropped and counted; a record whose handling fails is
the only one of its batch delivered again."""

from __future__ import annotations

import json
import time

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError

from app import ec2_events
from chalicelib import events, jobs, workflows
from chalicelib.store import Store
from chalicelib.wire.agent import EventEnvelope, Heartbeat, JobExited, ReclaimNoticed
from localmode.queues import QueueFeeder
from tests.functional.workflow_helpers import ec2_event as _ec2
from tests.functional.workflow_helpers import seed_running, sqs_batch


def _agent(event) -> str:
    return EventEnvelope(event=event).model_dump_json()


_batch = sqs_batch


def _ids(batch: dict) -> list[str]:
    return [record["messageId"] for record in batch["Records"]]


class RefusingStore(Store):
    """The jobs table, throttling every lookup of the given instances."""

    def __init__(self, flows, refused: set[str]) -> None:
        super().__init__(flows.runtime.dynamodb, flows.runtime.config)
        self.refused = refused

    def job_on_instance(self, instance_id):
        if instance_id in self.refused:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "Rate of requests exceeds the allowed throughput."}},
                              "Query")
        return super().job_on_instance(instance_id)


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
    first = events.handle_ec2_messages(flows.runtime, flows.store,
                                       _batch(terminated, warning, warning)).tally
    notice = ReclaimNoticed(instanceId=instance, time="2026-11-25T10:00:01Z", jobId="popular",
                            action="terminate", actionTime="2026-11-25T10:02:00Z")
    second = events.handle_agent_messages(flows.runtime, flows.store, _batch(_agent(notice))).tally
    try:
        assert first.started == [f"popular-migrate-{instance}-1"]
        assert len(first.duplicates) == 2 and second.duplicates == [f"popular-migrate-{instance}-1"]
        assert len(_executions(flows)) == 1
        execution = json.loads(flows.sfn.describe_execution(
            executionArn=_executions(flows)[0]["executionArn"])["input"])["input"]
        # The first report's time, as EventBridge spelled it, is when the move was noticed.
        assert execution["noticeTime"] == "2026-11-25T10:00:00Z"
    finally:
        _finish_all(flows)


def test_events_for_other_instances_and_unreadable_ones_are_dropped_and_counted(flows):
    batch = _batch(_ec2(events.SPOT_WARNING, "i-0notours", **{"instance-action": "terminate"}),
                   _ec2(events.REBALANCE, "i-0notours"), "{not json",
                   json.dumps({"detail-type": events.SPOT_WARNING, "detail": {}}))
    handled = events.handle_ec2_messages(flows.runtime, flows.store, batch)
    assert (handled.tally.dropped, handled.tally.unreadable, handled.tally.started) == (2, 2, [])
    # An unreadable record would read no better next time: it is not delivered again.
    assert handled.response == {"batchItemFailures": []}
    assert _executions(flows) == []


def test_a_rebalance_or_a_running_state_needs_no_action(flows):
    instance, _ = seed_running(flows, "calm")
    tally = events.handle_ec2_messages(flows.runtime, flows.store, _batch(
        _ec2(events.REBALANCE, instance), _ec2(events.STATE_CHANGE, instance, state="running"))).tally
    assert (tally.skipped, tally.started, tally.dropped) == (2, [], 0)


def test_a_record_whose_handling_fails_is_the_only_one_delivered_again(flows):
    good = [seed_running(flows, job)[0] for job in ("steady", "sturdy")]
    poison, _ = seed_running(flows, "throttled")
    warnings = [_ec2(events.SPOT_WARNING, i, **{"instance-action": "terminate"})
                for i in (good[0], poison, good[1])]
    batch = _batch(*warnings)
    try:
        handled = events.handle_ec2_messages(flows.runtime, RefusingStore(flows, {poison}), batch)
        assert handled.response == {"batchItemFailures": [{"itemIdentifier": _ids(batch)[1]}]}
        assert handled.tally.started == [f"steady-migrate-{good[0]}-1", f"sturdy-migrate-{good[1]}-1"]
        assert handled.tally.failed == [_ids(batch)[1]]
        # Delivered again once the table answers: the poison record's migration starts, and
        # only it.
        again = events.handle_ec2_messages(flows.runtime, flows.store, _batch(warnings[1]))
        assert again.tally.started == [f"throttled-migrate-{poison}-1"]
        assert sorted(e["name"] for e in _executions(flows)) == sorted([
            f"steady-migrate-{good[0]}-1", f"sturdy-migrate-{good[1]}-1",
            f"throttled-migrate-{poison}-1"])
    finally:
        _finish_all(flows)


def test_a_batch_whose_every_record_fails_fails_whole(flows):
    instance, _ = seed_running(flows, "unlucky")
    batch = _batch(_ec2(events.SPOT_WARNING, instance, **{"instance-action": "terminate"}),
                   _ec2(events.STATE_CHANGE, instance, state="terminated"))
    # The Lambda's invocation fails, so the event source delivers the whole batch again.
    with pytest.raises(BatchProcessingError):
        events.handle_ec2_messages(flows.runtime, RefusingStore(flows, {instance}), batch)
    assert _executions(flows) == []


def test_the_local_event_source_deletes_the_handled_records_and_keeps_the_failed_one(flows):
    good, _ = seed_running(flows, "kept")
    poison, _ = seed_running(flows, "stuck")
    sqs, url = flows.runtime.sqs, flows.runtime.config.ec2_events_queue
    for instance in (good, poison):
        sqs.send_message(QueueUrl=url, MessageBody=_ec2(events.SPOT_WARNING, instance,
                                                        **{"instance-action": "terminate"}))
    store = RefusingStore(flows, {poison})
    receipts: dict[str, str] = {}

    def handler(event, context):
        receipts.update({json.loads(r["body"])["detail"]["instance-id"]: r["receiptHandle"]
                         for r in event["Records"]})
        return events.handle_ec2_messages(flows.runtime, store, event).response

    def waiting() -> tuple[str, str]:
        found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return found["ApproximateNumberOfMessages"], found["ApproximateNumberOfMessagesNotVisible"]

    feeder = QueueFeeder(sqs, url, handler, "ec2-events", wait_seconds=0)
    try:
        assert feeder.feed_once() == 2
        assert waiting() == ("0", "1")  # the failed record only, out for its visibility timeout
        # The timeout passes and the table answers again: the record comes back, alone.
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipts[poison],
                                      VisibilityTimeout=0)
        store.refused.clear()
        assert feeder.feed_once() == 1
        assert waiting() == ("0", "0")
        assert sorted(e["name"] for e in _executions(flows)) == [
            f"kept-migrate-{good}-1", f"stuck-migrate-{poison}-1"]
    finally:
        _finish_all(flows)


def test_eventbridge_delivers_spot_warnings_to_the_handlers_queue(flows):
    instance, _ = seed_running(flows, "routed")
    flows.session.client("events").put_events(Entries=[{
        "Source": "aws.ec2", "DetailType": events.SPOT_WARNING, "Resources": [],
        "Detail": json.dumps({"instance-id": instance, "instance-action": "terminate"})}])
    sqs = flows.runtime.sqs
    messages = sqs.receive_message(QueueUrl=flows.runtime.config.ec2_events_queue,
                                   MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    assert len(messages) == 1
    batch = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                          "body": m["Body"], "attributes": {}, "eventSource": "aws:sqs"}
                         for m in messages]}
    try:
        # The function the event source mapping invokes, with what EventBridge wrote.
        assert ec2_events(batch, None) == {"batchItemFailures": []}
        assert [e["name"] for e in _executions(flows)] == [f"routed-migrate-{instance}-1"]
    finally:
        _finish_all(flows)


def test_a_job_exit_reported_by_its_agent_finishes_the_job(flows):
    instance, _ = seed_running(flows, "exiting")
    exited = _agent(JobExited(instanceId=instance, time="2026-11-25T10:00:00Z", jobId="exiting",
                              exitCode=0))
    tally = events.handle_agent_messages(flows.runtime, flows.store, _batch(exited, exited)).tally
    assert tally.started == [f"exiting-finish-{instance}"] and len(tally.duplicates) == 1
    # Completed is recorded first, then the instance is released.
    for _ in range(100):
        if flows.store.get_job("exiting").status.value == "Completed" \
                and flows.state(instance) == "terminated":
            break
        time.sleep(0.1)
    assert flows.store.get_job("exiting").status.value == "Completed"
    assert flows.state(instance) == "terminated"


def test_port_mappings_show_the_address_the_agent_of_the_jobs_instance_reports(flows):
    instance, _ = seed_running(flows, "web")
    job = flows.store.get_job("web")
    spec = job.spec.model_copy(update={"publish": ["8080:80", "5353:53/udp"]})
    flows.store.record_fields(job, {"spec": spec})

    def heartbeat(instance_id, address, at):
        beat = _agent(Heartbeat(instanceId=instance_id, time=at, jobId="web", address=address))
        events.handle_agent_messages(flows.runtime, flows.store, _batch(beat))
        return jobs.view(flows.store.get_job("web")).portMappings

    assert jobs.view(flows.store.get_job("web")).portMappings == ["8080:80", "5353:53/udp"]
    assert heartbeat(instance, "10.0.1.5", "2026-11-25T10:00:00Z") == [
        "10.0.1.5:8080:80", "10.0.1.5:5353:53/udp"]
    # Moved: the old instance's address is not shown for the new one, nor taken from the old.
    flows.store.record_fields(flows.store.get_job("web"), {"instanceId": "i-0new"})
    assert jobs.view(flows.store.get_job("web")).portMappings == ["8080:80", "5353:53/udp"]
    assert heartbeat(instance, "10.0.1.5", "2026-11-25T10:00:05Z") == ["8080:80", "5353:53/udp"]
    assert heartbeat("i-0new", "10.0.2.9", "2026-11-25T10:00:10Z") == [
        "10.0.2.9:8080:80", "10.0.2.9:5353:53/udp"]
