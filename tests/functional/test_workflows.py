"""The finish and cancel workflows: the real ASL in moto's Step Functions interpreter, task
functions dispatched to app.py's handlers, and a simulated agent answering task tokens."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from moto import mock_aws

from app import app
from chalicelib import runtime as runtime_module
from chalicelib import workflows
from chalicelib.config import Config
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.tasks import TASK_ERRORS
from chalicelib.wire.agent import CommandEnvelope
from chalicelib.wire.status import JobStatus
from localmode.lambdas import deploy_workflows, local_lambdas
from localmode.provision import provision
from tests.functional.jobs_helpers import entry, seed_job

ROLE = "arn:aws:iam::123456789012:role/openfloat-workflows"


@pytest.fixture
def flows(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        session = boto3.Session(region_name="us-east-1")
        runtime = Runtime.from_config(Config.from_env(provision(session, "flows")), session)
        runtime_module.install(runtime)
        names = {placeholder: name for placeholder, name in workflows.TASK_FUNCTIONS.items()}
        with local_lambdas(app):
            arns = deploy_workflows(
                session.client("stepfunctions"),
                {w: workflows.definition(w, names) for w in workflows.WORKFLOWS}, ROLE, "of-")
            yield Flows(session, runtime, Store(runtime.dynamodb, runtime.config), arns)
        runtime_module.install(None)


class Flows:
    def __init__(self, session, runtime, store, arns):
        self.session, self.runtime, self.store, self.arns = session, runtime, store, arns
        self.sfn = session.client("stepfunctions")

    def instance(self, job_id: str, spot: bool = True) -> tuple[str, str]:
        """A running instance for the job, with its command queue, recorded on the job."""
        extra = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
        instance = self.runtime.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="c5.large", **extra,
        )["Instances"][0]["InstanceId"]
        queue = self.runtime.sqs.create_queue(QueueName=f"cmd-{instance}")["QueueUrl"]
        return instance, queue

    def run(self, workflow: str, name: str, payload: dict, timeout: float = 30) -> dict:
        arn = self.sfn.start_execution(stateMachineArn=self.arns[workflow], name=name,
                                       input=json.dumps(payload))["executionArn"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.1)
        raise AssertionError(f"{workflow} still running after {timeout}s")

    def state(self, instance_id: str) -> str:
        found = self.runtime.ec2.describe_instances(InstanceIds=[instance_id])
        return found["Reservations"][0]["Instances"][0]["State"]["Name"]


def _seed_running(flows: Flows, job_id: str, status=JobStatus.EXECUTING, spot=True):
    instance, queue = flows.instance(job_id, spot)
    seed_job(flows.runtime, flows.store, job_id, status, instance=instance)
    # Record the queue as the launch workflow does: a field of the job item.
    flows.runtime.dynamodb.update_item(
        TableName=flows.runtime.config.jobs_table, Key={"id": {"S": job_id}},
        UpdateExpression="SET commandsQueueUrl = :q", ExpressionAttributeValues={":q": {"S": queue}})
    return instance, queue


def test_every_error_name_and_task_in_the_workflows_resolves():
    chalice_functions = {f.name for f in app.pure_lambda_functions}
    for workflow in workflows.WORKFLOWS:
        for name in workflows.error_names(workflow):
            if not name.startswith("States."):
                assert name in TASK_ERRORS, f"{workflow}: ErrorEquals {name} is raised by no task"
                assert TASK_ERRORS[name].__name__ == name
        for placeholder in workflows.placeholders(workflow):
            assert placeholder in workflows.TASK_FUNCTIONS, f"{workflow}: unknown {placeholder}"
            assert workflows.TASK_FUNCTIONS[placeholder] in chalice_functions
    assert set(workflows.TASK_FUNCTIONS.values()) <= chalice_functions


@pytest.mark.parametrize("code, status", [(0, "Completed"), (3, "FailToComplete")])
def test_finish_records_the_exit_releases_the_instance_and_records_usage(flows, code, status):
    instance, _ = _seed_running(flows, "done")
    result = flows.run("finish", "done-finish", {"jobId": "done", "instanceId": instance,
                                                 "exitCode": code})
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("done")
    assert (job.status.value, job.rc) == (status, code)
    assert job.history[-1].reason == f"the job exited with code {code}"
    assert flows.state(instance) == "terminated"
    (usage,) = flows.store.usage_of("done")
    assert (usage.instanceId, usage.market, usage.vcpus) == (instance, "spot", 2)


def test_finish_leaves_a_job_cancelled_meanwhile_cancelled_and_still_releases(flows):
    instance, _ = _seed_running(flows, "raced", status=JobStatus.CANCELLED)
    result = flows.run("finish", "raced-finish", {"jobId": "raced", "instanceId": instance,
                                                  "exitCode": 0})
    assert result["status"] == "SUCCEEDED"
    assert flows.store.get_job("raced").status == JobStatus.CANCELLED
    assert flows.state(instance) == "terminated"


def _agent(flows: Flows, queue: str, answer: bool, seen: list) -> threading.Thread:
    """A simulated agent: reads one command and answers (or never answers) its token."""
    def serve():
        for _ in range(100):
            messages = flows.runtime.sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)
            for message in messages.get("Messages", []):
                command = CommandEnvelope.model_validate_json(message["Body"]).command
                seen.append(command)
                if answer:
                    flows.sfn.send_task_success(taskToken=command.taskToken,
                                                output=json.dumps({"cancelled": command.jobId}))
                return
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("agent_answers", [True, False], ids=["agent-answers", "agent-gone"])
def test_cancel_stops_the_job_and_releases_its_instance(flows, agent_answers):
    instance, queue = _seed_running(flows, "doomed")
    job = flows.store.get_job("doomed")
    flows.store.transition_job(job, JobStatus.CANCELLING, entry(
        flows.runtime, job.status, JobStatus.CANCELLING, "cancelled by alice"))
    seen: list = []
    _agent(flows, queue, agent_answers, seen)
    result = flows.run("cancel", "doomed-cancel", {"jobId": "doomed",
                                                   "timeouts": {"agentSeconds": 2}})
    assert result["status"] == "SUCCEEDED", result
    assert [c.kind for c in seen] == ["cancel"] and seen[0].jobId == "doomed"
    job = flows.store.get_job("doomed")
    assert job.status == JobStatus.CANCELLED
    assert [h.to for h in job.history[-2:]] == [JobStatus.CANCELLING, JobStatus.CANCELLED]
    assert flows.state(instance) == "terminated"
    assert len(flows.store.usage_of("doomed")) == 1
