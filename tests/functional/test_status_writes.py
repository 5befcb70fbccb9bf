"""Status changes as stored: the table is enforced at the write, and races lose cleanly."""

import threading

import pytest

from chalicelib.errors import IllegalTransition, StaleWrite
from chalicelib.status import TRANSITIONS
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import entry, seed_job


def test_store_refuses_every_illegal_transition_and_leaves_the_job_untouched(runtime, store):
    for number, current in enumerate(JobStatus):
        job = seed_job(runtime, store, f"job-{number}", current)
        for target in JobStatus:
            if target in TRANSITIONS[current]:
                continue
            with pytest.raises(IllegalTransition):
                store.transition_job(job, target, entry(runtime, current, target, "illegal"))
        after = store.get_job(job.id)
        assert (after.status, after.version, len(after.history)) == (current, 1, 1)


def test_store_applies_every_allowed_transition_with_its_history(runtime, store):
    count = 0
    for current, targets in TRANSITIONS.items():
        for target in targets:
            count += 1
            job = seed_job(runtime, store, f"ok-{count}", current)
            moved = store.transition_job(job, target, entry(runtime, current, target, "because"))
            assert (moved.status, moved.version) == (target, 2)
            assert [(h.from_, h.to, h.reason) for h in moved.history[1:]] == [
                (current, target, "because")
            ]
    assert count > 50


def test_of_two_writers_holding_the_same_read_one_wins_and_one_conflicts(runtime, store):
    job = seed_job(runtime, store, "race", JobStatus.SUBMITTED)
    first, second = store.get_job(job.id), store.get_job(job.id)
    won = store.transition_job(first, JobStatus.INITIALIZING,
                               entry(runtime, first.status, JobStatus.INITIALIZING, "scheduler"))
    with pytest.raises(StaleWrite):
        store.transition_job(second, JobStatus.CANCELLED,
                             entry(runtime, second.status, JobStatus.CANCELLED, "user"))
    stored = store.get_job(job.id)
    assert stored == won
    assert stored.status == JobStatus.INITIALIZING and stored.version == 2
    assert [h.reason for h in stored.history] == ["seeded", "scheduler"]


def test_concurrent_writers_in_threads_produce_exactly_one_change(runtime, store):
    job = seed_job(runtime, store, "threads", JobStatus.EXECUTING)
    targets = [JobStatus.CAPTURING, JobStatus.SUSPENDING, JobStatus.CANCELLING,
               JobStatus.COMPLETED, JobStatus.FAIL_TO_COMPLETE, JobStatus.TIMEDOUT]
    start = threading.Barrier(len(targets))
    outcomes: dict[JobStatus, str] = {}

    def write(target: JobStatus) -> None:
        read = store.get_job(job.id)
        start.wait()
        try:
            store.transition_job(read, target, entry(runtime, read.status, target, target.value))
            outcomes[target] = "won"
        except StaleWrite:
            outcomes[target] = "conflict"

    threads = [threading.Thread(target=write, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [t for t, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1 and len(outcomes) == len(targets)
    stored = store.get_job(job.id)
    assert stored.status == winners[0] and stored.version == 2
    assert [h.to for h in stored.history] == [JobStatus.EXECUTING, winners[0]]


def test_a_read_racing_updates_of_the_same_item_sees_each_update_whole(runtime):
    """DynamoDB applies an update as one step and a read never sees half of it: the local
    stand-in must not be weaker, or a job read while a workflow writes it fails or tears."""
    table, key = runtime.config.jobs_table, {"id": {"S": "torn"}}
    runtime.dynamodb.put_item(TableName=table, Item={**key, "n": {"N": "0"}})
    updates, problems = 100, []
    writing = threading.Event()

    def write() -> None:
        writing.set()
        for i in range(1, updates + 1):
            # Each update adds an attribute and counts it: a whole item has n attributes a*.
            runtime.dynamodb.update_item(
                TableName=table, Key=key, UpdateExpression="SET #a = :one, n = n + :one",
                ExpressionAttributeNames={"#a": f"a{i}"},
                ExpressionAttributeValues={":one": {"N": "1"}})

    def read() -> None:
        writing.wait()
        for _ in range(updates):
            try:
                item = runtime.dynamodb.get_item(TableName=table, Key=key)["Item"]
            except Exception as error:  # noqa: BLE001 - any failure of a read is the finding
                problems.append(repr(error))
                return
            added = sum(1 for name in item if name.startswith("a"))
            if added != int(item["n"]["N"]):
                problems.append(f"{added} attributes with n={item['n']['N']}")

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    final = runtime.dynamodb.get_item(TableName=table, Key=key)["Item"]
    assert int(final["n"]["N"]) == updates
