"""The reconciler's decisions, as tables: what it does with each job and each instance it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.reconcile import End, Instance, Leave, Limits, Recover, Terminate, decide_instance, decide_job
from chalicelib.store import JobRecord, JobSpec
from chalicelib.wire.status import JobStatus as S

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
LIMITS = Limits(silence_seconds=90, workflow_seconds=3600)


def _iso(seconds_ago: float | None) -> str | None:
    if seconds_ago is None:
        return None
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job(status: S, *, changed: float = 10, heard: float | None = 5,
        instance: str | None = "i-1") -> JobRecord:
    return JobRecord(id="j-1", owner="alice", status=status, version=3, image="busybox",
                     imageUri="busybox", scriptKey="jobs/j-1/script",
                     spec=JobSpec(cpu=None, mem=None, vmPolicy=None), instanceId=instance,
                     submitTime=_iso(7200) or "", updateTime=_iso(changed) or "",
                     heartbeatTime=_iso(heard))


def instance(state: str = "running", *, age: float = 600, job_id: str | None = "j-1",
             instance_id: str = "i-1") -> Instance:
    return Instance(id=instance_id, state=state, job_id=job_id,
                    launched=NOW - timedelta(seconds=age))


@pytest.mark.parametrize(("the_job", "the_instance", "expected", "words"), [
    # Executing: left alone while its agent reports
    (job(S.EXECUTING, heard=5), instance(), Leave, "heard"),
    (job(S.EXECUTING, heard=89), instance(), Leave, "heard"),
    # ... a restore a moment ago counts as a sign of life before the new agent's first word
    (job(S.EXECUTING, changed=20, heard=400), instance(), Leave, "heard"),
    (job(S.EXECUTING, changed=20, heard=None), instance(), Leave, "heard"),
    # ... moved when the agent fell silent, or the instance went without an event
    (job(S.EXECUTING, changed=600, heard=91), instance(), Recover, "silent for 91 s"),
    (job(S.EXECUTING, changed=600, heard=None), instance(), Recover, "silent"),
    (job(S.EXECUTING), None, Recover, "i-1 is gone"),
    (job(S.EXECUTING), instance("terminated"), Recover, "i-1 is terminated"),
    (job(S.EXECUTING), instance("shutting-down"), Recover, "shutting-down"),
    (job(S.EXECUTING, instance=None), None, Recover, "(none recorded)"),
    # Unknown: its move is started (again) until the workflow limit, then it is written off
    (job(S.UNKNOWN, changed=100), instance(), Recover, "started again"),
    (job(S.UNKNOWN, changed=3601), instance(), End, "Unknown for 3601 s"),
    # a transitional status is the workflow's business until the limit
    (job(S.CAPTURING, changed=3000, heard=3000), instance(), Leave, "workflow's hands"),
    (job(S.STARTING, changed=3599, heard=None), None, Leave, "workflow's hands"),
    (job(S.CAPTURING, changed=3601), instance(), End, "Capturing for 3601 s"),
    (job(S.CANCELLING, changed=4000), instance(), End, "its workflow was lost"),
    # stable statuses need nothing
    (job(S.SUSPENDED, changed=99999, instance=None), None, Leave, "needs nothing"),
    (job(S.COMPLETED, changed=99999), None, Leave, "needs nothing"),
    (job(S.WAITING_FOR_LICENSE, changed=99999, instance=None), None, Leave, "needs nothing"),
])
def test_what_the_reconciler_does_with_a_job(the_job, the_instance, expected, words):
    action = decide_job(the_job, the_instance, NOW, LIMITS)
    assert isinstance(action, expected), action
    assert words in action.why


@pytest.mark.parametrize(("status", "ends_as"), [
    (S.SUBMITTED, S.FAIL_TO_EXECUTE), (S.INITIALIZING, S.FAIL_TO_EXECUTE),
    (S.STARTING, S.FAIL_TO_EXECUTE), (S.CAPTURING, S.CHECKPOINT_FAILED),
    (S.FLOATING, S.FAIL_TO_EXECUTE), (S.SUSPENDING, S.CHECKPOINT_FAILED),
    (S.RESUMING, S.FAIL_TO_EXECUTE), (S.UNKNOWN, S.FAIL_TO_EXECUTE),
    (S.CANCELLING, S.CANCELLED),
])
def test_a_job_stuck_past_the_workflow_limit_ends_in_the_status_that_says_where(status, ends_as):
    action = decide_job(job(status, changed=LIMITS.workflow_seconds + 1), instance(), NOW, LIMITS)
    assert action == End(ends_as, action.why)


def test_every_recovery_says_the_agent_is_lost_so_the_move_does_not_wait_for_a_checkpoint():
    for the_job, the_instance in ((job(S.EXECUTING, changed=600, heard=600), instance()),
                                  (job(S.EXECUTING), None)):
        action = decide_job(the_job, the_instance, NOW, LIMITS)
        assert isinstance(action, Recover) and action.agent_lost


@pytest.mark.parametrize(("the_instance", "the_job", "expected", "words"), [
    (instance(), job(S.EXECUTING), Leave, "runs on it"),
    (instance(), None, Terminate, "j-1 does not exist"),
    (instance(), job(S.COMPLETED), Terminate, "is Completed"),
    (instance(), job(S.CANCELLED), Terminate, "is Cancelled"),
    (instance("pending", age=5), job(S.FAIL_TO_EXECUTE), Terminate, "FailToExecute"),
    # already going: nothing to do
    (instance("shutting-down"), job(S.COMPLETED), Leave, "shutting-down"),
    (instance("terminated"), None, Leave, "terminated"),
    # a replacement being placed, or waiting for a requested move's checkpoint
    (instance(instance_id="i-2", age=300), job(S.FLOATING), Leave, "replacement"),
    (instance(instance_id="i-2", age=300), job(S.EXECUTING), Leave, "replacement"),
    (instance(instance_id="i-2", age=99999), job(S.STARTING), Leave, "replacement"),
    # ... but one older than any workflow beside a job that settled elsewhere is left over
    (instance(instance_id="i-2", age=3601), job(S.EXECUTING), Terminate, "on i-1"),
    (instance(instance_id="i-2", age=3601), job(S.SUSPENDED, instance=None), Terminate,
     "on no instance"),
])
def test_what_the_reconciler_does_with_a_tagged_instance(the_instance, the_job, expected, words):
    action = decide_instance(the_instance, the_job, NOW, LIMITS)
    assert isinstance(action, expected), action
    assert words in action.why
