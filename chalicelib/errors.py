"""Domain errors, and the one table that maps them to HTTP status codes.

Nothing here imports Chalice: handlers in app.py turn these into responses.
"""

from __future__ import annotations


class OpenFloatError(Exception):
    """Base of every error the control plane reports to a caller."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(OpenFloatError):
    """The request is malformed; `field` names the offending part when there is one."""


class MalformedTaskInput(BadRequest):
    """A workflow handed a Step Functions task an input its model refuses. The same input
    fails the same way every time: no workflow retries it, each catches it as `States.ALL`."""


class Unauthorized(OpenFloatError):
    """No valid credentials: missing, malformed, expired or unknown token, or a wrong password."""


class Forbidden(OpenFloatError):
    """Valid credentials that may not do this."""


class NotFound(OpenFloatError):
    """The named job, image, user or log does not exist (or is not visible to the caller)."""


class Conflict(OpenFloatError):
    """The request collides with the current state: an illegal transition, a lost race, a
    duplicate name."""


class IllegalTransition(Conflict):
    """A status change the transition table does not allow."""


class StaleWrite(Conflict):
    """Another writer changed the item first; re-read and decide again."""


class TooManyRequests(OpenFloatError):
    """The caller tried too often (failed logins); `retry_after` says in how many seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(OpenFloatError):
    """An AWS service the request needs refused or failed; trying again later may work."""


HTTP_STATUS: dict[type[OpenFloatError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooManyRequests: 429,
    Unavailable: 503,
}


def http_status(error: OpenFloatError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
