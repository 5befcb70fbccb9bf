"""Faults nobody listed: for every Task state of every workflow, read from statemachines/, the
workflow runs with that state's function raising an error no ASL names; for every wait on an
agent, with an agent that never answers that command. Each run must end with the job in a
status that is not transitional, the reason in its history, and no instance running but the
one an Executing job stays on; a failure of settle's own steps (running the workflow, settling
its verdict) must fail the execution as `Unsettled`. A new Task state that no scenario reaches
fails the test too."""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from moto.stepfunctions.exceptions import ValidationException
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from chalicelib import executions, workflows
from chalicelib.reconcile import reconcile
from chalicelib.wire.agent import CommandEnvelope
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus
from tests.functional.jobs_helpers import entry, seed_job
from tests.functional.workflow_helpers import manifest, restored, running_instances, seed_running

SETTLED = TERMINAL_STATUSES | {JobStatus.EXECUTING, JobStatus.SUSPENDED}
LAMBDA = "arn:aws:states:::lambda:invoke"
TOKEN = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
NESTED = "arn:aws:states:::states:startExecution.sync:2"
STARTED_BY = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"
_ids = itertools.count()


class InjectedFault(Exception):
    """An error no workflow names: it can only be caught as States.ALL."""


def task_states(workflow: str) -> list[tuple[str, dict[str, Any]]]:
    document = json.loads(workflows.path_of(workflow).read_text())
    return [(name, state) for name, state in workflows.walk_states(document)
            if state["Type"] == "Task"]


def command_kind(state: dict[str, Any]) -> str:
    return str(state["Parameters"]["MessageBody"]["command"]["kind"])


# ---- scenarios: each starts one workflow on a job seeded as the API would leave it ----------


@dataclass
class Scenario:
    name: str
    workflow: str
    # What agents answer a restore or a start: "ok", or the name of a failure.
    restore: str = "ok"
    run: str = "ok"


SCENARIOS = [
    Scenario("launch", "launch"), Scenario("launch-refused", "launch", run="JobStartFailed"),
    Scenario("reclaim", "migrate"), Scenario("reclaim-no-checkpoint", "migrate", "CheckpointNotFound"),
    Scenario("reclaim-corrupt", "migrate", "CheckpointCorrupt"),
    Scenario("requested-move", "migrate"),
    Scenario("suspend", "suspend"), Scenario("resume", "resume"),
    Scenario("resume-no-checkpoint", "resume", "CheckpointNotFound"),
    Scenario("finish", "finish"), Scenario("cancel", "cancel"),
]


def _start(flows, scenario: Scenario, job_id: str) -> str:
    """Seed the job and start the scenario's workflow as the control plane does; the ARN of
    the settle execution it runs in."""
    waits = flows.timeouts(checkpointSeconds=6, startSeconds=6, agentSeconds=6, heartbeatSeconds=6)
    if scenario.workflow == "launch":
        seed_job(flows.runtime, flows.store, job_id, JobStatus.SUBMITTED)
        name, payload = f"{job_id}-launch", {"jobId": job_id, "launchNumber": 1, "timeouts": waits}
    elif scenario.workflow == "migrate":
        instance, _ = seed_running(flows, job_id)
        name, payload = executions.migrate_start(
            job_id, instance, 1, reason="fault drill", notice_time=flows.runtime.now_iso(),
            reclaim=scenario.name != "requested-move", target=None, timeouts=waits)
    elif scenario.workflow == "resume":
        seed_job(flows.runtime, flows.store, job_id, JobStatus.SUSPENDED)
        name, payload = f"{job_id}-resume", {"jobId": job_id, "reason": "drill", "launchNumber": 2,
                                             "timeouts": waits}
    else:
        instance, _ = seed_running(flows, job_id)
        job = flows.store.get_job(job_id)
        if scenario.workflow == "cancel":
            flows.store.transition_job(job, JobStatus.CANCELLING, entry(
                flows.runtime, job.status, JobStatus.CANCELLING, "cancelled by alice"))
        payload = {"jobId": job_id, "reason": "drill", "launchNumber": 2, "timeouts": waits,
                   **executions.finish_start(job_id, instance, 0)[1]}
        name = f"{job_id}-{scenario.workflow}"
    assert executions.start(flows.runtime, scenario.workflow, name, payload)
    return executions.execution_arn(flows.runtime, name)


@dataclass
class Agents:
    """Every command queue's agent: each command answered by its kind, but the kinds in
    `silent`, which are read and never answered."""

    flows: Any
    job_id: str
    scenario: Scenario
    silent: set[str]
    heard: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Agents:
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def _reply(self, kind: str) -> Any:
        if kind == "checkpoint":
            return manifest(self.job_id, 1)
        if kind == "restore":
            return restored(self.job_id, 1) if self.scenario.restore == "ok" else self.scenario.restore
        if kind == "run":
            return True if self.scenario.run == "ok" else self.scenario.run
        return True

    def _serve(self) -> None:
        sqs, sfn = self.flows.runtime.sqs, self.flows.sfn
        while not self.stop.is_set():
            try:
                urls = sqs.list_queues().get("QueueUrls", [])
            except Exception:  # noqa: BLE001 - a read racing moto's writers: read again
                continue
            for url in urls:
                if "cmd-" not in url:
                    continue
                try:
                    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
                except Exception:  # noqa: BLE001 - the queue went with its instance
                    continue
                for message in messages.get("Messages", []):
                    command = CommandEnvelope.model_validate_json(message["Body"]).command
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    self.heard.append(command.kind)
                    if command.kind in self.silent:
                        continue
                    reply = self._reply(command.kind)
                    try:
                        if isinstance(reply, str):
                            sfn.send_task_failure(taskToken=command.taskToken, error=reply,
                                                  cause=f"drill: {reply}")
                        else:
                            output = reply if isinstance(reply, dict) else {"ok": command.kind}
                            sfn.send_task_success(taskToken=command.taskToken,
                                                  output=json.dumps(output))
                    except Exception:  # noqa: BLE001 - the workflow gave up on the task first
                        continue
            time.sleep(0.05)


@dataclass
class Fault:
    """Make one state fail whenever that state of that workflow runs: its function raises
    InjectedFault (the workflows pass their state and execution to every task), or, for a
    nested execution, starting the child is refused."""

    workflow: str
    state: str
    hits: int = 0


def _stack(flows) -> str:
    """The prefix of every state machine's name."""
    return flows.runtime.config.workflow_arns["launch"].rsplit(":", 1)[1].removesuffix("-launch")


def _child_name(workflow: str, state: str, parent: str) -> str | None:
    """For a nested execution, the name its ASL gives the child of the execution `parent`."""
    found = dict(task_states(workflow))[state]
    if found["Resource"] != NESTED:
        return None
    name = str(found["Parameters"]["Name.$"])
    if name == "$$.Execution.Name":
        return parent
    return parent + "-" + name.split("'{}-", 1)[1].split("'", 1)[0]


def _refuse_children(monkeypatch, flows, faults: list[Fault]) -> None:
    """Refuse the start of the child that the faulty state starts, found by its parent."""
    original = StepFunctionsParserBackend.start_execution
    stack = _stack(flows)

    def start_execution(self, state_machine_arn, name=None, execution_input=None, **kwargs):
        parent = str(json.loads(execution_input or "{}").get(STARTED_BY, ""))
        for fault in faults:
            if f":execution:{stack}-{fault.workflow}:" in parent and \
                    name == _child_name(fault.workflow, fault.state, parent.rsplit(":", 1)[1]):
                fault.hits += 1
                raise ValidationException(f"drill: {fault.workflow}.{fault.state} refused")
        return original(self, state_machine_arn, name, execution_input, **kwargs)

    monkeypatch.setattr(StepFunctionsParserBackend, "start_execution", start_execution)


def _inject(flows, faults: list[Fault]) -> None:
    originals = dict(flows.handlers)
    stack = _stack(flows)

    def wrap(name: str):
        def handler(event: dict, context: object) -> Any:
            execution = str(event.get("execution") or "")
            for fault in faults:
                if event.get("state") == fault.state and \
                        f":execution:{stack}-{fault.workflow}:" in execution:
                    fault.hits += 1
                    raise InjectedFault(f"drill: {fault.workflow}.{fault.state} failed")
            return originals[name](event, context)
        return handler

    for name in originals:
        flows.handlers[name] = wrap(name)


def _entered(flows, workflow: str, job_id: str, state: str) -> bool:
    """Whether an execution of `workflow` for the job entered `state`."""
    arn = flows.arns[workflow]
    for listed in flows.sfn.list_executions(stateMachineArn=arn)["executions"]:
        if not listed["name"].startswith(f"{job_id}-"):
            continue
        events = flows.sfn.get_execution_history(executionArn=listed["executionArn"],
                                                 maxResults=1000)["events"]
        if any((e.get("stateEnteredEventDetails") or {}).get("name") == state for e in events):
            return True
    return False


def _run(flows, scenario: Scenario, silent: set[str] = frozenset()) -> tuple[str, dict]:
    job_id = f"fault{next(_ids)}"
    with Agents(flows, job_id, scenario, set(silent)):
        arn = _start(flows, scenario, job_id)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            described = flows.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return job_id, described
            time.sleep(0.1)
    raise AssertionError(f"{scenario.name}: {arn} still running after 120 s")


def _assert_settled(flows, job_id: str, what: str) -> None:
    job = flows.store.get_job(job_id)
    assert job.status in SETTLED, f"{what}: job left {job.status.value}: {job.history[-1]}"
    assert job.history[-1].reason, f"{what}: no reason for {job.status.value}"
    running = {i["InstanceId"] for i in running_instances(flows)
               if any(t["Value"] == job_id for t in i.get("Tags", []))}
    expected = {job.instanceId} if job.status == JobStatus.EXECUTING else set()
    assert running == expected, f"{what}: {job.status.value} with {running} still running"


def _reconcile_later(flows, job_id: str) -> None:
    """Run the reconciler once the workflow limit has passed, the job's agent (if it has an
    instance) still reporting: what a workflow could not end, the reconciler ends."""
    later = flows.runtime.clock() + timedelta(seconds=flows.runtime.config.workflow_limit_seconds + 1)
    flows.runtime.clock = lambda: later
    job = flows.store.get_job(job_id)
    if job.instanceId:
        flows.store.record_heartbeat(job_id, job.instanceId, flows.runtime.now_iso())
    reconcile(flows.runtime, flows.store)


def _targets() -> list[tuple[str, str, str]]:
    """(workflow, state, what happens to it) for every Task state in statemachines/."""
    found = []
    for workflow in workflows.WORKFLOWS:
        for name, state in task_states(workflow):
            if state["Resource"] == TOKEN:
                found.append((workflow, name, f"silent:{command_kind(state)}"))
            else:
                found.append((workflow, name, "raises"))
    return found


def test_every_task_state_is_of_a_kind_the_drill_knows():
    for workflow, name, _ in _targets():
        state = dict(task_states(workflow))[name]
        assert state["Resource"] in (LAMBDA, TOKEN, NESTED), f"{workflow}.{name}"


@pytest.mark.parametrize("workflow, state, fault", _targets(),
                         ids=[f"{w}.{s}-{f}" for w, s, f in _targets()])
def test_every_task_state_ends_its_job_well_whatever_fails(flows, monkeypatch, workflow, state,
                                                           fault):
    silent = {fault.removeprefix("silent:")} if fault.startswith("silent:") else set()
    injected = [] if silent else [Fault(workflow, state)]
    _inject(flows, injected)
    _refuse_children(monkeypatch, flows, injected)
    users = [s for s in SCENARIOS if s.workflow == workflow] or SCENARIOS
    for scenario in users:
        job_id, described = _run(flows, scenario, silent)
        reached = injected[0].hits > 0 if injected else _entered(flows, workflow, job_id, state)
        if not reached:
            continue
        what = f"{scenario.name} with {workflow}.{state} {fault}"
        if workflow == workflows.SETTLE and injected:
            # Running the workflow and settling its verdict: the steps whose failure no
            # workflow can answer itself.
            assert (described["status"], described.get("error")) == ("FAILED", "Unsettled"), what
            _reconcile_later(flows, job_id)
            _assert_settled(flows, job_id, f"{what}, then reconciled")
            return
        assert described["status"] == "SUCCEEDED", f"{what}: {described}"
        _assert_settled(flows, job_id, what)
        return
    pytest.fail(f"no scenario reaches {workflow}.{state}: give it one in SCENARIOS")
