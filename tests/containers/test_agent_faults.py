"""An agent whose S3 and SQS calls fail under it answers with a named failure, is heard again
once they work, and serves on until it is told to terminate."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

from botocore.exceptions import EndpointConnectionError

from agent.agent import logger
from chalicelib.wire.agent import CommandEnvelope, RunCommand, TerminateCommand
from tests.containers.conftest import BUSYBOX, wait_for


class Breakable:
    """A boto3 client whose named operations can be made to fail as an unreachable endpoint."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.broken: set[str] = set()
        self.refused: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name == "exceptions":
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if name in self.broken:
                self.refused[name] += 1
                raise EndpointConnectionError(endpoint_url=f"https://{name}.invalid")
            return attribute(*args, **kwargs)
        return call


def test_s3_and_sqs_failing_mid_command_are_answered_and_the_agent_serves_on(fleet, caplog):
    clients: list[Breakable] = []

    def wrap(client: Any) -> Breakable:
        clients.append(Breakable(client))
        return clients[-1]

    agent = fleet.agent("i-faulty", wrap=wrap)
    s3, sqs = clients
    serving = threading.Thread(target=agent.serve, name="agent", daemon=True)
    commands = fleet.aws.client("sqs")

    def send(command: Any) -> None:
        commands.send_message(QueueUrl=agent.settings.commands_queue_url,
                              MessageBody=CommandEnvelope(command=command).model_dump_json())

    def answer(token: str) -> dict[str, Any] | None:
        return next((a for a in fleet.sfn.answers if a["token"] == token), None)

    serving.start()
    wait_for(lambda: any(e.kind == "registered" for e in fleet.events()), 30, "the agent to register")

    # The job's script cannot be read and no event can be sent: the run is answered all the same.
    s3.broken = {"get_object"}
    sqs.broken = {"send_message"}
    send(RunCommand(taskToken="run-unreadable", job=fleet.launch("unreadable", BUSYBOX, "echo no\n")))
    refused = wait_for(lambda: answer("run-unreadable"), 60, "the failed run to be answered")
    assert refused["error"] == "AgentError"
    assert "run of job unreadable on i-faulty" in refused["cause"]
    assert "get_object" in refused["cause"]
    assert agent.job is None

    # S3 works again, SQS still refuses: the next command runs, and the job's exit is reported
    # once the queue takes reports again.
    s3.broken = set()
    send(RunCommand(taskToken="run-ok", job=fleet.launch("steady", BUSYBOX, "echo steady\n")))
    started = wait_for(lambda: answer("run-ok"), 60, "the second run to be answered")
    assert "error" not in started, started
    wait_for(lambda: agent.podman.state(agent.container("steady")).running is False, 30,
             "the job to exit")
    wait_for(lambda: sqs.refused["send_message"] >= 3, 30, "reports to be refused meanwhile")
    sqs.broken = set()
    exits = wait_for(lambda: [e for e in fleet.events() if e.kind == "job-exited"], 30,
                     "the exit to be reported")
    assert [(e.jobId, e.exitCode) for e in exits] == [("steady", 0)]
    assert fleet.stdout("steady") == "steady\n"

    # Its own queue refuses for a while: the agent waits it out and still hears the terminate.
    sqs.broken = {"receive_message"}
    wait_for(lambda: sqs.refused["receive_message"] >= 2, 30, "receives to be refused")
    sqs.broken = set()
    assert serving.is_alive()
    send(TerminateCommand())
    serving.join(timeout=30)
    assert not serving.is_alive()

    (record,) = [r for r in caplog.records if r.getMessage() == "command failed unexpectedly"]
    line = json.loads(logger.registered_formatter.format(record))
    assert line["job_id"] == "unreadable" and line["instance_id"] == "i-faulty"
    assert "EndpointConnectionError" in line["exception"]
