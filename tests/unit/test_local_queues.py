"""How the local event source reads a handler's answer: as Lambda's SQS integration does with
ReportBatchItemFailures."""

from localmode.queues import handled

BATCH = ["m1", "m2", "m3"]


def test_no_answer_or_no_failures_lets_the_whole_batch_go():
    for answer in (None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, "ok"):
        assert handled(BATCH, answer) == BATCH, answer


def test_the_messages_named_as_failures_are_kept_and_the_others_go():
    assert handled(BATCH, {"batchItemFailures": [{"itemIdentifier": "m2"}]}) == ["m1", "m3"]
    everything = [{"itemIdentifier": m} for m in BATCH]
    assert handled(BATCH, {"batchItemFailures": everything}) == []


def test_a_failure_naming_no_message_of_the_batch_fails_the_whole_batch():
    for item in ({"itemIdentifier": "m9"}, {"itemIdentifier": ""}, {"itemIdentifier": None},
                 {"id": "m2"}, "m2"):
        assert handled(BATCH, {"batchItemFailures": [{"itemIdentifier": "m1"}, item]}) == [], item
