"""The finish and cancel workflows: the real ASL in moto's Step Functions interpreter, task
functions dispatched to app.py's handlers, and a simulated agent answering task tokens."""

from __future__ import annotations

import json

import pytest

from app import app, task_job_instance
from chalicelib import executions, workflows
from chalicelib.tasks import TASK_ERRORS
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import entry
from tests.functional.workflow_helpers import seed_running, simulated_agent

NESTED = "arn:aws:states:::states:startExecution.sync:2"


def test_every_error_name_and_task_in_the_workflows_resolves():
    chalice_functions = {f.name for f in app.pure_lambda_functions}
    for workflow in workflows.WORKFLOWS:
        for name in workflows.error_names(workflow):
            if not name.startswith(("States.", "Lambda.")):  # AWS's own names
                assert name in TASK_ERRORS, f"{workflow}: ErrorEquals {name} is raised by no task"
                assert TASK_ERRORS[name].__name__ == name
        for placeholder in workflows.placeholders(workflow):
            if placeholder in workflows.CHILD_WORKFLOWS:
                child = workflows.CHILD_WORKFLOWS[placeholder]
                # Created before the workflows that run it: its ARN is known when they are.
                assert workflows.WORKFLOWS.index(child) < workflows.WORKFLOWS.index(workflow)
                continue
            assert placeholder in workflows.TASK_FUNCTIONS, f"{workflow}: unknown {placeholder}"
            assert workflows.TASK_FUNCTIONS[placeholder] in chalice_functions
    assert set(workflows.TASK_FUNCTIONS.values()) <= chalice_functions


@pytest.mark.parametrize("code, status", [(0, "Completed"), (3, "FailToComplete")])
def test_finish_records_the_exit_releases_the_instance_and_records_usage(flows, code, status):
    instance, _ = seed_running(flows, "done")
    result = flows.run("finish", *executions.finish_start("done", instance, code))
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("done")
    assert (job.status.value, job.rc) == (status, code)
    assert job.history[-1].reason == f"the job exited with code {code}"
    assert flows.state(instance) == "terminated"
    (usage,) = flows.store.usage_of("done")
    assert (usage.instanceId, usage.market, usage.vcpus) == (instance, "spot", 2)


def test_finish_leaves_a_job_cancelled_meanwhile_cancelled_and_still_releases(flows):
    instance, _ = seed_running(flows, "raced", status=JobStatus.CANCELLED)
    result = flows.run("finish", *executions.finish_start("raced", instance, 0))
    assert result["status"] == "SUCCEEDED"
    assert flows.store.get_job("raced").status == JobStatus.CANCELLED
    assert flows.state(instance) == "terminated"


@pytest.mark.parametrize("agent_answers", [True, False], ids=["agent-answers", "agent-gone"])
def test_cancel_stops_the_job_and_releases_its_instance(flows, agent_answers):
    instance, queue = seed_running(flows, "doomed")
    job = flows.store.get_job("doomed")
    flows.store.transition_job(job, JobStatus.CANCELLING, entry(
        flows.runtime, job.status, JobStatus.CANCELLING, "cancelled by alice"))
    seen: list = []
    simulated_agent(flows, queue, agent_answers, seen)
    result = flows.run("cancel", "doomed-cancel", {"jobId": "doomed",
                                                   "timeouts": flows.timeouts(agentSeconds=2)})
    assert result["status"] == "SUCCEEDED", result
    assert [c.kind for c in seen] == ["cancel"] and seen[0].jobId == "doomed"
    job = flows.store.get_job("doomed")
    assert job.status == JobStatus.CANCELLED
    assert [h.to for h in job.history[-2:]] == [JobStatus.CANCELLING, JobStatus.CANCELLED]
    assert flows.state(instance) == "terminated"
    assert len(flows.store.usage_of("doomed")) == 1


def test_a_malformed_task_input_fails_once_by_name_and_the_workflow_catches_it(flows):
    instance, _ = seed_running(flows, "garbled")
    name, payload = executions.finish_start("garbled", instance, 3)
    result = flows.run("finish", name, {**payload, "exitCode": "three"})
    assert (result["status"], result["error"]) == ("FAILED", "Unsettled")
    history = flows.sfn.get_execution_history(executionArn=result["executionArn"],
                                              maxResults=1000)["events"]
    failures = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    # Named, and not retried: the same input would fail the same way.
    assert [f["error"] for f in failures] == ["MalformedTaskInput"]
    assert "request.exitCode" in failures[0]["cause"]
    assert flows.store.get_job("garbled").status == JobStatus.EXECUTING
    for workflow in workflows.WORKFLOWS:
        document = json.loads(workflows.path_of(workflow).read_text())
        for name, state in workflows.walk_states(document):
            for rule in state.get("Retry", []):
                assert not {"MalformedTaskInput", "States.ALL"} & set(rule["ErrorEquals"]), \
                    f"{workflow}.{name} retries what fails the same way each time"


def test_a_task_hands_the_workflow_every_field_its_result_selector_reads(flows):
    instance, queue = seed_running(flows, "described")
    answer = task_job_instance({"jobId": "described", "state": "FindInstance"}, None)
    assert answer == {"jobId": "described", "instanceId": instance, "commandsQueueUrl": queue,
                      "instanceType": "c5.large", "rerunAllowed": True, "captureAllowed": True}
    gone = flows.store.get_job("described")
    flows.store.record_fields(gone, {"instanceId": None, "commandsQueueUrl": None})
    # A job whose instance is gone: the keys are there, with nulls, or the ResultSelector fails.
    answer = task_job_instance({"jobId": "described"}, None)
    assert answer == {"jobId": "described", "instanceId": None, "commandsQueueUrl": None,
                      "instanceType": None, "rerunAllowed": True, "captureAllowed": True}


def _shape(state: dict) -> str:
    """A state with the names of the states it leads to blanked: alike states, alike text."""
    body = json.loads(json.dumps(state))
    for key in ("Next", "Default"):
        if key in body:
            body[key] = "→"
    for rule in body.get("Choices", []) + body.get("Catch", []):
        if "Next" in rule:
            rule["Next"] = "→"
    for key in ("Comment", "Branches", "Iterator", "ItemProcessor"):
        body.pop(key, None)
    return json.dumps(body, sort_keys=True)


def _next(state: dict) -> set[str]:
    targets = {state.get("Next"), state.get("Default")}
    targets |= {rule.get("Next") for rule in state.get("Choices", []) + state.get("Catch", [])}
    return targets - {None}


def _blocks(workflow: str) -> set[str]:
    """Every run of three states, each leading to the next, and every task that does its work
    itself (a function, an agent's command), as shapes. A block of logic written again
    elsewhere holds such a run, or is such a task; a call of a shared workflow and the check
    of its answer are written at each call site, as a function call and its `if` are."""
    document = json.loads(workflows.path_of(workflow).read_text())
    states = dict(workflows.walk_states(document))
    live = {name for name, state in states.items() if state["Type"] not in ("Succeed", "Fail")}
    blocks = {_shape(state) for state in states.values()
              if state["Type"] == "Task" and state["Resource"] != NESTED}
    for first in live:
        for second in _next(states[first]) & live:
            for third in _next(states[second]) & live:
                blocks.add(" ⇒ ".join(_shape(states[n]) for n in (first, second, third)))
    return blocks


def test_no_block_of_states_is_written_in_two_workflows():
    seen: dict[str, str] = {}
    for workflow in workflows.WORKFLOWS:
        for block in _blocks(workflow):
            assert block not in seen, (
                f"{workflow} and {seen[block]} both hold this; make it one workflow that both "
                f"run as a nested execution:\n{block}")
            seen[block] = workflow


def test_every_started_workflow_ends_in_its_verdict_or_with_nothing_to_settle():
    # settle settles the job with the `end` a workflow's output holds, and skips a workflow
    # that ends without one: an end that forgot its verdict would leave the job unsettled.
    for workflow in workflows.STARTED:
        document = json.loads(workflows.path_of(workflow).read_text())
        for name, state in document["States"].items():
            assert state["Type"] != "Fail", f"{workflow}.{name}: a failed workflow has no verdict"
            if state.get("End") and state["Type"] != "Succeed":
                assert state.get("ResultPath") == "$.end", f"{workflow}.{name} ends without a verdict"


def test_a_job_its_agent_stopped_at_its_time_limit_ends_timedout(flows):
    instance, _ = seed_running(flows, "late")
    result = flows.run("finish", *executions.finish_start("late", instance, 137, time_limit=20))
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("late")
    assert (job.status, job.rc) == (JobStatus.TIMEDOUT, 137)
    assert job.history[-1].reason == "stopped: it ran for its time limit of 20 s"
    assert flows.state(instance) == "terminated"
