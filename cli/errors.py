"""The errors `float` reports: one line on stderr and an exit code (2 for usage, 1 otherwise)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from chalicelib.wire.api import first_problem


class CliError(Exception):
    """A failure the user should read: the message becomes the one line `float: ...`."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RefusedError(CliError):
    """The OpCenter answered with an HTTP error; `status` is its code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UsageError(CliError):
    """The command line itself is wrong: an unknown flag, a missing argument, a malformed value."""

    exit_code = 2


def invalid(error: ValidationError) -> CliError:
    """The first problem pydantic found, worded like the API's own 400 replies: `field: why`."""
    where, why = first_problem(error)
    return CliError(f"{where}: {why}" if where else why)


def validate(model: type[BaseModel], body: dict[str, Any]) -> None:
    """Check a request body against its wire model before sending it, so a typo fails at once."""
    try:
        model.model_validate(body)
    except ValidationError as error:
        raise invalid(error) from None
