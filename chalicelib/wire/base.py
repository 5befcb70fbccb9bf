"""What every request and response body is, and the names users and images may have."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

USERNAME_PATTERN = r"^[a-z_][a-z0-9_.-]{0,63}$"
IMAGE_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"

Role = Literal["admin", "user"]


_WHOLE = re.compile(r"[0-9]{1,15}")


def parse_whole(text: str) -> int | None:
    """The whole number written in ASCII digits, else None (`int()` also takes `²` and `١`)."""
    return int(text) if _WHOLE.fullmatch(text) else None


def control_character(text: str) -> str | None:
    """The first control, format or unassigned character of `text`, written as U+XXXX."""
    for char in text:
        if unicodedata.category(char).startswith("C"):
            return f"U+{ord(char):04X}"
    return None


def check_printable(text: str) -> str:
    found = control_character(text)
    if found:
        raise ValueError(f"holds the control character {found}")
    return text


# A name, a reason or a tag: shown in tables and kept by AWS, so one line of printable text.
Printable = Annotated[str, AfterValidator(check_printable)]
Reason = Annotated[Printable, Field(max_length=512)]


# An image reference, registry/path:tag@digest (a tag may hold capitals), or a library name:
# nothing a shell or podman would split.
IMAGE_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._:/@-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$")


def check_image_reference(image: str | None) -> str | None:
    if image is not None and not IMAGE_REFERENCE.match(image):
        raise ValueError(f"{image[:80]!r} is not an image reference such as "
                         "docker.io/library/ubuntu:22.04 or a library name")
    return image


def find_nul(value: Any, path: str = "") -> str | None:
    """Where in a parsed JSON body a NUL character sits (a key or a string), else None.

    No field of the API may hold one: execve, podman and EC2 all refuse it, and a job that
    carried one would fail long after its submit was accepted."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    pairs = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, item in pairs:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return path or "body"
        found = find_nul(item, where)
        if found:
            return found
    return None


class Body(BaseModel):
    """A request body: unknown fields are refused so that a typo is never silently ignored,
    and numbers must be finite (JSON's 1e309 parses as infinity)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class View(BaseModel):
    """A response body."""


class ErrorView(View):
    """Every error the API returns: a code, a sentence, and the offending field when there is one."""

    error: str
    message: str
    field: str | None = None


def field_problem(field: str, message: str) -> PydanticCustomError:
    """An error of a model-wide check that still names the field to blame."""
    return PydanticCustomError("field_problem", message, {"field": field})


def first_problem(error: ValidationError) -> tuple[str | None, str]:
    """The first problem pydantic found as (field path, why), worded the same by API and CLI."""
    first = error.errors(include_url=False)[0]
    # A check across fields may name the one to blame in its context (see FieldProblem).
    where = ".".join(str(part) for part in first["loc"]) or (first.get("ctx") or {}).get("field")
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
