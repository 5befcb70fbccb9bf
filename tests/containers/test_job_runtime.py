"""What a job sees inside its container, and what the agent reports about it."""

from datetime import UTC, datetime

from chalicelib.wire.agent import CancelCommand, RunCommand
from localmode.imds import LocalImds
from tests.containers.conftest import BUSYBOX, wait_for

SCRIPT = """\
echo "sample=$SAMPLE threads=$THREADS"
echo result > /mnt/scratch/out.txt
cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes
i=0
while [ $i -lt 30 ]; do i=$((i+1)); sleep 0.1; done
exit 3
"""


def test_env_limits_and_volumes_reach_the_job_and_its_exit_code_is_reported(fleet):
    imds = LocalImds("i-runtime").start()
    try:
        agent = fleet.agent("i-runtime", imds_url=imds.url)
        launch = fleet.launch("runtime", BUSYBOX, SCRIPT, env={"SAMPLE": "NA12878", "THREADS": "4"},
                              memoryGiB=0.25, cpus=1, dataVolumes=["[size=1]:/mnt/scratch"])
        scratch = fleet.attach("i-runtime", "vol-runtime", 0)
        agent.handle(RunCommand(taskToken="run", job=launch, volumes=[scratch]))
        assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
        wait_for(lambda: agent.watch_job() or len(fleet.stdout("runtime").splitlines()) >= 2, 30,
                 "the job to print")
        agent.heartbeat()
        imds.mark_rebalance(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
        agent.watch_metadata()
        wait_for(lambda: agent.watch_job() or agent.job is None, 30, "the job to end")
    finally:
        imds.stop()
    lines = fleet.stdout("runtime").splitlines()
    assert lines == ["sample=NA12878 threads=4", str(256 * 2**20)]
    # Written to the EBS volume itself, which outlives the instance.
    assert (fleet.volume("vol-runtime") / "out.txt").read_text() == "result\n"
    events = fleet.events()
    (beat,) = [e for e in events if e.kind == "heartbeat"]
    assert beat.jobId == "runtime"
    (rebalance,) = [e for e in events if e.kind == "rebalance-noticed"]
    assert rebalance.jobId == "runtime" and rebalance.noticeTime == "2026-11-25T10:00:00Z"
    assert not any(e.kind == "checkpoint-committed" for e in events)
    (exited,) = [e for e in events if e.kind == "job-exited"]
    assert exited.exitCode == 3


def test_cancel_stops_the_container_and_answers_its_token(fleet):
    agent = fleet.agent("i-cancel")
    agent.handle(RunCommand(job=fleet.launch("doomed", BUSYBOX, "while true; do sleep 1; done\n")))
    assert agent.podman.state(agent.container("doomed")).running
    agent.handle(CancelCommand(taskToken="cancel", jobId="doomed"))
    assert fleet.sfn.answers[-1] == {"token": "cancel", "output": {"cancelled": "doomed"}}
    assert agent.podman.state(agent.container("doomed")) is None and agent.job is None
    agent.watch_job()
    assert not [e for e in fleet.events() if e.kind == "job-exited"]


def test_a_block_volume_not_attached_to_the_instance_fails_the_start_by_name(fleet):
    agent = fleet.agent("i-novolume")
    launch = fleet.launch("novolume", BUSYBOX, "echo never\n", dataVolumes=["[size=1]:/mnt/scratch"])
    # Attached elsewhere: this host has no such disk, so the job must not start on an empty one.
    fleet.attach("i-elsewhere", "vol-elsewhere", 0)
    agent.handle(RunCommand(taskToken="run", job=launch))
    answer = fleet.sfn.answers[-1]
    assert answer["error"] == "JobStartFailed", answer
    assert "/mnt/scratch is not attached" in answer["cause"]
    assert agent.podman.state(agent.container("novolume")) is None
