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
from tests.functional import iam_calls, workflow_helpers
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
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
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


@dataclass
class Survived:
    job: dict
    reclaimed: str
    moved: dict
    first: list
    second: list
    flows: Flows


def _api_handler(deployed: Deployed) -> Any:
    """The handler API Gateway would invoke: the APIHandler's own."""
    api = deployed.session.client("lambda").get_function_configuration(
        FunctionName=deployed.stack.outputs["APIHandlerName"])
    return handler_named(api["Handler"])


def _through_a_reclaim(deployed: Deployed, admin: Any, name: str) -> Survived:
    """A job submitted through the API, reclaimed once by a Spot warning put into EventBridge,
    then reported exited by its agent: the job as the API shows it at the end."""
    session, stack, runtime = deployed.session, deployed.stack, deployed.runtime
    store = Store(runtime.dynamodb, runtime.config)
    flows = Flows(session, runtime, store, runtime.config.workflow_arns)
    submitted = admin.post("/v1/jobs", {"image": "docker.io/library/busybox:latest",
                                        "jobScript": "#!/bin/sh\necho done\n",
                                        "cpu": "2", "mem": "4", "name": name})
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
    # The agent reports the exit where the stack's settings tell it to.
    exited = JobExited(instanceId=moved["instanceId"], time="2026-12-02T10:00:00Z",
                       jobId=job_id, exitCode=0)
    session.client("sqs").send_message(QueueUrl=stack.outputs["AgentEventsQueue"],
                                       MessageBody=EventEnvelope(event=exited).model_dump_json())
    return Survived(_wait_for(admin, job_id, "Completed"), reclaimed, moved, first, second, flows)


def test_a_job_survives_a_reclaim_and_completes_through_the_deployed_stack(deployed):
    session, stack, runtime = deployed.session, deployed.stack, deployed.runtime
    lambda_client, sfn = session.client("lambda"), session.client("stepfunctions")
    ensure_admin(runtime, Store(runtime.dynamodb, runtime.config), "admin", "admin-password-1")
    with Client(_api_handler(deployed)) as client:
        admin = log_in(client, "admin", "admin-password-1")
        survived = _through_a_reclaim(deployed, admin, "deployed")
    done, reclaimed, moved, flows = (survived.job, survived.reclaimed, survived.moved,
                                     survived.flows)
    assert [c.kind for c in survived.first] == ["run", "checkpoint"]
    assert [c.kind for c in survived.second] == ["restore"]
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


def _role_of_profile(iam: Any) -> Any:
    def role_of(profile: str) -> str:
        (role,) = iam.get_instance_profile(
            InstanceProfileName=profile.rsplit("/", 1)[-1])["InstanceProfile"]["Roles"]
        return str(role["Arn"])
    return role_of


def _what_the_api_and_the_reconciler_do(admin: Any) -> None:
    """One of every kind of request a user makes, and a round of the reconciler."""
    for path in ("/v1/jobs", "/v1/jobs?status=Completed", "/v1/whoami", "/v1/license",
                 "/v1/openapi.json", "/v1/images", "/v1/users", "/v1/secrets", "/v1/storage",
                 "/v1/reports/usage"):
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.body)
    steps = [("PUT", "/v1/secrets/policy-check", {"value": "s3cret"}),
             ("GET", "/v1/secrets/policy-check", None),
             ("DELETE", "/v1/secrets/policy-check", None),
             ("POST", "/v1/storage", {"name": "shared", "kind": "nfs", "server": "10.0.0.5",
                                      "path": "/export/shared", "mountPath": "/mnt/shared"}),
             ("DELETE", "/v1/storage/shared", None),
             ("POST", "/v1/images", {"name": "policy-tool", "uri": "localhost:5000/lab/tool:1"}),
             ("DELETE", "/v1/images/policy-tool", None),
             ("POST", "/v1/users", {"username": "carol", "password": "carol-password-1"}),
             ("DELETE", "/v1/users/carol", None)]
    for method, path, body in steps:
        answer = admin.request(method, path, body=body)
        assert answer.status_code in (200, 201), (method, path, answer.body)
    submitted = admin.post("/v1/jobs", {"image": "docker.io/library/busybox:latest",
                                        "jobScript": "#!/bin/sh\nsleep 600\n",
                                        "cpu": "2", "mem": "4", "name": "cancelled"})
    assert submitted.status_code == 201, submitted.body
    job_id = submitted.json_body["id"]
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/logs"):
        assert admin.get(path).status_code == 200, path
    assert admin.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    assert _wait_for(admin, job_id, "Cancelled")["status"] == "Cancelled"
    handler_named("app.reconcile")({"source": "aws.events", "detail-type": "Scheduled Event"},
                                   None)
    assert admin.post("/v1/logout").status_code == 200


def test_every_call_the_stack_functions_make_is_allowed_by_their_role(deployed):
    session, stack = deployed.session, deployed.stack
    iam, lambda_client = session.client("iam"), session.client("lambda")
    roles = {lambda_client.get_function_configuration(FunctionName=name)["Role"]
             for name in stack.of_type("AWS::Lambda::Function").values()}
    # One role for every function: which function made a call does not matter.
    (role,) = roles
    documents = iam_calls.role_documents(iam, role)
    ensure_admin(deployed.runtime, Store(deployed.runtime.dynamodb, deployed.runtime.config),
                 "admin", "admin-password-1")
    ec2 = session.client("ec2")
    with iam_calls.recording(ec2) as calls, Client(_api_handler(deployed)) as client:
        admin = log_in(client, "admin", "admin-password-1")
        survived = _through_a_reclaim(deployed, admin, "policy")
        assert survived.job["status"] == "Completed", survived.job["history"]
        _what_the_api_and_the_reconciler_do(admin)
    made = sorted({f"{c.service}:{c.operation}" for c in calls})
    # The recording saw the control plane at work: it cannot pass by seeing nothing.
    assert {"dynamodb", "ec2", "sqs", "stepfunctions", "s3", "secretsmanager"} <= {
        c.service for c in calls}, made
    requests = [request for _, request in iam_calls.requests_of(calls, _role_of_profile(iam))]
    # A fleet's launch is authorized as the RunInstances it makes and the role it passes.
    assert {"ec2:RunInstances", "iam:PassRole", "ec2:CreateTags"} <= {r.action for r in requests}
    refused = sorted({str(r) for r in requests if not iam_calls.allowed(documents, r)})
    assert not refused, "\n".join(refused)
    # Lambda's event source mappings read the event queues as the functions' role.
    for queue in ("Ec2EventsQueue", "AgentEventsQueue"):
        arn = session.client("sqs").get_queue_attributes(
            QueueUrl=stack.outputs[queue], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert iam_calls.allowed(documents, iam_calls.Request(action, arn)), (action, arn)
    assert iam_calls.wildcards(documents) == []
    # Each task the workflows scheduled is allowed to the role they run as.
    sfn = session.client("stepfunctions")
    workflow_roles = {sfn.describe_state_machine(stateMachineArn=arn)["roleArn"]
                      for arn in stack.of_type("AWS::StepFunctions::StateMachine").values()}
    (workflow_role,) = workflow_roles
    workflow_documents = iam_calls.role_documents(iam, workflow_role)
    scheduled = [event["taskScheduledEventDetails"]
                 for execution in _executions(sfn)
                 for event in sfn.get_execution_history(
                     executionArn=execution["executionArn"], maxResults=1000)["events"]
                 if "taskScheduledEventDetails" in event]
    assert {task["resourceType"] for task in scheduled} >= {"lambda", "sqs", "states"}
    refused = sorted({str(request) for task in scheduled for request in iam_calls.task_requests(
        task["resourceType"], task["resource"], json.loads(task["parameters"]))
        if not iam_calls.allowed(workflow_documents, request)})
    assert not refused, "\n".join(refused)
    assert iam_calls.wildcards(workflow_documents) == []
