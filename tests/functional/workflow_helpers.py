"""Workflows in moto's Step Functions interpreter: the real ASL, task functions dispatched to
app.py's handlers in-process, and helpers to seed jobs with instances and simulate agents."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time

import boto3
import pytest
from moto import mock_aws
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.fleets import FleetsBackend
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.responses.fleets import Fleets

from app import app
from chalicelib import executions, fleet
from chalicelib import runtime as runtime_module
from chalicelib.config import Config
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.agent import CommandEnvelope
from chalicelib.wire.checkpoints import CheckpointManifest, CriuStats
from chalicelib.wire.status import JobStatus
from localmode import pricing, trial
from localmode.ec2fleet import faithful_fleets
from localmode.eventbridge import faithful_eventbridge
from localmode.lambdas import local_lambdas
from localmode.provision import provision
from localmode.stepfunctions import faithful_stepfunctions
from tests.functional.jobs_helpers import seed_job

# What EC2 offers in moto, read once for the whole run: moto takes seconds to list it, and it
# is the same for every test.
_offers: list = []


@pytest.fixture
def flows(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        session = boto3.Session(region_name="us-east-1")
        runtime = Runtime.from_config(Config.from_env(provision(session, "flows")), session)
        runtime_module.install(runtime)
        with local_lambdas(app) as handlers, faithful_stepfunctions(), faithful_eventbridge(), \
                faithful_fleets():
            arns = runtime.config.workflow_arns
            # Short waits for agents, so workflows nobody answers end within the test.
            runtime.config = dataclasses.replace(runtime.config, checkpoint_timeout_seconds=1,
                                                 start_timeout_seconds=1,
                                                 start_heartbeat_seconds=1)
            if not _offers:
                _offers.extend(fleet.offers(runtime))
            runtime.cache[fleet.OFFERS_CACHE] = tuple(_offers)
            flows = Flows(session, runtime, Store(runtime.dynamodb, runtime.config), arns)
            trial.apply_trial(runtime, flows.store)
            pricing.stand_in(runtime)
            # The functions the workflows' Lambda tasks run, by name: a test may wrap them.
            flows.handlers = handlers
            yield flows
        runtime_module.install(None)


class Flows:
    def __init__(self, session, runtime, store, arns):
        self.session, self.runtime, self.store, self.arns = session, runtime, store, arns
        self.sfn = session.client("stepfunctions")

    def instance(self, job_id: str, spot: bool = True) -> tuple[str, str]:
        """A running instance for the job, tagged as launches tag it, with its command queue."""
        extra = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
        instance = self.runtime.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="c5.large", **extra,
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": fleet.JOB_TAG, "Value": job_id}]}],
        )["Instances"][0]["InstanceId"]
        queue = self.runtime.sqs.create_queue(QueueName=f"cmd-{instance}")["QueueUrl"]
        return instance, queue

    def timeouts(self, **seconds: int) -> dict[str, int]:
        """The waits a workflow's input carries, as the API passes them, with some changed.
        A start waits for its first heartbeat as long as for its answer: simulated agents
        answer without heartbeats."""
        waits = {**executions.timeouts(self.runtime.config), **seconds}
        waits.setdefault("startHeartbeatSeconds", waits["startSeconds"])
        if "startSeconds" in seconds:
            waits["startHeartbeatSeconds"] = seconds["startSeconds"]
        return waits

    def run(self, workflow: str, name: str, payload: dict, timeout: float = 30) -> dict:
        """Start the workflow as the control plane does (inside settle) and wait for the end;
        settle's execution, described."""
        assert executions.start(self.runtime, workflow, name, payload), f"{name} exists"
        arn = executions.execution_arn(self.runtime, name)
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


def seed_running(flows: Flows, job_id: str, status=JobStatus.EXECUTING, spot=True):
    instance, queue = flows.instance(job_id, spot)
    seed_job(flows.runtime, flows.store, job_id, status, instance=instance)
    # Record the queue as the launch workflow does: a field of the job item.
    flows.runtime.dynamodb.update_item(
        TableName=flows.runtime.config.jobs_table, Key={"id": {"S": job_id}},
        UpdateExpression="SET commandsQueueUrl = :q", ExpressionAttributeValues={":q": {"S": queue}})
    return instance, queue


def simulated_agent(flows: Flows, queue: str | None, answer: bool | str | list, seen: list,
                    job_id: str | None = None) -> threading.Thread:
    """A simulated agent: reads commands from `queue` (or, for a job being launched, from the
    queue the launch records on the job) and answers each token in turn: success for True,
    that named failure for a string, never for False, that output for a dict (a checkpoint's
    manifest, say). A list answers several commands."""
    answers = list(answer) if isinstance(answer, list) else [answer]

    def serve() -> None:
        url = queue
        for _ in range(300):
            if not answers:
                return
            if url is None:
                try:
                    job = flows.store.get_job(job_id or "")
                except Exception:  # noqa: BLE001 - the test, and its stand-in AWS, ended first
                    return
                url = job.commandsQueueUrl if job else None
                if url is None:
                    time.sleep(0.1)
                    continue
            try:
                messages = flows.runtime.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
            except Exception:  # noqa: BLE001 - the queue went with its instance
                return
            for message in messages.get("Messages", []):
                command = CommandEnvelope.model_validate_json(message["Body"]).command
                flows.runtime.sqs.delete_message(QueueUrl=url,
                                                 ReceiptHandle=message["ReceiptHandle"])
                seen.append(command)
                _answer(flows, command.taskToken, answers.pop(0), command.kind)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def _answer(flows: Flows, token: str, reply: bool | str | dict, kind: str) -> None:
    if reply is True or isinstance(reply, dict):
        output = reply if isinstance(reply, dict) else {"ok": kind}
        flows.sfn.send_task_success(taskToken=token, output=json.dumps(output))
    elif reply:
        flows.sfn.send_task_failure(taskToken=token, error=reply, cause=f"simulated {reply}")


@pytest.fixture
def no_capacity(monkeypatch):
    """EC2 refuses launches matching the (market, type) pairs added to the returned set;
    ("spot", "*") refuses every Spot launch. An instant fleet answers as EC2 does: it launches
    one of the types it still has and lists each refused (type, subnet) in its Errors; a
    RunInstances call fails."""
    refused: set[tuple[str, str]] = set()

    def refuses(market: str, kind: str) -> bool:
        return (market, kind) in refused or (market, "*") in refused

    original = InstanceBackend.run_instances

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        spot = kwargs.get("instance_market_options") or kwargs.get("lifecycle") == "spot"
        kind = kwargs.get("instance_type", "m1.small")
        if refuses("spot" if spot else "on-demand", kind):
            raise EC2ClientError("InsufficientInstanceCapacity",
                                 f"We currently do not have sufficient {kind} capacity.")
        return original(self, image_id, count, user_data, security_group_names, **kwargs)

    original_fleet = FleetsBackend.create_fleet

    def create_fleet(self, **request):
        target = request["target_capacity_specification"]
        configs = request["launch_template_configs"]
        market = target.get("DefaultTargetCapacityType", "on-demand")
        kept, errors = [], []
        for config in configs:
            overrides = []
            for override in config.get("Overrides") or []:
                if refuses(market, override.get("InstanceType", "")):
                    errors.append({
                        "LaunchTemplateAndOverrides": {
                            "LaunchTemplateSpecification": config["LaunchTemplateSpecification"],
                            "Overrides": override},
                        "Lifecycle": market, "ErrorCode": "InsufficientInstanceCapacity",
                        "ErrorMessage": "We currently do not have sufficient "
                                        f"{override['InstanceType']} capacity in the zone."})
                else:
                    overrides.append(override)
            if overrides:
                kept.append({**config, "Overrides": overrides})
        if not kept:  # nothing left to launch: a fleet of no instances
            kept, target = configs, {**target, "TotalTargetCapacity": 0}
        fleet = original_fleet(self, **{**request, "target_capacity_specification": target,
                                        "launch_template_configs": kept})
        fleet.refusals = errors
        return fleet

    original_answer = Fleets.create_fleet

    def answer(self):
        result = original_answer(self)
        fleet = self.ec2_backend.get_fleet(result.result["FleetId"])
        if getattr(fleet, "refusals", None):
            result.result["Errors"] = fleet.refusals
        return result

    monkeypatch.setattr(InstanceBackend, "run_instances", run_instances)
    monkeypatch.setattr(FleetsBackend, "create_fleet", create_fleet)
    monkeypatch.setattr(Fleets, "create_fleet", answer)
    return refused


def running_instances(flows):
    """The instances still pending or running: after a workflow ends, only its job's own."""
    found = flows.runtime.ec2.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def manifest(job_id: str, seq: int, instance: str = "i-old", size: int = 64 * 2**20) -> dict:
    """A committed checkpoint's manifest, as an agent answers a checkpoint or a restore."""
    return CheckpointManifest(
        jobId=job_id, seq=seq, instanceId=instance, instanceType="c5.large", image="busybox",
        createTime="2026-11-25T10:00:30Z", reason="spot reclaim", archiveSize=size,
        archiveSha256="0" * 64, parts=[], stats=CriuStats(frozenTimeUs=250_000),
        checkpointSeconds=0.9, uploadSeconds=1.5).model_dump(mode="json")


def restored(job_id: str, seq: int, size: int = 64 * 2**20) -> dict:
    """An agent's answer to a restore: the checkpoint it restored and what that took."""
    return {"manifest": manifest(job_id, seq, size=size), "downloadSeconds": 0.5,
            "restoreSeconds": 0.7}


_message_ids = itertools.count(1)


def ec2_event(detail_type: str, instance: str, event_id: str | None = None, **detail) -> str:
    """An EC2 event as EventBridge puts it on the events queue; copies of one event share
    its id."""
    return json.dumps({"version": "0", "id": event_id or f"evt-{time.monotonic_ns()}",
                       "detail-type": detail_type, "source": "aws.ec2",
                       "account": "123456789012", "time": "2026-11-25T10:00:00Z",
                       "region": "us-east-1",
                       "resources": [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance}"],
                       "detail": {"instance-id": instance, **detail}})


def sqs_batch(*bodies: str) -> dict:
    """An SQS batch as Lambda's event source mapping delivers it."""
    return {"Records": [{"messageId": f"msg-{next(_message_ids)}", "receiptHandle": "handle",
                         "body": body, "attributes": {}, "messageAttributes": {},
                         "eventSource": "aws:sqs"} for body in bodies]}


def move_ready(flows, job_id, old_answer, *replacement_answers):
    """A running job whose agent answers `old_answer`; each replacement instance launched for
    it gets an agent answering the next of `replacement_answers`. Returns the old instance,
    what the old agent was sent, and what each replacement's agent was sent."""
    old, queue = seed_running(flows, job_id)
    old_seen: list = []
    new_seen: list[list] = []
    simulated_agent(flows, queue, old_answer, old_seen)

    def replacements():
        # A replacement's queue is the one its launch records on the job.
        known = {queue}
        pending = list(replacement_answers)
        for _ in range(1200):
            if not pending:
                return
            try:
                job = flows.store.get_job(job_id)
            except Exception:  # noqa: BLE001 - the test, and its stand-in AWS, ended first
                return
            if job.commandsQueueUrl and job.commandsQueueUrl not in known:
                known.add(job.commandsQueueUrl)
                seen: list = []
                new_seen.append(seen)
                simulated_agent(flows, job.commandsQueueUrl, pending.pop(0), seen)
            time.sleep(0.05)

    threading.Thread(target=replacements, daemon=True).start()
    return old, old_seen, new_seen
