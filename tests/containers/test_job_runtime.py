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
        agent.handle(RunCommand(taskToken="run", job=launch))
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
    volume = fleet.job_root / "runtime" / "volumes" / "0" / "out.txt"
    assert volume.read_text() == "result\n"
    events = fleet.events()
    (beat,) = [e for e in events if e.kind == "heartbeat"]
    assert beat.jobId == "runtime" and beat.cpuPercent is not None
    assert 0 < beat.memoryBytes < beat.memoryLimitBytes <= 256 * 2**20 * 1.1
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
