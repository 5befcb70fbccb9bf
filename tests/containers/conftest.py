"""Fixtures for tests with real containers: podman + runc + CRIU 4.1.1, images built locally,
agents running in-process against moto."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from agent.agent import Agent, AgentSettings
from agent.podman import Podman, podman_environment
from agent.registry import free_port
from agent.volumes import unmount_volumes
from chalicelib.logs import read_stream
from chalicelib.wire.agent import AttachedVolume, EventEnvelope, JobLaunch
from tests.nfs_server import NfsServer, start_nfs_server

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = "localhost/openfloat/busybox:local"
PYTHON = "localhost/openfloat/python:local"


@pytest.fixture(scope="session")
def local_images() -> None:
    """The test images, built without a registry (instant when they exist)."""
    subprocess.run(["bash", str(ROOT / "agent" / "images.sh")], check=True,
                   env=podman_environment(), capture_output=True)


@dataclass
class RecordingStepFunctions:
    """A Step Functions client (moto's, so botocore checks every call against the API) that
    also records each task-token answer for the test to read."""

    client: Any
    answers: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)

    def send_task_success(self, taskToken: str, output: str) -> None:  # noqa: N803
        self.client.send_task_success(taskToken=taskToken, output=output)
        self.answers.append({"token": taskToken, "output": json.loads(output)})

    def send_task_failure(self, taskToken: str, error: str, cause: str) -> None:  # noqa: N803
        self.client.send_task_failure(taskToken=taskToken, error=error, cause=cause)
        self.answers.append({"token": taskToken, "error": error, "cause": cause})

    def send_task_heartbeat(self, taskToken: str) -> None:  # noqa: N803
        self.heartbeats.append(taskToken)


@dataclass
class Fleet:
    """Agents for pretend instances that share a job root, as hosts of one job would."""

    aws: Any
    bucket: str
    job_root: Path
    tmp: Path
    events_url: str
    sfn: RecordingStepFunctions
    agents: list[Agent] = field(default_factory=list)

    def agent(self, instance_id: str, imds_url: str = "http://127.0.0.1:9",
              wrap: Callable[[Any], Any] = lambda client: client) -> Agent:
        """An agent for a pretend instance; `wrap` may stand between it and its S3 and SQS.
        Each has its own host files (`host_root(instance_id)`), as separate hosts would."""
        sqs = self.aws.client("sqs")
        commands = sqs.create_queue(QueueName=f"commands-{instance_id}")["QueueUrl"]
        agent = Agent(
            settings=AgentSettings(
                instance_id=instance_id, bucket=self.bucket, commands_queue_url=commands,
                events_queue_url=self.events_url, imds_url=imds_url, job_root=self.job_root,
                work_dir=self.tmp / instance_id, command_wait_seconds=1, imds_poll_seconds=0.3,
                heartbeat_seconds=3600, task_heartbeat_seconds=0.1, part_size=8 * 1024 * 1024,
                host_root=self.host_root(instance_id), publish_address="127.0.0.1:",
                block_devices=self.devices(instance_id)),
            s3=wrap(self.aws.client("s3")), sqs=wrap(sqs), sfn=self.sfn,
            secrets=self.aws.client("secretsmanager"), podman=Podman())
        self.agents.append(agent)
        return agent

    def host_root(self, instance_id: str) -> Path:
        return self.tmp / f"{instance_id}-host"

    def devices(self, instance_id: str) -> Path:
        return self.tmp / f"{instance_id}-devices"

    def volume(self, volume_id: str) -> Path:
        """A pretend EBS volume's files (a directory of its own, as the local mode keeps)."""
        path = self.tmp / "volumes" / volume_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def attach(self, instance_id: str, volume_id: str, index: int,
               detach_from: str | None = None) -> AttachedVolume:
        """Attach a pretend EBS volume to the instance as the control plane and the local
        instance manager would (after detaching it from `detach_from`)."""
        if detach_from is not None:
            (self.devices(detach_from) / volume_id).unlink()
        devices = self.devices(instance_id)
        devices.mkdir(parents=True, exist_ok=True)
        (devices / volume_id).symlink_to(self.volume(volume_id))
        return AttachedVolume(index=index, volumeId=volume_id, device=f"/dev/sd{chr(103 + index)}")

    def launch(self, job_id: str, image: str, script: str, **extra: Any) -> JobLaunch:
        key = f"jobs/{job_id}/script"
        self.aws.client("s3").put_object(Bucket=self.bucket, Key=key, Body=script.encode())
        return JobLaunch(jobId=job_id, imageUri=image, scriptKey=key, **extra)

    def events(self) -> list[Any]:
        sqs = self.aws.client("sqs")
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.events_url, MaxNumberOfMessages=10)
            messages = batch.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(EventEnvelope.model_validate_json(message["Body"]).event)
                sqs.delete_message(QueueUrl=self.events_url, ReceiptHandle=message["ReceiptHandle"])

    def log(self, job_id: str, stream: str = "stdout") -> str:
        """The stream as `float log cat` would print it ("" before it has any)."""
        text = read_stream(self.aws.client("s3"), self.bucket, job_id, stream)
        return (text or b"").decode()

    def stdout(self, job_id: str) -> str:
        return self.log(job_id)


def _fleet(aws: Any, tmp_path: Path) -> Iterator[Fleet]:
    aws.client("s3").create_bucket(Bucket="openfloat-data")
    events = aws.client("sqs").create_queue(QueueName="agent-events")["QueueUrl"]
    fleet = Fleet(aws, "openfloat-data", tmp_path / "jobs", tmp_path, events,
                  RecordingStepFunctions(aws.client("stepfunctions")))
    yield fleet
    for agent in fleet.agents:
        agent.stop()
        if agent.job is not None:
            unmount_volumes(fleet.job_root / agent.job.launch.jobId)
        # Exited containers too: the instance that would have taken them with it is pretend.
        for name in agent.podman.containers_named(f"-{agent.settings.instance_id}"):
            agent.podman.remove(name)


@pytest.fixture
def fleet(aws, tmp_path, local_images) -> Iterator[Fleet]:
    """Agents against moto in this process."""
    yield from _fleet(aws, tmp_path)


def _served_fleet(monkeypatch: Any, tmp_path: Path, host: str) -> Iterator[Fleet]:
    port = free_port()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    for name, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "local",
                        "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    try:
        yield from _fleet(boto3.Session(region_name="us-east-1"), tmp_path)
    finally:
        server.stop()


@pytest.fixture
def served_fleet(monkeypatch, tmp_path, local_images) -> Iterator[Fleet]:
    """Agents against moto in server mode, which helpers such as s3fs can reach too."""
    yield from _served_fleet(monkeypatch, tmp_path, "127.0.0.1")


@pytest.fixture(scope="session")
def job_network(local_images) -> str:
    """The jobs' podman network made ready on this host, as an agent makes it; its gateway
    address (this host's end of the bridge) is returned. The bridge comes up with the first
    container that joins it, so one short-lived container does."""
    podman = Podman()
    podman.ensure_network()
    subprocess.run(["podman", "run", "--rm", f"--network={podman.network}", BUSYBOX, "true"],
                   check=True, env=podman.env, capture_output=True)
    inspected = subprocess.run(["podman", "network", "inspect", podman.network], check=True,
                               env=podman.env, capture_output=True, text=True)
    return str(json.loads(inspected.stdout)[0]["subnets"][0]["gateway"])


@pytest.fixture
def network_fleet(monkeypatch, tmp_path, job_network) -> Iterator[Fleet]:
    """Agents against moto in server mode on the jobs' network gateway, where job containers
    reach it (as they reach S3 on AWS) and the host does too."""
    yield from _served_fleet(monkeypatch, tmp_path, job_network)


@pytest.fixture
def nfs_server(tmp_path) -> Iterator[NfsServer]:
    """A real NFS server (NFS-Ganesha) exporting a fresh directory at `server.url`."""
    server = start_nfs_server(tmp_path / "nfs-server")
    try:
        yield server
    finally:
        server.stop()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
