"""EventBridge, locally: two places where moto's delivery differs from EventBridge's, put right
while inside `faithful_eventbridge()`.

- The envelope: moto delivers an event to a rule's target without the `account` every event
  EventBridge delivers carries (and Powertools' EventBridgeModel requires). Here it carries it.
- Scheduled rules: moto hands every event to a rule with no event pattern, a schedule such as
  the reconciler's, and fails the whole PutEvents call on its Lambda target. On AWS a schedule
  matches no event; here too (localmode.lambdas.Schedule runs it on its timer).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.events.models import Rule
from moto.events.utils import EventTemplateParser

# AWS's envelope, in moto's template language: each <name> is filled from the event.
_AWS_TEMPLATE = ('{"version": "0", "id": "<id>", "detail-type": "<detail-type>", '
                 '"source": "<source>", "account": "<account>", "time": <time>, '
                 '"region": "<region>", "resources": <resources>, "detail": <detail>}')


@contextmanager
def faithful_eventbridge() -> Iterator[None]:
    original = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    original_send = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if self.scheduled_expression and not self.event_pattern.get_pattern():
            return
        original_send(self, original_event, transform_input)

    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = _AWS_TEMPLATE
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
    try:
        yield
    finally:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = original
        Rule.send_to_targets = original_send  # type: ignore[method-assign]
