"""EventBridge, locally: moto delivers an event to a rule's target without the `account` every
event EventBridge delivers carries (and Powertools' EventBridgeModel requires). While inside
`faithful_eventbridge()`, delivered events carry it, as on AWS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moto.events.utils import EventTemplateParser

# AWS's envelope, in moto's template language: each <name> is filled from the event.
_AWS_TEMPLATE = ('{"version": "0", "id": "<id>", "detail-type": "<detail-type>", '
                 '"source": "<source>", "account": "<account>", "time": <time>, '
                 '"region": "<region>", "resources": <resources>, "detail": <detail>}')


@contextmanager
def faithful_eventbridge() -> Iterator[None]:
    original = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = _AWS_TEMPLATE
    try:
        yield
    finally:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = original
