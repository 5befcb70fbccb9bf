"""The migrate workflow: on a reclaim, checkpoint on the old instance while a replacement boots,
restore there; on a request, launch first and checkpoint then. Every failure ends in a named
status or fallback, with no instance left running that has no job."""

from __future__ import annotations

from chalicelib import executions
from chalicelib.wire.status import JobStatus
from tests.functional.workflow_helpers import (
    manifest,
    move_ready,
    restored,
    running_instances,
)


def _migrate(flows, job_id, checkpoint_seconds=10, start_seconds=10, reclaim=True, target=None,
             heartbeat_seconds=10, timeout=90):
    name, payload = executions.migrate_start(
        job_id, "i-old", 2, reason="spot reclaim notice", notice_time=flows.runtime.now_iso(),
        reclaim=reclaim, target=target,
        timeouts=flows.timeouts(checkpointSeconds=checkpoint_seconds, startSeconds=start_seconds,
                                heartbeatSeconds=heartbeat_seconds))
    return flows.run("migrate", name, payload, timeout=timeout)


def _statuses(job):
    return [h.to for h in job.history]


def _forbid_reruns(flows, job_id):
    job = flows.store.get_job(job_id)
    flows.store.record_fields(job, {"spec": job.spec.model_copy(update={"disableRerun": True})})


def _kinds(seen):
    return [command.kind for command in seen]


# ---- on a reclaim ---------------------------------------------------------------------------


def test_a_reclaimed_job_is_restored_elsewhere_and_its_move_is_recorded(flows):
    old, old_seen, new_seen = move_ready(flows, "mover", manifest("mover", 3),
                                          restored("mover", 3))
    result = _migrate(flows, "mover")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("mover")
    assert _statuses(job)[-3:] == [JobStatus.CAPTURING, JobStatus.FLOATING, JobStatus.EXECUTING]
    assert job.instanceId != old and flows.state(job.instanceId) == "running"
    assert job.history[-1].reason == f"resumed on {job.instanceId} from its checkpoint (checkpoint 3)"
    assert _kinds(old_seen) == ["checkpoint"] and [_kinds(s) for s in new_seen] == [["restore"]]
    assert flows.state(old) == "terminated"
    assert [u.instanceId for u in flows.store.usage_of("mover")] == [old]
    [move] = job.migrations
    assert (move.fromInstance, move.toInstance, move.instanceType) == (old, job.instanceId, "c5.large")
    assert (move.checkpointSeq, move.imageBytes, move.freezeSeconds, move.rerun) == (
        3, 64 * 2**20, 0.25, False)
    assert (move.checkpointSeconds, move.uploadSeconds, move.downloadSeconds,
            move.restoreSeconds) == (0.9, 1.5, 0.5, 0.7)
    assert 0 <= move.launchSeconds <= move.secondsToExecuting
    assert move.secondsToExecuting is not None and move.secondsToExecuting >= 0


def test_a_job_restored_from_a_dump_on_a_pre_dump_names_both(flows):
    chained = restored("chained", 5)
    chained["manifest"]["previousSeq"] = 4
    move_ready(flows, "chained", manifest("chained", 5), chained)
    assert _migrate(flows, "chained")["status"] == "SUCCEEDED"
    job = flows.store.get_job("chained")
    assert job.history[-1].reason.endswith("from its checkpoint (checkpoint 5 on pre-dump 4)")


def test_a_checkpoint_that_times_out_restores_the_last_committed_one(flows):
    old, old_seen, new_seen = move_ready(flows, "silent", False, restored("silent", 2))
    result = _migrate(flows, "silent", checkpoint_seconds=2)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("silent")
    assert job.status == JobStatus.EXECUTING and job.instanceId != old
    assert job.history[-1].reason.endswith(
        "(checkpoint 2, the last committed one, taken 2026-11-25T10:00:30Z (spot reclaim): "
        "no new checkpoint could be taken)")
    assert flows.state(old) == "terminated"


def test_an_agent_gone_silent_is_given_up_at_its_heartbeat_not_the_checkpoint_limit(flows):
    old, _, _ = move_ready(flows, "dead", False, restored("dead", 1))
    # Two minutes to checkpoint, but an agent that is working says so every few seconds.
    result = _migrate(flows, "dead", checkpoint_seconds=120, heartbeat_seconds=2, timeout=40)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("dead")
    assert job.status == JobStatus.EXECUTING and "the last committed one" in job.history[-1].reason


def test_a_failed_upload_falls_back_to_the_last_committed_checkpoint(flows):
    old, old_seen, new_seen = move_ready(flows, "flaky", "CheckpointUploadFailed",
                                          restored("flaky", 1))
    result = _migrate(flows, "flaky")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("flaky")
    assert job.status == JobStatus.EXECUTING and job.instanceId != old
    assert "the last committed one" in job.history[-1].reason
    assert _kinds(old_seen) == ["checkpoint"] and [_kinds(s) for s in new_seen] == [["restore"]]
    assert flows.state(old) == "terminated"


def test_without_any_checkpoint_the_job_reruns_from_the_start(flows):
    old, old_seen, new_seen = move_ready(flows, "fresh", False, ["CheckpointNotFound", True])
    result = _migrate(flows, "fresh", checkpoint_seconds=2)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("fresh")
    assert job.status == JobStatus.EXECUTING
    assert job.history[-1].reason == (
        f"no checkpoint could be restored: rerun from the start on {job.instanceId}")
    assert [_kinds(s) for s in new_seen] == [["restore", "run"]]
    assert job.migrations[-1].rerun is True
    assert flows.state(old) == "terminated"


def test_a_rerun_whose_instance_never_answers_is_rerun_on_another(flows):
    # Reclaimed before any checkpoint, and the first replacement dies before it starts the job.
    old, _, new_seen = move_ready(flows, "unlucky", False, ["CheckpointNotFound", False], True)
    result = _migrate(flows, "unlucky", checkpoint_seconds=2, start_seconds=2)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("unlucky")
    assert job.status == JobStatus.EXECUTING
    assert job.history[-1].reason == (
        f"no checkpoint could be restored: rerun from the start on {job.instanceId}")
    # The second replacement is not asked for a checkpoint the first already had not.
    assert [_kinds(s) for s in new_seen] == [["restore", "run"], ["run"]]
    assert [i["InstanceId"] for i in running_instances(flows)] == [job.instanceId]
    assert flows.state(old) == "terminated"


def test_a_rerun_failing_on_two_instances_ends_checkpoint_failed_with_nothing_running(flows):
    old, _, new_seen = move_ready(flows, "doomed", False, ["CheckpointNotFound", "JobStartFailed"],
                                  "JobStartFailed")
    result = _migrate(flows, "doomed", checkpoint_seconds=2)
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("doomed")
    assert job.status == JobStatus.CHECKPOINT_FAILED and "JobStartFailed" in job.history[-1].reason
    assert [_kinds(s) for s in new_seen] == [["restore", "run"], ["run"]]
    assert running_instances(flows) == []


def test_a_job_that_forbids_reruns_ends_checkpoint_failed_when_nothing_can_be_restored(flows):
    old, _, new_seen = move_ready(flows, "strict", False, "CheckpointNotFound")
    _forbid_reruns(flows, "strict")
    result = _migrate(flows, "strict", checkpoint_seconds=2)
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("strict")
    assert job.status == JobStatus.CHECKPOINT_FAILED
    assert "CheckpointNotFound" in job.history[-1].reason
    assert [_kinds(s) for s in new_seen] == [["restore"]]
    assert running_instances(flows) == []


def test_a_failed_restore_is_tried_again_on_another_instance(flows):
    old, _, new_seen = move_ready(flows, "retry", True, "CheckpointCorrupt", restored("retry", 4))
    result = _migrate(flows, "retry")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("retry")
    floating = [h.instance for h in job.history if h.to == JobStatus.FLOATING]
    assert len(floating) == 2 and floating[1] == job.instanceId
    assert job.status == JobStatus.EXECUTING
    assert flows.state(floating[0]) == "terminated" and flows.state(old) == "terminated"
    assert [_kinds(s) for s in new_seen] == [["restore"], ["restore"]]
    assert [i["InstanceId"] for i in running_instances(flows)] == [job.instanceId]


def test_a_replacement_whose_agent_never_answers_is_replaced_again(flows):
    old, _, new_seen = move_ready(flows, "gone", True, False, restored("gone", 1))
    result = _migrate(flows, "gone", start_seconds=2)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("gone")
    assert job.status == JobStatus.EXECUTING
    assert [i["InstanceId"] for i in running_instances(flows)] == [job.instanceId]


def test_a_restore_failing_on_two_instances_reruns_the_job(flows):
    old, _, new_seen = move_ready(flows, "twice", True, "CheckpointCorrupt",
                                   ["CheckpointCorrupt", True])
    result = _migrate(flows, "twice")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("twice")
    assert job.status == JobStatus.EXECUTING and "rerun from the start" in job.history[-1].reason
    assert [_kinds(s) for s in new_seen] == [["restore"], ["restore", "run"]]
    assert [i["InstanceId"] for i in running_instances(flows)] == [job.instanceId]


def test_a_restore_failing_twice_without_reruns_ends_checkpoint_failed_with_nothing_running(flows):
    old, _, _ = move_ready(flows, "broken", True, "CheckpointCorrupt", "CheckpointCorrupt")
    _forbid_reruns(flows, "broken")
    result = _migrate(flows, "broken")
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("broken")
    assert job.status == JobStatus.CHECKPOINT_FAILED and "CheckpointCorrupt" in job.history[-1].reason
    assert running_instances(flows) == []


def test_no_replacement_capacity_ends_in_no_available_host(flows, no_capacity):
    old, _, _ = move_ready(flows, "nowhere", True)
    job = flows.store.get_job("nowhere")
    flows.store.record_fields(job, {"spec": job.spec.model_copy(
        update={"vmPolicy": {"spotOnly": True}})})
    no_capacity.update({("spot", "*"), ("on-demand", "*")})
    result = _migrate(flows, "nowhere")
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("nowhere")
    assert job.status == JobStatus.NO_AVAILABLE_HOST
    assert "InsufficientCapacity" in job.history[-1].reason
    assert running_instances(flows) == []


def test_spot_gone_on_a_reclaim_moves_the_job_to_on_demand(flows, no_capacity):
    old, _, _ = move_ready(flows, "fallback", manifest("fallback", 1), restored("fallback", 1))
    no_capacity.add(("spot", "*"))
    result = _migrate(flows, "fallback")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("fallback")
    found = flows.runtime.ec2.describe_instances(InstanceIds=[job.instanceId])
    instance = found["Reservations"][0]["Instances"][0]
    assert (instance["InstanceType"], instance.get("InstanceLifecycle")) == ("c5.large", None)


# ---- on a request (float migrate) ----------------------------------------------------------


def test_a_requested_move_lands_on_the_requested_type_and_keeps_it(flows):
    old, old_seen, new_seen = move_ready(flows, "bigger", manifest("bigger", 1),
                                          restored("bigger", 1))
    result = _migrate(flows, "bigger", reclaim=False, target={"instType": "c5.2xlarge"})
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("bigger")
    assert job.status == JobStatus.EXECUTING and job.spec.instType == "c5.2xlarge"
    assert job.migrations[-1].instanceType == "c5.2xlarge"
    assert _kinds(old_seen) == ["checkpoint"] and flows.state(old) == "terminated"


def test_a_requested_move_whose_checkpoint_fails_leaves_the_job_running_where_it_was(flows):
    old, old_seen, new_seen = move_ready(flows, "stays", "CheckpointFailed", True)
    queue = flows.store.get_job("stays").commandsQueueUrl
    result = _migrate(flows, "stays", reclaim=False)
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("stays")
    assert (job.status, job.instanceId, job.commandsQueueUrl) == (JobStatus.EXECUTING, old, queue)
    assert job.history[-1].reason == (
        f"not moved: the checkpoint failed (CheckpointFailed); still running on {old}")
    # The replacement was launched, never used, and released.
    assert all(seen == [] for seen in new_seen) and job.migrations == []
    assert [i["InstanceId"] for i in running_instances(flows)] == [old]


def test_a_requested_move_without_capacity_never_touches_the_job(flows, no_capacity):
    old, old_seen, _ = move_ready(flows, "nospace", True)
    no_capacity.update({("spot", "*"), ("on-demand", "*")})
    result = _migrate(flows, "nospace", reclaim=False, target={"instType": "c5.2xlarge"})
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("nospace")
    assert (job.status, job.instanceId) == (JobStatus.EXECUTING, old)
    assert job.history[-1].reason.startswith("not moved: no instance could be launched")
    assert old_seen == []
    assert [i["InstanceId"] for i in running_instances(flows)] == [old]
