"""The agent acts on a Spot reclaim notice from its instance metadata by itself."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from agent.capsule import CapsuleStore
from chalicelib.wire.agent import CheckpointCommand, RunCommand
from chalicelib.wire.failures import CheckpointUploadFailed
from localmode.imds import LocalImds
from tests.containers.conftest import BUSYBOX, wait_for
from tests.containers.test_checkpoint_restore import COUNTER
from tests.functional.test_capsule import RecordingS3


@pytest.fixture
def imds():
    server = LocalImds("i-reclaimed").start()
    yield server
    server.stop()


def test_a_reclaim_notice_makes_the_agent_checkpoint_without_any_command(fleet, imds):
    agent = fleet.agent("i-reclaimed", imds_url=imds.url)
    serving = threading.Thread(target=agent.serve, daemon=True)
    serving.start()
    launch = fleet.launch("reclaimed", BUSYBOX, COUNTER)
    agent.handle(RunCommand(job=launch))
    wait_for(lambda: len(fleet.stdout("reclaimed").splitlines()) >= 5, 30, "the job to count")
    before = [e.kind for e in fleet.events()]
    assert before[0] == "registered" and "checkpoint-committed" not in before

    imds.mark_reclaim(datetime.now(UTC) + timedelta(minutes=2))
    seen = []

    def committed():
        seen.extend(fleet.events())
        return [e for e in seen if e.kind == "checkpoint-committed"]

    (event,) = wait_for(committed, 30, "the agent to commit a checkpoint")
    notice = [e for e in seen if e.kind == "reclaim-noticed"]
    assert notice and notice[0].jobId == "reclaimed" and notice[0].action == "terminate"
    assert event.manifest.reason.startswith("spot terminate notice")
    assert CapsuleStore(fleet.aws.client("s3"), fleet.bucket).latest("reclaimed") == event.manifest
    assert agent.job is None and fleet.sfn.answers == []  # nobody asked; nobody was answered
    # The control plane's own checkpoint command for the same reclaim gets the same checkpoint.
    agent.handle(CheckpointCommand(taskToken="late", jobId="reclaimed", reason="reclaim"))
    assert fleet.sfn.answers[-1]["output"]["seq"] == event.manifest.seq
    agent.stop()
    serving.join(timeout=10)

    survivor = fleet.agent("i-replacement")
    survivor.restore(launch)
    wait_for(lambda: survivor.watch_job() or survivor.job is None, 60, "the job to finish")
    assert fleet.stdout("reclaimed").splitlines()[-1] == "done 40"


def test_a_failed_upload_leaves_the_previous_checkpoint_to_restore_from(fleet):
    first = fleet.agent("i-flaky")
    launch = fleet.launch("flaky", BUSYBOX, COUNTER)
    first.run(launch)
    wait_for(lambda: first.watch_job() or len(fleet.stdout("flaky").splitlines()) >= 5, 30,
             "the job to count")
    safe = first.checkpoint("flaky", "safety copy", leave_running=True)
    wait_for(lambda: first.watch_job() or len(fleet.stdout("flaky").splitlines()) >= 15, 30,
             "the job to count further")
    first.capsules = CapsuleStore(RecordingS3(fleet.aws.client("s3"), allowed=0), fleet.bucket)
    with pytest.raises(CheckpointUploadFailed):
        first.checkpoint("flaky", "reclaim")
    first.podman.remove(first.container("flaky"))  # the instance is gone

    second = fleet.agent("i-steady")
    restored = second.restore(launch)
    assert restored.manifest.seq == safe.seq and restored.downloadSeconds >= 0
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to finish")
    lines = fleet.stdout("flaky").splitlines()
    assert lines[-1] == "done 40"
    # It went on from the safety copy, whose log is the job's history up to that moment. With
    # --leave-running, output still in the pipe at the freeze can be logged on both sides of it.
    numbers = [int(line) for line in lines[:-1]]
    assert numbers == sorted(numbers) and set(numbers) == set(range(1, 41))
    assert len(numbers) <= 41
