"""Heartbeats move jobs by their migratePolicy: a sample that trips a rule starts an ordinary
migration to the new sizes, once, with the rule and its figures in the job's history and its
migrations; a job without a policy only has its samples kept."""

from __future__ import annotations

import time
from datetime import timedelta

from chalicelib import events, executions
from chalicelib.wire.agent import EventEnvelope, Heartbeat, JobExited
from chalicelib.wire.specs import MigratePolicy
from chalicelib.wire.status import JobStatus
from chalicelib.wire.utilization import Utilization
from tests.functional.workflow_helpers import manifest, move_ready, restored, sqs_batch

GIB = 2**30


def _sample(memory_ratio: float = 30, cpu: float = 10, seconds: float = 15,
            limit_gib: float = 4, vcpus: int = 2) -> Utilization:
    limit = int(limit_gib * GIB)
    return Utilization(seconds=seconds, vcpus=vcpus, cpuRatio=cpu, cpuDemandRatio=cpu,
                       memoryBytes=int(limit * memory_ratio / 100),
                       memoryPeakBytes=int(limit * memory_ratio / 100), memoryLimitBytes=limit)


def _beat(flows, job_id: str, instance: str, sample: Utilization, after: float = 0) -> str:
    at = (flows.runtime.clock() + timedelta(seconds=after)).isoformat().replace("+00:00", "Z")
    return EventEnvelope(event=Heartbeat(instanceId=instance, time=at, jobId=job_id,
                                         utilization=sample)).model_dump_json()


def _with_policy(flows, job_id: str, policy: str | None, mem: str = "4", cpu: str = "2"):
    job = flows.store.get_job(job_id)
    spec = job.spec.model_copy(update={
        "migratePolicy": MigratePolicy.model_validate(policy).model_dump(mode="json")
        if policy else None, "mem": {"min": float(mem), "max": float(mem)},
        "cpu": {"min": int(cpu), "max": int(cpu)}})
    # The job runs on a c5.large (2 vCPUs, 4 GiB), as the seeded instance is.
    return flows.store.record_fields(job, {"spec": spec, "instanceType": "c5.large"})


def _settled(flows, job_id: str, old: str, timeout: float = 60):
    """The job once it runs again elsewhere and its old instance is released."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = flows.store.get_job(job_id)
        if job.status == JobStatus.EXECUTING and len(job.migrations) > 0 \
                and flows.state(old) == "terminated":
            return job
        time.sleep(0.1)
    raise AssertionError(f"{job_id} did not move: {flows.store.get_job(job_id).history}")


def test_evade_oom_moves_a_job_nearing_its_memory_to_twice_as_much_at_once(flows):
    old, old_seen, new_seen = move_ready(flows, "grower", manifest("grower", 1),
                                         restored("grower", 1))
    _with_policy(flows, "grower", "[evadeOOM=true]")
    beat = _beat(flows, "grower", old, _sample(memory_ratio=93, seconds=2))
    tally = events.handle_agent_messages(flows.runtime, flows.store, sqs_batch(beat, beat)).tally
    assert tally.heartbeats + tally.skipped == 2
    why = "migrated by WaveRider: evadeOOM: memory 93% of 4 GB (≥ 90%): 4 GB → 8 GB"
    moving = flows.store.get_job("grower")
    assert moving.status == JobStatus.CAPTURING and moving.history[-1].reason == why
    assert moving.lastAutoMove is not None and moving.lastAutoMove["mem"] == "up"
    job = _settled(flows, "grower", old)
    assert job.instanceId != old and flows.state(old) == "terminated"
    # Its new sizes are the job's own from now on, and the instance has them.
    assert job.spec.mem["min"] == 8 and job.spec.cpu["min"] == 2
    described = flows.runtime.ec2.describe_instance_types(InstanceTypes=[job.instanceType])
    assert described["InstanceTypes"][0]["MemoryInfo"]["SizeInMiB"] >= 8 * 1024
    [move] = job.migrations
    assert move.cause == why
    # The duplicate heartbeat found the job moving: one move, one checkpoint.
    assert [c.kind for c in old_seen] == ["checkpoint"]


def test_a_cpu_bound_job_moves_up_after_its_duration_and_not_before(flows):
    old, _, _ = move_ready(flows, "busy", manifest("busy", 1), restored("busy", 1))
    _with_policy(flows, "busy", "[cpu.upperBoundRatio=80,cpu.upperBoundDuration=20s]")
    first = _beat(flows, "busy", old, _sample(cpu=97, seconds=15))
    events.handle_agent_messages(flows.runtime, flows.store, sqs_batch(first))
    assert flows.store.get_job("busy").status == JobStatus.EXECUTING  # 15 s of 20
    second = _beat(flows, "busy", old, _sample(cpu=99, seconds=15), after=15)
    events.handle_agent_messages(flows.runtime, flows.store, sqs_batch(second))
    job = _settled(flows, "busy", old)
    assert job.history[-3].reason == (
        "migrated by WaveRider: cpu 98% > 80% for 20 s: 2 vCPUs → 4 vCPUs")
    assert job.spec.cpu["min"] == 4 and job.spec.mem["min"] >= 4


def test_without_a_policy_samples_are_kept_and_the_job_stays(flows):
    old, old_seen, _ = move_ready(flows, "plain", manifest("plain", 1), restored("plain", 1))
    _with_policy(flows, "plain", None)
    events.handle_agent_messages(flows.runtime, flows.store, sqs_batch(
        _beat(flows, "plain", old, _sample(memory_ratio=99, cpu=100, seconds=15))))
    job = flows.store.get_job("plain")
    assert job.status == JobStatus.EXECUTING and not old_seen
    since = (flows.runtime.clock() - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    [point] = flows.store.recent_utilization("plain", since)
    assert point.instanceId == old and point.cpuDemandRatio == 100
    assert job.utilization is not None and job.utilization["memoryRatio"] >= 98


def test_a_disabled_policy_never_moves(flows):
    old, old_seen, _ = move_ready(flows, "held", manifest("held", 1), restored("held", 1))
    _with_policy(flows, "held", "[evadeOOM=true,disable=true]")
    events.handle_agent_messages(flows.runtime, flows.store, sqs_batch(
        _beat(flows, "held", old, _sample(memory_ratio=99, seconds=2))))
    assert flows.store.get_job("held").status == JobStatus.EXECUTING and not old_seen


def test_a_job_the_kernel_killed_for_memory_fails_and_says_so(flows):
    old, _, _ = move_ready(flows, "oom", manifest("oom", 1))
    exited = EventEnvelope(event=JobExited(
        instanceId=old, time=flows.runtime.now_iso(), jobId="oom", exitCode=137,
        oomKilled=True, memoryLimitBytes=GIB // 2)).model_dump_json()
    tally = events.handle_agent_messages(flows.runtime, flows.store, sqs_batch(exited)).tally
    assert tally.started == [f"oom-finish-{old}"]
    deadline = time.monotonic() + 30
    while flows.store.get_job("oom").status != JobStatus.FAIL_TO_COMPLETE:
        assert time.monotonic() < deadline, flows.store.get_job("oom").history
        time.sleep(0.1)
    reason = flows.store.get_job("oom").history[-1].reason
    assert reason.startswith("out of memory (OOM): the kernel killed the job, which needed "
                             "more than the memory of 0.5 GiB of its instance (exit code 137)")


def test_finish_names_the_limit_only_when_known():
    _, payload = executions.finish_start("j", "i-1", 137, out_of_memory=0)
    assert payload["to"] == "FailToComplete" and "memory of its instance" in payload["why"]
