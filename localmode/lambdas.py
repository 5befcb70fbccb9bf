"""Lambda, locally: moto's Step Functions interpreter invokes Lambda functions through moto,
whose Lambda needs Docker to run code. This sends each invocation to the same Chalice handler
the function runs on AWS, in this process, with Lambda's error shape on failure."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from chalice import Chalice
from moto.awslambda.models import LambdaBackend

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
