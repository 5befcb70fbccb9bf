"""The migrate workflow: checkpoint on the old instance while a replacement boots, restore
there, and every failure ending in a named status with no instance left running."""

from __future__ import annotations

import threading
import time

from chalicelib.wire.status import JobStatus
from tests.functional.test_launch_workflow import _running_instances, no_capacity  # noqa: F401
from tests.functional.workflow_helpers import seed_running, simulated_agent


def _migrate(flows, job_id, checkpoint_seconds=10):
    return flows.run("migrate", f"{job_id}-migrate-1", {
        "jobId": job_id, "reason": "spot reclaim notice", "launchNumber": 2,
        "timeouts": {"checkpointSeconds": checkpoint_seconds, "startSeconds": 10}}, timeout=60)


def _statuses(job):
    return [h.to for h in job.history]


def _move_ready(flows, job_id, old_answer, new_answer):
    old, queue = seed_running(flows, job_id)
    old_seen: list = []
    new_seen: list = []
    simulated_agent(flows, queue, old_answer, old_seen)

    def new_agent():
        # The replacement's queue is the one the launch records on the job, once it differs.
        for _ in range(200):
            try:
                job = flows.store.get_job(job_id)
            except Exception:  # noqa: BLE001 - the test, and its stand-in AWS, ended first
                return
            if job.commandsQueueUrl and job.commandsQueueUrl != queue:
                simulated_agent(flows, job.commandsQueueUrl, new_answer, new_seen)
                return
            time.sleep(0.05)

    threading.Thread(target=new_agent, daemon=True).start()
    return old, old_seen, new_seen


def test_a_job_is_checkpointed_restored_elsewhere_and_the_old_instance_released(flows):
    old, old_seen, new_seen = _move_ready(flows, "mover", True, True)
    result = _migrate(flows, "mover")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("mover")
    assert _statuses(job)[-3:] == [JobStatus.CAPTURING, JobStatus.FLOATING, JobStatus.EXECUTING]
    assert job.instanceId != old and flows.state(job.instanceId) == "running"
    assert job.history[-1].reason == f"resumed on {job.instanceId} from its checkpoint"
    assert [c.kind for c in old_seen] == ["checkpoint"] and [c.kind for c in new_seen] == ["restore"]
    assert flows.state(old) == "terminated"
    assert [u.instanceId for u in flows.store.usage_of("mover")] == [old]


def test_without_any_checkpoint_the_job_reruns_from_the_start(flows):
    old, old_seen, new_seen = _move_ready(flows, "fresh", False, ["CheckpointNotFound", True])
    result = _migrate(flows, "fresh", checkpoint_seconds=2)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("fresh")
    assert job.status == JobStatus.EXECUTING
    assert job.history[-1].reason.startswith("no checkpoint to restore: rerun from the start")
    assert [c.kind for c in new_seen] == ["restore", "run"]
    assert flows.state(old) == "terminated"


def test_a_failed_restore_ends_in_checkpoint_failed_with_nothing_running(flows):
    old, _, _ = _move_ready(flows, "broken", True, "CheckpointCorrupt")
    result = _migrate(flows, "broken")
    assert (result["status"], result.get("error")) == ("FAILED", "CheckpointFailed")
    job = flows.store.get_job("broken")
    assert job.status == JobStatus.CHECKPOINT_FAILED and "CheckpointCorrupt" in job.history[-1].reason
    assert _running_instances(flows) == []


def test_no_replacement_capacity_ends_in_no_available_host(flows, no_capacity):  # noqa: F811
    old, _, _ = _move_ready(flows, "nowhere", True, True)
    job = flows.store.get_job("nowhere")
    flows.store.record_fields(job, {"spec": job.spec.model_copy(
        update={"vmPolicy": {"spotOnly": True}})})
    no_capacity.update({("spot", "*"), ("on-demand", "*")})
    result = _migrate(flows, "nowhere")
    assert (result["status"], result.get("error")) == ("FAILED", "NoAvailableHost")
    job = flows.store.get_job("nowhere")
    assert job.status == JobStatus.NO_AVAILABLE_HOST
    assert _running_instances(flows) == []


def test_a_failed_upload_falls_back_to_the_last_committed_checkpoint(flows):
    old, old_seen, new_seen = _move_ready(flows, "flaky", "CheckpointUploadFailed", True)
    result = _migrate(flows, "flaky")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("flaky")
    assert job.status == JobStatus.EXECUTING and job.instanceId != old
    # The new agent was asked to restore; it restores the newest committed checkpoint.
    assert [c.kind for c in old_seen] == ["checkpoint"] and [c.kind for c in new_seen] == ["restore"]
    assert flows.state(old) == "terminated"
