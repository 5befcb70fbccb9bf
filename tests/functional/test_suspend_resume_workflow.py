"""The suspend and resume workflows: checkpoint and release the instance; later launch, restore
(or rerun) and execute. A suspended job is never lost to a capacity shortage."""

from __future__ import annotations

from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job
from tests.functional.workflow_helpers import (
    manifest,
    restored,
    running_instances,
    seed_running,
    simulated_agent,
)


def _suspend(flows, job_id, checkpoint_seconds=10):
    return flows.run("suspend", f"{job_id}-suspend-2", {
        "jobId": job_id, "reason": "suspended by alice", "launchNumber": 2,
        "timeouts": flows.timeouts(checkpointSeconds=checkpoint_seconds, heartbeatSeconds=10)},
        timeout=60)


def _resume(flows, job_id, start_seconds=10):
    return flows.run("resume", f"{job_id}-resume-3", {
        "jobId": job_id, "reason": "resumed by alice", "launchNumber": 3,
        "timeouts": flows.timeouts(startSeconds=start_seconds)}, timeout=60)


def _suspended(flows, job_id, **spec):
    job = seed_job(flows.runtime, flows.store, job_id, JobStatus.SUSPENDED)
    if spec:
        flows.store.record_fields(job, {"spec": job.spec.model_copy(update=spec)})


def test_a_suspended_job_is_checkpointed_and_its_instance_released(flows):
    instance, queue = seed_running(flows, "nap")
    seen: list = []
    simulated_agent(flows, queue, manifest("nap", 5), seen)
    result = _suspend(flows, "nap")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("nap")
    assert (job.status, job.instanceId, job.commandsQueueUrl) == (JobStatus.SUSPENDED, None, None)
    assert job.history[-1].reason == f"suspended with a new checkpoint; {instance} released"
    assert [c.kind for c in seen] == ["checkpoint"]
    assert flows.state(instance) == "terminated"
    assert [u.instanceId for u in flows.store.usage_of("nap")] == [instance]


def test_a_refused_checkpoint_leaves_the_job_running_where_it_was(flows):
    instance, queue = seed_running(flows, "awake")
    simulated_agent(flows, queue, "CheckpointFailed", [])
    result = _suspend(flows, "awake")
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("awake")
    assert (job.status, job.instanceId) == (JobStatus.EXECUTING, instance)
    assert job.history[-1].reason == (
        f"not suspended: the checkpoint failed (CheckpointFailed); still running on {instance}")
    assert flows.state(instance) == "running"


def test_an_agent_that_never_answers_still_gets_its_instance_released(flows):
    instance, queue = seed_running(flows, "mute")
    simulated_agent(flows, queue, False, [])
    result = _suspend(flows, "mute", checkpoint_seconds=2)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("mute")
    assert job.status == JobStatus.SUSPENDED
    assert job.history[-1].reason.startswith("suspended without a new checkpoint")
    assert running_instances(flows) == []


def test_a_resumed_job_is_restored_on_a_new_instance(flows):
    _suspended(flows, "back")
    seen: list = []
    simulated_agent(flows, None, restored("back", 5), seen, job_id="back")
    result = _resume(flows, "back")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("back")
    assert job.status == JobStatus.EXECUTING and flows.state(job.instanceId) == "running"
    assert job.history[-1].reason == f"resumed on {job.instanceId} from its checkpoint"
    assert [c.kind for c in seen] == ["restore"]
    assert job.migrations == []


def test_resume_without_capacity_leaves_the_job_suspended(flows, no_capacity):
    # Spot only: spotFirst would wait retryInterval between its Spot rounds, as on a launch.
    _suspended(flows, "waiting", vmPolicy={"spotOnly": True})
    no_capacity.update({("spot", "*"), ("on-demand", "*")})
    result = _resume(flows, "waiting")
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("waiting")
    assert (job.status, job.instanceId) == (JobStatus.SUSPENDED, None)
    assert job.history[-1].reason.startswith("not resumed: no instance could be launched")
    assert running_instances(flows) == []


def test_resume_without_a_checkpoint_reruns_the_job(flows):
    _suspended(flows, "again")
    seen: list = []
    simulated_agent(flows, None, ["CheckpointNotFound", True], seen, job_id="again")
    result = _resume(flows, "again")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("again")
    assert job.status == JobStatus.EXECUTING and "rerun from the start" in job.history[-1].reason
    assert [c.kind for c in seen] == ["restore", "run"]


def test_resume_of_a_job_that_forbids_reruns_and_has_no_checkpoint_fails_cleanly(flows):
    _suspended(flows, "lost", disableRerun=True)
    simulated_agent(flows, None, "CheckpointNotFound", [], job_id="lost")
    result = _resume(flows, "lost")
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("lost")
    assert job.status == JobStatus.CHECKPOINT_FAILED
    assert "CheckpointNotFound" in job.history[-1].reason
    assert running_instances(flows) == []
