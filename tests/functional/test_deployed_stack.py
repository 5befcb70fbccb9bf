"""The deployable template, deployed: the output of `make package` transformed by AWS's SAM
translator and created in moto's CloudFormation, then a job driven through what that stack
created and nothing else. The control plane's settings are the Environment of the stack's
functions as CloudFormation resolved it; the workflows that run are the stack's state machines
(their DefinitionSubstitutions applied); each Lambda task runs the Handler its deployed function
names; the agent-events queue is fed to the handler its event source mapping names.

A Spot warning goes into EventBridge, and the stack's rule and queue bring it to the handler
that moves the job. The agents' part is played by simulated agents (tests/functional/
workflow_helpers): they answer the run, checkpoint and restore commands' task tokens, and the
job's exit is reported on the stack's agent-events queue, as an agent reports it. No real agent
or container runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import fleet
from chalicelib import runtime as runtime_module
from chalicelib.config import Config
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.users import ensure_admin
from chalicelib.wire.agent import EventEnvelope, JobExited
from localmode import pricing, trial
from localmode.eventbridge import faithful_eventbridge
from localmode.lambdas import deployed_lambdas, handler_named
from localmode.provision import LOCAL_WORKER_IMAGE
from localmode.stack import FRONT_DOOR, DeployedStack, deploy, event_sources, schedules
from localmode.stepfunctions import faithful_stepfunctions
from tests.conftest import log_in
from tests.functional import workflow_helpers
from tests.functional.workflow_helpers import Flows, manifest, restored, simulated_agent

STACK = "openfloat-deployed"


@dataclass
class Deployed:
    session: boto3.Session
    stack: DeployedStack
    runtime: Runtime
    settings: dict[str, str]


@pytest.fixture(scope="module")
def deployed(packaged) -> Iterator[Deployed]:
    """One stack for the module: the first test only reads it."""
    with pytest.MonkeyPatch.context() as monkeypatch, \
            mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        session = boto3.Session(region_name="us-east-1")
        stack = deploy(session, STACK, {"WorkerImageId": LOCAL_WORKER_IMAGE,
                                        "LicenseIssuerKey": trial.public_key()}, packaged)
        settings = stack.settings(session.client("lambda"))
        runtime = Runtime.from_config(Config.from_env(settings), session)
        runtime_module.install(runtime)
        if not workflow_helpers._offers:
            workflow_helpers._offers.extend(fleet.offers(runtime))
        runtime.cache[fleet.OFFERS_CACHE] = tuple(workflow_helpers._offers)
        # As the local mode does once the stack is up: a trial license, local prices.
        trial.apply_trial(runtime, Store(runtime.dynamodb, runtime.config))
        pricing.stand_in(runtime)
        with deployed_lambdas(), faithful_stepfunctions(), faithful_eventbridge():
            feeders = [feeder.start() for feeder in event_sources(session, stack)]
            try:
                yield Deployed(session, stack, runtime, settings)
            finally:
                for feeder in feeders:
                    feeder.stop()
        runtime_module.install(None)


def _wait_for(caller: Any, job_id: str, status: str, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = caller.get(f"/v1/jobs/{job_id}").json_body
        if job["status"] == status or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def _executions(sfn: Any) -> list[dict]:
    return [execution for machine in sfn.list_state_machines()["stateMachines"]
            for execution in sfn.list_executions(
                stateMachineArn=machine["stateMachineArn"])["executions"]]


def _invoked_functions(sfn: Any, executions: list[dict]) -> set[str]:
    """The FunctionName of every Lambda task the executions scheduled."""
    names = set()
    for execution in executions:
        history = sfn.get_execution_history(executionArn=execution["executionArn"],
                                            maxResults=1000)["events"]
        for event in history:
            details = event.get("taskScheduledEventDetails", {})
            if details.get("resourceType") == "lambda":
                names.add(json.loads(details["parameters"])["FunctionName"])
    return names


def test_every_resource_of_the_packaged_template_is_created_but_api_gateways(deployed):
    # deploy() fails naming any resource moto's CloudFormation skipped; what the local stack
    # leaves out on purpose is API Gateway's part and what refers only to it.
    kinds = {kind for kind, _ in deployed.stack.resources.values()}
    assert not kinds & FRONT_DOOR
    assert "AWS::Lambda::Function" in kinds and "AWS::StepFunctions::StateMachine" in kinds
    assert deployed.stack.left_out and all(
        name.startswith(("RestAPI", "APIHandlerInvoke")) for name in deployed.stack.left_out)
    # The settings are what CloudFormation resolved, and the stack's outputs say the same.
    outputs = deployed.stack.outputs
    assert deployed.settings["JOBS_TABLE"] == outputs["JobsTable"]
    assert deployed.settings["AGENT_EVENTS_QUEUE"] == outputs["AgentEventsQueue"]
    machines = set(deployed.stack.of_type("AWS::StepFunctions::StateMachine").values())
    assert set(json.loads(deployed.settings["WORKFLOW_ARNS"]).values()) == machines
    # EventBridge may deliver to the EC2 events queue: its policy is the stack's.
    sqs = deployed.session.client("sqs")
    policy = json.loads(sqs.get_queue_attributes(
        QueueUrl=outputs["Ec2EventsQueue"], AttributeNames=["Policy"])["Attributes"]["Policy"])
    (statement,) = policy["Statement"]
    rule = deployed.session.client("events").describe_rule(
        Name=deployed.stack.resources["SpotSignalsRule"][1])
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == rule["Arn"]
    # The reconciler's schedule runs the reconcile handler every minute.
    ((handler, _, seconds),) = schedules(deployed.session, deployed.stack)
    assert seconds == 60 and handler is handler_named("app.reconcile")


def _replacement_agent(flows: Flows, job_id: str, old_queue: str, answer: Any,
                       seen: list) -> threading.Thread:
    """A simulated agent for the job's next instance: it serves the queue its launch records."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            queue = flows.store.get_job(job_id).commandsQueueUrl
            if queue and queue != old_queue:
                simulated_agent(flows, queue, answer, seen).join()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_job_survives_a_reclaim_and_completes_through_the_deployed_stack(deployed):
    session, stack, runtime = deployed.session, deployed.stack, deployed.runtime
    lambda_client, sfn = session.client("lambda"), session.client("stepfunctions")
    # The API is served by the handler API Gateway would invoke: the APIHandler's own.
    api = lambda_client.get_function_configuration(FunctionName=stack.outputs["APIHandlerName"])
    store = Store(runtime.dynamodb, runtime.config)
    ensure_admin(runtime, store, "admin", "admin-password-1")
    flows = Flows(session, runtime, store, runtime.config.workflow_arns)
    with Client(handler_named(api["Handler"])) as client:
        admin = log_in(client, "admin", "admin-password-1")
        submitted = admin.post("/v1/jobs", {"image": "docker.io/library/busybox:latest",
                                            "jobScript": "#!/bin/sh\necho done\n",
                                            "cpu": "2", "mem": "4", "name": "deployed"})
        assert submitted.status_code == 201, submitted.body
        job_id = submitted.json_body["id"]
        first: list = []
        simulated_agent(flows, None, [True, manifest(job_id, 1)], first, job_id=job_id)
        executing = _wait_for(admin, job_id, "Executing")
        assert executing["status"] == "Executing", executing["history"]
        reclaimed, old_queue = executing["instanceId"], store.get_job(job_id).commandsQueueUrl
        second: list = []
        _replacement_agent(flows, job_id, old_queue, restored(job_id, 1), second)
        # EC2's Spot warning goes to EventBridge; the stack's rule and queue take it to the
        # handler its event source mapping names, which starts the move.
        session.client("events").put_events(Entries=[{
            "Source": "aws.ec2", "DetailType": "EC2 Spot Instance Interruption Warning",
            "Resources": [f"arn:aws:ec2:us-east-1:123456789012:instance/{reclaimed}"],
            "Detail": json.dumps({"instance-id": reclaimed, "instance-action": "terminate"})}])
        deadline = time.monotonic() + 30
        moved = executing
        while moved["instanceId"] == reclaimed or moved["status"] != "Executing":
            assert time.monotonic() < deadline, moved["history"]
            time.sleep(0.1)
            moved = admin.get(f"/v1/jobs/{job_id}").json_body
        assert [c.kind for c in first] == ["run", "checkpoint"]
        assert [c.kind for c in second] == ["restore"]
        # The agent reports the exit where the stack's settings tell it to.
        exited = JobExited(instanceId=moved["instanceId"], time="2026-12-02T10:00:00Z",
                           jobId=job_id, exitCode=0)
        session.client("sqs").send_message(QueueUrl=stack.outputs["AgentEventsQueue"],
                                           MessageBody=EventEnvelope(event=exited).model_dump_json())
        done = _wait_for(admin, job_id, "Completed")
    assert (done["status"], done["rc"]) == ("Completed", 0), done["history"]
    (move,) = done["migrations"]
    assert (move["fromInstance"], move["toInstance"]) == (reclaimed, moved["instanceId"])
    described = runtime.ec2.describe_instances(InstanceIds=[reclaimed, moved["instanceId"]])
    instances = [i for r in described["Reservations"] for i in r["Instances"]]
    assert {i["ImageId"] for i in instances} == {stack.outputs["WorkerImageId"]}
    # Every execution ran in a state machine the stack created, and every Lambda task it
    # scheduled is a function of the stack.
    executions = _executions(sfn)
    machines = set(stack.of_type("AWS::StepFunctions::StateMachine").values())
    assert {e["stateMachineArn"] for e in executions} <= machines
    ran = {e["stateMachineArn"].rsplit(":", 1)[1].removeprefix(f"{STACK}-") for e in executions}
    assert {"settle", "launch", "place", "migrate", "restore", "finish"} <= ran
    functions = {lambda_client.get_function_configuration(FunctionName=name)["FunctionArn"]
                 for name in stack.of_type("AWS::Lambda::Function").values()}
    invoked = _invoked_functions(sfn, executions)
    assert invoked and invoked <= functions
    # Both instances are released once the job has ended.
    deadline = time.monotonic() + 10
    while {flows.state(i["InstanceId"]) for i in instances} != {"terminated"}:
        assert time.monotonic() < deadline, [flows.state(i["InstanceId"]) for i in instances]
        time.sleep(0.1)
