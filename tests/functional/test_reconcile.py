"""The reconciler against moto: heartbeats noted on jobs, a silent agent's job moved through the
real migrate workflow, stuck jobs ended and left-over instances terminated."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from app import app
from chalicelib import events
from chalicelib.reconcile import reconcile
from chalicelib.wire.agent import EventEnvelope, Heartbeat
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job
from tests.functional.workflow_helpers import (
    restored,
    running_instances,
    seed_running,
    simulated_agent,
    sqs_batch,
)


def _heartbeat(instance_id: str, job_id: str | None, time_: str) -> str:
    return EventEnvelope(event=Heartbeat(instanceId=instance_id, time=time_, jobId=job_id)
                         ).model_dump_json()


def _later(flows, seconds: float) -> None:
    """Move the OpCenter's clock on by `seconds`."""
    now = flows.runtime.clock()
    flows.runtime.clock = lambda: now + timedelta(seconds=seconds)


def _wait_for(flows, job_id, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = flows.store.get_job(job_id)
        if predicate(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is still {flows.store.get_job(job_id).status}")


def _replacement(flows, job_id, old_queue, answers, seen) -> None:
    """An agent on the instance the job's move launches, answering `answers` in turn."""

    def serve():
        job = _wait_for(flows, job_id, lambda j: j.commandsQueueUrl not in (None, old_queue))
        simulated_agent(flows, job.commandsQueueUrl, answers, seen)

    threading.Thread(target=serve, daemon=True).start()


def _released(flows, instance_id, timeout=30) -> bool:
    """Whether the instance is terminated within `timeout` (the workflow's last step)."""
    deadline = time.monotonic() + timeout
    while flows.state(instance_id) != "terminated" and time.monotonic() < deadline:
        time.sleep(0.1)
    return flows.state(instance_id) == "terminated"


def test_a_heartbeat_is_noted_on_the_job_of_its_instance_only(flows):
    instance, _ = seed_running(flows, "beating")
    version = flows.store.get_job("beating").version
    tally = events.handle_agent_messages(flows.runtime, flows.store, sqs_batch(
        _heartbeat(instance, "beating", "2026-12-02T10:00:00.000000Z"),
        _heartbeat(instance, "beating", "2026-12-02T09:59:00.000000Z"),  # late, older: ignored
        _heartbeat("i-elsewhere", "beating", "2026-12-02T10:05:00.000000Z"),  # not its instance
    )).tally
    job = flows.store.get_job("beating")
    assert job.heartbeatTime == "2026-12-02T10:00:00.000000Z"
    assert (tally.heartbeats, tally.dropped) == (1, 1)
    # a heartbeat is no change of the job: a workflow holding its version still writes
    assert job.version == version


def test_a_job_whose_agent_fell_silent_is_restored_elsewhere_through_the_schedule(flows):
    old, queue = seed_running(flows, "quiet")
    flows.store.record_heartbeat("quiet", old, flows.runtime.now_iso())
    new_seen: list = []
    _replacement(flows, "quiet", queue, restored("quiet", 4), new_seen)
    _later(flows, flows.runtime.config.agent_silence_seconds + 5)
    # The Lambda the schedule runs, as EventBridge invokes it.
    handlers = {function.name: function for function in app.pure_lambda_functions}
    done = handlers["reconcile"]({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
    assert done["recovering"] == ["quiet"]
    job = _wait_for(flows, "quiet", lambda j: j.status == JobStatus.EXECUTING
                    and j.instanceId != old)
    statuses = [h.to for h in job.history]
    assert statuses[-4:] == [JobStatus.UNKNOWN, JobStatus.CAPTURING, JobStatus.FLOATING,
                             JobStatus.EXECUTING]
    unknown = job.history[-4]
    assert unknown.reason.startswith(f"the agent on {old} has been silent for")
    # nobody was asked for a checkpoint on the silent instance: the last committed one came back
    assert job.history[-1].reason.endswith(
        "(checkpoint 4, the last committed one, taken 2026-11-25T10:00:30Z (spot reclaim): "
        "no new checkpoint could be taken)")
    assert [c.kind for c in new_seen] == ["restore"]
    assert _released(flows, old)


def test_a_job_whose_instance_vanished_without_an_event_is_rerun_elsewhere(flows):
    old, queue = seed_running(flows, "vanished")
    flows.runtime.ec2.terminate_instances(InstanceIds=[old])  # and no event is sent
    new_seen: list = []
    _replacement(flows, "vanished", queue, ["CheckpointNotFound", True], new_seen)
    _later(flows, 5)  # well inside the silence limit: a gone instance is not waited for
    done = reconcile(flows.runtime, flows.store)
    assert done.recovering == ["vanished"]
    job = _wait_for(flows, "vanished", lambda j: j.status == JobStatus.EXECUTING
                    and j.instanceId != old)
    assert f"its instance {old} is terminated" in job.history[-4].reason
    assert job.migrations[-1].rerun is True
    assert _released(flows, old)
    assert [c.kind for c in new_seen] == ["restore", "run"]


def test_a_silent_job_that_may_not_rerun_and_has_no_checkpoint_fails_with_the_reason(flows):
    old, queue = seed_running(flows, "norerun")
    job = flows.store.get_job("norerun")
    flows.store.record_fields(job, {"spec": job.spec.model_copy(update={"disableRerun": True})})
    _replacement(flows, "norerun", queue, ["CheckpointNotFound"], [])
    _later(flows, flows.runtime.config.agent_silence_seconds + 5)
    reconcile(flows.runtime, flows.store)
    job = _wait_for(flows, "norerun", lambda j: j.status not in (
        JobStatus.EXECUTING, JobStatus.UNKNOWN, JobStatus.CAPTURING, JobStatus.FLOATING))
    # as a reclaim with nothing to restore ends
    assert job.status == JobStatus.CHECKPOINT_FAILED
    assert "neither restored nor rerun" in job.history[-1].reason
    assert "CheckpointNotFound" in job.history[-1].reason
    assert running_instances(flows) == []


def test_a_job_stuck_in_a_transitional_status_is_ended_and_its_instances_released(flows):
    instance, _ = seed_running(flows, "stuck", status=JobStatus.CAPTURING)
    _later(flows, flows.runtime.config.workflow_limit_seconds + 1)
    done = reconcile(flows.runtime, flows.store)
    assert done.ended == ["stuck"]
    job = flows.store.get_job("stuck")
    assert job.status == JobStatus.CHECKPOINT_FAILED
    assert "its workflow was lost" in job.history[-1].reason
    assert flows.state(instance) == "terminated"
    # a second pass finds nothing to do
    assert reconcile(flows.runtime, flows.store).as_dict() == {
        "recovering": [], "ended": [], "terminated": [], "volumes": [], "failed": [],
        "licensed": 0}


def test_instances_of_final_or_missing_jobs_are_terminated_and_live_ones_kept(flows):
    kept, _ = seed_running(flows, "alive")
    flows.store.record_heartbeat("alive", kept, flows.runtime.now_iso())
    done_instance, _ = flows.instance("finished")
    seed_job(flows.runtime, flows.store, "finished", JobStatus.COMPLETED)
    orphan, _ = flows.instance("never-existed")
    untagged = flows.runtime.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                               )["Instances"][0]["InstanceId"]
    done = reconcile(flows.runtime, flows.store)
    assert sorted(done.terminated) == sorted([done_instance, orphan])
    assert flows.state(kept) == "running" and flows.state(untagged) == "running"
    assert flows.state(done_instance) == flows.state(orphan) == "terminated"
    assert flows.store.get_job("alive").status == JobStatus.EXECUTING
    # what the finished job's leftover used is billed to it
    assert [u.instanceId for u in flows.store.usage_of("finished")] == [done_instance]
