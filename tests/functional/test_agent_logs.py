"""The agent's log shipping across its own run, checkpoint and restore, with pretend containers
whose output the test writes (the real ones are in tests/containers/test_job_logs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.agent import Agent, AgentSettings
from agent.podman import ContainerState
from chalicelib.wire.agent import JobLaunch
from chalicelib.wire.checkpoints import CriuStats
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job

STAMP = "2026-11-25T10:00:00.000000000+00:00"


class PretendPodman:
    """Containers that are only their k8s-file logs; a checkpoint image is the log itself, as
    far as logs go."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._logs: dict[str, Path] = {}
        # What a restored job prints before the agent first looks: it runs on at once.
        self.printed_on_restore: list[str] = []

    def print(self, name: str, *lines: str) -> None:
        with self._logs[name].open("ab") as file:
            for line in lines:
                file.write(f"{STAMP} stdout F {line}\n".encode())

    def ensure_image(self, image: str, credentials: Any = None) -> None:
        pass

    def ensure_network(self, error: type[Exception] = Exception) -> None:
        pass

    def remove(self, name: str) -> None:
        self._logs.pop(name, None)

    def create(self, name: str, image: str, command: list[str], **_: Any) -> None:
        self._logs[name] = self._root / f"{name}.log"
        self._logs[name].write_bytes(b"")

    def copy_in(self, name: str, source: Any, target: str) -> None:
        pass

    def start(self, name: str) -> None:
        pass

    def log_path(self, name: str) -> Path:
        return self._logs[name]

    def state(self, name: str) -> ContainerState | None:
        return ContainerState("running", True, None) if name in self._logs else None

    def checkpoint(self, name: str, export: Path, leave_running: bool = False,
                   **_: Any) -> CriuStats:
        export.write_bytes(self._logs[name].read_bytes())
        if not leave_running:
            self.remove(name)
        return CriuStats()

    def set_limits(self, name: str, cpus: float | None, memory_bytes: int | None) -> None:
        pass

    def restore(self, export: Path, name: str, **_: Any) -> CriuStats:
        self._logs[name] = self._root / f"{name}.restored.log"
        self._logs[name].write_bytes(export.read_bytes())
        self.print(name, *self.printed_on_restore)
        return CriuStats()


@pytest.fixture
def agents(runtime, store, tmp_path):
    seed_job(runtime, store, "job-1", JobStatus.EXECUTING, instance="i-1")
    bucket = runtime.config.data_bucket
    runtime.s3.put_object(Bucket=bucket, Key="jobs/job-1/script", Body=b"echo hi\n")
    events = runtime.sqs.create_queue(QueueName="agent-log-events")["QueueUrl"]

    def agent(instance_id: str) -> tuple[Agent, PretendPodman]:
        podman = PretendPodman(tmp_path / instance_id)
        (tmp_path / instance_id).mkdir()
        settings = AgentSettings(
            instance_id=instance_id, bucket=bucket, commands_queue_url=events,
            events_queue_url=events, imds_url="http://127.0.0.1:9", job_root=tmp_path / "jobs",
            work_dir=tmp_path / instance_id / "work")
        return Agent(settings=settings, s3=runtime.s3, sqs=runtime.sqs,
                     sfn=runtime.stepfunctions, secrets=runtime.secrets, podman=podman), podman

    return agent


LAUNCH = JobLaunch(jobId="job-1", imageUri="localhost/x:1", scriptKey="jobs/job-1/script")


def stdout(caller) -> str:
    response = caller.get("/v1/jobs/job-1/logs/stdout")
    return response.body.decode() if response.status_code == 200 else ""


def test_a_job_moved_by_checkpoint_reads_as_one_log(alice, agents):
    first, first_podman = agents("i-1")
    first.run(LAUNCH)
    name = first.container("job-1")
    first_podman.print(name, "1", "2")
    first.watch_job()
    manifest = first.checkpoint("job-1", "move")
    assert manifest.logSize == len(f"{STAMP} stdout F 1\n") * 2

    second, second_podman = agents("i-2")
    second.restore(LAUNCH)
    second_podman.print(second.container("job-1"), "3")
    second.watch_job()
    assert stdout(alice) == "1\n2\n3\n"


def test_a_restore_from_an_older_checkpoint_forgets_what_was_shipped_after_it(alice, agents):
    first, first_podman = agents("i-1")
    first.run(LAUNCH)
    name = first.container("job-1")
    first_podman.print(name, "1")
    first.checkpoint("job-1", "safety copy", leave_running=True)
    first_podman.print(name, "2", "3")
    first.watch_job()
    assert stdout(alice) == "1\n2\n3\n"

    second, second_podman = agents("i-2")
    second_podman.printed_on_restore = ["2 again", "3 again"]
    second.restore(LAUNCH)
    second_podman.print(second.container("job-1"), "4")
    second.watch_job()
    assert stdout(alice) == "1\n2 again\n3 again\n4\n"


def test_a_rerun_starts_a_new_log_at_once(alice, agents):
    first, first_podman = agents("i-1")
    first.run(LAUNCH)
    first_podman.print(first.container("job-1"), "first try")
    first.watch_job()
    assert stdout(alice) == "first try\n"

    second, second_podman = agents("i-2")
    second.run(LAUNCH)
    assert stdout(alice) == ""
    second_podman.print(second.container("job-1"), "second try")
    second.watch_job()
    assert stdout(alice) == "second try\n"
