"""Lambda, locally: moto's Step Functions interpreter invokes Lambda functions through moto,
whose Lambda needs Docker to run code. This sends each invocation to the same Chalice handler
the function runs on AWS, in this process, with Lambda's error shape on failure."""

from __future__ import annotations

import importlib
import json
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger
from chalice import Chalice
from moto.awslambda.models import LambdaBackend

logger = Logger(service="openfloat-local-lambdas")

Handler = Callable[[dict[str, Any], Any], Any]


def handlers_of(app: Chalice) -> dict[str, Handler]:
    return {function.name: function for function in app.pure_lambda_functions}


def invoke(handlers: dict[str, Handler], function_name: str, body: bytes | str | None,
           response_headers: dict[str, str]) -> bytes:
    """Run the handler named by `function_name` (a name or an ARN) as Lambda would."""
    name = function_name.rsplit(":function:", 1)[-1].split(":")[0]
    handler = handlers.get(name)
    if handler is None:
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorType": "ResourceNotFoundException",
                           "errorMessage": f"no local function {name}"}).encode()
    return run(handler, body, response_headers)


def handler_named(spec: str) -> Handler:
    """The function a Lambda `Handler` setting names: `module.attribute`, as Lambda's Python
    runtime imports it (`app.task_set_status`)."""
    module, _, attribute = spec.rpartition(".")
    if not module or not attribute:
        raise LookupError(f"handler {spec!r} is not module.attribute")
    found = getattr(importlib.import_module(module), attribute, None)
    if not callable(found):
        raise LookupError(f"handler {spec!r}: {module} has no function {attribute}")
    return found  # type: ignore[no-any-return]


def run(handler: Handler, body: bytes | str | None, response_headers: dict[str, str]) -> bytes:
    """Call `handler` with the invocation's event, answering as Lambda does."""
    event = json.loads(body) if body else {}
    try:
        result = handler(event, None)
    except Exception as error:  # noqa: BLE001 - Lambda reports every error to its caller
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error),
                           "stackTrace": traceback.format_tb(error.__traceback__)}).encode()
    return json.dumps(result).encode()


@contextmanager
def local_lambdas(app: Chalice) -> Iterator[dict[str, Handler]]:
    """While inside, moto's Lambda runs `app`'s functions in this process."""
    handlers = handlers_of(app)
    original = LambdaBackend.invoke

    def dispatch(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any,
                 response_headers: dict[str, str]) -> bytes:
        return invoke(handlers, function_name, body, response_headers)

    LambdaBackend.invoke = dispatch  # type: ignore[method-assign]
    try:
        yield handlers
    finally:
        LambdaBackend.invoke = original  # type: ignore[method-assign]


@contextmanager
def deployed_lambdas() -> Iterator[None]:
    """While inside, moto's Lambda runs each invoked function's own `Handler`, as it was
    deployed, in this process: the function the stack created decides what runs."""
    original = LambdaBackend.invoke

    def dispatch(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any,
                 response_headers: dict[str, str]) -> bytes:
        try:
            handler = handler_named(self.get_function(function_name, qualifier).handler)
        except Exception as error:  # noqa: BLE001 - no such function, or no such handler
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(error).__name__,
                               "errorMessage": str(error)}).encode()
        return run(handler, body, response_headers)

    LambdaBackend.invoke = dispatch  # type: ignore[method-assign]
    try:
        yield
    finally:
        LambdaBackend.invoke = original  # type: ignore[method-assign]


class Schedule:
    """An EventBridge schedule, locally: the handler invoked every `seconds`, as the rule in
    infra/ invokes it on AWS. A failed run is logged; the next one comes all the same."""

    def __init__(self, handler: Handler, name: str, seconds: float) -> None:
        self.handler, self.name, self.seconds = handler, name, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{name}", daemon=True)

    def start(self) -> Schedule:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.handler({"source": "aws.events", "detail-type": "Scheduled Event",
                              "detail": {}}, None)
            except Exception:  # noqa: BLE001 - the schedule fires again; so does this
                logger.exception("scheduled run failed", extra={"function": self.name})
