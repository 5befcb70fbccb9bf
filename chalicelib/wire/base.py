"""What every request and response body is, and the names users and images may have."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

USERNAME_PATTERN = r"^[a-z_][a-z0-9_.-]{0,63}$"
IMAGE_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"

Role = Literal["admin", "user"]


class Body(BaseModel):
    """A request body: unknown fields are refused so that a typo is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class View(BaseModel):
    """A response body."""
