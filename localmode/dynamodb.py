"""DynamoDB, locally: each request applied and read as one step, as DynamoDB does it, while
inside `faithful_dynamodb()`.

DynamoDB evaluates a ConditionExpression and applies the write as one step, and a read never
sees half of a write. moto checks a condition and writes in separate Python statements, updates
an item in place and serializes a read from the live item, so under threads (moto's server
serves each request on its own) two conditional writers can both pass, and a read racing an
update sees part of it or fails with "dictionary changed size during iteration". Here one lock
covers each whole DynamoDB request, reads and writes alike.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.responses import DynamoHandler

_ONE_AT_A_TIME = threading.RLock()


@contextmanager
def faithful_dynamodb() -> Iterator[None]:
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _ONE_AT_A_TIME:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]
