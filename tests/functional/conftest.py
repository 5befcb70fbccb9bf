"""Fixtures of the functional suite beyond the shared ones."""

from tests.functional.workflow_helpers import flows  # noqa: F401 - a fixture, used by name
