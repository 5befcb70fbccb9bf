"""Periodic checkpoints in the agent, with pretend containers: taken with the job left running
once its interval is up, committed and reported, and given up at once for a checkpoint that
stops the job (a notice, a move)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from agent.capsule import CapsuleStore
from chalicelib.wire.agent import CheckpointCommand, JobLaunch
from chalicelib.wire.checkpoints import CriuStats
from tests.functional.test_agent_logs import PretendPodman
from tests.functional.test_agent_logs import agents as agents  # noqa: F401 - the fixture

LAUNCH = JobLaunch(jobId="job-1", imageUri="localhost/x:1", scriptKey="jobs/job-1/script",
                   checkpointIntervalSeconds=10)
PART = 64 * 1024


class SlowPodman(PretendPodman):
    """A dump of several parts whose writing waits, after the first, until `go` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writing, self.go = threading.Event(), threading.Event()
        self.dumps: list[bool] = []

    def checkpoint(self, name: str, export: Path, leave_running: bool = False,
                   **_: Any) -> CriuStats:
        self.dumps.append(leave_running)
        with export.open("wb") as out:
            out.write(bytes(PART))
            out.flush()
            self.writing.set()
            self.go.wait(30)
            out.write(bytes(3 * PART))
        if not leave_running:
            self.remove(name)
        return CriuStats()


def _events(runtime, agent) -> list[dict]:
    found = []
    while messages := runtime.sqs.receive_message(QueueUrl=agent.settings.events_queue_url,
                                                  MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            found.append(json.loads(message["Body"])["event"])
            runtime.sqs.delete_message(QueueUrl=agent.settings.events_queue_url,
                                       ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_periodic_checkpoint_is_taken_when_due_and_the_job_runs_on(runtime, agents):
    agent, podman = agents("i-1")
    agent.run(LAUNCH)
    assert agent.periodic_checkpoint() is None  # not due for ten seconds
    agent.job.next_checkpoint = time.monotonic()  # the interval is up
    manifest = agent.periodic_checkpoint()
    assert manifest is not None and manifest.reason == "periodic checkpoint (every 10 s)"
    assert agent.job is not None and podman.state(agent.container("job-1")).running
    assert 9 < agent.job.next_checkpoint - time.monotonic() <= 10
    store = CapsuleStore(runtime.s3, agent.settings.bucket)
    assert store.latest("job-1") == manifest
    committed = [e for e in _events(runtime, agent) if e["kind"] == "checkpoint-committed"]
    assert [e["manifest"]["seq"] for e in committed] == [manifest.seq]


def test_a_job_without_an_interval_takes_no_periodic_checkpoint(agents):
    agent, _ = agents("i-1")
    agent.run(LAUNCH.model_copy(update={"checkpointIntervalSeconds": None}))
    assert agent.job.next_checkpoint is None and agent.periodic_checkpoint() is None


def test_a_periodic_checkpoint_gives_way_to_one_that_stops_the_job(runtime, agents, tmp_path):
    agent, _ = agents("i-1")
    podman = SlowPodman(tmp_path / "slow")
    (tmp_path / "slow").mkdir()
    agent.podman = podman
    agent.capsules = CapsuleStore(runtime.s3, agent.settings.bucket, part_size=PART)
    agent.run(LAUNCH)
    agent.job.next_checkpoint = time.monotonic()
    periodic: list = []
    first = threading.Thread(target=lambda: periodic.append(agent.periodic_checkpoint()))
    first.start()
    assert podman.writing.wait(30)
    # The notice's checkpoint: it waits for the agent, and makes the periodic one give way.
    final: list = []
    second = threading.Thread(target=lambda: final.append(agent._checkpoint_command(
        CheckpointCommand(jobId="job-1", reason="spot terminate notice"))))
    second.start()
    deadline = time.monotonic() + 30
    while not agent._abandon.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    podman.writing.clear()
    podman.go.set()
    first.join(30)
    second.join(30)
    assert periodic == [None]  # abandoned, not committed
    [manifest] = final
    assert manifest.reason == "spot terminate notice" and manifest.archiveSize == 4 * PART
    assert podman.dumps == [True, False] and agent.job is None
    assert CapsuleStore(runtime.s3, agent.settings.bucket).latest("job-1") == manifest
