"""Lambda's SQS event sources, locally: one thread per queue receives batches and hands each to
the same handler the event source mapping invokes on AWS, in Lambda's event shape, and reads
its answer as a mapping with `ReportBatchItemFailures` does. The messages the handler took are
deleted; those it names in `batchItemFailures` — or the whole batch, when it fails — come back
after the visibility timeout, and the queue's redrive policy moves them to the dead-letter
queue in the end, as on AWS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="openfloat-local-queues")

Handler = Callable[[dict[str, Any], Any], Any]


def handled(message_ids: list[str], response: Any) -> list[str]:
    """The messages of a batch the handler's answer lets go, as Lambda reads it: no answer or
    no failures lets all go; an item naming no message of the batch fails the whole batch."""
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return list(message_ids)
    failures = response["batchItemFailures"]
    if not isinstance(failures, list):
        return []
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if identifier not in message_ids:
            return []
        failed.add(identifier)
    return [m for m in message_ids if m not in failed]


class QueueFeeder:
    def __init__(self, sqs: Any, queue_url: str, handler: Handler, name: str,
                 wait_seconds: int = 1, batch_size: int = 10) -> None:
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.wait_seconds, self.batch_size = wait_seconds, batch_size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"feed-{name}", daemon=True)

    def start(self) -> QueueFeeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.wait_seconds + 5)

    def feed_once(self) -> int:
        """Hand one batch to the handler; how many messages it held."""
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                            WaitTimeSeconds=self.wait_seconds,
                                            AttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "eventSource": "aws:sqs",
        } for m in messages]}
        try:
            response = self.handler(event, None)
        except Exception:  # noqa: BLE001 - Lambda retries the batch; so does this
            logger.exception("handler failed; the batch will be delivered again",
                             extra={"queue": self.queue_url})
            return len(messages)
        done = set(handled([m["MessageId"] for m in messages], response))
        if len(done) < len(messages):
            logger.warning("handler failed some messages; they will be delivered again",
                           extra={"queue": self.queue_url, "failed": len(messages) - len(done)})
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                   for i, m in enumerate(messages) if m["MessageId"] in done]
        if entries:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.feed_once()
            except Exception:  # noqa: BLE001 - the queue may be briefly unreachable
                logger.exception("receiving failed", extra={"queue": self.queue_url})
                self._stop.wait(1)
