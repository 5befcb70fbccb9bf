"""What every request and response body is, and the names users and images may have."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

USERNAME_PATTERN = r"^[a-z_][a-z0-9_.-]{0,63}$"
IMAGE_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"

Role = Literal["admin", "user"]


class Body(BaseModel):
    """A request body: unknown fields are refused so that a typo is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class View(BaseModel):
    """A response body."""


class ErrorView(View):
    """Every error the API returns: a code, a sentence, and the offending field when there is one."""

    error: str
    message: str
    field: str | None = None


def first_problem(error: ValidationError) -> tuple[str | None, str]:
    """The first problem pydantic found as (field path, why), worded the same by API and CLI."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    if kind == "missing":
        why = "is required"
    elif kind == "extra_forbidden":
        why = "is not a known field"
    elif kind == "json_invalid":
        why = "the request body is not valid JSON"
    else:
        why = first["msg"].removeprefix("Value error, ")
    return where, why
