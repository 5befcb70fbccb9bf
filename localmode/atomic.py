"""DynamoDB and EC2, locally: each request applied and read as one step, as the services do it,
while inside `atomic_requests()`.

DynamoDB evaluates a ConditionExpression and applies the write as one step, and a read never
sees half of a write. moto checks a condition and writes in separate Python statements, updates
an item in place and serializes a read from the live item, so under threads (moto's server
serves each request on its own) two conditional writers can both pass, and a read racing an
update sees part of it or fails with "dictionary changed size during iteration".

EC2 has the same gap: DescribeInstances serializes each network interface from its live
object, and an instance terminated on another thread at that moment clears the public address
between moto's check of it and its use ("argument of type 'NoneType' is not iterable"). AWS
never fails a describe because an instance is going away.

Here one lock per service covers each whole request, reads and writes alike. Under the same
lock, a Query on a table's index reads only the partition it names, and item answers are
written directly (localmode.tables). And moto lists the methods of a service's handler
class, to find the request's action among them, once per class instead of once per request.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import moto.core.responses
from moto.dynamodb.responses import DynamoHandler
from moto.ec2.responses import EC2Response

from localmode.tables import indexed_queries, plain_answers


@contextmanager
def _one_at_a_time(handler: Any) -> Iterator[None]:
    lock = threading.RLock()
    original = handler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    handler.call_action = call_action
    try:
        yield
    finally:
        handler.call_action = original


@contextmanager
def _actions_listed_once() -> Iterator[None]:
    original = moto.core.responses.method_names_from_class
    moto.core.responses.method_names_from_class = functools.cache(original)
    try:
        yield
    finally:
        moto.core.responses.method_names_from_class = original


@contextmanager
def atomic_requests() -> Iterator[None]:
    with ExitStack() as stack:
        for handler in (DynamoHandler, EC2Response):
            stack.enter_context(_one_at_a_time(handler))
        stack.enter_context(_actions_listed_once())
        stack.enter_context(indexed_queries())
        stack.enter_context(plain_answers())
        yield
