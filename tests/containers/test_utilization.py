"""What the agent measures of a real job container: heartbeats carry its CPU and memory against
the container's limits, it reports at once when memory runs out, and a job the kernel killed
for memory is reported as such."""

from __future__ import annotations

import time

from chalicelib.wire.agent import RunCommand
from tests.containers.conftest import BUSYBOX, PYTHON, wait_for

MIB = 2**20

# Holds HOLD_MIB of touched memory, then busy-loops (or sleeps) until stopped.
HOLDER = """\
#!/usr/bin/env python3
import os, time
held = bytearray(int(os.environ["HOLD_MIB"]) << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
print("holding", flush=True)
while True:
    if os.environ["MODE"] == "idle":
        time.sleep(1)
"""

# Takes memory 16 MiB at a time, well past its limit.
GREEDY = """\
#!/usr/bin/env python3
import time
chunks = []
while True:
    chunks.append(bytearray(b"x") * (16 << 20))
    time.sleep(0.01)
"""


def _start(fleet, job_id, image, script, **extra):
    agent = fleet.agent(f"i-{job_id}")
    launch = fleet.launch(job_id, image, script, **extra)
    agent.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    return agent


def _measured(agent, seconds=2.0):
    """A heartbeat's sample covering about `seconds` of the job's run after its first look."""
    wait_for(lambda: agent.watch_job() or (agent.job.sampler is not None
                                           and agent.job.sampler.latest is not None), 30,
             "the agent to find the job's cgroup")
    time.sleep(seconds)
    agent.heartbeat()


def _samples(fleet, job_id):
    return [e.utilization for e in fleet.events()
            if e.kind == "heartbeat" and e.jobId == job_id and e.utilization is not None]


def test_a_busy_job_reads_as_cpu_bound_against_its_vcpus_with_its_working_set(fleet):
    agent = _start(fleet, "busy", PYTHON, HOLDER, env={"HOLD_MIB": "96", "MODE": "busy"},
                   cpus=1, memoryGiB=0.5)
    wait_for(lambda: agent.watch_job() or "holding" in fleet.stdout("busy"), 60,
             "the job to hold its memory")
    _measured(agent)
    [sample] = _samples(fleet, "busy")
    assert sample.vcpus == 1 and sample.memoryLimitBytes == 512 * MIB
    assert 1.5 <= sample.seconds <= 10
    # Busy all the time: what it used, plus what it waited for while the machine was busy.
    assert sample.cpuDemandRatio >= 80, sample
    assert sample.cpuRatio > 10, sample
    assert 96 * MIB <= sample.memoryBytes <= 160 * MIB, sample
    assert sample.memoryPeakBytes >= sample.memoryBytes
    assert sample.swapBytes == 0 and sample.oomKills == 0
    assert not sample.pressing


def test_an_idle_job_reads_as_idle(fleet):
    agent = _start(fleet, "idle", PYTHON, HOLDER, env={"HOLD_MIB": "8", "MODE": "idle"},
                   cpus=2, memoryGiB=1)
    wait_for(lambda: agent.watch_job() or "holding" in fleet.stdout("idle"), 60,
             "the job to start")
    _measured(agent)
    [sample] = _samples(fleet, "idle")
    assert sample.vcpus == 2 and sample.memoryLimitBytes == 1024 * MIB
    assert sample.cpuDemandRatio < 10, sample
    assert sample.memoryBytes < 64 * MIB, sample


def test_memory_near_the_limit_brings_the_heartbeat_forward_once(fleet):
    agent = _start(fleet, "near", PYTHON, HOLDER, env={"HOLD_MIB": "236", "MODE": "idle"},
                   cpus=1, memoryGiB=0.25)
    wait_for(lambda: agent.watch_job() or "holding" in fleet.stdout("near"), 60,
             "the job to hold its memory")
    agent.heartbeat_due = False
    # The next look at the container sees it at over 90% of its 256 MiB.
    wait_for(lambda: agent.watch_job() or agent.heartbeat_due, 30, "an early heartbeat")
    time.sleep(1.2)
    agent.heartbeat()
    [sample] = _samples(fleet, "near")
    assert sample.pressing and sample.memoryPeakRatio >= 90, sample
    agent.heartbeat_due = False
    for _ in range(5):
        agent.watch_job()
    # Reported once: it does not bring every heartbeat forward while it stays there.
    assert not agent.heartbeat_due


def test_a_job_the_kernel_kills_for_memory_is_reported_as_killed_for_memory(
        fleet, tmp_path, monkeypatch):
    started_in = tmp_path / "started-in"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    agent = _start(fleet, "greedy", PYTHON, GREEDY, cpus=1, memoryGiB=0.25)
    wait_for(lambda: agent.watch_job() or agent.job is None, 60, "the job to be killed")
    [exited] = [e for e in fleet.events() if e.kind == "job-exited"]
    assert exited.exitCode == 137
    assert exited.oomKilled and exited.memoryLimitBytes == 256 * MIB
    # The container runtime's own traces stay out of the directory the agent was started in.
    assert list(started_in.iterdir()) == []


def test_a_job_killed_by_a_signal_of_its_own_is_not_called_out_of_memory(fleet):
    # A step of the job dies by SIGKILL, and the job exits with its status, 137.
    agent = _start(fleet, "selfkill", BUSYBOX, "sh -c 'kill -9 $$'\nexit $?\n", cpus=1,
                   memoryGiB=0.25)
    wait_for(lambda: agent.watch_job() or agent.job is None, 60, "the job to end")
    [exited] = [e for e in fleet.events() if e.kind == "job-exited"]
    assert exited.exitCode == 137 and not exited.oomKilled


def test_a_job_restored_on_a_larger_instance_has_that_instances_limits(fleet):
    from chalicelib.wire.agent import CheckpointCommand, RestoreCommand

    first = _start(fleet, "grown", PYTHON, HOLDER, memoryGiB=0.25, cpus=1,
                   env={"HOLD_MIB": "64", "MODE": "idle"})
    _measured(first, 1.0)
    assert _samples(fleet, "grown")[-1].memoryLimitBytes == 256 * MIB
    first.handle(CheckpointCommand(taskToken="ckpt", jobId="grown", reason="moved up"))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]

    second = fleet.agent("i-grown-2")
    bigger = fleet.launch("grown", PYTHON, HOLDER, memoryGiB=0.5, cpus=2,
                          env={"HOLD_MIB": "64", "MODE": "idle"})
    second.handle(RestoreCommand(taskToken="restore", job=bigger))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    _measured(second, 1.0)
    sample = _samples(fleet, "grown")[-1]
    # Not the 256 MiB and 1 vCPU of the instance it was checkpointed on.
    assert (sample.memoryLimitBytes, sample.vcpus) == (512 * MIB, 2.0)
    second.podman.remove(second.container("grown"))
