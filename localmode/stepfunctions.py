"""Step Functions, locally: three places where moto's interpreter does not do what AWS does, put
right while inside `faithful_stepfunctions()`.

- Nested workflows: it hands a `states:startExecution` task's parameters to boto3 as the ASL
  spells them (`StateMachineArn`, `Input`, `Name`) and the answer back as boto3 spells it
  (`output`, `status`), where Step Functions casts both ways (`stateMachineArn` out, `Output`
  and `Status` back). Here it casts them as Step Functions does, so a parent workflow reads its
  child's `$.Output` as it does on AWS.
- Heartbeats: a task token answered before the interpreter starts watching the task's
  heartbeats (a quick agent, between the message going out and the watch beginning) is
  ignored, and the task times out for want of a heartbeat although its answer is in. Here an
  answer already in ends the wait, as on AWS.
- Task failures: SendTaskFailure's `cause` (the agent's sentence saying why, such as a hostInit
  script's exit code and last line) is dropped, and a workflow's Catch sees only the error
  name. Here it reaches the workflow, as on AWS.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
from moto.core.responses import EmptyResult
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback as callback_task,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_sfn as sfn_task,
)
from moto.stepfunctions.responses import StepFunctionResponse

_SERVICE = "stepfunctions"


def _operation(action_snake: str) -> Any:
    model = botocore.session.get_session().get_service_model(_SERVICE)
    for name in model.operation_names:
        if _snake(name) == action_snake:
            return model.operation_model(name)
    raise KeyError(f"{_SERVICE} has no operation {action_snake}")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@contextmanager
def faithful_stepfunctions() -> Iterator[None]:
    cls = sfn_task.StateTaskServiceSfn
    original_parameters, original_response = cls._normalise_parameters, cls._normalise_response
    waiting = callback_task.StateTaskServiceCallback
    original_wait = waiting._wait_for_task_token_heartbeat

    def normalise_parameters(self: Any, parameters: dict, boto_service_name: str | None = None,
                             service_action_name: str | None = None) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)
        action = self._get_boto_service_action(service_action_name)
        self._to_boto_request(parameters, _operation(action).input_shape)

    def normalise_response(self: Any, response: Any, boto_service_name: str | None = None,
                           service_action_name: str | None = None) -> None:
        original_response(self, response, boto_service_name, service_action_name)
        action = self._get_boto_service_action(service_action_name)
        self._from_boto_response(response, _operation(action).output_shape)

    def wait_with_heartbeats(self: Any, env: Any, callback_endpoint: Any,
                             heartbeat_endpoint: Any) -> Any:
        outcome = callback_endpoint.get_outcome()
        if outcome is not None:
            return outcome
        return original_wait(self, env, callback_endpoint, heartbeat_endpoint)

    original_failure = StepFunctionResponse.send_task_failure

    def send_task_failure(self: Any) -> Any:
        backend = self.stepfunction_backend
        if "cause" not in inspect.signature(backend.send_task_failure).parameters:
            return original_failure(self)  # no interpreter runs: nothing waits for the cause
        backend.send_task_failure(self._get_param("taskToken"), error=self._get_param("error"),
                                  cause=self._get_param("cause"))
        return EmptyResult()

    cls._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    cls._normalise_response = normalise_response  # type: ignore[method-assign]
    waiting._wait_for_task_token_heartbeat = wait_with_heartbeats  # type: ignore[method-assign]
    StepFunctionResponse.send_task_failure = send_task_failure  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls._normalise_parameters = original_parameters  # type: ignore[method-assign]
        cls._normalise_response = original_response  # type: ignore[method-assign]
        waiting._wait_for_task_token_heartbeat = original_wait  # type: ignore[method-assign]
        StepFunctionResponse.send_task_failure = original_failure  # type: ignore[method-assign]
