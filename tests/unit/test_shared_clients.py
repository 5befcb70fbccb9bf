"""Clients shared by threads (the local API workers serve each connection on its own thread;
the agent's watch, heartbeat and upload threads share its clients): an error one thread raises
must be caught by `except` in any other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.errorfactory import ClientExceptionsFactory

from agent.agent import Agent, AgentSettings
from chalicelib.runtime import Runtime


def _session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                         region_name="us-east-1")


def _made_again_by_two_threads(monkeypatch: pytest.MonkeyPatch,
                               clients: Callable[[], list[Any]]) -> list[str]:
    """Two threads look at every client's error classes at once: the services whose classes
    were made then, not before (making them again gives classes an `except` written against
    the first ones does not match); each thread must also see the same classes."""
    made_again: list[str] = []
    make = ClientExceptionsFactory.create_client_exceptions

    def record(factory: Any, service_model: Any) -> Any:
        made_again.append(service_model.service_name)
        return make(factory, service_model)

    monkeypatch.setattr(ClientExceptionsFactory, "create_client_exceptions", record)
    start = threading.Barrier(2, timeout=30)
    seen: list[list[int]] = []

    def look() -> None:
        start.wait()
        seen.append([id(client.exceptions) for client in clients()])

    threads = [threading.Thread(target=look) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen[0] == seen[1]
    return made_again


def test_threads_sharing_a_runtime_see_one_set_of_error_classes(monkeypatch):
    runtime = Runtime.from_config(None, _session())  # type: ignore[arg-type]
    assert _made_again_by_two_threads(monkeypatch, lambda: [
        runtime.dynamodb, runtime.s3, runtime.secrets, runtime.ec2, runtime.sqs,
        runtime.stepfunctions, runtime.pricing]) == []


def test_threads_sharing_an_agent_see_one_set_of_error_classes(monkeypatch, tmp_path: Path):
    session = _session()
    agent = Agent(
        settings=AgentSettings(instance_id="i-0123456789abcdef0", bucket="data",
                               commands_queue_url="http://127.0.0.1:9/commands",
                               events_queue_url="http://127.0.0.1:9/events",
                               imds_url="http://127.0.0.1:9", job_root=tmp_path / "jobs",
                               work_dir=tmp_path / "work"),
        s3=session.client("s3"), sqs=session.client("sqs"),
        sfn=session.client("stepfunctions"), secrets=session.client("secretsmanager"))
    assert _made_again_by_two_threads(monkeypatch, lambda: [
        agent.s3, agent.sqs, agent.sfn, agent.secrets]) == []
