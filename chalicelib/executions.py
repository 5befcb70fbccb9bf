"""Starting workflows: one execution per name, whoever asks and however often.

Every start names its execution after the job and what it does (`{job}-launch`,
`{job}-migrate-{instance}-{version}`, ...). Step Functions keeps execution names unique per
state machine, so a duplicate request — a repeated event, a retried API call, a racing handler — finds the
execution already there instead of starting a second one.

Every start is an execution of the `settle` workflow: it runs the workflow asked for as a
nested execution of the same name, then settles the job with the verdict that workflow ended
with. No workflow can therefore end without its job settled, and all of a job's executions
share one namespace of names.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib import workflows
from chalicelib.config import Config
from chalicelib.errors import Unavailable
from chalicelib.runtime import Runtime

logger = Logger(service="openfloat-executions")


def timeouts(config: Config) -> dict[str, int]:
    """How long workflows wait for agents, passed in every execution's input."""
    return {"checkpointSeconds": config.checkpoint_timeout_seconds,
            "startSeconds": config.start_timeout_seconds,
            "agentSeconds": config.agent_timeout_seconds,
            "heartbeatSeconds": config.agent_heartbeat_seconds,
            "startHeartbeatSeconds": min(config.start_heartbeat_seconds,
                                         config.start_timeout_seconds)}


def migrate_start(job_id: str, instance_id: str | None, version: int, *, reason: str,
                  notice_time: str, reclaim: bool, target: dict[str, Any] | None,
                  timeouts: dict[str, int], agent_lost: bool = False
                  ) -> tuple[str, dict[str, Any]]:
    """The execution name and input of the migrate workflow for the job on `instance_id`.

    The name is the same whoever asks — the Spot warning, the instance's state change, the
    agent's own notice, a user's `float migrate` — so one move of one instance is one
    execution. The job's version is part of it: a job left on its instance by a failed move
    can still be moved off it later. `reclaim` says the old instance is going away: a failed
    checkpoint then falls back to the last committed one instead of leaving the job where it
    is. `target` holds a user's new instType, cpu/mem or vmPolicy; None keeps the job's own.
    `agent_lost` says nobody is left on the old instance to take a checkpoint: the move
    restores the last committed one (or reruns) without waiting for an answer."""
    return f"{job_id}-migrate-{instance_id}-{version}", {
        "jobId": job_id, "reason": reason, "launchNumber": version, "noticeTime": notice_time,
        "reclaim": reclaim, "agentLost": agent_lost, "target": target, "timeouts": timeouts}


def finish_start(job_id: str, instance_id: str, exit_code: int, *,
                 time_limit: int | None = None,
                 host_terminate_failure: str | None = None,
                 out_of_memory: int | None = None,
                 evading: bool = False) -> tuple[str, dict[str, Any]]:
    """The execution name and input of the finish workflow for a container that exited on
    `instance_id`; with `time_limit`, its agent stopped it there and the job ends Timedout.
    `out_of_memory` (the memory limit in bytes, 0 if unknown): the kernel killed it for memory;
    `evading`: the job's rules had evadeOOM, and still it could not be moved in time.
    A failed hostTerminate script is named in the reason; it does not change the status."""
    if time_limit is not None:
        to: str | None = "Timedout"
        why = f"stopped: it ran for its time limit of {time_limit} s"
    elif out_of_memory is not None:
        to = "FailToComplete"
        limit = f" of {out_of_memory / 2**30:g} GiB" if out_of_memory else ""
        why = (f"out of memory (OOM): the kernel killed the job, which needed more than the "
               f"memory{limit} of its instance (exit code {exit_code})" + (
                   "; evadeOOM could not move it in time (or mem.limit allows no more)"
                   if evading else "; --migratePolicy [evadeOOM=true] moves a job to more "
                   "memory before that"))
    else:
        to, why = None, f"the job exited with code {exit_code}"
    if host_terminate_failure:
        why += f"; then {host_terminate_failure}"
    return f"{job_id}-finish-{instance_id}", {
        "jobId": job_id, "instanceId": instance_id, "exitCode": exit_code, "to": to, "why": why}


def execution_arn(runtime: Runtime, name: str) -> str:
    """The ARN of execution `name` of the settle workflow, whichever workflow it runs."""
    machine = runtime.config.workflow(workflows.SETTLE)
    return machine.replace(":stateMachine:", ":execution:") + f":{name}"


def start(runtime: Runtime, workflow: str, name: str, payload: dict[str, Any]) -> bool:
    """Start `workflow` as execution `name`, inside settle; False when an execution of that
    name exists."""
    client = runtime.stepfunctions
    arn = execution_arn(runtime, name)
    try:
        client.describe_execution(executionArn=arn)
    except client.exceptions.ExecutionDoesNotExist:
        pass
    else:
        return False
    # The workflow's own execution is settle's child: the console shows it under its parent.
    # Each start's input is its own: Step Functions answers a second start of a name with the
    # same input with the first's execution, as if it had started it too.
    run = {"workflow": runtime.config.workflow(workflow),
           "input": {**payload, "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": arn},
           "start": uuid.uuid4().hex}
    try:
        # Of two racing starts one wins; the other gets ExecutionAlreadyExists.
        client.start_execution(stateMachineArn=runtime.config.workflow(workflows.SETTLE),
                               name=name, input=json.dumps(run))
    except client.exceptions.ExecutionAlreadyExists:
        return False
    logger.info("workflow started", extra={"workflow": workflow, "execution": name,
                                           "job_id": payload.get("jobId")})
    return True


def start_unless_running(runtime: Runtime, workflow: str, name: str, payload: dict[str, Any],
                         tries: int = 20) -> str | None:
    """Start `workflow` unless an execution of it for this purpose runs already: `name`, or
    `name-2`, `name-3`... when the earlier ones have ended. The name started, or None."""
    client = runtime.stepfunctions
    for number in range(1, tries + 1):
        candidate = name if number == 1 else f"{name}-{number}"
        try:
            described = client.describe_execution(executionArn=execution_arn(runtime, candidate))
        except client.exceptions.ExecutionDoesNotExist:
            return candidate if start(runtime, workflow, candidate, payload) else None
        if described["status"] == "RUNNING":
            return None
    raise Unavailable(f"{workflow} was started {tries} times for {name} and never finished; "
                      "see its executions")
