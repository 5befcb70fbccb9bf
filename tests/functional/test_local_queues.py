"""The local event source against moto's SQS: it deletes the messages the handler took and
leaves the ones it failed, or the whole batch when it raises, to be delivered again."""

from __future__ import annotations

import pytest

from localmode.queues import QueueFeeder


@pytest.fixture
def queue(aws):
    sqs = aws.client("sqs")
    # No visibility timeout: a message left undeleted can be received again at once.
    url = sqs.create_queue(QueueName="feed", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    for body in ("first", "poison", "last"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    return sqs, url


def _left(sqs, url) -> list[str]:
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(m["Body"] for m in received)


def _feeder(sqs, url, handler) -> QueueFeeder:
    return QueueFeeder(sqs, url, handler, "test", wait_seconds=0)


def test_only_the_messages_the_handler_failed_are_left_for_redelivery(queue):
    sqs, url = queue
    seen: list[str] = []

    def handler(event, context):
        seen.extend(r["body"] for r in event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                      for r in event["Records"] if r["body"] == "poison"]}

    assert _feeder(sqs, url, handler).feed_once() == 3
    assert sorted(seen) == ["first", "last", "poison"]
    assert _left(sqs, url) == ["poison"]


def test_a_redelivered_message_is_handed_over_with_its_receive_count(queue):
    sqs, url = queue
    counts: dict[str, str] = {}

    def handler(event, context):
        counts.update({r["body"]: r["attributes"]["ApproximateReceiveCount"]
                       for r in event["Records"]})
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                      for r in event["Records"] if r["body"] == "poison"]}

    feeder = _feeder(sqs, url, handler)
    feeder.feed_once()
    assert feeder.feed_once() == 1
    assert counts["poison"] == "2" and counts["first"] == "1"


def test_a_handler_that_raises_leaves_the_whole_batch(queue):
    sqs, url = queue

    def handler(event, context):
        raise RuntimeError("the table is unreachable")

    assert _feeder(sqs, url, handler).feed_once() == 3
    assert _left(sqs, url) == ["first", "last", "poison"]


def test_an_answer_naming_no_message_of_the_batch_leaves_the_whole_batch(queue):
    sqs, url = queue

    def handler(event, context):
        return {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]}

    _feeder(sqs, url, handler).feed_once()
    assert _left(sqs, url) == ["first", "last", "poison"]
