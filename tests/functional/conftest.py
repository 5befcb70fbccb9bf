"""Fixtures of the functional suite beyond the shared ones."""

from tests.functional.workflow_helpers import flows, no_capacity  # noqa: F401 - fixtures, used by name
